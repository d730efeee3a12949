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

import copy
import csv
import itertools
import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from ..config import (
    NonNegFloat,
    NonNegInt,
    OpenUnit,
    PathStr,
    PosInt,
    RunName,
    build,
    config_diff,
    read_yaml,
    save_yaml,
    to_dict,
)
from ..data import load_shards
from ..errors import RunFailed, VQLadderError
from ..io import (
    atomic_write_json,
    atomic_write_text,
    clear_owned,
    own_dir,
    read_json,
    read_yaml_doc,
)
from ..models import LMConfig
from ..models.compressor import is_local
from ..quantize import QuantizerConfig
from ..train import TrainerConfig
from ..train.recipe import open_experiment
from ..train.stage import retraining, stage_state, stderr_log
from .compressor import RESUMABLE, RunConfig
from .reference import train_lm_reference
from .sweep_report import COLLAPSE_USAGE, COLUMNS, markdown, plots


@dataclass
class GridConfig:
    out_len: list[PosInt] = field(default_factory=lambda: [128, 64, 32, 16, 8])   # codes per chunk (M)
    codebook_size: list[PosInt] = field(default_factory=lambda: [256, 4096, 65536])  # K
    kind: list[str] = field(default_factory=lambda: ["fsq"])                 # fsq | vq
    decoder: list[str] = field(default_factory=lambda: ["parallel"])         # parallel | autoregressive
    depth: list[PosInt] = field(default_factory=lambda: [1])                    # residual depth
    seed: list[NonNegInt] = field(default_factory=lambda: [0])                     # model and data seeds
    rate_weight: list[NonNegFloat] = field(default_factory=lambda: [0.0])   # weight of the codes' rate in the loss
    #   (> 0 trains base.model.rate_layers' context model jointly: distortion against *actual* bits)
    max_bits_per_token: NonNegFloat = 0.0   # skip cells whose rate (M x depth x log2 K / N) exceeds this; 0 = keep all


@dataclass
class ReferenceConfig:
    lm: bool = True                   # train the causal-LM reference (an upper bound on the entropy rate)
    dev_fraction: OpenUnit = 0.05     # last part of train held back to pick the LM's checkpoint (never val)
    lm_model: LMConfig = field(default_factory=LMConfig)
    lm_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(steps=1000, warmup=100, lr=2e-3))
    local_ae: bool = True             # train the context-free local autoencoder beside every cell (same rate, split,
                                      # budget): downsample=segment without context blocks, the floor to beat
    local_seg_layers: PosInt = 3      # the local autoencoder's residual MLP blocks per side


@dataclass
class SweepConfig:
    EXPERIMENT: ClassVar[str] = "sweep"  # the `experiment:` key its saved config carries
    name: RunName = "sweep"               # sweep directory name under out_dir
    out_dir: PathStr = "runs"             # where sweeps live
    budget: str = "600"               # per cell: steps (600) or wall-clock (90s, 10m, 1h)
    workers: PosInt = 1                  # cells trained at once, each in its own process
    gist: bool = False                # after training, add embedding gist metrics per cell (needs [gist])
    gist_chunks: PosInt = 100            # held-out chunks for the gist metrics (also the retrieval pool)
    base: RunConfig = field(default_factory=RunConfig)  # template for every cell
    grid: GridConfig = field(default_factory=GridConfig)
    references: ReferenceConfig = field(default_factory=ReferenceConfig)

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name


_log = stderr_log("sweep")
TIME_BUDGET_STEPS = 10_000_000  # the step cap of a time-budgeted cell: the trainer plans the real count


def parse_budget(budget: str) -> tuple[int | None, float | None]:
    """'600' -> (600 steps, None); '10m' -> (None, 600.0 s)."""
    b = str(budget).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)", b)
    if m:
        return None, float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    if re.fullmatch(r"\d+", b) and int(b) > 0:
        return int(b), None
    raise VQLadderError(f"budget {budget!r}: give steps (e.g. 600) or wall-clock (90s, 10m, 1h)")


def cell_name(c: dict) -> str:
    return (f"m{c['out_len']:03d}-k{c['codebook_size']}-{c['kind']}" + ("-ar" if c["decoder"] == "autoregressive" else "")
            + (f"-r{c['depth']}" if c["depth"] > 1 else "") + (f"-rw{c['rate_weight']:g}" if c.get("rate_weight") else "")
            + f"-s{c['seed']}")


def local_twin(cell: dict, seg_layers: int) -> dict:
    """The local-autoencoder reference of a cell: same rate, data, seed and budget; no context."""
    d = copy.deepcopy(cell)
    d["name"] = cell["name"] + "-local"
    d["model"].update(downsample="segment", latent_layers=0, enc_layers=0, dec_layers=0, seg_layers=seg_layers,
                      decoder="parallel", rate_weight=0.0)
    return d


def expand_grid(cfg: SweepConfig) -> list[tuple[str, RunConfig]]:
    """Every cell as (name, RunConfig); raises before anything trains if the grid is empty or a cell is bad."""
    g = cfg.grid
    axes = {k: getattr(g, k) for k in ("out_len", "codebook_size", "kind", "decoder", "depth", "rate_weight", "seed")}
    for k, v in axes.items():
        if not v:
            raise VQLadderError(f"sweep grid is empty: grid.{k} has no values")
    steps, seconds = parse_budget(cfg.budget)
    base = to_dict(cfg.base)
    cells = []
    for values in itertools.product(*axes.values()):
        c = dict(zip(axes, values))
        name = cell_name(c)
        if g.max_bits_per_token > 0:
            qc = QuantizerConfig(kind=c["kind"], codebook_size=c["codebook_size"])
            try:
                k = qc.effective_codebook_size()
            except VQLadderError as e:
                raise VQLadderError(f"sweep cell {name}: {e}")
            if c["out_len"] * c["depth"] * math.log2(k) / cfg.base.model.in_len > g.max_bits_per_token:
                continue
        d = copy.deepcopy(base)
        d["name"], d["out_dir"] = name, str(cfg.dir / "cells")
        d["model"].update(out_len=c["out_len"], decoder=c["decoder"], seed=c["seed"], rate_weight=c["rate_weight"])
        if c["rate_weight"] > 0 and not d["model"].get("rate_layers"):
            d["model"]["rate_layers"] = 1  # the rate term needs its context model
        d["model"]["quantizer"].update(codebook_size=c["codebook_size"], kind=c["kind"], depth=c["depth"],
                                       levels=[])
        d["train"]["seed"] = c["seed"]
        if steps is not None:
            d["train"]["steps"] = steps
        if seconds is not None:  # equal wall-clock: the schedule spans the budget, not a step count
            d["train"]["max_time"] = seconds
            d["train"]["steps"] = TIME_BUDGET_STEPS
        try:
            cells.append((name, build(RunConfig, d)))
            if cfg.references.local_ae and not is_local(d["model"]) and not c["rate_weight"]:
                cells.append((name + "-local", build(RunConfig, local_twin(d, cfg.references.local_seg_layers))))
        except VQLadderError as e:
            raise VQLadderError(f"sweep cell {name}: {e}")
    if not cells:
        raise VQLadderError(f"sweep grid is empty: every cell is above grid.max_bits_per_token={g.max_bits_per_token}")
    return cells


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


def collapsed(res: dict, out_len: int, depth: int = 1) -> bool:
    """Used codes < 5% of min(codebook size, held-out code positions). Normalising by the positions matters
    for big codebooks: 224 chunks x 16 codes can use at most 3,584 of 64,000 codes (5.6%) without collapse."""
    usage, k = res.get("usage"), res.get("codebook_size")
    if usage is None or not k:
        return False
    positions = res.get("chunks", 0) * out_len
    possible = min(k, positions) if positions else k
    return usage * k < COLLAPSE_USAGE * possible


def read_cells(sweep_dir: Path) -> list[dict]:
    rows = []
    for res_p in sorted((Path(sweep_dir) / "cells").glob("*/results.json")):
        run = res_p.parent
        res = read_json(res_p)
        if (run / "gist.json").is_file():  # written after training by the sweep's gist pass
            res.update(read_json(run / "gist.json"))
        cfg = read_yaml_doc(run / "config.yaml")
        m, q = cfg["model"], cfg["model"]["quantizer"]
        row = {"cell": run.name, "compression": m["in_len"] // m["out_len"], "out_len": m["out_len"],
               "codebook_size": res.get("codebook_size", q["codebook_size"]), "kind": q["kind"],
               "decoder": m.get("decoder", "parallel"), "depth": q.get("depth", 1), "seed": m.get("seed", 0),
               "rate_weight": m.get("rate_weight", 0.0),
               "arch": "local" if is_local(m) else m.get("downsample", "pool")}
        for k in COLUMNS:
            if k not in row:
                row[k] = res.get(k, "")
        if res.get("train_time") and res.get("tokens_seen"):
            row["tok_per_s"] = res["tokens_seen"] / res["train_time"]
        row["collapsed"] = collapsed(res, row["out_len"], row["depth"])
        rows.append(row)
    rows.sort(key=lambda r: (-r["out_len"], r["codebook_size"], r["kind"], r["decoder"], r["depth"], r["rate_weight"],
                             r["seed"]))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    atomic_write_text(path, buf.getvalue())


def aggregate(sweep_dir: str | Path, make_plots: bool = True) -> dict:
    """Write sweep.csv, sweep.md and plots/ for a sweep directory; returns {'rows', 'refs', 'markdown'}."""
    d = Path(sweep_dir)
    rows = read_cells(d)
    refs_p = d / "references.json"
    refs = read_json(refs_p) if refs_p.is_file() else {}
    write_csv(rows, d / "sweep.csv")
    atomic_write_json(d / "cells.json", [{k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                          for k, v in row.items()} for row in rows])
    md = markdown(rows, refs)
    atomic_write_text(d / "sweep.md", f"# Sweep {d.name}\n\n{md}")
    if make_plots and rows:
        plots(rows, refs, d / "plots")
    return {"rows": rows, "refs": refs, "markdown": md}
