"""The one stage runner: every experiment is a recipe of stages, and this module owns what they share.

A stage is one model trained into its own run directory (a sweep cell, a ladder level, an upsampler, the
planner's prior, a video autoencoder, …). The runner owns
  * the completion marker: ``results.json`` (older runs wrote ``done.json``; both count as finished), so a
    finished stage is skipped, one with a valid checkpoint is resumed and any other is trained from scratch;
  * the config guard: ``guard_config`` records the config a directory was made with and refuses to continue
    it under another one ("use --force or another name");
  * atomic artifacts: results and configs go through ``io`` (fsync + rename), never half written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..checkpoint import latest_valid_checkpoint
from ..errors import VQLadderError
from ..io import atomic_write_json, atomic_write_text
from .trainer import Trainer, TrainerConfig

MARKER = "results.json"
LEGACY_MARKERS = ("done.json",)


def stage_state(run_dir: Path) -> str:
    """'done' (a completion marker), 'partial' (a valid checkpoint to resume from) or 'new'."""
    run_dir = Path(run_dir)
    if any((run_dir / m).is_file() for m in (MARKER,) + LEGACY_MARKERS):
        return "done"
    if latest_valid_checkpoint(run_dir / "checkpoints", warn=False) is not None:
        return "partial"
    return "new"


def stage_results(run_dir: Path) -> dict:
    """The finished stage's results (its marker's contents)."""
    for m in (MARKER,) + LEGACY_MARKERS:
        if (Path(run_dir) / m).is_file():
            return json.loads((Path(run_dir) / m).read_text())
    raise VQLadderError(f"stage {run_dir} has not finished (no {MARKER})")


def mark_done(run_dir: Path, results: dict) -> dict:
    atomic_write_json(Path(run_dir) / MARKER, results)
    return results


def stderr_log(tag: str) -> Callable[[str], None]:
    """The progress logger every experiment uses: ``[tag] message`` lines on stderr, flushed."""
    import sys

    return lambda msg: print(f"[{tag}] {msg}", file=sys.stderr, flush=True)


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# -- the per-stage config guard ------------------------------------------------------------------------------------
STAGE_CONFIG = "stage.yaml"  # the config slice a stage was trained with (model config, training keys, extra)
# training settings that do not change what a stage learns (how it logs, checkpoints, shows progress, runs)
NOT_SHAPING = ("progress", "log_every", "eval_every", "ckpt_every", "keep_last", "threads", "tensorboard", "device",
               "mfu")
_retrain = {"on": False}


def set_retrain(on: bool) -> None:
    """``--retrain``: a stage whose config slice changed (or whose upstream stage was retrained) is discarded (the
    tool's own files only) and trained again, instead of refused. Stages are never reused silently."""
    _retrain["on"] = bool(on)


def retraining() -> bool:
    return _retrain["on"]


def stage_slice(model, train: TrainerConfig, extra: dict | None = None) -> dict:
    """What shapes a stage: its model's config, the training settings that change what it learns, ``extra``."""
    import dataclasses

    cfg = getattr(model, "config", None)
    model_cfg = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {"kind": type(model).__name__}
    tr = {k: v for k, v in dataclasses.asdict(train).items() if k not in NOT_SHAPING}
    return json.loads(json.dumps({"model": model_cfg, "train": tr, **(extra or {})}, default=str))


def slice_defaults(model, train: TrainerConfig) -> dict:
    """The flattened slice of default-built configs of ``model``'s and ``train``'s classes: what a field added to
    a config since a stage was recorded stood for before it existed (its default reproduces the old behaviour)."""
    import dataclasses

    from ..config import flatten

    out = {}
    for key, cfg in (("model", getattr(model, "config", None)), ("train", train)):
        if dataclasses.is_dataclass(cfg):
            try:
                out.update(flatten({key: json.loads(json.dumps(dataclasses.asdict(type(cfg)()), default=str))}))
            except Exception:  # a config class without defaults for every field: no field counts as added
                pass
    return out


def guard_stage(what: str, run_dir: Path, slice_: dict, after=(), log: Callable[[str], None] = print,
                defaults: dict | None = None) -> str:
    """The state of stage ``run_dir`` once its config is checked: a finished or checkpointed stage made with
    another config slice, or trained before one of the stages it is built on (``after``) was retrained, is refused
    in one line, or with ``--retrain`` discarded and trained again ('new'). Stages from before the guard (no
    stage.yaml) are kept as they are. ``defaults`` (flattened): a key the recorded slice lacks is no difference when
    its value now is its default (a config field added since, at the value that reproduces the old behaviour)."""
    from ..config import flatten
    from ..io import clear_owned, read_yaml_doc

    run_dir = Path(run_dir)
    state = stage_state(run_dir)
    if state == "new":
        return state
    why = ""
    saved = run_dir / STAGE_CONFIG
    if saved.is_file():
        old, now = flatten(read_yaml_doc(saved) or {}), flatten(slice_)
        # a rows fingerprint (``rows``, train.rows) absent from a slice recorded before fingerprints is not a difference
        added = defaults or {}
        diff = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k) and not (k == "rows" and k not in old)
                      and not (k not in old and k in added and added[k] == now[k]))
        if diff:
            why = f"was trained with another config ({', '.join(diff[:5])}{' …' if len(diff) > 5 else ''} differ)"
    # a finished stage is stale when a stage it is built on finished after it; a partial one when that stage
    # finished after this one's training began (its stage.yaml, written as training starts or resumes)
    mine = run_dir / MARKER if state == "done" else saved
    for up in after:
        up_marker = Path(up) / MARKER
        if not why and up_marker.is_file() and mine.is_file() and \
                up_marker.stat().st_mtime_ns > mine.stat().st_mtime_ns:
            why = (f"was trained before the stage it is built on ({Path(up).name}) was retrained" if state == "done"
                   else f"was begun before the stage it is built on ({Path(up).name}) was retrained")
    if not why:
        return state
    if not _retrain["on"]:
        raise VQLadderError(f"{what}: {run_dir} {why}; rerun with --retrain to train it (and every stage built on it) "
                            f"again, or use another name=")
    log(f"{what}: {why}; --retrain: training it again")
    clear_owned(run_dir)
    return "new"


def record_stage(run_dir: Path, slice_: dict) -> None:
    """Make ``run_dir`` the tool's (``io.own_dir``) and record the config slice it is trained with."""
    import yaml

    from ..io import own_dir

    own_dir(run_dir, "stage", "run directory")
    atomic_write_text(Path(run_dir) / STAGE_CONFIG, yaml.safe_dump(slice_, sort_keys=False))


def fresh(path: Path, *sources: Path) -> bool:
    """Is a derived file (codes, rows, evaluations) there and newer than every stage it was made from?"""
    p = Path(path)
    if not p.is_file():
        return False
    t = p.stat().st_mtime_ns
    return all(not (Path(s) / MARKER).is_file() or (Path(s) / MARKER).stat().st_mtime_ns <= t for s in sources)


def run_stage(what: str, run_dir: Path, model, train: TrainerConfig, sampler_factory: Callable,
              evaluate: Callable | None = None, log: Callable[[str], None] = print, extra: dict | None = None,
              after=(), select: Callable | None = None) -> dict:
    """Train (or resume, or skip) one stage into ``run_dir``; returns its results (also ``results.json``):
    the stage name, parameters, steps, tokens, train time, training FLOPs (forward + backward, counted by
    ``FlopCounterMode`` on one step's batch, times the tokens seen; absent with ``mfu: false``) and the final
    held-out metrics of ``evaluate``. The stage's config slice is recorded in ``stage.yaml`` and checked on every
    rerun (``guard_stage``); ``after``: the stage directories it is built on; ``select``: the trainer's
    validation score (with ``train.select_every``: the stage keeps its best-scored weights, ``selected_step``)."""
    slice_ = stage_slice(model, train, extra)
    state = guard_stage(what, run_dir, slice_, after, log, slice_defaults(model, train))
    if state == "done":
        log(f"{what}: done, skipped")
        return stage_results(run_dir)
    log(f"{what}: {'resuming' if state == 'partial' else 'training'} ({params(model):,} params, {train.steps} steps)")
    trainer = Trainer(model, train, run_dir, sampler_factory, evaluate, {"stage": what, **(extra or {})}, select)
    record_stage(run_dir, slice_)
    val = trainer.fit(resume=state == "partial")
    flops = float(getattr(trainer, "flops_per_token", 0.0) or 0.0) * trainer.tokens_seen  # counted per step
    return mark_done(run_dir, {"stage": what, "params": params(model), "step": trainer.step,
                               "tokens_seen": trainer.tokens_seen, "train_time": round(trainer.train_time, 2),
                               **({"train_flops": flops} if flops else {}),
                               **({"selected_step": trainer.best_step, "select_value": trainer.best_value}
                                  if trainer.best_weights is not None else {}),
                               **{k: v for k, v in (val or {}).items() if k != "examples"}})


def guard_config(directory: Path, config: dict, force: bool = False, name: str = "experiment.yaml",
                 ignore: tuple[str, ...] = ()) -> None:
    """Record the config ``directory`` is made with; refuse to continue it under another one.

    ``ignore``: top-level keys that may change between runs (budgets of evaluation-only passes, say)."""
    import yaml

    directory = Path(directory)
    saved = directory / name
    now = {k: v for k, v in config.items() if k not in ignore}
    if saved.is_file() and not force:
        old = {k: v for k, v in (yaml.safe_load(saved.read_text()) or {}).items() if k not in ignore}
        if old != now:
            diff = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k))
            raise VQLadderError(f"{directory} was made with another config ({', '.join(diff)} differ; see {saved}): "
                                f"use --force to continue it anyway, or another name=")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, yaml.safe_dump(config, sort_keys=False))
