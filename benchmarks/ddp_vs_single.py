"""2-rank CPU DDP (gloo) against 1 rank at the same global batch, on the built-in corpus.

Run (about 2 x 3 minutes on 2 cores at the default 200 steps):
    .venv/bin/python benchmarks/ddp_vs_single.py [--steps 200] [--kind vq]
Both runs see the same global batches in the same order (the sampler hands each rank its contiguous share of
the global batch). Prints the loss curves side by side, the final held-out metrics, and whether both ranks
ended with identical weights and codebooks (a fingerprint gathered from every rank).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train(args: list[str], env: dict) -> float:
    t0 = time.time()
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: run failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return time.time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--kind", default="vq", choices=["vq", "fsq"])
    a = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    out = Path(tempfile.mkdtemp(prefix="ddp-bench-"))
    common = [f"out_dir={out}", f"train.steps={a.steps}", "train.eval_every=-1", "train.ckpt_every=-1",
              "train.log_every=20", "train.progress=false", f"model.quantizer.kind={a.kind}", "train.warmup=20"]
    cfg = str(root / "configs" / "cpu-small.yaml")
    t1 = train([sys.executable, "-m", "vqladder.cli", "train", cfg, "name=one", "train.batch_size=16"] + common, env)
    t2 = train([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "vqladder.cli", "train",
                cfg, "name=two", "train.batch_size=8", "train.threads=1"] + common, dict(env, OMP_NUM_THREADS="1"))

    def curve(name):
        return {r["step"]: r["train_loss"] for r in map(json.loads, (out / name / "metrics.jsonl").read_text().splitlines())
                if "train_loss" in r}

    c1, c2 = curve("one"), curve("two")
    r1, r2 = (json.loads((out / n / "results.json").read_text()) for n in ("one", "two"))
    print(f"cpu-small ({a.kind}), global batch 16 x 256 tokens, {a.steps} steps; runs in {out}\n")
    print("| step | train loss, 1 rank x 16 | train loss, 2 ranks x 8 |")
    print("|---|---|---|")
    for s in sorted(c1):
        print(f"| {s} | {c1[s]:.4f} | {c2.get(s, float('nan')):.4f} |")
    print("\n| run | held-out token acc | recon CE (bits) | code usage | tokens seen | wall time (s) | ranks identical |")
    print("|---|---|---|---|---|---|---|")
    for name, r, t in (("1 rank", r1, t1), ("2 ranks (gloo)", r2, t2)):
        same = len(set(r["rank_fingerprints"])) == 1
        print(f"| {name} | {r['acc']:.4f} | {r['ce_bits']:.4f} | {r['usage']:.4f} | {r['tokens_seen']:,} | {t:.0f} | "
              f"{'yes' if same else 'NO'} ({len(r['rank_fingerprints'])} fingerprint(s)) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
