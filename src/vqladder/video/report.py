"""Video experiment: the markdown tables, from the experiment's results."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

from ..report import save_figure


def _ms(vals: list[float], fmt: str = ".4f") -> str:
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    return f"{np.mean(vals):{fmt}} ± {np.std(vals):{fmt}}" if len(vals) > 1 else f"{vals[0]:{fmt}}"


def video_markdown(res: dict, cfg) -> str:
    ev = res["evals"]
    dc = cfg.data
    t = ev[0]["train"]
    lines = [f"# Video: latent vs pixel prediction ({cfg.name})", "",
             f"{dc.kind}, {dc.size}x{dc.size}, {dc.frames} frames, {dc.train_clips} training clips, "
             f"{ev[0]['clips']} held-out clips; seeds {res['seeds']} (mean ± std over seeds). Rollouts: "
             f"{cfg.context} true frames, then {cfg.horizon} predicted. Both predictors: same blocks, "
             f"{cfg.predictor_train.steps} steps x {cfg.predictor_train.batch_size} clips; parameters latent "
             f"{t['latent']['params']:,} / pixel {t['pixel']['params']:,}; training s latent "
             f"{_ms([e['train']['latent']['train_time'] for e in ev], '.0f')} (+ level 1 "
             f"{_ms([e['train']['ae']['train_time'] for e in ev], '.0f')}) / pixel "
             f"{_ms([e['train']['pixel']['train_time'] for e in ev], '.0f')}; rollout s latent "
             f"{_ms([e['rollout_seconds']['latent'] for e in ev], '.2f')} / pixel "
             f"{_ms([e['rollout_seconds']['pixel'] for e in ev], '.2f')}.", "",
             "Bits per frame: " + ", ".join(f"{k} {v:,.0f}" for k, v in ev[0]["bits_per_frame"].items()) + ". "
             + (("Held-out reconstruction MSE from level 1 codes "
                 f"{_ms([e['reconstruction']['level 1'] for e in ev])}, from level 2 codes "
                 f"{_ms([e['reconstruction']['level 2'] for e in ev])} (level 2 returns "
                 f"{_ms([e['reconstruction']['level2_code_acc'] for e in ev], '.3f')} of the level-1 codes exactly); "
                 f"predicting the mean frame: {_ms([e['mean_frame_mse'] for e in ev])}.")
                if all("reconstruction" in e for e in ev) else ""), "",
             "## Prediction error vs horizon (held-out)", "",
             "`copy last` repeats the last true frame; `AE floor` decodes the true future codes (the best latent "
             "prediction can do).", "",
             "| horizon | latent MSE | pixel MSE | copy last MSE | AE floor MSE | latent PSNR | pixel PSNR | "
             "latent SSIM | pixel SSIM | latent code acc |", "|---|---|---|---|---|---|---|---|---|---|"]
    for h in range(cfg.horizon):
        g = lambda k, m: _ms([e["prediction"][k][m][h] for e in ev], ".4f" if m != "psnr" else ".2f")
        lines.append(f"| {h + 1} | {g('latent', 'mse')} | {g('pixel', 'mse')} | {g('copy_last', 'mse')} | "
                     f"{g('ae_floor', 'mse')} | {g('latent', 'psnr')} | {g('pixel', 'psnr')} | {g('latent', 'ssim')} | "
                     f"{g('pixel', 'ssim')} | {_ms([e['code_acc'][h] for e in ev], '.3f')} |")
    if all(e.get("position_error") for e in ev):
        lines += ["", "## Where the objects are: one probe reads every rollout (held-out)", "",
                  "A single linear probe fitted on true training frames (pixels -> object positions) reads the "
                  "positions off each predicted frame; RMSE in pixels to the true positions. It favours neither "
                  "predictor (MSE favours the MSE-trained pixel regressor, code accuracy exists only for the latent "
                  "one). `truth` is the probe's own error on the true frames: the floor.", "",
                  "| horizon | truth (floor) | latent | pixel | copy last |", "|---|---|---|---|---|"]
        for h in range(cfg.horizon):
            q = lambda k: _ms([e["position_error"][k][h] for e in ev], ".2f")
            lines.append(f"| {h + 1} | {q('truth')} | {q('latent')} | {q('pixel')} | {q('copy_last')} |")
    names = [k for k in ev[0]["probes"][0] if k != "level"]
    lines += ["", "## Linear probes from each level (held-out clips, at tubelet starts)", "",
              "R^2 for positions / velocities (velocity from two consecutive frames at pixel level and level 1, "
              "from one tubelet at level 2); accuracy for colour and Game-of-Life cells.", "",
              "| features | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i, row in enumerate(ev[0]["probes"]):
        lines.append(f"| {row['level']} | " + " | ".join(_ms([e['probes'][i].get(n) for e in ev], '.3f')
                                                        for n in names) + " |")
    return "\n".join(lines) + "\n"


def frame_png(frame: np.ndarray) -> str:
    """frame[c, s, s] in [0, 1] -> a PNG data URL (for the report's frame viewer)."""
    from PIL import Image

    a = (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def example_rollouts(cfg, ro: dict, frames: np.ndarray, clips: int = 3) -> dict:
    """The first held-out clips' frames as PNGs: the context, then truth / latent / pixel / copy-last per step."""
    c0 = cfg.context
    return {"context": c0, "horizon": cfg.horizon, "clips": [
        {"context": [frame_png(f) for f in frames[i, :c0]],
         **{k: [frame_png(f) for f in ro[k][i]] for k in ("truth", "latent", "pixel", "copy_last")}}
        for i in range(min(clips, len(frames)))]}


def strip_png(name: str, context: int, clip: np.ndarray, ro: dict, path: Path) -> None:
    """PNG: the last context frame of ``clip`` and the predicted frames of ``ro`` (``eval.video.rollouts``);
    rows truth / latent / pixel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c0 = context
    rows = [("truth", np.concatenate([clip[:, c0 - 1:c0], ro["truth"]], 1)),
            ("latent", np.concatenate([clip[:, c0 - 1:c0], ro["latent"]], 1)),
            ("pixel", np.concatenate([clip[:, c0 - 1:c0], ro["pixel"]], 1))]
    H = ro["truth"].shape[1] + 1
    fig, axes = plt.subplots(3, H, figsize=(1.2 * H, 3.9))
    for r, (name, fr) in enumerate(rows):
        for j in range(H):
            img = fr[0, j]
            img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
            ax = axes[r, j]
            ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title("context" if j == 0 else f"+{j}", fontsize=7)
    fig.suptitle(f"{name}: truth vs latent vs pixel rollouts", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def frames_png(fr: np.ndarray, out: Path) -> Path:
    """PNG of the first (up to 8) frames of each clip of ``fr[clips, T, C, H, W]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = min(fr.shape[1], 8)
    fig, axes = plt.subplots(len(fr), T, figsize=(1.2 * T, 1.3 * len(fr)), squeeze=False)
    for i in range(len(fr)):
        for j in range(T):
            img = fr[i, j]
            img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
            axes[i, j].imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    fig.tight_layout()
    save_figure(fig, out)
    return out
