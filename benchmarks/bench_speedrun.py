"""Speedrun: wall-clock for each kind of training stage to reach a fixed held-out target, recipe against recipe.

    .venv/bin/python benchmarks/bench_speedrun.py                                  # every kind, 3 seeds
    .venv/bin/python benchmarks/bench_speedrun.py --kinds compressor --seeds 0 1 2 --out docs/bench/speedrun.md
    .venv/bin/python benchmarks/bench_speedrun.py --recipes adamw muon muon-b32
    .venv/bin/python benchmarks/bench_speedrun.py --kinds prior upsampler --ladder runs/ladder-text-small-s0
    .venv/bin/python benchmarks/bench_speedrun.py --from-json docs/bench/speedrun-ladder.json   # the table again

Kinds: ``compressor`` (the demo's), ``flat-lm`` (1,024 tokens), ``planner`` (the 3x3 flat planner), ``prior`` and
``upsampler`` (the top prior and upsampler 1 of the ladder run ``--ladder``, on its code streams and stage shapes).

A stage kind is trained the way the project trains it (the same model, data and evaluation as its recipe) with
held-out evaluations every ``eval_every`` steps, up to today's step budget; its time-to-target is the training
wall-clock (``metrics.jsonl``'s ``time``, evaluation excluded) at the first evaluation that reaches the target.
Targets are today's number at today's budget (``KINDS``: what the default recipe reached at the budget on this
2-core CPU, seed 0), so the default recipe needs about the whole budget and a faster one less. A recipe that never
reaches the target is reported as such (``>``: the budget it used); the best evaluation stands beside the final one
(a stage that ends worse than its best overfits). Every evaluation is kept in the JSON rows. Recipes are trainer
settings:
  * ``adamw``     today's recipe: AdamW, the stage's batch size and learning rate;
  * ``muon``      Muon for the hidden matrices, AdamW for the rest (``train.optimizer=muon``), same batch and lr;
  * ``muon-b32``  Muon with 4x the batch and 2x the learning rate (the square-root rule), a quarter of the steps.
Run it on an otherwise idle machine: every number is a wall-clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vqladder.data import RowSampler, WindowSampler
from vqladder.eval import evaluate_compressor
from vqladder.models import CausalLM, CompressorConfig, LMConfig, SequenceCompressor
from vqladder.text.compressor import DataConfig, load_shards
from vqladder.train import Trainer, TrainerConfig

# kind -> (today's step budget, eval every, target metric, target, higher is better). Targets: the adamw recipe's
# held-out value at the budget, seed 0 (`--kinds K --recipes adamw --seeds 0`), rounded to the safe side.
KINDS = {
    "compressor": {"steps": 600, "eval_every": 50, "metric": "acc", "target": 0.200, "higher": True},
    "flat-lm": {"steps": 300, "eval_every": 25, "metric": "bits", "target": 5.74, "higher": False},
    "planner": {"steps": 600, "eval_every": 50, "metric": "loss", "target": 0.42, "higher": False},
    "prior": {"steps": 800, "eval_every": 50, "metric": "bits", "target": 9.95, "higher": False},
    "upsampler": {"steps": 600, "eval_every": 50, "metric": "bits", "target": 3.89, "higher": False},
}
# the ladder whose code streams and stage shapes the prior and upsampler kinds train on (`--ladder`; made by
# `vqladder ladder configs/ladder_cpu_small.yaml seed=0 name=ladder-text-small-s0`)
LADDER = Path("runs/ladder-text-small-s0")
RECIPES = {
    "adamw": {},
    "muon": {"optimizer": "muon"},
    "muon-b32": {"optimizer": "muon", "batch": 4, "lr": 2.0},
}


THREADS = -1  # torch CPU threads of every run (``--threads``; -1: torch's default)


def _train_cfg(base: dict, recipe: str, steps: int, eval_every: int, seed: int) -> TrainerConfig:
    r = RECIPES[recipe]
    scale = r.get("batch", 1)
    return TrainerConfig(**{**base, "threads": THREADS, "steps": max(1, steps // scale), "batch_size": base["batch_size"] * scale,
                            "lr": base["lr"] * r.get("lr", 1.0), "optimizer": r.get("optimizer", "adamw"),
                            "warmup": max(1, base["warmup"] // scale), "eval_every": max(1, eval_every // scale),
                            "ckpt_every": -1, "progress": False, "seed": seed, "log_every": max(1, eval_every // scale)})


def demo_compressor(vocab_size: int, seed: int = 0) -> CompressorConfig:
    """The model ``vqladder demo`` trains (its preset), for this vocabulary and seed."""
    from vqladder.config import build
    from vqladder.text.demo import DEMO_PRESET

    return build(CompressorConfig, {**DEMO_PRESET["model"], "vocab_size": vocab_size, "seed": seed})


def compressor(recipe: str, seed: int, spec: dict, run: Path) -> Trainer:
    """The demo's compressor: 256 tokens -> 64 FSQ codes (4,375 entries) of the built-in corpus, bpe:1024."""
    shards = load_shards(DataConfig(path="data/builtin-bpe1024"), progress=False)
    mc = demo_compressor(shards.vocab_size, seed)
    t = _train_cfg({"batch_size": 8, "lr": 2e-3, "warmup": 60}, recipe, spec["steps"], spec["eval_every"], seed)
    return Trainer(SequenceCompressor(mc), t, run,
                   lambda r, w: WindowSampler(shards.train, 256, t.batch_size, seed, r, w),
                   lambda m: {"acc": evaluate_compressor(m, shards.val, 32, 128)["acc"]})


def flat_lm(recipe: str, seed: int, spec: dict, run: Path) -> Trainer:
    """The ladder's flat LM shape: a causal LM over 1,024 tokens of the built-in corpus, bpe:1024."""
    from vqladder.eval.baselines import lm_bits_per_token

    shards = load_shards(DataConfig(path="data/builtin-bpe1024"), progress=False)
    lc = LMConfig(vocab_size=shards.vocab_size, context=1024, d_model=192, n_heads=3, n_layers=4, seed=seed)
    t = _train_cfg({"batch_size": 4, "lr": 2e-3, "warmup": 30}, recipe, spec["steps"], spec["eval_every"], seed)
    return Trainer(CausalLM(lc), t, run, lambda r, w: WindowSampler(shards.train, 1024, t.batch_size, seed, r, w),
                   lambda m: {"bits": lm_bits_per_token(m, shards.val, 1024, 16)})


def planner(recipe: str, seed: int, spec: dict, run: Path) -> Trainer:
    """The flat planner of the 3x3 preset (configs/plan_cpu.yaml): a goal-conditioned causal model over
    demonstration moves, held-out loss on the last tenth of the demonstrations."""
    import torch

    from vqladder.models import CodePrior, PriorConfig
    from vqladder.planning.maze import EpisodeCodec, MazeConfig, plan_tasks

    maze = MazeConfig(rooms=3, room=3, max_moves=40)
    codec = EpisodeCodec(maze)
    data = plan_tasks(maze, 2000, 8, 50, 0)
    rows = np.concatenate([data["train_cond"], data["train_moves"]], 1)
    cut = len(rows) * 9 // 10  # the last tenth of the demonstrations held out for the loss
    pc = PriorConfig(vocab_size=codec.move_vocab, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len,
                     context=maze.max_moves, d_model=128, n_heads=2, n_layers=4, seed=seed)
    t = _train_cfg({"batch_size": 64, "lr": 2e-3, "warmup": 60}, recipe, spec["steps"], spec["eval_every"], seed)

    def held_out(m):
        with torch.no_grad():
            return {"loss": float(m.loss(torch.from_numpy(rows[cut:].astype(np.int64)))[0])}

    return Trainer(CodePrior(pc), t, run, lambda r, w: RowSampler(rows[:cut], t.batch_size, seed, r, w), held_out)


def _ladder_stage(stage: str, seed: int):
    """A fresh model of the shape of the reference ladder's ``stage`` (its saved config, this seed) and the
    ladder's trainer settings of that stage (batch, learning rate, warm-up)."""
    from vqladder.config import read_yaml
    from vqladder.models import build_model
    from vqladder.models.registry import resolve_checkpoint

    if not (LADDER / stage).is_dir():
        sys.exit(f"{LADDER / stage} is missing: this kind trains on that ladder's codes (pass --ladder DIR)")
    _, meta = resolve_checkpoint(LADDER / stage)
    model = build_model(meta["kind"], {**meta["model_config"], "seed": seed})
    train = read_yaml(LADDER / stage / "stage.yaml")["train"]
    return model, {k: train[k] for k in ("batch_size", "lr", "warmup")}


def _codes(level: int):
    from vqladder.text.ladder import load_codes

    return load_codes(LADDER / "codes" / f"level{level}.train.npy"), load_codes(LADDER / "codes" / f"level{level}.val.npy")


def prior(recipe: str, seed: int, spec: dict, run: Path) -> Trainer:
    """The ladder's top prior (the reference ladder's shape and trainer settings): a causal model over the top
    level's code stream, held-out bits per code on 64 windows."""
    from vqladder.text.ladder_eval import _seq_nll, bits_of

    model, base = _ladder_stage("prior", seed)
    top = max(int(p.name[5:].split(".")[0]) for p in (LADDER / "codes").glob("level*.train.npy"))
    tr, va = _codes(top)
    ctx = model.config.context
    t = _train_cfg(base, recipe, spec["steps"], spec["eval_every"], seed)
    return Trainer(model, t, run, lambda r, w: WindowSampler(tr, ctx, t.batch_size, seed, r, w),
                   lambda m: {"bits": bits_of(*_seq_nll(lambda x: m.log_prob(x), va, ctx, 64), "code")["bits_per_code"]})


def upsampler(recipe: str, seed: int, spec: dict, run: Path) -> Trainer:
    """The ladder's upsampler 1 (the reference ladder's shape and trainer settings): level-1 codes and the previous
    chunk -> the chunk's tokens, held-out bits/token with the true codes on 64 chunks."""
    from vqladder.data.sampler import PairSampler
    from vqladder.text.ladder_eval import upsampler_bits

    model, base = _ladder_stage("up1", seed)
    shards = load_shards(DataConfig(path="data/builtin-bpe1024"), progress=False)
    par_tr, par_va = _codes(1)
    c = model.config
    t = _train_cfg(base, recipe, spec["steps"], spec["eval_every"], seed)
    return Trainer(model, t, run, lambda r, w: PairSampler(shards.train, par_tr, c.length, c.parent_len, t.batch_size,
                                                           seed, r, w, prev=c.prev_chunk),
                   lambda m: {"bits": upsampler_bits(m, shards.val, par_va, c.length, c.parent_len, 64, 32)
                              ["bits_per_symbol"]})


BUILDERS = {"compressor": compressor, "flat-lm": flat_lm, "planner": planner, "prior": prior, "upsampler": upsampler}


def evaluations(run: Path, spec: dict) -> list[list[float]]:
    """[training seconds, held-out value] of every evaluation of a run (``metrics.jsonl``)."""
    key = f"val_{spec['metric']}"
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [[r["time"], r[key]] for r in recs if key in r]


def time_to_target(evals: list[list[float]], spec: dict) -> float | None:
    """Seconds of training at the first evaluation that reaches the target (None: never)."""
    return next((t for t, v in evals if (v >= spec["target"]) == spec["higher"] or v == spec["target"]), None)


def table(rows: list[dict], kinds: list[str], recipes: list[str]) -> str:
    """The Markdown table: per kind and recipe, the median time to the target over seeds (each seed's beside it),
    the ratio to adamw's median, the final value's mean ± std and the best evaluation's (a stage that passes its
    best value and ends worse overfits its data; the targets are today's ``KINDS``)."""
    lines = ["| stage kind | target | recipe | time to target, median (seeds) | ratio to adamw | final value | "
             "best value (at s, median) |", "|---|---|---|---|---|---|---|"]
    for kind in kinds:
        spec = KINDS[kind]
        base = None
        for recipe in recipes:
            rs = [r for r in rows if r["kind"] == kind and r["recipe"] == recipe]
            if not rs:
                continue
            ts = [time_to_target(r["evals"], spec) for r in rs]
            ts = [t if t is not None else float("inf") for t in ts]
            med = statistics.median(ts)
            base = med if recipe == "adamw" else base
            shown = ", ".join(f"{t:.0f}" if t != float("inf") else f">{r['evals'][-1][0]:.0f}" for t, r in zip(ts, rs))
            ratio = f"{med / base:.2f}x" if base and med != float("inf") and base != float("inf") else "—"
            finals = [r["evals"][-1][1] for r in rs]
            spread = f" ± {statistics.pstdev(finals):.3f}" if len(finals) > 1 else ""
            bests = [(max if spec["higher"] else min)(r["evals"], key=lambda e: e[1]) for r in rs]
            b_spread = f" ± {statistics.pstdev([b[1] for b in bests]):.3f}" if len(bests) > 1 else ""
            lines.append(f"| {kind} | {spec['metric']} {'≥' if spec['higher'] else '≤'} {spec['target']} | {recipe} | "
                         f"{med:.0f} s ({shown})".replace("inf s", "not reached") +
                         f" | {ratio} | {statistics.mean(finals):.3f}{spread} | {statistics.mean([b[1] for b in bests]):.3f}"
                         f"{b_spread} ({statistics.median([b[0] for b in bests]):.0f} s) |")
    return "\n".join(lines)


def write_table(out: Path, text: str) -> None:
    """The Markdown page: a title, the command line that made it, the table."""
    out.write_text(f"# Speedrun: time to today's held-out target\n\n`.venv/bin/python benchmarks/bench_speedrun.py "
                   f"{' '.join(sys.argv[1:])}`\n\n{text}\n")


def main() -> None:
    global LADDER, THREADS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--recipes", nargs="+", default=["adamw", "muon", "muon-b32"], choices=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--ladder", default=str(LADDER), help="the ladder run whose codes the prior and upsampler "
                    "kinds train on (default %(default)s)")
    ap.add_argument("--threads", type=int, default=-1, help="torch CPU threads per run (-1: torch's default; "
                    "1 with `taskset -c N` times one core)")
    ap.add_argument("--out", help="write the Markdown table here (and the raw rows beside it as .json)")
    ap.add_argument("--from-json", help="re-make the table from the rows of an earlier run (no training)")
    a = ap.parse_args()
    LADDER, THREADS = Path(a.ladder), a.threads
    if a.from_json:
        rows = json.loads(Path(a.from_json).read_text())
        text = table(rows, [k for k in a.kinds if any(r["kind"] == k for r in rows)],
                     [r for r in a.recipes if any(x["recipe"] == r for x in rows)])
        print(text)
        if a.out:
            write_table(Path(a.out), text)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in a.kinds:
            spec = KINDS[kind]
            for recipe in a.recipes:
                for seed in a.seeds:
                    run = Path(tmp) / f"{kind}-{recipe}-{seed}"
                    t0 = time.time()
                    tr = BUILDERS[kind](recipe, seed, spec, run)
                    tr.fit()
                    evals = evaluations(run, spec)
                    row = {"kind": kind, "recipe": recipe, "seed": seed, "time_to_target": time_to_target(evals, spec),
                           "final": evals[-1][1], "train_seconds": evals[-1][0], "steps": tr.step,
                           "batch_size": tr.cfg.batch_size, "wall": round(time.time() - t0, 1), "evals": evals,
                           "config": asdict(tr.cfg)}
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k not in ("config", "evals")}), file=sys.stderr,
                          flush=True)
    text = table(rows, a.kinds, a.recipes)
    print(text)
    if a.out:
        out = Path(a.out)
        write_table(out, text)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
