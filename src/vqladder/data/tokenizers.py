"""Tokenizers behind one interface: ``encode``, ``decode``, ``vocab_size``, ``save(dir)`` / ``load_tokenizer(dir)``.

Specs accepted by :func:`make_tokenizer`:
  * ``bytes``                     — UTF-8 bytes, vocabulary 256;
  * ``bpe:N``                     — byte-level BPE with N entries trained on the corpus (HF ``tokenizers``);
  * ``cl100k_base`` / ``o200k_base`` / ``gpt2`` — OpenAI encodings, offline via ``bpe-openai`` (``tiktoken``
    is used for gpt2 when it is installed). Their 100k–200k vocabularies are *compacted* to the ids the
    corpus uses (plus one ``<unk>``), and the mapping is saved with the tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import VQLadderError
from ..io import atomic_write_json, atomic_write_text

OPENAI_ENCODINGS = ("cl100k_base", "o200k_base", "gpt2")


class Tokenizer:
    """Shared interface. Subclasses set ``spec`` and implement the four methods."""

    spec: str = ""

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def check_ids(self, ids: Iterable[int]) -> list[int]:
        """``ids`` as ints, each a token of this vocabulary (else one line naming the range)."""
        out = [int(i) for i in ids]
        bad = [i for i in out if not 0 <= i < self.vocab_size]
        if bad:
            raise VQLadderError(f"token id {bad[0]} out of range: the {self.spec} tokenizer has ids 0..{self.vocab_size - 1}")
        return out

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(d / "tokenizer_meta.json", {"spec": self.spec, "vocab_size": self.vocab_size, **self._meta()})
        self._save_files(d)

    def _meta(self) -> dict:
        return {}

    def _save_files(self, d: Path) -> None:
        pass

    # Tokenizers that must see the corpus before use (BPE training, id compaction) override these.
    needs_fit = False

    def fit(self, texts: Iterable[str]) -> None:
        pass


class ByteTokenizer(Tokenizer):
    spec = "bytes"

    @property
    def vocab_size(self) -> int:
        return 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(self.check_ids(ids)).decode("utf-8", errors="replace")


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style pre-tokenisation) trained with HF ``tokenizers``."""

    needs_fit = True

    def __init__(self, size: int, tok=None):
        if size < 257:
            raise VQLadderError(f"bpe:{size}: a byte-level BPE needs at least 257 entries")
        if size > 2**20:
            raise VQLadderError(f"bpe:{size}: at most bpe:{2**20} entries")
        self.size = size
        self.spec = f"bpe:{size}"
        self._tok = tok

    def fit(self, texts: Iterable[str]) -> None:
        from tokenizers import Tokenizer as HFTok
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tok = HFTok(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
        tok.train_from_iterator(texts, trainer=trainer)
        self._tok = tok
        self.fitted = tok.get_vocab_size()

    def check_fit(self) -> None:
        """After ``fit``: a corpus that ran out of pairs to merge gives fewer entries than asked; the ids above
        would never occur, yet every model would size its embeddings (and the meta its vocabulary) for ``size``."""
        got = getattr(self, "fitted", self.size)
        if got < self.size:
            raise VQLadderError(f"{self.spec}: this corpus gives only {got} BPE entries; use bpe:{got} or smaller")

    @property
    def vocab_size(self) -> int:
        return self.size

    def _check(self):
        if self._tok is None:
            raise RuntimeError("BPE tokenizer used before fit()")

    def encode(self, text: str) -> list[int]:
        self._check()
        return self._tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        self._check()
        return [e.ids for e in self._tok.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        self._check()
        return self._tok.decode(self.check_ids(ids))

    def _save_files(self, d: Path) -> None:
        atomic_write_text(d / "bpe.json", self._tok.to_str())

    @classmethod
    def load(cls, d: Path, meta: dict) -> "BPETokenizer":
        from tokenizers import Tokenizer as HFTok

        return cls(int(meta["spec"].split(":")[1]), HFTok.from_file(str(d / "bpe.json")))


def _openai_encoding(name: str):
    if name == "gpt2":  # bpe-openai ships no gpt2 tables; tiktoken downloads them on first use
        try:
            import tiktoken

            return tiktoken.get_encoding("gpt2")
        except Exception as e:
            raise VQLadderError(f"tokenizer gpt2 needs tiktoken and its (downloaded, then cached) tables: "
                                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    import bpe_openai

    return bpe_openai.get_encoding(name)


class OpenAITokenizer(Tokenizer):
    """cl100k_base / o200k_base / gpt2, compacted to the ids the corpus uses; unseen ids map to ``<unk>``."""

    needs_fit = True

    def __init__(self, name: str, used_ids: list[int] | None = None):
        self.spec = name
        self.enc = _openai_encoding(name)
        self.used_ids: np.ndarray | None = None
        if used_ids is not None:
            self._set_used(np.asarray(used_ids, dtype=np.int64))

    def _set_used(self, used: np.ndarray) -> None:
        self.used_ids = np.unique(used).astype(np.int64)
        n_raw = max(int(self.enc.n_vocab), int(self.used_ids.max(initial=0)) + 1)
        self._to_compact = np.full(n_raw, len(self.used_ids), dtype=np.int64)  # default: <unk>
        self._to_compact[self.used_ids] = np.arange(len(self.used_ids))

    def raw_encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(texts)

    def fit(self, texts: Iterable[str]) -> None:
        seen: set[int] = set()
        for ids in self.raw_encode_batch(list(texts)):
            seen.update(ids)
        self.set_used_from(seen)

    def set_used_from(self, ids) -> None:
        self._set_used(np.fromiter(ids, dtype=np.int64))

    def compact(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.int64)
        out = np.full(raw.shape, len(self.used_ids), dtype=np.int64)
        ok = raw < len(self._to_compact)
        out[ok] = self._to_compact[raw[ok]]
        return out

    @property
    def vocab_size(self) -> int:
        if self.used_ids is None:
            return int(self.enc.n_vocab)
        return len(self.used_ids) + 1  # + <unk>

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        raw = self.raw_encode_batch(texts)
        if self.used_ids is None:
            return raw
        return [self.compact(np.asarray(r, dtype=np.int64)).tolist() for r in raw]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        if self.used_ids is None:
            return self.enc.decode(ids)
        unk = len(self.used_ids)
        parts, run = [], []
        for i in ids:
            if i >= unk or i < 0:
                if run:
                    parts.append(self.enc.decode(run))
                    run = []
                parts.append("\ufffd")
            else:
                run.append(int(self.used_ids[i]))
        if run:
            parts.append(self.enc.decode(run))
        return "".join(parts)

    def _meta(self) -> dict:
        return {"compacted": self.used_ids is not None}

    def _save_files(self, d: Path) -> None:
        if self.used_ids is not None:
            atomic_write_json(d / "used_ids.json", self.used_ids.tolist())


def make_tokenizer(spec: str) -> Tokenizer:
    """A fresh tokenizer from a spec string (``bytes``, ``bpe:N``, ``cl100k_base``, ``o200k_base``, ``gpt2``)."""
    spec = (spec or "").strip()
    if spec == "bytes":
        return ByteTokenizer()
    if spec.startswith("bpe:"):
        try:
            n = int(spec[4:])
        except ValueError:
            raise VQLadderError(f"tokenizer {spec!r}: expected bpe:N with an integer N, e.g. bpe:2048")
        return BPETokenizer(n)
    if spec in OPENAI_ENCODINGS:
        return OpenAITokenizer(spec)
    raise VQLadderError(f"unknown tokenizer {spec!r}; use bytes, bpe:N, {', '.join(OPENAI_ENCODINGS)}")


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load a tokenizer saved with ``Tokenizer.save``."""
    d = Path(directory)
    mp = d / "tokenizer_meta.json"
    if not mp.is_file():
        raise VQLadderError(f"no tokenizer saved in {d} (tokenizer_meta.json missing)")
    try:
        meta = json.loads(mp.read_text())
        spec = meta["spec"]
        if spec == "bytes":
            return ByteTokenizer()
        if spec.startswith("bpe:"):
            return BPETokenizer.load(d, meta)
        if spec in OPENAI_ENCODINGS:
            used = json.loads((d / "used_ids.json").read_text()) if meta.get("compacted") else None
            return OpenAITokenizer(spec, used)
    except VQLadderError:
        raise
    except Exception as e:  # a truncated / edited file: JSON, a missing key, HF's own parse error
        raise VQLadderError(f"the tokenizer in {d} is corrupted ({type(e).__name__}); re-run `vqladder prepare` "
                            f"or copy it again from the data directory")
    raise VQLadderError(f"tokenizer in {d} has unknown spec {spec!r}")
