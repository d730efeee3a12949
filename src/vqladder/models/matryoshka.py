"""Abstract vocabularies over Matryoshka embeddings: the adapter and coarse-to-fine prefix codes.

* ``MatryoshkaAdapter``: a residual MLP on frozen embeddings (identity at init), trained so every prefix
  (16, 32, 64, 128, 256, 384 dims) keeps the full embedding's neighbour structure -- a KL between softmaxed
  similarity rows of the full teacher embedding and of each normalised prefix (similarity distillation over
  the batch).
* ``PrefixRVQ``: residual VQ where stage i quantises the residual restricted to prefix ``prefixes[i]`` with
  a 256-code codebook (1 byte): level 1 codes come from the shortest prefix (a small vocabulary of big
  concepts), every next level refines with a longer prefix. ``prefixes = [dim] * B`` is plain residual VQ.
  Codebooks are our ``VectorQuantizer`` (k-means init + EMA), fit on a training split.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VQLadderError
from ..quantize import VectorQuantizer

PREFIXES = [16, 32, 64, 128, 256, 384]


# -- Matryoshka adapter ---------------------------------------------------------------------------------------------
class MatryoshkaAdapter(nn.Module):
    """x -> normalise(x + MLP(x)); the MLP's output layer starts at zero (identity at init)."""

    def __init__(self, dim: int, hidden: int = 768, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.up = nn.Linear(dim, hidden)
            self.down = nn.Linear(hidden, dim)
            nn.init.zeros_(self.down.weight)
            nn.init.zeros_(self.down.bias)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x + self.down(F.gelu(self.up(x))), dim=-1)


def prefix_neighbour_loss(student: torch.Tensor, teacher: torch.Tensor, prefixes=PREFIXES, tau: float = 0.05) -> torch.Tensor:
    """Mean over prefixes of KL(softmax(teacher sims / tau) || softmax(prefix sims / tau)), rows of the batch,
    the diagonal excluded: low when every prefix ranks the batch's neighbours as the full embedding does."""
    n = teacher.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=teacher.device)
    t = F.normalize(teacher, dim=-1)
    p_t = F.softmax((t @ t.T / tau).masked_fill(eye, -1e9), -1)
    loss = 0.0
    used = [p for p in prefixes if p <= student.shape[1]]
    for p in used:
        s = F.normalize(student[:, :p], dim=-1)
        log_s = F.log_softmax((s @ s.T / tau).masked_fill(eye, -1e9), -1)
        loss = loss + F.kl_div(log_s, p_t, reduction="batchmean")
    return loss / len(used)


def train_adapter(emb: np.ndarray, steps: int = 300, batch: int = 512, lr: float = 1e-3, seed: int = 0,
                  prefixes=PREFIXES) -> tuple[MatryoshkaAdapter, list[float]]:
    """Fit the adapter on frozen embeddings; returns it (eval mode) and the loss curve."""
    x = torch.as_tensor(np.asarray(emb), dtype=torch.float32)
    ad = MatryoshkaAdapter(x.shape[1], seed=seed)
    opt = torch.optim.AdamW(ad.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        xb = x[idx]
        loss = prefix_neighbour_loss(ad(xb), xb, prefixes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
    ad.eval()
    return ad, curve


@torch.no_grad()
def apply_adapter(ad: MatryoshkaAdapter | None, emb: np.ndarray, batch: int = 4096) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float32)
    if ad is None:
        return x
    return np.concatenate([ad(torch.from_numpy(x[s:s + batch])).numpy() for s in range(0, len(x), batch)])


# -- coarse-to-fine residual codes over prefixes -----------------------------------------------------------------------
def prefix_schedule(n_bytes: int, dim: int, matryoshka: bool = True) -> list[int]:
    """Prefix length of each 1-byte stage: 16, 32, 64, … then the full width (or the full width throughout)."""
    if not matryoshka:
        return [dim] * n_bytes
    ps = [p for p in PREFIXES if p < dim] + [dim]
    return [ps[min(i, len(ps) - 1)] for i in range(n_bytes)]


class PrefixRVQ(nn.Module):
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
