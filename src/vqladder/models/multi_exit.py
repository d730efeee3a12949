"""One multi-exit compressor: a shared trunk whose exits are the ladder's levels, each decoded to tokens.

Exit 1 is a ``SequenceCompressor`` (N tokens -> M_1 codes -> N token logits). Exit k+1 mean-pools exit k's
*pre-quantiser* latents in groups of ``M_k / M_{k+1}`` (so each exit reads the continuous summary below, not
its code ids), runs ``exit_layers`` blocks over its M_{k+1} slots and quantises them with its own codebook.
Decoding an exit k > 1: blocks over its codes, each slot repeated back to M_1 slots (+ a learned offset), then
exit 1's decoder, shared, to token logits. Every exit is trained on the tokens at once, loss weighted by
``exit_weights`` (VQ-VAE-2 trains its top level through the reconstruction of the input; here every level is).

``exit(k)`` returns a view with the ``SequenceCompressor`` interface (``encode``, ``decode``, ``forward``,
``config``, ``quantizer``), so a text ladder and ``eval.evaluate_compressor`` use each exit as a level.
Axes: b batch, n tokens, m_k codes of exit k, d width.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NonNegInt
from ..errors import VQLadderError
from ..nn import Block, RMSNorm, eval_mode, init_weights_, seeded
from ..quantize import QuantizerConfig, build_quantizer
from .compressor import CompressorConfig, SequenceCompressor
from .registry import register


@dataclass
class MultiExitConfig:
    base: CompressorConfig = field(default_factory=CompressorConfig)  # exit 1 (and the shared trunk)
    exits: list[int] = field(default_factory=lambda: [16, 4])           # codes per chunk of exits 2, 3, …
    exit_layers: NonNegInt = 2                                            # blocks per exit, encoder and decoder side
    exit_weights: list[float] = field(default_factory=list)              # loss weight per exit (default all 1)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)  # the upper exits' codebooks
    seed: NonNegInt = 0                                                   # init seed of the exits

    def validate(self) -> None:
        self.base.validate()
        prev = self.base.out_len
        for k, m in enumerate(self.exits, 2):
            if m < 1 or prev % m:
                raise VQLadderError(f"multi-exit: exit {k} has {m} codes; it must divide exit {k - 1}'s {prev}")
            prev = m
        if self.exit_weights and len(self.exit_weights) != 1 + len(self.exits):
            raise VQLadderError(f"multi-exit: exit_weights needs {1 + len(self.exits)} values, got "
                                f"{len(self.exit_weights)}")
        if any(w < 0 for w in self.exit_weights):
            raise VQLadderError("multi-exit: exit_weights must be >= 0")


class _Exit(nn.Module):
    def __init__(self, d: int, n_heads: int, mlp_ratio: float, layers: int, m: int, up: int, qc: QuantizerConfig,
                 seed: int):
        super().__init__()
        self.enc = nn.ModuleList(Block(d, n_heads, mlp_ratio) for _ in range(layers))
        self.dec = nn.ModuleList(Block(d, n_heads, mlp_ratio) for _ in range(layers))
        self.norm_q = RMSNorm(d)
        self.offset = nn.Parameter(torch.zeros(up, d))   # position inside the exit-1 span a slot is repeated over
        self.m, self.up = m, up
        init_weights_(self, zero=("offset",))
        self.quantizer = build_quantizer(qc, d, seed=seed)


@register("multi_exit_compressor", MultiExitConfig)
class MultiExitCompressor(nn.Module):
    def __init__(self, cfg: MultiExitConfig):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.trunk = SequenceCompressor(cfg.base)
        b = cfg.base
        with seeded(cfg.seed):
            self.exits = nn.ModuleList(
                _Exit(b.d_model, b.n_heads, b.mlp_ratio, cfg.exit_layers, m, b.out_len // m, cfg.quantizer,
                      cfg.seed + k) for k, m in enumerate(cfg.exits, 2))

    @property
    def n_exits(self) -> int:
        return 1 + len(self.exits)

    def _latents(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Pre-quantiser latents of every exit: [b, m_k, d]."""
        z = [self.trunk.pre_quant(tokens)]
        for ex in self.exits:
            x = z[-1]
            x = x.view(x.shape[0], ex.m, -1, x.shape[-1]).mean(2)
            for blk in ex.enc:
                x = blk(x)
            z.append(ex.norm_q(x))
        return z

    def _quantizer(self, k: int):
        return self.trunk.quantizer if k == 1 else self.exits[k - 2].quantizer

    def _decode_latents(self, k: int, z_q: torch.Tensor) -> torch.Tensor:
        if k == 1:
            return self.trunk.post_quant(z_q)
        ex = self.exits[k - 2]
        x = z_q
        for blk in ex.dec:
            x = blk(x)
        x = x.repeat_interleave(ex.up, dim=1) + ex.offset.repeat(ex.m, 1).to(x.dtype)
        return self.trunk.post_quant(x)

    def forward_exit(self, k: int, tokens: torch.Tensor):
        """-> (logits[b, n, v], Quantized) of exit k."""
        self.trunk._check_tokens(tokens)
        q = self._quantizer(k)(self._latents(tokens)[k - 1] if k > 1 else self.trunk.pre_quant(tokens))
        return self._decode_latents(k, q.z_q), q

    def loss(self, tokens: torch.Tensor):
        self.trunk._check_tokens(tokens)
        w = self.config.exit_weights or [1.0] * self.n_exits
        total, metrics = 0.0, {}
        for k, z in enumerate(self._latents(tokens), 1):
            q = self._quantizer(k)(z)
            logits = self._decode_latents(k, q.z_q).float()
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
            total = total + w[k - 1] * ce + q.loss
            with torch.no_grad():
                metrics[f"ce{k}"] = ce.detach()
                metrics[f"acc{k}"] = (logits[:4].argmax(-1) == tokens[:4]).float().mean()
        metrics["acc"] = metrics["acc1"]
        return total, metrics

    def exit(self, k: int) -> "ExitView":
        if not 1 <= k <= self.n_exits:
            raise VQLadderError(f"exit {k} does not exist: this model has exits 1 … {self.n_exits}")
        return ExitView(self, k)


class ExitView(nn.Module):
    """Exit k of a ``MultiExitCompressor`` with the ``SequenceCompressor`` interface (shares its weights)."""

    kind = "sequence_compressor"

    def __init__(self, model: MultiExitCompressor, k: int):
        super().__init__()
        self.model, self.k = model, k
        self.config = copy.copy(model.config.base)
        self.config.out_len = model.config.base.out_len if k == 1 else model.config.exits[k - 2]
        self.quantizer = model._quantizer(k)
        self.head = model.trunk.head

    autoregressive = False

    @property
    def bits_per_token(self) -> float:
        return self.config.out_len * self.quantizer.bits_per_code / self.config.in_len

    def forward(self, tokens: torch.Tensor):
        return self.model.forward_exit(self.k, tokens)

    @torch.no_grad()
    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        with eval_mode(self.model):
            return self.model.forward_exit(self.k, tokens)[1].codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.dim() != 2 or codes.shape[1] != self.config.out_len:
            raise VQLadderError(f"expected {self.config.out_len} codes per chunk, got shape {list(codes.shape)}")
        z_q = self.quantizer.decode_codes(codes).to(self.head.weight.dtype)
        return self.model._decode_latents(self.k, z_q)

