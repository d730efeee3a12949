"""One resumable training stage over a fixed array of rows (episodes, clips, code rows), shared by the
experiments that train several models in sequence (planning, video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sampler import RowSampler
from ..io import atomic_write_json
from ..train import Trainer, TrainerConfig
from ..train.checkpoint import latest_valid_checkpoint, load_model


def train_rows(what: str, run_dir: Path, model, tcfg: TrainerConfig, rows: np.ndarray, log):
    """Train ``model`` on batches of ``rows`` (seeded by ``tcfg.seed``) into ``run_dir``; ``done.json`` marks a
    finished stage (then it is only loaded), a checkpoint without it is resumed. Returns the trained model."""
    if (run_dir / "done.json").is_file():
        log(f"{what}: done, skipped")
        return load_model(run_dir, model.kind)[0]
    partial = latest_valid_checkpoint(run_dir / "checkpoints", warn=False) is not None
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{what}: {'resuming' if partial else 'training'} ({n_params:,} params, {tcfg.steps} steps)")
    tr = Trainer(model, tcfg, run_dir, lambda r, w: RowSampler(rows, tcfg.batch_size, tcfg.seed, r, w))
    tr.fit(resume=partial)
    atomic_write_json(run_dir / "done.json", {"step": tr.step, "train_time": round(tr.train_time, 2),
                                              "params": n_params})
    return load_model(run_dir, model.kind)[0]
