"""``vqladder.embed.models``: the Matryoshka adapter, trained through the stage runner."""

import pytest
import torch
from helpers import planted_clusters

from vqladder.embed.models import prefix_neighbour_loss, train_adapter
from vqladder.errors import VQLadderError


def test_adapter_lowers_prefix_neighbour_loss(tmp_path):
    x = planted_clusters(800, 64)
    before = float(prefix_neighbour_loss(torch.from_numpy(x[600:]), torch.from_numpy(x[600:]), [8, 16, 32, 64]))
    ad, curve = train_adapter(x[:600], tmp_path / "adapter", steps=150, batch=256, prefixes=[8, 16, 32, 64])
    with torch.no_grad():
        after = float(prefix_neighbour_loss(ad(torch.from_numpy(x[600:])), torch.from_numpy(x[600:]), [8, 16, 32, 64]))
    assert curve[-1] < curve[0]
    assert after < 0.8 * before  # held-out rows too


def test_adapter_stage_refuses_other_rows_and_loads_its_own(tmp_path):
    """The adapter trains through the stage runner: a rerun on the same rows loads it (no training), a rerun on
    other rows is refused (its fingerprint is part of the stage's recorded slice), and --retrain trains again."""
    from vqladder.train.stage import set_retrain

    x = planted_clusters(300, 32)
    ad, curve = train_adapter(x, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    assert len(curve) == 4
    again, _ = train_adapter(x, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    assert all(torch.equal(p, q) for p, q in zip(ad.parameters(), again.parameters()))
    other = x[::-1].copy()
    with pytest.raises(VQLadderError, match="another config"):
        train_adapter(other, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    set_retrain(True)
    try:
        train_adapter(other, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    finally:
        set_retrain(False)

