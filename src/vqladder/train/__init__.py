"""Training: the generic Trainer, the stage runner, the recipe skeleton, optimisers, FLOP counting, distributed
helpers (checkpoint helpers re-exported from ``vqladder.checkpoint`` for convenience)."""

from ..checkpoint import find_checkpoints, latest_valid_checkpoint, save_checkpoint  # noqa: F401
from ..models.registry import load_model  # noqa: F401
from .trainer import Trainer, TrainerConfig  # noqa: F401
