"""Coarse-to-fine residual codes over embedding prefixes (``PrefixRVQ``): stage i quantises the residual restricted
to the first ``prefixes[i]`` dimensions with a 256-code ``VectorQuantizer`` (1 byte), so level 1 codes come
from the shortest prefix (a small vocabulary of big concepts) and every next level refines with a longer one;
``prefixes = [dim] * B`` is plain residual VQ. Encoding can beam-search the residual path."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import VQLadderError
from .vq import VectorQuantizer

PREFIXES = [16, 32, 64, 128, 256, 384]  # the Matryoshka prefix lengths (MiniLM: 384 dims)


# -- coarse-to-fine residual codes over prefixes -----------------------------------------------------------------------
def prefix_schedule(n_bytes: int, dim: int, matryoshka: bool = True) -> list[int]:
    """Prefix length of each 1-byte stage: 16, 32, 64, … then the full width (or the full width throughout)."""
    if not matryoshka:
        return [dim] * n_bytes
    ps = [p for p in PREFIXES if p < dim] + [dim]
    return [ps[min(i, len(ps) - 1)] for i in range(n_bytes)]


class PrefixRVQ(nn.Module):
    """Coarse-to-fine residual VQ over embedding prefixes: stage i quantises the residual of the first
    ``prefixes[i]`` dimensions, so the first k codes are a code of the k-th prefix (Matryoshka embeddings).
    Fitted by residual k-means (``fit(x)``); ``encode`` / ``decode`` work on numpy arrays."""

    def __init__(self, dim: int, prefixes: list[int], codebook_size: int = 256, seed: int = 0, kmeans_iters: int = 20):
        super().__init__()
        if any(p > dim or p < 1 for p in prefixes):
            raise VQLadderError(f"prefix lengths must be in 1..{dim}, got {prefixes}")
        self.dim, self.prefixes = dim, list(prefixes)
        self.stages = nn.ModuleList(
            VectorQuantizer(p, codebook_size, codebook_dim=-1, kmeans_init=True, kmeans_iters=kmeans_iters,
                            dead_threshold=0.0, seed=seed + 7919 * i) for i, p in enumerate(prefixes))

    @property
    def bytes_per_vector(self) -> float:
        return sum(s.bits_per_code for s in self.stages) / 8

    @torch.no_grad()
    def fit(self, x: np.ndarray, epochs: int = 2, batch: int = 4096) -> None:
        """Stage by stage: k-means on the residual prefix (all rows), then EMA passes over batches."""
        r = torch.as_tensor(np.asarray(x), dtype=torch.float32).clone()
        g = torch.Generator().manual_seed(0)
        for p, st in zip(self.prefixes, self.stages):
            st.train()
            st(r[:, :p])  # k-means init on the whole training set
            for _ in range(epochs):
                for idx in torch.randperm(len(r), generator=g).split(batch):
                    st(r[idx, :p])
            st.eval()
            q = st(r[:, :p]).z_q
            r[:, :p] -= q

    @torch.no_grad()
    def encode(self, x: np.ndarray, beam: int = 1, batch: int = 2048) -> np.ndarray:
        """Codes [n, stages]. ``beam`` 1: greedy, stage by stage (each stage's own nearest code). ``beam`` B > 1:
        keep the B partial encodings with the smallest squared residual after every stage, each extended by every
        code (as FAISS's residual quantizer does with ``max_beam_size``), and return the best at the end."""
        dtype = np.uint8 if self.stages[0].codebook_size <= 256 else np.int64
        if beam <= 1:
            r = torch.as_tensor(np.asarray(x), dtype=torch.float32).clone()
            codes = []
            for p, st in zip(self.prefixes, self.stages):
                out = st(r[:, :p])
                r[:, :p] -= out.z_q
                codes.append(out.codes)
            return torch.stack(codes, 1).numpy().astype(dtype)
        books = [st.decode_codes(torch.arange(st.codebook_size)) for st in self.stages]  # [K, p] each
        out = []
        for s in range(0, len(x), batch):
            res = torch.as_tensor(np.asarray(x[s:s + batch]), dtype=torch.float32)[:, None, :]  # [n, 1, D]
            codes = torch.zeros(res.shape[0], 1, 0, dtype=torch.long)
            for p, E in zip(self.prefixes, books):
                K = E.shape[0]
                head, tail = res[..., :p], (res[..., p:] ** 2).sum(-1, keepdim=True)
                err = (head ** 2).sum(-1, keepdim=True) - 2 * head @ E.T + (E ** 2).sum(-1) + tail  # [n, b, K]
                top = err.reshape(err.shape[0], -1).topk(min(beam, err.shape[1] * K), dim=1, largest=False).indices
                bi, ki = top // K, top % K
                res = res.gather(1, bi[..., None].expand(-1, -1, res.shape[-1])).clone()
                res[..., :p] -= E[ki]
                codes = torch.cat([codes.gather(1, bi[..., None].expand(-1, -1, codes.shape[-1])), ki[..., None]], -1)
            out.append(codes[:, 0])  # topk is sorted: candidate 0 has the smallest final residual
        return torch.cat(out).numpy().astype(dtype)

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        c = torch.as_tensor(np.asarray(codes, dtype=np.int64))
        out = torch.zeros(c.shape[0], self.dim)
        for i, (p, st) in enumerate(zip(self.prefixes, self.stages)):
            out[:, :p] += st.decode_codes(c[:, i])
        return out.numpy()
