"""The rate term of a compressor: a light causal context model over a chunk's FSQ codes, trained jointly, whose
cross-entropy is the codes' *actual* rate (the rate–distortion objective of learned compression, Ballé et al.).

Codes trained only to reconstruct cost their full nominal ``M·log2 K / N`` bits per token under any model of
them; with ``rate_weight`` > 0 the encoder is also pushed towards codes this model predicts, so the level above
can predict them too. The model is factorised over the FSQ dimensions given the chunk's earlier codes:
``q(code_i | codes_<i) = prod_c q_c(level_ic | codes_<i)``, a proper distribution over the K codes, so its
cross-entropy is a real code length (an upper bound on the codes' entropy).

Gradients reach the encoder through a soft-to-hard relaxation (Agustsson et al., 2017): each FSQ dimension's
continuous value ``u`` (in level units, before rounding) gets a softmax assignment over the levels,
``softmax(-(u - v)^2 / temperature)``; the one-hot of the rounded level is used forward and the soft one's
gradient backward (straight-through), so the rate term moves ``u`` towards levels the model finds likely. The
context model itself is trained on the hard codes (its inputs and targets detached from the encoder).

Axes: b batch, m codes per chunk, c FSQ dimensions, l levels of one dimension, d width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import Block, RMSNorm, init_weights_


class CodeRateModel(nn.Module):
    def __init__(self, levels: list[int], length: int, d_model: int = 64, n_layers: int = 1,
                 temperature: float = 0.5):
        super().__init__()
        self.levels, self.temperature = [int(v) for v in levels], temperature
        offsets = torch.tensor([0] + self.levels[:-1]).cumsum(0)
        self.register_buffer("_offsets", offsets, persistent=False)
        total = sum(self.levels)
        self.emb = nn.Embedding(total, d_model)    # one table per dimension, stacked
        self.pos = nn.Parameter(torch.zeros(length, d_model))
        self.bos = nn.Parameter(torch.zeros(d_model))
        self.blocks = nn.ModuleList(Block(d_model, max(1, d_model // 32)) for _ in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, total, bias=False)
        init_weights_(self, normal=("pos", "bos"))

    def log_q(self, level_idx: torch.Tensor, context: torch.Tensor | None = None) -> list[torch.Tensor]:
        """level_idx[b, m, c] (hard, integer) -> per dimension log q_c[b, m, l_c] of code i given codes < i (and
        ``context[b, d]``, a conditioning vector added at the first position, when the level above conditions
        its prior on something: a planner's goal and layout)."""
        b, m, _ = level_idx.shape
        x = self.emb(level_idx + self._offsets).sum(2)                       # [b, m, d]
        first = self.bos.expand(b, 1, -1).to(x.dtype)
        if context is not None:
            first = first + context[:, None].to(x.dtype)
        x = torch.cat([first, x[:, :-1]], 1) + self.pos[:m].to(x.dtype)
        for blk in self.blocks:
            x = blk(x, causal=True)
        logits = self.head(self.norm(x)).float()
        return [F.log_softmax(part, -1) for part in logits.split(self.levels, -1)]

    def forward(self, u: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """u[b, m, c]: continuous level coordinates (rounding gives the code's levels). Returns
        ``(model_nats, encoder_nats)``, both summed over the batch's codes and equal in value: the first trains the
        context model (hard codes, encoder detached), the second the encoder (the model's log q detached, the
        soft assignment's straight-through gradient)."""
        idx = u.detach().round().long()
        idx = torch.minimum(idx.clamp_min(0), torch.tensor(self.levels, device=u.device) - 1)
        log_q = self.log_q(idx, context)
        model = u.new_zeros((), dtype=torch.float32)
        enc = u.new_zeros((), dtype=torch.float32)
        for c, (lq, n_lv) in enumerate(zip(log_q, self.levels)):
            hard = F.one_hot(idx[..., c], n_lv).float()
            v = torch.arange(n_lv, device=u.device, dtype=torch.float32)
            soft = torch.softmax(-(u[..., c:c + 1].float() - v) ** 2 / self.temperature, -1)
            model = model - (hard * lq).sum()
            enc = enc - ((hard + soft - soft.detach()) * lq.detach()).sum()
        return model, enc

    @torch.no_grad()
    def code_nats(self, level_idx: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Per-chunk -log q (nats) of hard codes level_idx[b, m, c]."""
        lq = self.log_q(level_idx, context)
        return -sum(p.gather(-1, level_idx[..., c:c + 1]).squeeze(-1) for c, p in enumerate(lq)).sum(1)
