"""``vqladder.planning.value``: moves-to-go targets."""

import numpy as np
import pytest
import torch

from vqladder.planning.maze import (
    END,
)

U, D, L, R = 0, 1, 2, 3


def test_value_targets_are_moves_to_go_and_zero_for_failures():
    from vqladder.planning.value import value_targets

    moves = np.array([[0, 1, 1, END, END], [2, 3, 2, 3, 2], [0, END, END, END, END]])
    to_go = value_targets(moves, np.array([True, True, False]), END)
    assert to_go.tolist() == [[3, 2, 1, 0, 0, 0], [5, 4, 3, 2, 1, 0], [-1] * 6]
    from vqladder.planning.value import PlanValue, ValueConfig

    v = PlanValue(ValueConfig(move_vocab=5, cond_vocab=4, cond_len=2, max_moves=5, gamma=0.5, d_model=16, n_heads=2,
                              n_layers=1))
    assert v.target(torch.from_numpy(to_go)).tolist()[0] == [0.125, 0.25, 0.5, 1.0, 1.0, 1.0]
    assert v.target(torch.from_numpy(to_go))[2].abs().sum() == 0



def test_rollout_rows_label_sampled_plans_by_the_maze():
    """A planted planner that always moves right: from (0,0) it reaches the goal (0,3) after 3 moves (the row is
    cut there, 3, 2, 1, 0 to go) and never reaches (1,3) (a bump: a failure, -1 throughout); every task is asked
    for the optimal bucket and rolled out ``per_task`` times."""
    from helpers import two_rooms

    from vqladder.planning.maze import EpisodeCodec
    from vqladder.planning.value import rollout_rows

    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    cond = np.stack([codec.cond(lay, (0, 0), (0, 3), 0), codec.cond(lay, (0, 0), (1, 3), 1)])

    class Right:
        def step_fn(self, c):
            assert c.shape == (4, codec.cond_len)  # one conditioning row per roll-out

            def fn(seq):
                out = torch.full((len(seq), 5), -20.0)
                out[:, R] = 20.0
                return out
            return fn

    rows, reached = rollout_rows(Right(), codec, cond, 8, 2, 1.0, seed=0)
    c, T = codec.cond_len, 8
    assert rows.shape == (4, c + T + T + 1) and reached == 0.5
    assert (rows[:, c - 1] == codec.bucket_base + 3).all()
    assert rows[0, c:c + T].tolist() == [R, R, R] + [END] * 5
    assert rows[0, c + T:].tolist() == [3, 2, 1, 0, 0, 0, 0, 0, 0]
    assert (rows[2:, c + T:] == -1).all() and rows[2, c:c + T].tolist() == [R] * 8


def test_rollout_rows_relabel_failures_to_where_they_got():
    """Hindsight relabelling: the always-right planner asked for (1,3) bumps after reaching (0,3): relabelled, the
    row is a success at reaching (0,3) in 3 moves; a roll-out that never leaves its start is dropped."""
    from helpers import two_rooms

    from vqladder.planning.maze import EpisodeCodec
    from vqladder.planning.value import rollout_rows

    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    cond = np.stack([codec.cond(lay, (0, 0), (1, 3), 1), codec.cond(lay, (0, 3), (1, 3), 1)])

    class Right:
        def step_fn(self, c):
            def fn(seq):
                out = torch.full((len(seq), 5), -20.0)
                out[:, R] = 20.0
                return out
            return fn

    rows, reached = rollout_rows(Right(), codec, cond, 8, 1, 1.0, seed=0, relabel=True)
    c, T, n, W = codec.cond_len, 8, lay.cfg.n_walls, lay.cfg.side
    assert reached == 0.0 and rows.shape == (1, c + T + T + 1)  # the second never moved: dropped
    assert rows[0, n + 1] == codec.cell_base + 0 * W + 3 and rows[0, n] == cond[0, n]
    assert rows[0, c:c + T].tolist() == [R, R, R] + [END] * 5 and rows[0, c + T:c + T + 4].tolist() == [3, 2, 1, 0]


@pytest.mark.parametrize("with_verifier", [False, True])
def test_value_scorers_of_many_tasks_score_in_one_call_as_each_alone(with_verifier):
    """Search over many tasks scores every candidate of every task with one value call (each row read with its
    task's conditioning and weight): the scores are the ones each task's ``ValueScorer`` gives its rows."""
    from vqladder.planning.maze import EpisodeCodec, MazeConfig, make_layout
    from vqladder.planning.planners import ValueScorer, Verifier, batched_scorer
    from vqladder.planning.value import PlanValue, ValueConfig

    cfg = MazeConfig(rooms=2, room=2, max_moves=8)
    codec = EpisodeCodec(cfg)
    v = PlanValue(ValueConfig(move_vocab=codec.move_vocab, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len,
                              max_moves=8, d_model=16, n_heads=2, n_layers=1)).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # a value that reads its conditioning (at initialisation its blocks are the identity)
        for p in v.parameters():
            p.normal_(0, 0.5)
    rng = np.random.default_rng(0)
    scorers = []
    for k in range(4):
        lay = make_layout(cfg, rng)
        s, g = (0, k % 4), (3, 3 - k % 4)
        scorers.append(ValueScorer(v, codec.cond(lay, s, g, 3), Verifier(lay, s, g) if with_verifier else None,
                                   weight=0.5 + k % 2))
    seqs = torch.from_numpy(rng.integers(0, 5, size=(12, 6)))
    owner = torch.arange(4).repeat_interleave(3)
    with torch.no_grad():
        got = batched_scorer(scorers)(seqs, owner)
        want = torch.cat([scorers[b](seqs[owner == b]) for b in range(4)])
    assert torch.allclose(got, want.float(), atol=1e-5, rtol=0)
    assert (want.view(4, 3).std(0) > 1e-3).any()  # the tasks' scores differ: a mixed-up task would show
