"""Residual quantisation (Zeghidour et al. 2021; Lee et al. 2022) over FSQ or VQ stages.

Axes: b batch, n positions, d width, r depth. Stage i quantises what stages < i left over:
residual_0 = z, q_i = Q_i(residual_i), residual_{i+1} = residual_i - sg(q_i); z_q = sum_i q_i.
codes[b, n, r]; bits per code position = sum of the stages' bits.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Quantized, QuantizerBase


class ResidualQuantizer(QuantizerBase):
    """A ``QuantizerBase`` whose codes are [..., depth]; code statistics are kept by its stages."""

    def __init__(self, stages: list[QuantizerBase]):
        super().__init__(stages[0].codebook_size, track_usage=False)
        self.stages = nn.ModuleList(stages)
        self.depth = len(stages)

    @property
    def bits_per_code(self) -> float:
        return sum(s.bits_per_code for s in self.stages)

    def forward(self, z: torch.Tensor) -> Quantized:
        residual = z.float()
        total = torch.zeros_like(residual)
        codes, loss, stats = [], z.new_zeros((), dtype=torch.float32), []
        for stage in self.stages:
            out = stage(residual)
            total = total + out.z_q
            residual = residual - out.z_q.detach()
            codes.append(out.codes)
            loss = loss + out.loss
            stats.append(out.stats)
        merged = {k: torch.stack([s[k] for s in stats]).mean() for k in stats[0]}
        merged["dead_codes"] = torch.stack([s["dead_codes"] for s in stats]).sum()
        return Quantized(total, torch.stack(codes, -1), loss, merged)

    def check_codes(self, codes: torch.Tensor) -> None:
        from ..errors import VQLadderError

        if codes.shape[-1] != self.depth:
            raise VQLadderError(f"residual codes need {self.depth} values per position, got {codes.shape[-1]}")
        self.stages[0].check_codes(codes)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        return sum(stage.decode_codes(codes[..., i]) for i, stage in enumerate(self.stages))
