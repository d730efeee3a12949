"""Variable-length codes over seeds: mean ± std (sample std) of each cell of several ``vqladder variable`` runs.

    vqladder variable configs/variable_cpu.yaml name=variable-synth synthetic.enabled=true        # seed 0
    vqladder variable configs/variable_cpu.yaml name=variable-synth-s1 synthetic.enabled=true \\
        model.seed=1 train.seed=1 entropy_lm.seed=1 entropy_lm_train.seed=1 'methods=[fixed,entropy]'
    python scripts/variable_seeds.py docs/variable/variable-synth.md docs/variable/variable-synth-s1.md \\
        docs/variable/variable-synth-s2.md

Reads each run's ``results.md`` (or its copy under docs/variable/): the cell table (method, target ratio, achieved
ratio, bits/token, boundary bits, accuracy, fixed @ equal bits) and the codes-per-token table (random / repetitive
spans). Prints one row per (method, target) with the number of runs that have it; a cell a run did not train is
left out of that row's statistics.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ladder_seeds import _ms  # noqa: E402  (one mean ± std for every seeds table)


def _num(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of ``text`` as rows of cells (header and separator dropped)."""
    out, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            out.append([r for r in cur[2:]])
            cur = []
    return out


def read_run(path: Path) -> dict:
    """{(method, target): {"acc", "fixed_at", "bits", "ratio_rand_rep"}} of one run's page."""
    t = tables(path.read_text())
    if len(t) < 2:
        raise ValueError(f"{path}: not a variable-length results page (its cell tables are missing)")
    cells = {}
    for r in t[0]:
        cells[(r[0], r[1])] = {"bits": _num(r[3]), "acc": _num(r[5]), "fixed_at": _num(r[6])}
    for r in t[1]:
        if (r[0], r[1]) in cells:
            cells[(r[0], r[1])]["ratio_rand_rep"] = _num(r[4])
    return cells


def main(paths: list[str]) -> int:
    try:
        runs = [read_run(Path(p)) for p in paths]
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = sorted({k for r in runs for k in r}, key=lambda k: (float(k[1]), ["fixed", "entropy", "learned"].index(k[0])
                                                            if k[0] in ("fixed", "entropy", "learned") else 9))
    print(f"{len(runs)} runs: " + ", ".join(paths))
    print()
    print("| method | target ratio | runs | bits/token | acc | fixed @ equal bits | acc - fixed @ equal bits | "
          "codes/token random / repetitive |")
    print("|---|---|---|---|---|---|---|---|")
    for k in keys:
        rows = [r[k] for r in runs if k in r]
        col = lambda name: _ms([x[name] for x in rows if x.get(name) is not None])  # noqa: E731
        gap = _ms([x["acc"] - x["fixed_at"] for x in rows if x.get("fixed_at") is not None])
        print(f"| {k[0]} | {k[1]} | {len(rows)} | {col('bits')} | {col('acc')} | {col('fixed_at')} | {gap} | "
              f"{col('ratio_rand_rep')} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(print(__doc__) or 2)
    sys.exit(main(sys.argv[1:]))
