"""``vqladder embed eval CONFIG``: our prefix codes against what practitioners use, at equal bytes per vector.

Texts from the corpora are split (seeded) into a training set (adapter, codebooks, FAISS training), a
database and queries. Ground truth: the exact top-10 neighbours of each query in the database by cosine on
the full float embeddings. Every method compresses the database to ``B`` bytes per vector and ranks it for
each (uncompressed) query; reported: recall@1 (true nearest neighbour ranked first), recall@10 (fraction
of the true top-10 in the returned top-10) and recall@100 (fraction of the true top-10 in the top-100),
plus encode time (database) and search time (all queries).

Methods at B bytes: ``float32-trunc`` (first B/4 dims of the adapted = Matryoshka embedding, the Matryoshka
baseline) and ``float32-trunc-raw`` (of the raw embedding), ``int8`` (first B dims of the adapted embedding,
per-dim min/max scalar quantisation), ``binary`` (signs of the first 8B adapted dims, Hamming distance),
``faiss-pq`` (B sub-quantisers x 8 bits), ``faiss-opq-pq`` (OPQ rotation + PQ), ``faiss-rq`` (residual
quantiser, B x 8 bits), ``ours-prefix-rvq`` (coarse-to-fine prefix residual VQ over the adapted embedding)
and ``ours-rvq`` (the same residual VQ with every stage on all dims, raw embedding). Codes-based methods
rank by cosine between the query and the decoded database vector (asymmetric distance, as FAISS does).
"""

from __future__ import annotations

import numpy as np
import torch

from ..io import atomic_write_text
from ..train.recipe import open_experiment, write_results
from ..train.stage import stderr_log
from .config import EmbedConfig, QINCoOptions, RVQOptions  # noqa: F401  (the recipe's public names)
from .index import build_index  # noqa: F401
from .models import PREFIXES, QINCoCodec, apply_adapter, prefix_neighbour_loss, train_adapter
from .report import embed_markdown, plot_recall
from .retrieval import QINCO_METHODS, exact_topk, method_fits, recalls, run_method
from .stages import _rq_val_mse, _stage_summary, _train_s, load_set, split_indices, train_qinco


def run_embed_eval(cfg: EmbedConfig, embedder=None, log=None) -> dict:
    """Codes over embeddings vs FAISS at equal bytes (``vqladder embed eval CONFIG``): recall@k and MSE per method
    and budget on one seeded split; returns (and writes) the table."""
    log = log or stderr_log("embed")
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    d = open_experiment(cfg, force=True)  # an evaluation: every number is recomputed, so any config may rerun
    emb, texts, counts = load_set(cfg, log, embedder)
    n = len(emb)
    idx = split_indices(n, cfg)
    n_q, n_db = len(idx["q"]), len(idx["db"])
    emb = np.asarray(emb, dtype=np.float32)
    raw = {k: emb[v] for k, v in idx.items()}
    dim = emb.shape[1]
    cfg.check_budgets(dim)
    log(f"{n:,} vectors ({dim} dims): train {len(idx['train']):,}, val {len(idx['val']):,}, database {n_db:,}, "
        f"queries {n_q}")
    adapter, curve = None, []
    if cfg.adapter:
        adapter, curve = train_adapter(raw["train"], d / "adapter", steps=cfg.adapter_steps, seed=cfg.seed, log=log)
        log(f"adapter: training prefix-neighbour loss {curve[0]:.4f} -> {curve[-1]:.4f}")
    ada = {k: apply_adapter(adapter, v) for k, v in raw.items()}
    with torch.no_grad():
        held = torch.from_numpy(raw["q"][:500])
        loss_raw = float(prefix_neighbour_loss(held, held))
        loss_ada = float(prefix_neighbour_loss(torch.from_numpy(ada["q"][:500]), held))
    truth = exact_topk(raw["q"], raw["db"], 10, "l2" if cfg.metric == "l2" else "ip")
    models: dict = {}

    def qinco_for(method: str, b: int, seed: int) -> QINCoCodec:
        variant = "prefix" if method == "ours-qinco-prefix" else "raw"
        stages = min(s for s in cfg.qinco.stages if s >= b)
        key = (variant, stages, seed)
        if key not in models:
            src = ada if variant == "prefix" else raw
            models[key] = train_qinco(cfg, d, variant, stages, seed, src["train"], src["val"], log)
        return models[key]

    rows, concepts, concept_view = [], [], []
    for b in cfg.budgets:
        for m in cfg.methods:
            why = method_fits(m, b, dim) or (f"faiss-lsq runs up to lsq_max_bytes = {cfg.lsq_max_bytes} (its "
                                              "training time grows fast with bytes)"
                                              if m == "faiss-lsq" and b > cfg.lsq_max_bytes else None)
            if why:
                rows.append({"method": m, "bytes": b, "note": why})
                continue
            runs = []
            for seed in (cfg.qinco.seeds if m in QINCO_METHODS else [cfg.seed]):
                q = qinco_for(m, b, seed) if m in QINCO_METHODS else None
                found, enc_s, search_s, extra = run_method(m, b, raw, ada, seed, cfg.rvq.beam, cfg.metric, q)
                runs.append((recalls(found, truth), enc_s, search_s, extra))
                if len(runs) > 1:
                    log(f"    seed {seed}: R@10 {runs[-1][0]['recall@10']:.3f}")
            r = {"method": m, "bytes": runs[0][3].get("bytes", b), **_mean_std([x[0] for x in runs]),
                 "seeds": len(runs), "recall@10_seeds": [x[0]["recall@10"] for x in runs], "encode_ms_per_1k": round(1000 * np.mean([x[1] for x in runs]) / n_db * 1000, 3),
                 "search_ms_per_query": round(1000 * np.mean([x[2] for x in runs]) / n_q, 3),
                 "train_s": runs[0][3].get("train_s", 0.0)}
            if "mse" in runs[0][3]:
                r.update(_mean_std([{"mse": x[3]["mse"]} for x in runs]))
            if m in QINCO_METHODS:
                r["train_s"] = round(float(np.mean([_train_s(d, m, b, cfg, s) for s in cfg.qinco.seeds])), 1)
            rows.append(r)
            log(f"{b:>3} bytes {m:17s} R@1 {r['recall@1']:.3f} R@10 {r['recall@10']:.3f}"
                + (f" ± {r['recall@10_std']:.3f}" if len(runs) > 1 else "") + f" R@100 {r['recall@100']:.3f}")
            first = runs[0][3].get("codes")
            if texts is not None and first is not None and not concepts and m in ("ours-qinco", "ours-prefix-rvq"):
                db_texts = [texts[i] for i in idx["db"]]
                concepts = _concepts(first[:, 0], db_texts, cfg.concepts)
                concept_view = _concepts(first[:, 0], db_texts, 256, per=8)  # the report's explorer
                concept_view and concept_view[0].setdefault("method", m)
    res = {"texts": n, "database": n_db, "queries": n_q, "train": int(len(idx["train"])), "val": int(len(idx["val"])),
           "dim": dim, "model": "(vectors)" if cfg.vectors else cfg.model,
           "corpora": [cfg.vectors] if cfg.vectors else cfg.corpora, "sources": counts, "metric": cfg.metric,
           "adapter_curve": curve[::max(1, len(curve) // 20)],
           "prefix_loss_raw": loss_raw, "prefix_loss_adapted": loss_ada, "prefixes": list(PREFIXES), "rows": rows, "concepts": concepts,
           "concept_view": concept_view, "rvq_beam": cfg.rvq.beam,
           "qinco": {"seeds": cfg.qinco.seeds, "stages": cfg.qinco.stages, "hidden": cfg.qinco.hidden,
                     "blocks": cfg.qinco.blocks, "preselect": cfg.qinco.preselect,
                     "train_preselect": cfg.qinco.train_preselect, "max_time": cfg.qinco.train.max_time,
                     "models": {f"{v}-{st}-s{sd}": _stage_summary(d, v, st, sd) for v, st, sd in models},
                     "rq_init_val_mse": {f"{v}-{st}": _rq_val_mse(models[(v, st, sd)], cfg, d, v, raw, ada)
                                         for v, st, sd in models if sd == cfg.qinco.seeds[0]}}}
    write_results(d, res)
    atomic_write_text(d / "results.md", embed_markdown(res, cfg))
    plot_recall(res, d / "recall_vs_bytes.png")
    return res


def _mean_std(runs: list[dict]) -> dict:
    """Each key's mean over runs, and ``<key>_std`` (population std) when there is more than one run."""
    out = {}
    for k in runs[0]:
        v = np.array([r[k] for r in runs], dtype=np.float64)
        out[k] = float(v.mean())
        if len(v) > 1:
            out[f"{k}_std"] = float(v.std())
    return out


def _concepts(level1: np.ndarray, texts: list[str], n: int, per: int = 4) -> list[dict]:
    counts = np.bincount(level1.astype(np.int64), minlength=256)
    out = []
    for code in np.argsort(-counts, kind="stable")[:n]:
        if counts[code] == 0:
            break
        members = np.flatnonzero(level1 == code)[:per]
        out.append({"code": int(code), "size": int(counts[code]), "texts": [texts[i][:160] for i in members]})
    return out
