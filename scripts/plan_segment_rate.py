"""How finely a planning run's variable-length move codes cut the *training* demonstrations (the README's
planning section sets this beside the held-out shortest plans of ``results.md``).

    python scripts/plan_segment_rate.py configs/plan_cpu.yaml runs/plan-small-v4 [--seed 0] [--n 2000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vqladder.config import load_config
from vqladder.models import load_model
from vqladder.models.variable import content_mask
from vqladder.planning.maze import END
from vqladder.planning.recipe import PlanConfig, build_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("run_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=2000, help="training demonstrations to segment")
    a = ap.parse_args()
    cfg = load_config(PlanConfig, a.config, [])
    moves = torch.from_numpy(build_data(cfg)["train_moves"][:a.n].astype(np.int64))
    mask = content_mask(moves, END)  # the plan's moves and its END, not the padding after it
    length = mask.sum(1).float()
    for m in cfg.segments.methods:
        model = load_model(f"{a.run_dir}/seed{a.seed}/segments-{m}", expect_kind="variable_compressor")[0].eval()
        with torch.no_grad():
            starts = (model(moves)[1].starts & mask).sum(1).float()
        print(f"{m}: {len(moves)} training demonstrations of {length.mean():.1f} moves (END included) on average; "
              f"{starts.mean():.2f} segments each, {(length / starts).mean():.2f} moves per segment")


if __name__ == "__main__":
    main()
