"""Pixel videos: generator physics and determinism, the video autoencoder, the predictor, probes, the experiment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqladder.errors import VQLadderError
from vqladder.quantize import QuantizerConfig
from vqladder.video.data import VideoDataConfig, bounce, generate, life_step, load_videos, simulate_balls
from vqladder.video.models import (
    FrameAE,
    FrameAEConfig,
    FramePredictor,
    PredictorConfig,
    patchify,
    unpatchify,
)


# -- generators -------------------------------------------------------------------------------------------------
def test_balls_stay_in_bounds_and_keep_their_energy():
    rng = np.random.default_rng(0)
    pos, vel, hits = simulate_balls(50, 200, 3, 32, 3.0, 2.3, rng)
    assert pos.min() >= 3.0 - 1e-9 and pos.max() <= 32 - 1 - 3.0 + 1e-9
    speed = np.linalg.norm(vel, axis=-1)
    assert np.allclose(speed, 2.3)                       # elastic: kinetic energy never changes
    assert hits.sum() > 100                              # and walls were actually hit
    # at a hit exactly the crossing component flips sign
    p, v, h = bounce(np.array([[5.0, 1.0]]), np.array([[1.0, -2.0]]), 0.0, 10.0)
    assert p.tolist() == [[6.0, 1.0]] and v.tolist() == [[1.0, 2.0]] and h.tolist() == [True]


def test_game_of_life_rules_on_known_patterns():
    g = np.zeros((8, 8), dtype=np.uint8)
    g[1, 2] = g[2, 3] = g[3, 1] = g[3, 2] = g[3, 3] = 1   # glider
    x = g
    for _ in range(4):
        x = life_step(x)
    assert np.array_equal(x, np.roll(np.roll(g, 1, 0), 1, 1))  # moved one cell down-right after 4 generations
    blinker = np.zeros((5, 5), dtype=np.uint8)
    blinker[2, 1:4] = 1
    assert np.array_equal(life_step(blinker), blinker.T) and np.array_equal(life_step(life_step(blinker)), blinker)
    block = np.zeros((4, 4), dtype=np.uint8)
    block[1:3, 1:3] = 1
    assert np.array_equal(life_step(block), block)


@pytest.mark.parametrize("kind", ["balls", "sprites", "life", "colour"])
def test_generators_are_deterministic_by_seed(kind):
    cfg = VideoDataConfig(kind=kind, size=16, frames=6, objects=2, radius=2.0)
    a, b, c = generate(cfg, 4, 7), generate(cfg, 4, 7), generate(cfg, 4, 8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["frames"], c["frames"])
    assert a["frames"].shape == (4, 6, 3 if kind == "colour" else 1, 16, 16)
    assert a["frames"].dtype == np.float32 and 0 <= a["frames"].min() and a["frames"].max() <= 1


def test_sprites_in_bounds_and_colour_changes_at_wall_hits():
    s = generate(VideoDataConfig(kind="sprites", size=16, frames=40, objects=3), 20, 0)
    assert s["pos"].min() >= 0 and s["pos"].max() <= 16 - 5
    c = generate(VideoDataConfig(kind="colour", size=16, frames=60, radius=2.0, speed=2.0), 20, 0)
    vel, col = c["vel"], c["colour"]
    flipped = (np.sign(vel[:, 1:]) != np.sign(vel[:, :-1])).any(-1)          # a wall hit between t and t+1
    changed = col[:, 1:] != col[:, :-1]
    assert flipped.sum() > 10 and np.array_equal(flipped, changed)
    lit = c["frames"].sum((-1, -2)).argmax(-1)                                # the colour is the lit channel
    assert np.array_equal(lit, col)


def test_cache_round_trip(tmp_path):
    cfg = VideoDataConfig(kind="balls", size=16, frames=4, train_clips=5, test_clips=3, cache_dir=str(tmp_path))
    tr, te = load_videos(cfg)
    assert len(list(tmp_path.glob("balls-*.npz"))) == 1
    tr2, te2 = load_videos(cfg)
    assert np.array_equal(tr["frames"], tr2["frames"]) and np.array_equal(te["pos"], te2["pos"])
    assert not np.array_equal(tr["frames"][:3], te["frames"])  # held-out clips come from another seed stream


@pytest.mark.parametrize("kw,msg", [({"objects": 0}, "at least one object"), ({"kind": "pong"}, "unknown video kind"),
                                     ({"size": 4}, "must be in")])
def test_bad_video_configs(kw, msg):
    with pytest.raises(VQLadderError, match=msg):
        VideoDataConfig(**kw).validate()


# -- models -------------------------------------------------------------------------------------------------------
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


# -- probes ---------------------------------------------------------------------------------------------------------
def test_probe_recovers_a_planted_linear_relation():
    from vqladder.video.probes import r2, ridge_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 40))
    w = rng.normal(size=(40, 3))
    y = x @ w + 0.05 * rng.normal(size=(600, 3))
    pred = ridge_probe(x[:500], y[:500], x[500:])
    assert r2(y[500:], pred) > 0.99
    noise = rng.normal(size=(600, 2))                      # nothing to find: R^2 near zero, not high
    assert r2(noise[500:], ridge_probe(x[:500], noise[:500], x[500:])) < 0.1
    wide = rng.normal(size=(100, 300))                     # more features than rows: the dual form ...
    yw = wide[:, :2] * 2.0
    mu, sd = wide[:80].mean(0), wide[:80].std(0) + 1e-6
    a, b = (wide[:80] - mu) / sd, (wide[80:] - mu) / sd
    primal = b @ np.linalg.solve(a.T @ a + 3.0 * np.eye(300), a.T @ (yw[:80] - yw[:80].mean(0))) + yw[:80].mean(0)
    assert np.allclose(ridge_probe(wide[:80], yw[:80], wide[80:], l2=3.0), primal, atol=1e-6)  # ... = the primal


# -- the experiment ---------------------------------------------------------------------------------------------------
def test_video_experiment_end_to_end(tmp_path):
    from vqladder.config import load_config
    from vqladder.video.recipe import VideoExpConfig, eval_video, show, train_video

    ov = [f"out_dir={tmp_path}", "name=v", f"data.cache_dir={tmp_path}/cache", "data.size=16", "data.frames=8",
          "data.train_clips=24", "data.test_clips=6", "data.radius=2.0", "seeds=[0]", "ae.patch=4", "ae.d_model=32",
          "ae.enc_layers=1", "ae.dec_layers=1", "ae.quantizer.codebook_size=256", "level2.model.d_model=32",
          "level2.model.quantizer.codebook_size=256", "predictor.d_model=32", "predictor.n_layers=1",
          "ae_train.steps=4", "level2_train.steps=4", "level2_train.batch_size=8", "predictor_train.steps=4",
          "ae_train.ckpt_every=2", "predictor_train.ckpt_every=2", "level2_train.ckpt_every=2",
          "context=2", "horizon=4", "eval_clips=6", "probe_clips=24"]
    cfg = load_config(VideoExpConfig, None, ov)
    with pytest.raises(VQLadderError, match="not trained yet"):
        eval_video(cfg, log=lambda m: None, train_missing=False)
    train_video(cfg, log=lambda m: None)
    res = eval_video(cfg, log=lambda m: None, train_missing=False)
    ev = res["evals"][0]
    assert len(ev["prediction"]["latent"]["mse"]) == 4 and len(ev["prediction"]["pixel"]["ssim"]) == 4
    assert [r["level"] for r in ev["probes"]] == ["pixels", "level 1", "level 2"]
    assert ev["bits_per_frame"]["level 2"] == pytest.approx(ev["bits_per_frame"]["level 1"] / 4, rel=0.01)
    d = tmp_path / "v"
    assert (d / "results.md").is_file() and (d / "strip.png").is_file()
    assert "one probe reads every rollout" in (d / "results.md").read_text()
    assert len(ev["position_error"]["latent"]) == 4
    import base64
    import io
    import json

    from PIL import Image

    ro = json.loads((d / "rollouts.json").read_text())     # the report's frame viewer
    assert len(ro["clips"]) == 3 and all(len(c[k]) == 4 for c in ro["clips"] for k in ("truth", "latent", "pixel"))
    from vqladder.video.data import load_videos

    truth = load_videos(cfg.data)[1]["frames"][0, 2]        # clip 0, first predicted frame (context=2)
    png = Image.open(io.BytesIO(base64.b64decode(ro["clips"][0]["truth"][0].split(",", 1)[1])))
    got = np.asarray(png, dtype=np.float32) / 255
    want = truth[0] if truth.shape[0] == 1 else truth.transpose(1, 2, 0)
    assert np.abs(got - want).max() <= 0.5 / 255 + 1e-6
    assert show(cfg, 0, 2, tmp_path / "s.png").is_file()
    cfg.ae.d_model = 64
    with pytest.raises(VQLadderError, match="another config"):
        train_video(cfg, log=lambda m: None)
    with pytest.raises(VQLadderError, match="longer than the clip"):
        load_config(VideoExpConfig, None, ov + ["horizon=7"])


def test_mean_frame_reference_is_scored_on_the_predicted_frames():
    from vqladder.video.evaluate import mean_frame_mse

    train = np.zeros((2, 4, 1, 2, 2), dtype=np.float32)  # the mean training frame is all zeros
    clips = np.zeros((1, 4, 1, 2, 2), dtype=np.float32)
    clips[:, 2:] = 1.0  # context frames 0-1 are easy (0), the predicted frames 2-3 are not (1)
    assert mean_frame_mse(train, clips[:, 2:]) == 1.0  # over all 4 frames it would have said 0.5


def test_rollout_position_error_reads_every_rollout_with_one_probe():
    """A predictor whose frames are the true frames scores exactly the probe's floor; copy-last on moving balls
    scores worse; data without positions gives None."""
    from types import SimpleNamespace

    from vqladder.video.evaluate import rollout_position_error

    cfg_d = VideoDataConfig(kind="balls", size=16, frames=8, radius=2.0, speed=1.5)
    train, test = generate(cfg_d, 300, 0), generate(cfg_d, 20, 1)
    cfg = SimpleNamespace(context=3, horizon=4)
    truth = test["frames"][:, 3:7]
    ro = {"truth": truth, "latent": truth.copy(), "pixel": np.zeros_like(truth),
          "copy_last": np.repeat(test["frames"][:, 2:3], 4, 1)}
    err = rollout_position_error(cfg, train, test, ro)
    assert err["latent"] == err["truth"] and all(e < 2.0 for e in err["truth"])
    assert np.mean(err["copy_last"]) > np.mean(err["truth"]) and np.mean(err["pixel"]) > np.mean(err["truth"])
    assert err["copy_last"][-1] > err["copy_last"][0]            # the stale frame drifts from the moving balls
    assert rollout_position_error(cfg, {"frames": train["frames"]}, test, ro) is None
