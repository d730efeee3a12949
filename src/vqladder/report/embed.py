"""Embedding experiment: the markdown table and the recall-vs-bytes plot, from the experiment's results."""

from __future__ import annotations

from pathlib import Path

from ..models.matryoshka import PREFIXES
from . import log2_axes, save_figure


def embed_markdown(res: dict, cfg) -> str:
    lines = [f"# Codes over Matryoshka embeddings vs FAISS ({cfg.name})", "",
             f"{res['texts']:,} texts from {', '.join(res['corpora'])}; model `{res['model']}` ({res['dim']} dims); "
             f"database {res['database']:,}, queries {res['queries']}, training {res['train']:,}. Ground truth: exact "
             f"top-10 by cosine on the full float embeddings. Prefix-neighbour loss of held-out queries (mean KL over "
             f"prefixes {PREFIXES}): raw {res['prefix_loss_raw']:.4f}, adapted {res['prefix_loss_adapted']:.4f}. "
             f"Residual encoding beam {res.get('rvq_beam', '?')} for faiss-rq and our RVQs alike, at every budget. "
             "ours-prefix-rvq: prefix schedule on adapted embeddings; ours-rvq-adapted: all dims at every stage on the "
             "same adapted embeddings (the schedule alone differs); ours-rvq: all dims on raw embeddings.", "",
             "| bytes/vector | method | recall@1 | recall@10 | recall@100 (of true top-10) | encode ms / 1k vectors | "
             "search ms / query | train s |", "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        if "note" in r:
            lines.append(f"| {r['bytes']} | {r['method']} | – | – | – | – | – | n/a: {r['note']} |")
        else:
            lines.append(f"| {r['bytes']} | {r['method']} | {r['recall@1']:.3f} | {r['recall@10']:.3f} | "
                         f"{r['recall@100']:.3f} | {r['encode_ms_per_1k']:.2f} | {r['search_ms_per_query']:.3f} | "
                         f"{r['train_s']} |")
    if res["concepts"]:
        lines += ["", "## What a level-1 code (16-dim prefix, 256 codes) means: database texts sharing it", ""]
        for c in res["concepts"]:
            lines.append(f"**code {c['code']}** ({c['size']} texts):")
            lines += [f"- {t}" for t in c["texts"]]
            lines.append("")
    return "\n".join(lines) + "\n"


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    by = {}
    for r in res["rows"]:
        if "note" not in r:
            by.setdefault(r["method"], []).append((r["bytes"], r["recall@10"]))
    for m, pts in sorted(by.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", lw=2.5 if m.startswith("ours") else 1.2,
                label=m)
    log2_axes(ax, "bytes per vector", "recall@10", 8)
    fig.tight_layout()
    save_figure(fig, path)
