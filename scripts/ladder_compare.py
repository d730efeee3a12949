"""The README's ladder tables: several ladder runs side by side, from their results.json.

    python scripts/ladder_compare.py runs/ladder-text runs/ladder-multi-exit runs/ladder-codes runs/ladder-text-small

Prints markdown: per-level held-out token accuracy (decoded to tokens through the VQ decoders: a text level's own
decoder; a codes level down the decoders below it) with the
most-frequent-token floor, the two-part code length against the matched flat LM, each upsampler's code value (bits
with the true codes, another chunk's and none; greedy accuracy; the codes' actual rate under the level above) where
the run measured it, and generation speed with sample quality under each run's judge LM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _train_minutes(r: dict) -> str:
    st = r.get("stages", {})
    hier = sum(x.get("train_time", 0.0) for k in ("levels", "upsamplers") for x in st.get(k, [])) + \
        st.get("prior", {}).get("train_time", 0.0)
    flat, judge = st.get("flat", {}).get("train_time", 0.0), st.get("judge", {}).get("train_time", 0.0)
    return f"{hier / 60:.0f} + {flat / 60:.0f} + {judge / 60:.0f} min"


def _num(x) -> str:
    """A number to three places; '-' for one a run did not measure (a level without a parallel decoder)."""
    return f"{x:.3f}" if isinstance(x, (int, float)) else "-"


def best_rival(r: dict) -> dict | None:
    """A ladder's best flat rival: its row of results.json (bits, d_model, n_layers, ...); None without rivals."""
    return min(r["bits"].get("flat_rivals") or [], key=lambda v: v["bits"], default=None)


def load_runs(dirs: list[str]) -> list[tuple[str, dict]] | None:
    """(name, results.json) of each ladder directory; None (and one line on stderr) when one has no results."""
    runs = []
    for d in dirs:
        p = Path(d) / "results.json"
        if not p.is_file():
            print(f"error: {p} does not exist (train the ladder first)", file=sys.stderr)
            return None
        runs.append((Path(d).name, json.loads(p.read_text())))
    return runs


def main(dirs: list[str]) -> int:
    runs = load_runs(dirs)
    if runs is None:
        return 2
    print("| ladder | mode | level 1 token acc (bits/token) | level 2 token acc | level 3 token acc | floor | code usage 1 / 2 / 3 |")
    print("|---|---|---|---|---|---|---|")
    for name, r in runs:
        lv = r["levels"]
        accs = [f"{x['e2e_acc_vq']:.3f}" + (f" ({x['bits_per_token']:.2f})" if i == 0 else "") for i, x in enumerate(lv)]
        accs += ["-"] * (3 - len(accs))
        print(f"| {name} | {r.get('mode', 'codes')} | {' | '.join(accs[:3])} | {r.get('floor_acc', float('nan')):.3f} | "
              + " / ".join(f"{x['usage']:.2f}" for x in lv) + " |")
    print()
    print("| ladder | hierarchical bits/token (prior + upsamplers) | flat LM bits/token | ratio | params at generation "
          "(hierarchy / flat) | training FLOPs (hierarchy / flat) | training time, all stages (hierarchy + flat + judge) | "
          "best flat rival at the same FLOPs: bits/token (ratio) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in runs:
        b, m = r["bits"], r["matched"]
        comp = " + ".join(f"{v:.2f}" for v in b["components"].values())
        best = best_rival(r)
        rival = (f"{best['bits']:.2f} ({b['hierarchical'] / best['bits']:.2f}x; {best['n_layers']} layers, "
                 f"d={best['d_model']})" if best else "-")
        print(f"| {name} | {b['hierarchical']:.2f} ({comp}) | {b['flat']:.2f} | {b['hierarchical'] / b['flat']:.2f}x | "
              f"{m['hierarchical_params'] / 1e6:.2f} M / {m['flat_params'] / 1e6:.2f} M ({m['flat_layers']} layers) | "
              f"{m.get('hierarchical_train_flops', 0):.2e} / {m.get('flat_train_flops', 0):.2e} | "
              f"{_train_minutes(r)} | {rival} |")
    listening = [(name, r) for name, r in runs if r.get("listen")]
    if listening:  # runs made before the code-value diagnostic have no "listen" rows
        print()
        print("| ladder | upsampler | bits/token, true codes | other chunk's codes | no codes | greedy acc | "
              "parallel decoder acc | actual / nominal bits (under) |")
        print("|---|---|---|---|---|---|---|---|")
        for name, r in listening:
            for k, x in enumerate(r["listen"], 1):
                flag = "" if x["uses_codes"] else " (ignores its codes)"
                cols = [_num(x.get(key)) for key in ("bits_true", "bits_other", "bits_none", "acc_greedy", "acc_parallel")]
                print(f"| {name} | {k}{flag} | {' | '.join(cols)} | {_num(x.get('actual_bits_per_token'))} / "
                      f"{_num(x.get('nominal_bits_per_token'))} ({x.get('actual_under', '-')}) |")
    print()
    print("| ladder | path | tokens/s (batch 1) | vs flat | judge bits/token | distinct bigrams |")
    print("|---|---|---|---|---|---|")
    names = {"ladder_upsample": "prior -> upsamplers", "ladder_vq": "prior -> top VQ decoder", "flat": "flat LM",
             "held_out": "held-out text"}
    for name, r in runs:
        g = r.get("generation", {})
        flat = g.get("flat", {}).get("tokens_per_s") or 0
        for k, title in names.items():
            if k not in g:
                continue
            x = g[k]
            tps = x.get("tokens_per_s")
            print(f"| {name} | {title} | {f'{tps:,.0f}' if tps else '-'} | {f'{tps / flat:.1f}x' if tps and flat else '-'} | "
                  f"{x.get('judge_bits_per_token', float('nan')):.2f} | {x.get('distinct2', float('nan')):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
