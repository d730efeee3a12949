"""``vqladder.planning.evaluate``: boundary alignment and the choice made on validation only."""

import pytest
import torch
from helpers import two_rooms

from vqladder.planning.maze import (
    EpisodeCodec,
)

U, D, L, R = 0, 1, 2, 3


def test_segment_boundaries_on_a_planted_episode():
    """Variable-length codes against the maze: the only shortest plan from (0,0) to (0,3) is R R R, which
    crosses from room (0,0) into room (0,1) on move 1. A segmenter that starts segments at moves 0 and 2 hits the
    crossing; one with a single segment misses it; chance is drawn at each segmenter's own count of starts."""
    from types import SimpleNamespace

    from vqladder.planning.evaluate import segment_alignment

    class Seg(torch.nn.Module):
        def __init__(self, at):
            super().__init__()
            self.at = at

        def forward(self, moves):
            starts = torch.zeros(moves.shape, dtype=torch.bool)
            starts[:, self.at] = True
            return torch.nn.functional.one_hot(moves, 5).float(), SimpleNamespace(starts=starts)

    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    assert lay.shortest_path((0, 0), (0, 3)) == [R, R, R]
    cond = codec.cond(lay, (0, 0), (0, 3), 3)[None]
    res = segment_alignment({"two": Seg([0, 2]), "one": Seg([0])}, cond, codec, room=2)
    assert res["two"]["crossings"] == 1 and res["two"]["hit"] == 1.0 and res["one"]["hit"] == 0.0
    assert res["two"]["segments_per_plan"] == 2 and res["two"]["moves_per_segment"] == 1.5
    # chance keeps move 0 as a start and draws the rest from moves 1..2: one start never hits, two always do
    assert res["one"]["chance"] == 0.0 and res["two"]["chance"] == pytest.approx(1.0) and res["two"]["plan_exact"] == 1.0


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



def test_search_tasks_gives_the_same_plans_however_many_tasks_are_batched():
    """The evaluation searches ``search.batch_tasks`` tasks at a time; the plans and evaluation counts do not
    depend on it, and task i's best-of-N draws are seeded by the seed and i (as ``plan`` alone draws them)."""
    import numpy as np

    from vqladder.config import derive
    from vqladder.models import CodePrior, PriorConfig
    from vqladder.planning.config import PlanConfig
    from vqladder.planning.evaluate import make_scorer, search_tasks
    from vqladder.planning.maze import MazeConfig, make_layout
    from vqladder.planning.planners import FlatPlanner

    maze = MazeConfig(rooms=2, room=2, max_moves=8)
    codec = EpisodeCodec(maze)
    rng = np.random.default_rng(0)
    tasks = np.stack([codec.cond(make_layout(maze, rng), (0, 0), (3, int(k % 4)), 3) for k in range(5)])
    torch.manual_seed(0)
    flat = FlatPlanner(CodePrior(PriorConfig(vocab_size=5, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len,
                                             context=8, d_model=16, n_heads=2, n_layers=1)), 8)
    base = PlanConfig(maze=maze)
    for method in ("beam", "sample"):
        got = {n: search_tasks(derive(base, search=derive(base.search, batch_tasks=n)), {"flat": flat}, "flat",
                               method, "verifier", 64, tasks, seed=3) for n in (1, 2, 5)}
        assert all(len(g) == 5 for g in got.values())
        for i, c in enumerate(tasks):
            alone = flat.plan(c, method, make_scorer("verifier", base, {}, c, *codec.decode_cond(c)[:3]), 64,
                              seed=3 * 100_003 + i)
            for n in (1, 2, 5):
                assert got[n][i][0].tolist() == alone[0].tolist() and got[n][i][1] == alone[1]
