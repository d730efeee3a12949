"""``vqladder.eval.baselines``: zstd, unigram, most-frequent-token and LM references on planted corpora."""

import numpy as np
import pytest

from vqladder.data import make_tokenizer
from vqladder.eval.baselines import trivial_accuracy, unigram_bits_per_token, zstd_bits_per_token


def test_references_on_planted_corpora(tmp_path):
    tok = make_tokenizer("bytes")
    rng = np.random.default_rng(0)
    uniform = rng.integers(97, 97 + 16, size=20_000).astype(np.uint16)  # 16 letters, uniform: 4 bits each
    assert unigram_bits_per_token(uniform[:10_000], uniform[10_000:], 256) == pytest.approx(4.0, abs=0.05)
    rep = np.frombuffer(b"abcdefgh" * 2000, dtype=np.uint8).astype(np.uint16)
    z = zstd_bits_per_token(tok, rep, 256)
    assert z["zstd_whole"] < 0.05 and z["utf8_raw"] == pytest.approx(8.0)
    zr = zstd_bits_per_token(tok, uniform, 256)
    assert 3.9 < zr["zstd_whole"] < 6  # no compressor beats the 4-bit entropy of uniform letters
    assert trivial_accuracy(rep, rep, 256) == pytest.approx(1 / 8)


def test_most_frequent_token_floor_takes_its_token_from_train():
    """The floor's token comes from the train split; val's own most frequent token would score 0.8."""
    train = np.array([1] * 90 + [2] * 10, dtype=np.uint16)
    val = np.array([2] * 80 + [1] * 20, dtype=np.uint16)
    assert trivial_accuracy(train, val, 4) == pytest.approx(0.2)


def test_lm_bits_score_every_position_with_the_unigram_first():
    """A planted LM: uniform over 4 symbols at every position; the first position is scored by the unigram."""
    import math

    import torch

    from vqladder.eval.baselines import lm_bits_per_token, unigram_logp

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.zeros(*x.shape, 4) + self.w

    tokens = np.array([0, 1, 2, 3] * 8, dtype=np.uint16)  # 4 chunks of 8
    train = np.array([0] * 5 + [1, 2, 3], dtype=np.uint16)  # add-one counts 6, 2, 2, 2 of 12
    lp = unigram_logp(train, 4)
    assert lm_bits_per_token(Uniform(), tokens, 8) == pytest.approx(2.0)  # positions 2..8 only
    # all 8 positions: 7 x 2 bits + the first token (always 0) at -log2(6/12) = 1 bit
    assert lm_bits_per_token(Uniform(), tokens, 8, first_logp=lp) == pytest.approx((7 * 2 + 1) / 8)
    assert lp[0] == pytest.approx(math.log(0.5))

