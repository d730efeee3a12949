"""Corpora: where text comes from.

A corpus spec is one of
  * ``builtin`` — English prose shipped with the running Python itself: the ``pydoc_data`` help topics and
    the docstrings of the standard library (parsed with ``ast``, nothing imported). No download, deterministic
    for a given Python version.
  * a path to a file (``.txt``, ``.md``, ``.jsonl`` with a ``text`` field), a folder (searched recursively
    for those suffixes) or a glob (``"texts/**/*.md"``); several specs may be joined with ``,``.
  * ``docstrings:<package>`` — the docstrings of an installed Python package's sources (``docstrings:numpy``),
    parsed with ``ast`` from the files ``importlib`` finds, nothing imported: more offline English prose, e.g. to
    grow an embedding set past what the built-in corpus holds. A folder of ``.py`` files also works.
  * ``hf:<name>[:<split>]`` — a Hugging Face dataset through ``datasets`` (optional extra ``[hf]``), its
    ``text`` column. Local dataset folders saved with ``save_to_disk`` also work: ``hf:/path/to/dataset``.

Non-UTF-8 bytes are decoded with replacement and counted (``Corpus.replacements``); a file that looks
binary (NUL bytes) is an error.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import sysconfig
from pathlib import Path
from typing import Iterator

from ..errors import VQLadderError

TEXT_SUFFIXES = (".txt", ".md", ".jsonl")
_PIECE = 1 << 20  # large files are yielded in ~1 MiB pieces cut at line ends (streaming)
_SKIP_DIRS = {"test", "tests", "site-packages", "idlelib", "lib2to3", "__pycache__", "turtledemo", "ensurepip",
              "tkinter"}


def builtin_documents() -> Iterator[str]:
    """The built-in corpus: pydoc help topics, then stdlib docstrings longer than 200 characters."""
    import pydoc_data.topics as topics

    for key in sorted(topics.topics):
        yield topics.topics[key]
    yield from docstring_documents(Path(sysconfig.get_paths()["stdlib"]))


def docstring_documents(root: Path, skip: set[str] = _SKIP_DIRS) -> Iterator[str]:
    """Docstrings longer than 200 characters of every ``.py`` file under ``root`` (or of ``root`` itself), in
    sorted file order; folders named in ``skip`` are not entered."""
    files = [root] if root.is_file() else []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        files += [Path(dirpath) / fn for fn in sorted(filenames) if fn.endswith(".py")]
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 200:
                    yield doc


def _package_root(name: str) -> Path:
    """The source folder (or file) of an installed package or a folder of ``.py`` files, found without importing."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not (spec.submodule_search_locations or spec.origin):
        raise VQLadderError(f"docstrings: no installed package or folder named {name!r}")
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin)


class Corpus:
    """An iterable of documents (strings) with statistics gathered while iterating."""

    def __init__(self, spec: str):
        self.spec = spec
        self.replacements = 0  # count of undecodable bytes replaced by U+FFFD
        self.n_docs = 0
        self.n_chars = 0
        self._sources = self._resolve(spec)

    # -- resolution -------------------------------------------------------------------------------------------
    @staticmethod
    def _resolve(spec: str) -> list:
        if not spec or not spec.strip():
            raise VQLadderError("corpus spec is empty; use 'builtin', a path, a glob or hf:<name>")
        sources: list = []
        seen: set[str] = set()  # each real file once, however many links or glob matches lead to it

        def add(files, what):
            n = 0
            for f in files:
                real = os.path.realpath(f)
                if real not in seen:
                    seen.add(real)
                    sources.append(("file", Path(f)))
                    n += 1
            return n

        for part in split_corpus_spec(spec):
            p = Path(part).expanduser()
            if part == "builtin":
                sources.append(("builtin", None))
            elif part.startswith("hf:"):
                sources.append(("hf", part[3:]))
            elif part.startswith("docstrings:"):
                sources.append(("docstrings", _package_root(part[len("docstrings:"):])))
            elif not p.exists() and not p.is_symlink() and any(ch in part for ch in "*?["):
                matches = sorted(glob.glob(os.path.expanduser(part), recursive=True))
                files = [f for f in matches if os.path.isfile(f)]
                for f in matches:  # a matched folder is read as a folder is
                    if os.path.isdir(f):
                        files += _walk_text_files(Path(f))
                if not files:
                    raise VQLadderError(f"corpus glob matches no file: {part}")
                add(files, part)
            elif p.is_symlink() and not p.exists():
                raise VQLadderError(f"corpus path is a broken symbolic link: {p}")
            elif p.is_dir():
                files = _walk_text_files(p)
                if not files:
                    raise VQLadderError(f"corpus folder has no {'/'.join(TEXT_SUFFIXES)} file: {p}")
                add(files, part)
            elif p.is_file():
                add([p], part)
            else:
                raise VQLadderError(f"corpus path does not exist: {p}")
        return sources

    # -- iteration --------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        self.replacements = self.n_docs = self.n_chars = 0
        for kind, arg in self._sources:
            it = (builtin_documents() if kind == "builtin" else self._hf(arg) if kind == "hf"
                  else docstring_documents(arg, {"__pycache__"}) if kind == "docstrings" else self._file(arg))
            for doc in it:
                if doc:
                    self.n_docs += 1
                    self.n_chars += len(doc)
                    yield doc

    def _decode(self, raw: bytes) -> str:
        text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text:
            self.replacements += text.count("\ufffd") - raw.count("\ufffd".encode("utf-8"))
        return text

    def _file(self, path: Path) -> Iterator[str]:
        try:
            f = open(path, "rb")
        except OSError as e:
            raise VQLadderError(f"cannot read corpus file {path}: {e.strerror}")
        with f:
            head = f.read(8192)
            if b"\x00" in head:
                raise VQLadderError(f"corpus file looks binary (NUL bytes), not text: {path}")
            f.seek(0)
            if path.suffix.lower() == ".jsonl":
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(self._decode(line))
                    except json.JSONDecodeError:
                        raise VQLadderError(f"{path}:{lineno}: not valid JSON")
                    text = obj.get("text") if isinstance(obj, dict) else None
                    if not isinstance(text, str):
                        raise VQLadderError(f"{path}:{lineno}: JSON line has no string field 'text'")
                    yield text
                return
            carry = b""
            while True:
                block = f.read(_PIECE)
                if not block:
                    break
                if b"\x00" in block:
                    raise VQLadderError(f"corpus file looks binary (NUL bytes), not text: {path}")
                block = carry + block
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    carry = block
                    continue
                carry = block[cut:]
                yield self._decode(block[:cut])
            if carry:
                yield self._decode(carry)

    @staticmethod
    def _hf(name: str) -> Iterator[str]:
        try:
            import datasets  # optional extra
        except ImportError:
            raise VQLadderError("hf: corpora need the optional extra: pip install 'vqladder[hf]'")
        split = "train"
        if ":" in name and not os.path.exists(name):
            name, split = name.rsplit(":", 1)
        try:
            if os.path.isdir(name):
                ds = datasets.load_from_disk(name)
                if isinstance(ds, datasets.DatasetDict):
                    ds = ds[split]
            else:
                ds = datasets.load_dataset(name, split=split, streaming=True)
        except Exception as e:  # network, missing dataset, ...: one line
            raise VQLadderError(f"cannot load hf dataset {name!r} (split {split!r}): {type(e).__name__}: {e}")
        for row in ds:
            text = row.get("text")
            if not isinstance(text, str):
                raise VQLadderError(f"hf dataset {name!r} has no string column 'text'")
            yield text


def split_corpus_spec(spec: str) -> list[str]:
    """The parts of a corpus spec: ``a.txt,b.md`` is two, but a path that exists is one part whatever its name
    holds (a comma, a ``[``)."""
    if spec and Path(spec.strip()).expanduser().exists():
        return [spec.strip()]
    return [p.strip() for p in (spec or "").split(",") if p.strip()]


def _walk_text_files(root: Path) -> list[Path]:
    """Every text file under ``root``, following symbolic links to folders but entering each real folder once (a
    link back up the tree stops there), in sorted order."""
    out: list[Path] = []
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in visited:
            dirnames[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for fn in sorted(filenames):
            f = Path(dirpath) / fn
            if f.suffix.lower() in TEXT_SUFFIXES and f.is_file():
                out.append(f)
    return out


def open_corpus(spec: str) -> Corpus:
    """Resolve a corpus spec (see module docstring); errors about paths are raised here, before any work."""
    return Corpus(spec)
