"""How well does a top prior predict the next door code from the cell a plan stands in (closed loop)?

Probe of the closed-loop top prior on the validation layouts' shortest plans, before and during fine-tuning
of a trained open-loop doors prior on ``planners.closed_prior_rows`` (AdamW, batch 64, one thread):

    python scripts/plan_closed_probe.py runs/plan-endstate-4x4-rel-s0 4 64 900 [lr]

(arguments: a plan-experiment directory whose seed0 holds doors_prior and doors_codes.npy, the maze's rooms per
side, its max moves, the fine-tuning steps). Prints the next-code accuracy over every segment of the validation
plans, for the first segment and for the later ones, every 300 steps. Reads only training rows and validation
layouts."""

import sys
from pathlib import Path

import numpy as np
import torch

from vqladder.models import load_model
from vqladder.planning.maze import EpisodeCodec, MazeConfig
from vqladder.planning.planners import closed_prior_rows, door_codes, room_segments


def main(argv) -> None:
    torch.set_num_threads(1)
    run, rooms, T, steps = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    lr = float(argv[4]) if len(argv) > 4 else 1e-3
    n = T // 4
    codec = EpisodeCodec(MazeConfig(rooms=rooms, room=3, max_moves=T))
    z = np.load(run / "data.npz")
    _, cells, used, _ = room_segments(codec, z["train_cond"], z["train_moves"], 4, n)
    rows = torch.from_numpy(closed_prior_rows(codec, z["train_cond"], cells, np.load(run / "seed0/doors_codes.npy"),
                                              used, 5)).long()
    prior = load_model(run / "seed0/doors_prior", "code_prior")[0]
    conds, codes, js = [], [], []
    for cond in z["val_cond"]:
        lay, s, g, _ = codec.decode_cond(cond)
        path = lay.shortest_path(tuple(s), tuple(g)) or []
        if not path:
            continue
        _, ce, us, ex = room_segments(codec, cond[None], codec.moves(path)[None], 4, n)
        dc = door_codes(ex, us)[0]
        for j in range(min(int(us[0]) + 1, n)):
            conds.append(codec.with_start(cond, ce[0, j]))
            codes.append(dc[j])
            js.append(j)
    conds, codes, js = torch.from_numpy(np.stack(conds)).long(), torch.tensor(codes), np.array(js)

    def report(tag):
        prior.eval()
        with torch.no_grad():
            ok = (prior(conds[:, :0], conds)[:, -1].argmax(-1) == codes).numpy()
        print(f"{tag}: next-code accuracy {ok.mean():.3f} (first segment {ok[js == 0].mean():.3f}, later "
              f"{ok[js >= 1].mean():.3f})", flush=True)
        prior.train()

    report("open-loop prior, asked from each cell")
    opt = torch.optim.AdamW(prior.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        loss, _ = prior.loss(rows[torch.randint(len(rows), (64,), generator=g)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 300 == 299:
            report(f"fine-tuned {step + 1} steps")


if __name__ == "__main__":
    main(sys.argv[1:])
