"""``vqladder.quantize.base``: the quantiser interface (shapes, gradients, fp32 under autocast, usage, range checks)."""

import math

import pytest
import torch

from vqladder.quantize import (
    FSQ,
    QuantizerConfig,
    build_quantizer,
)
from vqladder.quantize.base import histogram_stats


@pytest.mark.parametrize("kind", ["fsq", "vq"])
@pytest.mark.parametrize("depth", [1, 3])
def test_shapes_roundtrip_and_grad(kind, depth):
    torch.manual_seed(0)
    cfg = QuantizerConfig(kind=kind, codebook_size=256, depth=depth, codebook_dim=8)
    q = build_quantizer(cfg, dim=32)
    z = torch.randn(3, 7, 32, requires_grad=True)
    out = q(z)
    assert out.z_q.shape == z.shape
    assert out.codes.shape == ((3, 7) if depth == 1 else (3, 7, depth))
    assert out.codes.dtype == torch.long
    # codes -> vectors gives the forward's quantised vectors
    q.eval()
    out_eval = q(z)
    assert torch.allclose(q.decode_codes(out_eval.codes), out_eval.z_q, atol=1e-5)
    # gradients reach the input (the encoder)
    (out.z_q.square().sum() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert q.bits_per_code == pytest.approx(depth * math.log2(q.codebook_size))


def test_fp32_under_autocast():
    q = build_quantizer(QuantizerConfig(kind="vq", codebook_size=64, codebook_dim=8), 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(torch.randn(2, 5, 16))
    assert out.z_q.dtype == torch.float32
    assert q.embed.dtype == torch.float32


def test_usage_stats_on_planted_distribution():
    q = FSQ(3, [4, 4, 4])  # 64 codes
    codes = torch.cat([torch.zeros(50, dtype=torch.long), torch.arange(1, 16).repeat_interleave(10)])
    st = q._stats(codes)
    assert st["usage"].item() == pytest.approx(16 / 64)
    p = torch.tensor([50.0] + [10.0] * 15) / 200
    assert st["perplexity"].item() == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)
    uniform = histogram_stats(torch.ones(64))
    assert uniform["perplexity"].item() == pytest.approx(64, rel=1e-5)


def test_out_of_range_codes_rejected():
    from vqladder.errors import VQLadderError

    q = FSQ(8, [4, 4])
    with pytest.raises(VQLadderError, match="out of range"):
        q.decode_codes(torch.tensor([[3, 16]]))

