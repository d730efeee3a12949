"""Planning experiment: the markdown table and the success-vs-budget plot, from the experiment's results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import save_figure


def _agg(rows):
    out = {}
    for r in rows:
        k = (r["contender"], r["method"], r["scorer"], r["budget_x"])
        out.setdefault(k, []).append(r)
    return out


def _ms(vals):
    vals = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    return f"{np.mean(vals):.2f} ± {np.std(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"


def plan_markdown(res: dict, cfg) -> str:
    m = cfg.maze
    seeds = sorted(res["meta"])
    p = res["meta"][seeds[0]]["params"]
    lines = [f"# Planning: flat vs ladder ({cfg.name})", "",
             f"Maze {m.rooms}x{m.rooms} rooms of {m.room}x{m.room} cells, {m.max_moves} moves max; "
             f"{res['demonstrations']:,} demonstrations (return buckets fail/poor/ok/optimal: {res['demo_buckets']}); "
             f"{res['tasks']} held-out layouts (overlap with training: {res['layout_overlap']}); seeds {seeds}. "
             f"Budget = model evaluations, as a multiple of {m.max_moves} (one greedy pass of the flat model).", "",
             f"Parameters: flat {p['flat']:,}; ladder prior {p['ladder_prior']:,} + level-1 compressor "
             f"{p['ladder_compressor']:,}. Level-1 codes decode training plans exactly: "
             + ", ".join(f"{res['meta'][s]['code_exact']:.3f}" for s in seeds) + " (per seed).", "",
             "| contender | search | scorer | budget | success | optimality | validity |",
             "|---|---|---|---|---|---|---|"]
    for (who, method, sc, mult), rs in sorted(_agg(res["rows"]).items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], kv[0][0])):
        lines.append(f"| {who} | {method} | {sc} | {mult}x | {_ms([r['success'] for r in rs])} | "
                     f"{_ms([r['optimality'] for r in rs])} | {_ms([r['validity'] for r in rs])} |")
    return "\n".join(lines) + "\n"


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    agg = _agg(res["rows"])
    for ax, method in zip(axes, ("beam", "sample")):
        for who, color in (("flat", "tab:blue"), ("ladder", "tab:red")):
            for sc, ls in (("likelihood", "--"), ("verifier", "-")):
                pts = sorted((k[3], np.mean([r["success"] for r in v])) for k, v in agg.items()
                             if k[0] == who and k[1] == method and k[2] == sc)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, color=color, marker="o", label=f"{who}, {sc}")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{method} search")
        ax.set_xlabel("budget (x one greedy pass, model evaluations)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate (held-out layouts)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
