"""Speedrun: wall-clock for each kind of training stage to reach a fixed held-out target, recipe against recipe.

    .venv/bin/python benchmarks/bench_speedrun.py                                  # every kind, 3 seeds
    .venv/bin/python benchmarks/bench_speedrun.py --kinds compressor --seeds 0 1 2 --out docs/bench/speedrun.md
    .venv/bin/python benchmarks/bench_speedrun.py --recipes adamw muon muon-b32

A stage kind is trained the way the project trains it (the same model, data and evaluation as its recipe) with
held-out evaluations every ``eval_every`` steps, up to today's step budget; its time-to-target is the training
wall-clock (``metrics.jsonl``'s ``time``, evaluation excluded) at the first evaluation that reaches the target.
Targets are today's number at today's budget (``KINDS``: what the default recipe reached at the budget on this
2-core CPU, seed 0), so the default recipe needs about the whole budget and a faster one less. A recipe that never
reaches the target is reported as such (``>``: the budget it used). Recipes are trainer settings:
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
from vqladder.quantize import QuantizerConfig
from vqladder.text.compressor import DataConfig, load_shards
from vqladder.train import Trainer, TrainerConfig

# kind -> (today's step budget, eval every, target metric, target, higher is better). Targets: the adamw recipe's
# held-out value at the budget, seed 0 (`--kinds K --recipes adamw --seeds 0`), rounded to the safe side.
KINDS = {
    "compressor": {"steps": 600, "eval_every": 50, "metric": "acc", "target": 0.200, "higher": True},
    "flat-lm": {"steps": 300, "eval_every": 25, "metric": "bits", "target": 6.60, "higher": False},
    "planner": {"steps": 600, "eval_every": 50, "metric": "loss", "target": 0.42, "higher": False},
}
RECIPES = {
    "adamw": {},
    "muon": {"optimizer": "muon"},
    "muon-b32": {"optimizer": "muon", "batch": 4, "lr": 2.0},
}


def _train_cfg(base: dict, recipe: str, steps: int, eval_every: int, seed: int) -> TrainerConfig:
    r = RECIPES[recipe]
    scale = r.get("batch", 1)
    return TrainerConfig(**{**base, "steps": max(1, steps // scale), "batch_size": base["batch_size"] * scale,
                            "lr": base["lr"] * r.get("lr", 1.0), "optimizer": r.get("optimizer", "adamw"),
                            "warmup": max(1, base["warmup"] // scale), "eval_every": max(1, eval_every // scale),
                            "ckpt_every": -1, "progress": False, "seed": seed, "log_every": max(1, eval_every // scale)})


def compressor(recipe: str, seed: int, spec: dict, run: Path) -> Trainer:
    """The demo's compressor: 256 tokens -> 64 FSQ codes (4,375 entries) of the built-in corpus, bpe:1024."""
    shards = load_shards(DataConfig(path="data/builtin-bpe1024"), progress=False)
    mc = CompressorConfig(vocab_size=shards.vocab_size, in_len=256, out_len=64, d_model=192, n_heads=3,
                          downsample="segment", seg_layers=2, latent_layers=2, enc_layers=0, dec_layers=0,
                          quantizer=QuantizerConfig(kind="fsq", codebook_size=4096), seed=seed)
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


BUILDERS = {"compressor": compressor, "flat-lm": flat_lm, "planner": planner}


def time_to_target(run: Path, spec: dict) -> tuple[float | None, float, float]:
    """(seconds of training at the first evaluation that reaches the target or None, the last value, seconds)."""
    key = f"val_{spec['metric']}"
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in recs if key in r]
    hit = next((r for r in evals if (r[key] >= spec["target"]) == spec["higher"] or r[key] == spec["target"]), None)
    return (hit["time"] if hit else None), evals[-1][key], evals[-1]["time"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--recipes", nargs="+", default=["adamw", "muon", "muon-b32"], choices=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", help="write the Markdown table here (and the raw rows beside it as .json)")
    a = ap.parse_args()
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
                    hit, last, used = time_to_target(run, spec)
                    row = {"kind": kind, "recipe": recipe, "seed": seed, "time_to_target": hit, "final": last,
                           "train_seconds": used, "steps": tr.step, "batch_size": tr.cfg.batch_size,
                           "wall": round(time.time() - t0, 1), "config": asdict(tr.cfg)}
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "config"}), file=sys.stderr, flush=True)
    lines = ["| stage kind | target | recipe | time to target, median (seeds) | ratio to adamw | final value |",
             "|---|---|---|---|---|---|"]
    for kind in a.kinds:
        spec = KINDS[kind]
        base = None
        for recipe in a.recipes:
            rs = [r for r in rows if r["kind"] == kind and r["recipe"] == recipe]
            ts = [r["time_to_target"] if r["time_to_target"] is not None else float("inf") for r in rs]
            med = statistics.median(ts)
            base = med if recipe == "adamw" else base
            shown = ", ".join(f"{t:.0f}" if t != float("inf") else f">{r['train_seconds']:.0f}" for t, r in zip(ts, rs))
            ratio = f"{med / base:.2f}x" if base and med != float("inf") and base != float("inf") else "—"
            finals = [r["final"] for r in rs]
            spread = f" ± {statistics.pstdev(finals):.3f}" if len(finals) > 1 else ""
            lines.append(f"| {kind} | {spec['metric']} {'≥' if spec['higher'] else '≤'} {spec['target']} | {recipe} | "
                         f"{med:.0f} s ({shown})".replace("inf s", "not reached") +
                         f" | {ratio} | {statistics.mean(finals):.3f}{spread} |")
    table = "\n".join(lines)
    print(table)
    if a.out:
        out = Path(a.out)
        out.write_text(f"# Speedrun: time to today's held-out target\n\n`.venv/bin/python benchmarks/bench_speedrun.py "
                       f"{' '.join(sys.argv[1:])}`\n\n{table}\n")
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
