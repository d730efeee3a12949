"""Probes and image metrics for the video experiment: PSNR, SSIM (scikit-image), ridge probes and R^2."""

from __future__ import annotations

import numpy as np
import torch

# ridge penalties tried by the probes (picked per target on a held-out part of train)
RIDGE_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


# -- evaluation ----------------------------------------------------------------------------------------------
def psnr(mse: np.ndarray) -> np.ndarray:
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def ssim_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of frames[..., c, s, s] pairs with scikit-image (data range 1); -> [...]."""
    from skimage.metrics import structural_similarity

    lead = a.shape[:-3]
    a2, b2 = a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])
    win = min(7, a.shape[-1] - (1 - a.shape[-1] % 2))
    out = [structural_similarity(x, y, data_range=1.0, channel_axis=0, win_size=win) for x, y in zip(a2, b2)]
    return np.asarray(out).reshape(lead)


def ridge_probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, l2: float = 0.0) -> np.ndarray:
    """Ridge regression on standardised features (closed form) -> predictions for ``xte``. ``l2 <= 0`` picks
    the penalty from ``RIDGE_GRID`` on a held-back fifth of the training rows, then refits on all of them."""
    if l2 <= 0:
        cut = max(1, len(xtr) * 4 // 5)
        errs = [((_ridge(xtr[:cut], ytr[:cut], xtr[cut:], lam) - ytr[cut:]) ** 2).mean() for lam in RIDGE_GRID]
        l2 = RIDGE_GRID[int(np.argmin(errs))]
    return _ridge(xtr, ytr, xte, l2)


def _ridge(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, l2: float) -> np.ndarray:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a = torch.from_numpy(((xtr - mu) / sd).astype(np.float64))
    b = torch.from_numpy((xte - mu) / sd).double()
    ym = ytr.mean(0)
    y = torch.from_numpy((ytr - ym).astype(np.float64))
    if a.shape[1] <= a.shape[0]:
        w = torch.linalg.solve(a.T @ a + l2 * torch.eye(a.shape[1], dtype=a.dtype), a.T @ y)
        return (b @ w).numpy() + ym
    k = torch.linalg.solve(a @ a.T + l2 * torch.eye(a.shape[0], dtype=a.dtype), y)  # dual form when F > N
    return (b @ (a.T @ k)).numpy() + ym


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination averaged over outputs."""
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return float(np.mean(1 - ss_res / np.maximum(ss_tot, 1e-12)))
