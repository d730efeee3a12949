"""Variable-length experiment's report view: the markdown tables, the plots and the boundary rendering, drawn from
its results and the segments its evaluation computed (no model is run here)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from ..report import log2_axes, save_figure


def cell_name(method: str, target: float) -> str:
    return f"{method}-r{target:g}"


def _f(v, fmt=".3f"):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def variable_markdown(res: dict, cfg, methods: tuple[str, ...]) -> str:
    """The tables; ``methods``: the boundary methods in the order rows are shown."""
    rows = sorted(res["rows"], key=lambda r: (r["target"], methods.index(r["method"])))
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


def _plot_acc(rows: list[dict], path: Path, methods: tuple[str, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, c in zip(methods, ("black", "tab:blue", "tab:red")):
        pts = sorted((r["bits_per_token"], r["acc"], r["target"]) for r in rows if r["method"] == m)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=c, label=m)
            for x, y, t in pts:
                ax.annotate(f"{t:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    log2_axes(ax, "bits per token (codes + boundaries), held-out", "held-out token accuracy")
    fig.tight_layout()
    save_figure(fig, path)


def _plot_ratio(cfg, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = dict(zip(cfg.targets, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for t in cfg.targets:
        ax.axhline(t, color=colors[t], lw=0.8, ls=":")
        for m, ls in (("learned", "-"), ("entropy", "--")):
            p = cfg.dir / cell_name(m, t) / "metrics.jsonl"
            if m not in cfg.methods or not p.is_file():
                continue
            recs = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            pts = [(r["step"], r["train_ratio"]) for r in recs if "train_ratio" in r]
            if pts:
                ax.plot(*zip(*pts), ls, color=colors[t], label=f"{m}, target {t:g}")
    ax.set_xlabel("training step")
    ax.set_ylabel("achieved ratio (tokens per code, training batches)")
    ax.set_yscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def render_boundaries(name: str, chunks: np.ndarray, cells: list[tuple[str, float, np.ndarray]], piece,
                      labels: np.ndarray | None = None) -> str:
    """HTML: held-out ``chunks`` [b, n], one block per cell ``(method, target, segment index per token [b, n])`` as
    evaluation computed them, segments on alternating backgrounds; ``piece(ids) -> str`` renders a run of tokens;
    ``labels`` [b, n] (synthetic data): the ground-truth repetitive / random spans first."""
    out = ["<!doctype html><meta charset='utf-8'><title>segments</title>",
           "<style>body{font-family:monospace;max-width:60em} span.a{background:#cde} span.b{background:#edc}"
           " pre{white-space:pre-wrap;line-height:1.6}</style>",
           f"<h1>{html.escape(name)}: segment boundaries on held-out chunks</h1>",
           "<p>Each coloured run is one segment = one code.</p>"]
    if labels is not None:
        out.append("<h2>ground truth: repetitive (blue) / random (orange) spans</h2>")
        for row, lr in zip(chunks, labels):
            out.append("<pre>" + "".join(f"<span class='{'a' if l else 'b'}'>{html.escape(piece([t]))}</span>"
                                         for t, l in zip(row.tolist(), lr)) + "</pre>")
    for m, t, seg in cells:
        out.append(f"<h2>{m}, target {t:g} tokens per code</h2>")
        for row, sg in zip(chunks.tolist(), seg.tolist()):
            spans, cur = [], None
            for tk, s in zip(row, sg):
                if s != cur:
                    spans.append([s, []])
                    cur = s
                spans[-1][1].append(tk)
            out.append("<pre>" + "".join(f"<span class='{'ab'[s % 2]}'>{html.escape(piece(p))}</span>"
                                         for s, p in spans) + "</pre>")
    return "\n".join(out) + "\n"
