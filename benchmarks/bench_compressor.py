"""Compressors at the same rate and wall-clock: tokens/s, MFU, held-out token accuracy, code usage.

    .venv/bin/python benchmarks/bench_compressor.py                       # 256 -> 64 codes, 200 s each
    .venv/bin/python benchmarks/bench_compressor.py --seconds 600 --out-len 64 --depth 4
    .venv/bin/python benchmarks/bench_compressor.py --models segment local --seconds 120
    .venv/bin/python benchmarks/bench_compressor.py --models segment hourglass local --seeds 0 1 2
    .venv/bin/python benchmarks/bench_compressor.py --choose-batch 8 16 32 --seeds 0 1 2

With ``--choose-batch``, every contender's batch size is chosen the same way, never on the test chunks: the last
``--dev-fraction`` of the train split is held back, every contender trains on the rest once per batch size of the
grid (first seed), and keeps the batch with the best held-back token accuracy; only the chosen model is then scored
on the held-out (val) chunks, and the other seeds train at the chosen batch on the same reduced train split.

Contenders (same width, same FSQ rate, the same time budget, the learning-rate schedule planned to end at it):
  * ``segment``  — the local-first compressor (``downsample: segment``): per-segment MLPs, context blocks over
                   the m segments on each side of the quantiser;
  * ``hourglass``— the previous default (``downsample: pool``, the demo preset's shape);
  * ``local``    — the context-free local autoencoder (``segment`` with no context blocks), the reference a
                   compressor must beat;
  * ``stitched`` — vector-quantize-pytorch's FSQ inside ``torch.nn.TransformerEncoder`` blocks in the
                   hourglass shape (needs the [dev] extra).
Run it on an otherwise idle machine: every number is time-budgeted, so anything else running changes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vqladder.config import build
from vqladder.data import WindowSampler
from vqladder.eval import evaluate_compressor
from vqladder.models import CompressorConfig, SequenceCompressor
from vqladder.quantize import Quantized, levels_for
from vqladder.quantize.base import code_histogram, histogram_stats
from vqladder.text.compressor import DataConfig, load_shards
from vqladder.train import Trainer, TrainerConfig


def model_config(name: str, vocab: int, n: int, m: int, d: int, heads: int, codebook: int, depth: int) -> dict:
    """A contender's CompressorConfig; ``NAME:key=value,…`` overrides fields (``segment:latent_layers=1``)."""
    name, _, extra = name.partition(":")
    over = {k: int(v) if v.isdigit() else v for k, v in (kv.split("=") for kv in extra.split(",") if kv)}
    return {**_model_config(name, vocab, n, m, d, heads, codebook, depth), **over}


def _model_config(name: str, vocab: int, n: int, m: int, d: int, heads: int, codebook: int, depth: int) -> dict:
    q = {"kind": "fsq", "codebook_size": codebook, "depth": depth}
    base = {"vocab_size": vocab, "in_len": n, "out_len": m, "d_model": d, "n_heads": heads, "quantizer": q}
    if name == "segment":
        return {**base, "downsample": "segment", "seg_layers": 2, "latent_layers": 2, "enc_layers": 0, "dec_layers": 0}
    if name == "local":
        return {**base, "downsample": "segment", "seg_layers": 3, "latent_layers": 0, "enc_layers": 0, "dec_layers": 0}
    if name == "hourglass":
        return {**base, "downsample": "pool", "enc_layers": 2, "latent_layers": 2, "dec_layers": 2}
    raise ValueError(name)


class Stitched(nn.Module):
    """vector-quantize-pytorch FSQ between torch.nn.TransformerEncoder stacks, hourglass-shaped (no RoPE: a
    learned position embedding), behind the interface the trainer and evaluate_compressor use."""

    kind = "stitched"

    def __init__(self, vocab: int, n: int, m: int, d: int, heads: int, codebook: int):
        super().__init__()
        import vector_quantize_pytorch as vqp

        self.config = CompressorConfig(vocab_size=vocab, in_len=n, out_len=m, d_model=d, n_heads=heads)
        self.r = n // m
        layer = lambda: nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.emb, self.pos = nn.Embedding(vocab, d), nn.Parameter(torch.randn(n, d) * 0.02)
        self.enc, self.enc_lat = nn.TransformerEncoder(layer(), 2), nn.TransformerEncoder(layer(), 2)
        self.dec_lat, self.dec = nn.TransformerEncoder(layer(), 2), nn.TransformerEncoder(layer(), 2)
        self.dpos = nn.Parameter(torch.randn(n, d) * 0.02)
        self.fsq = vqp.FSQ(levels=levels_for(codebook), dim=d)
        self.head = nn.Linear(d, vocab, bias=False)
        k = 1
        for lv in levels_for(codebook):
            k *= lv
        self.quantizer = type("Q", (), {"codebook_size": k, "bits_per_code": float(torch.tensor(k).log2())})()

    @property
    def bits_per_token(self) -> float:
        return self.config.out_len * self.quantizer.bits_per_code / self.config.in_len

    def forward(self, tokens):
        b, n = tokens.shape
        m = self.config.out_len
        x = self.enc(self.emb(tokens) + self.pos)
        x = self.enc_lat(x.view(b, m, self.r, -1).mean(2))
        with torch.autocast(tokens.device.type, enabled=False):
            zq, codes = self.fsq(x.float())
        y = self.dec_lat(zq.to(x.dtype)).repeat_interleave(self.r, 1) + self.dpos
        hist = code_histogram(codes, self.quantizer.codebook_size)
        stats = {k: v for k, v in histogram_stats(hist).items()}
        return self.head(self.dec(y)), Quantized(zq, codes, torch.zeros((), device=zq.device), stats)

    def loss(self, tokens):
        logits, q = self(tokens)
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens.reshape(-1))
        with torch.no_grad():
            acc = (logits.argmax(-1) == tokens).float().mean()
        return ce, {"ce": ce.detach(), "acc": acc, **q.stats}


def default_batch(name: str, args) -> int:
    """The contender's batch when none is chosen: the hourglass-shaped models at ``--batch-hourglass``."""
    return args.batch_hourglass if name == "stitched" or name.startswith("hourglass") else args.batch


def run(name: str, args, shards, seed: int = 0, batch: int | None = None, train=None, scored=None) -> dict:
    """Train one contender for ``args.seconds`` on ``train`` (default: the train split) and score it on ``scored``
    (default: the val split); ``row["model_obj"]`` is the trained model."""
    vocab, n, m = shards.vocab_size, args.in_len, args.out_len
    train = shards.train if train is None else train
    scored = shards.val if scored is None else scored
    batch = default_batch(name, args) if batch is None else batch
    if name == "stitched":
        model = Stitched(vocab, n, m, args.d_model, args.n_heads, args.codebook)
        lr = args.lr_hourglass
    else:
        model = SequenceCompressor(build(CompressorConfig, {**model_config(name, vocab, n, m, args.d_model, args.n_heads,
                                                                           args.codebook, args.depth), "seed": seed}))
        lr = args.lr_hourglass if name.startswith("hourglass") else args.lr
    tcfg = TrainerConfig(steps=10_000_000, max_time=args.seconds, batch_size=batch, lr=lr, warmup=args.warmup,
                         eval_every=-1, ckpt_every=-1, log_every=20, progress=False, seed=seed)
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(model, tcfg, Path(d) / name, lambda r, w: WindowSampler(train, n, batch, seed, r, w),
                     None, {"model_config": {}})
        tr.fit()
        logs = [json.loads(line) for line in (Path(d) / name / "metrics.jsonl").read_text().splitlines()]
    mfu = [r["mfu"] for r in logs if "mfu" in r]
    row = {"model": name, "seed": seed, "batch": batch, "params": sum(p.numel() for p in model.parameters()),
           "steps": tr.step, "tok_per_s": tr.tokens_seen / tr.train_time,
           "mfu": sum(mfu) / len(mfu) if mfu else float("nan"), "bits_per_token": model.bits_per_token,
           "bf16": tr.amp_dtype is not None}
    return {**row, **score(model, scored, args, row["bf16"]), "model_obj": model}


def score(model, tokens, args, bf16: bool) -> dict:
    """Held-out token accuracy and code usage of a trained contender on ``tokens``."""
    t0 = time.time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        res = evaluate_compressor(model, tokens, max_chunks=args.eval_chunks)
    return {"acc": res["acc"], "usage": res["usage"], "eval_s": time.time() - t0}


def choose_batch(name: str, args, shards, train, dev, seed: int) -> tuple[dict, dict]:
    """Train ``name`` once per batch of ``args.choose_batch`` on ``train`` and keep the one whose accuracy on the
    held-back ``dev`` tokens is highest (the smaller batch on a tie); returns its row scored on the val split and
    the held-back accuracy per batch. The val split is read for the chosen model only."""
    tried, best = {}, None
    for b in sorted(args.choose_batch):  # ascending, so a tie keeps the smaller batch
        print(f"[bench] {name} batch {b} (choice, seed {seed}): training {args.seconds:.0f}s …", file=sys.stderr,
              flush=True)
        row = run(name, args, shards, seed, batch=b, train=train, scored=dev)
        tried[b] = row["acc"]
        print(f"[bench]   held-back acc {row['acc']:.4f}", file=sys.stderr, flush=True)
        if best is None or row["acc"] > best["acc"]:
            best = row
    model = best.pop("model_obj")
    if args.choice_only:  # the val split is not read at all
        return {**best, "dev_acc": best["acc"], "acc": float("nan"), "usage": float("nan")}, tried
    return {**best, "dev_acc": best["acc"], **score(model, shards.val, args, best["bf16"])}, tried


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["segment", "hourglass", "local", "stitched"])
    p.add_argument("--data", default="data/builtin-bpe1024")
    p.add_argument("--corpus", default="builtin")
    p.add_argument("--tokenizer", default="bpe:1024")
    p.add_argument("--seconds", type=float, default=200.0, help="training wall-clock per model")
    p.add_argument("--in-len", type=int, default=256)
    p.add_argument("--out-len", type=int, default=64)
    p.add_argument("--codebook", type=int, default=4096, help="FSQ codebook request (4096 -> 4375 codes)")
    p.add_argument("--depth", type=int, default=1, help="residual FSQ stages (ours only)")
    p.add_argument("--d-model", type=int, default=192)
    p.add_argument("--n-heads", type=int, default=3)
    p.add_argument("--batch", type=int, default=8, help="chunks per step, segment / local models, unless --choose-batch")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-hourglass", type=int, default=16, help="chunks per step, hourglass / stitched (the demo's), unless --choose-batch")
    p.add_argument("--lr-hourglass", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--eval-chunks", type=int, default=-1, help="held-out chunks (-1 = the whole val split)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="model and data seeds: one run per model "
                   "and seed, the table gives mean ± std over seeds")
    p.add_argument("--choose-batch", type=int, nargs="+", metavar="B",
                   help="choose every contender's batch from these on held-back train text (first seed)")
    p.add_argument("--dev-fraction", type=float, default=0.1,
                   help="with --choose-batch: the last part of the train split held back to choose on (0.1 of the "
                        "built-in corpus is about as many chunks as its val split)")
    p.add_argument("--choice-only", action="store_true",
                   help="with --choose-batch: train and score on held-back train text only, never read the val "
                        "split (to widen a grid without looking at the test chunks)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    if args.choice_only and not args.choose_batch:
        p.error("--choice-only needs --choose-batch")
    if args.choose_batch and not 0 < args.dev_fraction < 1:
        p.error(f"--dev-fraction must be between 0 and 1 (the share of the train split held back), got {args.dev_fraction}")
    torch.set_num_threads(args.threads)
    shards = load_shards(build(DataConfig, {"path": args.data, "corpus": args.corpus, "tokenizer": args.tokenizer}))
    train, dev = shards.train, None
    if args.choose_batch:
        cut = int(len(shards.train) * (1 - args.dev_fraction))
        train, dev = shards.train[:cut], shards.train[cut:]
    rows, tried, chosen = [], {}, {}
    for seed in (args.seeds[:1] if args.choice_only else args.seeds):
        for name in args.models:
            if args.choose_batch and name not in chosen:
                row, tried[name] = choose_batch(name, args, shards, train, dev, seed)
                chosen[name] = row["batch"]
            else:
                print(f"[bench] {name} seed {seed}: training {args.seconds:.0f}s …", file=sys.stderr, flush=True)
                row = run(name, args, shards, seed, batch=chosen.get(name), train=train)
            row.pop("model_obj", None)
            rows.append(row)
            print(f"[bench] {rows[-1]}", file=sys.stderr, flush=True)
    print(f"\n{args.in_len} -> {args.out_len} codes, FSQ {args.codebook} x depth {args.depth}, {args.seconds:.0f} s "
          f"each on {args.data} (held-out: {'all' if args.eval_chunks < 0 else args.eval_chunks} chunks); seeds "
          f"{', '.join(map(str, args.seeds))}{' (mean ± std)' if len(args.seeds) > 1 else ''}\n")
    if args.choose_batch:
        print(f"Batch chosen per contender on the last {args.dev_fraction:g} of the train split ({len(dev):,} tokens, "
              f"held back from every contender's training), seed {args.seeds[0]}, by the best held-back token "
              f"accuracy at the same {args.seconds:.0f} s; "
              f"{'the val split was not read' if args.choice_only else 'the val split scored the chosen models only'}"
              f". Held-back accuracy per batch:\n")
        print("| model | " + " | ".join(f"batch {b}" for b in args.choose_batch) + " | chosen |")
        print("|---|" + "---|" * (len(args.choose_batch) + 1))
        for name in args.models:
            print(f"| {name} | " + " | ".join(f"{tried[name][b]:.4f}" for b in args.choose_batch) +
                  f" | {chosen[name]} |")
        print()
    if args.choice_only:
        return
    print("| model | params | bits/token | batch | steps | tokens/s | MFU | held-out token acc | code usage | "
          "tokens/s vs hourglass |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by = {name: [r for r in rows if r["model"] == name] for name in args.models}
    mean = {name: {k: float(np.mean([r[k] for r in rs])) for k in ("tok_per_s", "mfu", "acc", "usage", "steps")}
            for name, rs in by.items()}
    for name, rs in by.items():
        a = mean[name]
        rel = f"{a['tok_per_s'] / mean['hourglass']['tok_per_s']:.2f}x" if "hourglass" in mean else "–"
        acc = f"{a['acc']:.3f}" + (f" ± {np.std([r['acc'] for r in rs]):.3f}" if len(rs) > 1 else "")
        print(f"| {name} | {rs[0]['params'] / 1e6:.2f} M | {rs[0]['bits_per_token']:.2f} | {rs[0]['batch']} | "
              f"{a['steps']:.0f} | "
              f"{a['tok_per_s']:,.0f} | {a['mfu']:.1%} | {acc} | {a['usage']:.3f} | {rel} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
