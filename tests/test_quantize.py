import math

import pytest
import torch

from vqladder.quantize import (
    FSQ,
    QuantizerConfig,
    ResidualQuantizer,
    VectorQuantizer,
    build_quantizer,
    levels_for,
)
from vqladder.quantize.base import histogram_stats
from vqladder.quantize.vq import nearest_codes, rotate_to


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


@pytest.mark.parametrize("gradient", ["ste", "rotation"])
def test_vq_cosine_and_gradients(gradient):
    torch.manual_seed(0)
    q = build_quantizer(QuantizerConfig(kind="vq", codebook_size=64, codebook_dim=8, cosine=True,
                                        gradient=gradient), 16)
    z = torch.randn(2, 50, 16, requires_grad=True)
    out = q(z)
    assert torch.allclose(q.embed.norm(dim=-1), torch.ones(64), atol=1e-5)  # unit-norm codebook
    out.z_q.sum().backward()
    assert z.grad.abs().sum() > 0


def test_fp32_under_autocast():
    q = build_quantizer(QuantizerConfig(kind="vq", codebook_size=64, codebook_dim=8), 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(torch.randn(2, 5, 16))
    assert out.z_q.dtype == torch.float32
    assert q.embed.dtype == torch.float32


def test_chunked_nearest_equals_bruteforce():
    torch.manual_seed(0)
    x, e = torch.randn(1000, 8), torch.randn(3000, 8)
    brute = torch.cdist(x, e).argmin(1)
    assert torch.equal(nearest_codes(x, e, cosine=False, chunk_elems=10_000), brute)
    xn, en = torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(e, dim=-1)
    assert torch.equal(nearest_codes(xn, en, cosine=True, chunk_elems=7_777), (xn @ en.t()).argmax(1))


def test_large_codebook_chunks():
    """A 65,536-entry book searched in chunks picks, for every vector, exactly the nearest entry (the brute-force
    argmin over the whole book), and the planted vectors that sit on entries above the first chunk get them."""
    torch.manual_seed(0)
    q = VectorQuantizer(8, 65536, codebook_dim=8, kmeans_init=False, chunk_elems=1 << 16)
    q.eval()
    book = q.decode_codes(torch.arange(65536)).reshape(65536, -1)
    planted = torch.tensor([0, 1, 40_000, 65_535] * 10)
    x = torch.cat([q.decode_codes(planted).reshape(len(planted), -1), torch.randn(200, 8)])[None]
    out = q(x)
    assert torch.equal(out.codes.reshape(-1)[:len(planted)], planted)
    z = x.reshape(-1, 8)
    assert torch.equal(out.codes.reshape(-1), torch.cdist(z, book).argmin(1))


def test_rotation_trick_forward_and_grad():
    src = torch.randn(10, 6, requires_grad=True)
    tgt = torch.randn(10, 6)
    out = rotate_to(src, tgt)
    assert torch.allclose(out, tgt, atol=1e-5)
    out.sum().backward()
    assert src.grad.abs().sum() > 0


def test_vq_kmeans_init_and_ema_learn_clusters():
    torch.manual_seed(0)
    centers = torch.randn(8, 4) * 5
    q = VectorQuantizer(4, 16, codebook_dim=-1, kmeans_init=True, dead_threshold=0.0, seed=1)
    for _ in range(20):
        x = centers[torch.randint(0, 8, (512,))] + 0.05 * torch.randn(512, 4)
        q(x[None])
    d = torch.cdist(centers, q.embed).min(1).values
    assert d.max() < 0.5


def test_vq_dead_code_restart_revives_codes():
    torch.manual_seed(0)
    q = VectorQuantizer(4, 32, codebook_dim=-1, kmeans_init=False, dead_threshold=0.5, seed=0)
    with torch.no_grad():
        q.embed.fill_(100.0)  # every code far away from the data: all dead
        q.embed_sum.copy_(q.embed)
        q.embed[0] = 0.0
        q.embed_sum[0] = 0.0
    x = torch.randn(1, 256, 4)
    before = q(x).codes.unique().numel()  # the EMA update after this call marks 31 codes dead and restarts them
    assert before == 1
    # ... each from a vector of the batch, with its EMA state reset to the uniform share's threshold
    assert torch.cdist(q.embed[1:], x[0]).min(1).values.max() < 0.01
    assert torch.allclose(q.cluster_size, torch.full_like(q.cluster_size, 0.5 * 256 / 32))
    q(x)
    after = q(x).codes.unique().numel()
    assert after > 10
    assert (q.embed.abs() < 50).all()
    dead = q.cluster_size < 0.5 * 256 / 32
    assert not dead.any()  # revived codes stay alive
    assert not torch.isnan(q.embed).any()


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


def test_usage_stats_on_planted_distribution():
    q = FSQ(3, [4, 4, 4])  # 64 codes
    codes = torch.cat([torch.zeros(50, dtype=torch.long), torch.arange(1, 16).repeat_interleave(10)])
    st = q._stats(codes)
    assert st["usage"].item() == pytest.approx(16 / 64)
    p = torch.tensor([50.0] + [10.0] * 15) / 200
    assert st["perplexity"].item() == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)
    uniform = histogram_stats(torch.ones(64))
    assert uniform["perplexity"].item() == pytest.approx(64, rel=1e-5)


def test_dead_code_count_fsq():
    q = FSQ(3, [4, 4, 4], dead_after=3)
    q.train()
    for _ in range(3):
        st = q._stats(torch.arange(10))
    assert st["dead_codes"].item() == 54


def test_vq_generator_state_in_state_dict():
    q = VectorQuantizer(8, 16, codebook_dim=-1, seed=3)
    torch.randint(0, 10, (5,), generator=q.gen)
    sd = q.state_dict()
    assert "_extra_state" in sd
    q2 = VectorQuantizer(8, 16, codebook_dim=-1, seed=99)
    q2.load_state_dict(sd)
    assert torch.equal(torch.randint(0, 1000, (5,), generator=q.gen), torch.randint(0, 1000, (5,), generator=q2.gen))


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


def test_out_of_range_codes_rejected():
    from vqladder.errors import VQLadderError

    q = FSQ(8, [4, 4])
    with pytest.raises(VQLadderError, match="out of range"):
        q.decode_codes(torch.tensor([[3, 16]]))


def test_residual_quantizer_is_a_quantizer_base_with_its_old_state_dict():
    from vqladder.quantize import FSQ, QuantizerBase

    rq = ResidualQuantizer([FSQ(8, [5, 5, 5]), FSQ(8, [5, 5, 5])])
    assert isinstance(rq, QuantizerBase) and rq.codebook_size == 125 and rq.bits_per_code == pytest.approx(2 * math.log2(125))
    assert all(k.startswith("stages.") for k in rq.state_dict())    # checkpoints made before still load
