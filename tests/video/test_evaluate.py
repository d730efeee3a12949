"""``vqladder.video.evaluate``: the mean-frame reference, rollout position errors."""

from __future__ import annotations

import numpy as np

from vqladder.video.data import VideoDataConfig, generate


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

