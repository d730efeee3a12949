"""One planning experiment from seeds run as separate experiments (one per core, say).

    vqladder plan-experiment configs/plan_endstate_6x6.yaml name=plan-endstate-6x6-s0 "seeds=[0]"   # and 1, 2
    python scripts/plan_seeds.py runs/plan-endstate-6x6 runs/plan-endstate-6x6-s0 runs/plan-endstate-6x6-s1 \\
        runs/plan-endstate-6x6-s2

The sources must share their config (all but ``name`` and ``seeds``) and their demonstrations and tasks
(``data.npz``, byte for byte) and hold different seeds; the target must not exist. The seed directories are
copied (the sources stay as they are) and the experiment re-reads them into one ``results.{json,md}`` with every
table over the seeds (validated choices: highest mean validation success over all the seeds). Nothing trains or
searches again unless a source lacks it. ``key=value`` arguments change the combined config where its stages
allow it, for example ``search.validation=false`` (do not search the validation tasks).
"""

from __future__ import annotations

import sys

from vqladder.errors import VQLadderError
from vqladder.planning.recipe import combine_seeds


def main(argv: list[str]) -> int:
    over = [a for a in argv if "=" in a]
    paths = [a for a in argv if "=" not in a]
    if len(paths) < 2 or any(a.startswith("-") for a in argv):
        print("usage: python scripts/plan_seeds.py TARGET SOURCE [SOURCE ...] [key=value ...]", file=sys.stderr)
        return 2
    try:
        combine_seeds(paths[0], paths[1:], overrides=over)
    except VQLadderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"written in {paths[0]}: results.json, results.md, success_vs_budget.png, success_vs_length.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
