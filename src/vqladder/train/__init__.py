"""Training: the generic Trainer, checkpoints, distributed helpers."""

from .checkpoint import find_checkpoints, latest_valid_checkpoint, load_model, save_checkpoint  # noqa: F401
from .trainer import Trainer, TrainerConfig  # noqa: F401
