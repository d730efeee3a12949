"""Choose QINCo's training settings on the validation split (never the queries or the database).

    .venv/bin/python benchmarks/qinco_pilot.py configs/embed_cpu.yaml --out docs/embed/qinco-pilot.md

Loads the embedding set and its split exactly as ``vqladder embed eval CONFIG`` does, then trains one small QINCo
(``--stages`` bytes, ``--steps`` steps, seed 0) per setting of the grid on the training rows and reports its
validation MSE (greedy encoding) beside the RQ it starts from. Step-budgeted: the numbers do not depend on load.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from vqladder.config import load_config
from vqladder.embed.config import EmbedConfig
from vqladder.embed.stages import load_set, served_stages, split_indices, train_qinco


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--stages", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3, 3e-3])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128])
    ap.add_argument("--train-preselect", type=int, nargs="+", default=[16])
    ap.add_argument("--loss", nargs="+", default=["all"], choices=["all", "served"],
                    help="qinco.loss: the error after every stage, or after the budgets this model serves")
    ap.add_argument("--init", nargs="+", default=["kmeans"], choices=["kmeans", "faiss-rq"],
                    help="qinco.init: what the models start from (each its own RQ baseline)")
    ap.add_argument("--rq-init", default="", help="a run's rq-init-raw-<stages>.safetensors (its residual k-means "
                    "on the same training rows), so the pilot does not fit it again")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    cfg = load_config(EmbedConfig, a.config, [])
    log = lambda m: print(m, file=sys.stderr)
    emb, _, sources = load_set(cfg, log)
    idx = split_indices(len(emb), cfg)
    emb = np.asarray(emb, dtype=np.float32)
    train, val = emb[idx["train"]], emb[idx["val"]]
    rows = []
    served = served_stages(cfg, a.stages)

    def mses(m):  # validation MSE (greedy) after each budget this model serves
        codes = m.encode(val, beam=1)
        return [float(((m.decode(codes[:, :b]) - val) ** 2).sum(1).mean()) for b in served]

    with tempfile.TemporaryDirectory() as tmp:
        if a.rq_init:  # every model starts from the one residual k-means (as in the run), cached once
            (Path(tmp) / "qinco").mkdir()
            shutil.copy(a.rq_init, Path(tmp) / "qinco" / f"rq-init-raw-{max(cfg.qinco.stages)}.safetensors")
        rqs = {}
        for init in a.init:
            ci = replace(cfg, qinco=replace(cfg.qinco, init=init))
            c0 = replace(ci, qinco=replace(ci.qinco, train=replace(ci.qinco.train, steps=1, lr=1e-12, max_time=-1.0,
                                                                     progress=False)))
            rqs[init] = mses(train_qinco(c0, Path(tmp), "raw", a.stages, 0, train, val, log,
                                         run_dir=Path(tmp) / f"rq-{init}"))
        for init, lr, hidden, tp, loss in itertools.product(a.init, a.lr, a.hidden, a.train_preselect, a.loss):
            c = replace(cfg, qinco=replace(cfg.qinco, init=init, hidden=hidden, train_preselect=tp, loss=loss,
                                           train=replace(cfg.qinco.train, lr=lr, steps=a.steps, max_time=-1.0,
                                                         progress=False)))
            name = f"{init}-lr{lr:g}-h{hidden}-tp{tp}-{loss}"
            mse = mses(train_qinco(c, Path(tmp), "raw", a.stages, 0, train, val, log, run_dir=Path(tmp) / name))
            rows.append((init, lr, hidden, tp, loss, mse))
            log(f"{name}: val MSE {mse} (RQ init {rqs[init]})")
    at = " / ".join(f"{b}" for b in served)
    lines = [f"# QINCo settings on the validation split ({cfg.name})", "",
             f"`.venv/bin/python benchmarks/qinco_pilot.py {a.config} --stages {a.stages} --steps {a.steps}"
             f" --lr {' '.join(f'{x:g}' for x in a.lr)} --loss {' '.join(a.loss)} --init {' '.join(a.init)}`: "
             f"{len(train):,} training and {len(val):,} validation vectors ({'; '.join(sources)}); {a.stages}-stage "
             f"models, {a.steps} steps of {cfg.qinco.train.batch_size}, seed 0; validation MSE per vector (greedy "
             f"encoding) after the {at} bytes the config's budgets read from this model. RQ init: the same model "
             "after one step at lr 1e-12 (the RQ it starts from: residual k-means, `kmeans`, or FAISS's residual "
             "quantiser trained with the config's beam, `faiss-rq`). Loss `all`: the mean error after every stage; "
             "`served`: after those budgets only.", "",
             f"| init | lr | hidden | train pre-selection | loss | RQ init val MSE ({at} bytes) | QINCo val MSE | "
             "change |",
             "|---|---|---|---|---|---|---|---|"]
    for init, lr, hidden, tp, loss, mse in rows:
        rq = rqs[init]
        lines.append(f"| {init} | {lr:g} | {hidden} | {tp} | {loss} | {' / '.join(f'{v:.4f}' for v in rq)} | "
                     f"{' / '.join(f'{v:.4f}' for v in mse)} | "
                     f"{' / '.join(f'{100 * (v / r - 1):+.1f}%' for v, r in zip(mse, rq))} |")
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
