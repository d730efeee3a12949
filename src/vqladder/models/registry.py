"""Model kinds by name, so that a checkpoint's JSON meta can rebuild its model."""

from __future__ import annotations

import importlib

import torch

from ..checkpoint import load_weights, resolve_checkpoint
from ..config import build
from ..errors import CheckpointError

MODEL_KINDS: dict[str, tuple[type, type]] = {}
# The domain packages whose models register kinds of their own (planning's value, video's frame models, embed's
# QINCo, the text ladder's jointly fine-tuned levels). The core never imports a domain by name in its code: a kind that is not known yet is looked up by
# importing these packages on demand, as a plugin would be.
DOMAIN_PACKAGES = ("vqladder.planning", "vqladder.video", "vqladder.embed", "vqladder.text.joint")


def _known(kind: str) -> bool:
    """Is ``kind`` registered, after importing the domain packages if it is not yet?"""
    if kind not in MODEL_KINDS:
        for package in DOMAIN_PACKAGES:
            importlib.import_module(package)
    return kind in MODEL_KINDS


def register(kind: str, config_cls: type):
    def deco(cls):
        MODEL_KINDS[kind] = (cls, config_cls)
        cls.kind = kind
        return cls

    return deco


def build_model(kind: str, config: dict):
    """Rebuild a model from its kind name and config dict (as stored in a checkpoint's meta.json)."""
    if not _known(kind):
        raise CheckpointError(f"unknown model kind {kind!r} in checkpoint; known: {', '.join(sorted(MODEL_KINDS))}")
    cls, cfg_cls = MODEL_KINDS[kind]
    return cls(build(cfg_cls, config))


def load_model(path, expect_kind: str | None = None, device: str | torch.device = "cpu"):
    """Rebuild the model a checkpoint (or a run directory's latest valid one) describes and load its weights.
    Returns (model in eval mode on ``device``, meta, checkpoint dir). Example in ``vqladder.Trainer``."""
    ckpt, meta = resolve_checkpoint(path)
    kind = meta.get("kind")
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointError(f"checkpoint {ckpt} holds a {kind!r} model, not a {expect_kind!r}")
    saved = meta.get("model_config", {})
    # a field added after a checkpoint was written takes the value that reproduces the saved model
    _known(kind)
    legacy = getattr(MODEL_KINDS.get(kind, (None, None))[1], "LEGACY", {})
    model = build_model(kind, {**legacy, **saved} if isinstance(saved, dict) else saved)
    load_weights(model, ckpt)
    return model.to(device).eval(), meta, ckpt
