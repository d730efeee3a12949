"""``vqladder.video.data``: generator physics and determinism, the cache, bad configs."""

from __future__ import annotations

import numpy as np
import pytest

from vqladder.errors import VQLadderError
from vqladder.video.data import VideoDataConfig, bounce, generate, life_step, load_videos, simulate_balls


def test_balls_stay_in_bounds_and_keep_their_energy():
    rng = np.random.default_rng(0)
    pos, vel, hits = simulate_balls(50, 200, 3, 32, 3.0, 2.3, rng)
    assert pos.min() >= 3.0 - 1e-9 and pos.max() <= 32 - 1 - 3.0 + 1e-9
    speed = np.linalg.norm(vel, axis=-1)
    assert np.allclose(speed, 2.3)                       # elastic: kinetic energy never changes
    assert hits.sum() > 100                              # and walls were actually hit
    # at a hit exactly the crossing component flips sign
    p, v, h = bounce(np.array([[5.0, 1.0]]), np.array([[1.0, -2.0]]), 0.0, 10.0)
    assert p.tolist() == [[6.0, 1.0]] and v.tolist() == [[1.0, 2.0]] and h.tolist() == [True]


def test_game_of_life_rules_on_known_patterns():
    g = np.zeros((8, 8), dtype=np.uint8)
    g[1, 2] = g[2, 3] = g[3, 1] = g[3, 2] = g[3, 3] = 1   # glider
    x = g
    for _ in range(4):
        x = life_step(x)
    assert np.array_equal(x, np.roll(np.roll(g, 1, 0), 1, 1))  # moved one cell down-right after 4 generations
    blinker = np.zeros((5, 5), dtype=np.uint8)
    blinker[2, 1:4] = 1
    assert np.array_equal(life_step(blinker), blinker.T) and np.array_equal(life_step(life_step(blinker)), blinker)
    block = np.zeros((4, 4), dtype=np.uint8)
    block[1:3, 1:3] = 1
    assert np.array_equal(life_step(block), block)


@pytest.mark.parametrize("kind", ["balls", "sprites", "life", "colour"])
def test_generators_are_deterministic_by_seed(kind):
    cfg = VideoDataConfig(kind=kind, size=16, frames=6, objects=2, radius=2.0)
    a, b, c = generate(cfg, 4, 7), generate(cfg, 4, 7), generate(cfg, 4, 8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["frames"], c["frames"])
    assert a["frames"].shape == (4, 6, 3 if kind == "colour" else 1, 16, 16)
    assert a["frames"].dtype == np.float32 and 0 <= a["frames"].min() and a["frames"].max() <= 1


def test_sprites_in_bounds_and_colour_changes_at_wall_hits():
    s = generate(VideoDataConfig(kind="sprites", size=16, frames=40, objects=3), 20, 0)
    assert s["pos"].min() >= 0 and s["pos"].max() <= 16 - 5
    c = generate(VideoDataConfig(kind="colour", size=16, frames=60, radius=2.0, speed=2.0), 20, 0)
    vel, col = c["vel"], c["colour"]
    flipped = (np.sign(vel[:, 1:]) != np.sign(vel[:, :-1])).any(-1)          # a wall hit between t and t+1
    changed = col[:, 1:] != col[:, :-1]
    assert flipped.sum() > 10 and np.array_equal(flipped, changed)
    lit = c["frames"].sum((-1, -2)).argmax(-1)                                # the colour is the lit channel
    assert np.array_equal(lit, col)


def test_cache_round_trip(tmp_path):
    cfg = VideoDataConfig(kind="balls", size=16, frames=4, train_clips=5, test_clips=3, cache_dir=str(tmp_path))
    tr, te = load_videos(cfg)
    assert len(list(tmp_path.glob("balls-*.npz"))) == 1
    tr2, te2 = load_videos(cfg)
    assert np.array_equal(tr["frames"], tr2["frames"]) and np.array_equal(te["pos"], te2["pos"])
    assert not np.array_equal(tr["frames"][:3], te["frames"])  # held-out clips come from another seed stream


@pytest.mark.parametrize("kw,msg", [({"objects": 0}, "at least one object"), ({"kind": "pong"}, "unknown video kind"),
                                     ({"size": 4}, "must be in")])
def test_bad_video_configs(kw, msg):
    with pytest.raises(VQLadderError, match=msg):
        VideoDataConfig(**kw).validate()

