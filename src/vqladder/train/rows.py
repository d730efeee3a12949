"""One resumable training stage over a fixed array of rows (episodes, clips, code rows), shared by the
experiments that train several models in sequence (planning, video): ``train.stage.run_stage`` with a
``RowSampler``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sampler import RowSampler
from ..models import load_model
from . import TrainerConfig
from .stage import run_stage


def train_rows(what: str, run_dir: Path, model, tcfg: TrainerConfig, rows: np.ndarray, log, after=(),
               evaluate=None):
    """Train ``model`` on batches of ``rows`` (seeded by ``tcfg.seed``) into ``run_dir`` through the stage
    runner (finished: loaded; checkpointed: resumed; changed: refused, or retrained with --retrain). ``after``: the
    stage directories the rows were made from; ``evaluate(model) -> dict``: held-out metrics (in results.json).
    Returns the trained model."""
    run_stage(what, run_dir, model, tcfg, lambda r, w: RowSampler(rows, tcfg.batch_size, tcfg.seed, r, w),
              evaluate, log=log, after=after)
    return load_model(run_dir, model.kind)[0]
