"""Checkpoints as the trainer sees them: the file format lives in ``vqladder.checkpoint`` (readable from every
layer), the model rebuild in ``vqladder.models.load_model``; both are re-exported here for older imports."""

from ..checkpoint import *  # noqa: F403
from ..checkpoint import (  # noqa: F401
    META_FILE,
    MODEL_FILE,
    TRAINER_FILE,
    find_checkpoints,
    latest_valid_checkpoint,
    load_trainer_state,
    load_weights,
    resolve_checkpoint,
    save_checkpoint,
    sha256,
    verify_checkpoint,
)
from ..models.registry import load_model  # noqa: F401
