"""``vqladder.data.synthetic``: the labelled synthetic corpus of the variable-length experiment."""

from __future__ import annotations

import numpy as np

from vqladder.data.synthetic import mixed_spans


def test_synthetic_corpus_is_deterministic_and_labelled():
    a, la = mixed_spans(5000, seed=7)
    b, lb = mixed_spans(5000, seed=7)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, mixed_spans(5000, seed=8)[0])
    assert 0.3 < la.mean() < 0.7 and a.max() < 64

