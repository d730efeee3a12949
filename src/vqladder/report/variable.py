"""Variable-length experiment: the markdown tables and the accuracy-vs-bits plot, from its results."""

from __future__ import annotations

import math
from pathlib import Path

from ..models.variable import BOUNDARY_METHODS
from . import log2_axes, save_figure


def _f(v, fmt=".3f"):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def variable_markdown(res: dict, cfg) -> str:
    rows = sorted(res["rows"], key=lambda r: (r["target"], BOUNDARY_METHODS.index(r["method"])))
    if res["synthetic"]:
        rows_syn = [r for r in rows if "codes_per_token_random" in r]
    src = "synthetic mixed spans" if res["synthetic"] else f"{res['data']} ({res['tokenizer']})"
    lines = [f"# Variable-length codes ({cfg.name})", "",
             f"Data: {src}; chunks of {cfg.chunk} tokens; {cfg.train.steps} steps x {cfg.train.batch_size} chunks per "
             f"cell; held-out chunks: {rows[0]['chunks']}. Rate = codes + boundary bits (log2 n + log2 C(n-1, S-1) "
             "per chunk; 0 for fixed). `fixed @ equal bits` = the two neighbouring fixed cells time-shared to the "
             "row's rate (accuracy linear in bits/token between them: an achievable point; – outside their range).",
             "",
             "| method | target ratio | achieved ratio | bits/token | of which boundaries | acc | fixed @ equal bits | exact chunks |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bb = r["bits_per_token"] - r["bits_per_code"] / r["ratio"]
        lines.append(f"| {r['method']} | {r['target']:g} | {r['ratio']:.2f} | {r['bits_per_token']:.3f} | {bb:.3f} | "
                     f"{r['acc']:.3f} | {_f(r.get('fixed_acc_at_equal_bits'))} | {r['exact_match']:.3f} |")
    if res["synthetic"]:
        lines += ["", "Codes per token on held-out repetitive vs random spans (1 / length of each token's segment):", "",
                  "| method | target ratio | codes/token, repetitive | codes/token, random | random / repetitive |",
                  "|---|---|---|---|---|"]
        for r in rows_syn:
            a, b = r["codes_per_token_repetitive"], r["codes_per_token_random"]
            lines.append(f"| {r['method']} | {r['target']:g} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
    return "\n".join(lines) + "\n"


def _plot_acc(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, c in zip(BOUNDARY_METHODS, ("black", "tab:blue", "tab:red")):
        pts = sorted((r["bits_per_token"], r["acc"], r["target"]) for r in rows if r["method"] == m)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=c, label=m)
            for x, y, t in pts:
                ax.annotate(f"{t:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    log2_axes(ax, "bits per token (codes + boundaries), held-out", "held-out token accuracy")
    fig.tight_layout()
    save_figure(fig, path)
