"""``vqladder.embed.data``: the embedding cache, vector files, the docstrings corpus."""

import numpy as np
import pytest
from helpers import CountingEmbedder, planted_clusters

from vqladder.embed.data import embed_cached, split_texts
from vqladder.errors import VQLadderError


def test_embedding_cache_invalidates_on_texts_or_model(tmp_path):
    e = CountingEmbedder()
    a = embed_cached(["one text", "two texts"], "m1", tmp_path, e, progress=False)
    embed_cached(["one text", "two texts"], "m1", tmp_path, e, progress=False)
    assert e.calls == 1 and a.shape == (2, 32)
    embed_cached(["one text", "three texts"], "m1", tmp_path, e, progress=False)
    assert e.calls == 2
    embed_cached(["one text", "two texts"], "m2", tmp_path, e, progress=False)
    assert e.calls == 3
    with pytest.raises(VQLadderError, match="empty"):
        embed_cached([], "m1", tmp_path, e)


def test_load_vectors_reads_npy_and_fvecs(tmp_path):
    from vqladder.embed.data import load_vectors

    x = planted_clusters(50, 12)
    np.save(tmp_path / "v.npy", x.astype(np.float64))
    rows = np.concatenate([np.full((50, 1), 12, dtype=np.int32), x.view(np.int32)], 1)
    rows.tofile(tmp_path / "v.fvecs")
    for name in ("v.npy", "v.fvecs"):
        got = load_vectors(tmp_path / name)
        assert got.dtype == np.float32 and got.shape == (50, 12) and np.allclose(got, x)
    rows[:, 0].tofile(tmp_path / "bad.fvecs")  # widths only: "12" then the next header is 12 too... not a row
    with pytest.raises(VQLadderError):
        load_vectors(tmp_path / "bad.fvecs")


def test_docstrings_corpus_reads_python_sources_without_importing(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    long_doc = "A module docstring that is long enough to count. " * 6
    (pkg / "__init__.py").write_text(f'"""{long_doc}"""\nraise SystemExit("never imported")\n')
    (pkg / "short.py").write_text('"""Too short."""\n')
    texts = split_texts(f"docstrings:{pkg}", max_chars=200)
    assert texts and all("long enough" in t for t in texts)
    with pytest.raises(VQLadderError, match="no installed package"):
        split_texts("docstrings:no_such_package_xyz")

