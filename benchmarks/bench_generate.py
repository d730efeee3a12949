"""Generation speed of the shared decoder core: KV-cached vs re-running the whole prefix per symbol.

    .venv/bin/python benchmarks/bench_generate.py                 # the flat LM (the ladder's default), 256 tokens
    .venv/bin/python benchmarks/bench_generate.py --threads 1 --batch 1 8

Models: the flat LM, an upsampler, and the autoregressive compressor decoder (``decoder: autoregressive``:
free-running decoding of a chunk from its codes, as evaluation does).

"Uncached" is how every model generated before the shared core: each new symbol re-ran the model over the
whole window (``lm(prefix[:, -context:])``); "cached" feeds one position per symbol through ``step_fn()``.
Both decode greedily from the same random-init model and are checked to emit the same tokens (within the
context, where both see the same window). Weights are random (speed does not depend on them); fp32, eval mode.
"""

from __future__ import annotations

import argparse
import time

import torch

from vqladder.models import (
    CausalLM,
    CompressorConfig,
    LMConfig,
    SequenceCompressor,
    Upsampler,
    UpsamplerConfig,
)
from vqladder.models.sampling import greedy
from vqladder.quantize import QuantizerConfig


def _timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    fn()                                                   # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - t0) / repeats, out


def _full_pass_decode(model: SequenceCompressor, z_q: torch.Tensor) -> torch.Tensor:
    """Greedy decoding as the autoregressive compressor decoder did before its KV cache: one full decoder pass
    over the chunk per position."""
    tokens = torch.zeros(z_q.shape[0], model.config.in_len, dtype=torch.long)
    for t in range(model.config.in_len):
        tokens[:, t] = model.post_quant(z_q, tokens)[:, t].argmax(-1)
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    lm = CausalLM(LMConfig(vocab_size=1024, context=256, d_model=192, n_heads=3, n_layers=4)).eval()
    up = Upsampler(UpsamplerConfig(vocab_size=1024, parent_vocab=4375, length=64, parent_len=16, d_model=128,
                                   n_heads=2, enc_layers=1, dec_layers=3)).eval()
    ar = SequenceCompressor(CompressorConfig(vocab_size=1024, in_len=256, out_len=64, d_model=192, n_heads=3,
                                             downsample="pool", enc_layers=2, latent_layers=2, dec_layers=2,
                                             decoder="autoregressive",
                                             quantizer=QuantizerConfig(kind="fsq", codebook_size=4096))).eval()
    rows = []
    with torch.no_grad():
        for b in a.batch:
            prefix = torch.randint(0, 1024, (b, 1))
            ctx = lm.config.context
            plain = lambda: greedy(lambda p: lm(p[:, -ctx:])[:, -1], b, a.tokens, prefix=prefix)
            cached = lambda: greedy(lm.step_fn(), b, a.tokens, prefix=prefix)
            t_plain, o_plain = _timed(plain, a.repeats)
            t_cached, o_cached = _timed(cached, a.repeats)
            same = bool(torch.equal(o_plain[:, :ctx - 1], o_cached[:, :ctx - 1]))
            rows.append(("flat LM (192 wide, 4 layers)", b, a.tokens, t_plain, t_cached, same))
            parent = torch.randint(0, 4375, (b, 16))
            encoded = lambda: up.encode_parent(parent)
            plain = lambda: greedy(lambda p: up(parent, p, encoded())[:, -1], b, 64)
            cached = lambda: greedy(up.step_fn(parent), b, 64)
            t_plain, o_plain = _timed(plain, a.repeats)
            t_cached, o_cached = _timed(cached, a.repeats)
            rows.append(("upsampler (16 codes -> 64 tokens)", b, 64, t_plain, t_cached,
                         bool(torch.equal(o_plain, o_cached))))
            z_q = ar.quantizer.decode_codes(ar.encode(torch.randint(0, 1024, (b, 256))))
            t_plain, o_plain = _timed(lambda: _full_pass_decode(ar, z_q), a.repeats)
            t_cached, o_cached = _timed(lambda: ar.generate(z_q)[0], a.repeats)
            rows.append(("autoregressive compressor decoder (64 codes -> 256 tokens)", b, 256, t_plain, t_cached,
                         bool(torch.equal(o_plain, o_cached))))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | batch | symbols | uncached tok/s | KV-cached tok/s | speed-up | same tokens |")
    print("|---|---|---|---|---|---|---|")
    for name, b, n, tp, tc, same in rows:
        print(f"| {name} | {b} | {n} | {b * n / tp:,.0f} | {b * n / tc:,.0f} | {tp / tc:.1f}x | {same} |")


if __name__ == "__main__":
    main()
