"""``vqladder.video.recipe``: the video experiment end to end."""

from __future__ import annotations

import numpy as np
import pytest

from vqladder.errors import VQLadderError
from vqladder.video.data import load_videos


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

