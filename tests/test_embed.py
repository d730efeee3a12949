"""Codes over Matryoshka embeddings: recall, byte accounting, adapter, cache, the comparison run."""

import numpy as np
import pytest
import torch

from vqladder.embed.data import embed_cached, split_texts
from vqladder.embed.models import PrefixRVQ, prefix_neighbour_loss, prefix_schedule, train_adapter
from vqladder.embed.recipe import EmbedConfig, run_embed_eval
from vqladder.embed.retrieval import METHODS, exact_topk, method_fits, recalls, run_method
from vqladder.errors import VQLadderError


def _planted(n=600, dim=64, clusters=30, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(clusters, dim))
    x = centers[g.integers(clusters, size=n)] + 0.3 * g.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_recall_on_planted_neighbours():
    db = _planted(200, 16, clusters=200)
    q = db[:5] + 0.01
    truth = exact_topk(q, db, 10)
    assert truth[:, 0].tolist() == [0, 1, 2, 3, 4]
    perfect = exact_topk(q, db, 100)
    assert recalls(perfect, truth) == {"recall@1": 1.0, "recall@10": 1.0, "recall@100": 1.0}
    shifted = np.roll(perfect, 1, axis=1)  # true neighbour pushed to rank 2, last one dropped from the top 10
    r = recalls(shifted, truth)
    assert r["recall@1"] == 0.0 and r["recall@10"] == pytest.approx(0.9)


def test_byte_accounting_per_method():
    x = _planted(800, 64)
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


def test_prefix_rvq_refines_coarse_to_fine():
    x = _planted(1500, 64)
    q = PrefixRVQ(64, prefix_schedule(8, 64))
    q.fit(x[:1200])
    errs = []
    for k in (1, 2, 4, 8):
        sub = PrefixRVQ(64, q.prefixes[:k])
        sub.stages = torch.nn.ModuleList(list(q.stages)[:k])
        rec = sub.decode(q.encode(x[1200:])[:, :k])
        errs.append(float(((rec - x[1200:]) ** 2).sum(1).mean()))
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.6 * errs[0]


def test_adapter_lowers_prefix_neighbour_loss(tmp_path):
    x = _planted(800, 64)
    before = float(prefix_neighbour_loss(torch.from_numpy(x[600:]), torch.from_numpy(x[600:]), [8, 16, 32, 64]))
    ad, curve = train_adapter(x[:600], tmp_path / "adapter", steps=150, batch=256, prefixes=[8, 16, 32, 64])
    with torch.no_grad():
        after = float(prefix_neighbour_loss(ad(torch.from_numpy(x[600:])), torch.from_numpy(x[600:]), [8, 16, 32, 64]))
    assert curve[-1] < curve[0]
    assert after < 0.8 * before  # held-out rows too


class CountingEmbedder:
    def __init__(self, dim=32):
        self.calls, self.dim = 0, dim

    def __call__(self, texts):
        self.calls += 1
        out = np.stack([np.random.default_rng(abs(hash(t)) % (1 << 32)).normal(size=self.dim) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_embedding_cache_invalidates_on_texts_or_model(tmp_path):
    e = CountingEmbedder()
    a = embed_cached(["one text", "two texts"], "m1", tmp_path, e, progress=False)
    embed_cached(["one text", "two texts"], "m1", tmp_path, e, progress=False)
    assert e.calls == 1 and a.shape == (2, 32)
    embed_cached(["one text", "three texts"], "m1", tmp_path, e, progress=False)
    assert e.calls == 2
    embed_cached(["one text", "two texts"], "m2", tmp_path, e, progress=False)
    assert e.calls == 3
    with pytest.raises(VQLadderError, match="empty"):
        embed_cached([], "m1", tmp_path, e)


@pytest.mark.slow  # the whole embed comparison; test_byte_accounting_per_method is the fast one
def test_split_texts_and_comparison_run(tmp_path, tiny_corpus):
    texts = split_texts(str(tiny_corpus))
    assert len(texts) > 100 and all(30 <= len(t) <= 400 for t in texts) and len(set(texts)) == len(texts)
    pytest.importorskip("faiss")
    cfg = EmbedConfig(name="e", out_dir=str(tmp_path), corpora=[str(tiny_corpus)], queries=20, database=200,
                      min_train=100, budgets=[4, 8], adapter_steps=20, concepts=2,
                      methods=[m for m in METHODS if m not in ("faiss-lsq", "ours-qinco-prefix")])
    cfg.qinco.stages, cfg.qinco.seeds = [8], [0]
    cfg.qinco.train.steps, cfg.qinco.train.max_time, cfg.qinco.train.batch_size = 10, -1, 64
    res = run_embed_eval(cfg, embedder=CountingEmbedder(32), log=lambda m: None)
    got = {(r["method"], r["bytes"]) for r in res["rows"] if "note" not in r}
    assert ("ours-prefix-rvq", 4) in got and ("faiss-pq", 8) in got and ("float32-trunc", 8) in got
    assert ("ours-qinco", 8) in got and ("ours-qinco-greedy", 4) in got
    assert any(r.get("note") for r in res["rows"])  # binary at 8 bytes needs 64 dims > 32
    assert (cfg.dir / "recall_vs_bytes.png").is_file() and "faiss-opq-pq" in (cfg.dir / "results.md").read_text()
    assert res["concepts"] and res["concepts"][0]["texts"]
    view = res["concept_view"]                       # the report's concept explorer: every used level-1 code
    assert sum(c["size"] for c in view) == cfg.database and len({c["code"] for c in view}) == len(view)
    assert all(c["size"] > 0 for c in view)
    assert [c["size"] for c in view] == sorted((c["size"] for c in view), reverse=True)
    with pytest.raises(VQLadderError, match="unknown method"):
        run_embed_eval(EmbedConfig(methods=["lsh"]))


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
    x = _planted(1500, 64)
    q = PrefixRVQ(64, prefix_schedule(6, 64))
    q.fit(x[:1200])
    err = {b: float(((q.decode(q.encode(x[1200:], beam=b)) - x[1200:]) ** 2).sum(1).mean()) for b in (1, 4)}
    assert err[4] < err[1]


# -- a user's own vectors, QINCo in the comparison and in an index ---------------------------------------------------
def test_load_vectors_reads_npy_and_fvecs(tmp_path):
    from vqladder.embed.data import load_vectors

    x = _planted(50, 12)
    np.save(tmp_path / "v.npy", x.astype(np.float64))
    rows = np.concatenate([np.full((50, 1), 12, dtype=np.int32), x.view(np.int32)], 1)
    rows.tofile(tmp_path / "v.fvecs")
    for name in ("v.npy", "v.fvecs"):
        got = load_vectors(tmp_path / name)
        assert got.dtype == np.float32 and got.shape == (50, 12) and np.allclose(got, x)
    rows[:, 0].tofile(tmp_path / "bad.fvecs")  # widths only: "12" then the next header is 12 too... not a row
    with pytest.raises(VQLadderError):
        load_vectors(tmp_path / "bad.fvecs")


def test_vector_file_comparison_with_qinco_seeds(tmp_path):
    """The benchmark on a .npy of vectors (no texts): ours-qinco over two seeds (mean ± std, per-seed values),
    FAISS RQ on the same training split, reconstruction MSE for both; a rerun loads the trained models."""
    pytest.importorskip("faiss")
    g = np.random.default_rng(0)
    centers = g.normal(size=(20, 16))
    x = (centers[g.integers(0, 20, 1500)] + 0.3 * g.normal(size=(1500, 16))).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    cfg = EmbedConfig(name="v", out_dir=str(tmp_path), vectors=str(tmp_path / "v.npy"), metric="l2", queries=50,
                      database=400, val=100, min_train=500, budgets=[2], adapter=False,
                      methods=["faiss-rq", "ours-qinco", "ours-qinco-greedy"])
    cfg.qinco.stages, cfg.qinco.seeds = [2], [0, 1]
    cfg.qinco.train.steps, cfg.qinco.train.max_time, cfg.qinco.train.batch_size = 15, -1, 64
    res = run_embed_eval(cfg, log=lambda m: None)
    rows = {r["method"]: r for r in res["rows"]}
    assert res["train"] == 1500 - 50 - 400 - 100 and res["model"] == "(vectors)" and not res["concepts"]
    q = rows["ours-qinco"]
    assert q["seeds"] == 2 and len(q["recall@10_seeds"]) == 2 and "recall@10_std" in q and q["bytes"] == 2
    assert q["recall@10"] == pytest.approx(np.mean(q["recall@10_seeds"]))
    assert rows["faiss-rq"]["mse"] > 0 and q["mse"] > 0 and rows["faiss-rq"]["seeds"] == 1
    assert set(res["qinco"]["models"]) == {"raw-2-s0", "raw-2-s1"}
    assert all(m["step"] == 15 and m["mse"] > 0 for m in res["qinco"]["models"].values())
    md = (cfg.dir / "results.md").read_text()
    assert "±" in md and "val MSE" in md
    again = run_embed_eval(cfg, log=lambda m: None)  # finished models are loaded, not retrained
    assert {r["method"]: r["recall@10"] for r in again["rows"]} == {r["method"]: r["recall@10"] for r in res["rows"]}


def test_qinco_index_builds_and_searches(tmp_path, tiny_corpus):
    from vqladder.embed.models import CodeIndex
    from vqladder.embed.recipe import build_index

    e = CountingEmbedder(16)
    cfg = EmbedConfig(out_dir=str(tmp_path), corpora=[str(tiny_corpus)], max_texts=400)
    cfg.qinco.train.steps, cfg.qinco.train.max_time, cfg.qinco.train.batch_size = 10, -1, 64
    d = build_index(cfg, tmp_path / "index", 3, embedder=e, log=lambda m: None)
    index = CodeIndex(d, embedder=e)
    assert index.meta["quantizer"] == "qinco" and index.codes.shape == (400, 3)
    text = index.texts[7]
    assert (index.encode([text])[0] == index.codes[7]).all()  # encoding a database text gives its stored code
    hits = index.search(text, k=3)
    assert len(hits) == 3 and len(hits[0][2]) == 3 and any(h[1] == text for h in hits)


def test_docstrings_corpus_reads_python_sources_without_importing(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    long_doc = "A module docstring that is long enough to count. " * 6
    (pkg / "__init__.py").write_text(f'"""{long_doc}"""\nraise SystemExit("never imported")\n')
    (pkg / "short.py").write_text('"""Too short."""\n')
    texts = split_texts(f"docstrings:{pkg}", max_chars=200)
    assert texts and all("long enough" in t for t in texts)
    with pytest.raises(VQLadderError, match="no installed package"):
        split_texts("docstrings:no_such_package_xyz")


def test_adapter_stage_refuses_other_rows_and_loads_its_own(tmp_path):
    """The adapter trains through the stage runner: a rerun on the same rows loads it (no training), a rerun on
    other rows is refused (its fingerprint is part of the stage's recorded slice), and --retrain trains again."""
    from vqladder.errors import VQLadderError
    from vqladder.train.stage import set_retrain

    x = _planted(300, 32)
    ad, curve = train_adapter(x, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    assert len(curve) == 4
    again, _ = train_adapter(x, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    assert all(torch.equal(p, q) for p, q in zip(ad.parameters(), again.parameters()))
    other = x[::-1].copy()
    with pytest.raises(VQLadderError, match="another config"):
        train_adapter(other, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    set_retrain(True)
    try:
        train_adapter(other, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    finally:
        set_retrain(False)
