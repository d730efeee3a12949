"""Texts and cached sentence embeddings for the embedding codes (``embed.models``).

* ``split_texts(corpus)``: sentences / short paragraphs of a corpus (built-in, files, tinyshakespeare).
* ``embed_cached(texts, model, cache_dir)``: sentence-transformers embeddings, batched, stored as a ``.npy``
  with a JSON meta holding the model name and a SHA-256 of the texts: a change of either re-embeds.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..data.embedder import load_embedder
from ..errors import VQLadderError
from ..io import atomic_save_npy, atomic_write_json, own_dir


# -- texts ----------------------------------------------------------------------------------------------------------
def split_texts(corpus: str, min_chars: int = 30, max_chars: int = 400, limit: int = 0) -> list[str]:
    """Sentences and short paragraphs of ``corpus`` (a corpus spec: builtin, a file, a folder, ...),
    whitespace-normalised, deduplicated, in corpus order."""
    from ..data.corpus import open_corpus

    out, seen = [], set()
    for doc in open_corpus(corpus):
        for para in re.split(r"\n\s*\n", doc):
            para = " ".join(para.split())
            if not para:
                continue
            pieces = [para] if len(para) <= max_chars else re.split(r"(?<=[.!?;:])\s+", para)
            for p in pieces:
                p = p.strip()
                if min_chars <= len(p) <= max_chars and p not in seen:
                    seen.add(p)
                    out.append(p)
                    if limit and len(out) >= limit:
                        return out
    return out


def corpus_texts(corpora: list[str], min_chars: int = 30, max_chars: int = 400,
                 max_texts: int = 0) -> list[tuple[str, list[str]]]:
    """``[(corpus, texts)]``: each corpus's texts (``split_texts``), with a text already given by an earlier corpus
    dropped (docstrings copied between packages), the whole capped at ``max_texts`` (0 = all)."""
    seen: set[str] = set()
    out = []
    for c in corpora:
        got = [t for t in split_texts(c, min_chars, max_chars) if t not in seen]
        if max_texts:
            got = got[:max(0, max_texts - len(seen))]
        seen.update(got)
        out.append((c, got))
    return out


def embed_corpora(parts: list[tuple[str, list[str]]], model: str, cache_dir: str | Path, embedder=None,
                  progress: bool = True) -> np.ndarray:
    """The embeddings of ``corpus_texts`` output, rows in order, cached per corpus: adding a corpus to a list
    embeds only the new one."""
    arrays = [np.asarray(embed_cached(texts, model, cache_dir, embedder, progress=progress))
              for _, texts in parts if texts]
    if not arrays:
        raise VQLadderError("no texts to embed (the text list is empty)")
    return np.concatenate(arrays)


# -- a user's own vectors -------------------------------------------------------------------------------------------
VECTOR_SUFFIXES = (".npy", ".fvecs")


def load_vectors(path: str | Path) -> np.ndarray:
    """Vectors [n, d] float32 from a ``.npy`` (a 2-D numeric array) or ``.fvecs`` file (each row: an int32 width
    d, then d float32s; the format of the standard ANN sets). Every defect is one ``VQLadderError`` line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise VQLadderError(f"vector file does not exist or is not a file: {p}")
    suffix = p.suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise VQLadderError(f"vector file must be .npy or .fvecs, got {p.name!r}")
    if suffix == ".npy":
        try:
            x = np.load(p, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise VQLadderError(f"cannot read {p} as a .npy array: {e}")
        if x.ndim != 2:
            raise VQLadderError(f"{p}: vectors must be a 2-D array [n, dim], got shape {tuple(x.shape)}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise VQLadderError(f"{p}: vectors must be numbers, got dtype {x.dtype}")
    else:
        raw = np.fromfile(p, dtype=np.int32)
        if raw.size == 0:
            raise VQLadderError(f"{p}: empty vector file")
        dim = int(raw[0])
        if dim < 1:
            raise VQLadderError(f"{p}: not an .fvecs file (first row width {dim})")
        if raw.size % (dim + 1):  # find the first row of another width, walking the headers
            pos, row = 0, 0
            while pos < raw.size and int(raw[pos]) == dim:
                pos, row = pos + dim + 1, row + 1
            if pos < raw.size:
                raise VQLadderError(f"{p}: row {row} has width {int(raw[pos])}, row 0 has {dim} (rows must have one "
                                    "width)")
            raise VQLadderError(f"{p}: truncated .fvecs file (its last row is shorter than the width {dim})")
        rows = raw.reshape(-1, dim + 1)
        if (rows[:, 0] != dim).any():
            bad = int(np.flatnonzero(rows[:, 0] != dim)[0])
            raise VQLadderError(f"{p}: row {bad} has width {int(rows[bad, 0])}, row 0 has {dim} (rows must have one "
                                "width)")
        x = rows[:, 1:].view(np.float32)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise VQLadderError(f"{p}: empty vector file (shape {tuple(x.shape)})")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(1)
    if bad.any():
        raise VQLadderError(f"{p}: {int(bad.sum())} vectors hold NaN or inf (first: row {int(np.flatnonzero(bad)[0])})")
    return x


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity as a dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()


def embed_cached(texts: list[str], model: str, cache_dir: str | Path, embedder=None, batch: int = 256,
                 progress: bool = True) -> np.ndarray:
    """Embeddings [n, d] float32 (L2-normalised), cached in ``cache_dir`` by (model, texts hash)."""
    if not texts:
        raise VQLadderError("no texts to embed (the text list is empty)")
    d = own_dir(Path(cache_dir), "cache", "embedding cache directory")  # a folder of the user's is refused
    key = hashlib.sha256(f"{model}\0{texts_hash(texts)}".encode()).hexdigest()[:16]
    arr, meta = d / f"emb-{key}.npy", d / f"emb-{key}.json"
    if arr.is_file() and meta.is_file():
        m = json.loads(meta.read_text())
        if m.get("model") == model and m.get("texts_sha256") == texts_hash(texts) and m.get("n") == len(texts):
            return np.load(arr, mmap_mode="r")
    if embedder is None:
        embedder = load_embedder(model)
    from tqdm import tqdm

    chunks = []
    for s in tqdm(range(0, len(texts), batch), desc=f"embedding {len(texts)} texts", disable=not progress,
                  leave=False):
        chunks.append(np.asarray(embedder(texts[s:s + batch]), dtype=np.float32))
    emb = np.concatenate(chunks)
    atomic_save_npy(arr, emb)
    atomic_write_json(meta, {"model": model, "texts_sha256": texts_hash(texts), "n": len(texts), "dim": int(emb.shape[1])})
    return np.load(arr, mmap_mode="r")
