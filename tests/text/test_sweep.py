"""``vqladder.text.sweep`` (and its config and aggregation): grids, budgets, resumption, local twins, the table."""

import csv
import json

import pytest
import yaml
from helpers import sweep_cfg, tiny_run_config

from vqladder.config import build, save_yaml, to_dict
from vqladder.data import prepare
from vqladder.errors import VQLadderError
from vqladder.text.sweep import (
    aggregate,
    cell_state,
    expand_grid,
    parse_budget,
    run_cells,
    run_sweep,
)


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
    from vqladder.config import to_dict

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


@pytest.mark.slow  # gist metrics over a whole sweep; tests/eval/test_gist.py is the fast one
def test_gist_pass_and_report(tmp_path, tiny_corpus):
    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512)
    cfg = sweep_cfg(tmp_path, out_len=[8])
    cfg.gist_chunks = 8
    run_sweep(cfg)
    from helpers import bag_embed

    from vqladder.text.sweep import gist_pass

    assert gist_pass(cfg, embed=bag_embed) == 1
    assert gist_pass(cfg, embed=bag_embed) == 0  # cached
    g = json.loads((tmp_path / "sw" / "cells" / "m008-k256-fsq-s0" / "gist.json").read_text())
    assert g["gist_retrieval_pool"] == 8 and 0 <= g["gist_semantic"] <= 1.0001
    md = aggregate(tmp_path / "sw")["markdown"]
    assert "## Gist: what the reconstructions keep" in md


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

