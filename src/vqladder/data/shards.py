"""Token shards: ``prepare`` streams a corpus through a tokenizer into ``train.bin`` / ``val.bin`` memmaps.

Layout of a prepared data directory::

    meta.json        tokenizer spec, vocab size, dtype, token counts, corpus stats, split rule
    train.bin        uint16 (vocab <= 65535) or uint32 token ids, native byte order
    val.bin
    tokenizer/       the fitted tokenizer (BPE merges, compaction map)

The split is deterministic and made on the text, before any tokenizer sees it: the corpus's text stream
(documents joined by newlines) is cut into blocks of ``block_size`` characters and every ``val_every``-th
block goes to val, so val text is spread over the whole corpus. A tokenizer that is fitted (``bpe:N``) is
fitted on the train blocks only; val text is always encodable (byte-level BPE). Documents are streamed
(tokenised in batches), so a corpus larger than RAM works. The directory is written beside the target and
renamed into place when complete: an interrupted ``prepare`` leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from tqdm import tqdm

from ..config import Check, PathStr
from ..errors import VQLadderError
from ..io import (
    LOCK_NAME,
    atomic_write_json,
    claim_run_dir,
    is_ours,
    owner,
    release_run_dir,
    remove_tree,
    sha256_file,
)
from .corpus import open_corpus, split_corpus_spec
from .tokenizers import OpenAITokenizer, Tokenizer, load_tokenizer, make_tokenizer

_DOC_BATCH_CHARS = 1 << 20


def dtype_for(vocab_size: int):
    return np.uint16 if vocab_size <= 65535 else np.uint32


def _text_blocks(src, block_chars: int, val_every: int, progress: bool):
    """``(split, text)`` for consecutive blocks of ``block_chars`` characters of the corpus's text stream;
    every ``val_every``-th block is ``"val"``, the rest (and the last, shorter block) ``"train"``."""
    buf, block = "", 0
    for batch in _doc_batches(src, progress):
        text = buf + "".join(batch)
        pos = 0
        while len(text) - pos >= block_chars:
            yield ("val" if block % val_every == val_every - 1 else "train"), text[pos:pos + block_chars]
            pos += block_chars
            block += 1
        buf = text[pos:]
    if buf:
        yield "train", buf


def _encode_blocks(blocks, encode_batch, files: dict, dtype, on_ids=None) -> dict:
    """Tokenise the blocks in batches of about a MiB of text and append each block's ids to its split's file
    (``on_ids(split, ids)`` sees each block's ids first)."""
    counts = {"train": 0, "val": 0}
    pending: list[tuple[str, str]] = []

    def flush():
        for (split, _), ids in zip(pending, encode_batch([t for _, t in pending])):
            arr = np.asarray(ids, dtype=np.int64)
            if on_ids is not None:
                on_ids(split, arr)
            files[split].write(arr.astype(dtype, copy=False).tobytes())
            counts[split] += len(arr)
        pending.clear()

    size = 0
    for split, text in blocks:
        pending.append((split, text))
        size += len(text)
        if size >= _DOC_BATCH_CHARS:
            flush()
            size = 0
    flush()
    for f in files.values():
        f.flush()
        os.fsync(f.fileno())
        f.close()
    return counts


def _doc_batches(corpus, progress: bool):
    batch, size = [], 0
    bar = tqdm(desc="tokenising", unit="doc", disable=None if progress else True, file=sys.stderr, leave=False)
    for doc in corpus:
        batch.append(doc if doc.endswith("\n") else doc + "\n")
        size += len(doc)
        if size >= _DOC_BATCH_CHARS:
            bar.update(len(batch))
            yield batch
            batch, size = [], 0
    if batch:
        bar.update(len(batch))
        yield batch
    bar.close()


def prepare(corpus: str, tokenizer: str, out_dir: str | Path, val_every: int = 10, block_size: int = 16384,
            force: bool = False, progress: bool = False) -> "TokenShards":
    """Tokenise ``corpus`` with ``tokenizer`` into train/val shards under ``out_dir``; returns the shards.

    Raises :class:`VQLadderError` for an empty or unreadable corpus, an unknown tokenizer, or an existing
    ``out_dir`` (unless ``force``).

    >>> from pathlib import Path
    >>> from vqladder import TokenShards, prepare
    >>> _ = Path("corpus.txt").write_text("The quick brown fox jumps over the lazy dog. " * 400)
    >>> shards = prepare("corpus.txt", "bytes", "data/fox", block_size=512)
    >>> shards.vocab_size, len(shards.train) > len(shards.val) > 0
    (256, True)
    >>> shards.tokenizer.decode(shards.tokenizer.encode("fox"))
    'fox'
    >>> TokenShards("data/fox").meta["tokenizer"]          # reopened from disk
    'bytes'
    """
    out = Path(out_dir).expanduser()
    _check_output(out, corpus, force)
    if val_every < 2:
        raise VQLadderError(f"val_every must be >= 2 (every val_every-th block goes to val), got {val_every}")
    if block_size < 1:
        raise VQLadderError(f"block_size must be positive, got {block_size}")
    src = open_corpus(corpus)
    tok = make_tokenizer(tokenizer)
    created = not out.exists()
    claim_run_dir(out, "data")  # marked as the tool's, one `prepare` at a time (a second one gets one line)
    for stale in out.glob(".prepare.tmp-*"):  # what a killed `prepare` left (the lock says none is running)
        remove_tree(stale)
    tmp = out / f".prepare.tmp-{os.getpid()}"
    try:
        tmp.mkdir()
    except OSError as e:
        raise VQLadderError(f"cannot write data directory {out}: {e.strerror}")
    try:
        if isinstance(tok, OpenAITokenizer):
            counts = _prepare_openai(src, tok, tmp, val_every, block_size, progress)
        else:
            if tok.needs_fit:  # on the train blocks only: no merge is learned from held-out text
                tok.fit(t for split, t in _text_blocks(src, block_size, val_every, progress) if split == "train")
            files = {sp: open(tmp / f"{sp}.bin", "wb") for sp in ("train", "val")}
            counts = _encode_blocks(_text_blocks(src, block_size, val_every, progress), tok.encode_batch, files,
                                    dtype_for(tok.vocab_size))
        if counts["train"] + counts["val"] == 0:
            raise VQLadderError(f"corpus is empty: {corpus}")
        if hasattr(tok, "check_fit"):
            tok.check_fit()
        if counts["val"] == 0:
            fit = max(1, src.n_chars // (2 * val_every))
            raise VQLadderError(f"nothing would be held out: the corpus has {src.n_chars:,} characters, fewer than "
                                f"val_every x block_size = {val_every} x {block_size:,}; pass --block-size {fit} "
                                f"(or a smaller --val-every) so that every {val_every}-th block goes to val")
        if src.replacements:
            print(f"warning: {src.replacements} undecodable byte(s) in {corpus} were replaced by U+FFFD",
                  file=sys.stderr)
        tok.save(tmp / "tokenizer")
        meta = {
            "corpus": corpus, "tokenizer": tok.spec, "vocab_size": tok.vocab_size,
            "dtype": np.dtype(dtype_for(tok.vocab_size)).name,
            "train_tokens": counts["train"], "val_tokens": counts["val"],
            "n_docs": src.n_docs, "n_chars": src.n_chars, "replacements": src.replacements,
            "val_every": val_every, "block_size": block_size,
            "split": f"text blocks of {block_size} characters, every {val_every}-th to val; tokenizer fitted on "
                     f"train blocks only",
            "checksums": {**{f"{sp}.bin": sha256_file(tmp / f"{sp}.bin") for sp in ("train", "val")},
                          "tokenizer": tree_digest(tmp / "tokenizer")},
        }
        atomic_write_json(tmp / "meta.json", meta)
        _install(tmp, out)
    except BaseException:
        remove_tree(tmp)
        release_run_dir(out)
        if created:  # a failed first `prepare` leaves nothing behind
            remove_tree(out)
        raise
    release_run_dir(out)
    return TokenShards(out)


PREPARED = ("meta.json", "train.bin", "val.bin", "tokenizer")  # everything `prepare` writes into a data directory


def _check_output(out: Path, corpus: str, force: bool) -> None:
    """Refuse an output that would lose data: a file, the current directory or one of its parents, a folder
    holding the corpus, a non-empty folder vqladder did not make (``--force`` or not), or a prepared one
    without ``--force``."""
    if out.exists() and not out.is_dir():
        raise VQLadderError(f"output path exists and is not a directory: {out}")
    target = out.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise VQLadderError(f"refusing to prepare into {out}: it is the current directory or one of its parents; "
                            f"give a new directory, e.g. -o data/NAME")
    for part in split_corpus_spec(corpus):
        p = Path(part).expanduser()
        if not part.startswith("hf:") and p.exists() and (p.resolve() == target or target in p.resolve().parents):
            raise VQLadderError(f"refusing to prepare into {out}: it holds the corpus {part}; give a new directory")
    if not out.is_dir() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        return
    mark = owner(out)
    if mark is None and not is_ours(out):
        raise VQLadderError(f"output directory {out} is not empty and was not made by vqladder; `prepare` writes "
                            f"only into a new or empty directory or one it prepared: give another path")
    if mark is not None and mark.get("kind") != "data":
        raise VQLadderError(f"output directory {out} is a vqladder {mark.get('kind')} directory, not a data "
                            f"directory; give another path")
    if (out / "meta.json").is_file() and not force:
        raise VQLadderError(f"data directory already prepared: {out} (pass --force to rebuild it; only the files "
                            f"`prepare` wrote are replaced)")


def _install(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` (inside ``out``) into place. Over an earlier data directory (``--force``) only
    the files ``prepare`` writes are replaced; anything else the user put there stays. meta.json goes last: the
    directory reads as prepared only once everything else is in place."""
    (out / "meta.json").unlink(missing_ok=True)  # invalid until the new meta.json lands, last
    for name in PREPARED[1:] + PREPARED[:1]:
        old = out / name
        if old.is_dir() and not old.is_symlink():
            remove_tree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
        os.replace(tmp / name, old)
    remove_tree(tmp)
    from ..io import _fsync_dir

    _fsync_dir(out)


def tree_digest(directory: Path) -> str:
    """One sha256 over every file of a folder (names and bytes, in sorted order)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(Path(directory).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(directory)).encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()


def data_fingerprint(directory: Path) -> dict:
    """What a run records of its data: the checksums of the shards and of the tokenizer (``prepare`` writes them
    into meta.json; a data directory from before that has them computed here)."""
    d = Path(directory)
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    sums = dict(meta.get("checksums") or {})
    for sp in ("train", "val"):
        if f"{sp}.bin" not in sums and (d / f"{sp}.bin").is_file():
            sums[f"{sp}.bin"] = sha256_file(d / f"{sp}.bin")
    if "tokenizer" not in sums and (d / "tokenizer").is_dir():
        sums["tokenizer"] = tree_digest(d / "tokenizer")
    return sums


def check_fingerprint(directory: Path, recorded: dict | None, run: str | Path) -> None:
    """Refuse data whose shards or tokenizer are not the ones ``run`` was trained on (its ids would mean other
    tokens, and every number computed on them would be wrong). Runs from before fingerprints pass."""
    if not recorded:
        return
    now = data_fingerprint(directory)
    diff = [k for k in ("tokenizer", "train.bin", "val.bin") if k in recorded and now.get(k) != recorded[k]]
    if diff:
        what = "its tokenizer" if "tokenizer" in diff else "its shards"
        raise VQLadderError(f"data {directory} is not the data {run} was trained on ({what} changed since: "
                            f"{', '.join(diff)} differ); it was re-prepared or replaced, so every number would be "
                            f"wrong: prepare the run's corpus again into another directory and pass it with --data")


def _prepare_openai(src, tok: OpenAITokenizer, tmp: Path, val_every: int, block_size: int, progress: bool) -> dict:
    """Raw ids are written once (uint32) while the ids the *train* split uses are collected, then compacted in
    chunks: the compact vocabulary is fitted on train only, and a val token that train never uses is ``<unk>``."""
    seen = [np.zeros(int(tok.enc.n_vocab) + 1024, dtype=bool)]

    def mark(split, arr):
        if split != "train" or not len(arr):
            return
        if arr.max() >= len(seen[0]):
            seen[0] = np.concatenate([seen[0], np.zeros(int(arr.max()) + 1 - len(seen[0]), dtype=bool)])
        seen[0][arr] = True

    files = {sp: open(tmp / f"{sp}.raw", "wb") for sp in ("train", "val")}
    counts = _encode_blocks(_text_blocks(src, block_size, val_every, progress), tok.raw_encode_batch, files,
                            np.uint32, on_ids=mark)
    seen = seen[0]
    tok.set_used_from(np.nonzero(seen)[0].tolist())
    dtype = dtype_for(tok.vocab_size)
    for split in ("train", "val"):
        raw = np.memmap(tmp / f"{split}.raw", dtype=np.uint32, mode="r") if counts[split] else np.zeros(0, np.uint32)
        with open(tmp / f"{split}.bin", "wb") as f:
            for s in range(0, len(raw), 1 << 22):
                f.write(tok.compact(raw[s:s + (1 << 22)]).astype(dtype).tobytes())
        del raw
        os.unlink(tmp / f"{split}.raw")
    return counts


class TokenShards:
    """A prepared data directory: ``.train`` / ``.val`` memmaps, ``.meta`` and the ``.tokenizer``."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        mp = self.dir / "meta.json"
        if not mp.is_file():
            raise VQLadderError(f"not a prepared data directory (no meta.json): {self.dir}; run `vqladder prepare`")
        try:
            self.meta = json.loads(mp.read_text())
        except json.JSONDecodeError:
            raise VQLadderError(f"data directory has a corrupted meta.json: {self.dir}")
        self.dtype = np.dtype(self.meta["dtype"])
        self.vocab_size = int(self.meta["vocab_size"])
        self._tok: Tokenizer | None = None
        for split in ("train", "val"):
            n = int(self.meta[f"{split}_tokens"])
            p = self.dir / f"{split}.bin"
            if not p.is_file() or p.stat().st_size != n * self.dtype.itemsize:
                raise VQLadderError(f"data shard {p} is missing or has the wrong size; re-run `vqladder prepare`")
            arr = np.memmap(p, dtype=self.dtype, mode="r") if n else np.zeros(0, dtype=self.dtype)
            setattr(self, split, arr)

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tok is None:
            self._tok = load_tokenizer(self.dir / "tokenizer")
        return self._tok

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val"):
            raise VQLadderError(f"unknown split {name!r}; use train or val")
        return getattr(self, name)


@dataclass
class DataConfig:
    path: PathStr = "data/builtin-bpe1024"   # prepared data directory; prepared from corpus+tokenizer if missing
    corpus: str = "builtin"             # corpus spec used when `path` is not prepared yet
    tokenizer: str = "bpe:1024"         # tokenizer spec used when `path` is not prepared yet
    val_every: Annotated[int, Check(min=2)] = 10  # every val_every-th block of the text is held out (BPE fitted on the rest)


def load_shards(cfg: DataConfig, progress: bool = True) -> TokenShards:
    """Open the prepared data directory, preparing it first (rank 0) if it does not exist yet."""
    p = Path(cfg.path)
    if not (p / "meta.json").is_file():
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        if not dist or torch.distributed.get_rank() == 0:
            print(f"preparing {cfg.corpus} with {cfg.tokenizer} into {p} …", file=sys.stderr)
            prepare(cfg.corpus, cfg.tokenizer, p, val_every=cfg.val_every, progress=progress)
        if dist:
            torch.distributed.barrier()
    shards = TokenShards(p)
    m = shards.meta
    if (m.get("corpus"), m.get("tokenizer")) != (cfg.corpus, cfg.tokenizer):
        raise VQLadderError(
            f"data directory {p} holds corpus {m.get('corpus')!r} with tokenizer {m.get('tokenizer')!r}, but the "
            f"config asks for {cfg.corpus!r} with {cfg.tokenizer!r}; fix data.* or use another data.path"
        )
    return shards
