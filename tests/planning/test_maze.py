"""``vqladder.planning.maze``: validator, BFS, generator, episode codec, disjoint splits."""

import numpy as np
import pytest
from helpers import ROOT, two_rooms

from vqladder.planning.maze import (
    END,
    EpisodeCodec,
    MazeConfig,
    make_dataset,
    make_layout,
    return_bucket,
    validate,
)

U, D, L, R = 0, 1, 2, 3


def test_validator_walls_doors_and_goal():
    lay = two_rooms(door=1)
    # inside a room every move is free
    assert validate(lay, (0, 0), (1, 1), [D, R]).reached
    # crossing the vertical wall only at the door row (row 1)
    assert not validate(lay, (0, 1), (0, 2), [R]).valid
    o = validate(lay, (1, 1), (1, 2), [R])
    assert o.valid and o.reached and o.length == 1
    # the border is a wall
    assert not validate(lay, (0, 0), (1, 1), [U]).valid
    # no door between (0,0) and (1,0) rooms
    assert not validate(lay, (1, 0), (2, 0), [D]).valid
    # goal reached ends the episode: later moves (even bumps) are ignored
    assert validate(lay, (1, 1), (1, 2), [R, U, U, U]).reached
    # end stops the replay; unknown symbols and junk never raise
    assert not validate(lay, (0, 0), (1, 1), [END, D, R]).reached
    for junk in ([7, 9], ["x"], [None], [-1], list(range(100))):
        validate(lay, (0, 0), (1, 1), junk)


@pytest.mark.parametrize("dense", [False, True])
def test_batched_verifier_gives_validates_verdict_row_by_row(dense):
    """The verifier replays every candidate at once (``replay_many``); its scores must be the ones ``validate``
    gives each row alone: bumps, unknown symbols, an end, the goal reached (later moves ignored), start == goal."""
    import torch

    from vqladder.planning.planners import Verifier

    cfg = MazeConfig(rooms=3, room=3, max_moves=24)
    rng = np.random.default_rng(0)
    n_checked = 0
    for _ in range(12):
        lay = make_layout(cfg, rng)
        cells = [(int(r), int(c)) for r, c in rng.integers(cfg.side, size=(2, 2))]
        start, goal = cells[0], (cells[0] if rng.random() < 0.2 else cells[1])
        path = lay.shortest_path(start, goal) or []
        rows = rng.integers(-1, 7, size=(40, 18))              # junk, moves and END, at random
        rows[:10] = rng.integers(0, 4, size=(10, 18))           # plain moves: mostly bumps sooner or later
        if path and len(path) <= 18:
            rows[10, :len(path)] = path                          # the goal reached, then junk after it
            rows[11, :len(path)] = path
            rows[11, len(path) - 1] = END                        # stopped one move short
        ver = Verifier(lay, start, goal, dense=dense)
        got = ver(torch.from_numpy(rows)).tolist()
        for row, score in zip(rows.tolist(), got):
            o = validate(lay, start, goal, row)
            want = (-ver.dist.get(o.final, len(ver.dist) + 1) if dense else 0.0) + (5.0 if o.reached else 0.0 if o.valid else -10.0)
            assert score == pytest.approx(want), (row, o)
            n_checked += 1
    assert n_checked == 480
    assert ver(torch.zeros(0, 5, dtype=torch.long)).shape == (0,)
    assert ver(torch.zeros(3, 0, dtype=torch.long)).shape == (3,)


def test_bfs_shortest_and_unreachable():
    lay = two_rooms(door=0)
    assert validate(lay, (1, 0), (1, 3), []).shortest == 5  # up to the door row, across, down
    path = lay.shortest_path((1, 0), (1, 3))
    assert len(path) == 5 and validate(lay, (1, 0), (1, 3), path).reached
    assert validate(lay, (0, 0), (3, 3), []).shortest == -1   # bottom rooms are closed off
    assert lay.shortest_path((0, 0), (3, 3)) is None


def test_generator_determinism_connectivity_and_split():
    cfg = MazeConfig(rooms=3, room=2, max_moves=24)
    a = make_dataset(cfg, 30, 4, seed=5)
    b = make_dataset(cfg, 30, 4, seed=5)
    for k in a:
        assert np.array_equal(a[k], b[k])
    c = make_dataset(cfg, 30, 4, seed=6)
    assert not np.array_equal(a["cond"], c["cond"])
    rng = np.random.default_rng(0)
    for _ in range(20):  # every generated layout is connected
        lay = make_layout(cfg, rng)
        assert len(lay.bfs((0, 0))) == cfg.side ** 2
    test = make_dataset(cfg, 20, 1, seed=99, exclude=set(a["keys"]))
    assert not set(test["keys"]) & set(a["keys"])
    # demonstrations are imperfect and labelled: all return buckets occur
    assert set(np.unique(make_dataset(cfg, 60, 8, seed=1)["buckets"])) == {0, 1, 2, 3}


def test_codec_round_trip_and_buckets():
    cfg = MazeConfig(rooms=2, room=3, max_moves=12)
    codec = EpisodeCodec(cfg)
    lay = make_layout(cfg, np.random.default_rng(1))
    cond = codec.cond(lay, (0, 1), (5, 4), 2)
    assert cond.max() < codec.cond_vocab and len(cond) == codec.cond_len
    lay2, s, g, b = codec.decode_cond(cond)
    assert np.array_equal(lay2.doors, lay.doors) and (s, g, b) == ((0, 1), (5, 4), 2)
    o = validate(lay, (0, 1), (5, 4), lay.shortest_path((0, 1), (5, 4)))
    assert return_bucket(o) == 3
    assert "S" in lay.render((0, 1), (5, 4)) and "G" in lay.render((0, 1), (5, 4))


@pytest.mark.parametrize("preset", ["plan_cpu", "plan_4x4", "plan_6x6"])
def test_every_preset_holds_out_layouts_never_seen_in_training(preset):
    """Each shipped planning preset's maze: held-out tasks come from layouts disjoint from the training ones,
    and every held-out task's shortest plan fits its max_moves (fewer layouts than the preset, same maze)."""

    from vqladder.config import load_config
    from vqladder.planning.maze import plan_tasks
    from vqladder.planning.recipe import PlanConfig

    cfg = load_config(PlanConfig, ROOT / "configs" / f"{preset}.yaml")
    d = plan_tasks(cfg.maze, 200, 2, 30, cfg.data.seed)
    assert len(d["test_cond"]) > 0 and not set(d["test_keys"].tolist()) & set(d["train_keys"].tolist())
    codec = EpisodeCodec(cfg.maze)
    for c in d["test_cond"]:
        lay, s, g, b = codec.decode_cond(c)
        assert b == 3 and 0 < validate(lay, s, g, []).shortest <= cfg.maze.max_moves


def test_held_out_layouts_are_disjoint_because_of_the_exclusion():
    """On a maze with few possible layouts, held-out draws meet the training layouts unless they are excluded:
    the split's disjointness is the exclusion's doing (a test with the exclusion removed would fail here)."""
    cfg = MazeConfig(rooms=2, room=2, max_moves=16)
    train = make_dataset(cfg, 30, 1, seed=1)
    seen = set(train["keys"].tolist())
    assert len(set(make_dataset(cfg, 15, 1, seed=2)["keys"].tolist()) & seen) >= 5  # without it: they meet
    held = make_dataset(cfg, 15, 1, seed=2, exclude=seen)
    assert len(held["keys"]) == 15 and not set(held["keys"].tolist()) & seen


def test_the_validation_split_is_disjoint_and_leaves_the_test_tasks_alone():
    """Validation layouts are in neither training nor test, and adding them does not change the test tasks."""
    from vqladder.planning.maze import plan_tasks

    cfg = MazeConfig(rooms=3, room=2, max_moves=24)
    with_val = plan_tasks(cfg, 30, 2, 12, seed=5, val_layouts=10)
    without = plan_tasks(cfg, 30, 2, 12, seed=5)
    assert "val_cond" not in without and np.array_equal(with_val["test_cond"], without["test_cond"])
    train, test, val = (set(with_val[k].tolist()) for k in ("train_keys", "test_keys", "val_keys"))
    assert len(val) == len(with_val["val_cond"]) > 0 and not val & train and not val & test and not test & train



def test_muon_trains_the_flat_planner_by_default_and_the_presets_pin_their_tables_recipe():
    """Muon is the flat planner's default (it reaches AdamW's held-out loss in about half the time); the shipped
    presets' tables were made with AdamW, and they keep it explicitly; the stages not measured keep AdamW."""
    from vqladder.config import build, load_config
    from vqladder.planning.recipe import PlanConfig

    cfg = build(PlanConfig, {"flat": {"train": {"steps": 10}}})
    assert cfg.flat.train.optimizer == "muon"
    assert cfg.ladder.prior_train.optimizer == cfg.ladder.compressor_train.optimizer == "adamw"  # not measured
    for preset in ("plan_cpu", "plan_4x4", "plan_6x6"):
        p = load_config(PlanConfig, ROOT / "configs" / f"{preset}.yaml")
        assert p.flat.train.optimizer == "adamw"
