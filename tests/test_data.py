import hashlib
import json

import numpy as np
import pytest

from vqladder.data import TokenShards, WindowSampler, make_tokenizer, open_corpus, prepare, val_windows
from vqladder.data.corpus import builtin_documents
from vqladder.data.tokenizers import load_tokenizer
from vqladder.errors import VQLadderError

SAMPLE = "Hello, world! Ünïcödé text — with emoji 🚀 and\nnew lines.\tTabs too."


def test_builtin_corpus_is_real_prose():
    docs = []
    for d in builtin_documents():
        docs.append(d)
        if len(docs) >= 50:
            break
    text = " ".join(docs)
    assert len(text) > 20_000
    assert " the " in text


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


def test_folder_glob_and_jsonl(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("alpha text\n")
    (tmp_path / "c" / "b.md").write_text("# beta\n")
    (tmp_path / "c" / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "c" / "d.jsonl").write_text(json.dumps({"text": "gamma"}) + "\n" + json.dumps({"text": "delta"}) + "\n")
    docs = list(open_corpus(str(tmp_path / "c")))
    assert docs == ["alpha text\n", "# beta\n", "gamma", "delta"]
    assert list(open_corpus(str(tmp_path / "c" / "*.md"))) == ["# beta\n"]


def test_non_utf8_replaced_and_counted(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("caf".encode() + b"\xe9 cr\xe8me\n")
    c = open_corpus(str(p))
    docs = list(c)
    assert c.replacements == 2 and "\ufffd" in docs[0]


@pytest.mark.parametrize("setup,msg", [
    (lambda p: p.write_text(""), "empty"),
    (lambda p: p.write_bytes(b"\x7fELF\x00\x00\x01"), "binary"),
    (lambda p: None, "does not exist"),
])
def test_corpus_bad_inputs(tmp_path, setup, msg):
    p = tmp_path / "x.txt"
    setup(p)
    with pytest.raises(VQLadderError, match=msg):
        prepare(str(p), "bytes", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp*"))


def test_bad_jsonl(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"body": "no text field"}\n')
    with pytest.raises(VQLadderError, match="no string field 'text'"):
        list(open_corpus(str(p)))


def test_unknown_tokenizer():
    with pytest.raises(VQLadderError, match="unknown tokenizer"):
        make_tokenizer("wordpiece")


def test_hf_corpus_through_datasets_api(monkeypatch):
    """The hf: loader against a stand-in `datasets` module (the real one is an optional extra, offline here)."""
    import sys
    import types

    calls = {}
    fake = types.ModuleType("datasets")

    class DatasetDict(dict):
        pass

    def load_dataset(name, split, streaming):
        calls["args"] = (name, split, streaming)
        return iter([{"text": "first"}, {"text": "second"}])

    fake.DatasetDict, fake.load_dataset = DatasetDict, load_dataset
    fake.load_from_disk = lambda p: DatasetDict(train=[{"text": "x"}])
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert list(open_corpus("hf:someone/corpus:validation")) == ["first", "second"]
    assert calls["args"] == ("someone/corpus", "validation", True)

    def offline(*a, **k):
        raise ConnectionError("no network")

    fake.load_dataset = offline
    with pytest.raises(VQLadderError, match="cannot load hf dataset 'x/y'.*no network"):
        list(open_corpus("hf:x/y"))


def test_hf_local_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["one doc", "two doc"]})
    ds.save_to_disk(str(tmp_path / "ds"))
    assert list(open_corpus(f"hf:{tmp_path / 'ds'}")) == ["one doc", "two doc"]


def test_sampler_resumable_and_sharded():
    tokens = np.arange(10_000, dtype=np.uint16)
    s = WindowSampler(tokens, 64, 8, seed=3)
    for _ in range(5):
        s.next_batch()
    state = s.state_dict()
    expect = [s.next_batch() for _ in range(30)]  # crosses epoch boundaries (156 windows / 8)
    s2 = WindowSampler(tokens, 64, 8, seed=3)
    s2.load_state_dict(state)
    got = [s2.next_batch() for _ in range(30)]
    assert all((a == b).all() for a, b in zip(expect, got))
    # windows are contiguous
    b = expect[0]
    assert ((b[:, 1:] - b[:, :-1]) == 1).all()
    # two ranks see disjoint windows within an epoch
    r0 = WindowSampler(tokens, 64, 4, seed=3, rank=0, world=2)
    r1 = WindowSampler(tokens, 64, 4, seed=3, rank=1, world=2)
    s0 = set(np.concatenate([r0.next_starts() for _ in range(10)]).tolist())
    s1 = set(np.concatenate([r1.next_starts() for _ in range(10)]).tolist())
    assert not (s0 & s1)
    # and together they see exactly what one rank with the same global batch sees
    one = WindowSampler(tokens, 64, 8, seed=3)
    r0 = WindowSampler(tokens, 64, 4, seed=3, rank=0, world=2)
    r1 = WindowSampler(tokens, 64, 4, seed=3, rank=1, world=2)
    for _ in range(25):
        assert (np.concatenate([r0.next_starts(), r1.next_starts()]) == one.next_starts()).all()


def test_sampler_too_short():
    with pytest.raises(VQLadderError, match="fewer than one chunk"):
        WindowSampler(np.zeros(100, dtype=np.uint16), 256, 4)
    with pytest.raises(VQLadderError, match="fewer than one chunk"):
        val_windows(np.zeros(100, dtype=np.uint16), 256)


def test_shards_detect_truncation(tmp_path, tiny_corpus):
    sh = prepare(str(tiny_corpus), "bytes", tmp_path / "d", block_size=512)
    with open(sh.dir / "train.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(VQLadderError, match="wrong size"):
        TokenShards(tmp_path / "d")


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
