"""``vqladder.text.ladder_eval``: the code-value diagnostic, the two-part code length, repetition."""

import math

import numpy as np
import pytest
import torch
from helpers import fit_on_batches

from vqladder.models import (
    CodePrior,
    CompressorConfig,
    PriorConfig,
    SequenceCompressor,
    Upsampler,
    UpsamplerConfig,
)
from vqladder.quantize import QuantizerConfig
from vqladder.text.ladder import Ladder


def _text_levels(vocab=50):
    return [SequenceCompressor(CompressorConfig(vocab_size=vocab, in_len=n, out_len=m, d_model=32, n_heads=2,
                                                enc_layers=1, latent_layers=1, dec_layers=1,
                                                quantizer=QuantizerConfig(codebook_size=256)))
            for n, m in ((8, 4), (16, 4), (16, 2))]


def test_code_value_diagnostic_tells_a_decoder_that_uses_its_codes_from_one_that_does_not():
    """Planted: every lower symbol is a function of the code above it alone (no previous-symbol pattern), so only
    a decoder that reads its codes can beat uniform. Trained, its true-code bits sit far below another chunk's
    and its greedy decoding from the true codes recovers the symbols; untrained, the diagnostic says the codes
    carry nothing."""
    from vqladder.text.ladder_eval import CODE_VALUE_MIN_BITS, upsampler_bits

    g = torch.Generator().manual_seed(0)
    table = torch.randint(0, 12, (10, 3), generator=g)  # code -> the 3 symbols under it

    def stream(n, seed):
        par = torch.randint(0, 10, (n, 2), generator=torch.Generator().manual_seed(seed))
        return par.reshape(-1).numpy(), table[par].reshape(-1).numpy()

    par_va, low_va = stream(64, 1)

    def make():
        torch.manual_seed(0)
        return Upsampler(UpsamplerConfig(vocab_size=12, parent_vocab=10, length=6, parent_len=2, d_model=32,
                                         n_heads=2, enc_layers=1, dec_layers=1, prev_chunk=True, code_dropout=0.1))

    untrained = make().eval()
    before = upsampler_bits(untrained, low_va, par_va, 6, 2, -1, 16, greedy_chunks=16)
    assert before["bits_other_codes"] - before["bits_per_symbol"] < CODE_VALUE_MIN_BITS
    up = make()
    from vqladder.data.sampler import pair_batch

    par_tr, low_tr = stream(4096, 2)
    rng = np.random.default_rng(0)
    fit_on_batches(up, lambda i: pair_batch(low_tr, par_tr, rng.integers(0, 4096, 32) * 6, 6, 2, prev=True), steps=200)
    after = upsampler_bits(up, low_va, par_va, 6, 2, -1, 16, greedy_chunks=16)
    assert after["bits_per_symbol"] < 0.3 and after["bits_other_codes"] > after["bits_per_symbol"] + 2
    assert after["bits_no_codes"] > after["bits_per_symbol"] + 1  # the learned "no codes" vector carries nothing
    assert after["acc"] > 0.95 and after["greedy_acc"] > 0.95


def test_two_part_code_length_of_a_planted_uniform_ladder_is_hand_computed():
    """Zero output heads make the prior and every upsampler uniform: the code length is then known exactly."""
    from vqladder.text.ladder_eval import hierarchical_bits

    torch.manual_seed(0)
    lad = Ladder(_text_levels(), mode="text")
    lad.prior = CodePrior(PriorConfig(vocab_size=lad.vocab(3), context=4, d_model=32, n_heads=2, n_layers=1))
    lad.upsamplers = []
    for k in (1, 2, 3):
        p, n = lad.up_geometry(k)
        lad.upsamplers.append(Upsampler(UpsamplerConfig(vocab_size=lad.vocab(k - 1), parent_vocab=lad.vocab(k), length=n,
                                                        parent_len=p, d_model=32, n_heads=2, prev_chunk=True)))
    for m in [lad.prior] + lad.upsamplers:
        torch.nn.init.zeros_(m.head.weight)
    tokens = np.random.default_rng(1).integers(0, 50, 16 * 8)
    streams = {k: (None, lad.encode(tokens, level=k)) for k in range(4)}
    bits = hierarchical_bits(lad, streams, n_top=8, batch_size=3)
    n_tok = tokens.size
    hand = {"prior": 8 * 2 * math.log2(lad.vocab(3)) / n_tok,
            **{f"upsampler{k}": 8 * lad.chunk_len(k - 1) * math.log2(lad.vocab(k - 1)) / n_tok for k in (1, 2, 3)}}
    assert bits == pytest.approx(hand, rel=1e-5)


def test_distinct_bigrams_flags_repetition():
    from vqladder.text.ladder_eval import distinct_bigrams

    assert distinct_bigrams([1, 2, 3, 4, 5]) == 1.0
    assert distinct_bigrams([7, 7, 7, 7, 7]) == 0.25

