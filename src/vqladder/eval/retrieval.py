"""Retrieval metrics: exact top-k neighbours and recall@k against them."""

from __future__ import annotations

import numpy as np
import torch

from ..data.embeddings import normalize  # noqa: F401


def exact_topk(q: np.ndarray, db: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest inner products (rows of q against db), best first."""
    s = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)) @ torch.from_numpy(np.ascontiguousarray(db, dtype=np.float32)).T
    return s.topk(min(k, db.shape[0]), dim=1).indices.numpy()


def recalls(found: np.ndarray, truth: np.ndarray) -> dict:
    """found[q, >=100] ranked ids, truth[q, 10] exact top-10 -> recall@1/@10/@100 as defined above."""
    t10 = truth[:, :10]
    r1 = float(np.mean(found[:, 0] == truth[:, 0]))
    r10 = float(np.mean([len(set(f[:10]) & set(t)) / 10 for f, t in zip(found, t10)]))
    r100 = float(np.mean([len(set(f[:100]) & set(t)) / 10 for f, t in zip(found, t10)]))
    return {"recall@1": r1, "recall@10": r10, "recall@100": r100}
