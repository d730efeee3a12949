"""Residual quantisation with implicit neural codebooks (QINCo: Huijben et al. 2024; encoding as QINCo2, Vallaeys
et al. 2025: candidate pre-selection and beam search).

Axes: n vectors, d width, m stage, k codebook size, a pre-selected candidates, b beam width, h hidden width.

Plain residual quantisation (RQ) gives stage m one fixed codebook C_m[k, d]. QINCo makes stage m's codebook a
function of the reconstruction so far, x_hat: codeword k is

    g_m(k, x_hat) = c + U_m c + V_m x_hat,             c = C_m[k]          (the linear "concatenation" step)
    g_m <- g_m + W2 gelu(W1 g_m)                        (``blocks`` residual MLP blocks of hidden width h)

so the cells stage m cuts depend on which cells the earlier stages chose. U, V and every W2 start at zero and C
from RQ's k-means codebooks, so training starts exactly at RQ and can only move away where that lowers the error.
Trained end to end (the project's trainer) on the mean over stages of ||x - x_hat_m||^2: the choice of codeword
is an argmin (no gradient); the chosen codeword's network gets the gradient.

Encoding cost is the point of the design. The linear part of every codeword is cheap (``C + U C`` is one [k, d]
table per stage, ``V x_hat`` one vector per beam), so each stage first *pre-selects* the ``preselect`` codewords
whose linear part is nearest the residual and runs the MLP blocks on those alone (QINCo2's pre-selection; QINCo
runs the network on all k). ``beam`` > 1 keeps the b partial encodings with the smallest error after each stage,
each extended by its a candidates (QINCo2's beam search). Training uses the same path with beam 1 and
re-computes only the chosen codeword with gradients.

``prefixes`` (optional, one length per stage) restricts stage m's codeword to the first p_m dimensions: the
coarse-to-fine Matryoshka schedule of ``PrefixRVQ``, kept as an option to measure against all dimensions.

Inputs are standardised by a mean and one global scale fitted with the RQ init (distances keep their order);
codes are [n, stages] bytes (k = 256) and are progressive: the first m stages' codes are an m-byte code.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VQLadderError
from .base import Quantized, QuantizerBase, histogram_stats


class _Step(nn.Module):
    """One stage's implicit codebook."""

    def __init__(self, dim: int, codebook_size: int, hidden: int, blocks: int, prefix: int):
        super().__init__()
        self.codebook = nn.Parameter(torch.zeros(codebook_size, dim))
        self.cat_c = nn.Linear(dim, dim, bias=False)    # U
        self.cat_x = nn.Linear(dim, dim)                # V (and a bias)
        self.w1 = nn.ModuleList(nn.Linear(dim, hidden) for _ in range(blocks))
        self.w2 = nn.ModuleList(nn.Linear(hidden, dim) for _ in range(blocks))
        for lin in [self.cat_c, self.cat_x, *self.w2]:
            nn.init.zeros_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        mask = torch.zeros(dim)
        mask[:prefix] = 1
        self.register_buffer("mask", mask, persistent=False)
        self.full = prefix >= dim

    def linear_table(self) -> torch.Tensor:
        """[k, d]: the x_hat-independent part of every codeword (C + U C)."""
        return self.codebook + self.cat_c(self.codebook)

    def candidates(self, res: torch.Tensor, x_hat: torch.Tensor, a: int):
        """Pre-select the ``a`` codewords whose linear part is nearest each residual res[n, b, d] (given x_hat[n, b,
        d]) and return (their indices [n, b, a], their squared errors ||res - codeword||^2 [n, b, a], a function
        ``word(flat_index [n, j]) -> codewords [n, j, d]`` of the candidates flattened over (b, a)).

        With one block the errors need no d-wide codeword: writing a codeword as t + v + w (t = C + U C row,
        v = V x_hat, w = W2 gelu(W1 (t + v) + b1) + b2) and l = res - v - b2,
        ||res - g||^2 = ||l - t||^2 - 2 (l W2 - t W2) . h + h^T (W2^T W2) h  with h = gelu(...)[h-wide],
        where W1 t, t W2 and W2^T W2 are per-stage tables: about h^2 + 4h operations per candidate instead of
        2 d h + 3 d (exact; ``implicit`` computes the same codewords directly)."""
        table = self.linear_table()                                                    # [k, d]
        v = self.cat_x(x_hat)                                                          # [n, b, d]
        fast = len(self.w1) == 1
        l = res - v - (self.w2[0].bias if fast else 0)
        tm = table if self.full else table * self.mask
        if not self.full:
            l = l * self.mask
        score = (tm * tm).sum(-1) - 2 * l @ tm.T                                       # [n, b, k]: ||l - t||^2 - ||l||^2
        cand = score.topk(a, dim=-1, largest=False).indices                            # [n, b, a]
        if not fast:
            words = self.implicit(table[cand], x_hat)
            n, b, a_, d = words.shape
            return cand, ((res[:, :, None, :] - words) ** 2).sum(-1), \
                lambda j: words.reshape(n, b * a_, d).gather(1, j[..., None].expand(-1, -1, d))
        w1, w2 = self.w1[0], self.w2[0]
        W2 = w2.weight if self.full else w2.weight * self.mask[:, None]                # [d, h]
        hid = F.gelu((table @ w1.weight.T)[cand] + w1(v)[:, :, None, :])              # [n, b, a, h]
        lin = score.gather(-1, cand) + (l * l).sum(-1, keepdim=True)                   # ||l - t||^2
        cross = (l @ W2)[:, :, None, :] - (tm @ W2)[cand]                              # (l - t) W2: [n, b, a, h]
        quad = ((hid @ (W2.T @ W2)) * hid).sum(-1)
        e = lin - 2 * (cross * hid).sum(-1) + quad
        if not self.full:
            e = e + ((res * (1 - self.mask)) ** 2).sum(-1, keepdim=True)
        n, b, a_, h = hid.shape

        def word(j: torch.Tensor) -> torch.Tensor:  # t + v + W2 h + b2 of the chosen candidates only
            bi = (j // a_)[..., None]
            t = table[cand.reshape(n, b * a_).gather(1, j)]
            g = t + v.gather(1, bi.expand(-1, -1, v.shape[-1])) + \
                hid.reshape(n, b * a_, h).gather(1, j[..., None].expand(-1, -1, h)) @ w2.weight.T + w2.bias
            return g if self.full else g * self.mask

        return cand, e, word

    def implicit(self, table_rows: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Codewords [..., a, d] from their linear-table rows [..., a, d] and x_hat [..., d]."""
        g = table_rows + self.cat_x(x_hat).unsqueeze(-2)
        for w1, w2 in zip(self.w1, self.w2):
            g = g + w2(F.gelu(w1(g)))
        return g if self.full else g * self.mask


class QINCo(QuantizerBase):
    """``QINCo(dim, stages)``: ``stages`` bytes per vector with 256-codeword implicit codebooks.

    ``init_from_rq(x)`` fits the standardisation and RQ codebooks (call once before training); ``loss(x[n, d])``
    is what the trainer minimises; ``encode(x) -> codes[n, stages]`` and ``decode(codes) -> x_hat`` work on numpy
    arrays in the input's units; ``forward`` is the quantiser interface (``Quantized``).

    >>> import numpy as np
    >>> from vqladder import QINCo
    >>> x = np.random.default_rng(0).normal(size=(2000, 32)).astype("float32")
    >>> q = QINCo(dim=32, stages=4, hidden=32)         # 4 bytes per vector
    >>> q.init_from_rq(x)                              # residual k-means; train q.loss(batch) after
    >>> codes = q.encode(x[:10], beam=2)
    >>> codes.shape, codes.dtype, q.decode(codes).shape
    ((10, 4), dtype('uint8'), (10, 32))
    """

    def __init__(self, dim: int, stages: int, codebook_size: int = 256, hidden: int = 128, blocks: int = 1,
                 preselect: int = 16, beam: int = 1, train_preselect: int = 16, prefixes: list[int] | None = None,
                 loss_stages: list[int] | None = None):
        super().__init__(codebook_size, track_usage=False)
        if stages < 1:
            raise VQLadderError(f"QINCo needs at least one stage, got {stages}")
        prefixes = list(prefixes) if prefixes else [dim] * stages
        if len(prefixes) != stages or any(not 1 <= p <= dim for p in prefixes):
            raise VQLadderError(f"QINCo prefixes must be {stages} lengths in 1..{dim}, got {prefixes}")
        for name, v in (("preselect", preselect), ("beam", beam), ("train_preselect", train_preselect),
                        ("hidden", hidden)):
            if v < 1:
                raise VQLadderError(f"QINCo {name} must be >= 1, got {v}")
        loss_stages = sorted(set(loss_stages or range(1, stages + 1)))
        if any(not 1 <= k <= stages for k in loss_stages):
            raise VQLadderError(f"QINCo loss_stages must be stage counts in 1..{stages}, got {loss_stages}")
        self.dim, self.n_stages, self.prefixes = dim, stages, prefixes
        self.loss_stages = loss_stages   # the stage counts whose error the training loss averages (default: all)
        self.preselect, self.beam, self.train_preselect = preselect, beam, train_preselect
        self.hidden, self.blocks = hidden, blocks
        self.steps = nn.ModuleList(_Step(dim, codebook_size, hidden, blocks, p) for p in prefixes)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(()))

    @property
    def bits_per_code(self) -> float:
        return self.n_stages * math.log2(self.codebook_size)

    @property
    def bytes_per_vector(self) -> float:
        return self.bits_per_code / 8

    # -- initialisation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def init_from_rq(self, x: np.ndarray, max_rows: int = 0, seed: int = 0, kmeans_iters: int = 15) -> None:
        """Standardisation from ``x`` and stage codebooks from residual k-means (``PrefixRVQ`` with this model's
        prefixes) on ``max_rows`` rows of it (0 = all: k-means of 256 centroids in hundreds of dims needs the
        rows; on 16k rows of 384-dim embeddings it fits far worse than on 65k): QINCo before training is that RQ."""
        self.load_rq_state(rq_init_state(x, self.prefixes, self.codebook_size, max_rows, seed, kmeans_iters))

    @torch.no_grad()
    def load_rq_state(self, state: dict) -> None:
        """Set the standardisation and the first ``stages`` codebooks from ``rq_init_state`` output (which may hold
        more stages: a longer model's residual k-means starts with a shorter one's)."""
        books = state["codebooks"]
        if books.shape[0] < self.n_stages or books.shape[1:] != (self.codebook_size, self.dim):
            raise VQLadderError(f"an RQ init of shape {tuple(books.shape)} does not fit a QINCo of {self.n_stages} "
                                f"stages x {self.codebook_size} x {self.dim}")
        self.mean.copy_(state["mean"])
        self.scale.copy_(state["scale"])
        for st, book in zip(self.steps, books):
            st.codebook.copy_(book)

    # -- the encoder (shared by training and encoding) -------------------------------------------------------------
    def _search(self, z: torch.Tensor, beam: int, preselect: int, grad: bool = False,
                stages: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Standardised vectors z[n, d] -> (codes [n, m], x_hat [n, d], per-stage x_hat list). With ``grad``
        (beam 1 only) the chosen codewords are re-computed with gradients."""
        n, d = z.shape
        m_total = stages or self.n_stages
        x_hat = z.new_zeros(n, 1, d)
        codes = torch.zeros(n, 1, 0, dtype=torch.long, device=z.device)
        partial = []
        for m in range(m_total):
            st = self.steps[m]
            with torch.no_grad():
                b = x_hat.shape[1]
                res = z[:, None, :] - x_hat                                            # [n, b, d]
                cand, e, word = st.candidates(res, x_hat, min(preselect, self.codebook_size))  # [n, b, a] each
                a = cand.shape[-1]
                keep = min(beam, b * a)
                best = e.reshape(n, b * a).topk(keep, dim=-1, largest=False).indices   # [n, keep]
                bi = best // a
                k_idx = cand.reshape(n, b * a).gather(1, best)                         # [n, keep]
                codes = torch.cat([codes.gather(1, bi[..., None].expand(-1, -1, codes.shape[-1])),
                                   k_idx[..., None]], -1)
                prev = x_hat.gather(1, bi[..., None].expand(-1, -1, d))                 # [n, keep, d]
                chosen = word(best)                                                    # [n, keep, d]
            if grad:  # beam 1: recompute the chosen codeword with gradients through this stage's network
                x_prev = x_hat[:, 0] if m else x_hat[:, 0].detach()
                word = st.implicit(st.linear_table()[k_idx[:, 0]][:, None, :], x_prev)[:, 0]
                x_hat = (x_prev + word)[:, None, :]
            else:
                x_hat = prev + chosen
            partial.append(x_hat[:, 0])
        return codes[:, 0], x_hat[:, 0], partial

    # -- training ---------------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor):
        """(mean over ``loss_stages`` of the squared error per dimension after that many stages, metrics) on a batch
        x[n, d] (input units)."""
        z = (x.float() - self.mean) / self.scale
        codes, x_hat, partial = self._search(z, 1, self.train_preselect, grad=True)
        per_stage, loss = self._stage_loss(z, partial)
        st = histogram_stats(torch.bincount(codes[:, 0], minlength=self.codebook_size).float())
        return loss, {"mse": per_stage[-1].detach(), "mse_first": per_stage[0].detach(), "usage_first": st["usage"]}

    def _stage_loss(self, z: torch.Tensor, partial: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the squared error per dimension after each stage [m], its mean over ``loss_stages``)."""
        per_stage = torch.stack([((z - p) ** 2).mean() for p in partial])
        return per_stage, per_stage[[k - 1 for k in self.loss_stages]].mean()

    # -- the quantiser interface ----------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> Quantized:
        shape = z.shape
        flat = z.reshape(-1, self.dim).float()
        zs = (flat - self.mean) / self.scale
        codes, x_hat, partial = self._search(zs, 1 if self.training else self.beam,
                                             self.train_preselect if self.training else self.preselect,
                                             grad=self.training)
        loss = self._stage_loss(zs, partial)[1]
        rec = x_hat * self.scale + self.mean
        z_q = flat + (rec - flat).detach()  # straight-through to the input; the codebooks learn from `loss`
        stats = histogram_stats(torch.bincount(codes[:, 0], minlength=self.codebook_size).float())
        stats["dead_codes"] = torch.zeros(())
        return Quantized(z_q.reshape(shape), codes.reshape(*shape[:-1], self.n_stages), loss, stats)

    def check_codes(self, codes: torch.Tensor) -> None:
        if codes.shape[-1] > self.n_stages:
            raise VQLadderError(f"QINCo codes hold at most {self.n_stages} stages, got {codes.shape[-1]}")
        super().check_codes(codes)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes[..., m] (m <= stages: a prefix of the stages) -> vectors [..., d] in input units."""
        self.check_codes(codes)
        shape = codes.shape
        c = codes.reshape(-1, shape[-1]).long()
        x_hat = torch.zeros(c.shape[0], self.dim, device=self.mean.device)
        for m in range(shape[-1]):
            st = self.steps[m]
            x_hat = x_hat + st.implicit(st.linear_table()[c[:, m]][:, None, :], x_hat)[:, 0]
        return (x_hat * self.scale + self.mean).reshape(*shape[:-1], self.dim)

    # -- numpy helpers (the embedding experiment and index) ---------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: np.ndarray, stages: int | None = None, beam: int | None = None,
               preselect: int | None = None, batch: int = 2048) -> np.ndarray:
        """Codes [n, stages] (uint8 for 256 codewords) of vectors x[n, d]; ``stages`` < the model's: a shorter
        code (the first stages), searched for that length."""
        was = self.training
        self.eval()
        try:
            out = []
            for s in range(0, len(x), batch):
                z = (torch.as_tensor(np.asarray(x[s:s + batch]), dtype=torch.float32) - self.mean) / self.scale
                out.append(self._search(z, beam or self.beam, preselect or self.preselect, stages=stages)[0])
        finally:
            self.train(was)
        codes = torch.cat(out).numpy()
        return codes.astype(np.uint8 if self.codebook_size <= 256 else np.int64)

    def decode(self, codes: np.ndarray, batch: int = 8192) -> np.ndarray:
        c = torch.as_tensor(np.asarray(codes, dtype=np.int64))
        return torch.cat([self.decode_codes(c[s:s + batch]) for s in range(0, len(c), batch)]).numpy()


def standardization(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [d], scale []) of vectors t[n, d]: QINCo codes ``(x - mean) / scale``, whose mean squared value per
    dimension is 1."""
    mean = t.mean(0)
    return mean, ((t - mean) ** 2).sum(1).mean().sqrt().clamp_min(1e-8) / math.sqrt(t.shape[1])


@torch.no_grad()
def rq_init_state(x: np.ndarray, prefixes: list[int], codebook_size: int = 256, max_rows: int = 0, seed: int = 0,
                  kmeans_iters: int = 15) -> dict:
    """{mean [d], scale [], codebooks [stages, k, d]}: the standardisation of ``x`` and residual k-means codebooks
    (one ``PrefixRVQ`` stage per prefix; Lloyd iterations on the residuals, no EMA passes) on ``max_rows`` rows of
    it (0 = all)."""
    from .prefix_rvq import PrefixRVQ

    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    dim = t.shape[1] if t.ndim == 2 else -1
    if t.ndim != 2 or any(p > dim for p in prefixes):
        raise VQLadderError(f"an RQ init for prefixes up to {max(prefixes)} got vectors of shape {tuple(t.shape)}")
    mean, scale = standardization(t)
    if max_rows and max_rows < len(t):
        t = t[torch.randperm(len(t), generator=torch.Generator().manual_seed(seed))[:max_rows]]
    rq = PrefixRVQ(dim, list(prefixes), codebook_size, seed=seed, kmeans_iters=kmeans_iters)
    rq.fit(((t - mean) / scale).numpy(), epochs=0)
    books = torch.zeros(len(prefixes), codebook_size, dim)
    for i, q in enumerate(rq.stages):
        books[i, :, :q.embed.shape[1]] = q.decode_codes(torch.arange(codebook_size))
    return {"mean": mean, "scale": scale, "codebooks": books}
