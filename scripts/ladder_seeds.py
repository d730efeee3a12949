"""A ladder headline over seeds: mean ± std (sample std) of the numbers that say whether the levels listen.

    vqladder train-ladder configs/ladder_cpu_small.yaml name=ladder-text-small-s0 seed=0   # and seed=1, seed=2
    python scripts/ladder_seeds.py runs/ladder-text-small-s0 runs/ladder-text-small-s1 runs/ladder-text-small-s2
    python scripts/ladder_seeds.py runs/ladder-text-small-rate-s{0,1,2} --against runs/ladder-text-small-s{0,1,2}

Prints markdown from each run's results.json: per upsampler, bits/token with the true codes, another chunk's codes
and no codes, teacher-forced and greedy accuracy (one rung, from the true codes), the codes' actual rate under the
level above against their nominal bits; then the two-part code length against the flat LM matched in counted
training FLOPs, greedy decoding to tokens from every level against the floor, and generation speed; with
``skip_level`` the skip-level code length and its token decoder's code value; with ``flat_rivals`` every flat LM
beside the two codes. ``--against`` the same seeds of another ladder (in the same order): the numbers that changed,
each as this ladder's, the other's and their paired difference (seed by seed), and the two-part code against the
other's best flat rival of the same seed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ladder_compare import best_rival, load_runs  # noqa: E402  (the same results loading and rival choice)


def _ms(xs: list) -> str:
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return "-"
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return f"{m:.3f}"
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return f"{m:.3f} ± {sd:.3f}"


def main(dirs: list[str]) -> int:
    loaded = load_runs(dirs)
    if loaded is None:
        return 2
    runs = [r for _, r in loaded]
    if any("listen" not in r for r in runs):
        print("error: a run has no code-value diagnostic (made before it existed): train it again", file=sys.stderr)
        return 2
    print(f"{len(runs)} seeds: " + ", ".join(Path(d).name for d in dirs))
    print()
    print("| upsampler | bits/token, true codes | other chunk's codes | no codes | teacher-forced acc | greedy acc | "
          "parallel decoder acc | nominal bits/token | actual bits/token (under the level above) | actual / nominal | "
          "own context model |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in range(len(runs[0]["listen"])):
        rows = [r["listen"][k] for r in runs]
        col = lambda key: _ms([x.get(key) for x in rows])  # noqa: E731
        ratio = _ms([x["actual_bits_per_token"] / x["nominal_bits_per_token"] for x in rows])
        print(f"| {k + 1} | {col('bits_true')} | {col('bits_other')} | {col('bits_none')} | "
              f"{col('acc_teacher_forced')} | {col('acc_greedy')} | {col('acc_parallel')} | "
              f"{col('nominal_bits_per_token')} | {col('actual_bits_per_token')} ({rows[0]['actual_under']}) | "
              f"{ratio} | {col('own_rate_bits_per_token')} |")
    print()
    print("| hierarchical bits/token | flat LM bits/token | ratio | FLOPs hierarchy / flat (counted) | "
          "greedy to tokens from level 1 / 2 / 3 | floor | generation speed vs flat | judge bits, upsamplers / flat |")
    print("|---|---|---|---|---|---|---|---|")
    b = [r["bits"] for r in runs]
    m = [r.get("matched", {}) for r in runs]
    g = [r.get("generation", {}) for r in runs]
    e2e = " / ".join(_ms([r["levels"][k]["e2e_acc_upsample"] for r in runs]) for k in range(len(runs[0]["levels"])))
    speed = _ms([x["ladder_upsample"]["tokens_per_s"] / x["flat"]["tokens_per_s"] for x in g
                 if x.get("flat", {}).get("tokens_per_s")])
    judge = (_ms([x.get("ladder_upsample", {}).get("judge_bits_per_token") for x in g]) + " / "
             + _ms([x.get("flat", {}).get("judge_bits_per_token") for x in g]))
    flops = (_ms([x.get("hierarchical_train_flops", 0) / 1e12 for x in m]) + "e12 / "
             + _ms([x.get("flat_train_flops", 0) / 1e12 for x in m]) + "e12")
    print(f"| {_ms([x['hierarchical'] for x in b])} | {_ms([x['flat'] for x in b])} | "
          f"{_ms([x['hierarchical'] / x['flat'] for x in b])} | {flops} | {e2e} | "
          f"{_ms([r.get('floor_acc') for r in runs])} | {speed} | {judge} |")
    rv = [x.get("flat_rivals") for x in b]
    if all(rv):
        print()
        print("| flat LM (all at the hierarchy's counted FLOPs) | parameters | bits/token | two-part / it | "
              "skip-level / it |")
        print("|---|---|---|---|---|")
        print(f"| matched in parameters ({m[0].get('flat_layers', '?')} layers) | {m[0].get('flat_params', 0):,} | "
              f"{_ms([x['flat'] for x in b])} | {_ms([x['hierarchical'] / x['flat'] for x in b])} | "
              f"{_ms([x['skip_level']['bits_per_token'] / x['flat'] for x in b if x.get('skip_level')])} |")
        for i, r0 in enumerate(rv[0]):
            bits = [r[i]["bits"] for r in rv]
            print(f"| {r0['n_layers']} layers, d={r0['d_model']} | {r0['params']:,} | {_ms(bits)} | "
                  f"{_ms([x['hierarchical'] / r[i]['bits'] for x, r in zip(b, rv)])} | "
                  f"{_ms([x['skip_level']['bits_per_token'] / r[i]['bits'] for x, r in zip(b, rv) if x.get('skip_level')])} |")
    one = [one_level(r) for r in runs]
    if all(v is not None for v in one):
        print()
        print(f"One-level two-part code (level-1 codes under the compressor's own context model + upsampler 1): "
              f"{_ms(one)} bits/token, {_ms([o / x['flat'] for o, x in zip(one, b)])}x the matched flat LM"
              + (f", {_ms([o / rival_bits(r) for o, r in zip(one, runs)])}x the best flat rival"
                 if all(rv) else "") + ".")
    sk = [x.get("skip_level") for x in b]
    if all(sk):
        k = sk[0]["level"]
        print()
        print(f"| skip-level bits/token (from level {k}) | two-part bits/token | flat LM bits/token | skip-level / flat "
              f"| skip decoder: true codes | other chunk's | no codes | greedy acc | training FLOPs (counted) | components |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        parts = ", ".join(f"{n} {_ms([x['components'][n] for x in sk])}" for n in sk[0]["components"])
        print(f"| {_ms([x['bits_per_token'] for x in sk])} | {_ms([x['hierarchical'] for x in b])} | "
              f"{_ms([x['flat'] for x in b])} | {_ms([s_['bits_per_token'] / x['flat'] for s_, x in zip(sk, b)])} | "
              f"{_ms([x['bits_true'] for x in sk])} | {_ms([x['bits_other'] for x in sk])} | "
              f"{_ms([x.get('bits_none') for x in sk])} | {_ms([x.get('acc_greedy') for x in sk])} | "
              f"{_ms([x.get('skip_level_train_flops', 0) / 1e12 for x in m])}e12 | {parts} |")
    return 0


def against(dirs: list[str], ref_dirs: list[str]) -> int:
    """This ladder's seeds against another's, paired seed by seed."""
    a, r = load_runs(dirs), load_runs(ref_dirs)
    if a is None or r is None:
        return 2
    if len(a) != len(r):
        print(f"error: {len(a)} runs against {len(r)}: give the same seeds in the same order", file=sys.stderr)
        return 2
    runs, refs = [x for _, x in a], [x for _, x in r]

    def up1(x, key):
        return x["listen"][0].get(key)

    rows = [
        ("level 1: held-out token acc (its parallel decoder)", lambda x: x["levels"][0].get("recon_acc")),
        ("level 1: code usage", lambda x: x["levels"][0].get("usage")),
        ("level 1: actual bits/token under upsampler 2", lambda x: up1(x, "actual_bits_per_token")),
        ("level 1: actual / nominal", lambda x: up1(x, "actual_bits_per_token") / up1(x, "nominal_bits_per_token")),
        ("level 1: bits/token under its own context model", lambda x: up1(x, "own_rate_bits_per_token")),
        ("upsampler 1: bits/token, true codes", lambda x: up1(x, "bits_true")),
        ("upsampler 1: other chunk's codes", lambda x: up1(x, "bits_other")),
        ("upsampler 1: no codes", lambda x: up1(x, "bits_none")),
        ("upsampler 1: greedy acc", lambda x: up1(x, "acc_greedy")),
        ("two-part bits/token", lambda x: x["bits"]["hierarchical"]),
        ("one-level two-part bits/token", one_level),
        ("matched flat LM bits/token", lambda x: x["bits"]["flat"]),
    ]
    print(f"{len(runs)} seeds: " + ", ".join(Path(d).name for d in dirs) + " against "
          + ", ".join(Path(d).name for d in ref_dirs))
    print()
    print("| quantity | this ladder | the other | difference (paired) |")
    print("|---|---|---|---|")
    for name, f in rows:
        va, vr = [f(x) for x in runs], [f(x) for x in refs]
        diff = [p - q for p, q in zip(va, vr) if isinstance(p, (int, float)) and isinstance(q, (int, float))]
        print(f"| {name} | {_ms(va)} | {_ms(vr)} | {_ms(diff) if len(diff) == len(va) else '-'} |")
    best = [rival_bits(x) for x in refs]
    if all(best):
        print(f"| two-part / the other's best flat rival (same seed) | "
              f"{_ms([x['bits']['hierarchical'] / v for x, v in zip(runs, best)])} | "
              f"{_ms([x['bits']['hierarchical'] / v for x, v in zip(refs, best)])} | - |")
        one = [one_level(x) for x in runs]
        if all(v is not None for v in one):
            print(f"| one-level two-part / the other's best flat rival (same seed) | "
                  f"{_ms([o / v for o, v in zip(one, best)])} | - | - |")
    return 0


def rival_bits(x: dict) -> float | None:
    """The bits/token of a ladder's best flat rival (None without rivals)."""
    return (best_rival(x) or {}).get("bits")


def one_level(x: dict) -> float | None:
    """The two-part code of a ladder that stops at level 1: level-1 codes under the compressor's own context model
    (within a chunk) plus upsampler 1's tokens given them; None when level 1 has no context model."""
    own = x["listen"][0].get("own_rate_bits_per_token")
    return None if own is None else own + x["bits"]["components"]["upsampler1"]


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] == "--against" or args[-1] == "--against":
        print(__doc__)
        sys.exit(2)
    if "--against" in args:
        i = args.index("--against")
        sys.exit(against(args[:i], args[i + 1:]))
    sys.exit(main(args))
