"""``vqladder.text.sweep_aggregate``: the cells read into one exact table."""

import csv
import json

from helpers import fake_cell_results

from vqladder.text.sweep import (
    aggregate,
)


def test_aggregation_exact_table(tmp_path):
    d = tmp_path / "sw"
    fake_cell_results(d / "cells" / "m016-k256-fsq-s0", 0.75, bits=2.0)
    fake_cell_results(d / "cells" / "m008-k256-fsq-s0", 0.25, usage=0.01, bits=1.0, out_len=8)
    # 64000 codes but only 100 x 16 held-out positions: 3% usage is 1,920 distinct codes, not a collapse
    fake_cell_results(d / "cells" / "m016-k64000-fsq-s0", 0.8, usage=0.03, bits=3.0, k=64000)
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


def test_report_sets_each_cell_beside_its_local_twin(tmp_path):
    d = tmp_path / "sw"
    fake_cell_results(d / "cells" / "m016-k256-fsq-s0", 0.75, bits=2.0)
    fake_cell_results(d / "cells" / "m016-k256-fsq-s0-local", 0.70, bits=2.0, local=True)
    out = aggregate(d)
    md = out["markdown"]
    assert "| 16 | 256 | fsq | parallel | 2.000 | 0.750 | 0.700 | +0.050 | 100 | 100 |" in md
    cells_table = md.split("## Against")[0]
    assert cells_table.count("| 16 | 2x |") == 1  # the twin is not a row of the cells table
    rows = {r["cell"]: r for r in csv.DictReader((d / "sweep.csv").open())}
    assert rows["m016-k256-fsq-s0-local"]["arch"] == "local" and rows["m016-k256-fsq-s0"]["arch"] == "pool"
