"""``vqladder.data.shards``: prepared token shards, their split, refusal to overwrite, truncation."""

import hashlib

import numpy as np
import pytest

from vqladder.data import TokenShards, prepare
from vqladder.errors import VQLadderError


def _digest(d):
    return {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in ("train.bin", "val.bin")}


@pytest.mark.parametrize("tok", ["bytes", "bpe:300", "cl100k_base"])
def test_shards_deterministic_and_split(tmp_path, tiny_corpus, tok):
    a = prepare(str(tiny_corpus), tok, tmp_path / "a", block_size=512)
    b = prepare(str(tiny_corpus), tok, tmp_path / "b", block_size=512)
    assert _digest(a.dir) == _digest(b.dir)
    m = a.meta
    assert m["val_tokens"] > 0 and m["train_tokens"] > 8 * m["val_tokens"]
    assert a.train.dtype == np.uint16
    text = a.tokenizer.decode(a.train[:200].tolist())
    assert text == tiny_corpus.read_text()[: len(text)]
    assert not list(tmp_path.glob(".*tmp*"))


def test_prepare_refuses_to_overwrite(tmp_path, tiny_corpus):
    prepare(str(tiny_corpus), "bytes", tmp_path / "d", block_size=512)
    with pytest.raises(VQLadderError, match="already prepared"):
        prepare(str(tiny_corpus), "bytes", tmp_path / "d", block_size=512)
    prepare(str(tiny_corpus), "bytes", tmp_path / "d", force=True, block_size=512)


def test_shards_detect_truncation(tmp_path, tiny_corpus):
    sh = prepare(str(tiny_corpus), "bytes", tmp_path / "d", block_size=512)
    with open(sh.dir / "train.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(VQLadderError, match="wrong size"):
        TokenShards(tmp_path / "d")

