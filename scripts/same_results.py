"""Do two runs of an experiment give the same numbers? ``python scripts/same_results.py OLD/results.json
NEW/results.json``: compares every value except timings (keys naming seconds, times, rates per second, MFU),
NaN equal to NaN; prints each difference and exits 1 if there is one."""

from __future__ import annotations

import json
import math
import sys

TIMING = ("time", "seconds", "_s", "per_s", "ms_per", "mfu", "wall")


def differences(a, b, path: str = ""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if not any(t in k for t in TIMING):
                yield from differences(a.get(k), b.get(k), f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}[{i}]")
    elif not (a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))):
        yield path, a, b


def main(argv: list[str]) -> int:
    old, new = (json.load(open(p)) for p in argv[:2])
    diff = list(differences(old, new))
    for path, a, b in diff:
        print(f"{path}: {a!r} -> {b!r}")
    print(f"{len(diff)} differences" if diff else "same numbers (timings aside)")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
