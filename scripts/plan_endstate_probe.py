"""A quick probe of the endstate coder alone, for choosing its settings before a planning run:
``python scripts/plan_endstate_probe.py RUN_DIR [--rate-weight W] [--levels 4,4] [--steps N] [--encoder-sees full]``.

Reads a plan-experiment directory's ``data.npz`` (its config gives the maze), cuts the training demonstrations
into room segments, trains one ``EndStateCoder`` on the first 90% of the segments (AdamW, one-cycle schedule,
batch 64) and reports on the held-back 10%: how often the code and its context give back the end cell, the
codes' bits under the context-only rate model beside the nominal bits, the share of the door codes' entropy
the codes carry, and how many codes are used. Training segments only: the validation and test layouts are not
read."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vqladder.config import load_config
from vqladder.planning.config import PlanConfig
from vqladder.planning.endstate import EndStateCoder, EndStateConfig, endstate_rows
from vqladder.planning.evaluate import door_information
from vqladder.planning.maze import EpisodeCodec
from vqladder.planning.planners import door_codes, room_segments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--rate-weight", type=float, default=0.0)
    ap.add_argument("--levels", default="4,4")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--encoder-sees", default="full", choices=["full", "relative"])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg = load_config(PlanConfig, a.run_dir / "config.yaml")
    z = np.load(a.run_dir / "data.npz")
    codec = EpisodeCodec(cfg.maze)
    n_segs = cfg.maze.max_moves // cfg.ladder.chunk
    segs, cells, used, exits = room_segments(codec, z["train_cond"], z["train_moves"], cfg.ladder.chunk, n_segs)
    rows, held = endstate_rows(codec, z["train_cond"], segs, cells, used, exits)
    doors = door_codes(exits, used)[held]
    r, c, W = torch.from_numpy(rows[held]), codec.cond_len, cfg.maze.side
    cut = int(len(r) * 0.9)
    levels = [int(v) for v in a.levels.split(",")]
    torch.manual_seed(a.seed)
    m = EndStateCoder(EndStateConfig(d_model=64, n_heads=2, cond_vocab=codec.cond_vocab, cond_len=c, cells=W * W,
                                     span=2 * W - 1, room=cfg.maze.room, levels=levels, rate_weight=a.rate_weight,
                                     encoder_sees=a.encoder_sees, seed=a.seed))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=a.steps, pct_start=0.05)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    for _ in range(a.steps):
        m.train()
        loss, _ = m.loss(r[:cut][torch.randint(cut, (64,), generator=g)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    va = r[cut:]
    codes = m.encode(va)
    recon = float((m.decode(va[:, :c], codes).argmax(-1) == va[:, -1]).float().mean())
    bits = float(m.rate_bits(va[:, :c], codes).mean())
    mi = door_information(list(zip(codes.tolist(), doors[cut:].tolist())))
    print(f"rate_weight {a.rate_weight} levels {levels} encoder_sees {a.encoder_sees} steps {a.steps}: end cell "
          f"back {recon:.3f}; rate {bits:.2f} bits (nominal {np.log2(np.prod(levels)):.2f}); door information "
          f"{mi:.2f}; codes used {len(set(codes.tolist()))}; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
