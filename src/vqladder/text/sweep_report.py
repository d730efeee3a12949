"""A sweep's report view: the table (``sweep.md``, seeds grouped, references beside) and the plots, drawn from the
rows that the sweep's aggregation (``text.sweep.aggregate``) read from the cells; nothing else."""

from __future__ import annotations

import math
from pathlib import Path

from ..report import log2_axes, save_figure

GIST = ["gist_semantic", "gist_semantic_random", "gist_semantic_frequent", "gist_retrieval_top1",
        "gist_retrieval_top5", "gist_bow_f1", "gist_token_recall"]
COLUMNS = ["cell", "arch", "compression", "out_len", "codebook_size", "kind", "decoder", "depth", "rate_weight",
           "seed", "bits_per_token", "rate_bits_per_token", "acc", "exact_match", "acc_free", "exact_match_free", "ce_bits", "usage",
           "perplexity", "dead_codes", "collapsed", "step", "tokens_seen", "train_time", "tok_per_s"] + GIST
COLLAPSE_USAGE = 0.05  # fewer distinct held-out codes than 5% of what was possible flags a collapsed cell


def _f(v, fmt=".3f"):
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else ("–" if v in ("", None) else str(v))


def _mean(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return sum(xs) / len(xs) if xs else ""


def _std(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    if len(xs) < 2:
        return ""
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def group_seeds(rows: list[dict]) -> list[dict]:
    """Mean over seeds of every metric, per (out_len, codebook, kind, decoder, depth)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["out_len"], r["codebook_size"], r["kind"], r["decoder"], r["depth"], r.get("arch", "pool"),
                           r.get("rate_weight", 0.0)), []).append(r)
    out = []
    for key, rs in groups.items():
        g = {k: rs[0].get(k, "pool") for k in ("compression", "out_len", "codebook_size", "kind", "decoder", "depth",
                                               "arch")}
        g["rate_weight"] = rs[0].get("rate_weight", 0.0)
        for k in ("bits_per_token", "rate_bits_per_token", "acc", "exact_match", "acc_free", "exact_match_free", "ce_bits", "usage",
                  "perplexity", "tok_per_s", *GIST):
            g[k] = _mean([r[k] for r in rs])
        for k in ("acc", "acc_free", *GIST):  # the spread over seeds ("" for one seed)
            g[f"{k}_std"] = _std([r.get(k) for r in rs])
        g["seeds"] = len(rs)
        g["collapsed"] = any(r["collapsed"] for r in rs)
        out.append(g)
    return out


def reconstruction_acc(g: dict):
    """A group's reconstruction accuracy: free-running (greedy) for an autoregressive decoder, whose teacher-forced
    accuracy also reads the previous true tokens; the parallel decoder's held-out accuracy otherwise."""
    return g["acc_free"] if g["decoder"] == "autoregressive" else g["acc"]


def local_rows(groups: list[dict]) -> list[dict]:
    """Each compressor group beside the local-autoencoder group of the same rate: ours - local accuracy (an
    autoregressive decoder's free-running accuracy)."""
    local = {(g["out_len"], g["codebook_size"], g["kind"], g["depth"]): g for g in groups if g["arch"] == "local"}
    out = []
    for g in groups:
        ref = local.get((g["out_len"], g["codebook_size"], g["kind"], g["depth"]))
        if g["arch"] != "local" and ref is not None and isinstance(reconstruction_acc(g), float):
            out.append({"group": g, "local": ref, "delta": reconstruction_acc(g) - ref["acc"]})
    return out


def _pm(g: dict, k: str) -> str:
    """A group's mean of ``k`` with its spread over seeds when it has more than one."""
    return _f(g[k]) + (f" ± {_f(g[f'{k}_std'])}" if g.get(f"{k}_std", "") != "" else "")


def markdown(rows: list[dict], refs: dict) -> str:
    all_groups = group_seeds(rows)
    groups = [g for g in all_groups if g["arch"] != "local"]
    ar = any(g["decoder"] == "autoregressive" for g in groups)
    rated = any(isinstance(g.get("rate_bits_per_token"), float) for g in groups)
    lm = refs.get("lm_bits")
    head = ["codes/chunk", "compression", "codebook", "quantiser", "decoder", "bits/token", "rate / LM bound"] + \
           (["rate weight", "actual bits/token (own context model)"] if rated else []) + \
           ["held-out token acc", "exact chunks"] + (["free-running acc"] if ar else []) + \
           ["recon CE (bits)", "code usage", "code perplexity", "seeds", "flag"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        acc = _pm(g, "acc")
        ratio = _f(g["bits_per_token"] / lm, ".2f") if lm else "–"
        cells = [str(g["out_len"]), f"{g['compression']}x", str(g["codebook_size"]),
                 g["kind"] + (f" x{g['depth']}" if g["depth"] > 1 else ""), g["decoder"], _f(g["bits_per_token"]),
                 ratio] + ([_f(g["rate_weight"], "g"), _f(g["rate_bits_per_token"])] if rated else []) + \
                [acc, _f(g["exact_match"])] + ([_pm(g, "acc_free")] if ar else []) + \
                [_f(g["ce_bits"]), _f(g["usage"]), _f(g["perplexity"], ".1f"), str(g["seeds"]),
                 "COLLAPSED (< 5% of possible codes used)" if g["collapsed"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    out = ["## Cells (held-out split)", "", *lines, ""]
    pairs = local_rows(all_groups)
    if pairs:
        out += ["## Against the local autoencoder (same rate, split, seed and budget; no context)", "",
                "| codes/chunk | codebook | quantiser | decoder | bits/token | ours acc | local AE acc | ours - local | "
                "ours tokens/s | local tokens/s |", "|" + "---|" * 10]
        for p_ in pairs:
            g, ref = p_["group"], p_["local"]
            out.append("| " + " | ".join([str(g["out_len"]), str(g["codebook_size"]),
                                          g["kind"] + (f" x{g['depth']}" if g["depth"] > 1 else ""),
                                          g["decoder"] + (" (free-running)" if g["decoder"] == "autoregressive" else "")
                                          + (f", rate weight {g['rate_weight']:g}" if g.get("rate_weight") else ""),
                                          _f(g["bits_per_token"]),
                                          _pm(g, "acc_free" if g["decoder"] == "autoregressive" else "acc"),
                                          _pm(ref, "acc"),
                                          f"{p_['delta']:+.3f}", _f(g.get("tok_per_s", ""), ",.0f"),
                                          _f(ref.get("tok_per_s", ""), ",.0f")]) + " |")
        out.append("")
    if any(g.get("gist_semantic", "") != "" for g in groups):
        out += ["## Gist: what the reconstructions keep", "",
                "| codes/chunk | codebook | bits/token | token acc | MiniLM similarity | (random chunk) | "
                "(frequent token) | retrieval top-1 | top-5 | content-word F1 | order-free token recall |",
                "|" + "---|" * 11]
        for g in groups:
            out.append("| " + " | ".join([str(g["out_len"]), str(g["codebook_size"]), _f(g["bits_per_token"]),
                                          _pm(g, "acc")] + [_pm(g, k) for k in GIST]) + " |")
        out.append("")
    if refs:
        out += ["## References (same held-out split, bits per token)", "",
                "| reference | bits/token | note |", "|---|---|---|"]
        if lm:
            scored = ("all positions, the first by the train unigram; checkpoint picked on held-back train text"
                      if refs.get("lm_positions") == "all" else "positions 2.. of each chunk")
            out.append(f"| causal LM ({refs.get('lm_params', 0):,} params, {refs.get('lm_steps', '?')} steps) | "
                       f"{lm:.3f} | held-out cross-entropy within {refs.get('in_len')}-token chunks ({scored}): an "
                       f"upper bound on the entropy rate, measured by a small LM |")
        out += [f"| zstd -22, whole held-out text | {refs['zstd_whole']:.3f} | |",
                f"| zstd -22, each chunk alone | {refs['zstd_chunk']:.3f} | what a per-chunk code competes with |",
                f"| unigram (train counts) | {refs['unigram_bits']:.3f} | |",
                f"| raw UTF-8 | {refs['utf8_raw']:.3f} | |",
                "", f"Trivial decoder (always the most frequent token): held-out token accuracy "
                    f"{refs['trivial_acc']:.3f}.", ""]
    if groups:
        out += ["## Smallest rate reaching 95% held-out token accuracy", "",
                "| codes/chunk | smallest bits/token at >= 95% acc | ratio to LM bound |", "|---|---|---|"]
        for m in sorted({g["out_len"] for g in groups}, reverse=True):
            ok = [g for g in groups if g["out_len"] == m and g["acc"] != "" and g["acc"] >= 0.95]
            if ok:
                g = min(ok, key=lambda g: g["bits_per_token"])
                out.append(f"| {m} | {_f(g['bits_per_token'])} | " + (f"{g['bits_per_token'] / lm:.2f} |" if lm else "– |"))
            else:
                top = max((g["acc"] for g in groups if g["out_len"] == m and g["acc"] != ""), default="")
                out.append(f"| {m} | none in this grid (best acc {_f(top)}) | – |")
        out.append("")
    best = {}
    for g in groups:
        if g["acc"] != "" and (g["out_len"] not in best or g["acc"] > best[g["out_len"]]["acc"]):
            best[g["out_len"]] = g
    if best:
        out += ["## Best cell per compression", "", "| codes/chunk | best codebook | bits/token | token acc |"
                + (" rate / LM bound |" if lm else ""), "|---|---|---|---|" + ("---|" if lm else "")]
        for m, g in sorted(best.items(), reverse=True):
            out.append(f"| {m} | {g['codebook_size']} {g['kind']} | {_f(g['bits_per_token'])} | {_f(g['acc'])} |"
                       + (f" {g['bits_per_token'] / lm:.2f} |" if lm else ""))
        out.append("")
    return "\n".join(out)


def plots(rows: list[dict], refs: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    all_groups = [g for g in group_seeds(rows) if g["acc"] != ""]
    groups = [g for g in all_groups if g["arch"] != "local"]
    paths = []
    # 1. held-out token accuracy vs bits/token, one line per compression; the local reference as grey crosses
    fig, ax = plt.subplots(figsize=(7, 4.5))
    loc = sorted((g["bits_per_token"], g["acc"]) for g in all_groups if g["arch"] == "local")
    if loc:
        ax.scatter(*zip(*loc), marker="x", color="gray", zorder=3, label="local autoencoder (no context)")
    for m in sorted({g["out_len"] for g in groups}, reverse=True):
        for kind in sorted({g["kind"] for g in groups}):
            pts = sorted((g["bits_per_token"], g["acc"]) for g in groups if g["out_len"] == m and g["kind"] == kind)
            comp = next(g["compression"] for g in groups if g["out_len"] == m)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=f"{m} codes ({comp}x) {kind}")
    for m in sorted({g["out_len"] for g in groups}, reverse=True):
        pts = sorted((g["bits_per_token"], g["gist_semantic"]) for g in groups
                     if g["out_len"] == m and g.get("gist_semantic", "") != "")
        if pts:
            ax.plot(*zip(*pts), marker="s", ls="--", alpha=0.6, label=f"{m} codes: MiniLM similarity")
    if refs.get("lm_bits"):
        ax.axvline(refs["lm_bits"], color="k", ls="--", lw=1, label=f"LM bound {refs['lm_bits']:.2f} bits/token")
    if refs.get("trivial_acc") is not None:
        ax.axhline(refs["trivial_acc"], color="gray", ls=":", lw=1, label="most frequent token")
    log2_axes(ax, "bits per token (M·log2 K / N)", "held-out token accuracy (solid) / gist similarity (dashed)",
              legend_size=7)
    fig.tight_layout()
    p = save_figure(fig, out_dir / "acc_vs_bits.png")
    paths.append(p)
    # 2. heatmap compression x codebook size (first quantiser kind, parallel decoder, depth 1)
    kind = sorted({g["kind"] for g in groups})[0] if groups else "fsq"
    sel = [g for g in groups if g["kind"] == kind and g["decoder"] == "parallel" and g["depth"] == 1]
    ms = sorted({g["out_len"] for g in sel}, reverse=True)
    ks = sorted({g["codebook_size"] for g in sel})
    if ms and ks:
        import numpy as np

        grid = np.full((len(ms), len(ks)), np.nan)
        for g in sel:
            grid[ms.index(g["out_len"]), ks.index(g["codebook_size"])] = g["acc"]
        fig, ax = plt.subplots(figsize=(1.6 * len(ks) + 2, 0.6 * len(ms) + 1.5))
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        for i in range(len(ms)):
            for j in range(len(ks)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set_yticks(range(len(ms)), [f"{m} codes" for m in ms])
        ax.set_xlabel("codebook size")
        ax.set_title(f"held-out token accuracy ({kind})")
        fig.colorbar(im)
        fig.tight_layout()
        p = save_figure(fig, out_dir / "heatmap_acc.png")
        paths.append(p)
    # 3. code usage per cell
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(rows) + 2), 3.5))
    ax.bar(range(len(rows)), [r["usage"] if r["usage"] != "" else 0 for r in rows],
           color=["tab:red" if r["collapsed"] else "tab:blue" for r in rows])
    ax.axhline(COLLAPSE_USAGE, color="tab:red", ls=":", lw=1)
    ax.set_xticks(range(len(rows)), [r["cell"] for r in rows], rotation=70, fontsize=6)
    ax.set_ylabel("held-out code usage")
    fig.tight_layout()
    p = save_figure(fig, out_dir / "usage.png")
    paths.append(p)
    return paths
