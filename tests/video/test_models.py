"""``vqladder.video.models``: patches, the frame autoencoder, the block-causal predictor and its cached rollout."""

from __future__ import annotations

import pytest
import torch
from helpers import perturbed

from vqladder.errors import VQLadderError
from vqladder.quantize import QuantizerConfig
from vqladder.video.data import VideoDataConfig, generate
from vqladder.video.models import (
    FrameAE,
    FrameAEConfig,
    FramePredictor,
    PredictorConfig,
    patchify,
    unpatchify,
)


def test_video_rollout_cached_equals_frame_by_frame():
    for mode in ("latent", "pixel"):
        kw = {"vocab": 12} if mode == "latent" else {"in_dim": 6}
        fp = perturbed(FramePredictor(PredictorConfig(mode=mode, frames=8, tokens=4, d_model=32, n_heads=2,
                                                       n_layers=2, **kw)))
        ctx = torch.randint(0, 12, (2, 3, 4)) if mode == "latent" else torch.rand(2, 3, 4, 6)
        x = ctx
        for _ in range(4):                                 # the uncached definition: re-run the whole clip
            nxt = fp(x)[:, -1:]
            x = torch.cat([x, nxt.argmax(-1) if mode == "latent" else nxt], 1)
        out = fp.rollout(ctx, 4)
        if mode == "latent":
            assert torch.equal(out, x[:, 3:])
        else:
            assert torch.allclose(out, x[:, 3:], atol=1e-5)


def test_patchify_round_trip():
    x = torch.rand(2, 3, 3, 16, 16)
    p = patchify(x, 4)
    assert p.shape == (2, 3, 16, 48)
    assert torch.equal(unpatchify(p, 4, 3), x)
    assert torch.equal(p[0, 0, 0].view(3, 4, 4), x[0, 0, :, :4, :4])  # patch 0 = the top-left block


def test_frame_ae_round_trip_on_a_tiny_clip():
    frames = torch.from_numpy(generate(VideoDataConfig(kind="balls", size=16, frames=8, objects=1, radius=2.5), 8, 0)
                              ["frames"]).flatten(0, 1)
    ae = FrameAE(FrameAEConfig(size=16, patch=4, d_model=32, enc_layers=1, dec_layers=1,
                               quantizer=QuantizerConfig(kind="fsq", codebook_size=256)))
    opt = torch.optim.AdamW(ae.parameters(), lr=3e-3)
    first = float(ae.loss(frames)[0].detach())
    for _ in range(150):
        loss, m = ae.loss(frames)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(m["mse"]) < 0.25 * first
    codes = ae.encode(frames)
    assert codes.shape == (64, 16) and int(codes.max()) < ae.quantizer.codebook_size
    ae.eval()
    with torch.no_grad():
        assert torch.allclose(ae.decode(codes), ae(frames)[0], atol=1e-5)
    rec = ae.decode(codes)
    assert float(((rec - frames) ** 2).mean()) < 0.25 * float((frames ** 2).mean())
    with pytest.raises(VQLadderError, match="smaller than a patch"):
        FrameAEConfig(size=4, patch=8).validate()


@pytest.mark.parametrize("mode", ["latent", "pixel"])
def test_predictor_is_block_causal_and_rolls_out(mode):
    cfg = PredictorConfig(mode=mode, frames=6, tokens=4, vocab=16, in_dim=8, d_model=32, n_layers=2)
    m = FramePredictor(cfg).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 16, (2, 6, 4), generator=g) if mode == "latent" else torch.rand(2, 6, 4, 8, generator=g)
    y = x.clone()
    y[:, 4:] = torch.randint(0, 16, (2, 2, 4)) if mode == "latent" else torch.rand(2, 2, 4, 8)
    with torch.no_grad():
        a, b = m(x), m(y)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5)  # frames <= 3 never see frames 4, 5
    assert not torch.allclose(a[:, 4:], b[:, 4:])
    out = m.rollout(x[:, :2], 4)
    assert out.shape == (2, 4, *x.shape[2:])
    with pytest.raises(VQLadderError, match="exceed"):
        m.rollout(x[:, :3], 4)
    loss, _ = m.train().loss(x)
    assert torch.isfinite(loss)

