"""``vqladder.text.sweep`` (and its config and aggregation): grids, budgets, resumption, local twins, the table."""

import csv
import json

import pytest
from helpers import fake_cell_results, sweep_cfg

from vqladder.config import save_yaml
from vqladder.data import prepare
from vqladder.text.sweep import (
    aggregate,
    cell_state,
    expand_grid,
    run_cells,
    run_sweep,
)


def test_resume_skips_finished_cells(tmp_path):
    cfg = sweep_cfg(tmp_path)
    fake_cell_results(tmp_path / "sw" / "cells" / "m016-k256-fsq-s0", 0.9)
    for name, rc in expand_grid(cfg):  # the finished cell was made with the sweep's own cell config
        if name == "m016-k256-fsq-s0":
            save_yaml(rc, rc.run_dir / "config.yaml")
    from vqladder.io import own_dir

    own_dir(tmp_path / "sw" / "cells" / "m008-k256-fsq-s0", "run")  # in flight, no checkpoint: restart
    (tmp_path / "sw" / "cells" / "m008-k256-fsq-s0" / "metrics.jsonl").write_text("{}\n")
    ran = []

    def runner(path, resume, log):
        ran.append((path.stem, resume))
        fake_cell_results(path.parent / path.stem, 0.5, out_len=8)
        (path.parent / path.stem / "config.yaml").write_text(path.read_text())  # as `vqladder train` saves it
        return 0

    status = run_cells(cfg, runner)
    assert status == {"m016-k256-fsq-s0": "skipped", "m008-k256-fsq-s0": "trained"}
    assert ran == [("m008-k256-fsq-s0", False)]
    assert run_cells(cfg, runner) == {"m016-k256-fsq-s0": "skipped", "m008-k256-fsq-s0": "skipped"}
    assert len(ran) == 1


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


