"""Small algorithmic pixel videos: do the levels capture the dynamics, and is prediction in latent space better
than in pixel space? ``vqladder video generate | train | eval | show``.

Per seed, on clips from ``data.video`` (ground-truth state known):

1. **level 1**: a per-frame patch autoencoder with FSQ codes (``FrameAE``; ``ae.tokens`` codes per frame);
2. **level 2**: a ``SequenceCompressor`` over level-1 codes arranged as tubelets: for each patch, ``tubelet``
   consecutive frames are pooled into one code (``tubelet`` x fewer codes per clip);
3. **latent dynamics**: a block-causal ``FramePredictor`` over level-1 codes (next frame's codes, all patches
   at once), rolled out from ``context`` true frames for ``horizon`` frames and decoded to pixels;
4. **pixel baseline**: the same predictor (same blocks, width, depth, steps, batch) regressing the next
   frame's pixel patches directly.

Evaluation on held-out clips: MSE / PSNR / SSIM (scikit-image) per horizon for latent and pixel rollouts, with
two references (copy the last context frame; the autoencoder's reconstruction of the true future, the floor of
latent prediction); ridge-regression probes from pixels, level-1 and level-2 features of positions and
velocities (R^2), colour (accuracy) and Game-of-Life next state (cell accuracy, with the copy-current
baseline); parameters, training and rollout times. Bits per frame per level.

``<out_dir>/<name>/``: ``seed<k>/{ae,level2,latent,pixel}/`` run directories (resumable, ``results.json`` when
finished), ``seed<k>/eval.json``, ``results.{json,md}``, ``strip.png`` (ground truth vs both predictions).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..config import derive
from ..errors import VQLadderError
from ..io import atomic_save_npy, atomic_write_json, atomic_write_text, read_json
from ..models import SequenceCompressor, load_model
from ..train.recipe import open_experiment, write_results
from ..train.rows import train_rows
from ..train.stage import fresh, stage_results, stage_state, stderr_log
from .config import Level2Config, VideoExpConfig  # noqa: F401  (the recipe's public names)
from .data import load_videos
from .evaluate import level_reconstruction, mean_frame_mse, rollout_position_error, rollouts, run_probes
from .models import (
    FrameAE,
    FramePredictor,
    encode_clips,
    patchify,
    to_tubelets,
)
from .probes import psnr, ssim_frames
from .report import example_rollouts, frames_png, strip_png, video_markdown

STAGES = ("ae", "level2", "latent", "pixel")  # the run directories of one seed


def train_seed(cfg: VideoExpConfig, train: dict, seed: int, log) -> dict:
    d = cfg.dir / f"seed{seed}"
    tc = lambda t: derive(t, seed=seed, progress=False)
    ae = train_rows(f"seed {seed}: level 1 (frame autoencoder)", d / "ae", FrameAE(cfg.ae_config(seed)),
                    tc(cfg.ae_train), train["frames"], log)
    codes_p = d / "codes.train.npy"
    if not fresh(codes_p, d / "ae"):
        atomic_save_npy(codes_p, encode_clips(ae, train["frames"]))
    codes = np.load(codes_p)
    P, t2 = cfg.ae_config(seed).tokens, cfg.level2.tubelet
    l2cfg = derive(cfg.level2.model, vocab_size=ae.quantizer.codebook_size, in_len=P * t2, out_len=P, seed=seed)
    l2 = train_rows(f"seed {seed}: level 2 (tubelets of {t2} frames)", d / "level2", SequenceCompressor(l2cfg),
                    tc(cfg.level2_train), to_tubelets(codes, t2), log, after=[d / "ae"])
    base = derive(cfg.predictor, frames=cfg.data.frames, tokens=P, seed=seed)
    lat = train_rows(f"seed {seed}: latent predictor", d / "latent",
                     FramePredictor(derive(base, mode="latent", vocab=ae.quantizer.codebook_size)),
                     tc(cfg.predictor_train), codes, log, after=[d / "ae"])
    q = cfg.ae.patch
    pix_rows = patchify(torch.from_numpy(train["frames"]), q).numpy()
    pix = train_rows(f"seed {seed}: pixel predictor", d / "pixel",
                     FramePredictor(derive(base, mode="pixel", in_dim=pix_rows.shape[-1])),
                     tc(cfg.predictor_train), pix_rows, log)
    return {"ae": ae, "level2": l2, "latent": lat, "pixel": pix}


def evaluate_seed(cfg: VideoExpConfig, models: dict, train: dict, test: dict, seed: int,
                  examples: Path | None = None) -> dict:
    frames = test["frames"][:cfg.eval_clips]
    ro = rollouts(cfg, models, frames)
    if examples is not None:
        atomic_write_json(examples, example_rollouts(cfg, ro, frames))
    truth = ro["truth"]
    pred = {}
    for k in ("latent", "pixel", "copy_last", "ae_floor"):
        mse = ((ro[k] - truth) ** 2).mean((2, 3, 4))  # [n, h]
        pred[k] = {"mse": mse.mean(0).tolist(), "psnr": psnr(mse).mean(0).tolist(),
                   "ssim": ssim_frames(ro[k], truth).mean(0).tolist()}
    ae = models["ae"]
    P = ae.config.tokens
    bits = {"pixels (8-bit)": frames.shape[2] * cfg.data.size ** 2 * 8.0, "level 1": ae.bits_per_frame,
            "level 2": P * models["level2"].quantizer.bits_per_code / cfg.level2.tubelet}
    d = cfg.dir / f"seed{seed}"
    info = {k: stage_results(d / k) for k in STAGES}
    return {"seed": seed, "prediction": pred, "code_acc": ro["code_acc"].tolist(), "bits_per_frame": bits,
            "reconstruction": level_reconstruction(cfg, models, frames),
            "mean_frame_mse": mean_frame_mse(train["frames"], truth),
            "position_error": rollout_position_error(cfg, train, test, ro),
            "probes": run_probes(cfg, models, train, test), "train": info,
            "rollout_seconds": {k: round(v, 3) for k, v in ro["seconds"].items()}, "clips": len(frames)}


# -- the experiment --------------------------------------------------------------------------------------------
def _prepare(cfg: VideoExpConfig, log):
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    open_experiment(cfg, ignore=("seeds", "eval_clips", "probe_clips", "out_dir", "threads", "name"))  # seeds and
    # evaluation sizes are not part of training
    t0 = time.time()
    train, test = load_videos(cfg.data)
    log(f"{cfg.data.kind}: {len(train['frames'])} train / {len(test['frames'])} held-out clips of "
        f"{cfg.data.frames} frames {cfg.data.size}x{cfg.data.size} ({time.time() - t0:.1f}s)")
    return train, test


def train_video(cfg: VideoExpConfig, log=None) -> None:
    log = log or stderr_log("video")
    train, _ = _prepare(cfg, log)
    for seed in cfg.seeds:
        train_seed(cfg, train, seed, log)


def eval_video(cfg: VideoExpConfig, log=None, train_missing: bool = True) -> dict:
    log = log or stderr_log("video")
    train, test = _prepare(cfg, log)
    evals = []
    for seed in cfg.seeds:
        d = cfg.dir / f"seed{seed}"
        if not train_missing and not all(stage_state(d / k) == "done" for k in STAGES):
            raise VQLadderError(f"seed {seed} is not trained yet: run `vqladder video train` with this config first")
        models = train_seed(cfg, train, seed, log)
        ev_p = d / "eval.json"
        if fresh(ev_p, *(d / k for k in STAGES)):  # kept unless a stage was (re)trained after it
            evals.append(read_json(ev_p))
            continue
        log(f"seed {seed}: evaluating on {min(cfg.eval_clips, len(test['frames']))} held-out clips")
        ev = evaluate_seed(cfg, models, train, test, seed,
                           examples=cfg.dir / "rollouts.json" if seed == cfg.seeds[0] else None)
        atomic_write_json(ev_p, ev)
        evals.append(ev)
        if seed == cfg.seeds[0]:
            strip_png(cfg.name, cfg.context, test["frames"][:1], rollouts(cfg, models, test["frames"][:1]),
                      cfg.dir / "strip.png")
    res = {"kind": cfg.data.kind, "seeds": cfg.seeds, "evals": evals}
    write_results(cfg.dir, res)
    atomic_write_text(cfg.dir / "results.md", video_markdown(res, cfg))
    return res


def show(cfg: VideoExpConfig, seed: int, clip: int, out: Path) -> Path:
    """Strip of one held-out clip for a trained seed."""
    _, test = load_videos(cfg.data)
    if not 0 <= clip < len(test["frames"]):
        raise VQLadderError(f"clip {clip} out of range: {len(test['frames'])} held-out clips")
    d = cfg.dir / f"seed{seed}"
    if not all(stage_state(d / k) == "done" for k in STAGES):
        raise VQLadderError(f"seed {seed} of {cfg.dir} is not trained: run `vqladder video train` first")
    models = {k: load_model(d / k, kind)[0] for k, kind in (("ae", "frame_ae"), ("level2", "sequence_compressor"),
                                                            ("latent", "frame_predictor"), ("pixel", "frame_predictor"))}
    frames = test["frames"][clip:clip + 1]
    strip_png(cfg.name, cfg.context, frames, rollouts(cfg, models, frames), out)
    return out


def preview(cfg: VideoExpConfig, out: Path, clips: int = 3) -> Path:
    """PNG of the first frames of a few generated training clips (``vqladder video generate``)."""
    return frames_png(load_videos(cfg.data)[0]["frames"][:clips], out)
