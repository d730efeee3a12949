"""``vqladder report PATH``: one self-contained HTML page for a run directory, a sweep or another experiment's
directory (inline JS, CSS and data; opens from disk with no network).

Charts are Vega-Lite specs rendered by vega-embed; its JavaScript comes from the pinned ``vl-convert-python``
wheel (``vl_convert.javascript_bundle()``, built once and cached under ``~/.cache/vqladder``) and is inlined.
The page's own script (``report.js`` beside this file) draws the tables, reconstructions and the code explorer
from one JSON blob. Nothing here imports training code: the report reads run directories (config, metrics,
results, checkpoint) and the data directory the run names.

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
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from ..errors import VQLadderError
from ..io import atomic_write_text, check_output_file, file_starts_with, is_ours, read_json, read_yaml_doc

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
    if (path / "sweep.yaml").is_file() or (path / "sweep.csv").is_file():
        return "sweep"
    if (path / "ladder.yaml").is_file() and (path / "level1").is_dir():
        return "ladder"
    if (path / "config.yaml").is_file() and ((path / "checkpoints").is_dir() or (path / "metrics.jsonl").is_file()):
        return "run"
    if any(path.glob("*.md")) or (path / "results.json").is_file():
        return "experiment"
    raise VQLadderError(f"{path} is not a vqladder run, sweep or experiment directory (no config.yaml, sweep.csv "
                        f"or result tables)")


def read_metrics(run: Path) -> list[dict]:
    rows = []
    f = run / "metrics.jsonl"
    if f.is_file():
        for line in f.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return rows


# -- a compressor run ------------------------------------------------------------------------------------------------
def _token_strings(tok, vocab: int) -> list[str]:
    return [tok.decode([i]) for i in range(vocab)]


def run_data(run: Path, max_chunks: int = 48) -> dict:
    """Everything the page shows for one compressor run, as plain JSON."""

    from ..checkpoint import latest_valid_checkpoint
    from ..data import TokenShards, load_tokenizer
    from ..models import load_model

    if latest_valid_checkpoint(run / "checkpoints", warn=False) is None:
        raise VQLadderError(f"{run} has no checkpoint yet (train it first: vqladder train CONFIG)")
    model, meta, ckpt = load_model(run)
    if getattr(model, "kind", "") != "sequence_compressor":
        raise VQLadderError(f"{run} holds a {model.kind!r} model; the run report covers compressors")
    config = read_yaml_doc(run / "config.yaml") or {}
    results = read_json(run / "results.json") if (run / "results.json").is_file() else {}
    data_dir = Path(meta.get("data") or config.get("data", {}).get("path", ""))
    tok_dir = run / "tokenizer" if (run / "tokenizer").is_dir() else data_dir / "tokenizer"
    out = {"kind": "run", "title": run.name, "path": str(run), "checkpoint": ckpt.name, "config": config,
           "results": results, "metrics": read_metrics(run)}
    if not (data_dir / "meta.json").is_file() or not tok_dir.is_dir():
        out["note"] = f"data directory {data_dir} not found: no reconstructions or code explorer"
        return out
    shards = TokenShards(data_dir)
    from ..data.shards import check_fingerprint

    check_fingerprint(shards.dir, meta.get("data_fingerprint"), run)  # another corpus under the same path: refused
    tok = load_tokenizer(tok_dir)
    n, m = model.config.in_len, model.config.out_len
    val = np.asarray(shards.val)
    n_win = len(val) // n
    if n_win == 0:
        out["note"] = "the val split is shorter than one chunk"
        return out
    starts = np.arange(n_win, dtype=np.int64) * n      # every held-out chunk (the explorer counts them all)
    x = torch.from_numpy(np.stack([val[s:s + n] for s in starts]).astype(np.int64))
    codes, recon = [], []
    with torch.no_grad():
        for i in range(0, len(x), 64):
            c = model.encode(x[i:i + 64])
            codes.append(c)
            recon.append(model.decode(c).argmax(-1))
    codes, recon = torch.cat(codes), torch.cat(recon)
    depth = codes.shape[2] if codes.dim() == 3 else 1
    first = codes[..., 0] if codes.dim() == 3 else codes               # the explorer looks at the first stage
    strings = _token_strings(tok, model.config.vocab_size)
    used = sorted(set(x.reshape(-1).tolist()) | set(recon.reshape(-1).tolist()))
    out["tokens"] = {str(i): strings[i] for i in used}
    show = min(max_chunks, len(x))
    out["recon"] = [{"chunk": int(starts[i] // n), "orig": x[i].tolist(), "pred": recon[i].tolist(),
                     "codes": first[i].tolist()} for i in range(show)]
    r = n // m
    spans: dict[int, Counter] = defaultdict(Counter)
    where: dict[int, list] = defaultdict(list)
    for i in range(len(x)):
        row = x[i].tolist()
        for j, c in enumerate(first[i].tolist()):
            spans[c]["".join(strings[t] for t in row[j * r:(j + 1) * r])] += 1
            if len(where[c]) < 8:
                where[c].append([i, j])
    ids = sorted(spans, key=lambda c: -sum(spans[c].values()))
    vecs = model.quantizer.decode_codes(torch.tensor(ids)[None] if depth == 1 else
                                        torch.tensor(ids)[None, :, None].expand(1, -1, depth)).float()[0]
    near = []
    for s in range(0, len(ids), 1024):
        d = torch.cdist(vecs[s:s + 1024], vecs)
        d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")
        near += d.topk(min(5, max(1, len(ids) - 1)), largest=False).indices.tolist()
    total = len(x) * m
    out["explorer"] = {
        "positions": total, "chunks": len(x), "segment": r, "depth": depth,
        "codebook_size": int(model.quantizer.codebook_size),
        "codes": [{"id": int(c), "count": sum(spans[c].values()),
                   "spans": [[s, k] for s, k in spans[c].most_common(8)],
                   "near": [int(ids[k]) for k in nb if k < len(ids)]} for c, nb in zip(ids, near)],
    }
    out["rate"] = {"in_len": n, "out_len": m, "depth": depth, "bits_per_token": float(model.bits_per_token),
                   "codebook_size": int(model.quantizer.codebook_size)}
    return out


# -- a sweep ---------------------------------------------------------------------------------------------------------
def sweep_data(d: Path) -> dict:
    from ..text.sweep_report import read_cells

    rows = read_cells(d)
    refs = read_json(d / "references.json") if (d / "references.json").is_file() else {}
    clean = [{k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in r.items()} for r in rows]
    return {"kind": "sweep", "title": d.name, "path": str(d), "cells": clean, "references": refs,
            "markdown": _markdown_files(d)}


# -- a ladder ---------------------------------------------------------------------------------------------------------
def ladder_data(d: Path, max_chunks: int = 12) -> dict:
    """The experiment's tables and plots, plus held-out top chunks reconstructed from every level (each level's
    codes decoded down the ladder with the levels' own decoders), aligned token by token."""

    from ..data import TokenShards
    from ..text.ladder import Ladder

    out = experiment_data(d)
    out["kind"] = "ladder"
    ladder = Ladder.load(d)
    cfg = read_yaml_doc(d / "ladder.yaml") or {}
    data_dir = Path((cfg.get("data") or {}).get("path", ""))
    if ladder.variable_level is not None or not (data_dir / "meta.json").is_file() or ladder.tokenizer is None:
        out["note"] = "no per-level reconstructions (variable-rate level, or the data directory is missing)"
        return out
    n = ladder.chunk_len(0)
    val = np.asarray(TokenShards(data_dir).val)
    n_win = len(val) // n
    starts = np.floor(np.arange(min(max_chunks, n_win)) * (n_win / max(1, min(max_chunks, n_win)))).astype(np.int64) * n
    x = np.concatenate([val[s:s + n] for s in starts]).astype(np.int64)
    levels = []
    for k in range(1, ladder.n_levels + 1):
        pred = ladder.decode(ladder.encode(x, k), k)
        levels.append({"level": k, "bits_per_token": ladder.bits_per_token(k), "codes_per_chunk": ladder.chunk_len(k),
                       "acc": float((pred == x).mean()),
                       "rows": [{"chunk": int(s // n), "orig": x[i * n:(i + 1) * n].tolist(),
                                 "pred": pred[i * n:(i + 1) * n].tolist()} for i, s in enumerate(starts)]})
    used = sorted(set(x.tolist()) | {int(t) for lv in levels for r in lv["rows"] for t in r["pred"]})
    out["tokens"] = {str(t): ladder.tokenizer.decode([t]) for t in used}
    out["levels"] = levels
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
