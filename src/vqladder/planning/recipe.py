"""Does planning in abstract tokens beat a flat model? ``vqladder plan-experiment CONFIG``.

The stages, for each seed: demonstrations and held-out tasks (``build_data``, once), every contender's models
(``planning.stages.train_contenders``; the contenders are described in ``planning.config``), diagnostics, then
search on held-out layouts (and on validation layouts, where each contender's method and scorer is chosen) with
the same procedures and the same budget in model evaluations (one evaluation = one forward pass of a model on one
sequence): ``beam`` (width set by the budget) and ``sample`` (best of N); scorers ``likelihood`` (the model's
log-probability), ``verifier`` (plus a rule's score of the partial plan: minus the BFS distance still to go, a
goal bonus, a bump penalty -- free), ``value`` (minus a learned value's moves to go, ``planning.value.PlanValue``;
one evaluation per scored candidate) and ``value+verifier``. Scoring a ladder's partial plan decodes its codes,
charged to its budget; a budget a search cannot afford is reported as such, not run. Planners are asked for
return bucket 3 (optimal). Training compute is counted per stage (FLOPs, counted per step).

Also measured: success against the task's shortest-path length and how often code boundaries fall on room
crossings on held-out optimal plans (``boundaries`` in the results).

Results: ``<out_dir>/<name>/results.{json,md}``, ``success_vs_budget.png``, ``success_vs_length.png``: success
rate, optimality and validity per contender x method x scorer x budget, mean +- std over seeds.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import torch

from ..config import build, derive, load_config, to_dict
from ..errors import VQLadderError
from ..io import (
    atomic_save_npz,
    atomic_write_json,
    atomic_write_text,
    claim_run_dir,
    read_json,
    release_run_dir,
    remove_tree,
)
from ..train.recipe import open_experiment, read_saved_config, write_results
from ..train.stage import fresh, stderr_log
from .config import CONTENDERS, SCORERS, PlanConfig, PlanDataConfig, SearchConfig  # noqa: F401  (public names)
from .evaluate import (
    boundary_alignment,
    choose_on_validation,
    diagnostics,
    evaluate,
    example_episodes,
    search_knobs,
    segment_alignment,
)
from .maze import EpisodeCodec, plan_tasks
from .report import _plot, _plot_length, plan_markdown
from .stages import contender_stages, load_planner, train_contenders, train_segmenters  # noqa: F401

# rows saved before they recorded their search settings were all made with the defaults
LEGACY_SEARCH = SearchConfig(verifier_weight=1.0, value_weight=1.0, temperature=1.0, dense_verifier=False)
DATA_KEYS = ("maze", "data")  # what makes data.npz: a rerun with other values is refused (the tasks would differ)


def open_plan_dir(cfg: PlanConfig) -> Path:
    """The experiment directory: demonstrations and tasks made with another maze or data config would make every
    stage and table of other tasks, so such a rerun is refused (once data.npz exists); the stages guard their own
    configs."""
    return open_experiment(cfg, keys=DATA_KEYS, retrainable=False, guard_when=lambda d: (d / "data.npz").is_file(),
                           legacy={"data": {"val_layouts": 0}})  # saved before the validation split: none


def build_data(cfg: PlanConfig) -> dict:
    """Train demonstrations and held-out test tasks (layouts disjoint), cached in ``data.npz``."""
    p = cfg.dir / "data.npz"
    if not p.is_file():
        atomic_save_npz(p, **plan_tasks(cfg.maze, cfg.data.train_layouts, cfg.data.episodes_per_layout,
                                        cfg.data.test_layouts, cfg.data.seed, cfg.data.val_layouts))
    z = np.load(p, allow_pickle=False)
    return {k: z[k] for k in z.files}


def _evaluated(cfg: PlanConfig, planners: dict, tasks: np.ndarray, seed: int, sd: Path, ev_p: Path, log) -> list[dict]:
    """Every (contender, method, scorer, budget) row on ``tasks``, cached in ``ev_p``: finished evaluations are
    kept unless a stage they used was (re)trained after them; the rest run one contender at a time, saved after
    each."""
    done = [r for r in (read_json(ev_p) if ev_p.is_file() else [])
            if fresh(ev_p, *(sd / k for k in contender_stages(cfg, r["contender"], r["scorer"])))
            # made with other search settings: evaluated again
            and r.get("search", search_knobs(LEGACY_SEARCH, r["method"], r["scorer"]))
            == search_knobs(cfg.search, r["method"], r["scorer"])]
    for who in cfg.contenders:
        have = {(r["contender"], r["method"], r["scorer"], r["budget_x"]) for r in done}
        new = evaluate(derive(cfg, contenders=[who]), planners, tasks, seed, log, done=have)
        if new:
            done += new
            atomic_write_json(ev_p, done)
    want = {(w, m, s, b) for w in cfg.contenders for m in cfg.search.methods for s in cfg.search.scorers
            for b in cfg.search.budgets}
    return [r for r in done if (r["contender"], r["method"], r["scorer"], r["budget_x"]) in want]


def run_plan_experiment(cfg: PlanConfig, log=None) -> dict:
    """The planning experiment (``vqladder plan-experiment CONFIG``): demonstrations, the flat, ladder and subgoal
    planners per seed, search on held-out layouts at several budgets; returns (and writes) its results."""
    log = log or stderr_log("plan")
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    open_plan_dir(cfg)
    data = build_data(cfg)
    train_keys = set(data["train_keys"].tolist())
    overlap = sum(k in train_keys for k in data["test_keys"].tolist())
    log(f"{len(data['train_cond'])} demonstrations on {len(train_keys)} layouts; {len(data['test_cond'])} held-out "
        f"tasks; layout overlap {overlap}")
    rows, val_rows, meta = [], [], {}
    for seed in cfg.seeds:
        ev_p = cfg.dir / f"seed{seed}" / "eval.json"
        planners = train_contenders(cfg, data, seed, log)
        meta[seed] = {"params": planners["params"], "train_flops": planners["train_flops"],
                      "train_seconds": planners["train_seconds"],
                      **({"code_exact": planners["code_exact"]} if "ladder" in planners else {})}
        if seed == cfg.seeds[0]:
            meta[seed]["boundaries"] = boundary_alignment(cfg, planners, data["test_cond"])
            if cfg.segments.methods:
                meta[seed]["segments"] = segment_alignment(train_segmenters(cfg, data, seed, log), data["test_cond"],
                                                           EpisodeCodec(cfg.maze), cfg.maze.room)
        meta[seed]["diagnostics"] = diagnostics(cfg, planners, data["test_cond"])
        tasks = data["test_cond"][:cfg.search.max_tasks] if cfg.search.max_tasks > 0 else data["test_cond"]
        sd = cfg.dir / f"seed{seed}"
        stages = [p for p in sd.iterdir() if p.is_dir()]
        if seed == cfg.seeds[0] and cfg.search.examples and not fresh(cfg.dir / "episodes.json", *stages):
            atomic_write_json(cfg.dir / "episodes.json", example_episodes(cfg, planners, tasks, seed))
        rows += _evaluated(cfg, planners, tasks, seed, sd, ev_p, log)
        if len(data.get("val_cond", ())) and cfg.search.validation:  # the same searches where choices are made
            val_tasks = data["val_cond"][:cfg.search.max_tasks] if cfg.search.max_tasks > 0 else data["val_cond"]
            val_rows += [{**r, "split": "val"}
                         for r in _evaluated(cfg, planners, val_tasks, seed, sd, sd / "eval_val.json", log)]
    n_tasks = min(len(data["test_cond"]), cfg.search.max_tasks or len(data["test_cond"]))
    res = {"rows": rows, "meta": meta, "tasks": int(n_tasks), "layout_overlap": overlap,
           "demonstrations": int(len(data["train_cond"])),
           "demo_buckets": np.bincount(data["train_buckets"], minlength=4).tolist()}
    if len(data.get("val_cond", ())) and not cfg.search.validation:
        res["validation_searched"] = False
    if val_rows:
        n_val = len(data["val_cond"])
        res.update(val_rows=val_rows, val_tasks=int(min(n_val, cfg.search.max_tasks or n_val)),
                   chosen=choose_on_validation(val_rows))
    write_results(cfg.dir, res)
    atomic_write_text(cfg.dir / "results.md", plan_markdown(res, cfg))
    _plot(res, cfg.dir / "success_vs_budget.png")
    _plot_length(res, cfg.dir / "success_vs_length.png")
    return res


def combine_seeds(target: str | Path, sources: list[str | Path], log=None, overrides: list[str] | None = None) -> dict:
    """One experiment from seeds run as separate experiments (``name=X-sN seeds=[N]``, say one per core): the
    sources must share their config (all but ``name`` and ``seeds``) and their ``data.npz`` byte for byte, and hold
    disjoint finished seeds; ``target`` must not exist. Their seed directories are copied into ``target`` (the
    sources are left as they are) and the experiment runs there, re-reading every stage and search row (nothing
    trains unless a stage is missing); ``overrides`` (``key=value``) change the combined config where the
    stages allow it (say, ``search.validation=false``); returns its results."""
    target = Path(target)
    if target.exists():
        raise VQLadderError(f"{target} exists: combine into a new directory")
    if not sources:
        raise VQLadderError("no source experiments given")
    base, digest, seeds = None, None, []
    for src in map(Path, sources):
        saved = read_saved_config(src)
        if not (src / "data.npz").is_file() or not saved:
            raise VQLadderError(f"{src} is not a planning experiment (no config.yaml and data.npz)")
        cfg_s = to_dict(build(PlanConfig, saved))  # an older config's missing keys: their defaults
        rest = {k: v for k, v in cfg_s.items() if k not in ("name", "seeds", "out_dir")}
        if base is None:
            base = rest
        elif rest != base:
            diff = sorted(k for k in set(rest) | set(base) if rest.get(k) != base.get(k))
            raise VQLadderError(f"{src} was made with another config than {sources[0]} ({', '.join(diff)} differ)")
        h = hashlib.sha256((src / "data.npz").read_bytes()).hexdigest()
        if digest not in (None, h):
            raise VQLadderError(f"{src}/data.npz differs from {sources[0]}'s: not the same tasks")
        digest = h
        for sd in sorted(src.glob("seed*")):
            seed = int(sd.name[4:]) if sd.name[4:].isdigit() else None
            if seed is None or seed not in cfg_s.get("seeds", []) or not (sd / "eval.json").is_file():
                continue
            if seed in [k for k, _ in seeds]:
                raise VQLadderError(f"seed {seed} is in two sources ({src} and another): keep one")
            seeds.append((seed, sd))
    if not seeds:
        raise VQLadderError("the sources hold no evaluated seed (seed<k>/eval.json)")
    cfg = load_config(PlanConfig, None, list(overrides or []),
                      base={**base, "name": target.name, "out_dir": str(target.parent),
                            "seeds": sorted(k for k, _ in seeds)})
    if cfg.dir != target or cfg.seeds != sorted(k for k, _ in seeds):
        raise VQLadderError("name, out_dir and seeds come from the target and the sources, not from overrides")
    # copied into a staging directory of the tool's, renamed into place whole: a kill leaves no half-made target
    stage = target.with_name(f".{target.name}.combining")
    if stage.exists():  # left by a killed combine: ours (else refused untouched) and not in use, so made again
        claim_run_dir(stage, "experiment")
        release_run_dir(stage)
        remove_tree(stage)
    claim_run_dir(stage, "experiment")
    shutil.copyfile(Path(sources[0]) / "data.npz", stage / "data.npz")
    for seed, sd in seeds:
        shutil.copytree(sd, stage / f"seed{seed}", ignore=shutil.ignore_patterns(".lock"))
    release_run_dir(stage)
    stage.rename(target)
    return run_plan_experiment(cfg, log)
