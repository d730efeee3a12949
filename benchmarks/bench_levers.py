"""The speed levers one at a time: training tokens per second of one stage kind's optimiser step under each lever,
beside today's recipe, measured side by side in one run.

    .venv/bin/python benchmarks/bench_levers.py --out docs/bench/levers.md

Kinds: the demo's compressor (256 tokens -> 64 FSQ codes, d_model 192, batch 8) and the flat LM shape of the
speedrun (1,024 tokens, d_model 192, 4 layers, batch 4). Levers, each changed alone against ``base`` (eager,
AdamW, torch's default threads, the stage's batch):
  * ``fp32``            autocast off (``train.precision=fp32``), where ``base`` runs under the trainer's autocast
                        (bf16 on a CPU with native bf16: AVX512-BF16 or AMX; else fp32, and the two rows agree);
  * ``1 thread``        ``torch.set_num_threads(1)`` (what two stages trained side by side each get);
  * ``compile``         ``train.compile``: ``torch.compile`` of the loss as the trainer does it (forward and backward;
                        the optimiser step stays eager); its compile time apart, in the warm-up column;
  * ``batch x4``        four times the batch (bigger matrix products);
  * ``muon``            Muon for the hidden matrices (``train.optimizer=muon``), its Newton-Schulz cost included.
Every lever runs under the trainer's autocast (``train.precision=auto``) but ``fp32``. MFU: counted training FLOPs
per token (attention included) x tokens/s over the matmul peak measured at the same thread count and dtype
(1,024 x 1,024 products). Random tokens (speed does not depend on them); ``--steps`` timed steps after ``--warm`` untimed ones. Run it on an
otherwise idle machine: every number is a wall-clock.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_speedrun import demo_compressor

from vqladder.models import CausalLM, LMConfig, SequenceCompressor
from vqladder.train.flops import flops_per_token, matmul_peak
from vqladder.train.optim import Optimizers
from vqladder.train.trainer import _LossModule, autocast_dtype

LEVERS = ("base", "fp32", "1 thread", "compile", "batch x4", "muon")


def _model(kind: str):
    if kind == "compressor":
        return SequenceCompressor(demo_compressor(1024)), 8, 256
    return CausalLM(LMConfig(vocab_size=1024, context=1024, d_model=192, n_heads=3, n_layers=4)), 4, 1024


def measure(kind: str, lever: str, steps: int, warm: int) -> dict:
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    model, batch, length = _model(kind)
    model.train()
    batch *= 4 if lever == "batch x4" else 1
    amp = None if lever == "fp32" else autocast_dtype("auto", torch.device("cpu"))
    opt = Optimizers(model, "muon" if lever == "muon" else "adamw", 1e-3, (0.9, 0.95), 0.01,
                     ns_dtype=amp or torch.float32)
    ctx = (lambda: torch.autocast("cpu", dtype=amp)) if amp is not None else contextlib.nullcontext

    fwd = _LossModule(model)
    fwd = torch.compile(fwd) if lever == "compile" else fwd

    def step(x):
        with ctx():
            loss = fwd(x)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    if lever == "1 thread":
        torch.set_num_threads(1)
    counted = flops_per_token(model, torch.randint(0, 1024, (batch, length)), ctx())
    peak = matmul_peak(torch.device("cpu"), amp or torch.float32)
    fn = step
    try:
        t0 = time.perf_counter()
        for _ in range(warm):
            fn(torch.randint(0, 1024, (batch, length)))
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            fn(torch.randint(0, 1024, (batch, length)))
        dt = (time.perf_counter() - t0) / steps
    finally:
        torch.set_num_threads(threads)
    return {"kind": kind, "lever": lever, "batch": batch, "dtype": str(amp or torch.float32).split(".")[-1], "ms_per_step": 1000 * dt, "tok_per_s": batch * length / dt,
            "warm_s": warm_s, "mfu": counted * batch * length / dt / peak, "peak": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=["compressor", "flat-lm"], choices=["compressor", "flat-lm"])
    ap.add_argument("--levers", nargs="+", default=list(LEVERS), choices=LEVERS)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--out", help="write the Markdown table here")
    a = ap.parse_args()
    os.environ["VQLADDER_CACHE"] = tempfile.mkdtemp()  # the matmul peak measured now, not read from a cache
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp()  # compile cold, as a user's first run does
    lines = ["| stage kind | lever | dtype | batch | ms / step | tokens / s | ratio to base | MFU | warm-up (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind in a.kinds:
        base = None
        for lever in a.levers:
            r = measure(kind, lever, a.steps, a.warm)
            base = r["tok_per_s"] if lever == "base" else base
            ratio = f"{r['tok_per_s'] / base:.2f}x" if base else "—"
            lines.append(f"| {kind} | {lever} | {r['dtype']} | {r['batch']} | {r['ms_per_step']:.0f} | {r['tok_per_s']:,.0f} | {ratio} | "
                         f"{r['mfu']:.0%} | {r['warm_s']:.1f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(f"# Speed levers, one at a time\n\n`.venv/bin/python benchmarks/bench_levers.py "
                               f"{' '.join(sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
