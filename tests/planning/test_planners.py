"""``vqladder.planning.planners``: budgets charged per evaluation, subgoal and segment planners, room segments."""

import numpy as np
import pytest
import torch
from helpers import two_rooms

from vqladder.errors import VQLadderError
from vqladder.models.sampling import beam_search
from vqladder.planning.maze import (
    DELTA,
    END,
    EpisodeCodec,
    MazeConfig,
    make_layout,
)

U, D, L, R = 0, 1, 2, 3


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


def test_room_segments_on_a_planted_episode():
    """R R R from (0,0) to (0,3) in 2x2 rooms of 2x2 cells enters room (0,1) on move 1: segments R R | R, then
    the "plan ends" segment; each starts where the last ended. A longer room walk is cut at seg_len moves."""
    from vqladder.planning.planners import DOOR_END, DOOR_GOAL, door_codes, room_segments, segment_rows

    lay = two_rooms(door=0)
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

    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    n = lay.cfg.n_walls
    script = {0: [R, R, END, END], 1: [R, END, END, END], 2: [END] * 4}

    class Low:  # emits the planted moves of the code in each row's prefix (one prefix per row, as CodePrior)
        def step_fn(self, rows):
            codes = (rows.view(-1, rows.shape[-1])[:, n + 2] - codec.cond_vocab).tolist()

            def fn(seq):
                out = torch.full((len(seq), 5), -9.0)
                out[torch.arange(len(seq)), [script[c][seq.shape[1]] for c in codes]] = 0.0
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



def test_closed_prior_rows_condition_each_suffix_on_where_it_begins():
    """R R R from (0,0) to (0,3) in 4-move segments: two segments with moves, then "plan ends". The closed-loop
    prior learns, from each segment's start cell, the codes left to send (padded with the end code)."""
    from vqladder.planning.planners import closed_prior_rows, room_segments

    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    cond = codec.cond(lay, (0, 0), (0, 3), 3)[None]
    _, cells, used, _ = room_segments(codec, cond, codec.moves([R, R, R])[None], 4, 4)
    rows = closed_prior_rows(codec, cond, cells, np.array([[5, 6, 7, 7]]), used, 7)
    n, c = lay.cfg.n_walls, codec.cond_len
    assert rows.shape == (3, c + 4)  # segments 0, 1 and the "plan ends" one
    assert rows[:, n].tolist() == [codec.cell_base + 0, codec.cell_base + 2, codec.cell_base + 3]
    assert rows[:, c:].tolist() == [[5, 6, 7, 7], [6, 7, 7, 7], [7, 7, 7, 7]]
    assert (rows[:, n + 1:c] == cond[0, n + 1:]).all() and (rows[:, :n] == cond[0, :n]).all()


def _closed_planner(seen):
    """A closed-loop segment planner over a planted policy: code 0 = one move right, 1 = one move down, 2 = the
    plan ends; the prior (a high-level policy) says "right" until the cell it is shown is in the goal's column."""
    from vqladder.planning.planners import SubgoalPlanner

    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    n, W = lay.cfg.n_walls, lay.cfg.side

    class Low:
        def step_fn(self, rows):
            codes = (rows.view(-1, rows.shape[-1])[:, n + 2] - codec.cond_vocab).tolist()

            def fn(seq):
                out = torch.full((len(seq), 5), -9.0)
                out[torch.arange(len(seq)), [{0: R, 1: D}.get(c, END) if seq.shape[1] == 0 else END for c in codes]] = 0.0
                return out
            return fn

    class Prior:
        class config:
            vocab_size = 3

        def __call__(self, codes, cond):
            assert codes.shape[1] == 0  # closed loop: no code history, only where the plan stands
            cell = cond[:, n] - codec.cell_base
            goal = cond[:, n + 1] - codec.cell_base
            seen.extend(cell.tolist())
            out = torch.full((len(cond), 1, 3), -5.0)
            out[:, 0, 0] = torch.where(cell % W < goal % W, 3.0, -5.0)
            out[:, 0, 2] = torch.where(cell % W < goal % W, -5.0, 3.0)
            return out

    return SubgoalPlanner(Prior(), Low(), codec, 8, 1, segments=True, closed_loop=True), codec, lay


@pytest.mark.parametrize("method", ["beam", "sample"])
@pytest.mark.parametrize("scored", [False, True])
def test_closed_loop_planner_reads_the_cell_it_reached_and_charges_every_expansion(method, scored):
    """The closed-loop top prior is asked from the cell the plan has reached: from (0,0) to (0,3) it is shown
    (0,0), (0,1), (0,2), (0,3) and the plan is R R R; after "plan ends" it may only send the end code; the
    search stays within its budget with every expansion charged."""
    from vqladder.planning.maze import validate
    from vqladder.planning.planners import Verifier

    seen = []
    pl, codec, lay = _closed_planner(seen)
    cond = codec.cond(lay, (0, 0), (0, 3), 3)
    scorer = Verifier(lay, (0, 0), (0, 3)) if scored else None
    budget = 8 * 8 * 2
    moves, used = pl.plan(cond, method, scorer, budget, seed=1)
    assert moves.tolist()[:3] == [R, R, R] and validate(lay, (0, 0), (0, 3), moves.tolist()).reached
    assert {0, 1, 2, 3} <= set(seen) and used <= budget
    with pytest.raises(VQLadderError, match="segment codes"):
        type(pl)(pl.prior, pl.low, codec, 8, 1, closed_loop=True)
    logits = pl.code_logits(cond, torch.tensor([0, 0, 0, 2]), [(0, 0), (0, 1), (0, 2), (0, 3)])
    assert logits.argmax(-1).tolist() == [0, 0, 0, 2]


@pytest.mark.parametrize("kind", ["flat", "ladder", "subgoal", "closed"])
def test_planners_search_many_tasks_at_once_as_each_would_alone(kind):
    """``beam_many`` / ``best_of_many`` (the evaluation's batched search over tasks) give every task the plan and
    the evaluation count ``plan`` gives it alone: beam and best-of-N, with and without the verifier."""
    from vqladder.models import CodePrior, CompressorConfig, PriorConfig, SequenceCompressor
    from vqladder.planning.planners import FlatPlanner, LadderPlanner, SubgoalPlanner, Verifier

    cfg = MazeConfig(rooms=2, room=2, max_moves=8)
    codec = EpisodeCodec(cfg)
    rng = np.random.default_rng(1)
    conds, verifiers = [], []
    for _ in range(5):
        lay = make_layout(cfg, rng)
        s, g = [tuple(int(x) for x in rng.integers(cfg.side, size=2)) for _ in range(2)]
        conds.append(codec.cond(lay, s, g, 3))
        verifiers.append(Verifier(lay, s, g))
    torch.manual_seed(0)

    def prior(vocab, cond_vocab, context):
        return CodePrior(PriorConfig(vocab_size=vocab, cond_vocab=cond_vocab, cond_len=codec.cond_len,
                                     context=context, d_model=16, n_heads=2, n_layers=1))
    if kind == "flat":
        pl = FlatPlanner(prior(5, codec.cond_vocab, 8), 8)
    elif kind == "ladder":
        comp = SequenceCompressor(CompressorConfig(vocab_size=5, in_len=8, out_len=2, d_model=16, n_heads=2,
                                                   enc_layers=1, latent_layers=1, dec_layers=1))
        pl = LadderPlanner(comp, prior(comp.quantizer.codebook_size, codec.cond_vocab, 2), 8, 4)
    else:
        class Low:  # planted: each row's moves from its code and the cell its chunk begins in (so tasks differ)
            def step_fn(self, rows):
                rows = rows.view(-1, rows.shape[-1])
                key = (rows[:, cfg.n_walls + 2] - codec.cond_vocab) * 7 + rows[:, cfg.n_walls] - codec.cell_base

                def fn(seq):
                    out = torch.zeros(len(seq), 5)
                    out[torch.arange(len(seq)), (key + seq.shape[1]) % 5] = 3.0
                    return out
                return fn
        if kind == "subgoal":
            pl = SubgoalPlanner(prior(16, codec.cond_vocab, 2), Low(), codec, 8, 4)
        else:
            pl = SubgoalPlanner(prior(6, codec.cond_vocab, 4), Low(), codec, 8, 2, segments=True, closed_loop=True)
    seeds = [11, 12, 13, 14, 15]
    plans = set()
    for method in ("beam", "sample"):
        for scorers in ([None] * 5, verifiers):
            if method == "beam":
                many = pl.beam_many(conds, scorers, 128)
            else:
                many = pl.best_of_many(conds, scorers, 128, 1.0, 1.0, seeds)
            for c, sc, seed, (moves, used) in zip(conds, scorers, seeds, many):
                alone, used_alone = pl.plan(c, method, sc, 128, seed=seed)
                assert moves.tolist() == alone.tolist() and used == used_alone <= 128
                plans.add((method, tuple(moves.tolist())))
    assert len(plans) > 3  # the tasks and searches give different plans: a mixed-up task would show
