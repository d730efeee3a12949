"""``vqladder.video.probes``: a probe recovers a planted linear relation."""

from __future__ import annotations

import numpy as np


def test_probe_recovers_a_planted_linear_relation():
    from vqladder.video.probes import r2, ridge_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 40))
    w = rng.normal(size=(40, 3))
    y = x @ w + 0.05 * rng.normal(size=(600, 3))
    pred = ridge_probe(x[:500], y[:500], x[500:])
    assert r2(y[500:], pred) > 0.99
    noise = rng.normal(size=(600, 2))                      # nothing to find: R^2 near zero, not high
    assert r2(noise[500:], ridge_probe(x[:500], noise[:500], x[500:])) < 0.1
    wide = rng.normal(size=(100, 300))                     # more features than rows: the dual form ...
    yw = wide[:, :2] * 2.0
    mu, sd = wide[:80].mean(0), wide[:80].std(0) + 1e-6
    a, b = (wide[:80] - mu) / sd, (wide[80:] - mu) / sd
    primal = b @ np.linalg.solve(a.T @ a + 3.0 * np.eye(300), a.T @ (yw[:80] - yw[:80].mean(0))) + yw[:80].mean(0)
    assert np.allclose(ridge_probe(wide[:80], yw[:80], wide[80:], l2=3.0), primal, atol=1e-6)  # ... = the primal

