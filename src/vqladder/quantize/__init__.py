"""Quantizers, one file each, one interface (see ``base.py``): FSQ, VQ (EMA), residual over either, and for
embedding vectors prefix residual VQ and QINCo (implicit neural codebooks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import NonNegFloat, NonNegInt, OpenUnit, OptPosInt, PosInt
from ..errors import VQLadderError
from .base import Quantized, QuantizerBase  # noqa: F401
from .fsq import FSQ, levels_for  # noqa: F401
from .qinco import QINCo  # noqa: F401
from .residual import ResidualQuantizer  # noqa: F401
from .vq import VectorQuantizer  # noqa: F401


@dataclass
class QuantizerConfig:
    kind: str = "fsq"                 # fsq | vq
    codebook_size: PosInt = 4096         # VQ: number of codes. FSQ: a request, the recommended levels nearest it
                                         # (4096 -> [7,5,5,5,5] = 4,375 codes; model.quantizer.codebook_size is real)
    levels: list[PosInt] = field(default_factory=list)  # FSQ explicit levels; [] = recommended for codebook_size
    depth: PosInt = 1                    # residual depth; > 1 stacks residual stages of `kind`
    codebook_dim: OptPosInt = 32            # VQ: codebook vector width (low-dim codebook); -1 = model width
    decay: OpenUnit = 0.99               # VQ: EMA decay
    commitment: NonNegFloat = 0.25          # VQ: commitment loss weight
    kmeans_init: bool = True          # VQ: k-means init on the first batch
    kmeans_iters: NonNegInt = 10            # VQ: Lloyd iterations of the init
    dead_threshold: NonNegFloat = 0.03      # VQ: restart codes whose EMA count < this x uniform share; 0 = never
    cosine: bool = False              # VQ: cosine-similarity codebook (l2-normalised vectors)
    gradient: str = "ste"             # VQ: ste (straight-through) | rotation (rotation trick)
    dead_after: PosInt = 100             # stats: a code unused this many training steps counts as dead
    norm: str = "batch"               # FSQ: batch (standardise the input over the batch; stops collapse) | none

    def validate(self) -> None:
        if self.kind not in ("fsq", "vq"):
            raise VQLadderError(f"quantizer.kind must be fsq or vq, got {self.kind!r}")
        if self.gradient not in ("ste", "rotation"):
            raise VQLadderError(f"quantizer.gradient must be ste or rotation, got {self.gradient!r}")
        if self.norm not in ("batch", "none"):
            raise VQLadderError(f"quantizer.norm must be batch or none, got {self.norm!r}")
        if self.depth < 1:
            raise VQLadderError(f"quantizer.depth must be >= 1, got {self.depth}")
        if self.codebook_size < 2:
            raise VQLadderError(f"quantizer.codebook_size must be >= 2, got {self.codebook_size}")
        if self.kind == "fsq" and not self.levels:
            levels_for(self.codebook_size)  # raises a clear error for unsupported sizes

    def effective_codebook_size(self) -> int:
        if self.kind == "fsq":
            import math

            return math.prod(self.levels or levels_for(self.codebook_size))
        return self.codebook_size


def build_quantizer(cfg: QuantizerConfig, dim: int, seed: int = 0):
    """The quantizer described by ``cfg`` for inputs of width ``dim``."""

    def one(i: int):
        if cfg.kind == "fsq":
            return FSQ(dim, cfg.levels or levels_for(cfg.codebook_size), cfg.dead_after, cfg.norm)
        return VectorQuantizer(
            dim, cfg.codebook_size, cfg.codebook_dim, cfg.decay, cfg.commitment, cfg.kmeans_init,
            cfg.kmeans_iters, cfg.dead_threshold, cfg.cosine, cfg.gradient, seed=seed + 7919 * i,
            dead_after=cfg.dead_after,
        )

    if cfg.depth == 1:
        return one(0)
    return ResidualQuantizer([one(i) for i in range(cfg.depth)])
