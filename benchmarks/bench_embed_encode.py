"""Encoding and search speed of the embedding codes, one core, measured alone.

    .venv/bin/python benchmarks/bench_embed_encode.py runs/embed-minilm --bytes 16 --out docs/embed/encode-speed.md

Loads the trained QINCo models of an ``embed eval`` run (``<run>/qinco/raw-<stages>-s0``, the smallest that holds
``--bytes``), the run's split and vectors, and times with one thread: QINCo encoding of ``--n`` database vectors at
``--bytes`` (greedy and with the run's beam), decoding them, and FAISS's residual quantiser (trained here on the
run's training rows at the same bytes and beam) encoding the same vectors; then a search over the decoded database
(flat inner product over reconstructions, as the benchmark ranks). Run it on an idle machine: every number is a
wall-clock.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--bytes", type=int, default=16)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--faiss-train", type=int, default=20000, help="training rows for the FAISS RQ timed here")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    import faiss

    faiss.omp_set_num_threads(1)
    from qinco_pilot import emit  # the benchmarks' folder is on sys.path when a script runs

    from vqladder.config import load_config
    from vqladder.embed.config import EmbedConfig
    from vqladder.embed.models import QINCoCodec  # noqa: F401  (registers the model kind)
    from vqladder.embed.stages import load_set, split_indices
    from vqladder.models import load_model
    from vqladder.train.recipe import saved_config

    run = Path(a.run)
    cfg = load_config(EmbedConfig, saved_config(run), [])
    emb, _, _ = load_set(cfg, lambda m: print(m, file=sys.stderr))
    idx = split_indices(len(emb), cfg)
    emb = np.asarray(emb, dtype=np.float32)
    db, train, q = emb[idx["db"]][:a.n], emb[idx["train"]], emb[idx["q"]]
    stages = min(s for s in cfg.qinco.stages if s >= a.bytes)
    model = load_model(run / "qinco" / f"raw-{stages}-s0", "qinco")[0]
    rows = []

    def timed(fn):
        fn(db[:200])  # warm-up
        t = time.perf_counter()
        out = fn(db)
        return out, time.perf_counter() - t

    for beam in sorted({1, cfg.rvq.beam}):
        codes, s = timed(lambda x: model.encode(x, stages=a.bytes, beam=beam))
        rows.append((f"ours-qinco encode, beam {beam}", len(db) / s))
    rec, s = timed(lambda x: model.decode(model.encode(x, stages=a.bytes, beam=1)))
    t = time.perf_counter()
    model.decode(codes)
    rows.append(("ours-qinco decode", len(db) / (time.perf_counter() - t)))
    index = faiss.IndexResidualQuantizer(db.shape[1], a.bytes, 8, faiss.METRIC_INNER_PRODUCT)
    index.rq.max_beam_size = cfg.rvq.beam
    index.train(np.ascontiguousarray(train[:a.faiss_train]))
    _, s = timed(lambda x: index.sa_encode(np.ascontiguousarray(x)))
    rows.append((f"faiss-rq encode, beam {cfg.rvq.beam}", len(db) / s))
    flat = faiss.IndexFlatIP(db.shape[1])
    flat.add(np.ascontiguousarray(rec / np.linalg.norm(rec, axis=1, keepdims=True)))
    t = time.perf_counter()
    flat.search(np.ascontiguousarray(q), 100)
    per_q = (time.perf_counter() - t) / len(q)
    lines = [f"# Encoding speed at {a.bytes} bytes ({run.name})", "",
             f"`.venv/bin/python benchmarks/bench_embed_encode.py {a.run} --bytes {a.bytes}`: one thread, "
             f"{len(db):,} database vectors of {db.shape[1]} dims, QINCo model `raw-{stages}-s0` (its first {a.bytes} "
             f"stages, {cfg.qinco.preselect} pre-selected candidates per stage), FAISS RQ trained here on "
             f"{min(a.faiss_train, len(train)):,} training rows.", "",
             "| what | vectors / s (one core) |", "|---|---|"]
    lines += [f"| {name} | {v:,.0f} |" for name, v in rows]
    lines += ["", f"Search over the {len(db):,} decoded vectors (flat inner product, top 100): "
              f"{1000 * per_q:.3f} ms per query."]
    return emit(lines, a.out)


if __name__ == "__main__":
    sys.exit(main())
