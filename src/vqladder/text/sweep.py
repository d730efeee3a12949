"""The compression experiment: a grid of level-1 compressors, each cell a normal run directory.

``vqladder sweep configs/sweep_cpu.yaml`` expands ``grid`` (codes per chunk x codebook size x quantiser kind
x decoder x residual depth x seed) over the ``base`` run config, trains the references (a causal LM on the
same train split), trains every cell in its own process (``workers`` at a time), then aggregates:
``<out_dir>/<name>/{sweep.csv, sweep.md, references.json, plots/}``.

Resumable: a cell with ``results.json`` is finished and skipped; a cell with checkpoints is resumed; a cell
with neither is restarted. So killing a sweep loses no finished cell and redoes at most the cells in flight
(from their last checkpoint). Every cell is validated before anything trains: an empty grid or an impossible
cell (e.g. 256 not divisible by M) fails at once, naming the cell.

Budget per cell: ``budget: 600`` (steps) or ``budget: 10m`` / ``90s`` / ``1h`` (wall-clock cap, counted
across resumes; the learning-rate schedule still spans ``base.train.steps``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from ..config import (
    config_diff,
    read_yaml,
    save_yaml,
    to_dict,
)
from ..data import load_shards
from ..errors import RunFailed, VQLadderError
from ..io import (
    atomic_write_json,
    clear_owned,
    own_dir,
    read_json,
)
from ..train.recipe import open_experiment
from ..train.stage import retraining, stage_state, stderr_log
from .compressor import RESUMABLE
from .reference import train_lm_reference
from .sweep_aggregate import aggregate, collapsed, read_cells, write_csv  # noqa: F401  (the recipe's public names)
from .sweep_config import (  # noqa: F401
    TIME_BUDGET_STEPS,
    GridConfig,
    ReferenceConfig,
    SweepConfig,
    cell_name,
    expand_grid,
    local_twin,
    parse_budget,
)

_log = stderr_log("sweep")


def cell_state(run_dir: Path) -> str:
    """The stage runner's state of a cell; a checkpoint without the cell's config.yaml starts over."""
    state = stage_state(run_dir)
    return "new" if state == "partial" and not (run_dir / "config.yaml").is_file() else state


def _subprocess_runner(cfg_path: Path, resume: bool, log: Path) -> int:
    cmd = [sys.executable, "-m", "vqladder.cli", "train", str(cfg_path)] + (["--resume"] if resume else [])
    with open(log, "a") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode


def run_cells(cfg: SweepConfig, runner: Callable[[Path, bool, Path], int] | None = None) -> dict:
    """Train every unfinished cell; returns {cell: 'skipped' | 'trained' | 'resumed' | 'failed'}."""
    runner = runner or _subprocess_runner
    cells = expand_grid(cfg)
    cells_dir = own_dir(cfg.dir / "cells", "experiment", "sweep cells directory")
    for name, rc in cells:  # before any cell trains: a cell folder vqladder did not make is refused, untouched
        if rc.run_dir.exists():
            own_dir(rc.run_dir, "run", f"sweep cell {name}: run directory")
    threads = max(1, (os.cpu_count() or 1) // max(1, cfg.workers))
    status: dict[str, str] = {}
    todo = []
    for name, rc in cells:
        run_dir = rc.run_dir
        state = cell_state(run_dir)
        rc.train.threads = threads if rc.train.threads <= 0 else rc.train.threads
        rc.train.progress = False
        if state != "new" and (run_dir / "config.yaml").is_file():  # a cell is never reused under another config
            diff = config_diff(read_yaml(run_dir / "config.yaml"), to_dict(rc), RESUMABLE)
            if diff and not retraining():
                raise VQLadderError(f"sweep cell {name}: {run_dir} was trained with another config ({', '.join(diff[:5])} "
                                    f"differ); rerun with --retrain to train it again, or use another name=")
            if diff:
                _log(f"cell {name}: config changed ({', '.join(diff[:5])}); --retrain: training it again")
                clear_owned(run_dir)
                state = "new"
        if state == "done":
            status[name] = "skipped"
            continue
        if state == "new":  # an unfinished cell without a checkpoint starts over: only the tool's own files go
            clear_owned(run_dir)
        path = cells_dir / f"{name}.yaml"
        save_yaml(rc, path)
        todo.append((name, path, state == "partial", cells_dir / f"{name}.log"))

    def one(item):
        name, path, resume, log = item
        _log(f"{'resuming' if resume else 'training'} {name}")
        code = runner(path, resume, log)
        ok = code == 0 and (cells_dir / name / "results.json").is_file()
        if not ok:
            _log(f"cell {name} failed (exit {code}); see {log}")
        return name, ("resumed" if resume else "trained") if ok else "failed"

    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as ex:
        for name, st in ex.map(one, todo):
            status[name] = st
    return status


def train_references(cfg: SweepConfig) -> dict:
    """LM / zstd / unigram / trivial references on the base data's held-out split (cached in references.json)."""

    from ..eval.baselines import trivial_accuracy, unigram_bits_per_token, zstd_bits_per_token

    out = cfg.dir / "references.json"
    made_with = json.loads(json.dumps({"data": to_dict(cfg.base.data), "in_len": cfg.base.model.in_len,
                                       "max_chunks": cfg.base.eval.max_chunks, "references": to_dict(cfg.references)}))
    if out.is_file():
        ref = read_json(out)
        if ref.get("made_with", made_with) == made_with:  # tables from before `made_with` are kept
            return ref
        if not retraining():
            raise VQLadderError(f"{out} was made with another data / references config: rerun with --retrain to "
                                f"make the references again, or use another name=")
    shards = load_shards(cfg.base.data)
    n = cfg.base.model.in_len
    maxc = cfg.base.eval.max_chunks
    ref = {"data": str(shards.dir), "tokenizer": shards.meta["tokenizer"], "in_len": n,
           "unigram_bits": unigram_bits_per_token(shards.train, shards.val, shards.vocab_size),
           "trivial_acc": trivial_accuracy(shards.train, shards.val, shards.vocab_size),
           **zstd_bits_per_token(shards.tokenizer, shards.val, n, maxc)}
    if cfg.references.lm:
        ref.update(train_lm_reference(cfg.references.lm_model, cfg.references.lm_train, shards, n, maxc,
                                      cfg.references.dev_fraction, cfg.dir / "references" / "lm", _log))
    ref["made_with"] = made_with
    atomic_write_json(out, ref)
    return ref


def gist_pass(cfg: SweepConfig, embed=None) -> int:
    """Write ``gist.json`` (semantic similarity with floors, retrieval, bag-of-words F1, token recall) into
    every finished cell that lacks one; returns how many were written."""
    from ..data.embedder import load_embedder
    from ..eval import evaluate_compressor
    from ..eval.baselines import most_frequent_token
    from ..models import load_model

    shards = load_shards(cfg.base.data)
    top = most_frequent_token(shards.train, shards.vocab_size)
    done = 0
    for name, rc in expand_grid(cfg):
        out = rc.run_dir / "gist.json"
        if out.is_file() or cell_state(rc.run_dir) != "done":
            continue
        embed = embed or load_embedder()
        model, _, _ = load_model(rc.run_dir, expect_kind="sequence_compressor")
        res = evaluate_compressor(model, shards.val, max_chunks=cfg.gist_chunks, tokenizer=shards.tokenizer,
                                  embed=embed, gist_chunks=cfg.gist_chunks, frequent_token=top)
        atomic_write_json(out, {k: v for k, v in res.items() if k.startswith("gist_")})
        _log(f"gist metrics for {name}")
        done += 1
    return done


def run_sweep(cfg: SweepConfig, runner=None, aggregate_only: bool = False) -> Path:
    """Train every cell of the compression x codebook grid (``vqladder sweep CONFIG``) and the references, then
    aggregate (sweep.csv, sweep.md, cells.json, plots); resumable. Returns the sweep directory."""

    cells = expand_grid(cfg)  # validate everything first
    open_experiment(cfg, force=True)  # every cell guards its own config (a cell is never reused under another)
    if not aggregate_only:
        load_shards(cfg.base.data)  # prepare once, before cells start in parallel
        train_references(cfg)
        status = run_cells(cfg, runner)
        failed = [k for k, v in status.items() if v == "failed"]
        _log(f"{len(cells)} cells: " + ", ".join(f"{sum(v == s for v in status.values())} {s}"
              for s in ("skipped", "trained", "resumed", "failed")))
        if cfg.gist and not failed:
            gist_pass(cfg)
    aggregate(cfg.dir)
    if not aggregate_only and failed:
        raise RunFailed(f"{len(failed)} of {len(cells)} sweep cells failed ({', '.join(failed)}; logs in "
                        f"{cfg.dir / 'cells'}/*.log); the others are kept: rerun the same command to retry them")
    return cfg.dir


# -- aggregation: the cells' results read once, written for the tables, plots and the HTML report ---------------
