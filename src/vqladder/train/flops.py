"""Model FLOP utilisation: FLOPs per token counted from the model, against this machine's measured matmul peak.

``flops_per_token(model, batch)`` runs one forward + backward of ``model.loss(batch)`` under
``torch.utils.flop_counter.FlopCounterMode`` (matmuls, attention, convolutions: what dominates) and divides by
the tokens in the batch. ``matmul_peak(device, dtype)`` times square matmuls once and caches the result in
``~/.cache/vqladder/`` (``VQLADDER_CACHE`` overrides), so MFU = tokens/s x FLOPs/token / peak.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch


def _cpu_sdpa_flops(q, k, v, dropout_p=0.0, is_causal=False, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    n = sdpa_flop_count(q, k, v)
    return n // 2 if is_causal and q[2] == k[2] else n  # the causal kernel skips the masked half


def _cpu_sdpa_backward_flops(g, q, k, v, out, lse, dropout_p=0.0, is_causal=False, *args, out_shape=None,
                             **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    n = sdpa_backward_flop_count(g, q, k, v)
    return n // 2 if is_causal and q[2] == k[2] else n


def counter():
    """``FlopCounterMode`` that also counts ``scaled_dot_product_attention`` on CPU (torch registers formulas for
    the CUDA kernels only, so the CPU flash kernel counted 0): the two attention matmuls forward and the five of
    the backward, halved for a causal mask over a square score matrix (the kernel skips the masked blocks); the
    short-sequence path (``nn.layers._math_attention``) is counted from its matmuls as they run, in full."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops})


def flops_per_token(model, batch: torch.Tensor, autocast=None) -> float:
    """Training FLOPs (forward + backward) per input token of ``model.loss(batch)``; 0 if it cannot be counted."""
    was = model.training
    model.train()
    try:
        with counter() as fc, (autocast or contextlib.nullcontext()):
            loss, _ = model.loss(batch)
            loss.backward()
        total = fc.get_total_flops()
    except Exception:  # noqa: BLE001 - an op the counter cannot trace: report no MFU rather than fail training
        return 0.0
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    return float(total) / max(batch.numel(), 1)


def _cache_dir() -> Path:
    return Path(os.environ.get("VQLADDER_CACHE", Path.home() / ".cache" / "vqladder"))


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 1024, repeats: int = 20) -> float:
    """Measured FLOP/s of ``size`` x ``size`` matmuls in ``dtype`` on ``device`` with the current thread count;
    cached per (device type, dtype, threads)."""
    key = f"peak-{device.type}-{str(dtype).split('.')[-1]}-t{torch.get_num_threads()}.json"
    path = _cache_dir() / key
    try:
        cached = float(json.loads(path.read_text())["flops"])
        if math.isfinite(cached) and cached > 0:  # a zero, negative or NaN cache entry is measured again
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    flops = 2 * size ** 3 * repeats / (time.perf_counter() - t0)
    try:
        from ..io import atomic_write_json

        atomic_write_json(path, {"flops": flops, "size": size, "threads": torch.get_num_threads()})
    except OSError:
        pass
    return flops


def body_params(model) -> int:
    """Non-embedding parameters: all but embedding tables and output heads (the usual count for matching
    model sizes, since the ladder's code vocabularies make its embedding tables large)."""
    emb = sum(p.numel() for name, mod in model.named_modules()
              if isinstance(mod, torch.nn.Embedding) or name.split(".")[-1] == "head" for p in mod.parameters())
    return sum(p.numel() for p in model.parameters()) - emb


def match_lm_depth(fc, target: int):
    """The flat LM's depth whose parameters (all of them) are closest to ``target`` (parameters are linear in
    depth: two builds give the line)."""
    from ..config import derive
    from ..models import CausalLM

    p1, p2 = (sum(p.numel() for p in CausalLM(derive(fc, n_layers=n)).parameters()) for n in (1, 2))
    n = max(1, min(96, round(1 + (target - p1) / max(p2 - p1, 1))))
    return derive(fc, n_layers=n)


def step_flops(model, batch_size: int, context: int) -> float:
    """Training FLOPs of one step of ``model`` on a [batch_size, context] batch (counted)."""
    return flops_per_token(model, torch.zeros(batch_size, context, dtype=torch.long)) * batch_size * context
