"""``vqladder.train.flops``: attention FLOPs against the closed form, MFU logging."""

import json

import pytest
import torch
from helpers import tiny_run_config, tiny_trainer


def test_mfu_is_logged_and_counting_leaves_training_unchanged(tmp_path, data):

    a = tiny_run_config(data, tmp_path / "runs", name="with", steps=6, log_every=2)
    b = tiny_run_config(data, tmp_path / "runs", name="without", steps=6, log_every=2, mfu=False)
    ta, tb = tiny_trainer(a, data), tiny_trainer(b, data)
    ta.fit()
    tb.fit()
    assert ta.flops_per_token > 0 and tb.flops_per_token == 0
    recs = [json.loads(l) for l in (a.run_dir / "metrics.jsonl").read_text().splitlines() if '"mfu"' in l]
    assert recs and all(0 < r["mfu"] < 5 for r in recs)
    for (k, pa), pb in zip(ta.model.state_dict().items(), tb.model.state_dict().values()):
        assert torch.equal(pa, pb), k  # counting FLOPs moved no weight, buffer, RNG or data position


@pytest.mark.parametrize("t", [64, 256, 1024])
def test_attention_flops_are_counted_against_the_closed_form(t):
    """Projections 3 x 2·b·t·d·4d (forward + backward); attention 4·b·t²·d forward: the short path (t <= 128 on
    CPU) computes the full score matrix and its backward twice the forward; the SDPA kernel above it skips the
    masked half of a causal matrix, and its backward recomputes the scores (2.5x the forward)."""
    from vqladder.nn.layers import SHORT_ATTENTION, Attention
    from vqladder.train.flops import counter

    b, d = 2, 64
    a = Attention(d, 4)
    x = torch.randn(b, t, d, requires_grad=True)
    with counter() as fc:
        a(x, causal=True).sum().backward()
    proj = 3 * 2 * b * t * d * 4 * d
    fwd = 4 * b * t * t * d
    attn = 3 * fwd if t <= SHORT_ATTENTION else 0.5 * 3.5 * fwd
    assert fc.get_total_flops() == proj + attn

