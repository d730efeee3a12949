"""Fixed-length windows over a token array: a seeded, resumable, DDP-shardable batch sampler.

Each epoch draws a random shift in ``[0, window)`` (a multiple of ``align``), cuts the array into non-overlapping windows from that
shift, and permutes them with a generator seeded by ``(seed, epoch)``. Every step consumes the next
``batch_size * world`` windows of that global stream and rank ``r`` takes its contiguous share, so a run on
2 ranks x 8 sees exactly the windows a run on 1 rank x 16 sees. Batches run across epoch ends, so a tiny
corpus still yields full batches. ``state_dict()`` is two integers, the same on every rank: resuming from it
reproduces the exact same stream of batches.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import VQLadderError


class WindowSampler:
    """Seeded random windows of ``window`` tokens from a token array, ``batch_size`` at a time (``next_batch()``),
    sharded over ``world`` ranks, with ``state_dict()`` for exact resume. Example in ``vqladder.Trainer``."""

    def __init__(self, tokens: np.ndarray, window: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world: int = 1, split: str = "train", align: int = 1):
        n = len(tokens)
        if n < window:
            raise VQLadderError(
                f"the {split} split has {n} tokens, fewer than one chunk of {window}; use a bigger corpus "
                f"or a smaller model.in_len"
            )
        self.tokens, self.window, self.batch_size = tokens, window, batch_size
        self.seed, self.rank, self.world = seed, rank, world
        self.align = max(1, int(align))  # window starts are multiples of align (code streams: chunk boundaries)
        self.epoch, self.pos = 0, 0
        self._perm_epoch, self._perm = -1, None

    def _epoch_starts(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            n = len(self.tokens)
            shift = int(torch.randint(0, max(1, self.window // self.align), (1,), generator=g)) * self.align \
                if n >= 2 * self.window else 0
            n_win = (n - shift) // self.window
            perm = torch.randperm(n_win, generator=g).numpy()
            self._perm = shift + perm.astype(np.int64) * self.window
            self._perm_epoch = epoch
        return self._perm

    def next_starts(self) -> np.ndarray:
        """Start offsets of this rank's next batch."""
        out = []
        need = self.batch_size * self.world
        while need > 0:
            starts = self._epoch_starts(self.epoch)
            take = starts[self.pos:self.pos + need]
            out.append(take)
            need -= len(take)
            self.pos += len(take)
            if self.pos >= len(starts):
                self.epoch, self.pos = self.epoch + 1, 0
        glob = np.concatenate(out)
        return glob[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]

    def next_batch(self) -> torch.Tensor:
        """``[batch_size, window]`` int64 token ids."""
        return gather_windows(self.tokens, self.next_starts(), self.window)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])


def gather_windows(tokens: np.ndarray, starts: np.ndarray, window: int) -> torch.Tensor:
    idx = starts[:, None] + np.arange(window)[None, :]
    return torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))


def val_windows(tokens: np.ndarray, window: int, max_windows: int = 0, rank: int = 0, world: int = 1):
    """Deterministic held-out windows of ``window`` tokens on a grid of stride ``window``; with ``max_windows``
    (> 0) fewer than the split holds, that many spread evenly over the whole split (not its first pages).

    Returns the start offsets for this rank; evaluation gathers them in batches."""
    n_win = len(tokens) // window
    if n_win == 0:
        raise VQLadderError(f"the val split has {len(tokens)} tokens, fewer than one chunk of {window}")
    idx = np.arange(n_win, dtype=np.int64)
    if 0 < max_windows < n_win:
        idx = np.floor(np.arange(max_windows) * (n_win / max_windows)).astype(np.int64)
    return idx[rank::world] * window


class RowSampler:
    """Seeded, resumable, DDP-shardable batches of whole rows of a fixed array (episodes, clips, code rows).

    Each epoch is a permutation seeded by ``(seed, epoch)``; a step takes the next ``batch_size * world`` rows
    and rank ``r`` its contiguous share (as ``WindowSampler``). Integer rows come back as int64, float rows as
    float32."""

    def __init__(self, rows: np.ndarray, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if len(rows) == 0:
            raise VQLadderError("no rows to sample from")
        self.rows, self.batch_size, self.seed, self.rank, self.world = rows, batch_size, seed, rank, world
        self.epoch, self.pos = 0, 0

    def _perm(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.rows), generator=g).numpy()

    def next_batch(self) -> torch.Tensor:
        need, out = self.batch_size * self.world, []
        while need:
            perm = self._perm()
            take = perm[self.pos:self.pos + need]
            out.append(take)
            need -= len(take)
            self.pos += len(take)
            if self.pos >= len(perm):
                self.epoch, self.pos = self.epoch + 1, 0
        idx = np.concatenate(out)[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        rows = self.rows[idx]
        return torch.from_numpy(rows.astype(np.float32 if np.issubdtype(rows.dtype, np.floating) else np.int64))

    def state_dict(self):
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, s):
        self.epoch, self.pos = int(s["epoch"]), int(s["pos"])


class PairSampler:
    """Batches ``cat([parent codes, lower symbols], 1)`` of aligned chunks (for upsamplers); with ``prev``,
    ``cat([parent codes, previous chunk's lower symbols, lower symbols], 1)``, the previous chunk all -1 for the
    first chunk of the stream (there is none)."""

    def __init__(self, lower: np.ndarray, parent: np.ndarray, length: int, parent_len: int, batch_size: int,
                 seed: int, rank: int = 0, world: int = 1, prev: bool = False):
        self.inner = WindowSampler(lower, length, batch_size, seed, rank, world, align=length)
        self.parent, self.lower, self.length, self.parent_len, self.prev = parent, lower, length, parent_len, prev

    def next_batch(self) -> torch.Tensor:
        return pair_batch(self.lower, self.parent, self.inner.next_starts(), self.length, self.parent_len, self.prev)

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


def pair_batch(lower: np.ndarray, parent: np.ndarray, starts: np.ndarray, length: int, parent_len: int,
               prev: bool = False, first: np.ndarray | None = None) -> torch.Tensor:
    """The upsampler rows of the chunks starting at ``starts`` (offsets into ``lower``, multiples of
    ``length``): parent codes, with ``prev`` the previous chunk's symbols (-1s where there is none: at the start
    of the stream, or where ``first`` is true), then the chunk's symbols."""
    low = gather_windows(lower, starts, length)
    par = gather_windows(parent, starts // length * parent_len, parent_len)
    if not prev:
        return torch.cat([par, low], 1)
    none = starts < length if first is None else (starts < length) | first
    before = gather_windows(lower, np.where(none, 0, starts - length), length)
    before[torch.from_numpy(np.asarray(none))] = -1
    return torch.cat([par, before, low], 1)
