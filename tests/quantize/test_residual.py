"""``vqladder.quantize.residual``: residual stages lower the error; old state dicts load."""

import math

import pytest
import torch

from vqladder.quantize import (
    FSQ,
    QuantizerConfig,
    ResidualQuantizer,
    build_quantizer,
)


def test_residual_reduces_error():
    torch.manual_seed(0)
    z = torch.randn(8, 64, 32)
    errs = []
    for depth in (1, 4):
        q = build_quantizer(QuantizerConfig(kind="vq", codebook_size=64, depth=depth, codebook_dim=-1,
                                            dead_threshold=0.0), 32)
        for _ in range(5):
            q(z)
        q.eval()
        errs.append((q(z).z_q - z).square().mean().item())
    assert errs[1] < errs[0]
    assert isinstance(build_quantizer(QuantizerConfig(depth=2, codebook_size=256), 8), ResidualQuantizer)


def test_residual_quantizer_is_a_quantizer_base_with_its_old_state_dict():
    from vqladder.quantize import QuantizerBase

    rq = ResidualQuantizer([FSQ(8, [5, 5, 5]), FSQ(8, [5, 5, 5])])
    assert isinstance(rq, QuantizerBase) and rq.codebook_size == 125 and rq.bits_per_code == pytest.approx(2 * math.log2(125))
    assert all(k.startswith("stages.") for k in rq.state_dict())    # checkpoints made before still load

