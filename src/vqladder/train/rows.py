"""One resumable training stage over a fixed array of rows (episodes, clips, code rows), shared by the
experiments that train several models in sequence (planning, video): ``train.stage.run_stage`` with a
``RowSampler``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..data.sampler import RowSampler
from ..models import load_model
from . import TrainerConfig
from .stage import run_stage


def rows_fingerprint(rows: np.ndarray) -> str:
    """A cheap fingerprint of a row array (shape, dtype and every row of a strided sample): a stage trained on
    other rows is told apart from a finished one."""
    sample = np.ascontiguousarray(rows[::max(1, len(rows) // 1024)])
    return f"{rows.shape}:{rows.dtype}:{hashlib.sha1(sample.tobytes()).hexdigest()[:16]}"


def train_rows(what: str, run_dir: Path, model, tcfg: TrainerConfig, rows: np.ndarray, log, after=(),
               evaluate=None, fingerprint: bool = False, extra: dict | None = None):
    """Train ``model`` on batches of ``rows`` (seeded by ``tcfg.seed``) into ``run_dir`` through the stage
    runner (finished: loaded; checkpointed: resumed; changed: refused, or retrained with --retrain). ``after``: the
    stage directories the rows were made from; ``evaluate(model) -> dict``: held-out metrics (in results.json);
    ``extra``: more settings that join the stage's recorded slice (what the model was initialised from).
    ``fingerprint``: the rows' fingerprint joins the stage's recorded slice (for rows no other stage made: a
    finished stage trained on other rows is then refused, not reused). Returns the trained model."""
    run_stage(what, run_dir, model, tcfg, lambda r, w: RowSampler(rows, tcfg.batch_size, tcfg.seed, r, w),
              evaluate, log=log, after=after,
              extra={**(extra or {}), **({"rows": rows_fingerprint(rows)} if fingerprint else {})} or None)
    return load_model(run_dir, model.kind)[0]
