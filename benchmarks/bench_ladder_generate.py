"""Generation speed and sample quality of a trained ladder against its flat LM (the target: >= 3x the flat
LM's tokens/s at judge bits/token within 10% of the flat LM's samples).

    .venv/bin/python benchmarks/bench_ladder_generate.py runs/ladder-text --threads 1 --samples 4 --chunks 2

Loads the ladder (prior, upsamplers, flat LM and, when the ladder trained one, its judge LM) and times each
path at batch 1, KV-cached, over the same number of tokens: prior -> upsamplers, prior -> the top level's VQ
decoder, the flat LM; prints tokens/s, the speed ratio to the flat LM, the samples' judge bits/token beside
held-out text's and their distinct bigrams (repetition). The same measurement `train-ladder` writes into
results.md, re-run on demand.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from vqladder.data import TokenShards
from vqladder.errors import VQLadderError
from vqladder.eval.baselines import unigram_logp
from vqladder.models import load_model
from vqladder.text.ladder import Ladder
from vqladder.text.ladder_eval import sample_paths
from vqladder.text.ladder_recipe import LadderEvalConfig
from vqladder.train.recipe import saved_config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ladder")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--chunks", type=int, default=2, help="top chunks per sample")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        lad = Ladder.load(a.ladder, need_prior=True, need_upsamplers=True)
        if lad.flat is None:
            raise VQLadderError(f"{a.ladder} has no flat LM (run `vqladder train-ladder` to the end)")
        judge = load_model(lad.directory / "judge", "causal_lm")[0] if (lad.directory / "judge").is_dir() else None
        import yaml

        data = yaml.safe_load(saved_config(lad.directory).read_text())["data"]["path"]
        shards = TokenShards(data)
    except VQLadderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    first = torch.from_numpy(unigram_logp(np.asarray(shards.train), lad.vocab(0))).float()
    out = sample_paths(lad, LadderEvalConfig(samples=a.samples, sample_chunks=a.chunks), judge, first, np.asarray(shards.val, dtype=np.int64))
    g = out["generation"]
    flat = g["flat"]["tokens_per_s"]
    print(f"| path | tokens/s (batch 1, {a.threads} threads) | vs flat | judge bits/token | distinct bigrams |")
    print("|---|---|---|---|---|")
    for k in ("ladder_upsample", "ladder_vq", "flat", "held_out"):
        x = g.get(k, {})
        tps = x.get("tokens_per_s")
        print(f"| {k} | {f'{tps:,.0f}' if tps else '-'} | {f'{tps / flat:.1f}x' if tps else '-'} | "
              f"{x.get('judge_bits_per_token', float('nan')):.2f} | {x.get('distinct2', float('nan')):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
