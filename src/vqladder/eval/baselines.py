"""Reference rates for the compression question, all measured on the same held-out split.

* ``zstd_bits_per_token`` — zstd at its maximum level (22), on the whole held-out text and chunk by chunk
  (each chunk of ``in_len`` tokens compressed alone, as a compressor code must describe it);
* ``unigram_bits_per_token`` — a unigram model fitted on the train split (add-one smoothing);
* ``trivial_accuracy`` — always predicting the most frequent train token;
* ``lm_bits_per_token`` — a small trained causal LM's held-out cross-entropy on the same chunks, every one of
  a chunk's positions scored (the first against the train unigram): an *upper bound* on the entropy rate,
  measured by a small LM (a better LM lowers it), not a hard floor for exact reconstruction.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sampler import gather_windows, val_windows


def zstd_bits_per_token(tokenizer, tokens: np.ndarray, chunk: int, max_chunks: int = -1, level: int = 22) -> dict:
    import zstandard

    starts = val_windows(tokens, chunk, max_chunks)
    cctx = zstandard.ZstdCompressor(level=level)
    texts = [tokenizer.decode(tokens[s:s + chunk].tolist()).encode("utf-8") for s in starts]
    n_tok = len(starts) * chunk
    per_chunk = sum(len(cctx.compress(t)) for t in texts) * 8 / n_tok
    whole = len(cctx.compress(b"".join(texts))) * 8 / n_tok
    raw = sum(len(t) for t in texts) * 8 / n_tok
    return {"zstd_whole": whole, "zstd_chunk": per_chunk, "utf8_raw": raw}


def unigram_bits_per_token(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[np.asarray(val, dtype=np.int64)].mean())


def most_frequent_token(train: np.ndarray, vocab_size: int) -> int:
    """The most frequent token of the *train* split (the floors never look at val to pick it)."""
    return int(np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size).argmax())


def trivial_accuracy(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    return float((np.asarray(val) == most_frequent_token(train, vocab_size)).mean())


def unigram_logp(train: np.ndarray, vocab_size: int) -> np.ndarray:
    """Natural-log unigram probabilities fitted on the train split (add-one smoothing)."""
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size).astype(np.float64) + 1.0
    return np.log(counts / counts.sum())


@torch.no_grad()
def lm_bits_per_token(model, tokens: np.ndarray, chunk: int, max_chunks: int = -1, batch_size: int = 32,
                      first_logp: np.ndarray | None = None) -> float:
    """Held-out CE (bits per token) of a causal LM over each non-overlapping chunk. With ``first_logp`` (e.g.
    :func:`unigram_logp` of the train split) all ``chunk`` positions are scored, the first by it, so the
    per-chunk code length is complete; without, positions 1..chunk-1 only."""
    model.eval()
    device = next(model.parameters()).device
    starts = val_windows(tokens, chunk, max_chunks)
    tot, n = 0.0, 0
    for s in range(0, len(starts), batch_size):
        x = gather_windows(tokens, starts[s:s + batch_size], chunk).to(device)
        logits = model(x[:, :-1]).float()
        tot += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"))
        n += x[:, 1:].numel()
        if first_logp is not None:
            tot -= float(first_logp[x[:, 0].cpu().numpy()].sum())
            n += x.shape[0]
    return tot / n / math.log(2)
