"""``vqladder.quantize.qinco``: shapes and round trip, the fast candidate errors, beam against greedy, a planted
conditional codebook."""

import numpy as np
import pytest
import torch

from vqladder.errors import VQLadderError
from vqladder.quantize.qinco import QINCo, _Step


def _random_model(dim=16, stages=3, k=32, hidden=16, blocks=1, prefixes=None, seed=0, std=0.3):
    """Random weights; stage m's codebook at scale 0.6^m, as a residual quantiser's shrink."""
    torch.manual_seed(seed)
    q = QINCo(dim, stages, codebook_size=k, hidden=hidden, blocks=blocks, preselect=k, prefixes=prefixes)
    with torch.no_grad():
        for p in q.parameters():
            p.normal_(0, std)
        for m, st in enumerate(q.steps):
            st.codebook.normal_(0, 0.6 ** m)
    return q.eval()


@pytest.mark.parametrize("blocks,prefix", [(1, 16), (1, 8), (2, 16)])
def test_fast_candidate_errors_equal_the_codewords_errors(blocks, prefix):
    """The one-block shortcut (errors without d-wide codewords) is exact; so is the generic path."""
    torch.manual_seed(0)
    st = _Step(16, 32, 8, blocks, prefix)
    with torch.no_grad():
        for p in st.parameters():
            p.normal_(0, 0.3)
    res, x_hat = torch.randn(7, 3, 16), torch.randn(7, 3, 16)
    cand, err, word = st.candidates(res, x_hat, 32)
    words = st.implicit(st.linear_table()[cand], x_hat)
    assert torch.allclose(err, ((res[:, :, None, :] - words) ** 2).sum(-1), rtol=1e-4, atol=1e-3)
    j = torch.tensor([[0, 40, 95]] * 7)  # flat (beam, candidate) indices
    assert torch.allclose(word(j), words.reshape(7, 96, 16).gather(1, j[..., None].expand(-1, -1, 16)), atol=1e-5)


def test_shapes_round_trip_and_the_quantiser_interface():
    q = _random_model(prefixes=[4, 8, 16])
    x = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    codes = q.encode(x)
    assert codes.shape == (40, 3) and codes.dtype == np.uint8 and q.bits_per_code == 15
    z = (torch.from_numpy(x) - q.mean) / q.scale
    search_codes, x_hat, partial = q._search(z, 1, 32)
    assert (search_codes.numpy() == codes).all() and len(partial) == 3
    assert np.allclose(q.decode(codes), (x_hat * q.scale + q.mean).numpy(), atol=1e-4)  # decode = what was searched
    first = q.decode(codes[:, :1]) - q.mean.numpy()
    assert np.allclose(first[:, 4:], 0, atol=1e-6)  # stage 1 holds the first 4 dims only
    out = q(torch.from_numpy(x).reshape(4, 10, 16))
    assert out.z_q.shape == (4, 10, 16) and out.codes.shape == (4, 10, 3)
    assert torch.allclose(out.z_q.reshape(40, 16), torch.from_numpy(q.decode(codes)), atol=1e-4)
    with pytest.raises(VQLadderError, match="at most 3 stages"):
        q.decode_codes(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(VQLadderError, match="code out of range"):
        q.decode_codes(torch.full((2, 3), 32))
    with pytest.raises(VQLadderError, match="prefixes"):
        QINCo(16, 2, prefixes=[4, 32])


def test_beam_is_never_worse_than_greedy_on_a_planted_set():
    """Vectors decoded from random codes by the model itself (error 0 exists for every vector): a beam of 8 finds
    lower error than greedy on average and on most vectors, and the wider beam never raises the mean."""
    q = _random_model(dim=8, stages=4, k=16, hidden=8, std=0.1)
    true = torch.randint(0, 16, (400, 4), generator=torch.Generator().manual_seed(1))
    x = q.decode_codes(true).numpy()
    err = {b: ((q.decode(q.encode(x, beam=b, preselect=16)) - x) ** 2).sum(1) for b in (1, 2, 8)}
    assert err[8].mean() < 0.5 * err[1].mean()
    assert err[8].mean() <= err[2].mean() <= err[1].mean()
    assert (err[8] <= err[1] + 1e-5).mean() > 0.9


def test_training_finds_a_conditional_codebook_rq_cannot_hold():
    """Planted: 4 clusters, each with its own 8 offsets (32 second-stage words, 8 codewords a stage). RQ's
    fixed second codebook cannot hold them; an implicit codebook conditioned on the first stage can. Trained
    with Adam from the RQ init, held-out error falls well below RQ's (measured: 2.41 -> 0.5 in 200 steps)."""
    g = np.random.default_rng(0)
    centers, offsets = 4 * g.normal(size=(4, 8)), g.normal(size=(4, 8, 8))
    ci, oi = g.integers(0, 4, 3000), g.integers(0, 8, 3000)
    x = (centers[ci] + offsets[ci, oi] + 0.02 * g.normal(size=(3000, 8))).astype(np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is the faster
    request_restore = lambda: torch.set_num_threads(threads)
    torch.manual_seed(0)
    q = QINCo(8, 2, codebook_size=8, hidden=64, preselect=8, train_preselect=8)
    q.init_from_rq(x[:2500])
    mse = lambda: float(((q.decode(q.encode(x[2500:], beam=4)) - x[2500:]) ** 2).sum(1).mean())
    rq = mse()
    opt = torch.optim.Adam(q.parameters(), 1e-2)
    q.train()
    for i in range(200):
        loss, metrics = q.loss(torch.from_numpy(x[g.integers(0, 2500, 256)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    request_restore()
    assert set(metrics) == {"mse", "mse_first", "usage_first"}
    assert mse() < 0.5 * rq, (mse(), rq)



def test_the_loss_averages_the_error_after_the_listed_stage_counts():
    """``loss_stages``: the training loss is the mean error after those stage counts only (default: every stage),
    the error after k stages being what decoding the first k codes gives; a count outside 1..stages is refused."""
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(64, 16)).astype(np.float32))
    errs = []
    for stages in (None, [2], [1, 3]):
        q = _random_model()
        q.loss_stages = stages or [1, 2, 3]
        loss, _ = q.loss(x)
        errs.append(float(loss.detach()))
    z = (x - q.mean) / q.scale
    _, _, partial = q._search(z, 1, q.train_preselect)
    per = [float(((z - p) ** 2).mean()) for p in partial]
    assert errs == pytest.approx([sum(per) / 3, per[1], (per[0] + per[2]) / 2], rel=1e-5)
    assert QINCo(16, 3, loss_stages=[3, 1]).loss_stages == [1, 3]
    with pytest.raises(VQLadderError, match="loss_stages"):
        QINCo(16, 3, loss_stages=[4])
