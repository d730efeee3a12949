"""Synthetic token streams with known structure (no tokenizer: symbols are the tokens).

``mixed_spans``: alternating spans of *repetitive* tokens (a short random pattern repeated) and *random*
tokens (uniform over the vocabulary), with a per-token label. A content-adaptive compressor should spend
fewer codes per token on the repetitive spans: after one period they carry no new information.
"""

from __future__ import annotations

import numpy as np

from ..errors import VQLadderError

SYMBOLS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def mixed_spans(n_tokens: int, vocab: int = 64, seed: int = 0, span: tuple[int, int] = (16, 64),
                period: tuple[int, int] = (1, 4), p_repeat: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """-> (tokens[n] uint16, repetitive[n] bool). Span lengths uniform in ``span``, pattern periods uniform in
    ``period``; each span is repetitive with probability ``p_repeat``. Deterministic by ``seed``."""
    if n_tokens < 1 or vocab < 2 or not 1 <= span[0] <= span[1] or not 1 <= period[0] <= period[1]:
        raise VQLadderError(f"bad synthetic corpus: n_tokens={n_tokens}, vocab={vocab}, span={span}, period={period}")
    rng = np.random.default_rng(seed)
    toks, labels, total = [], [], 0
    while total < n_tokens:
        length = int(rng.integers(span[0], span[1] + 1))
        if rng.random() < p_repeat:
            pat = rng.integers(0, vocab, int(rng.integers(period[0], period[1] + 1)))
            toks.append(np.resize(pat, length))
            labels.append(np.ones(length, dtype=bool))
        else:
            toks.append(rng.integers(0, vocab, length))
            labels.append(np.zeros(length, dtype=bool))
        total += length
    return np.concatenate(toks)[:n_tokens].astype(np.uint16), np.concatenate(labels)[:n_tokens]


def render_symbols(tokens) -> str:
    """Synthetic tokens as printable characters (vocabularies up to 64)."""
    return "".join(SYMBOLS[int(t) % len(SYMBOLS)] for t in tokens)
