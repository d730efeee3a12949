"""``vqladder.models.sampling``: beam search, budgets, top-k / top-p."""

import itertools
import math

import pytest
import torch

from vqladder.errors import VQLadderError
from vqladder.models.sampling import beam_search, filter_logits, sample


def _planted_table():
    """A 3-symbol, 3-step distribution where greedy decoding is not the most likely sequence."""
    def fn(prefix):
        rows = []
        for p in prefix.tolist():
            if len(p) == 0:
                rows.append([0.6, 0.4, 0.0])          # greedy takes 0 …
            elif p[0] == 0:
                rows.append([0.34, 0.33, 0.33])       # … then everything is flat
            else:
                rows.append([0.0, 0.0, 1.0])          # 1 is followed by certain 2s: p(1,2,2) = 0.4
        return torch.tensor(rows).clamp_min(1e-9).log()
    return fn


def test_beam_search_finds_the_best_sequence_greedy_misses():
    fn = _planted_table()
    greedy = beam_search(fn, 3, beam_width=1)
    best = beam_search(fn, 3, beam_width=3)
    # exhaustive check
    scores = {s: sum(float(fn(torch.tensor([s[:i]]))[0, s[i]]) for i in range(3))
              for s in itertools.product(range(3), repeat=3)}
    top = max(scores, key=scores.get)
    assert tuple(best.sequence.tolist()) == top == (1, 2, 2)
    assert tuple(greedy.sequence.tolist()) != top
    assert best.logprob == pytest.approx(math.log(0.4), rel=1e-4)


def test_beam_search_respects_budget_and_scorer():
    fn = _planted_table()
    for budget in (3, 4, 5, 7, 9):
        res = beam_search(fn, 3, beam_width=3, max_evals=budget)
        assert res.evaluations <= budget
    with pytest.raises(VQLadderError, match="budget"):
        beam_search(fn, 3, beam_width=3, max_evals=2)
    # a scorer that rewards symbol 0 everywhere overrides the likelihood
    res = beam_search(fn, 3, beam_width=3, scorer=lambda s: (s == 0).float().sum(1) * 100)
    assert res.sequence.tolist() == [0, 0, 0]


def test_filter_logits_top_k_top_p():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    p = logits.softmax(-1)[0]
    kept = ~torch.isinf(filter_logits(logits, top_p=float(p[0]) + 0.01)[0])
    assert kept.tolist() == [True, True, False, False]
    g = torch.Generator().manual_seed(0)
    out = sample(lambda pre: logits.expand(pre.shape[0], -1), 64, 5, top_k=1, generator=g)
    assert (out == 0).all()

