"""``vqladder.nn.layers``: attention's short CPU path against SDPA."""

import pytest
import torch
import torch.nn.functional as F

from vqladder.nn import Attention
from vqladder.nn.layers import SHORT_ATTENTION, _math_attention


@pytest.mark.parametrize("t,s,causal,masked", [(10, 10, False, False), (10, 10, True, False), (10, 10, False, True),
                                               (4, 10, False, False), (4, 10, True, False)])
def test_short_cpu_attention_equals_sdpa(t, s, causal, masked):
    """The matmul path used for short CPU sequences gives SDPA's outputs and gradients (same mask semantics)."""
    torch.manual_seed(0)
    q = torch.randn(2, 3, t, 8, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(2, 3, s, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    mask = None
    if masked:
        mask = torch.rand(2, 1, t, s) > 0.3
        mask[..., 0] = True
    a = _math_attention(q, k, v, mask, causal)
    b = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    assert torch.allclose(a, b)
    ga = torch.autograd.grad(a.sum(), (q, k, v))
    gb = torch.autograd.grad(b.sum(), (q, k, v))
    assert all(torch.allclose(x, y) for x, y in zip(ga, gb))


def test_attention_module_takes_the_short_path_below_the_threshold_only():
    torch.manual_seed(0)
    att = Attention(16, 2).double()
    for t in (8, SHORT_ATTENTION + 8):
        x = torch.randn(2, t, 16, dtype=torch.float64)
        y = att(x, causal=True)
        # reference: the same module with SDPA forced
        q = att.q(x).view(2, t, 2, 8).transpose(1, 2)
        k, v = att.kv(x).view(2, t, 2, 2, 8).permute(2, 0, 3, 1, 4)
        cos, sin = att.rotary.tables(t, x.device, q.dtype)
        q, k = att.rotary.apply(q, cos, sin), att.rotary.apply(k, cos, sin)
        ref = att.o(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, t, 16))
        assert torch.allclose(y, ref)

