"""Learned subgoal codes that name *where a segment leads*: a quantised encoder of a room segment's end state.

The endstate contender's vocabulary (``planning.config``). Each room-to-room segment of a demonstration
(``planners.room_segments``) is coded by the cell its room's walk ends in (the first cell of the next room, or
the plan's last cell in its last room; every piece of one room's walk carries it, as the door codes do), seen
*relative to the segment's start* and in the task's context (layout, the segment's start cell, goal, return
bucket). ``EndStateCoder`` learns that code as an autoencoder with a small FSQ bottleneck (HIQL-style subgoal
representations, Director's goal autoencoder):

* encoder (``encoder_sees: relative``, the default): the start's place in its room and the displacement
  (end - start) -> one FSQ code of ``prod(levels)`` values, so a code means the same move from the same spot in
  every task; ``full`` also shows it the context symbols and the end cell, and a code's meaning may then change
  from task to task;
* decoder: the context symbols and the code -> the end cell (cross-entropy over the maze's cells).

Given its start and the layout, a room walk ends in one of at most five places (four doors or the goal room's
last cell); which code names which place is the encoder's choice: the model is never told about doors. Measured
on the 3x3 planning preset, the relative codes are what the level above can predict and the full ones are not
(docs/results/planning.md). ``rate_weight`` > 0 adds the rate term of ``models.rate`` (the codes' cross-entropy
under a light model of the code given the context alone: layout, start, goal -- the level above's
conditioning), so the codes become predictable from the task, the same mechanism the text compressor uses; the
rate model is trained beside the coder whatever the weight, so every coder reports its codes' rate given the
task (``rate_bits``) beside their nominal ``log2 prod(levels)``. The contender's top prior and segment decoder
(a goal-reaching policy toward the code's end cell: trained on the demonstrations' segments relabelled with
the codes of where they actually led) are the rooms contender's.

Rows (``endstate_rows``): ``[context (cond_len symbols), the start's place in its room, displacement index, end
cell index]``.
Axes: b batch, c context symbols, d width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import NonNegFloat, NonNegInt, PosInt, trunk
from ..errors import VQLadderError
from ..models.rate import CodeRateModel
from ..models.registry import register
from ..nn import Block, RMSNorm, check_heads, init_weights_, seeded
from ..quantize import FSQ
from .maze import DELTA, END


@dataclass
class EndStateConfig(trunk(64, 2)):
    cond_vocab: NonNegInt = 0       # context symbols (the maze codec's conditioning vocabulary)
    cond_len: NonNegInt = 0         # context symbols per row
    cells: NonNegInt = 0            # cells of the maze (the end cell's classes)
    span: NonNegInt = 0             # displacements per axis: (end - start) + (span - 1) // 2 in [0, span)
    room: NonNegInt = 0             # cells per room side (the start's place in its room: room * room symbols)
    levels: list[PosInt] = field(default_factory=lambda: [8, 8, 4])  # FSQ levels: prod(levels) codes
    n_layers: PosInt = 1            # blocks of the encoder and of the decoder each
    rate_weight: NonNegFloat = 0.0  # weight of the codes' nats under the context-only rate model
    encoder_sees: str = "relative"  # relative: the start's place in its room and the displacement only (a code then
                                    # means the same move from the same spot in every task) | full: also the context
                                    # and the end cell (a code's meaning may then change from task to task)

    def validate(self) -> None:
        check_heads("endstate.", self.d_model, self.n_heads)
        if not self.levels or any(int(v) < 2 for v in self.levels) or len(self.levels) > 8:
            raise VQLadderError(f"endstate.model.levels must be 1 to 8 FSQ levels >= 2, got {self.levels}")
        if self.encoder_sees not in ("relative", "full"):
            raise VQLadderError(f"endstate.model.encoder_sees must be relative or full, got {self.encoder_sees!r}")


@register("endstate_coder", EndStateConfig)
class EndStateCoder(nn.Module):
    def __init__(self, cfg: EndStateConfig):
        super().__init__()
        cfg.validate()
        if cfg.cond_vocab < 1 or cfg.cond_len < 1 or cfg.cells < 2 or cfg.span < 1 or cfg.room < 1:
            raise VQLadderError("endstate coder: cond_vocab, cond_len, cells, span and room must be set")
        self.config = cfg
        with seeded(cfg.seed):
            d = cfg.d_model
            self.ctx_emb = nn.Embedding(cfg.cond_vocab, d)
            self.pos = nn.Parameter(torch.zeros(cfg.cond_len + 3, d))
            self.spot_emb = nn.Embedding(cfg.room * cfg.room, d)
            self.disp_emb = nn.Embedding(cfg.span * cfg.span, d)
            self.end_emb = nn.Embedding(cfg.cells, d)
            self.enc = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers))
            self.enc_norm = RMSNorm(d)
            self.quantizer = FSQ(d, list(cfg.levels))
            self.dec = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers))
            self.dec_norm = RMSNorm(d)
            self.head = nn.Linear(d, cfg.cells, bias=False)
            # the rate model's context: the same symbols, pooled by its own small encoder (no end state)
            # (its own embedding: training it never moves the coder's; with rate_weight 0 it only measures the rate)
            self.rate = CodeRateModel(list(cfg.levels), 1, d, 1)
            self.rate_emb = nn.Embedding(cfg.cond_vocab, d)
            self.rate_ctx = nn.ModuleList([Block(d, cfg.n_heads, cfg.mlp_ratio)])
            init_weights_(self, normal=("pos",))

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def _check(self, batch: torch.Tensor) -> None:
        c = self.config
        if batch.dim() != 2 or batch.shape[1] != c.cond_len + 3:
            raise VQLadderError(f"endstate coder expects rows of {c.cond_len + 3} symbols, got {tuple(batch.shape)}")
        ctx, spot, disp, end = batch[:, :c.cond_len], batch[:, c.cond_len], batch[:, c.cond_len + 1], batch[:, c.cond_len + 2]
        for what, x, n in (("context", ctx, c.cond_vocab), ("place in the room", spot, c.room * c.room),
                           ("displacement", disp, c.span * c.span), ("end cell", end, c.cells)):
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= n):
                raise VQLadderError(f"endstate coder: {what} symbol out of range [0, {n})")

    def _run(self, blocks, norm, x):
        for blk in blocks:
            x = blk(x)
        return norm(x)

    def _encode(self, batch: torch.Tensor):
        self._check(batch)
        c = self.config.cond_len
        rel = [self.spot_emb(batch[:, c:c + 1]), self.disp_emb(batch[:, c + 1:c + 2])]
        if self.config.encoder_sees == "full":
            x = torch.cat([self.ctx_emb(batch[:, :c]), *rel, self.end_emb(batch[:, c + 2:c + 3])], 1)
            x = x + self.pos.to(x.dtype)
        else:
            x = torch.cat(rel, 1) + self.pos[:2].to(rel[0].dtype)
        h = self._run(self.enc, self.enc_norm, x)[:, -1:]   # [b, 1, d]
        return self.quantizer(h)

    def _decode(self, ctx: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.ctx_emb(ctx), z_q.to(self.ctx_emb.weight.dtype)], 1)
        x = x + self.pos[:x.shape[1]].to(x.dtype)
        return self.head(self._run(self.dec, self.dec_norm, x)[:, -1]).float()   # [b, cells]

    @torch.no_grad()
    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """rows[b, cond_len + 3] -> codes[b] (eval statistics: a row's code never depends on its batch mates)."""
        was = self.training
        self.eval()
        try:
            return self._encode(batch.long()).codes[:, 0]
        finally:
            self.train(was)

    @torch.no_grad()
    def decode(self, ctx: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """context[b, cond_len], codes[b] -> the end cell's logits[b, cells]."""
        return self._decode(ctx.long(), self.quantizer.decode_codes(codes.long()[:, None]))

    def _rate_context(self, ctx: torch.Tensor) -> torch.Tensor:
        x = self.rate_emb(ctx) + self.pos[:ctx.shape[1]].to(self.rate_emb.weight.dtype)
        return self._run(self.rate_ctx, nn.Identity(), x).mean(1)

    def loss(self, batch: torch.Tensor):
        c = self.config.cond_len
        q = self._encode(batch)
        logits = self._decode(batch[:, :c], q.z_q)
        end = batch[:, c + 2]
        ce = F.cross_entropy(logits, end)
        stats = {"ce": ce.detach(), "acc": (logits.argmax(-1) == end).float().mean(), **q.stats}
        model_nats, enc_nats = self.rate(q.u, context=self._rate_context(batch[:, :c]))
        n = batch.shape[0]
        loss = ce + q.loss + model_nats / n + self.config.rate_weight * enc_nats / n
        stats["rate_bits"] = (model_nats / n / np.log(2)).detach()
        return loss, stats

    @torch.no_grad()
    def rate_bits(self, ctx: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Bits of each code under the rate model given its context alone (layout, start, goal: what the level
        above conditions on); trained beside the coder whatever ``rate_weight``, which only decides whether the
        encoder is pushed towards codes it predicts."""
        idx = self.quantizer.level_indices(codes.long())[:, None]            # [b, 1, c]
        return self.rate.code_nats(idx, context=self._rate_context(ctx.long())) / np.log(2)


def walk_ends(segs: np.ndarray, cells: np.ndarray, used: np.ndarray, exits: np.ndarray) -> np.ndarray:
    """The cell each segment's room walk ends in (``room_segments``' outputs): for segment j, the cell after the
    first segment at or after j that crosses into another room, else the cell the plan ends in; ``[e, n_segs, 2]``
    (segments from ``used`` on: the plan's last cell). A segment's moves are valid by construction, so the cell
    after it is its start plus its moves' steps."""
    step = np.zeros((END + 1, 2), dtype=np.int64)
    for m, (dr, dc) in DELTA.items():
        step[m] = (dr, dc)
    after = cells + step[segs].sum(2)                       # [e, n_segs, 2]: the cell after each segment
    out = np.empty_like(cells)
    for e in range(len(cells)):
        k = int(used[e])
        cur = after[e, k - 1] if k else cells[e, 0]
        out[e, k:] = cur
        for j in range(k - 1, -1, -1):
            if exits[e, j] >= 0:
                cur = after[e, j]
            out[e, j] = cur
    return out


def endstate_rows(codec, cond: np.ndarray, segs: np.ndarray, cells: np.ndarray, used: np.ndarray,
                  exits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coder rows ``[context, place in the room, displacement, end cell]`` of every segment (``[e, n_segs,
    cond_len + 3]``; the context is the task's conditioning with the start replaced by the segment's start cell;
    the place is the start's cell within its room) and the mask of segments that hold moves (``j < used``)."""
    W, S = codec.cfg.side, codec.cfg.room
    ends = walk_ends(segs, cells, used, exits)
    span = 2 * W - 1
    ctx = codec.with_start(np.repeat(np.asarray(cond, dtype=np.int64)[:, None], cells.shape[1], 1), cells)
    spot = (cells[..., 0] % S) * S + cells[..., 1] % S
    disp = (ends[..., 0] - cells[..., 0] + W - 1) * span + (ends[..., 1] - cells[..., 1] + W - 1)
    rows = np.concatenate([ctx, spot[..., None], disp[..., None], (ends[..., 0] * W + ends[..., 1])[..., None]], -1)
    held = np.arange(cells.shape[1])[None, :] < used[:, None]
    return rows, held


def endstate_codes(coder: EndStateCoder, rows: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Codes of ``endstate_rows``: the coder's code for segments that hold moves, ``K`` (the "plan ends" code,
    ``K = coder.codebook_size``) for the rest."""
    K = coder.codebook_size
    flat = rows.reshape(-1, rows.shape[-1])
    codes = np.concatenate([coder.encode(torch.from_numpy(flat[i:i + 4096])).numpy()
                            for i in range(0, len(flat), 4096)]) if len(flat) else np.zeros(0, np.int64)
    return np.where(held, codes.reshape(held.shape), K)
