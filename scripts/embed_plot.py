"""One recall-vs-bytes plot from several embedding runs on the same data and split.

    python scripts/embed_plot.py runs/embed-minilm runs/embed-minilm-64 runs/embed-minilm-lsq16 \
        --out docs/embed/recall_vs_bytes.png

``vqladder embed eval`` plots each run on its own; a budget or a method run separately (a 64-byte run, FAISS LSQ
at 16 bytes) joins the main run's plot here. The runs must share the data (texts, model, corpora) and the split
(database, queries, training rows); a method at a budget is taken from the first run that has it, never averaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SAME = ("texts", "model", "corpora", "database", "queries", "train", "metric")


def merge(results: list[dict]) -> list[dict]:
    """The rows of ``results`` (results.json dicts), each (method, bytes) from the first run that measured it;
    ValueError if two runs differ in data or split."""
    first = results[0]
    for r in results[1:]:
        diff = [k for k in SAME if r.get(k) != first.get(k)]
        if diff:
            raise ValueError(f"runs differ in {', '.join(diff)}: not the same benchmark")
    rows, seen = [], set()
    for res in results:
        for row in res["rows"]:
            key = (row["method"], row["bytes"])
            if "note" in row or key in seen:
                continue
            seen.add(key)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories of `vqladder embed eval` (each with results.json)")
    p.add_argument("--out", required=True, help="the PNG to write")
    args = p.parse_args(argv)
    try:
        results = [json.loads((Path(d) / "results.json").read_text()) for d in args.runs]
        rows = merge(results)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from vqladder.embed.report import plot_recall

    plot_recall({"rows": rows}, Path(args.out))
    print(f"{len(rows)} points from {len(args.runs)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
