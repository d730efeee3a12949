"""``vqladder.data.tokenizers``: byte, BPE and OpenAI tokenizers, fitted on the train split only."""

import numpy as np
import pytest

from vqladder.data import make_tokenizer, prepare
from vqladder.data.tokenizers import load_tokenizer
from vqladder.errors import VQLadderError

SAMPLE = "Hello, world! Ünïcödé text — with emoji 🚀 and\nnew lines.\tTabs too."


@pytest.mark.parametrize("spec", ["bytes", "cl100k_base", "o200k_base", "gpt2"])
def test_tokenizers_round_trip(spec, tmp_path):
    if spec == "gpt2":
        try:
            make_tokenizer(spec)
        except VQLadderError as e:  # offline without tiktoken's cached tables: a clear error, not a traceback
            assert "tiktoken" in str(e)
            pytest.skip("gpt2 needs tiktoken tables (offline here)")
    tok = make_tokenizer(spec)
    if tok.needs_fit:
        tok.fit([SAMPLE, "more text here"])
    ids = tok.encode(SAMPLE)
    assert tok.decode(ids) == SAMPLE
    assert max(ids) < tok.vocab_size
    tok.save(tmp_path / "tok")
    tok2 = load_tokenizer(tmp_path / "tok")
    assert tok2.encode(SAMPLE) == ids and tok2.vocab_size == tok.vocab_size


def test_bpe_round_trip(tmp_path, tiny_corpus):
    tok = make_tokenizer("bpe:300")
    tok.fit([tiny_corpus.read_text(), SAMPLE])
    assert tok.vocab_size == 300
    ids = tok.encode(SAMPLE)
    assert tok.decode(ids) == SAMPLE
    tok.save(tmp_path / "t")
    assert load_tokenizer(tmp_path / "t").encode(SAMPLE) == ids


def test_openai_compaction_and_unk():
    tok = make_tokenizer("cl100k_base")
    tok.fit(["the cat sat on the mat"])
    assert tok.vocab_size < 20
    ids = tok.encode("the cat sat")
    assert tok.decode(ids) == "the cat sat"
    unk = tok.encode("zebra")  # unseen ids map to <unk>
    assert all(i == tok.vocab_size - 1 for i in unk)
    assert "\ufffd" in tok.decode(unk)


def test_unknown_tokenizer():
    with pytest.raises(VQLadderError, match="unknown tokenizer"):
        make_tokenizer("wordpiece")


def test_bpe_is_fitted_on_the_train_split_only(tmp_path):
    """Held-out text changes no merge: two corpora that differ only in their val blocks give the same BPE."""
    def block(words, n=512):  # exactly one split block of text
        return ((" ".join(words) + " ") * 200)[:n - 1] + "\n"

    train_words = "the cat sat on a mat while seven dogs ran over green hills and every bird sang".split()
    merges = []
    for name, val_word in (("a", "zyzzyva"), ("b", "quokkas")):
        text = "".join(block(train_words[i % 5:] + train_words[:i % 5]) if i % 2 == 0 else block([val_word])
                       for i in range(20))
        (tmp_path / f"{name}.txt").write_text(text)
        sh = prepare(str(tmp_path / f"{name}.txt"), "bpe:270", tmp_path / name, val_every=2, block_size=512)
        assert sh.tokenizer.decode(sh.val[:7].tolist()) == val_word  # val holds exactly the val blocks
        assert len(sh.tokenizer.encode(val_word)) == len(val_word)   # ... and no merge was learned from them
        merges.append((tmp_path / name / "tokenizer" / "bpe.json").read_bytes())
    assert merges[0] == merges[1]


def test_decoding_ids_outside_the_vocabulary_is_one_line():
    tok = make_tokenizer("bytes")
    with pytest.raises(VQLadderError, match="token id 999 out of range: the bytes tokenizer has ids 0..255"):
        tok.decode([65, 999])
    assert tok.decode([104, 105]) == "hi"


def test_openai_compaction_is_fitted_on_the_train_split_only(tmp_path):
    """A token that only the held-out blocks use is <unk> in the compact vocabulary: nothing is fitted on val."""
    blocks = ["the cat sat on the mat. " * 20 + "\n"] * 9 + ["zebra quagga okapi. " * 20 + "\n"]  # block 10 is val
    (tmp_path / "c.txt").write_text("".join(b[:512].ljust(512) for b in blocks))
    sh = prepare(str(tmp_path / "c.txt"), "cl100k_base", tmp_path / "d", block_size=512)
    unk = sh.vocab_size - 1
    assert sh.meta["val_tokens"] > 0 and (np.asarray(sh.val) == unk).mean() > 0.5
    assert unk not in np.asarray(sh.train).tolist()
    assert "zebra" not in sh.tokenizer.decode(np.asarray(sh.val).tolist())

