import csv
import json

import numpy as np
import pytest
import yaml
from helpers import tiny_run_config

from vqladder.config import build, save_yaml, to_dict
from vqladder.data import make_tokenizer, prepare
from vqladder.errors import VQLadderError
from vqladder.eval.baselines import trivial_accuracy, unigram_bits_per_token, zstd_bits_per_token
from vqladder.text.sweep import (
    SweepConfig,
    aggregate,
    cell_state,
    expand_grid,
    parse_budget,
    run_cells,
    run_sweep,
)


def sweep_cfg(tmp_path, data="data", **grid):
    base = to_dict(tiny_run_config(tmp_path / data, tmp_path, steps=20))
    return build(SweepConfig, {"name": "sw", "out_dir": str(tmp_path), "base": base, "budget": "20",
                               "grid": {"out_len": [16, 8], "codebook_size": [256], **grid},
                               "references": {"lm": False, "local_ae": False}})


def test_grid_expansion(tmp_path):
    cfg = sweep_cfg(tmp_path, codebook_size=[256, 1024], kind=["fsq", "vq"], seed=[0, 1])
    cells = expand_grid(cfg)
    assert len(cells) == 2 * 2 * 2 * 2
    names = [n for n, _ in cells]
    assert len(set(names)) == len(names) and "m016-k1024-vq-s1" in names
    c = dict(cells)["m008-k256-fsq-s1"]
    assert (c.model.out_len, c.model.quantizer.codebook_size, c.model.seed, c.train.seed, c.train.steps) == \
        (8, 256, 1, 1, 20)
    assert c.run_dir == tmp_path / "sw" / "cells" / "m008-k256-fsq-s1"


def test_grid_with_both_decoders_has_one_local_twin_per_rate_and_seed(tmp_path):
    from vqladder.config import build, to_dict

    cfg = sweep_cfg(tmp_path, decoder=["parallel", "autoregressive"], seed=[0, 1])
    d = to_dict(cfg)
    d["base"]["model"]["downsample"] = "pool"
    d["references"]["local_ae"] = True
    names = [n for n, _ in expand_grid(build(type(cfg), d))]
    assert len(names) == len(set(names)) == 2 * 2 * 2 + 2 * 2  # 8 cells, one twin per (out_len, seed)
    assert "m016-k256-fsq-ar-s1" in names and "m016-k256-fsq-s1-local" in names
    assert not any(n.endswith("-ar-s0-local") or n.endswith("-ar-s1-local") for n in names)


def test_autoregressive_cells_are_compared_by_their_free_running_accuracy():
    from vqladder.text.sweep_report import local_rows

    base = {"out_len": 16, "codebook_size": 256, "kind": "fsq", "depth": 1}
    groups = [{**base, "arch": "pool", "decoder": "autoregressive", "acc": 0.9, "acc_free": 0.2},
              {**base, "arch": "pool", "decoder": "parallel", "acc": 0.3, "acc_free": ""},
              {**base, "arch": "local", "decoder": "parallel", "acc": 0.25, "acc_free": ""}]
    deltas = {r["group"]["decoder"]: round(r["delta"], 3) for r in local_rows(groups)}
    assert deltas == {"autoregressive": -0.05, "parallel": 0.05}  # teacher-forced 0.9 would have read +0.65


def test_grid_rate_cap_keeps_cells_up_to_max_bits(tmp_path):
    # in_len 32; FSQ 256 -> 240 codes (7.9 bits): M=16 x depth 4 = 15.8 bits/token is above a cap of 8,
    # M=16 x depth 2 and M=8 x depth 4 (7.9) are not
    cfg = sweep_cfg(tmp_path, depth=[1, 2, 4], max_bits_per_token=8.0)
    names = sorted(n for n, _ in expand_grid(cfg))
    assert names == ["m008-k256-fsq-r2-s0", "m008-k256-fsq-r4-s0", "m008-k256-fsq-s0", "m016-k256-fsq-r2-s0",
                     "m016-k256-fsq-s0"]
    with pytest.raises(VQLadderError, match="max_bits_per_token"):
        expand_grid(sweep_cfg(tmp_path, max_bits_per_token=0.5))


def test_budget():
    assert parse_budget("600") == (600, None)
    assert parse_budget("10m") == (None, 600.0)
    assert parse_budget("90s") == (None, 90.0)
    with pytest.raises(VQLadderError, match="budget"):
        parse_budget("soon")


def test_empty_grid_and_impossible_cell_fail_first(tmp_path):
    with pytest.raises(VQLadderError, match="grid.out_len has no values"):
        expand_grid(sweep_cfg(tmp_path, out_len=[]))
    with pytest.raises(VQLadderError, match=r"sweep cell m005-k256-fsq-s0: .*not divisible"):
        run_sweep(sweep_cfg(tmp_path, out_len=[16, 5]), runner=lambda *a: pytest.fail("trained something"))
    assert not (tmp_path / "sw" / "cells").exists()


def _fake_results(run_dir, acc, usage=0.5, bits=1.0, out_len=16, k=256, local=False):
    from vqladder.io import own_dir

    own_dir(run_dir, "run")  # as `vqladder train` makes it
    cfg = to_dict(tiny_run_config("d", "o", out_len=out_len))
    cfg["model"]["quantizer"]["codebook_size"] = k
    if local:
        cfg["model"].update(downsample="segment", latent_layers=0, enc_layers=0, dec_layers=0)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run_dir / "results.json").write_text(json.dumps(
        {"acc": acc, "exact_match": 0.0, "ce_bits": 2.0, "usage": usage, "perplexity": 10.0, "dead_codes": 3,
         "bits_per_token": bits, "codebook_size": k, "step": 20, "tokens_seen": 100, "train_time": 1.0,
         "chunks": 100}))


def test_resume_skips_finished_cells(tmp_path):
    cfg = sweep_cfg(tmp_path)
    _fake_results(tmp_path / "sw" / "cells" / "m016-k256-fsq-s0", 0.9)
    for name, rc in expand_grid(cfg):  # the finished cell was made with the sweep's own cell config
        if name == "m016-k256-fsq-s0":
            save_yaml(rc, rc.run_dir / "config.yaml")
    from vqladder.io import own_dir

    own_dir(tmp_path / "sw" / "cells" / "m008-k256-fsq-s0", "run")  # in flight, no checkpoint: restart
    (tmp_path / "sw" / "cells" / "m008-k256-fsq-s0" / "metrics.jsonl").write_text("{}\n")
    ran = []

    def runner(path, resume, log):
        ran.append((path.stem, resume))
        _fake_results(path.parent / path.stem, 0.5, out_len=8)
        (path.parent / path.stem / "config.yaml").write_text(path.read_text())  # as `vqladder train` saves it
        return 0

    status = run_cells(cfg, runner)
    assert status == {"m016-k256-fsq-s0": "skipped", "m008-k256-fsq-s0": "trained"}
    assert ran == [("m008-k256-fsq-s0", False)]
    assert run_cells(cfg, runner) == {"m016-k256-fsq-s0": "skipped", "m008-k256-fsq-s0": "skipped"}
    assert len(ran) == 1


def test_aggregation_exact_table(tmp_path):
    d = tmp_path / "sw"
    _fake_results(d / "cells" / "m016-k256-fsq-s0", 0.75, bits=2.0)
    _fake_results(d / "cells" / "m008-k256-fsq-s0", 0.25, usage=0.01, bits=1.0, out_len=8)
    # 64000 codes but only 100 x 16 held-out positions: 3% usage is 1,920 distinct codes, not a collapse
    _fake_results(d / "cells" / "m016-k64000-fsq-s0", 0.8, usage=0.03, bits=3.0, k=64000)
    (d / "references.json").write_text(json.dumps({"lm_bits": 4.0, "lm_params": 1000, "lm_steps": 10, "in_len": 32,
                                                   "zstd_whole": 3.0, "zstd_chunk": 5.0, "unigram_bits": 6.0,
                                                   "utf8_raw": 8.0, "trivial_acc": 0.125}))
    out = aggregate(d)
    rows = list(csv.DictReader((d / "sweep.csv").open()))
    assert [r["cell"] for r in rows] == ["m016-k256-fsq-s0", "m016-k64000-fsq-s0", "m008-k256-fsq-s0"]
    assert [r["collapsed"] for r in rows] == ["False", "False", "True"]
    md = out["markdown"].splitlines()
    assert "| 16 | 2x | 256 | fsq | parallel | 2.000 | 0.50 | 0.750 | 0.000 | 2.000 | 0.500 | 10.0 | 1 |  |" in md
    assert "| 8 | 4x | 256 | fsq | parallel | 1.000 | 0.25 | 0.250 | 0.000 | 2.000 | 0.010 | 10.0 | 1 | " \
           "COLLAPSED (< 5% of possible codes used) |" in md
    assert "| causal LM (1,000 params, 10 steps) | 4.000 | held-out cross-entropy within 32-token chunks " \
           "(positions 2.. of each chunk): an upper bound on the entropy rate, measured by a small LM |" in md
    assert any("0.125" in l for l in md)
    assert "| 16 | none in this grid (best acc 0.800) | – |" in md
    assert (d / "plots" / "acc_vs_bits.png").stat().st_size > 1000
    assert (d / "plots" / "heatmap_acc.png").is_file() and (d / "plots" / "usage.png").is_file()


def test_references_on_planted_corpora(tmp_path):
    tok = make_tokenizer("bytes")
    rng = np.random.default_rng(0)
    uniform = rng.integers(97, 97 + 16, size=20_000).astype(np.uint16)  # 16 letters, uniform: 4 bits each
    assert unigram_bits_per_token(uniform[:10_000], uniform[10_000:], 256) == pytest.approx(4.0, abs=0.05)
    rep = np.frombuffer(b"abcdefgh" * 2000, dtype=np.uint8).astype(np.uint16)
    z = zstd_bits_per_token(tok, rep, 256)
    assert z["zstd_whole"] < 0.05 and z["utf8_raw"] == pytest.approx(8.0)
    zr = zstd_bits_per_token(tok, uniform, 256)
    assert 3.9 < zr["zstd_whole"] < 6  # no compressor beats the 4-bit entropy of uniform letters
    assert trivial_accuracy(rep, rep, 256) == pytest.approx(1 / 8)


def test_most_frequent_token_floor_takes_its_token_from_train():
    """Issue #15: the floor's token comes from the train split; val's own most frequent token would score 0.8."""
    train = np.array([1] * 90 + [2] * 10, dtype=np.uint16)
    val = np.array([2] * 80 + [1] * 20, dtype=np.uint16)
    assert trivial_accuracy(train, val, 4) == pytest.approx(0.2)


def test_lm_reference_learns_a_repetitive_corpus(tmp_path):

    from vqladder.data import WindowSampler
    from vqladder.eval.baselines import lm_bits_per_token
    from vqladder.models import CausalLM, LMConfig
    from vqladder.train import Trainer, TrainerConfig

    rep = np.frombuffer(b"the cat sat on the mat. " * 400, dtype=np.uint8).astype(np.uint16)
    lm = CausalLM(LMConfig(vocab_size=256, context=32, d_model=32, n_heads=2, n_layers=1))
    cfg = TrainerConfig(steps=60, batch_size=8, lr=1e-2, warmup=5, progress=False, eval_every=-1, ckpt_every=-1,
                        precision="fp32")
    before = lm_bits_per_token(lm, rep, 32)
    Trainer(lm, cfg, tmp_path / "lm", lambda r, w: WindowSampler(rep, 32, 8, 0, r, w)).fit()
    after = lm_bits_per_token(lm, rep, 32)
    assert before > 7 and after < 0.5


@pytest.mark.slow  # a whole sweep; the cell/resume/aggregation tests are the fast ones
def test_micro_sweep_end_to_end(tmp_path, tiny_corpus):
    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512)
    cfg = sweep_cfg(tmp_path)
    cfg.references.lm = True
    cfg.references.lm_model.d_model, cfg.references.lm_model.n_heads, cfg.references.lm_model.n_layers = 32, 2, 1
    cfg.references.lm_train.steps = 20
    cfg.references.lm_train.batch_size = 8
    d = run_sweep(cfg)
    rows = list(csv.DictReader((d / "sweep.csv").open()))
    # cells are named by the requested codebook (256); FSQ's recommended levels give 240 codes
    assert {r["cell"] for r in rows} == {"m016-k256-fsq-s0", "m008-k256-fsq-s0"}
    assert {int(r["codebook_size"]) for r in rows} == {240}
    refs = json.loads((d / "references.json").read_text())
    assert 0 < refs["lm_bits"] < 9 and refs["zstd_chunk"] > refs["zstd_whole"]
    assert "References" in (d / "sweep.md").read_text()
    assert cell_state(d / "cells" / "m016-k256-fsq-s0") == "done"


@pytest.mark.slow  # gist metrics over a whole sweep; tests/test_gist.py is the fast one
def test_gist_pass_and_report(tmp_path, tiny_corpus):
    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512)
    cfg = sweep_cfg(tmp_path, out_len=[8])
    cfg.gist_chunks = 8
    run_sweep(cfg)
    from test_gist import bag_embed

    from vqladder.text.sweep import gist_pass

    assert gist_pass(cfg, embed=bag_embed) == 1
    assert gist_pass(cfg, embed=bag_embed) == 0  # cached
    g = json.loads((tmp_path / "sw" / "cells" / "m008-k256-fsq-s0" / "gist.json").read_text())
    assert g["gist_retrieval_pool"] == 8 and 0 <= g["gist_semantic"] <= 1.0001
    md = aggregate(tmp_path / "sw")["markdown"]
    assert "## Gist: what the reconstructions keep" in md


def test_lm_bits_score_every_position_with_the_unigram_first():
    """A planted LM: uniform over 4 symbols at every position; the first position is scored by the unigram."""
    import math

    import torch

    from vqladder.eval.baselines import lm_bits_per_token, unigram_logp

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.zeros(*x.shape, 4) + self.w

    tokens = np.array([0, 1, 2, 3] * 8, dtype=np.uint16)  # 4 chunks of 8
    train = np.array([0] * 5 + [1, 2, 3], dtype=np.uint16)  # add-one counts 6, 2, 2, 2 of 12
    lp = unigram_logp(train, 4)
    assert lm_bits_per_token(Uniform(), tokens, 8) == pytest.approx(2.0)  # positions 2..8 only
    # all 8 positions: 7 x 2 bits + the first token (always 0) at -log2(6/12) = 1 bit
    assert lm_bits_per_token(Uniform(), tokens, 8, first_logp=lp) == pytest.approx((7 * 2 + 1) / 8)
    assert lp[0] == pytest.approx(math.log(0.5))


def test_lm_reference_checkpoint_is_chosen_on_held_back_train_text(tmp_path, tiny_corpus):
    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512)
    cfg = sweep_cfg(tmp_path)
    cfg.references.lm = True
    m, t = cfg.references.lm_model, cfg.references.lm_train
    m.d_model, m.n_heads, m.n_layers = 32, 2, 1
    t.steps, t.batch_size, t.eval_every, t.lr = 30, 8, 10, 3e-3
    from vqladder.data import TokenShards
    from vqladder.text.reference import train_lm_reference

    ref = train_lm_reference(m, t, TokenShards(tmp_path / "data"), 32, 16, cfg.references.dev_fraction,
                             tmp_path / "sw" / "references" / "lm")
    logged = [json.loads(l) for l in (tmp_path / "sw" / "references" / "lm" / "metrics.jsonl").read_text().splitlines()]
    dev = {r["step"]: r["val_dev_bits"] for r in logged if "val_dev_bits" in r}
    assert sorted(dev) == [10, 20, 30] and ref["lm_steps"] == min(dev, key=dev.get)
    assert ref["lm_dev_bits"] == dev[ref["lm_steps"]] and ref["lm_positions"] == "all" and 0 < ref["lm_bits"] < 8
    assert not any(k.startswith("val_bits") for r in logged for k in r)  # val never seen while training


def test_every_cell_gets_a_local_autoencoder_twin(tmp_path):
    cfg = sweep_cfg(tmp_path, seed=[0, 1])
    cfg.references.local_ae = True
    cells = dict(expand_grid(cfg))
    assert len(cells) == 2 * 2 * 2
    twin, cell = cells["m008-k256-fsq-s1-local"], cells["m008-k256-fsq-s1"]
    m = twin.model
    assert (m.downsample, m.latent_layers, m.enc_layers, m.dec_layers, m.seg_layers) == ("segment", 0, 0, 0, 3)
    assert (m.out_len, m.quantizer.codebook_size, m.seed, twin.train.seed, twin.train.steps) == \
        (cell.model.out_len, cell.model.quantizer.codebook_size, 1, 1, cell.train.steps)
    assert twin.run_dir == tmp_path / "sw" / "cells" / "m008-k256-fsq-s1-local"
    # a grid whose compressor is itself local has no twin
    cfg.base.model.downsample, cfg.base.model.latent_layers = "segment", 0
    cfg.base.model.enc_layers = cfg.base.model.dec_layers = 0
    assert not any(n.endswith("-local") for n, _ in expand_grid(cfg))


def test_report_sets_each_cell_beside_its_local_twin(tmp_path):
    d = tmp_path / "sw"
    _fake_results(d / "cells" / "m016-k256-fsq-s0", 0.75, bits=2.0)
    _fake_results(d / "cells" / "m016-k256-fsq-s0-local", 0.70, bits=2.0, local=True)
    out = aggregate(d)
    md = out["markdown"]
    assert "| 16 | 256 | fsq | parallel | 2.000 | 0.750 | 0.700 | +0.050 | 100 | 100 |" in md
    cells_table = md.split("## Against")[0]
    assert cells_table.count("| 16 | 2x |") == 1  # the twin is not a row of the cells table
    rows = {r["cell"]: r for r in csv.DictReader((d / "sweep.csv").open())}
    assert rows["m016-k256-fsq-s0-local"]["arch"] == "local" and rows["m016-k256-fsq-s0"]["arch"] == "pool"
