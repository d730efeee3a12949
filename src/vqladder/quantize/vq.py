"""Vector quantisation with an EMA codebook (van den Oord et al. 2017; Razavi et al. 2019).

Axes: b batch, n positions, d input width, c codebook width (``codebook_dim``; low-dim codebooks
improve usage, Yu et al. 2022), k codebook size; flattened rows are N = b*n.

z[b,n,d] --project_in--> x[N,c] (l2-normalised if ``cosine``) --nearest code (chunked: never an N x k
matrix larger than ``chunk_elems``)--> q[N,c] --gradient estimator (straight-through or rotation trick,
Fifty et al. 2024)--> project_out --> z_q[b,n,d].

Codebook learning, all in fp32 and all identical across DDP ranks:
  * k-means init on the first training batch (Lloyd iterations; centroids from rank 0, sums/counts all-reduced);
  * EMA updates of cluster sizes and sums (``decay``), with Laplace smoothing; the sums are all-reduced;
  * dead-code restart: a code whose EMA cluster size falls below ``dead_threshold`` x (uniform share of the
    batch) is replaced by a random batch vector (sampled on rank 0 and broadcast) and its EMA state reset.
Loss: ``commitment`` x ||x - sg(q)||^2. The random generator's state is part of ``state_dict`` so that a
resumed run restarts the same codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantized, QuantizerBase, all_reduce_sum, broadcast


def nearest_codes(x: torch.Tensor, embed: torch.Tensor, cosine: bool, chunk_elems: int = 1 << 24) -> torch.Tensor:
    """Index of the nearest codebook row for each row of x[N, c], in row chunks of <= chunk_elems distances."""
    n, k = x.shape[0], embed.shape[0]
    rows = max(1, chunk_elems // max(k, 1))
    e2 = None if cosine else (embed * embed).sum(1)
    out = torch.empty(n, dtype=torch.long, device=x.device)
    for s in range(0, n, rows):
        sim = x[s:s + rows] @ embed.t()
        if cosine:
            out[s:s + rows] = sim.argmax(1)
        else:
            out[s:s + rows] = (e2 - 2 * sim).argmin(1)
    return out


def rotate_to(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Rotation trick: returns tgt in the forward pass; gradients flow to src through a fixed rotation+scale."""
    eps = 1e-6
    ns = src.norm(dim=-1, keepdim=True).clamp_min(eps)
    nt = tgt.norm(dim=-1, keepdim=True).clamp_min(eps)
    u = (src / ns).detach()
    q = (tgt / nt).detach()
    w = F.normalize(u + q, dim=-1, eps=eps).detach()
    rotated = src - 2 * (src * w).sum(-1, keepdim=True) * w + 2 * (src * u).sum(-1, keepdim=True) * q
    return rotated * (nt / ns).detach()


class VectorQuantizer(QuantizerBase):
    """VQ-VAE quantiser with an EMA codebook (k-means init, dead-code restart, commitment loss).

    >>> import torch
    >>> from vqladder import VectorQuantizer
    >>> q = VectorQuantizer(dim=16, codebook_size=64, codebook_dim=8)
    >>> out = q(torch.randn(4, 32, 16))                # the first training call initialises by k-means
    >>> out.codes.shape, int(out.codes.max()) < 64, out.loss.ndim
    (torch.Size([4, 32]), True, 0)
    """

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int = 32, decay: float = 0.99,
                 commitment: float = 0.25, kmeans_init: bool = True, kmeans_iters: int = 10,
                 dead_threshold: float = 0.03, cosine: bool = False, gradient: str = "ste", eps: float = 1e-5,
                 seed: int = 0, dead_after: int = 100, chunk_elems: int = 1 << 24):
        super().__init__(codebook_size, dead_after)
        c = codebook_dim if codebook_dim > 0 else dim
        self.codebook_dim, self.decay, self.commitment = c, decay, commitment
        self.kmeans_iters, self.dead_threshold, self.cosine = kmeans_iters, dead_threshold, cosine
        self.gradient, self.eps, self.chunk_elems = gradient, eps, chunk_elems
        self.project_in = nn.Linear(dim, c) if c != dim else nn.Identity()
        self.project_out = nn.Linear(c, dim) if c != dim else nn.Identity()
        self.gen = torch.Generator().manual_seed(seed)
        init = torch.randn(codebook_size, c, generator=self.gen)
        if cosine:
            init = F.normalize(init, dim=-1)
        self.register_buffer("embed", init)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", init.clone())
        self.register_buffer("initted", torch.tensor(not kmeans_init))

    # the generator state travels with the weights (safetensors holds it as a uint8 tensor)
    def get_extra_state(self):
        return self.gen.get_state()

    def set_extra_state(self, state):
        self.gen.set_state(state.cpu().to(torch.uint8))

    def _sample_rows(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """n rows of x chosen on rank 0 by the module's generator (with replacement if needed), broadcast."""
        if x.shape[0] >= n:
            idx = torch.randperm(x.shape[0], generator=self.gen)[:n]
        else:
            idx = torch.randint(0, x.shape[0], (n,), generator=self.gen)
        rows = x[idx.to(x.device)].clone()
        return broadcast(rows.contiguous())

    def _normalize(self, e: torch.Tensor) -> torch.Tensor:
        return F.normalize(e, dim=-1) if self.cosine else e

    @torch.no_grad()
    def _kmeans_init(self, x: torch.Tensor) -> None:
        k = self.codebook_size
        centroids = self._sample_rows(x, k)
        counts = torch.zeros(k, device=x.device)
        for _ in range(self.kmeans_iters):
            idx = nearest_codes(x, centroids, self.cosine, self.chunk_elems)
            counts = all_reduce_sum(torch.bincount(idx, minlength=k).float())
            sums = all_reduce_sum(torch.zeros_like(centroids).index_add_(0, idx, x))
            new = sums / counts.clamp_min(1)[:, None]
            centroids = self._normalize(torch.where(counts[:, None] > 0, new, centroids))
        self.embed.copy_(centroids)
        self.cluster_size.copy_(counts)
        self.embed_sum.copy_(centroids * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        k = self.codebook_size
        counts = all_reduce_sum(torch.bincount(idx, minlength=k).float())
        sums = all_reduce_sum(torch.zeros_like(self.embed).index_add_(0, idx, x))
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_sum.lerp_(sums, 1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + k * self.eps) * n
        self.embed.copy_(self._normalize(self.embed_sum / smoothed[:, None]))
        # dead-code restart: threshold relative to the uniform share of this step's vectors
        total = counts.sum()
        dead = self.cluster_size < self.dead_threshold * total / k
        n_dead = int(dead.sum())
        if n_dead:
            rows = self._sample_rows(x, n_dead)
            self.embed[dead] = self._normalize(rows)
            reset = self.dead_threshold * total / k
            self.cluster_size[dead] = reset
            self.embed_sum[dead] = self.embed[dead] * reset

    @staticmethod
    def _all_finite(x: torch.Tensor) -> bool:
        """False if any rank's batch holds NaN/inf: then no rank updates its codebook (kept identical and clean)."""
        bad = (~torch.isfinite(x)).any().float().reshape(1)
        return float(all_reduce_sum(bad)) == 0

    def forward(self, z: torch.Tensor) -> Quantized:
        shape = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = self.project_in(z.float()).reshape(-1, self.codebook_dim)
            if self.cosine:
                x = F.normalize(x, dim=-1)
            if self.training and not bool(self.initted):
                self._kmeans_init(x.detach())
            idx = nearest_codes(x.detach(), self.embed, self.cosine, self.chunk_elems)
            q = self.embed[idx]
            if self.training and self._all_finite(x):
                self._ema_update(x.detach(), idx)
            loss = self.commitment * F.mse_loss(x, q.detach())
            out = rotate_to(x, q) if self.gradient == "rotation" else x + (q - x).detach()
            z_q = self.project_out(out).reshape(*shape[:-1], -1)
        codes = idx.reshape(shape[:-1])
        return Quantized(z_q, codes, loss, self._stats(codes))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return self.project_out(self.embed[codes.long()])
