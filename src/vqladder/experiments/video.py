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

import base64
import io
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..config import NonNegFloat, NonNegInt, PosInt, RunName, to_dict
from ..data.video import VideoDataConfig, load_videos
from ..errors import VQLadderError
from ..eval.probes import _ridge, psnr, r2, ridge_probe, ssim_frames  # noqa: F401
from ..io import atomic_save_npy, atomic_write_json, atomic_write_text, claim_run_dir
from ..models import CompressorConfig, SequenceCompressor, load_model
from ..models.video import FrameAE, FrameAEConfig, FramePredictor, PredictorConfig, patchify, unpatchify
from ..quantize import QuantizerConfig
from ..report import save_figure
from ..report.video import _ms, video_markdown  # noqa: F401
from ..train import TrainerConfig
from ..train.stage import guard_config, stage_results, stage_state
from .stages import train_rows

STAGES = ("ae", "level2", "latent", "pixel")  # the run directories of one seed


def _tc(**kw):
    base = dict(steps=500, batch_size=8, lr=2e-3, warmup=50, eval_every=-1, ckpt_every=250, log_every=50,
                progress=False)
    base.update(kw)
    return lambda: TrainerConfig(**base)


@dataclass
class Level2Config:
    tubelet: PosInt = 4                  # frames per tubelet: one level-2 code per patch per `tubelet` frames
    model: CompressorConfig = field(default_factory=lambda: CompressorConfig(
        d_model=64, n_heads=2, enc_layers=1, latent_layers=1, dec_layers=1,
        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024)))


@dataclass
class VideoExpConfig:
    name: RunName = "video-balls"
    out_dir: str = "runs"
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    seeds: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2])
    ae: FrameAEConfig = field(default_factory=FrameAEConfig)
    ae_train: TrainerConfig = field(default_factory=_tc())
    level2: Level2Config = field(default_factory=Level2Config)
    level2_train: TrainerConfig = field(default_factory=_tc(batch_size=64))
    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(d_model=128, n_heads=2, n_layers=3))
    predictor_train: TrainerConfig = field(default_factory=_tc())
    context: PosInt = 4                  # true frames given to a rollout
    horizon: PosInt = 8                  # frames predicted (context + horizon <= data.frames)
    eval_clips: PosInt = 100             # held-out clips for prediction and probe testing
    probe_clips: PosInt = 400            # training clips used to fit the probes
    probe_l2: NonNegFloat = 0.0             # ridge penalty of the probes (standardised features); 0 = chosen on held-back rows
    threads: NonNegInt = 0                  # torch threads (0 = default)

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def validate(self) -> None:
        self.data.validate()
        ae = self.ae_config(0)
        ae.validate()
        if self.context < 1 or self.horizon < 1:
            raise VQLadderError(f"context and horizon must be >= 1 frame, got {self.context}, {self.horizon}")
        if self.context + self.horizon > self.data.frames:
            raise VQLadderError(f"horizon {self.horizon} + context {self.context} frames is longer than the clip "
                                f"({self.data.frames} frames)")
        t = self.level2.tubelet
        if t < 1 or self.data.frames % t:
            raise VQLadderError(f"level2.tubelet={t} must divide the clip length {self.data.frames}")
        if not self.seeds:
            raise VQLadderError("seeds is empty")

    def ae_config(self, seed: int) -> FrameAEConfig:
        return replace(self.ae, channels=self.data.channels, size=self.data.size, seed=seed)


# -- stages ----------------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_clips(ae: FrameAE, frames: np.ndarray, batch: int = 512) -> np.ndarray:
    """frames[n, t, c, s, s] -> level-1 codes[n, t, p]."""
    n, t = frames.shape[:2]
    flat = torch.from_numpy(frames.reshape(n * t, *frames.shape[2:]))
    codes = torch.cat([ae.encode(flat[i:i + batch]) for i in range(0, len(flat), batch)])
    return codes.view(n, t, -1).numpy()


def to_tubelets(codes: np.ndarray, tubelet: int) -> np.ndarray:
    """codes[n, t, p] -> level-2 input rows[n * t/tubelet, p * tubelet], patch-major, so that each run of
    ``tubelet`` symbols is one patch over ``tubelet`` frames."""
    n, t, p = codes.shape
    g = t // tubelet
    x = codes.reshape(n, g, tubelet, p).transpose(0, 1, 3, 2)  # n, g, p, tubelet
    return x.reshape(n * g, p * tubelet)


def from_tubelets(rows: np.ndarray, n: int, tubelet: int, p: int) -> np.ndarray:
    g = rows.shape[0] // n
    return rows.reshape(n, g, p, tubelet).transpose(0, 1, 3, 2).reshape(n, g * tubelet, p)


def train_seed(cfg: VideoExpConfig, train: dict, seed: int, log) -> dict:
    d = cfg.dir / f"seed{seed}"
    tc = lambda t: replace(t, seed=seed, progress=False)
    ae = train_rows(f"seed {seed}: level 1 (frame autoencoder)", d / "ae", FrameAE(cfg.ae_config(seed)),
                    tc(cfg.ae_train), train["frames"], log)
    codes_p = d / "codes.train.npy"
    if not codes_p.is_file():
        atomic_save_npy(codes_p, encode_clips(ae, train["frames"]))
    codes = np.load(codes_p)
    P, t2 = cfg.ae_config(seed).tokens, cfg.level2.tubelet
    l2cfg = replace(cfg.level2.model, vocab_size=ae.quantizer.codebook_size, in_len=P * t2, out_len=P, seed=seed)
    l2 = train_rows(f"seed {seed}: level 2 (tubelets of {t2} frames)", d / "level2", SequenceCompressor(l2cfg),
                    tc(cfg.level2_train), to_tubelets(codes, t2), log)
    base = replace(cfg.predictor, frames=cfg.data.frames, tokens=P, seed=seed)
    lat = train_rows(f"seed {seed}: latent predictor", d / "latent",
                     FramePredictor(replace(base, mode="latent", vocab=ae.quantizer.codebook_size)),
                     tc(cfg.predictor_train), codes, log)
    q = cfg.ae.patch
    pix_rows = patchify(torch.from_numpy(train["frames"]), q).numpy()
    pix = train_rows(f"seed {seed}: pixel predictor", d / "pixel",
                     FramePredictor(replace(base, mode="pixel", in_dim=pix_rows.shape[-1])),
                     tc(cfg.predictor_train), pix_rows, log)
    return {"ae": ae, "level2": l2, "latent": lat, "pixel": pix}


@torch.no_grad()
def rollouts(cfg: VideoExpConfig, models: dict, frames: np.ndarray) -> dict:
    """Latent and pixel rollouts (+ references) of clips[n, t, c, s, s] -> predicted frames[n, horizon, c, s, s]."""
    ae, lat, pix = models["ae"], models["latent"], models["pixel"]
    c0, h, q = cfg.context, cfg.horizon, cfg.ae.patch
    x = torch.from_numpy(frames)
    n, C = x.shape[0], x.shape[2]
    codes = torch.from_numpy(encode_clips(ae, frames[:, :c0 + h]))
    t0 = time.time()
    pred_codes = lat.rollout(codes[:, :c0], h)
    lat_frames = ae.decode(pred_codes.reshape(n * h, -1)).view(n, h, *x.shape[2:])
    t_lat = time.time() - t0
    t0 = time.time()
    pix_frames = unpatchify(pix.rollout(patchify(x[:, :c0], q), h), q, C)
    t_pix = time.time() - t0
    recon = ae.decode(codes[:, c0:].reshape(n * h, -1)).view(n, h, *x.shape[2:])
    copy = x[:, c0 - 1:c0].expand(n, h, *x.shape[2:])
    return {"latent": lat_frames.numpy(), "pixel": pix_frames.numpy(), "copy_last": copy.numpy(),
            "ae_floor": recon.numpy(), "truth": frames[:, c0:c0 + h], "seconds": {"latent": t_lat, "pixel": t_pix},
            "code_acc": (pred_codes == codes[:, c0:]).float().mean((0, 2)).numpy()}




@torch.no_grad()
def level_features(cfg: VideoExpConfig, models: dict, frames: np.ndarray) -> dict:
    """Features at tubelet starts, per level: {level: (single-frame features, two-frame features)} with shape
    [n * groups, F]; level 2's tubelet features serve for both (a tubelet already spans several frames)."""
    ae, l2 = models["ae"], models["level2"]
    t2 = cfg.level2.tubelet
    n, T = frames.shape[:2]
    starts = np.arange(0, T, t2)
    nxt = np.minimum(starts + 1, T - 1)
    pix = frames.reshape(n, T, -1)
    codes = encode_clips(ae, frames)
    vec = ae.code_vectors(torch.from_numpy(codes)).reshape(n, T, -1).numpy()
    rows = torch.from_numpy(to_tubelets(codes, t2))
    c2 = torch.cat([l2.encode(rows[i:i + 512]) for i in range(0, len(rows), 512)])
    v2 = l2.quantizer.decode_codes(c2).reshape(n * len(starts), -1).numpy()
    out = {}
    for name, f in (("pixels", pix), ("level 1", vec)):
        one = f[:, starts].reshape(n * len(starts), -1)
        two = np.concatenate([f[:, starts], f[:, nxt]], -1).reshape(n * len(starts), -1)
        out[name] = (one, two)
    out["level 2"] = (v2, v2)
    return out


def probe_targets(cfg: VideoExpConfig, data: dict) -> dict:
    """Ground truth at tubelet starts: {name: (array[n * groups, k], 'r2' | 'acc' | 'cells')}."""
    t2 = cfg.level2.tubelet
    T = cfg.data.frames
    starts = np.arange(0, T, t2)
    n = data["frames"].shape[0]
    out = {}
    if cfg.data.kind in ("balls", "sprites", "colour"):
        pos, vel = data["pos"], data["vel"]
        if pos.ndim == 3:  # one object: [n, T, 2] -> [n, T, 1, 2]
            pos, vel = pos[:, :, None], vel[:, :, None]
        order = np.argsort(pos[..., 1], axis=-1)  # canonical object order: by column
        pos = np.take_along_axis(pos, order[..., None], 2)
        vel = np.take_along_axis(vel, order[..., None], 2)
        out["position"] = (pos[:, starts].reshape(n * len(starts), -1), "r2")
        out["velocity"] = (vel[:, starts].reshape(n * len(starts), -1), "r2")
    if cfg.data.kind == "colour":
        out["colour"] = (np.eye(3)[data["colour"][:, starts]].reshape(n * len(starts), 3), "acc")
    if cfg.data.kind == "life":
        cells = data["cells"]
        after = np.minimum(starts + t2, T - 1)  # the frame after the tubelet (next state for single frames: +1)
        out["next state (t+1)"] = (cells[:, np.minimum(starts + 1, T - 1)].reshape(n * len(starts), -1), "cells")
        out["state after tubelet"] = (cells[:, after].reshape(n * len(starts), -1), "cells")
    return out


def run_probes(cfg: VideoExpConfig, models: dict, train: dict, test: dict) -> list[dict]:
    tr_n, te_n = min(cfg.probe_clips, len(train["frames"])), min(cfg.eval_clips, len(test["frames"]))
    trd = {k: v[:tr_n] for k, v in train.items()}
    ted = {k: v[:te_n] for k, v in test.items()}
    ftr, fte = level_features(cfg, models, trd["frames"]), level_features(cfg, models, ted["frames"])
    ttr, tte = probe_targets(cfg, trd), probe_targets(cfg, ted)
    rows = []
    for level in ftr:
        row = {"level": level}
        for name, (ytr, kind) in ttr.items():
            yte = tte[name][0]
            two = name == "velocity"  # motion needs two frames at levels 0/1
            xtr, xte = ftr[level][1 if two else 0], fte[level][1 if two else 0]
            pred = ridge_probe(xtr, ytr.astype(np.float64), xte, cfg.probe_l2)
            if kind == "r2":
                row[name] = r2(yte, pred)
            elif kind == "acc":
                row[name] = float((pred.argmax(1) == yte.argmax(1)).mean())
            else:
                row[name] = float(((pred > 0.5) == (yte > 0.5)).mean())
        rows.append(row)
    if cfg.data.kind == "life":  # references: the current state copied, and all cells dead
        t2, T = cfg.level2.tubelet, cfg.data.frames
        st = np.arange(0, T, t2)
        cur = ted["cells"][:, st].reshape(len(st) * te_n, -1)
        for name, (yte, _) in tte.items():
            rows_ref = {"copy current state": float((cur == yte).mean()), "all dead": float((yte == 0).mean())}
            for ref, v in rows_ref.items():
                r = next((x for x in rows if x["level"] == ref), None)
                if r is None:
                    r = {"level": ref}
                    rows.append(r)
                r[name] = v
    return rows


@torch.no_grad()
def level_reconstruction(cfg: VideoExpConfig, models: dict, frames: np.ndarray) -> dict:
    """Pixel MSE of held-out clips reconstructed from each level's codes (level 2 -> level 1 codes -> pixels),
    and the fraction of level-1 codes level 2 gives back exactly."""
    ae, l2 = models["ae"], models["level2"]
    n, T = frames.shape[:2]
    codes = encode_clips(ae, frames)
    P, t2 = codes.shape[-1], cfg.level2.tubelet
    rows = torch.from_numpy(to_tubelets(codes, t2))
    back = torch.cat([l2.decode(l2.encode(rows[i:i + 512])).argmax(-1) for i in range(0, len(rows), 512)])
    codes2 = from_tubelets(back.numpy(), n, t2, P)
    dec = lambda c: ae.decode(torch.from_numpy(c).reshape(n * T, P)).view(n, T, *frames.shape[2:]).numpy()
    return {"level 1": float(((dec(codes) - frames) ** 2).mean()), "level 2": float(((dec(codes2) - frames) ** 2).mean()),
            "level2_code_acc": float((codes2 == codes).mean())}


def mean_frame_mse(train_frames: np.ndarray, truth: np.ndarray) -> float:
    """MSE of predicting the mean training frame, scored on the same predicted frames as the predictors
    (``truth`` = the rolled-out horizon), not on the context frames too."""
    return float(((truth - train_frames.mean((0, 1))) ** 2).mean())


def frame_png(frame: np.ndarray) -> str:
    """frame[c, s, s] in [0, 1] -> a PNG data URL (for the report's frame viewer)."""
    from PIL import Image

    a = (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def example_rollouts(cfg: VideoExpConfig, ro: dict, frames: np.ndarray, clips: int = 3) -> dict:
    """The first held-out clips' frames as PNGs: the context, then truth / latent / pixel / copy-last per step."""
    c0 = cfg.context
    return {"context": c0, "horizon": cfg.horizon, "clips": [
        {"context": [frame_png(f) for f in frames[i, :c0]],
         **{k: [frame_png(f) for f in ro[k][i]] for k in ("truth", "latent", "pixel", "copy_last")}}
        for i in range(min(clips, len(frames)))]}


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
            "probes": run_probes(cfg, models, train, test), "train": info,
            "rollout_seconds": {k: round(v, 3) for k, v in ro["seconds"].items()}, "clips": len(frames)}


# -- the experiment --------------------------------------------------------------------------------------------
def _prepare(cfg: VideoExpConfig, log):
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    claim_run_dir(cfg.dir)
    guard_config(cfg.dir, to_dict(cfg), name="video.yaml",  # seeds and evaluation sizes are not part of training
                 ignore=("seeds", "eval_clips", "probe_clips", "out_dir", "threads"))
    t0 = time.time()
    train, test = load_videos(cfg.data)
    log(f"{cfg.data.kind}: {len(train['frames'])} train / {len(test['frames'])} held-out clips of "
        f"{cfg.data.frames} frames {cfg.data.size}x{cfg.data.size} ({time.time() - t0:.1f}s)")
    return train, test


def train_video(cfg: VideoExpConfig, log=None) -> None:
    log = log or (lambda m: print(f"[video] {m}", file=sys.stderr, flush=True))
    train, _ = _prepare(cfg, log)
    for seed in cfg.seeds:
        train_seed(cfg, train, seed, log)


def eval_video(cfg: VideoExpConfig, log=None, train_missing: bool = True) -> dict:
    log = log or (lambda m: print(f"[video] {m}", file=sys.stderr, flush=True))
    train, test = _prepare(cfg, log)
    evals = []
    for seed in cfg.seeds:
        d = cfg.dir / f"seed{seed}"
        if not train_missing and not all(stage_state(d / k) == "done" for k in STAGES):
            raise VQLadderError(f"seed {seed} is not trained yet: run `vqladder video train` with this config first")
        models = train_seed(cfg, train, seed, log)
        ev_p = d / "eval.json"
        if ev_p.is_file():
            evals.append(json.loads(ev_p.read_text()))
            continue
        log(f"seed {seed}: evaluating on {min(cfg.eval_clips, len(test['frames']))} held-out clips")
        ev = evaluate_seed(cfg, models, train, test, seed,
                           examples=cfg.dir / "rollouts.json" if seed == cfg.seeds[0] else None)
        atomic_write_json(ev_p, ev)
        evals.append(ev)
        if seed == cfg.seeds[0]:
            strip(cfg, models, test["frames"][:1], cfg.dir / "strip.png")
    res = {"kind": cfg.data.kind, "seeds": cfg.seeds, "evals": evals}
    atomic_write_json(cfg.dir / "results.json", res)
    atomic_write_text(cfg.dir / "results.md", video_markdown(res, cfg))
    return res


def strip(cfg: VideoExpConfig, models: dict, clip: np.ndarray, path: Path) -> None:
    """PNG: the last context frame and the predicted frames; rows truth / latent / pixel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ro = rollouts(cfg, models, clip)
    c0 = cfg.context
    rows = [("truth", np.concatenate([clip[:, c0 - 1:c0], ro["truth"]], 1)),
            ("latent", np.concatenate([clip[:, c0 - 1:c0], ro["latent"]], 1)),
            ("pixel", np.concatenate([clip[:, c0 - 1:c0], ro["pixel"]], 1))]
    H = cfg.horizon + 1
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
    fig.suptitle(f"{cfg.name}: truth vs latent vs pixel rollouts", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


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
    strip(cfg, models, test["frames"][clip:clip + 1], out)
    return out


def preview(cfg: VideoExpConfig, out: Path, clips: int = 3) -> Path:
    """PNG of the first frames of a few generated training clips (``vqladder video generate``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, _ = load_videos(cfg.data)
    fr = train["frames"][:clips]
    T = min(cfg.data.frames, 8)
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
