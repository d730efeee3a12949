"""Metrics of a compressor on held-out chunks.

* ``acc``          token accuracy of the argmax reconstruction
* ``exact_match``  fraction of chunks reconstructed with every token right
* ``ce`` / ``ce_bits``  reconstruction cross-entropy per token (nats / bits)
* ``bits_per_token``  M * log2(K) / N, the rate of the code (x depth for residual codes); for a variable-rate
                      model the measured rate, boundaries included, and ``ratio`` (tokens per code)
* ``usage``, ``perplexity``, ``dead_codes``  over all held-out codes (dead = never used on the val set)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sampler import gather_windows, val_windows
from ..quantize.base import histogram_stats


@torch.no_grad()
def evaluate_compressor(model, tokens: np.ndarray, batch_size: int = 32, max_chunks: int = 256,
                        return_examples: int = 0, free_running_chunks: int = 32, tokenizer=None,
                        embed=None, gist_chunks: int = 100, frequent_token: int | None = None) -> dict:
    """Evaluate ``model`` (a SequenceCompressor) on non-overlapping chunks of ``tokens``.

    For an autoregressive decoder, ``acc`` / ``exact_match`` are teacher-forced and ``acc_free`` /
    ``exact_match_free`` come from greedy free-running decoding of the first ``free_running_chunks`` chunks.
    With a ``tokenizer``, the gist metrics of ``eval.gist`` (bag-of-words F1, order-free token recall) are
    added over ``gist_chunks`` chunks spread evenly over the evaluated ones, and with an ``embed`` function the
    embedding ones too (semantic similarity with its floors, retrieval top-1/top-5 among those chunks).
    With a rate model (``model.rate_layers``), ``rate_bits_per_token`` is the codes' actual rate under it.
    ``frequent_token`` is the most frequent *train* token, for the frequent-token floor (None: no such floor)."""
    was = model.training
    model.eval()
    n = model.config.in_len
    device = next(model.parameters()).device
    starts = val_windows(tokens, n, max_chunks)
    gist_at = set(np.floor(np.arange(min(gist_chunks, len(starts))) * (len(starts) / max(1, min(gist_chunks, len(
        starts))))).astype(int).tolist()) if tokenizer is not None else set()  # chunk indices, spread evenly
    K = model.quantizer.codebook_size
    hist = torch.zeros(K, device=device)
    tot_ce = tot_correct = tot_tokens = exact = chunks = 0.0
    free_correct = free_tokens = free_exact = free_chunks = 0.0
    ar = getattr(model, "autoregressive", False)
    seg_total = bits_total = 0.0  # variable-rate models: measured segments and bits (codes + boundaries)
    rated = getattr(model, "rate", None) is not None
    rate_nats = 0.0  # -log q of the codes under the compressor's own context model (rate_layers > 0)
    examples = []
    gist_pairs: list[tuple[list[int], list[int]]] = []
    for s in range(0, len(starts), batch_size):
        batch = gather_windows(tokens, starts[s:s + batch_size], n).to(device)
        logits, q = model(batch)
        logits = logits.float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.reshape(-1), reduction="sum")
        pred = logits.argmax(-1)
        right = pred == batch
        tot_ce += float(ce)
        tot_correct += float(right.sum())
        tot_tokens += batch.numel()
        exact += float(right.all(1).sum())
        chunks += batch.shape[0]
        codes = q.codes.reshape(-1) if q.codes.dim() == 2 else q.codes[..., 0].reshape(-1)
        if hasattr(q, "segments"):
            seg_total += float(q.segments.sum())
            bits_total += float(model.chunk_bits(q.segments).sum())
        hist += torch.bincount(codes, minlength=K).float()
        if rated:
            rate_nats += float(model.rate_nats(q.codes).sum())
        if ar and free_chunks < free_running_chunks:
            k = int(min(free_running_chunks - free_chunks, batch.shape[0]))
            gen, _ = model.generate(q.z_q[:k])
            ok = gen == batch[:k]
            free_correct += float(ok.sum())
            free_tokens += ok.numel()
            free_exact += float(ok.all(1).sum())
            free_chunks += k
            pred = torch.cat([gen, pred[k:]]) if k < batch.shape[0] else gen
        for i in range(batch.shape[0]):
            if s + i in gist_at:
                gist_pairs.append((batch[i].tolist(), pred[i].tolist()))
        if len(examples) < return_examples:
            for i in range(min(return_examples - len(examples), batch.shape[0])):
                row_codes = q.padded_codes[i] if hasattr(q, "padded_codes") else q.codes[i]
                examples.append((batch[i].tolist(), pred[i].tolist(), row_codes.tolist()))
    model.train(was)
    hs = histogram_stats(hist)
    res = {
        "acc": tot_correct / tot_tokens,
        "exact_match": exact / chunks,
        "ce": tot_ce / tot_tokens,
        "ce_bits": tot_ce / tot_tokens / math.log(2),
        "bits_per_token": model.bits_per_token,
        "usage": float(hs["usage"]),
        "perplexity": float(hs["perplexity"]),
        "dead_codes": int((hist == 0).sum()),
        "chunks": int(chunks),
    }
    if rated:  # the codes' actual rate under their context model, beside the nominal bits_per_token
        res["rate_bits_per_token"] = rate_nats / tot_tokens / math.log(2)
    if seg_total:
        res["bits_per_token"] = bits_total / tot_tokens
        res["ratio"] = tot_tokens / seg_total
    if ar:
        res["acc_free"] = free_correct / max(free_tokens, 1)
        res["exact_match_free"] = free_exact / max(free_chunks, 1)
    if tokenizer is not None and gist_pairs:
        from .gist import gist_metrics

        g = gist_metrics([tokenizer.decode(o) for o, _ in gist_pairs], [tokenizer.decode(r) for _, r in gist_pairs],
                         [o for o, _ in gist_pairs], [r for _, r in gist_pairs], embed=embed,
                         frequent_text=None if frequent_token is None else tokenizer.decode([frequent_token] * n))
        res.update({f"gist_{k}": v for k, v in g.items()})
    if return_examples:
        res["examples"] = examples
    return res
