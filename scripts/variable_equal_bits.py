"""Re-read a variable-length results table (``docs/variable/variable-*.md`` or a run's ``results.md``) and print
each variable row's ``fixed @ equal bits`` by time-sharing (``eval.variable.add_equal_bits``, accuracy linear in
bits/token between the two neighbouring fixed cells), beside the value the table shows. For tables made before
the equal-bits reading changed from log-rate interpolation to time-sharing, without re-training:

    python scripts/variable_equal_bits.py docs/variable/variable-synth.md
"""

import sys
from pathlib import Path

from vqladder.text.variable_eval import add_equal_bits


def rows_of(md: str) -> list[dict]:
    out = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] in ("fixed", "entropy", "learned"):
            out.append({"method": cells[0], "target": cells[1], "bits_per_token": float(cells[3]),
                        "acc": float(cells[5]), "shown": cells[6]})
    return out


def main(path: str) -> None:
    rows = rows_of(Path(path).read_text())
    if not rows:
        sys.exit(f"error: {path} has no variable-length results table")
    add_equal_bits(rows)
    print("| method | target | bits/token | acc | fixed @ equal bits, time-sharing | as the table shows |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["method"] != "fixed":
            print(f"| {r['method']} | {r['target']} | {r['bits_per_token']:.3f} | {r['acc']:.3f} | "
                  f"{r['fixed_acc_at_equal_bits']:.3f} | {r['shown']} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/variable/variable-synth.md")
