"""Variable-length codes, measured: where a model puts its segment boundaries, how many codes it spends per token
on repetitive vs random spans, and the fixed-rate baseline at a variable model's measured rate (time-sharing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.sampler import gather_windows, val_windows
from ..models.variable import VariableCompressor, segment_positions
from ..nn import eval_mode


@torch.no_grad()
def segment_starts(model: VariableCompressor, chunks: torch.Tensor) -> torch.Tensor:
    """Held-out segment starts[b, n] of ``model`` (eval mode)."""
    with eval_mode(model):
        return model(chunks)[1].starts


def codes_per_token_by_label(model, tokens: np.ndarray, labels: np.ndarray, n: int, max_chunks: int) -> dict:
    """Codes spent per token (1 / length of the token's segment) on labelled (repetitive) vs other tokens."""
    starts_idx = val_windows(tokens, n, max_chunks)
    per_tok, lab = [], []
    for s in range(0, len(starts_idx), 64):
        idx = starts_idx[s:s + 64]
        st = segment_starts(model, gather_windows(tokens, idx, n))
        seg, _ = segment_positions(st)
        lengths = torch.zeros_like(seg).scatter_add_(1, seg, torch.ones_like(seg))
        per_tok.append((1.0 / lengths.gather(1, seg).double()).numpy().reshape(-1))
        lab.append(labels[idx[:, None] + np.arange(n)[None, :]].reshape(-1))
    c, lab = np.concatenate(per_tok), np.concatenate(lab)
    return {"codes_per_token_repetitive": float(c[lab].mean()), "codes_per_token_random": float(c[~lab].mean())}


def add_equal_bits(rows: list[dict]) -> None:
    """Give every variable row ``fixed_acc_at_equal_bits``: what the fixed-rate models achieve at the row's
    measured rate by *time-sharing*: coding a fraction of the chunks with each of the two neighbouring fixed
    models, so accuracy is linear in bits/token between them (an achievable point; interpolating in log-rate
    would sit above it and favour the fixed baseline). NaN outside the fixed rows' range of rates."""
    fx = sorted((r["bits_per_token"], r["acc"]) for r in rows if r["method"] == "fixed")
    for r in rows:
        if r["method"] == "fixed" or len(fx) < 2:
            continue
        b = r["bits_per_token"]
        xs = [x for x, _ in fx]
        r["fixed_acc_at_equal_bits"] = float(np.interp(b, xs, [a for _, a in fx])) if xs[0] <= b <= xs[-1] else float("nan")


def cell_segments(chunks: torch.Tensor, cells: list[tuple[str, float, Path]]) -> list[tuple[str, float, np.ndarray]]:
    """(method, target, segment index of every token [b, n]) of each trained cell's model on ``chunks``."""
    from ..models import load_model

    out = []
    for m, t, d in cells:
        if not (d / "results.json").is_file():
            continue
        model = load_model(d, expect_kind="variable_compressor")[0]
        seg, _ = segment_positions(segment_starts(model, chunks))
        out.append((m, t, np.asarray(seg)))
    return out
