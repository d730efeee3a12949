"""Model kinds by name, so that a checkpoint's JSON meta can rebuild its model."""

from __future__ import annotations

from ..config import build
from ..errors import CheckpointError

MODEL_KINDS: dict[str, tuple[type, type]] = {}


def register(kind: str, config_cls: type):
    def deco(cls):
        MODEL_KINDS[kind] = (cls, config_cls)
        cls.kind = kind
        return cls

    return deco


def build_model(kind: str, config: dict):
    """Rebuild a model from its kind name and config dict (as stored in a checkpoint's meta.json)."""
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {kind!r} in checkpoint; known: {', '.join(sorted(MODEL_KINDS))}")
    cls, cfg_cls = MODEL_KINDS[kind]
    return cls(build(cfg_cls, config))
