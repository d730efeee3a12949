"""A ladder's geometry in one object: how many symbols each level has per top chunk, what each upsampler reads
and writes, each level's rate, and the rules that make a stack of levels a ladder. Built and validated once from
the level configs (``from_configs``: config validation, before anything trains) or the trained levels
(``from_models``: the ``Ladder``, joint fine-tuning), and used by both.

Modes: ``text`` and ``multi_exit`` (every level a compressor over the tokens at its own rate: level k's chunk covers
whole level-(k-1) chunks) and ``codes`` (level k+1 reads level k's code stream: its chunk covers whole lower
chunks of codes).

>>> from vqladder.text.geometry import LadderGeometry, LevelShape
>>> g = LadderGeometry("text", (LevelShape(256, 64, 1024, 4096), LevelShape(256, 16, 1024, 4096)))
>>> g.chunk_len(0), g.chunk_len(1), g.chunk_len(2), g.up_geometry(2), round(g.bits_per_token(2), 3)
(256, 64, 16, (16, 64), 0.75)
>>> LadderGeometry("text", (LevelShape(256, 64, 1024, 4096), LevelShape(96, 16, 1024, 4096))).validate()
Traceback (most recent call last):
...
vqladder.errors.VQLadderError: level 2: in_len=96 must be a multiple of level 1's in_len=256 (a chunk covers whole lower chunks)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import VQLadderError

MODES = ("text", "codes", "multi_exit")


@dataclass(frozen=True)
class LevelShape:
    in_len: int          # symbols a chunk of this level reads (tokens, or codes of the level below)
    out_len: int         # codes per chunk (0 for a variable-rate level: it varies)
    reads: int = 0       # vocabulary it reads (0: not known yet, taken from the data)
    emits: int = 0       # symbols it emits: codes, or (code, length) symbols of a variable-rate level
    variable: bool = False


@dataclass(frozen=True)
class LadderGeometry:
    mode: str
    levels: tuple[LevelShape, ...]

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def from_configs(cls, mode: str, configs: list, vocab: int = 0) -> "LadderGeometry":
        """From the level configs (``CompressorConfig``); ``vocab``: the token vocabulary, 0 when not known yet."""
        shapes = []
        for k, c in enumerate(configs):
            reads = c.vocab_size or (vocab if (k == 0 or mode != "codes") else 0)
            emits = c.quantizer.effective_codebook_size() if hasattr(c, "quantizer") else 0
            shapes.append(LevelShape(c.in_len, c.out_len, reads, emits, False))
        return cls(mode, tuple(shapes))

    @classmethod
    def from_models(cls, mode: str, models: list) -> "LadderGeometry":
        """From trained levels (sequence or variable-rate compressors)."""
        shapes = []
        for m in models:
            variable = getattr(m, "kind", "") == "variable_compressor"
            emits = m.stream_vocab if variable else m.quantizer.codebook_size
            shapes.append(LevelShape(m.config.in_len, getattr(m.config, "out_len", 0), m.config.vocab_size, emits,
                                     variable))
        return cls(mode, tuple(shapes))

    def validate(self) -> "LadderGeometry":
        """The rules of a ladder, each broken one a one-line ``VQLadderError``; returns ``self``."""
        if self.mode not in MODES:
            raise VQLadderError(f"ladder mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.levels:
            raise VQLadderError("a ladder needs at least one level")
        lv = self.levels
        if self.mode == "codes":
            for k in range(1, len(lv)):
                below, here = lv[k - 1], lv[k]
                if here.reads and below.emits and here.reads != below.emits:
                    raise VQLadderError(f"level {k + 1} reads {here.reads} symbols but level {k} has {below.emits} "
                                        f"symbols")
                if not below.variable and here.in_len % below.out_len:
                    raise VQLadderError(f"level {k + 1}: in_len={here.in_len} must be a multiple of level {k}'s "
                                        f"out_len={below.out_len} (a chunk covers whole lower chunks)")
            return self
        if any(s.variable for s in lv):
            raise VQLadderError("a text ladder takes fixed-rate levels (variable-rate levels need mode: codes)")
        vocab = lv[0].reads
        for k, s in enumerate(lv, 1):
            if vocab and s.reads and s.reads != vocab:
                raise VQLadderError(f"level {k} of a text ladder reads {s.reads} symbols, not the {vocab} tokens")
            if k > 1 and s.in_len % lv[k - 2].in_len:
                raise VQLadderError(f"level {k}: in_len={s.in_len} must be a multiple of level {k - 1}'s "
                                    f"in_len={lv[k - 2].in_len} (a chunk covers whole lower chunks)")
        return self

    # -- reading ----------------------------------------------------------------------------------------------
    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def variable_level(self) -> int | None:
        """The lowest variable-rate level (1-based), above which symbols per chunk are not fixed; None if none."""
        return next((k + 1 for k, s in enumerate(self.levels) if s.variable), None)

    def check_level(self, level: int) -> None:
        if not 0 <= level <= self.n_levels:
            raise VQLadderError(f"level {level} does not exist: this ladder has levels 0 (tokens) … {self.n_levels}")

    def vocab(self, level: int) -> int:
        """Symbols at ``level`` (level 0 = the token vocabulary)."""
        self.check_level(level)
        return self.levels[0].reads if level == 0 else self.levels[level - 1].emits

    def chunk_len(self, level: int) -> int:
        """Symbols of ``level`` per top chunk (below the lowest variable-rate level, if any)."""
        self.check_level(level)
        v = self.variable_level
        top = self.n_levels if v is None else v - 1
        if level > top:
            raise VQLadderError(f"level {level} has a variable number of symbols per chunk (level {v} is "
                                f"variable-rate); measure it from encode()")
        lv = self.levels
        if self.mode != "codes":
            top_in = lv[-1].in_len
            return top_in if level == 0 else top_in // lv[level - 1].in_len * lv[level - 1].out_len
        n = lv[-1].out_len if v is None else lv[v - 1].in_len
        for k in range(top, level, -1):  # walk down: a level-k chunk of in_len covers in_len / out_len_{k-1}
            n = n // lv[k - 1].out_len * lv[k - 1].in_len
        return n

    def up_geometry(self, level: int) -> tuple[int, int]:
        """(parent_len, length) of upsampler ``level``: codes per level chunk and level-(k-1) symbols under it."""
        self.check_level(level)
        c = self.levels[level - 1]
        if self.mode == "codes":
            return c.out_len, c.in_len
        below = self.levels[level - 2] if level > 1 else None
        return c.out_len, c.in_len if below is None else c.in_len // below.in_len * below.out_len

    def bits_per_token(self, level: int) -> float:
        """Rate of ``level``'s codes in bits per token (level 0: log2 of the token vocabulary)."""
        return self.chunk_len(level) * math.log2(self.vocab(level)) / self.chunk_len(0)
