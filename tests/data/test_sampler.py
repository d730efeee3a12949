"""``vqladder.data.sampler``: seeded, resumable, sharded windows."""

import numpy as np
import pytest

from vqladder.data import WindowSampler, val_windows
from vqladder.errors import VQLadderError


def test_sampler_resumable_and_sharded():
    tokens = np.arange(10_000, dtype=np.uint16)
    s = WindowSampler(tokens, 64, 8, seed=3)
    for _ in range(5):
        s.next_batch()
    state = s.state_dict()
    expect = [s.next_batch() for _ in range(30)]  # crosses epoch boundaries (156 windows / 8)
    s2 = WindowSampler(tokens, 64, 8, seed=3)
    s2.load_state_dict(state)
    got = [s2.next_batch() for _ in range(30)]
    assert all((a == b).all() for a, b in zip(expect, got))
    # windows are contiguous
    b = expect[0]
    assert ((b[:, 1:] - b[:, :-1]) == 1).all()
    # two ranks see disjoint windows within an epoch
    r0 = WindowSampler(tokens, 64, 4, seed=3, rank=0, world=2)
    r1 = WindowSampler(tokens, 64, 4, seed=3, rank=1, world=2)
    s0 = set(np.concatenate([r0.next_starts() for _ in range(10)]).tolist())
    s1 = set(np.concatenate([r1.next_starts() for _ in range(10)]).tolist())
    assert not (s0 & s1)
    # and together they see exactly what one rank with the same global batch sees
    one = WindowSampler(tokens, 64, 8, seed=3)
    r0 = WindowSampler(tokens, 64, 4, seed=3, rank=0, world=2)
    r1 = WindowSampler(tokens, 64, 4, seed=3, rank=1, world=2)
    for _ in range(25):
        assert (np.concatenate([r0.next_starts(), r1.next_starts()]) == one.next_starts()).all()


def test_sampler_too_short():
    with pytest.raises(VQLadderError, match="fewer than one chunk"):
        WindowSampler(np.zeros(100, dtype=np.uint16), 256, 4)
    with pytest.raises(VQLadderError, match="fewer than one chunk"):
        val_windows(np.zeros(100, dtype=np.uint16), 256)

