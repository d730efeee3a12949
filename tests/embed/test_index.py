"""``vqladder.embed.index``: a QINCo index built and searched."""

from helpers import CountingEmbedder

from vqladder.embed.recipe import EmbedConfig


def test_qinco_index_builds_and_searches(tmp_path, tiny_corpus):
    from vqladder.embed.models import CodeIndex
    from vqladder.embed.recipe import build_index

    e = CountingEmbedder(16)
    cfg = EmbedConfig(out_dir=str(tmp_path), corpora=[str(tiny_corpus)], max_texts=400)
    cfg.qinco.train.steps, cfg.qinco.train.max_time, cfg.qinco.train.batch_size = 10, -1, 64
    d = build_index(cfg, tmp_path / "index", 3, embedder=e, log=lambda m: None)
    index = CodeIndex(d, embedder=e)
    assert index.meta["quantizer"] == "qinco" and index.codes.shape == (400, 3)
    text = index.texts[7]
    assert (index.encode([text])[0] == index.codes[7]).all()  # encoding a database text gives its stored code
    hits = index.search(text, k=3)
    assert len(hits) == 3 and len(hits[0][2]) == 3 and any(h[1] == text for h in hits)

