"""``vqladder.embed.recipe``: the comparison at equal bytes, on texts and on a vector file."""

import numpy as np
import pytest
from helpers import CountingEmbedder

from vqladder.embed.data import split_texts
from vqladder.embed.recipe import EmbedConfig, run_embed_eval
from vqladder.embed.retrieval import METHODS
from vqladder.errors import VQLadderError


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



def test_a_served_loss_weighs_the_budgets_each_model_serves():
    """``qinco.loss: served``: each model's loss averages the errors after the budgets read from it (the smallest
    model holding a budget serves it); a bad value is refused in one line."""
    from vqladder.embed.stages import served_stages
    from vqladder.errors import VQLadderError

    cfg = EmbedConfig(budgets=[4, 8, 16, 32])
    cfg.qinco.stages = [16, 32]
    assert served_stages(cfg, 16) == [4, 8, 16] and served_stages(cfg, 32) == [32]
    cfg.qinco.stages = [16, 32, 64]
    assert served_stages(cfg, 64) == [64]       # no budget reads it: judged by its full code
    cfg.qinco.loss = "last"
    with pytest.raises(VQLadderError, match="qinco.loss must be all or served"):
        cfg.validate()
