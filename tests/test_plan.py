"""The rooms maze (generator, validator, BFS, splits) and the flat-vs-ladder planning experiment."""

import numpy as np
import pytest
import torch

from vqladder.errors import VQLadderError
from vqladder.models.sampling import beam_search
from vqladder.planning.maze import (
    DELTA,
    END,
    EpisodeCodec,
    Layout,
    MazeConfig,
    make_dataset,
    make_layout,
    return_bucket,
    validate,
)

U, D, L, R = 0, 1, 2, 3


def _two_rooms(door=1):
    """1x2 rooms of 2x2 cells... as a 2x2-room maze with only the wall (0,0)|(0,1) open at ``door``."""
    cfg = MazeConfig(rooms=2, room=2, max_moves=8)
    doors = np.full(cfg.n_walls, -1)
    doors[0] = door  # vertical wall between rooms (0,0) and (0,1), door at row offset `door`
    return Layout(cfg, doors)


def test_validator_walls_doors_and_goal():
    lay = _two_rooms(door=1)
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


def test_bfs_shortest_and_unreachable():
    lay = _two_rooms(door=0)
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


def test_beam_search_budget_with_scorer_cost():
    def fn(prefix):
        return torch.zeros(prefix.shape[0], 5)

    def scorer(s):
        return s.float().sum(1)

    for budget in (16, 20, 40, 100):
        res = beam_search(fn, 8, beam_width=8, scorer=scorer, scorer_cost=1, max_evals=budget)
        assert res.evaluations <= budget
    with pytest.raises(VQLadderError, match="budget"):
        beam_search(fn, 8, beam_width=2, scorer=scorer, scorer_cost=1, max_evals=15)


def test_value_targets_are_moves_to_go_and_zero_for_failures():
    from vqladder.planning.maze import END
    from vqladder.planning.value import value_targets

    moves = np.array([[0, 1, 1, END, END], [2, 3, 2, 3, 2], [0, END, END, END, END]])
    to_go = value_targets(moves, np.array([True, True, False]), END)
    assert to_go.tolist() == [[3, 2, 1, 0, 0, 0], [5, 4, 3, 2, 1, 0], [-1] * 6]
    from vqladder.planning.value import PlanValue, ValueConfig

    v = PlanValue(ValueConfig(move_vocab=5, cond_vocab=4, cond_len=2, max_moves=5, gamma=0.5, d_model=16, n_heads=2,
                              n_layers=1))
    assert v.target(torch.from_numpy(to_go)).tolist()[0] == [0.125, 0.25, 0.5, 1.0, 1.0, 1.0]
    assert v.target(torch.from_numpy(to_go))[2].abs().sum() == 0


def test_value_scorer_is_charged_for_flat_and_ladder():
    """Every learned-value evaluation is charged: the same search with the free verifier and with the value
    differs in evaluations by exactly one per scored candidate."""
    from vqladder.models import CodePrior, PriorConfig, SequenceCompressor
    from vqladder.planning.planners import FlatPlanner, LadderPlanner, ValueScorer, Verifier

    class Count:
        cost = 1

        def __init__(self):
            self.n = 0

        def __call__(self, moves):
            self.n += len(moves)
            return torch.zeros(len(moves))

    torch.manual_seed(0)
    prior = CodePrior(PriorConfig(vocab_size=5, cond_vocab=4, cond_len=1, context=8, d_model=16, n_heads=2, n_layers=1))
    flat = FlatPlanner(prior, 8)
    for method in ("beam", "sample"):
        sc = Count()
        _, used = flat.plan([1], method, sc, budget=64)
        steps = used - sc.n  # evaluations of the prior
        assert used <= 64 and sc.n > 0 and steps > 0
        if method == "sample":
            assert used == (64 // 9) * 9
    comp = SequenceCompressor(__import__("vqladder.models", fromlist=["CompressorConfig"]).CompressorConfig(
        vocab_size=5, in_len=8, out_len=2, d_model=16, n_heads=2, enc_layers=1, latent_layers=1, dec_layers=1))
    lp = LadderPlanner(comp, CodePrior(PriorConfig(vocab_size=comp.quantizer.codebook_size, cond_vocab=4, cond_len=1,
                                                   context=2, d_model=16, n_heads=2, n_layers=1)), 8, 4)
    sc = Count()
    _, used = lp.plan([1], "sample", sc, budget=40)
    assert used == (40 // (2 + 2)) * (2 + 2) and sc.n == 40 // 4  # per sample: 2 codes + 1 decode + 1 value
    assert ValueScorer.cost == 1 and Verifier.cost == 0
    with pytest.raises(VQLadderError, match="budget"):
        flat.plan([1], "beam", Count(), budget=8)  # 1x: a greedy pass plus one value per step does not fit


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    from vqladder.config import build
    from vqladder.planning.recipe import PlanConfig, run_plan_experiment

    tmp = tmp_path_factory.mktemp("plan")
    small = {"steps": 20, "batch_size": 16, "warmup": 5, "eval_every": -1, "ckpt_every": 10, "log_every": 10,
             "progress": False, "precision": "fp32"}
    cfg = build(PlanConfig, {
        "name": "p", "out_dir": str(tmp), "maze": {"rooms": 2, "room": 2, "max_moves": 8},
        "data": {"train_layouts": 15, "episodes_per_layout": 10, "test_layouts": 4, "val_layouts": 2}, "seeds": [0],
        "flat": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
        "ladder": {"chunk": 4, "compressor": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "latent_layers": 1,
                                              "dec_layers": 1, "quantizer": {"codebook_size": 1024}},
                   "compressor_train": small, "prior": {"d_model": 32, "n_heads": 2, "n_layers": 1},
                   "prior_train": small},
        "value": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
        "subgoal": {"model": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "train": small},
        "contenders": ["flat", "ladder", "subgoal", "rooms", "doors"],
        "search": {"budgets": [1, 2], "scorers": ["likelihood", "verifier", "value", "value+verifier"]},
        "match_flops": True,
        "segments": {"methods": ["learned", "entropy"], "model": {"d_model": 32, "n_heads": 2}, "train": small,
                     "entropy_lm_train": small},
    })
    logs = []
    return cfg, run_plan_experiment(cfg, log=logs.append), logs


def test_both_contenders_train_and_respect_budgets(tiny_plan):
    cfg, res, logs = tiny_plan
    assert res["layout_overlap"] == 0
    # every contender's options were searched on the validation tasks too, and a choice was made from them
    assert res["val_tasks"] > 0 and all(r["split"] == "val" for r in res["val_rows"])
    assert set(res["chosen"]) == set(cfg.contenders) and "Chosen on validation" in (cfg.dir / "results.md").read_text()
    rows = res["rows"]
    assert {r["contender"] for r in rows} == {"flat", "ladder", "subgoal", "rooms", "doors"}
    assert len(rows) == 5 * 2 * 4 * 2
    # a charged scorer (the learned value) cannot afford a 1x budget for the flat beam: said, not run
    assert any(r.get("unaffordable") and r["scorer"].startswith("value") and r["budget_x"] == 1 for r in rows)
    expanders = ("subgoal", "rooms", "doors")
    assert not any(r.get("unaffordable") for r in rows
                   if not r["scorer"].startswith("value") and r["contender"] not in expanders)
    # the subgoal, rooms and doors planners pay `chunk` per expanded code: a 1x budget cannot expand a whole plan
    assert all(r.get("unaffordable") for r in rows if r["contender"] in expanders and r["budget_x"] == 1)
    for r in rows:
        if r.get("unaffordable"):
            continue
        assert r["max_evals"] <= r["budget"]
        assert 0 <= r["success"] <= r["validity"] <= 1
        assert len(r["per_task"]) == res["tasks"]
    assert (cfg.dir / "success_vs_budget.png").is_file() and (cfg.dir / "success_vs_length.png").is_file()
    md = (cfg.dir / "results.md").read_text()
    assert "| ladder | beam | verifier | 2x |" in md and "| flat | beam | value | 2x |" in md
    assert "unaffordable" in md and "Training compute (FLOPs, counted" in md
    meta = res["meta"][0] if 0 in res["meta"] else res["meta"]["0"]
    assert set(meta["train_flops"]) == {"flat", "ladder_compressor", "ladder_prior", "subgoal_decoder", "value",
                                        "rooms_compressor", "rooms_prior", "rooms_decoder", "doors_prior",
                                        "doors_decoder"}
    assert all(v > 0 for v in meta["train_flops"].values())
    f = meta["train_flops"]  # match_flops: the flat planner's steps bought with the ladder's counted FLOPs
    assert f["flat"] == pytest.approx(f["ladder_compressor"] + f["ladder_prior"], rel=0.1)
    dg = meta["diagnostics"]
    assert 0 <= dg["ladder_code_exact"] <= 1 and 0 <= dg["subgoal_code_exact"] <= 1
    assert dg["value_mae"] >= 0 and -1 <= dg["value_spearman"] <= 1 and "moves-to-go error" in md
    for k in ("rooms", "doors"):
        assert dg[f"{k}_segments"] >= 1 and all(0 <= dg[f"{k}_{m}"] <= 1 for m in ("seg_exact", "plan_exact", "plan_success", "prior_acc"))
        assert dg[f"{k}_plan_success"] >= dg[f"{k}_plan_exact"]
    assert "Rooms contender on the same plans" in md and "rooms: compressor + prior + decoder" in md
    assert "Doors contender on the same plans" in md and "doors: prior + decoder" in md
    # the doors decoder learns from the optimal demonstrations only (the default), in a directory named so
    assert meta["params"]["doors_decoder_demos"] == int((np.load(cfg.dir / "data.npz")["train_buckets"] == 3).sum()) > 0
    assert (cfg.dir / "seed0" / "doors_decoder_b3").is_dir() and not (cfg.dir / "seed0" / "doors_decoder").exists()
    b = meta["boundaries"]
    assert b["crossings"] > 0 and all(0 <= b[k] <= 1 for k in ("fixed", "entropy", "chance"))
    seg = meta["segments"]  # variable-length codes of moves, both boundary methods, measured on the same plans
    assert set(seg) == {"learned", "entropy"} and "Variable-length codes of moves" in md
    assert all(v["crossings"] == b["crossings"] and 0 <= v["hit"] <= 1 and v["segments_per_plan"] >= 1 for v in seg.values())


def test_plan_cli_shows_an_episode(tiny_plan, capsys):
    from vqladder.cli import main

    cfg, _, _ = tiny_plan
    assert main(["plan", str(cfg.dir), "--task", "0", "--contender", "ladder", "--scorer", "verifier"]) == 0
    out = capsys.readouterr().out
    assert "plan codes" in out and "valid=" in out and "#" in out and "code boundary" in out
    assert main(["plan", str(cfg.dir), "--task", "1", "--scorer", "value+verifier", "--budget", "4"]) == 0
    assert "evaluations=" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--task", "0", "--contender", "subgoal", "--scorer", "verifier", "--budget", "8"]) == 0
    assert "code boundary" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--task", "0", "--contender", "rooms", "--scorer", "verifier", "--budget", "8"]) == 0
    assert "valid=" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--task", "1", "--contender", "doors", "--method", "sample", "--budget", "16"]) == 0
    assert "valid=" in capsys.readouterr().out
    assert main(["plan", str(cfg.dir), "--goal", "7,7"]) == 2
    assert "outside" in capsys.readouterr().err
    assert main(["plan", str(cfg.dir), "--budget", "0"]) == 2
    assert main(["plan", str(cfg.dir), "--doors=-1,-1,-1,-1", "--start", "0,0", "--goal", "3,3"]) == 2
    assert "no path" in capsys.readouterr().err


def test_example_episodes_follow_their_moves(tiny_plan):
    """episodes.json (for the report): both contenders on the same held-out tasks, the walked cells are the
    moves' cells from the start, and the ladder's codes begin every `chunk` moves."""
    import json

    from vqladder.planning.maze import DELTA, MOVES

    cfg, _, _ = tiny_plan
    eps = json.loads((cfg.dir / "episodes.json").read_text())
    assert len(eps) == 5 * min(cfg.search.examples, 4)
    assert {e["contender"] for e in eps} == {"flat", "ladder", "subgoal", "rooms", "doors"}
    for e in eps:
        assert e["cells"][0] == e["start"] and e["evaluations"] <= e["budget"]
        for (r, c), (r2, c2), m in zip(e["cells"], e["cells"][1:], e["moves"]):
            assert (r + DELTA[MOVES.index(m)][0], c + DELTA[MOVES.index(m)][1]) == (r2, c2)
        assert e["reached"] == (e["valid"] and e["cells"][-1] == e["goal"]) or not e["valid"]
        if e["contender"] in ("rooms", "doors"):  # a code per expanded segment: starts increase from 0, at most `chunk` apart
            st = e["code_starts"]
            assert st[0] == 0 and all(0 < b - a <= cfg.ladder.chunk for a, b in zip(st, st[1:]))
            continue
        step = 1 if e["contender"] == "flat" else cfg.ladder.chunk
        assert e["code_starts"] == list(range(0, cfg.maze.max_moves, step))


def test_subgoal_rows_and_planner_charge_every_expansion():
    """Subgoal rows carry the cell where each chunk begins and the chunk's code; the planner charges `chunk`
    evaluations per code it expands (cached by code prefix) on top of the prior's steps."""
    from vqladder.models import CodePrior, PriorConfig
    from vqladder.planning.planners import SubgoalPlanner, Verifier, subgoal_rows

    cfg = MazeConfig(rooms=2, room=2, max_moves=8)
    codec = EpisodeCodec(cfg)
    lay = make_layout(cfg, np.random.default_rng(0))
    start, goal = (0, 0), (3, 3)
    path = lay.shortest_path(start, goal)
    cond = codec.cond(lay, start, goal, 3)
    moves = codec.moves(path)
    rows = subgoal_rows(codec, cond[None], moves[None], np.array([[7, 9]]), 4)
    n = cfg.n_walls
    assert rows.shape == (2, codec.cond_len + 4)
    assert rows[0, n + 2] == codec.cond_vocab + 7 and rows[1, n + 2] == codec.cond_vocab + 9
    u = start
    for m in path[:4]:
        u = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
    assert rows[1, n] == codec.cell_base + u[0] * cfg.side + u[1]
    assert rows[1, codec.cond_len:].tolist() == moves[4:8].tolist()
    torch.manual_seed(0)
    prior = CodePrior(PriorConfig(vocab_size=16, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, context=2,
                                  d_model=16, n_heads=2, n_layers=1))
    low = CodePrior(PriorConfig(vocab_size=5, cond_vocab=codec.cond_vocab + 16, cond_len=codec.cond_len, context=4,
                                d_model=16, n_heads=2, n_layers=1))
    pl = SubgoalPlanner(prior, low, codec, 8, 4)
    mv, used = pl.plan(cond, "sample", None, budget=30)
    assert used == (30 // 10) * 10 and mv.shape == (8,)  # per sample: 2 prior steps + 2 codes x 4 moves
    mv, used = pl.plan(cond, "beam", None, budget=20)
    assert used <= 20 and used >= 2 + 8
    with pytest.raises(VQLadderError, match="budget"):
        pl.plan(cond, "beam", Verifier(lay, start, goal), budget=8)


def test_room_crossings_and_boundary_hits_on_a_planted_episode():
    """2x2 rooms of 3x3 cells: going right along row 0 from (0,0) to (0,5) leaves room (0,0) on move 2 (the move
    from column 2 to column 3); chunks of 4 start at moves 0 and 4, so they miss it; a boundary at move 3 hits."""
    from vqladder.planning.evaluate import boundary_hits, room_crossings

    path = [R] * 5
    assert room_crossings((0, 0), path, 3) == [2]
    assert room_crossings((0, 0), [D, D, D, R], 3) == [2]  # down across the horizontal wall
    assert boundary_hits([2], {0, 4}) == [False]
    assert boundary_hits([2], {0, 3}) == [True] and boundary_hits([2], {2}) == [True]


def test_segment_boundaries_on_a_planted_episode():
    """Variable-length codes against the maze: the only shortest plan from (0,0) to (0,3) is R R R, which
    crosses from room (0,0) into room (0,1) on move 1. A segmenter that starts segments at moves 0 and 2 hits the
    crossing; one with a single segment misses it; chance is drawn at each segmenter's own count of starts."""
    from types import SimpleNamespace

    from vqladder.planning.evaluate import segment_alignment
    from vqladder.planning.maze import EpisodeCodec

    class Seg(torch.nn.Module):
        def __init__(self, at):
            super().__init__()
            self.at = at

        def forward(self, moves):
            starts = torch.zeros(moves.shape, dtype=torch.bool)
            starts[:, self.at] = True
            return torch.nn.functional.one_hot(moves, 5).float(), SimpleNamespace(starts=starts)

    lay = _two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    assert lay.shortest_path((0, 0), (0, 3)) == [R, R, R]
    cond = codec.cond(lay, (0, 0), (0, 3), 3)[None]
    res = segment_alignment({"two": Seg([0, 2]), "one": Seg([0])}, cond, codec, room=2)
    assert res["two"]["crossings"] == 1 and res["two"]["hit"] == 1.0 and res["one"]["hit"] == 0.0
    assert res["two"]["segments_per_plan"] == 2 and res["two"]["moves_per_segment"] == 1.5
    # chance keeps move 0 as a start and draws the rest from moves 1..2: one start never hits, two always do
    assert res["one"]["chance"] == 0.0 and res["two"]["chance"] == pytest.approx(1.0) and res["two"]["plan_exact"] == 1.0


def test_added_budgets_and_contenders_evaluate_only_what_is_missing(tiny_plan):
    """Re-running an experiment with a larger budget list trains nothing and evaluates only the new budget."""
    from dataclasses import replace

    from vqladder.planning.recipe import run_plan_experiment

    cfg, res, _ = tiny_plan
    logs = []
    more = replace(cfg, search=replace(cfg.search, budgets=[1, 2, 4]))
    res2 = run_plan_experiment(more, log=logs.append)
    assert not any("training" in line for line in logs)
    evaluated = [line for line in logs if "budget" in line and "x:" in line]
    assert evaluated and all(" 4x:" in line for line in evaluated)
    assert len(res2["rows"]) == len(res["rows"]) * 3 // 2
    def key(r):
        return r["contender"], r["method"], r["scorer"], r["budget_x"], r.get("success"), r.get("per_task")
    assert [key(r) for r in res2["rows"] if r["budget_x"] < 4] == [key(r) for r in res["rows"]]
    run_plan_experiment(cfg, log=logs.append)  # back to the fixture's budgets, for the tests after this one


def test_room_segments_on_a_planted_episode():
    """R R R from (0,0) to (0,3) in 2x2 rooms of 2x2 cells enters room (0,1) on move 1: segments R R | R, then
    the "plan ends" segment; each starts where the last ended. A longer room walk is cut at seg_len moves."""
    from vqladder.planning.planners import DOOR_END, DOOR_GOAL, door_codes, room_segments, segment_rows

    lay = _two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    cond = codec.cond(lay, (0, 0), (0, 3), 3)[None]
    segs, cells, used, exits = room_segments(codec, cond, codec.moves([R, R, R])[None], 4, 4)
    assert used.tolist() == [2] and exits[0].tolist() == [R, -1, -1, -1]
    assert segs[0, 0].tolist() == [R, R, END, END] and segs[0, 1].tolist() == [R, END, END, END]
    assert (segs[0, 2:] == END).all()
    assert cells[0, :3].tolist() == [[0, 0], [0, 2], [0, 3]]
    assert door_codes(exits, used)[0].tolist() == [R, DOOR_GOAL, DOOR_END, DOOR_END]
    segs, cells, used, exits = room_segments(codec, cond, codec.moves([R, R, R])[None], 1, 4)  # one move each
    assert used.tolist() == [3] and segs[0, :3, 0].tolist() == [R, R, R] and cells[0, 1].tolist() == [0, 1]
    # the room's first piece carries the door its room is left by, as the piece that leaves it does
    assert exits[0].tolist() == [-1, R, -1, -1] and door_codes(exits, used)[0].tolist() == [R, R, DOOR_GOAL, DOOR_END]
    segs, _, used, _ = room_segments(codec, cond, codec.moves([R, R, R])[None], 4, 2)  # no room for "plan ends"
    assert used.tolist() == [2]
    rows = segment_rows(codec, cond, *room_segments(codec, cond, codec.moves([R, R, R])[None], 4, 4)[:2],
                        np.array([[5, 6, 7, 7]]), np.array([2]))
    n = lay.cfg.n_walls
    assert rows.shape == (3, codec.cond_len + 4)  # two segments with moves + "plan ends"
    assert rows[:, n + 2].tolist() == [codec.cond_vocab + 5, codec.cond_vocab + 6, codec.cond_vocab + 7]
    assert rows[1, n] == codec.cell_base + 0 * lay.cfg.side + 2 and (rows[2, codec.cond_len:] == END).all()


def test_segment_planner_strips_padding_ends_plans_and_charges_every_expansion():
    """In segments mode a code's expansion stops at END, an expansion with no moves ends the plan (later codes
    are not expanded, not charged), each expansion is charged `chunk` evaluations, and code_starts mark where
    each segment begins."""
    from vqladder.planning.planners import SubgoalPlanner

    lay = _two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    n = lay.cfg.n_walls
    script = {0: [R, R, END, END], 1: [R, END, END, END], 2: [END] * 4}

    class Low:  # emits the planted moves of the code in its prefix
        def step_fn(self, row):
            code = int(row[n + 2]) - codec.cond_vocab

            def fn(seq):
                out = torch.full((len(seq), 5), -9.0)
                out[:, script[code][seq.shape[1]]] = 0.0
                return out
            return fn

    pl = SubgoalPlanner(None, Low(), codec, 8, 4, segments=True)
    cond = codec.cond(lay, (0, 0), (0, 3), 3)
    moves, spent = pl._expand(cond, torch.tensor([[0, 1, 2, 0]]), {})
    assert moves[0].tolist() == [R, R, R] + [END] * 5 and spent == 3 * 4 and pl.code_starts == [0, 2]
    cache = {}
    pl._expand(cond, torch.tensor([[0, 1]]), cache)
    _, spent = pl._expand(cond, torch.tensor([[0, 1], [0, 2]]), cache)
    assert spent == 4  # only the new code's expansion: (0, 2)


@pytest.mark.parametrize("preset", ["plan_cpu", "plan_4x4", "plan_6x6"])
def test_every_preset_holds_out_layouts_never_seen_in_training(preset):
    """Each shipped planning preset's maze: held-out tasks come from layouts disjoint from the training ones,
    and every held-out task's shortest plan fits its max_moves (fewer layouts than the preset, same maze)."""
    from pathlib import Path

    from vqladder.config import load_config
    from vqladder.planning.maze import plan_tasks
    from vqladder.planning.recipe import PlanConfig

    cfg = load_config(PlanConfig, Path(__file__).parent.parent / "configs" / f"{preset}.yaml")
    d = plan_tasks(cfg.maze, 200, 2, 30, cfg.data.seed)
    assert len(d["test_cond"]) > 0 and not set(d["test_keys"].tolist()) & set(d["train_keys"].tolist())
    codec = EpisodeCodec(cfg.maze)
    for c in d["test_cond"]:
        lay, s, g, b = codec.decode_cond(c)
        assert b == 3 and 0 < validate(lay, s, g, []).shortest <= cfg.maze.max_moves


def test_a_changed_maze_is_refused_not_reused(tmp_path):
    """The demonstrations and tasks (data.npz) of an experiment directory are never reused under another maze or
    data config: the rerun is refused in one line before anything is written."""
    from vqladder.config import build
    from vqladder.planning.recipe import PlanConfig, open_plan_dir

    cfg = build(PlanConfig, {"out_dir": str(tmp_path), "name": "p"})
    open_plan_dir(build(PlanConfig, {"out_dir": str(tmp_path), "name": "p", "maze": {"rooms": 4}}))  # no data yet
    open_plan_dir(cfg)                                                                              # may change
    (cfg.dir / "data.npz").write_bytes(b"")
    open_plan_dir(cfg)  # the same config passes
    open_plan_dir(build(PlanConfig, {"out_dir": str(tmp_path), "name": "p", "search": {"budgets": [2]}}))  # eval-only
    with pytest.raises(VQLadderError, match="maze.rooms"):
        open_plan_dir(build(PlanConfig, {"out_dir": str(tmp_path), "name": "p", "maze": {"rooms": 4}}))
    assert (cfg.dir / "config.yaml").is_file() and not (cfg.dir / "plan.yaml").exists()


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


def test_choices_are_read_from_validation_only():
    """Planted rows: on validation the verifier wins, on test the likelihood scorer does; the choice is the
    verifier, and the report's validated table shows the verifier's test success, not the better test option."""
    from vqladder.planning.evaluate import choose_on_validation
    from vqladder.planning.report import _agg, _chosen_lines, length_bins

    def row(split_success, scorer, seed, evals=10.0):
        return {"seed": seed, "contender": "flat", "method": "beam", "scorer": scorer, "budget_x": 4,
                "success": split_success, "mean_evals": evals, "per_task": [[5, True], [9, False]]}

    val = [row(0.8, "verifier", s) for s in (0, 1)] + [row(0.3, "likelihood", s) for s in (0, 1)]
    test = [row(0.4, "verifier", s) for s in (0, 1)] + [row(0.9, "likelihood", s) for s in (0, 1)]
    chosen = choose_on_validation(val)
    assert chosen == {"flat": {"4": {"method": "beam", "scorer": "verifier", "val_success": 0.8}}}
    res = {"rows": test, "chosen": chosen, "val_tasks": 20}
    text = "\n".join(_chosen_lines(res, _agg(test)))
    assert "| flat | 4x | beam | verifier | 0.80 | 0.40 ± 0.00 |" in text
    assert {b["scorer"] for b in length_bins(res)} == {"verifier"}            # the length table follows the choice
    assert {b["scorer"] for b in length_bins({"rows": test})} == {"likelihood"}  # without validation: best on test
    assert "chosen on the test tasks" in "\n".join(_chosen_lines({"rows": test}, _agg(test)))
    tie = [row(0.5, "verifier", 0, evals=30.0), row(0.5, "likelihood", 0, evals=12.0)]
    assert choose_on_validation(tie)["flat"]["4"]["scorer"] == "likelihood"    # a tie goes to fewer evaluations
