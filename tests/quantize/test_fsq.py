"""``vqladder.quantize.fsq``: FSQ levels, round trips, batch normalisation, against vector-quantize-pytorch."""

import math

import pytest
import torch

from vqladder.quantize import (
    FSQ,
    levels_for,
)


@pytest.mark.parametrize("k", [2**8, 2**10, 2**12, 2**14, 2**16])
def test_fsq_codebook_size_is_product_of_levels(k):
    q = FSQ(16, levels_for(k))
    assert q.codebook_size == math.prod(levels_for(k))
    assert abs(math.log2(q.codebook_size) - math.log2(k)) < 0.2


def test_fsq_levels_table():
    assert levels_for(2**12) == [7, 5, 5, 5, 5]
    assert levels_for(2**16) == [8, 8, 8, 5, 5, 5]


def test_fsq_every_code_round_trips():
    q = FSQ(4, [8, 5, 5, 3])  # dim == len(levels): no projections
    codes = torch.arange(q.codebook_size)
    z = q.indices_to_normalized(codes)
    assert torch.equal(q.codes_to_indices(z), codes)
    # the codes the forward path emits decode back to exactly its quantised output (forward bounds its input
    # with tanh first, so a code's own normalised vector is *not* its pre-image: no claim about that)
    p = FSQ(4, [8, 5, 5, 3], norm="none").eval()
    torch.manual_seed(0)
    out = p(torch.randn(1, 500, 4) * 3)
    assert out.codes.unique().numel() > 100
    assert torch.allclose(p.decode_codes(out.codes), out.z_q, atol=1e-6)
    # normalized values lie in [-1, 1]
    assert z.abs().max() <= 1.0


def test_fsq_matches_vector_quantize_pytorch():
    vqp = pytest.importorskip("vector_quantize_pytorch")
    levels = [8, 5, 5, 5]
    ref = vqp.FSQ(levels=levels)
    ours = FSQ(len(levels), levels, norm="none")  # the reference has no input standardisation
    z = torch.randn(4, 50, len(levels)) * 2
    ref_out, ref_idx = ref(z)
    out = ours(z)
    assert torch.equal(out.codes, ref_idx)
    assert torch.allclose(out.z_q, ref_out, atol=1e-6)


def test_fsq_batch_norm_keeps_codes_apart_when_latents_share_an_offset():
    # Latents that differ only slightly around a large common offset (what a 256 -> 8 encoder drifts to):
    # plain FSQ saturates them into one code, the standardised input spreads them over the codebook.
    torch.manual_seed(0)
    z = torch.randn(8, 16, 5) * 0.05 + torch.tensor([4.0, -3.0, 5.0, 2.0, -6.0])
    plain, normed = FSQ(5, [7, 5, 5, 5, 5], norm="none"), FSQ(5, [7, 5, 5, 5, 5])
    assert plain(z).codes.unique().numel() == 1
    normed.train()
    for _ in range(50):  # running statistics converge to the batch's
        train_codes = normed(z).codes
    assert train_codes.unique().numel() > 50
    normed.eval()
    eval_codes = normed(z).codes
    assert (eval_codes == train_codes).float().mean() > 0.95
    # eval codes do not depend on batch mates
    assert torch.equal(normed(z[:1]).codes, eval_codes[:1])


def test_fsq_batch_norm_gradient_ignores_the_common_offset():
    q = FSQ(5, [7, 5, 5, 5, 5])
    q.train()
    z = torch.randn(4, 8, 5, requires_grad=True)
    h = q.norm(z)
    h.sum().backward()  # a loss that only moves every latent together has no gradient through the norm
    assert z.grad.abs().max() < 1e-5


def test_dead_code_count_fsq():
    q = FSQ(3, [4, 4, 4], dead_after=3)
    q.train()
    for _ in range(3):
        st = q._stats(torch.arange(10))
    assert st["dead_codes"].item() == 54

