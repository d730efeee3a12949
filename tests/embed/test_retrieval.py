"""``vqladder.embed.retrieval``: recall on planted neighbours, byte accounting, residual beams."""

import numpy as np
import pytest
import torch
from helpers import planted_clusters

from vqladder.embed.models import PrefixRVQ, prefix_schedule
from vqladder.embed.retrieval import exact_topk, method_fits, recalls, run_method


def test_recall_on_planted_neighbours():
    db = planted_clusters(200, 16, clusters=200)
    q = db[:5] + 0.01
    truth = exact_topk(q, db, 10)
    assert truth[:, 0].tolist() == [0, 1, 2, 3, 4]
    perfect = exact_topk(q, db, 100)
    assert recalls(perfect, truth) == {"recall@1": 1.0, "recall@10": 1.0, "recall@100": 1.0}
    shifted = np.roll(perfect, 1, axis=1)  # true neighbour pushed to rank 2, last one dropped from the top 10
    r = recalls(shifted, truth)
    assert r["recall@1"] == 0.0 and r["recall@10"] == pytest.approx(0.9)


def test_byte_accounting_per_method():
    x = planted_clusters(800, 64)
    raw = {"train": x[:500], "db": x[500:750], "q": x[750:]}
    for m, b in [("faiss-pq", 8), ("faiss-opq-pq", 4), ("faiss-rq", 4), ("ours-prefix-rvq", 8), ("ours-rvq", 4)]:
        pytest.importorskip("faiss")
        _, _, _, extra = run_method(m, b, raw, raw)
        assert extra["bytes"] == b, m
    assert method_fits("float32-trunc", 6, 64) is not None   # not whole float32 dims
    assert method_fits("binary", 16, 64) is not None         # 128 bits > 64 dims
    assert method_fits("faiss-pq", 24, 64) is not None       # 64 not divisible by 24
    assert method_fits("int8", 32, 64) is None
    q = PrefixRVQ(64, prefix_schedule(6, 64))
    assert q.prefixes == [16, 32, 64, 64, 64, 64] and q.bytes_per_vector == 6


def test_rvq_beam_finds_what_greedy_misses():
    """Planted 1-d codebooks {0, 10} then {-6, 6}; x = 4.9: greedy takes 0 then 6 (error 1.1^2), a beam of 2
    finds 10 then -6 (error 0.9^2). Beam 1 is the greedy encoder."""
    q = PrefixRVQ(1, [1, 1], codebook_size=2)
    with torch.no_grad():
        q.stages[0].embed.copy_(torch.tensor([[0.0], [10.0]]))
        q.stages[1].embed.copy_(torch.tensor([[-6.0], [6.0]]))
    q.eval()
    x = np.array([[4.9]], dtype=np.float32)
    assert q.encode(x).tolist() == [[0, 1]] and q.decode(q.encode(x)).tolist() == [[6.0]]
    assert q.encode(x, beam=2).tolist() == [[1, 0]] and q.decode(q.encode(x, beam=2)).tolist() == [[4.0]]


def test_rvq_beam_lowers_the_mean_error():
    x = planted_clusters(1500, 64)
    q = PrefixRVQ(64, prefix_schedule(6, 64))
    q.fit(x[:1200])
    err = {b: float(((q.decode(q.encode(x[1200:], beam=b)) - x[1200:]) ** 2).sum(1).mean()) for b in (1, 4)}
    assert err[4] < err[1]

