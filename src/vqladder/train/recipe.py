"""The one recipe skeleton every experiment is built on: its directory, its saved config, its results.

An experiment is a list of stages (``train.stage.run_stage``: finished stages are skipped, checkpointed ones
resumed, changed ones refused or retrained) between two calls:

* ``open_experiment(cfg, ...)`` claims ``cfg.dir`` (the ownership marker, one writer at a time: a folder the tool
  did not make is refused untouched), compares the config the directory was made with against ``cfg`` on the keys
  that shaped what is already in it, refuses a change in one line (or lets ``--retrain`` through, when the stages
  retrain what changed), and saves the resolved config as ``config.yaml`` with its ``experiment:`` key;
* ``write_results(d, results, markdown)`` writes ``results.json`` and ``results.md`` (atomically).

Every experiment saves its config under the one name ``config.yaml``; ``saved_config(d)`` also finds the names
older versions used (``ladder.yaml``, ``plan.yaml``, …), so directories made before still load and resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from ..config import flatten, save_yaml, to_dict
from ..errors import VQLadderError
from ..io import atomic_write_json, atomic_write_text, claim_run_dir, read_yaml_doc
from .stage import retraining

CONFIG = "config.yaml"
LEGACY = ("ladder.yaml", "plan.yaml", "sweep.yaml", "video.yaml", "variable.yaml", "embed.yaml", "experiment.yaml")


def saved_config(d: str | Path) -> Path:
    """The config file an experiment directory was made with: ``config.yaml``, else an older version's name; the
    path of ``config.yaml`` when there is none."""
    d = Path(d)
    if (d / CONFIG).is_file():
        return d / CONFIG
    return next((d / n for n in LEGACY if (d / n).is_file()), d / CONFIG)


def read_saved_config(d: str | Path) -> dict:
    """The saved config of ``d`` as a dict (without its ``experiment:`` key); {} when there is none."""
    p = saved_config(d)
    doc = read_yaml_doc(p) if p.is_file() else {}
    if doc is not None and not isinstance(doc, dict):
        raise VQLadderError(f"{p} is corrupt (not a mapping); run the experiment again to rewrite it")
    doc = dict(doc or {})
    doc.pop("experiment", None)
    return doc


def _merged(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``, nested dicts merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _through_schema(cls, saved: dict) -> dict:
    """A saved config read through today's ``cls``: a field added since takes its default (the behaviour the
    older version had), so adding a field is not a change; the saved dict as it is when it no longer builds."""
    from ..config import build

    try:
        return to_dict(build(cls, saved))
    except Exception:  # a saved config today's schema refuses: compare it as written (the diff names the keys)
        return saved


def _canon(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def config_changes(old: dict, now: dict, keys: Iterable[str] | None = None, ignore: Iterable[str] = ()) -> list[str]:
    """The dotted keys under the top-level ``keys`` (default all) whose values differ between two config trees,
    the top-level keys in ``ignore`` left out: ``["maze.rooms"]``."""
    names = set(keys) if keys is not None else set(old) | set(now)
    names -= set(ignore) | {"experiment"}
    a, b = flatten({k: old.get(k) for k in names}), flatten({k: now.get(k) for k in names})
    return sorted(k for k in set(a) | set(b) if _canon(a.get(k)) != _canon(b.get(k)))


def open_experiment(cfg, keys: Iterable[str] | None = None, ignore: Iterable[str] = (), legacy: dict | None = None,
                    retrainable: bool = True, guard_when: Callable[[Path], bool] | None = None,
                    force: bool = False) -> Path:
    """Claim ``cfg.dir``, guard it against a changed config, save ``cfg`` as its ``config.yaml``; returns the dir.

    ``keys``: the top-level keys that shaped what the directory holds (default: all but ``ignore``); ``legacy``:
    values a config saved by an older version lacks (its behaviour then); ``retrainable``: ``--retrain`` lets a
    change through (the stages then retrain what changed); ``guard_when(d)``: guard only when it says so (say, once
    the data a change would invalidate exists); ``force``: no guard."""
    d = claim_run_dir(cfg.dir, "experiment")
    saved = saved_config(d)
    now = to_dict(cfg)
    if saved.is_file() and not force and not (retrainable and retraining()) and (guard_when is None or guard_when(d)):
        old = _through_schema(type(cfg), _merged(legacy or {}, read_saved_config(d)))
        diff = config_changes(old, now, keys, ignore)
        if diff:
            how = "rerun with --retrain to train the changed stages again, or use" if retrainable else "use"
            raise VQLadderError(f"{d} was made with another config ({', '.join(diff[:6])} differ; see {saved}): "
                                f"{how} another name=")
    save_yaml(cfg, d / CONFIG)
    for name in LEGACY:  # one saved config: an older version's copy goes once config.yaml holds it
        if (d / name).is_file():
            (d / name).unlink()
    return d


def jsonable(obj):
    """Plain JSON types: numpy scalars and arrays to Python numbers and lists, keys to strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return jsonable(obj.tolist())
    return obj


def write_results(d: str | Path, results: dict, markdown: str | None = None) -> dict:
    """``results.json`` (and ``results.md``) of an experiment, written atomically; returns ``results``."""
    d = Path(d)
    atomic_write_json(d / "results.json", jsonable(results))
    if markdown is not None:
        atomic_write_text(d / "results.md", markdown)
    return results
