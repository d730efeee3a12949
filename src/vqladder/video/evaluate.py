"""The video experiment's measurements: latent and pixel rollouts against copy-last and the autoencoder floor,
per-level reconstruction, the mean-frame reference, and linear probes of each level's features."""

from __future__ import annotations

import time

import numpy as np
import torch

from .models import encode_clips, from_tubelets, patchify, to_tubelets, unpatchify
from .probes import r2, ridge_probe


@torch.no_grad()
def rollouts(cfg, models: dict, frames: np.ndarray) -> dict:
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
def level_features(cfg, models: dict, frames: np.ndarray) -> dict:
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


def probe_targets(cfg, data: dict) -> dict:
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


def run_probes(cfg, models: dict, train: dict, test: dict) -> list[dict]:
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
def level_reconstruction(cfg, models: dict, frames: np.ndarray) -> dict:
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


def canonical_positions(pos: np.ndarray) -> np.ndarray:
    """pos[n, T, (k,) 2] -> [n, T, k, 2] with the objects ordered by column (so a probe's targets are defined)."""
    if pos.ndim == 3:
        pos = pos[:, :, None]
    order = np.argsort(pos[..., 1], axis=-1)
    return np.take_along_axis(pos, order[..., None], 2)


def rollout_position_error(cfg, train: dict, test: dict, ro: dict, fit_frames: int = 4000,
                           seed: int = 0) -> dict | None:
    """A rollout metric that leans towards neither predictor: ONE linear probe, fitted on true training frames
    (pixels -> object positions), reads the positions off every predicted frame -- the latent predictor's decoded
    codes, the pixel predictor's regression, copy-last, and the true frames (the probe's own floor). Returns the
    RMSE in pixels to the true positions per horizon step, for each. MSE/PSNR favour the MSE-trained pixel
    regressor (a blur scores well) and code accuracy only exists for the latent one; this asks both the same
    question: is the object where it should be? None for data without object positions (life)."""
    if "pos" not in train or "pos" not in test:
        return None
    ptr = canonical_positions(train["pos"])
    n, T = ptr.shape[:2]
    x = train["frames"].reshape(n * T, -1)
    y = ptr.reshape(n * T, -1)
    idx = np.random.default_rng(seed).choice(n * T, min(fit_frames, n * T), replace=False)
    c0, h = cfg.context, cfg.horizon
    m = len(ro["truth"])
    want = canonical_positions(test["pos"][:m])[:, c0:c0 + h].reshape(m, h, -1)
    kinds = ("truth", "latent", "pixel", "copy_last")
    frames = np.concatenate([np.asarray(ro[k], dtype=np.float32).reshape(m * h, -1) for k in kinds])
    got = ridge_probe(x[idx], y[idx], frames).reshape(len(kinds), m, h, -1)
    return {k: np.sqrt(((got[i] - want) ** 2).mean(-1)).mean(0).tolist() for i, k in enumerate(kinds)}
