"""Choose QINCo's training settings on the validation split (never the queries or the database).

    .venv/bin/python benchmarks/qinco_pilot.py configs/embed_cpu.yaml --out docs/embed/qinco-pilot.md

Loads the embedding set and its split exactly as ``vqladder embed eval CONFIG`` does, then trains one small QINCo
(``--stages`` bytes, ``--steps`` steps, seed 0) per setting of the grid on the training rows and reports its
validation MSE (greedy encoding) beside the RQ it starts from. Step-budgeted: the numbers do not depend on load.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from vqladder.config import load_config
from vqladder.embed.config import EmbedConfig
from vqladder.embed.stages import load_set, split_indices, train_qinco


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--stages", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3, 3e-3])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128])
    ap.add_argument("--train-preselect", type=int, nargs="+", default=[16])
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    cfg = load_config(EmbedConfig, a.config, [])
    log = lambda m: print(m, file=sys.stderr)
    emb, _, sources = load_set(cfg, log)
    idx = split_indices(len(emb), cfg)
    emb = np.asarray(emb, dtype=np.float32)
    train, val = emb[idx["train"]], emb[idx["val"]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        c0 = replace(cfg, qinco=replace(cfg.qinco, train=replace(cfg.qinco.train, steps=1, lr=1e-12, max_time=-1.0,
                                                                   progress=False)))
        fresh = train_qinco(c0, Path(tmp), "rq", a.stages, 0, train, val, log)
        rq = float(((fresh.decode(fresh.encode(val, beam=1)) - val) ** 2).sum(1).mean())
        for lr, hidden, tp in itertools.product(a.lr, a.hidden, a.train_preselect):
            c = replace(cfg, qinco=replace(cfg.qinco, hidden=hidden, train_preselect=tp,
                                           train=replace(cfg.qinco.train, lr=lr, steps=a.steps, max_time=-1.0,
                                                         progress=False)))
            name = f"lr{lr:g}-h{hidden}-tp{tp}"
            model = train_qinco(c, Path(tmp), name, a.stages, 0, train, val, log)
            mse = float(((model.decode(model.encode(val, beam=1)) - val) ** 2).sum(1).mean())
            rows.append((lr, hidden, tp, rq, mse))
            log(f"{name}: val MSE {mse:.5f} (RQ init {rq:.5f})")
    lines = [f"# QINCo settings on the validation split ({cfg.name})", "",
             f"`.venv/bin/python benchmarks/qinco_pilot.py {a.config} --stages {a.stages} --steps {a.steps}`: "
             f"{len(train):,} training and {len(val):,} validation vectors ({'; '.join(sources)}); {a.stages}-byte "
             f"models, {a.steps} steps of {cfg.qinco.train.batch_size}, seed 0; validation MSE per vector, greedy "
             "encoding. RQ init: the same model after one step at lr 1e-12 (the residual k-means it starts from).", "",
             "| lr | hidden | train pre-selection | RQ init val MSE | QINCo val MSE | change |", "|---|---|---|---|---|---|"]
    for lr, hidden, tp, rq, mse in rows:
        lines.append(f"| {lr:g} | {hidden} | {tp} | {rq:.5f} | {mse:.5f} | {100 * (mse / rq - 1):+.1f}% |")
    return emit(lines, a.out)


def emit(lines: list[str], out: str) -> int:
    """Print a markdown table's lines and write them to ``out`` (if given)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
