"""``vqladder.quantize.vq``: cosine codes, chunked search, rotation trick, k-means init, EMA, dead-code restarts."""

import pytest
import torch

from vqladder.quantize import (
    QuantizerConfig,
    VectorQuantizer,
    build_quantizer,
)
from vqladder.quantize.vq import nearest_codes, rotate_to


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


def test_vq_generator_state_in_state_dict():
    q = VectorQuantizer(8, 16, codebook_dim=-1, seed=3)
    torch.randint(0, 10, (5,), generator=q.gen)
    sd = q.state_dict()
    assert "_extra_state" in sd
    q2 = VectorQuantizer(8, 16, codebook_dim=-1, seed=99)
    q2.load_state_dict(sd)
    assert torch.equal(torch.randint(0, 1000, (5,), generator=q.gen), torch.randint(0, 1000, (5,), generator=q2.gen))

