"""Our FSQ / VQ against vector-quantize-pytorch's, inside the same compressor, same seed, same steps.

Run (2-core CPU, about 4 x 2.5 minutes at the default 300 steps; the demo trains 600):
    .venv/bin/python benchmarks/bench_quantizers.py               # or: make bench
    .venv/bin/python benchmarks/bench_quantizers.py --steps 600   # the full demo schedule
    .venv/bin/python benchmarks/bench_quantizers.py --seeds 0 1 2 # mean ± std over seeds
Prints two Markdown tables: per-step speed on a fixed batch (``--timing-only`` stops there), then full
training runs with tokens/s (wall clock, includes data loading) and held-out token accuracy / usage.
Run it on an otherwise idle machine: tokens/s is only comparable within one quiet run.
Needs `pip install vector-quantize-pytorch` (in the [dev] extra).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

import torch
from torch import nn

from vqladder.data import WindowSampler
from vqladder.eval import evaluate_compressor
from vqladder.models import SequenceCompressor
from vqladder.quantize import Quantized, levels_for
from vqladder.quantize.base import code_histogram, histogram_stats
from vqladder.text.compressor import load_shards
from vqladder.text.demo import demo_config
from vqladder.train import Trainer


class VQPWrapper(nn.Module):
    """vector-quantize-pytorch quantizer behind our Quantizer interface."""

    def __init__(self, kind: str, dim: int, codebook_size: int):
        super().__init__()
        import vector_quantize_pytorch as vqp

        if kind == "fsq":
            levels = levels_for(codebook_size)
            self.q = vqp.FSQ(levels=levels, dim=dim)
            self.codebook_size = math.prod(levels)
        else:
            self.q = vqp.VectorQuantize(dim=dim, codebook_size=codebook_size, codebook_dim=32, decay=0.99,
                                        commitment_weight=0.25, kmeans_init=True, threshold_ema_dead_code=2)
            self.codebook_size = codebook_size
        self.kind = kind

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)

    def forward(self, z):
        with torch.autocast(device_type=z.device.type, enabled=False):
            out = self.q(z.float())
        if self.kind == "fsq":
            z_q, codes = out
            loss = z.new_zeros((), dtype=torch.float32)
        else:
            z_q, codes, loss = out
        return Quantized(z_q, codes, loss, histogram_stats(code_histogram(codes, self.codebook_size)))


def run(kind: str, impl: str, steps: int, shards, seed: int = 0) -> dict:
    cfg = demo_config(steps=steps)
    cfg.model.seed = cfg.train.seed = seed
    cfg.model.vocab_size = shards.vocab_size
    cfg.model.quantizer.kind = kind
    cfg.model.quantizer.norm = "none"  # the same FSQ algorithm as vector-quantize-pytorch's (equal codes, tested)
    cfg.train.progress = False
    cfg.train.eval_every = -1
    cfg.train.ckpt_every = -1
    torch.manual_seed(seed)  # vector-quantize-pytorch's own init (ours is seeded by model.seed)
    model = SequenceCompressor(cfg.model)
    if impl == "vector-quantize-pytorch":
        model.quantizer = VQPWrapper(kind, cfg.model.d_model, cfg.model.quantizer.codebook_size)
    n = cfg.model.in_len
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(model, cfg.train, d, lambda r, w: WindowSampler(shards.train, n, cfg.train.batch_size, seed, r, w),
                     None, {"model_config": {}})
        t0 = time.time()
        tr.fit()
        dt = time.time() - t0
    model.eval()
    with tr._autocast():
        res = evaluate_compressor(model, shards.val, max_chunks=-1)
    return {"quantizer": kind, "impl": impl, "seed": seed, "tok_s": tr.tokens_seen / dt, "acc": res["acc"], "usage": res["usage"],
            "bits": res["bits_per_token"], "time": dt}


def step_timing(steps: int = 10) -> list[dict]:
    """Seconds per training step (forward + backward + AdamW, bf16 autocast where the CPU has it) of the demo
    model with each quantizer, on one fixed batch: a speed comparison free of data and eval effects."""
    from vqladder.train.trainer import autocast_dtype, pick_device

    x = torch.randint(0, 1024, (16, 256))
    amp = autocast_dtype("auto", pick_device("cpu"))
    rows = []
    for kind in ("fsq", "vq"):
        for impl in ("vqladder", "vector-quantize-pytorch"):
            cfg = demo_config()
            cfg.model.vocab_size, cfg.model.quantizer.kind = 1024, kind
            cfg.model.quantizer.norm = "none"
            torch.manual_seed(0)
            m = SequenceCompressor(cfg.model)
            if impl != "vqladder":
                m.quantizer = VQPWrapper(kind, cfg.model.d_model, cfg.model.quantizer.codebook_size)
            opt = torch.optim.AdamW(m.parameters(), 1e-3)
            for i in range(steps + 3):
                if i == 3:
                    t0 = time.time()
                with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
                    loss, _ = m.loss(x)
                loss.backward()
                opt.step()
                opt.zero_grad()
            dt = (time.time() - t0) / steps
            rows.append({"quantizer": kind, "impl": impl, "s_step": dt, "tok_s": x.numel() / dt})
    return rows


def _ms(xs: list, fmt: str = ".3f") -> str:
    """Mean, and ± the sample std over seeds when there is more than one."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return format(m, fmt)
    return f"{format(m, fmt)} ± {format(math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), fmt)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="training steps per run")
    ap.add_argument("--kinds", default="fsq,vq", help="quantizer kinds to compare")
    ap.add_argument("--timing-only", action="store_true", help="only the per-step speed table (about a minute)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="model, quantiser and data seeds: one run "
                    "per quantiser and seed; the table gives mean ± std (accuracy and usage do not depend on load; "
                    "tokens/s does)")
    a = ap.parse_args(argv)
    try:
        import vector_quantize_pytorch  # noqa: F401
    except ImportError:
        print("error: pip install vector-quantize-pytorch to run this benchmark", file=sys.stderr)
        return 2
    print(f"per-step speed, demo model, batch 16 x 256, threads={torch.get_num_threads()}")
    print("| quantizer | implementation | s/step | tokens/s |")
    print("|---|---|---|---|")
    for r in step_timing():
        print(f"| {r['quantizer']} | {r['impl']} | {r['s_step']:.3f} | {r['tok_s']:.0f} |")
    if a.timing_only:
        return 0
    print()
    shards = load_shards(demo_config().data)
    rows = []
    for kind in a.kinds.split(","):
        for impl in ("vqladder", "vector-quantize-pytorch"):
            for seed in a.seeds:
                rows.append(run(kind, impl, a.steps, shards, seed))
                print(f"done {kind} {impl} seed {seed}: acc {rows[-1]['acc']:.4f}", file=sys.stderr)
    print(f"demo model ({demo_config().model.in_len}->{demo_config().model.out_len}, d=192), {a.steps} steps, "
          f"threads={torch.get_num_threads()}, seeds {' '.join(map(str, a.seeds))} (mean ± std)")
    print("| quantizer | implementation | bits/token | train tokens/s | held-out token acc | code usage | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for kind in a.kinds.split(","):
        for impl in ("vqladder", "vector-quantize-pytorch"):
            rs = [r for r in rows if r["quantizer"] == kind and r["impl"] == impl]
            print(f"| {kind} | {impl} | {rs[0]['bits']:.3f} | {_ms([r['tok_s'] for r in rs], '.0f')} | "
                  f"{_ms([r['acc'] for r in rs])} | {_ms([r['usage'] for r in rs])} | "
                  f"{_ms([r['time'] for r in rs], '.0f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
