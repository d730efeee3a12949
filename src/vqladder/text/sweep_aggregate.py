"""The sweep's aggregation: every finished cell's results read into one row (with its references and collapse
flag), written as ``sweep.csv``, ``sweep.md``, ``cells.json`` (what the report draws) and the plots."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..io import (
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_yaml_doc,
)
from ..models.compressor import is_local
from .sweep_report import COLLAPSE_USAGE, COLUMNS, markdown, plots


def collapsed(res: dict, out_len: int, depth: int = 1) -> bool:
    """Used codes < 5% of min(codebook size, held-out code positions). Normalising by the positions matters
    for big codebooks: 224 chunks x 16 codes can use at most 3,584 of 64,000 codes (5.6%) without collapse."""
    usage, k = res.get("usage"), res.get("codebook_size")
    if usage is None or not k:
        return False
    positions = res.get("chunks", 0) * out_len
    possible = min(k, positions) if positions else k
    return usage * k < COLLAPSE_USAGE * possible


def read_cells(sweep_dir: Path) -> list[dict]:
    rows = []
    for res_p in sorted((Path(sweep_dir) / "cells").glob("*/results.json")):
        run = res_p.parent
        res = read_json(res_p)
        if (run / "gist.json").is_file():  # written after training by the sweep's gist pass
            res.update(read_json(run / "gist.json"))
        cfg = read_yaml_doc(run / "config.yaml")
        m, q = cfg["model"], cfg["model"]["quantizer"]
        row = {"cell": run.name, "compression": m["in_len"] // m["out_len"], "out_len": m["out_len"],
               "codebook_size": res.get("codebook_size", q["codebook_size"]), "kind": q["kind"],
               "decoder": m.get("decoder", "parallel"), "depth": q.get("depth", 1), "seed": m.get("seed", 0),
               "rate_weight": m.get("rate_weight", 0.0),
               "arch": "local" if is_local(m) else m.get("downsample", "pool")}
        for k in COLUMNS:
            if k not in row:
                row[k] = res.get(k, "")
        if res.get("train_time") and res.get("tokens_seen"):
            row["tok_per_s"] = res["tokens_seen"] / res["train_time"]
        row["collapsed"] = collapsed(res, row["out_len"], row["depth"])
        rows.append(row)
    rows.sort(key=lambda r: (-r["out_len"], r["codebook_size"], r["kind"], r["decoder"], r["depth"], r["rate_weight"],
                             r["seed"]))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    atomic_write_text(path, buf.getvalue())


def aggregate(sweep_dir: str | Path, make_plots: bool = True) -> dict:
    """Write sweep.csv, sweep.md and plots/ for a sweep directory; returns {'rows', 'refs', 'markdown'}."""
    d = Path(sweep_dir)
    rows = read_cells(d)
    refs_p = d / "references.json"
    refs = read_json(refs_p) if refs_p.is_file() else {}
    write_csv(rows, d / "sweep.csv")
    atomic_write_json(d / "cells.json", [{k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                          for k, v in row.items()} for row in rows])
    md = markdown(rows, refs)
    atomic_write_text(d / "sweep.md", f"# Sweep {d.name}\n\n{md}")
    if make_plots and rows:
        plots(rows, refs, d / "plots")
    return {"rows": rows, "refs": refs, "markdown": md}
