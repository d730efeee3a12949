"""Retrieval metrics: exact top-k neighbours and recall@k against them."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import VQLadderError
from .data import normalize
from .models import PrefixRVQ, prefix_schedule


def exact_topk(q: np.ndarray, db: np.ndarray, k: int, metric: str = "ip", batch: int = 1024) -> np.ndarray:
    """Indices of the k nearest rows of db for each row of q, best first: highest inner product (``ip``) or
    smallest Euclidean distance (``l2``); queries in batches."""
    d = torch.from_numpy(np.ascontiguousarray(db, dtype=np.float32))
    d2 = (d * d).sum(1) if metric == "l2" else None
    out = []
    for s in range(0, len(q), batch):
        qs = torch.from_numpy(np.ascontiguousarray(q[s:s + batch], dtype=np.float32))
        sim = qs @ d.T
        if d2 is not None:
            sim = 2 * sim - d2  # -||q - x||^2 + ||q||^2: the same order
        out.append(sim.topk(min(k, d.shape[0]), dim=1).indices)
    return torch.cat(out).numpy()


def rank(q: np.ndarray, rec: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Rank reconstructed database vectors for uncompressed queries: cosine (``cosine``) or L2 (``l2``)."""
    if metric == "l2":
        return exact_topk(q, rec, k, "l2")
    return exact_topk(q, normalize(rec), k)


def recalls(found: np.ndarray, truth: np.ndarray) -> dict:
    """found[q, >=100] ranked ids, truth[q, 10] exact top-10 -> recall@1/@10/@100 as defined above."""
    t10 = truth[:, :10]
    r1 = float(np.mean(found[:, 0] == truth[:, 0]))
    r10 = float(np.mean([len(set(f[:10]) & set(t)) / 10 for f, t in zip(found, t10)]))
    r100 = float(np.mean([len(set(f[:100]) & set(t)) / 10 for f, t in zip(found, t10)]))
    return {"recall@1": r1, "recall@10": r10, "recall@100": r100}


METHODS = ["float32-trunc", "float32-trunc-raw", "int8", "binary", "faiss-pq", "faiss-opq-pq", "faiss-rq",
           "faiss-lsq", "ours-prefix-rvq", "ours-rvq-adapted", "ours-rvq", "ours-qinco", "ours-qinco-greedy",
           "ours-qinco-prefix"]
QINCO_METHODS = ("ours-qinco", "ours-qinco-greedy", "ours-qinco-prefix")  # trained per seed (see experiments)


def method_fits(method: str, n_bytes: int, dim: int) -> str | None:
    """None if ``method`` can produce exactly ``n_bytes`` per vector at width ``dim``, else why not."""
    if method.startswith("float32-trunc"):
        if n_bytes % 4 or n_bytes // 4 > dim:
            return f"{n_bytes} bytes is not a whole number of float32 dims <= {dim}"
    elif method == "int8" and n_bytes > dim:
        return f"int8 holds at most {dim} bytes"
    elif method == "binary" and 8 * n_bytes > dim:
        return f"binary holds at most {dim // 8} bytes ({dim} dims)"
    elif method in ("faiss-pq", "faiss-opq-pq") and dim % n_bytes:
        return f"PQ needs the width {dim} divisible by {n_bytes} sub-quantisers"
    return None


def _coded(encode, decode, src: dict, k: int, metric: str, extra: dict):
    """Encode the database with one of our quantisers (timed), decode, rank: run_method's return for it."""
    t0 = time.time()
    codes = encode(src["db"])
    t1 = time.time()
    rec = decode(codes)
    extra.update(bytes=int(codes.shape[1] * codes.itemsize), codes=codes,
                 mse=float(((rec - src["db"]) ** 2).sum(1).mean()))
    found = rank(src["q"], rec, k, metric)
    return found, t1 - t0, time.time() - t1, extra


def run_method(method: str, n_bytes: int, raw: dict, ada: dict, seed: int = 0, beam: int = 4,
               metric: str = "cosine", qinco=None):
    """-> (ranked ids [q, 100], encode seconds, search seconds, extra). ``raw``/``ada``: train/db/q arrays;
    ``beam``: the residual-encoding beam of faiss-rq, faiss-lsq's ICM has its own, and of our RVQs and ours-qinco
    (the same at every budget; ours-qinco-greedy encodes with beam 1); ``metric``: cosine | l2, the ranking of
    reconstructed vectors; ``qinco``: the trained ``QINCo`` model an ``ours-qinco*`` method encodes with (its
    first ``n_bytes`` stages)."""
    dim = raw["db"].shape[1]
    k = min(100, raw["db"].shape[0])
    extra = {}
    if method.startswith("float32-trunc"):
        src = raw if method.endswith("raw") else ada
        p = n_bytes // 4
        t0 = time.time()
        db = src["db"][:, :p].copy()
        t1 = time.time()
        qv = src["q"][:, :p] if metric == "l2" else normalize(src["q"][:, :p])
        found = rank(qv, db, k, metric)
        return found, t1 - t0, time.time() - t1, extra
    if method == "int8":
        p = n_bytes
        lo, hi = ada["train"][:, :p].min(0), ada["train"][:, :p].max(0)
        scale = np.maximum(hi - lo, 1e-6) / 255
        t0 = time.time()
        codes = np.clip(np.round((ada["db"][:, :p] - lo) / scale), 0, 255).astype(np.uint8)
        t1 = time.time()
        rec = codes.astype(np.float32) * scale + lo
        found = rank(ada["q"][:, :p], rec, k, metric)
        return found, t1 - t0, time.time() - t1, extra
    if method == "binary":
        bits = 8 * n_bytes
        t0 = time.time()
        db = np.packbits(ada["db"][:, :bits] > 0, axis=1)
        t1 = time.time()
        qb = np.packbits(ada["q"][:, :bits] > 0, axis=1)
        # Hamming distance via popcount of XOR, as a torch matmul on +-1 vectors (same ranking)
        dbs = torch.from_numpy(np.unpackbits(db, axis=1)[:, :bits].astype(np.float32) * 2 - 1)
        qs = torch.from_numpy(np.unpackbits(qb, axis=1)[:, :bits].astype(np.float32) * 2 - 1)
        found = (qs @ dbs.T).topk(k, dim=1).indices.numpy()
        return found, t1 - t0, time.time() - t1, extra
    if method.startswith("faiss"):
        try:
            import faiss
        except ImportError:
            raise VQLadderError("the FAISS baselines need faiss-cpu: pip install 'vqladder[embed]'")
        faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
        if method == "faiss-pq":
            index = faiss.IndexPQ(dim, n_bytes, 8, faiss.METRIC_INNER_PRODUCT)
        elif method == "faiss-opq-pq":
            index = faiss.index_factory(dim, f"OPQ{n_bytes},PQ{n_bytes}", faiss.METRIC_INNER_PRODUCT)
        elif method == "faiss-lsq":
            index = faiss.IndexLocalSearchQuantizer(dim, n_bytes, 8, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexResidualQuantizer(dim, n_bytes, 8, faiss.METRIC_INNER_PRODUCT)
            index.rq.max_beam_size = beam  # the same beam as ours, at every budget
        t0 = time.time()
        index.train(np.ascontiguousarray(raw["train"], dtype=np.float32))
        extra["train_s"] = round(time.time() - t0, 2)
        t0 = time.time()
        codes = index.sa_encode(np.ascontiguousarray(raw["db"], dtype=np.float32))
        t1 = time.time()
        extra["bytes"] = int(codes.shape[1])
        rec = index.sa_decode(codes)
        extra["mse"] = float(((rec - raw["db"]) ** 2).sum(1).mean())
        found = rank(raw["q"], rec, k, metric)
        return found, t1 - t0, time.time() - t1, extra
    if method in ("ours-prefix-rvq", "ours-rvq-adapted", "ours-rvq"):
        # prefix schedule on adapted embeddings; all dims at every stage on adapted ones (isolates the schedule);
        # all dims on the raw embeddings (isolates the adapter)
        src = raw if method == "ours-rvq" else ada
        q = PrefixRVQ(dim, prefix_schedule(n_bytes, dim, matryoshka=method == "ours-prefix-rvq"), seed=seed)
        t0 = time.time()
        q.fit(src["train"])
        extra["train_s"] = round(time.time() - t0, 2)
        extra["quantizer"] = q
        return _coded(lambda x: q.encode(x, beam=beam), q.decode, src, k, metric, extra)
    if method in QINCO_METHODS:
        if qinco is None or qinco.n_stages < n_bytes:
            raise VQLadderError(f"{method} at {n_bytes} bytes needs a trained QINCo of >= {n_bytes} stages")
        src = ada if method == "ours-qinco-prefix" else raw
        b = 1 if method == "ours-qinco-greedy" else beam
        return _coded(lambda x: qinco.encode(x, stages=n_bytes, beam=b), qinco.decode, src, k, metric, extra)
    raise VQLadderError(f"unknown method {method!r}")
