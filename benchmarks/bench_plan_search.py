"""Planning search speed: the held-out tasks searched one at a time against ``search.batch_tasks`` at a time.

    .venv/bin/python benchmarks/bench_plan_search.py runs/plan-endstate-closed-timed2 --tasks 40 --batch 1 32

Reads a finished planning experiment (its config and its trained seed, nothing trains: a missing stage is an
error), then runs the evaluation's searches (every contender x method x scorer x budget of its config) on the
first ``--tasks`` held-out tasks with each ``--batch`` value side by side, one thread, and checks that every
row (success, evaluations, per-task outcomes) is the same whatever the batch. Prints seconds per batch value and
per (contender, method, scorer).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from vqladder.config import derive, load_config
from vqladder.planning.config import PlanConfig
from vqladder.planning.evaluate import evaluate
from vqladder.planning.recipe import build_data
from vqladder.planning.stages import train_contenders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished planning experiment directory")
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--seed", type=int, default=None, help="the trained seed (default: the config's first)")
    args = ap.parse_args()
    if not (args.run / "config.yaml").is_file() or not (args.run / "data.npz").is_file():
        sys.exit(f"{args.run} is not a planning experiment (no config.yaml and data.npz)")
    torch.set_num_threads(1)
    cfg = load_config(PlanConfig, str(args.run / "config.yaml"), [f"out_dir={args.run.parent}"])
    seed = cfg.seeds[0] if args.seed is None else args.seed
    data = build_data(cfg)

    def refuse_training(msg: str) -> None:
        if ": training (" in msg:
            sys.exit(f"{args.run}: a stage is not trained ({msg}); run the experiment first")
    planners = train_contenders(cfg, data, seed, refuse_training)
    tasks = data["test_cond"][:args.tasks]
    rows, seconds = {}, {}
    for n in args.batch:
        c = derive(cfg, search=derive(cfg.search, batch_tasks=n))
        t0 = time.perf_counter()
        got = evaluate(c, planners, tasks, seed, lambda s: None)
        seconds[n] = time.perf_counter() - t0
        rows[n] = json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in got], sort_keys=True)
        per = {}
        for r in got:
            key = f"{r['contender']} {r['method']} {r['scorer']}"
            per[key] = per.get(key, 0.0) + r.get("seconds", 0.0)
        print(f"batch {n:>3}: {seconds[n]:6.1f} s  ({len(tasks)} tasks, {len(got)} rows)  "
              + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
    first = args.batch[0]
    same = all(rows[n] == rows[first] for n in args.batch)
    print(f"rows the same for every batch: {same}; "
          + ", ".join(f"batch {n}: {seconds[first] / seconds[n]:.2f}x batch {first}" for n in args.batch[1:]))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
