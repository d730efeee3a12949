"""Self-describing, atomic, verified checkpoints (the file format; every layer may read it, only ``train``
writes it, and ``models.load_model`` rebuilds a model from one).

``<run>/checkpoints/step_NNNNNN/`` holds
  * ``model.safetensors``   weights and buffers (quantizer codebooks, EMA state, generator state)
  * ``trainer.pt``          optimiser state, RNG states (torch.save of tensors only; loaded weights_only=True)
  * ``meta.json``           model kind + config, step, data position, sha256 of both files

A checkpoint is written into ``.step_NNNNNN.tmp-PID`` and renamed into place once complete, so a kill at any
moment leaves the previous checkpoints intact. Loading verifies the checksums; ``latest_valid_checkpoint``
skips (and reports) a truncated or corrupted one and falls back to the previous good one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError
from .io import atomic_replace_dir, atomic_write_json, remove_tree, sha256_file

MODEL_FILE, TRAINER_FILE, META_FILE = "model.safetensors", "trainer.pt", "meta.json"


sha256 = sha256_file  # the checksum of every checkpoint file (io.sha256_file)


def _state_for_safetensors(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(ckpt_root: Path, step: int, model: torch.nn.Module, trainer_state: dict, meta: dict,
                    keep_last: int = 3) -> Path:
    """Write checkpoint ``step`` atomically under ``ckpt_root``; prune to the newest ``keep_last``."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:06d}"
    tmp = ckpt_root / f".step_{step:06d}.tmp-{os.getpid()}"
    remove_tree(tmp)
    tmp.mkdir()
    try:
        save_file(_state_for_safetensors(model), str(tmp / MODEL_FILE))
        torch.save(trainer_state, tmp / TRAINER_FILE)
        meta = dict(meta, step=step, kind=getattr(model, "kind", type(model).__name__),
                    checksums={MODEL_FILE: sha256(tmp / MODEL_FILE), TRAINER_FILE: sha256(tmp / TRAINER_FILE)})
        atomic_write_json(tmp / META_FILE, meta)
        if final.exists():  # same step written again (e.g. resumed and re-saved): replace as a whole
            old = ckpt_root / f".step_{step:06d}.old-{os.getpid()}"
            os.replace(final, old)
            atomic_replace_dir(tmp, final)
            remove_tree(old)
        else:
            atomic_replace_dir(tmp, final)
    except BaseException:
        remove_tree(tmp)
        raise
    if keep_last > 0:
        for old in find_checkpoints(ckpt_root)[:-keep_last]:
            remove_tree(old)
    return final


def find_checkpoints(ckpt_root: Path) -> list[Path]:
    """Completed checkpoint directories, oldest first."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))


def verify_checkpoint(ckpt: Path) -> dict:
    """Return the meta of a checkpoint whose files exist and match their checksums; else CheckpointError."""
    ckpt = Path(ckpt)
    mp = ckpt / META_FILE
    if not mp.is_file():
        raise CheckpointError(f"checkpoint {ckpt} has no {META_FILE}")
    try:
        meta = json.loads(mp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint {ckpt} has a corrupted {META_FILE}")
    for name, digest in meta.get("checksums", {}).items():
        p = ckpt / name
        if not p.is_file():
            raise CheckpointError(f"checkpoint {ckpt} is missing {name}")
        if sha256(p) != digest:
            raise CheckpointError(f"checkpoint {ckpt} is corrupted or truncated ({name} fails its checksum)")
    return meta


def latest_valid_checkpoint(ckpt_root: Path, warn=True) -> tuple[Path, dict] | None:
    """Newest checkpoint that verifies; each corrupted newer one is reported in one line and skipped.

    Returns None (and prints nothing) when no checkpoint verifies; the caller reports that in one line."""
    skipped = []
    for ckpt in reversed(find_checkpoints(ckpt_root)):
        try:
            meta = verify_checkpoint(ckpt)
        except CheckpointError as e:
            skipped.append(str(e))
            continue
        if warn:
            for msg in skipped:
                print(f"warning: {msg}; falling back to the previous checkpoint", file=sys.stderr)
        return ckpt, meta
    return None


def resolve_checkpoint(path: str | Path) -> tuple[Path, dict]:
    """A run directory (its newest valid checkpoint) or a checkpoint directory -> (ckpt_dir, meta)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"no such run or checkpoint directory: {p}")
    if (p / META_FILE).is_file() and (p / MODEL_FILE).exists():
        return p, verify_checkpoint(p)
    root = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    found = latest_valid_checkpoint(root)
    if found is None:
        n = len(find_checkpoints(root))
        raise CheckpointError(f"no valid checkpoint found in {p}" +
                              (f" ({n} found, all corrupted or truncated)" if n else ""))
    return found


def load_weights(model: torch.nn.Module, ckpt: Path) -> None:
    try:
        state = load_file(str(Path(ckpt) / MODEL_FILE))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read weights in {ckpt}: {e}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        if len(first) > 200:  # cut at a word, and say so
            first = first[:200].rsplit(" ", 1)[0] + " …"
        raise CheckpointError(f"checkpoint {ckpt} does not fit this model: {first}")


def load_trainer_state(ckpt: Path) -> dict:
    try:
        return torch.load(Path(ckpt) / TRAINER_FILE, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / not a torch file
        raise CheckpointError(f"cannot read trainer state in {ckpt}: {type(e).__name__}")
