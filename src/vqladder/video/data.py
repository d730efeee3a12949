"""Small algorithmic pixel videos with ground-truth state: deterministic by seed, vectorised over clips,
cached to disk.

Kinds (``VideoDataConfig.kind``):

* ``balls``   k balls in a box, constant speed, elastic reflection at the walls (no ball-ball collisions).
              State: positions and velocities [clips, frames, k, 2] in pixels (row, col).
* ``sprites`` k glyphs (5x5 bitmaps: cross, square, diamond, ...) moving one pixel-step at a time with integer
              velocities, bouncing off the walls. State: top-left positions and velocities.
* ``life``    Conway's Game of Life on a torus, random soup (density 0.35). State: the cells themselves.
* ``colour``  hidden structure: one ball whose colour (R -> G -> B -> R) changes at every wall hit, so the
              colour depends on the history of hits, not on the current position. State: position,
              velocity and colour index.

Frames are float32 in [0, 1], shape [clips, frames, channels, size, size] (channels 1, or 3 for ``colour``).
``load_videos`` caches ``<cache_dir>/<kind>-<hash of the config>.npz`` (written atomically).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import NonNegFloat, NonNegInt, PathStr, PosFloat, PosInt
from ..errors import VQLadderError
from ..io import atomic_save_npz, own_dir

KINDS = ("balls", "sprites", "life", "colour")

GLYPHS = np.array([
    [[0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0]],  # plus
    [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]],  # square
    [[0, 0, 1, 0, 0], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 1, 0, 0]],  # diamond
    [[1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1]],  # cross
    [[1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],  # triangle
], dtype=np.float32)


@dataclass
class VideoDataConfig:
    kind: str = "balls"               # balls | sprites | life | colour
    size: PosInt = 32                    # frame height = width in pixels (16 to 64)
    frames: PosInt = 16                  # frames per clip
    objects: NonNegInt = 2                  # balls / sprites (ignored by life; colour has one ball)
    radius: PosFloat = 3.0               # ball radius in pixels
    speed: NonNegFloat = 1.5                # ball speed in pixels per frame
    train_clips: PosInt = 2000           # training clips
    test_clips: PosInt = 200             # held-out clips (another seed stream)
    seed: NonNegInt = 0                     # generator seed
    cache_dir: PathStr = "data/video"     # where generated clips are cached

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise VQLadderError(f"unknown video kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if not 8 <= self.size <= 128:
            raise VQLadderError(f"video size must be in [8, 128] pixels, got {self.size}")
        if self.frames < 2:
            raise VQLadderError(f"a clip needs at least 2 frames, got {self.frames}")
        if self.kind in ("balls", "sprites") and self.objects < 1:
            raise VQLadderError(f"{self.kind} videos need at least one object, got objects={self.objects}")
        if self.kind in ("balls", "colour") and not 0 < 2 * self.radius < self.size:
            raise VQLadderError(f"ball radius {self.radius} does not fit a {self.size}x{self.size} frame")
        if self.kind == "sprites" and self.size < 8:
            raise VQLadderError("sprites need frames of at least 8 pixels")
        if self.train_clips < 1 or self.test_clips < 1:
            raise VQLadderError("train_clips and test_clips must be positive")

    @property
    def channels(self) -> int:
        return 3 if self.kind == "colour" else 1


# -- physics ------------------------------------------------------------------------------------------------------
def bounce(pos: np.ndarray, vel: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of motion with elastic reflection in [lo, hi] per coordinate -> (pos, vel, hit[..] bool)."""
    pos = pos + vel
    over, under = pos > hi, pos < lo
    pos = np.where(over, 2 * hi - pos, np.where(under, 2 * lo - pos, pos))
    vel = np.where(over | under, -vel, vel)
    return pos, vel, (over | under).any(-1)


def simulate_balls(n: int, frames: int, k: int, size: int, radius: float, speed: float, rng) -> tuple:
    """-> pos, vel [n, frames, k, 2], hits [n, frames, k] (wall hit on the step into the frame)."""
    lo, hi = radius, size - 1 - radius
    pos = rng.uniform(lo, hi, (n, k, 2))
    ang = rng.uniform(0, 2 * np.pi, (n, k))
    vel = speed * np.stack([np.sin(ang), np.cos(ang)], -1)
    P, V, H = [pos], [vel], [np.zeros((n, k), dtype=bool)]
    for _ in range(frames - 1):
        pos, vel, hit = bounce(pos, vel, lo, hi)
        P.append(pos)
        V.append(vel)
        H.append(hit)
    return np.stack(P, 1), np.stack(V, 1), np.stack(H, 1)


def render_balls(pos: np.ndarray, size: int, radius: float) -> np.ndarray:
    """pos[..., k, 2] -> anti-aliased discs [..., size, size] in [0, 1] (max over balls)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.sqrt((yy - pos[..., 0, None, None]) ** 2 + (xx - pos[..., 1, None, None]) ** 2)
    return np.clip(radius + 0.5 - d, 0, 1).max(-3).astype(np.float32)


def life_step(cells: np.ndarray) -> np.ndarray:
    """One Game of Life generation on a torus; cells[..., h, w] of 0/1."""
    c = cells.astype(np.int8)
    nb = sum(np.roll(np.roll(c, dy, -2), dx, -1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
    return ((nb == 3) | ((c == 1) & (nb == 2))).astype(np.uint8)


# -- generators ------------------------------------------------------------------------------------------------
def generate(cfg: VideoDataConfig, n: int, seed: int) -> dict:
    """-> {"frames": float32 [n, T, C, S, S], state arrays...}."""
    cfg.validate()
    rng = np.random.default_rng(seed)
    S, T = cfg.size, cfg.frames
    if cfg.kind == "balls":
        pos, vel, _ = simulate_balls(n, T, cfg.objects, S, cfg.radius, cfg.speed, rng)
        return {"frames": render_balls(pos, S, cfg.radius)[:, :, None], "pos": pos.astype(np.float32),
                "vel": vel.astype(np.float32)}
    if cfg.kind == "colour":
        pos, vel, hits = simulate_balls(n, T, 1, S, cfg.radius, cfg.speed, rng)
        colour = (rng.integers(0, 3, (n, 1)) + np.cumsum(hits[..., 0], 1)) % 3  # [n, T]
        img = render_balls(pos, S, cfg.radius)  # [n, T, S, S]
        frames = img[:, :, None] * np.eye(3, dtype=np.float32)[colour][..., None, None]
        return {"frames": frames.astype(np.float32), "pos": pos[:, :, 0].astype(np.float32),
                "vel": vel[:, :, 0].astype(np.float32), "colour": colour.astype(np.int64)}
    if cfg.kind == "sprites":
        k, g = cfg.objects, GLYPHS.shape[-1]
        hi = S - g
        pos = rng.integers(0, hi + 1, (n, k, 2)).astype(np.int64)
        vel = rng.choice(np.array([-1, 1]), (n, k, 2)) * rng.integers(1, 3, (n, k, 2))
        glyph = rng.integers(0, len(GLYPHS), (n, k))
        P, V = [pos], [vel]
        for _ in range(T - 1):
            pos, vel, _ = bounce(pos, vel, 0, hi)
            P.append(pos)
            V.append(vel)
        P, V = np.stack(P, 1), np.stack(V, 1)  # [n, T, k, 2]
        frames = np.zeros((n, T, S, S), dtype=np.float32)
        ii, tt, kk = np.meshgrid(np.arange(n), np.arange(T), np.arange(k), indexing="ij")
        for dy in range(g):
            for dx in range(g):  # 25 vectorised stamps (loops over glyph pixels, not over clips or frames)
                val = GLYPHS[glyph[ii, kk], dy, dx]
                np.maximum.at(frames, (ii, tt, P[..., 0] + dy, P[..., 1] + dx), val)
        return {"frames": frames[:, :, None], "pos": P.astype(np.float32), "vel": V.astype(np.float32),
                "glyph": glyph}
    cells = (rng.random((n, S, S)) < 0.35).astype(np.uint8)
    C = [cells]
    for _ in range(T - 1):
        cells = life_step(cells)
        C.append(cells)
    C = np.stack(C, 1)
    return {"frames": C[:, :, None].astype(np.float32), "cells": C}


def _key(cfg: VideoDataConfig) -> str:
    d = {k: v for k, v in asdict(cfg).items() if k != "cache_dir"}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def load_videos(cfg: VideoDataConfig) -> tuple[dict, dict]:
    """(train, test) dicts of arrays, generated once and cached (test uses a disjoint seed stream)."""
    cfg.validate()
    path = Path(cfg.cache_dir) / f"{cfg.kind}-{_key(cfg)}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        tr = {k[6:]: z[k] for k in z.files if k.startswith("train_")}
        te = {k[5:]: z[k] for k in z.files if k.startswith("test_")}
        return tr, te
    tr = generate(cfg, cfg.train_clips, cfg.seed * 2 + 1)
    te = generate(cfg, cfg.test_clips, cfg.seed * 2 + 2)
    own_dir(path.parent, "cache", "video cache directory")  # a folder of the user's is refused, untouched
    atomic_save_npz(path, compressed=True, **{f"train_{k}": v for k, v in tr.items()},
                    **{f"test_{k}": v for k, v in te.items()})
    return tr, te
