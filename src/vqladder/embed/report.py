"""Embedding experiment: the markdown table and the recall-vs-bytes plot, from the experiment's results."""

from __future__ import annotations

from pathlib import Path

from ..report import log2_axes, save_figure


def _pm(r: dict, key: str, fmt: str = ".3f") -> str:
    v = format(r[key], fmt)
    return v + (f" ± {format(r[key + '_std'], fmt)}" if f"{key}_std" in r else "")


def embed_markdown(res: dict, cfg) -> str:
    q = res.get("qinco") or {}
    metric = res.get("metric", "cosine")
    lines = [f"# Codes over Matryoshka embeddings vs FAISS ({cfg.name})", "",
             f"{res['texts']:,} vectors ({'; '.join(res.get('sources') or res['corpora'])}); model `{res['model']}` "
             f"({res['dim']} dims); database {res['database']:,}, queries {res['queries']}, training "
             f"{res['train']:,} (every method trains on these), validation {res.get('val', 0):,} (QINCo's held-out "
             f"MSE only). Ground truth: exact top-10 by {metric} on the full float vectors. Prefix-neighbour loss of "
             f"held-out queries (mean KL over prefixes {res.get('prefixes', '?')}): raw {res['prefix_loss_raw']:.4f}, adapted "
             f"{res['prefix_loss_adapted']:.4f}. Residual encoding beam {res.get('rvq_beam', '?')} for faiss-rq, our "
             "RVQs and ours-qinco alike, at every budget (ours-qinco-greedy: beam 1). ours-prefix-rvq: prefix "
             "schedule on adapted embeddings; ours-rvq-adapted: all dims at every stage on the same adapted "
             "embeddings (the schedule alone differs); ours-rvq: all dims on raw embeddings."]
    if q:
        lines[-1] += (f" ours-qinco: implicit neural codebooks (`quantize/qinco.py`) on the raw vectors, "
                      f"{q['blocks']} MLP block(s) of width {q['hidden']}, {q['preselect']} pre-selected candidates "
                      f"per stage when encoding ({q['train_preselect']} in training), models of {q['stages']} "
                      f"stages (a budget uses the first stages of the smallest model that holds it), trained "
                      f"{q['max_time']} s each; ours-qinco-prefix: the same on adapted vectors with the prefix "
                      f"schedule. Rows with ± are mean ± std over seeds {q['seeds']}.")
    lines += ["", "MSE: squared reconstruction error per vector on the database (in the space the method codes: raw, or "
              "adapted for the adapted methods).", "",
              "| bytes/vector | method | recall@1 | recall@10 | recall@100 (of true top-10) | MSE | "
              "encode ms / 1k vectors | search ms / query | train s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        if "note" in r:
            lines.append(f"| {r['bytes']} | {r['method']} | – | – | – | – | – | – | n/a: {r['note']} |")
        else:
            mse = _pm(r, "mse", ".4f") if "mse" in r else "–"
            lines.append(f"| {r['bytes']} | {r['method']} | {_pm(r, 'recall@1')} | {_pm(r, 'recall@10')} | "
                         f"{_pm(r, 'recall@100')} | {mse} | {r['encode_ms_per_1k']:.2f} | "
                         f"{r['search_ms_per_query']:.3f} | {r['train_s']} |")
    models = q.get("models") or {}
    if models:
        init = q.get("rq_init_val_mse") or {}
        lines += ["", "QINCo models (held-out MSE on the validation vectors, greedy encoding; RQ init: the same "
                  "architecture at the residual quantiser it starts from, `qinco.init`):", "",
                  "| model | steps | train s | params | val MSE | RQ init val MSE |", "|---|---|---|---|---|---|"]
        for name, m in models.items():
            mse = "–" if m.get("mse") is None else f"{m['mse']:.4f}"
            base = init.get(name.rsplit("-s", 1)[0])
            lines.append(f"| {name} | {m.get('step')} | {m.get('train_time')} | {m.get('params'):,} | {mse} | "
                         f"{'–' if base is None else f'{base:.4f}'} |")
    if res["concepts"]:
        src = (res.get("concept_view") or [{}])[0].get("method", "ours")
        lines += ["", f"## What a level-1 code (the first byte of {src}, 256 codes) means: database texts sharing it",
                  ""]
        for c in res["concepts"]:
            lines.append(f"**code {c['code']}** ({c['size']} texts):")
            lines += [f"- {t}" for t in c["texts"]]
            lines.append("")
    return "\n".join(lines) + "\n"


def plot_recall(res: dict, path: Path) -> None:
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
