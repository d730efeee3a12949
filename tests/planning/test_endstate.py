"""``vqladder.planning.endstate``: codes that name where a room segment leads, learned by a quantised encoder of the
segment's end state; the rate model conditioned on the task; a segment decoder that walks to the code's cell."""

import numpy as np
import pytest
import torch
from helpers import two_rooms

from vqladder.config import derive
from vqladder.errors import VQLadderError
from vqladder.planning.endstate import EndStateCoder, EndStateConfig, endstate_codes, endstate_rows, walk_ends
from vqladder.planning.maze import END, EpisodeCodec, MazeConfig, plan_tasks
from vqladder.planning.planners import room_segments, segment_rows

U, D, L, R = 0, 1, 2, 3


def test_walk_ends_and_rows_on_a_planted_episode():
    """R R R from (0,0) to (0,3), door at row 0: the first room's walk ends in (0,2), the last room's at the plan's
    end (0,3); with one move per segment the first piece carries its room's end too (as a door code does)."""
    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    cond = codec.cond(lay, (0, 0), (0, 3), 3)[None]
    segs, cells, used, exits = room_segments(codec, cond, codec.moves([R, R, R])[None], 4, 4)
    assert walk_ends(segs, cells, used, exits)[0].tolist() == [[0, 2], [0, 3], [0, 3], [0, 3]]
    segs1, cells1, used1, exits1 = room_segments(codec, cond, codec.moves([R, R, R])[None], 1, 4)
    assert walk_ends(segs1, cells1, used1, exits1)[0, :3].tolist() == [[0, 2], [0, 2], [0, 3]]
    rows, held = endstate_rows(codec, cond, segs, cells, used, exits)
    W, n, c = lay.cfg.side, lay.cfg.n_walls, codec.cond_len
    span = 2 * W - 1
    assert held[0].tolist() == [True, True, False, False] and rows.shape == (1, 4, c + 3)
    # the context is the task's with the start replaced by the segment's start cell; goal and bucket kept
    assert rows[0, 1, n] == codec.cell_base + 0 * W + 2 and (rows[0, :, n + 1:c] == cond[0, n + 1:]).all()
    assert (rows[0, :, :n] == cond[0, :n]).all()
    # the start's place in its room (2x2 cells), the displacement (end - start) and the end cell
    assert rows[0, 0, c] == 0 and rows[0, 1, c] == 0 * 2 + 0      # (0,0) and (0,2): both a room's top-left cell
    assert rows[0, 0, c + 1] == (0 + W - 1) * span + (2 + W - 1) and rows[0, 0, c + 2] == 0 * W + 2
    assert rows[0, 1, c + 1] == (W - 1) * span + (1 + W - 1) and rows[0, 1, c + 2] == 3


def test_codes_are_a_function_of_where_the_segment_leads():
    """Two walks from (1,0) through the door at row 0 into (0,2) by different moves (U R R | R and R U R | R)
    get the same first code: the coder sees where a segment leads, never the moves; the "plan ends" code is K."""
    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    cond = np.stack([codec.cond(lay, (1, 0), (0, 3), 3)] * 2)
    moves = np.stack([codec.moves([U, R, R, R]), codec.moves([R, U, R, R])])
    segs, cells, used, exits = room_segments(codec, cond, moves, 4, 4)
    assert (segs[0, 0] != segs[1, 0]).any()
    W = lay.cfg.side
    coder = EndStateCoder(EndStateConfig(d_model=32, n_heads=2, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len,
                                         cells=W * W, span=2 * W - 1, room=2, levels=[3, 3]))
    codes = endstate_codes(coder, *endstate_rows(codec, cond, segs, cells, used, exits))
    assert codes[0].tolist() == codes[1].tolist()
    assert codes[0, 2:].tolist() == [9, 9] and codes[0, :2].max() < 9


def test_the_coder_checks_its_rows():
    coder = EndStateCoder(EndStateConfig(d_model=32, n_heads=2, cond_vocab=10, cond_len=3, cells=16, span=7, room=2))
    with pytest.raises(VQLadderError, match="rows of 6"):
        coder.encode(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(VQLadderError, match="end cell symbol out of range"):
        coder.encode(torch.tensor([[1, 2, 3, 0, 0, 16]]))
    with pytest.raises(VQLadderError, match="place in the room symbol out of range"):
        coder.encode(torch.tensor([[1, 2, 3, 4, 0, 0]]))
    with pytest.raises(VQLadderError, match="must be set"):
        EndStateCoder(EndStateConfig(d_model=32, n_heads=2))


def _train(model, rows, steps, lr=3e-3, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        b = rows[torch.randint(len(rows), (64,), generator=g)]
        loss, _ = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@pytest.fixture(scope="module")
def small_maze():
    """2x2 rooms of 2x2 cells: demonstrations on 40 layouts, their room segments and end-state rows."""
    cfg = MazeConfig(rooms=2, room=2, max_moves=8)
    codec = EpisodeCodec(cfg)
    data = plan_tasks(cfg, 40, 8, 4, 0)
    segs, cells, used, exits = room_segments(codec, data["train_cond"], data["train_moves"], 4, 2)
    rows, held = endstate_rows(codec, data["train_cond"], segs, cells, used, exits)
    W = cfg.side
    ec = EndStateConfig(d_model=32, n_heads=2, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, cells=W * W,
                        span=2 * W - 1, room=2)  # the default coder: relative, 256 codes
    torch.manual_seed(0)
    coder = _train(EndStateCoder(ec), torch.from_numpy(rows[held]), 300)
    return codec, data, (segs, cells, used, exits), rows, held, coder


def test_a_trained_coder_names_the_end_cell(small_maze):
    """Trained on the demonstrations' segments, a code and its context give back the cell the room walk ends in
    (the decoder never sees the displacement or the end)."""
    codec, data, (segs, cells, used, exits), rows, held, coder = small_maze
    r = torch.from_numpy(rows[held])
    codes = coder.encode(r)
    c = codec.cond_len
    acc = float((coder.decode(r[:, :c], codes).argmax(-1) == r[:, c + 2]).float().mean())
    # a decoder that ignored the code would be right about as often as the most common end cell
    base = float(np.mean(r[:, c + 2].numpy() == np.bincount(r[:, c + 2].numpy()).argmax()))
    assert acc > 0.9 > base + 0.3


def test_the_segment_decoder_walks_to_the_codes_cell(small_maze):
    """The low level as a goal-reaching policy: trained on segments relabelled with the codes of where they led,
    from the true code it reaches the code's end cell far more often than from another segment's code."""
    from vqladder.models import CodePrior, PriorConfig
    from vqladder.models.sampling import greedy
    from vqladder.planning.planners import replay, subgoal_cond

    codec, data, (segs, cells, used, exits), rows, held, coder = small_maze
    K = coder.codebook_size + 1
    codes = endstate_codes(coder, rows, held)
    keep = data["train_buckets"] == 3
    seg_rows = segment_rows(codec, data["train_cond"][keep], segs[keep], cells[keep], codes[keep], used[keep])
    pc = PriorConfig(d_model=32, n_heads=2, n_layers=2, vocab_size=codec.move_vocab, cond_vocab=codec.cond_vocab + K,
                     cond_len=codec.cond_len, context=4)
    torch.manual_seed(0)
    low = _train(CodePrior(pc), torch.from_numpy(seg_rows), 400)
    W = codec.cfg.side
    hit, wrong = [], []
    idx = np.argwhere(held & keep[:, None])[:150]
    rng = np.random.default_rng(0)
    for e, j in idx:
        lay, _, _, _ = codec.decode_cond(data["train_cond"][e])
        end = divmod(int(rows[e, j, -1]), W)
        for code, out in ((codes[e, j], hit), (rng.integers(coder.codebook_size), wrong)):
            row = torch.from_numpy(subgoal_cond(codec, data["train_cond"][e], tuple(cells[e, j]), int(code)))
            mv = greedy(low.step_fn(row), 1, 4)[0].tolist()
            mv = mv[:mv.index(END)] if END in mv else mv
            # a room walk longer than a segment reaches its end over several pieces: count the next piece's start
            u = replay(lay, tuple(cells[e, j]), mv)
            out.append(u == end or (j + 1 < used[e] and u == tuple(cells[e, j + 1]) and code == codes[e, j]))
    assert np.mean(hit) > 0.8 and np.mean(hit) > np.mean(wrong) + 0.3


def test_the_rate_model_hears_its_context():
    """``CodeRateModel`` with a conditioning vector: on codes that are a function of the context, the codes cost
    far fewer nats with the context than without it (the rate term of a goal-conditioned level above)."""
    from vqladder.models.rate import CodeRateModel

    torch.manual_seed(0)
    ctx_emb = torch.nn.Embedding(8, 32)
    cls = torch.randint(8, (512,))
    levels = torch.stack([cls % 4, cls // 4], -1)[:, None]            # [b, 1, 2]: a function of the class
    out = {}
    for use in (False, True):
        torch.manual_seed(1)
        m = CodeRateModel([4, 2], 1, 32, 1)
        opt = torch.optim.AdamW([*m.parameters(), *ctx_emb.parameters()], lr=1e-2)
        for _ in range(150):
            nats, _ = m(levels.float(), context=ctx_emb(cls) if use else None)
            opt.zero_grad()
            (nats / len(cls)).backward()
            opt.step()
        out[use] = float(m.code_nats(levels, context=ctx_emb(cls) if use else None).mean())
    assert out[False] > np.log(8) - 0.1 and out[True] < 0.3


def test_an_endstate_coder_with_a_rate_term_reports_bits():
    lay = two_rooms(door=0)
    codec = EpisodeCodec(lay.cfg)
    W = lay.cfg.side
    ec = EndStateConfig(d_model=32, n_heads=2, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, cells=W * W,
                        span=2 * W - 1, room=2, rate_weight=0.5)
    coder = EndStateCoder(ec)
    cond = codec.cond(lay, (0, 0), (0, 3), 3)[None]
    segs, cells, used, exits = room_segments(codec, cond, codec.moves([R, R, R])[None], 4, 4)
    rows, held = endstate_rows(codec, cond, segs, cells, used, exits)
    r = torch.from_numpy(rows[held])
    loss, stats = coder.loss(r)
    assert torch.isfinite(loss) and "rate_bits" in stats
    bits = coder.rate_bits(r[:, :codec.cond_len], coder.encode(r))
    assert bits.shape == (len(r),) and (bits > 0).all()
    # without the rate term the rate model still measures (and the coder's own weights never hear it)
    assert EndStateCoder(derive(ec, rate_weight=0.0)).rate_bits(r[:, :codec.cond_len], coder.encode(r)).shape == (len(r),)


def test_a_relative_coder_ignores_the_task():
    """``encoder_sees: relative``: the code is a function of the start's place in its room and the displacement
    alone, so the same move from the same spot gets the same code in another layout; an unknown choice is refused."""
    lay, other = two_rooms(door=0), two_rooms(door=0)
    other.doors[1] = 1  # another layout: one more door open
    codec = EpisodeCodec(lay.cfg)
    W = lay.cfg.side
    ec = EndStateConfig(d_model=32, n_heads=2, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, cells=W * W,
                        span=2 * W - 1, room=2, encoder_sees="relative")
    coder = EndStateCoder(ec)
    got = []
    for la, goal in ((lay, (0, 3)), (other, (1, 3))):
        cond = codec.cond(la, (0, 0), goal, 3)[None]
        rows, held = endstate_rows(codec, cond, *room_segments(codec, cond, codec.moves([R, R])[None], 4, 4))
        assert rows[0, 0, -1] == 2  # both walks end in (0,2)
        got.append(int(endstate_codes(coder, rows, held)[0, 0]))
    assert got[0] == got[1]
    with pytest.raises(VQLadderError, match="encoder_sees must be relative or full"):
        EndStateConfig(encoder_sees="moves").validate()
