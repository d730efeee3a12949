"""``vqladder.data.corpus``: the built-in corpus, files, folders, globs, JSONL and Hugging Face datasets, bad
corpora."""

import json

import pytest

from vqladder.data import open_corpus, prepare
from vqladder.data.corpus import builtin_documents
from vqladder.errors import VQLadderError


def test_builtin_corpus_is_real_prose():
    docs = []
    for d in builtin_documents():
        docs.append(d)
        if len(docs) >= 50:
            break
    text = " ".join(docs)
    assert len(text) > 20_000
    assert " the " in text


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

