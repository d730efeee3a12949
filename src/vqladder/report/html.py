"""``vqladder report PATH``: one self-contained HTML page for a run directory, a sweep or another experiment's
directory (inline JS, CSS and data; opens from disk with no network).

Charts are Vega-Lite specs rendered by vega-embed; its JavaScript comes from the pinned ``vl-convert-python``
wheel (``vl_convert.javascript_bundle()``, built once and cached under ``~/.cache/vqladder``) and is inlined.
The page's own script (``report.js`` beside this file) draws the tables, reconstructions and the code explorer
from one JSON blob. Nothing here imports model, training or evaluation code: the report reads run directories
(config, metrics, results, and what evaluation wrote for it: ``explorer.json``, ``cells.json``,
``reconstructions.json``, ``episodes.json``, ``rollouts.json``).

What each kind of directory gets:
  * a compressor run: summary (config, data, rate, held-out results), training curves from ``metrics.jsonl``,
    held-out reconstructions token by token with the wrong tokens marked, and the code explorer (every code's
    held-out usage, the text spans it stands for with counts, its nearest codes; search by id or by text);
  * a sweep: the accuracy-vs-bits plot (hover for the cell, the LM bound and references drawn), the
    accuracy heatmap, the table;
  * a ladder: held-out chunks reconstructed from every level (decoded down the ladder), wrong tokens marked,
    with each level's rate and accuracy, beside the experiment's tables;
  * a planning experiment: an episode viewer (the maze drawn, each contender's plan stepped move by move,
    the moves where a code begins marked) from ``episodes.json``; a video experiment: truth, latent, pixel
    and copy-last rollouts of held-out clips stepped frame by frame, from ``rollouts.json``; variable-length codes: each method's segment boundaries
    over held-out text (``boundaries.html``, shown in a sandboxed frame);
  * an embedding experiment: recall@10 vs bytes per vector (hover for the method) and the concept view (the
    database texts that share a level-1 code, searchable by text or code);
  * any other experiment directory (ladder, planning, variable, video, embedding): its result tables and
    plots (PNG, inlined).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import VQLadderError
from ..io import (
    atomic_write_text,
    check_output_file,
    file_starts_with,
    is_ours,
    read_json,
    read_metrics,
    read_yaml_doc,
)

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vqladder"


def vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one script, from the installed vl-convert (cached per version)."""
    try:
        import vl_convert as vlc
    except ImportError as e:
        raise VQLadderError("the HTML report needs vl-convert-python (pip install -e '.[report]')") from e
    path = CACHE / f"vega-embed-{vlc.get_vega_embed_version()}-vega-{vlc.get_vega_version()}.js"
    if path.is_file():
        return path.read_text()
    js = vlc.javascript_bundle()
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, js)
    except OSError:
        pass  # a read-only home still gets a report, only slower
    return js


# -- what a directory is ---------------------------------------------------------------------------------------------
def detect(path: Path) -> str:
    if not path.exists():
        raise VQLadderError(f"{path} does not exist")
    if not path.is_dir():
        raise VQLadderError(f"{path} is not a directory (give a run, sweep or experiment directory)")
    declared = _declared_experiment(path)
    if declared == "sweep" or (path / "sweep.yaml").is_file() or (path / "sweep.csv").is_file():
        return "sweep"
    if (declared == "ladder" or (path / "ladder.yaml").is_file()) and (path / "level1").is_dir():
        return "ladder"
    if (path / "config.yaml").is_file() and ((path / "checkpoints").is_dir() or (path / "metrics.jsonl").is_file()):
        return "run"
    if any(path.glob("*.md")) or (path / "results.json").is_file():
        return "experiment"
    raise VQLadderError(f"{path} is not a vqladder run, sweep or experiment directory (no config.yaml, sweep.csv "
                        f"or result tables)")


def _declared_experiment(path: Path) -> str | None:
    """The ``experiment:`` key of the directory's saved ``config.yaml`` (None without one)."""
    p = path / "config.yaml"
    try:
        doc = read_yaml_doc(p) if p.is_file() else None
    except Exception:  # a corrupt config: the directory is judged by its other files
        return None
    return doc.get("experiment") if isinstance(doc, dict) else None


# -- a compressor run ------------------------------------------------------------------------------------------------
def run_data(run: Path, max_chunks: int = 48) -> dict:
    """Everything the page shows for one compressor run, as plain JSON: its config, results and curves, and the
    reconstructions and code explorer that evaluation wrote (``explorer.json``, at the end of training)."""
    config = read_yaml_doc(run / "config.yaml") or {}
    results = read_json(run / "results.json") if (run / "results.json").is_file() else {}
    from ..checkpoint import latest_valid_checkpoint

    if latest_valid_checkpoint(run / "checkpoints", warn=False) is None:
        raise VQLadderError(f"{run} has no checkpoint yet (train it first: vqladder train CONFIG)")
    out = {"kind": "run", "title": run.name, "path": str(run), "config": config, "results": results,
           "metrics": read_metrics(run)}
    if not (run / "explorer.json").is_file():
        out["note"] = ("no reconstructions or code explorer: evaluation writes them (explorer.json) when training "
                       "ends; finish the run (vqladder train CONFIG --resume)")
        return out
    ex = read_json(run / "explorer.json")
    out.update({k: v for k, v in ex.items() if k != "recon"})
    out["checkpoint"] = ex.get("checkpoint", "")
    if "recon" in ex:
        out["recon"] = ex["recon"][:max_chunks]
    return out


# -- a sweep ---------------------------------------------------------------------------------------------------------
def sweep_data(d: Path) -> dict:
    if not (d / "cells.json").is_file():
        raise VQLadderError(f"{d} has no cells.json yet: aggregate it first (vqladder sweep CONFIG --aggregate-only)")
    rows = read_json(d / "cells.json")
    refs = read_json(d / "references.json") if (d / "references.json").is_file() else {}
    return {"kind": "sweep", "title": d.name, "path": str(d), "cells": rows, "references": refs,
            "markdown": _markdown_files(d)}


# -- a ladder ---------------------------------------------------------------------------------------------------------
def ladder_data(d: Path, max_chunks: int = 12) -> dict:
    """The experiment's tables and plots, plus the held-out top chunks reconstructed from every level that the
    ladder's evaluation wrote (``reconstructions.json``: each level's codes decoded down the ladder)."""
    out = experiment_data(d)
    out["kind"] = "ladder"
    rec = read_json(d / "reconstructions.json") if (d / "reconstructions.json").is_file() else {}
    if not rec.get("levels"):
        out["note"] = rec.get("note") or ("no per-level reconstructions: the ladder's evaluation writes them "
                                          "(reconstructions.json); rerun vqladder train-ladder CONFIG")
        return out
    out["tokens"] = rec["tokens"]
    out["levels"] = [{**lv, "rows": lv["rows"][:max_chunks]} for lv in rec["levels"]]
    return out


# -- any other experiment ------------------------------------------------------------------------------------------
def _markdown_files(d: Path) -> list[dict]:
    return [{"name": p.name, "html": markdown_to_html(p.read_text())} for p in sorted(d.glob("*.md"))]


def experiment_data(d: Path) -> dict:
    images = []
    for p in sorted(list(d.glob("*.png")) + list(d.glob("plots/*.png")))[:24]:
        images.append({"name": p.name, "src": "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()})
    results = read_json(d / "results.json") if (d / "results.json").is_file() else {}
    out = {"kind": "experiment", "title": d.name, "path": str(d), "markdown": _markdown_files(d),
           "images": images, "results": {k: v for k, v in results.items() if k not in ("concept_view", "rows")}}
    if results.get("rows") and all("method" in r and "bytes" in r for r in results["rows"]):  # embeddings
        out["recall_rows"] = [r for r in results["rows"] if "recall@10" in r]
        out["concepts"] = results.get("concept_view") or results.get("concepts") or []
    if (d / "episodes.json").is_file():          # planning: example episodes, move by move
        out["episodes"] = read_json(d / "episodes.json")
    if (d / "rollouts.json").is_file():          # video: held-out rollouts, frame by frame
        out["rollouts"] = read_json(d / "rollouts.json")
    if (d / "boundaries.html").is_file():        # variable-length codes: segments drawn over held-out text
        out["boundaries"] = (d / "boundaries.html").read_text()
    return out


def markdown_to_html(text: str) -> str:
    """Headings, pipe tables and paragraphs (what our result files hold), escaped."""
    out, table, para = [], [], []

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    def flush():
        if table:
            rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in table
                    if not re.fullmatch(r"\s*\|?[\s:|-]+\|?\s*", r)]
            if rows:
                head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
                body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table.clear()
        if para:
            out.append("<p>" + inline(" ".join(para)) + "</p>")
            para.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            if para:
                flush()
            table.append(line)
            continue
        if table:
            flush()
        h = re.match(r"(#{1,4})\s+(.*)", line)
        if h:
            flush()
            out.append(f"<h{len(h.group(1)) + 2}>{inline(h.group(2))}</h{len(h.group(1)) + 2}>")
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
    flush()
    return "\n".join(out)


SIGNATURE = "<meta name=generator content=vqladder-report>"  # how the tool knows a report it wrote


# -- the page --------------------------------------------------------------------------------------------------------
def render(data: dict) -> str:
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    js = (HERE / "report.js").read_text()
    css = (HERE / "report.css").read_text()
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>{SIGNATURE}<title>vqladder report: "
            f"{html.escape(data.get('title', ''))}</title><style>{css}</style></head><body><div id=app></div>"
            f"<script>{vega_bundle()}</script><script id=data type=application/json>{blob}</script>"
            f"<script>(() => {{\n{js}\n}})();</script></body></html>")  # own scope: the bundle has globals


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


def build_report(path: str | Path, out: str | Path | None = None, max_chunks: int = 48,
                 overwrite: bool = False) -> Path:
    """Write the HTML report for ``path`` (atomically) to ``out`` (default ``<path>/report.html``).

    An existing ``out`` is replaced only when it is a report vqladder wrote (or ``overwrite``); a link, a folder, a
    FIFO or a device never is. A replaced file keeps its permissions."""
    d = Path(path)
    kind = detect(d)
    target = Path(out).expanduser() if out else d / "report.html"
    if target.is_dir() and not target.is_symlink():
        raise VQLadderError(f"{target} is a directory; give the report's file name (-o report.html)")
    if not target.parent.is_dir():
        raise VQLadderError(f"cannot write {target}: {target.parent} does not exist")
    inside = target.parent.resolve() == d.resolve()
    if inside and not is_ours(d):  # never write into a folder of the user's that merely looks like a run
        raise VQLadderError(f"{d} was not made by vqladder, so its report is not written into it: give -o FILE")
    default = target.name == "report.html" and inside
    check_output_file(target, overwrite, what="report file",
                      made_by_us=lambda p: default or file_starts_with(p, SIGNATURE.encode()))
    data = {"run": lambda: run_data(d, max_chunks), "sweep": lambda: sweep_data(d),
            "ladder": lambda: ladder_data(d, min(max_chunks, 12)), "experiment": lambda: experiment_data(d)}[kind]()
    atomic_write_text(target, render(_json_safe(data)))
    return target
