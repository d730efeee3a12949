"""The ladder's held-out evaluation: each level's reconstruction through its own decoder, code usage, the
hierarchical two-part code length against the flat LM, and samples from each path."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sampler import gather_windows, val_windows
from ..errors import VQLadderError
from ..ladder.ladder import Ladder
from ..models import CausalLM
from .metrics import evaluate_compressor


@torch.no_grad()
def _seq_nll(model_fn, stream: np.ndarray, window: int, max_windows: int, batch_size: int = 32) -> tuple[float, int]:
    """Sum of -log p (nats) over non-overlapping windows of ``stream`` and the number of symbols scored."""
    starts = val_windows(stream, window, max_windows)
    tot, n = 0.0, 0
    for s in range(0, len(starts), batch_size):
        x = gather_windows(stream, starts[s:s + batch_size], window)
        tot += float(-model_fn(x).sum())
        n += x.numel()
    return tot, n


def _lm_logprob(lm: CausalLM, x: torch.Tensor) -> torch.Tensor:
    """Per-window log p of every token of x under a causal LM: x[1:] given its prefix; the first token (no
    prefix: the LM has no BOS) under the softmax of the LM's mean logits over the batch, a unigram proxy. It is
    one token in ``context``, as the prior's first code of a window is scored from BOS alone."""
    logits = lm(x[:, :-1]).float()
    lp = F.log_softmax(logits, -1).gather(-1, x[:, 1:, None]).squeeze(-1).sum(1)
    first = F.log_softmax(logits.mean((0, 1)), -1)[x[:, 0]]
    return lp + first


def _windows(max_chunks: int, chunks_per_window: int) -> int:
    return 0 if max_chunks < 0 else max(1, max_chunks // max(chunks_per_window, 1))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x


@torch.no_grad()
def evaluate_ladder(ladder: Ladder, streams: dict, cfg, log=print) -> dict:
    """Per-level table, hierarchical vs flat bits/token and samples, on held-out text."""
    L = ladder.n_levels
    c0 = ladder.chunk_len(0)
    m_top = ladder.chunk_len(L)
    ctx = ladder.prior.config.context
    chunks_per_window = ctx // m_top
    n_top = len(streams[L][1]) // m_top
    if cfg.eval.max_chunks > 0:
        n_top = min(n_top, max(cfg.eval.max_chunks, chunks_per_window))
    n_top = n_top // chunks_per_window * chunks_per_window
    if n_top == 0:
        raise VQLadderError(f"the val split is shorter than one prior window of {chunks_per_window} top chunks "
                            f"({chunks_per_window * c0} tokens)")
    tokens = np.asarray(streams[0][1][:n_top * c0], dtype=np.int64)
    per_level = []
    for k in range(1, L + 1):
        lv = ladder.levels[k - 1]
        below = np.asarray(streams[k - 1][1][:n_top * ladder.chunk_len(k - 1)], dtype=np.int64)
        codes = np.asarray(streams[k][1][:n_top * ladder.chunk_len(k)], dtype=np.int64)
        rec = evaluate_compressor(lv, below, cfg.eval.batch_size, -1)
        vq_tokens = ladder.decode(codes, k, 0, method="vq")
        up_tokens = ladder.decode(codes, k, 0, method="upsample", temperature=0)
        per_level.append({
            "level": k, "vocab": ladder.vocab(k), "codes_per_chunk": ladder.chunk_len(k),
            "tokens_per_chunk": c0, "bits_per_token": ladder.bits_per_token(k),
            "recon_acc": rec["acc"], "recon_input": "tokens" if k == 1 else f"level {k - 1} codes",
            "e2e_acc_vq": float((vq_tokens == tokens).mean()),
            "e2e_acc_upsample": float((up_tokens == tokens).mean()),
            "usage": float(len(np.unique(codes)) / ladder.vocab(k)),
        })
        log(f"level {k}: {per_level[-1]}")
    # hierarchical code length: prior over top codes + each upsampler over its chunks
    top = torch.from_numpy(np.asarray(streams[L][1][:n_top * m_top], dtype=np.int64)).view(-1, ctx)
    bits = {}
    nats = 0.0
    for s in range(0, len(top), cfg.eval.batch_size):
        nats -= float(ladder.prior.log_prob(top[s:s + cfg.eval.batch_size]).sum())
    bits["prior"] = nats / math.log(2) / tokens.size
    for k in range(1, L + 1):
        lv = ladder.levels[k - 1].config
        low = torch.from_numpy(np.asarray(streams[k - 1][1][:n_top * ladder.chunk_len(k - 1)], dtype=np.int64))
        par = torch.from_numpy(np.asarray(streams[k][1][:n_top * ladder.chunk_len(k)], dtype=np.int64))
        low, par = low.view(-1, lv.in_len), par.view(-1, lv.out_len)
        nats = 0.0
        for s in range(0, len(low), cfg.eval.batch_size):
            nats -= float(ladder.upsamplers[k - 1].log_prob(par[s:s + cfg.eval.batch_size], low[s:s + cfg.eval.batch_size]).sum())
        bits[f"upsampler{k}"] = nats / math.log(2) / tokens.size
    hier = sum(bits.values())
    fctx = ladder.flat.config.context
    tot, n = _seq_nll(lambda x: _lm_logprob(ladder.flat, x), tokens, fctx, 0)
    flat_bits = tot / max(n, 1) / math.log(2)
    log(f"bits/token: hierarchical {hier:.3f} ({bits}), flat {flat_bits:.3f}")
    # samples
    e = cfg.eval
    samples = {"ladder_upsample": [], "ladder_vq": [], "flat": []}
    for i in range(e.samples):
        for method in ("upsample", "vq"):
            out = ladder.generate(None, e.sample_chunks, e.temperature, e.top_k, e.top_p, method=method, seed=i)
            samples[f"ladder_{method}"].append({"text": out.get("text", ""), "top_codes": out["levels"][L].tolist()})
        g = torch.Generator().manual_seed(i)
        from ..models.sampling import sample

        fl = ladder.flat
        n_tok = e.sample_chunks * c0
        seed_tok = torch.tensor([[ladder.pad_token()]])
        toks = sample(fl.step_fn(), 1, n_tok, e.temperature, e.top_k, e.top_p, prefix=seed_tok, generator=g)[0]
        samples["flat"].append({"text": ladder.text(toks.tolist())})
    return {"levels": per_level, "bits": {"hierarchical": hier, "components": bits, "flat": flat_bits},
            "held_out_tokens": int(tokens.size), "held_out_top_chunks": int(n_top), "samples": samples}
