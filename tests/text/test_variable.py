"""``vqladder.text.variable``: the variable-length experiment end to end, fixed codes at equal bits."""

from __future__ import annotations

import math

import pytest

from vqladder.errors import VQLadderError


def test_variable_experiment_end_to_end(tmp_path):
    from vqladder.config import load_config
    from vqladder.text.variable import VariableExpConfig, run_variable

    cfg = load_config(VariableExpConfig, None, [
        f"out_dir={tmp_path}", "name=v", "synthetic.enabled=true", "synthetic.tokens=6000", "chunk=16",
        "targets=[2,4]", "model.d_model=32", "model.enc_layers=1", "model.dec_layers=1",
        "model.quantizer.codebook_size=256", "entropy_lm.d_model=32", "entropy_lm.n_layers=1",
        "train.steps=6", "train.batch_size=8", "train.ckpt_every=3", "entropy_lm_train.steps=6",
        "entropy_lm_train.batch_size=8", "eval.max_chunks=16", "render_chunks=2"])
    res = run_variable(cfg, log=lambda m: None)
    d = tmp_path / "v"
    assert len(res["rows"]) == 6
    for r in res["rows"]:
        assert r["ratio"] > 0 and "codes_per_token_random" in r
        if r["method"] == "fixed":
            assert r["ratio"] == pytest.approx(r["target"]) and r["codes_per_token_random"] == pytest.approx(1 / r["target"])
    for f in ("results.md", "results.json", "ratio_over_training.png", "acc_vs_bits.png", "boundaries.html"):
        assert (d / f).is_file(), f
    assert "<span" in (d / "boundaries.html").read_text()
    # resumable: a second call trains nothing; a changed model config is refused
    before = (d / "fixed-r2" / "results.json").stat().st_mtime_ns
    run_variable(cfg, log=lambda m: None)
    assert (d / "fixed-r2" / "results.json").stat().st_mtime_ns == before
    cfg.model.d_model = 64
    with pytest.raises(VQLadderError, match="another config"):
        run_variable(cfg, log=lambda m: None)


def test_fixed_at_equal_bits_is_time_sharing():
    """Two fixed cells at 1 and 4 bits/token (acc 0.2 and 0.8); a variable cell at 2 bits/token is compared
    with coding 2/3 of the chunks at 1 bit and 1/3 at 4 bits: acc 0.2 + (2 - 1) / 3 x 0.6 = 0.4 (interpolating
    in log2-rate would have said 0.5, above what the fixed models can reach)."""
    from vqladder.text.variable_eval import add_equal_bits

    rows = [{"method": "fixed", "bits_per_token": 1.0, "acc": 0.2}, {"method": "fixed", "bits_per_token": 4.0, "acc": 0.8},
            {"method": "entropy", "bits_per_token": 2.0, "acc": 0.45}, {"method": "learned", "bits_per_token": 5.0, "acc": 0.9}]
    add_equal_bits(rows)
    assert rows[2]["fixed_acc_at_equal_bits"] == pytest.approx(0.4)
    assert math.isnan(rows[3]["fixed_acc_at_equal_bits"]) and "fixed_acc_at_equal_bits" not in rows[0]

