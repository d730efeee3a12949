"""``vqladder.text.ladder``: levels over levels (codes, text, variable), their geometry and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import variable_config

from vqladder.errors import VQLadderError
from vqladder.models import (
    CompressorConfig,
    SequenceCompressor,
    VariableCompressor,
)
from vqladder.quantize import QuantizerConfig
from vqladder.text.ladder import Ladder


def _levels(vocab=50):
    cfgs = [(16, 8, vocab), (8, 4, 240), (4, 2, 240)]  # FSQ "256" = levels 8,6,5 = 240 codes
    out = []
    for n, m, v in cfgs:
        out.append(SequenceCompressor(CompressorConfig(vocab_size=v, in_len=n, out_len=m, d_model=32, n_heads=2,
                                                       enc_layers=1, latent_layers=1, dec_layers=1,
                                                       quantizer=QuantizerConfig(codebook_size=256))))
    return out


def _text_levels(vocab=50):
    return [SequenceCompressor(CompressorConfig(vocab_size=vocab, in_len=n, out_len=m, d_model=32, n_heads=2,
                                                enc_layers=1, latent_layers=1, dec_layers=1,
                                                quantizer=QuantizerConfig(codebook_size=256)))
            for n, m in ((8, 4), (16, 4), (16, 2))]




def test_encode_decode_shapes_across_three_levels():
    # 16 tokens -> 8 codes -> 4 -> 2: level 2 reads the 8 codes of one level-1 chunk, level 3 the 4 codes of one
    # level-2 chunk, so a top chunk is 16 tokens
    lad = Ladder(_levels(), mode="codes")
    assert [lad.chunk_len(k) for k in range(4)] == [16, 8, 4, 2]
    tokens = np.random.default_rng(0).integers(0, 50, 16 * 5 + 3)  # 5 top chunks + a tail
    for k in range(4):
        codes = lad.encode(tokens, level=k)
        assert codes.shape == (5 * lad.chunk_len(k),)
        assert codes.max() < lad.vocab(k)
    top = lad.encode(tokens)
    for to in range(3):
        assert lad.decode(top, 3, to).shape == (5 * lad.chunk_len(to),)
    assert lad.bits_per_token(3) == pytest.approx(2 * math.log2(lad.vocab(3)) / 16)


def test_wider_levels_cover_several_lower_chunks():
    # level 2 reads 16 level-1 codes = 2 level-1 chunks of 16 tokens
    l1 = SequenceCompressor(CompressorConfig(vocab_size=30, in_len=16, out_len=8, d_model=32, n_heads=2, enc_layers=1,
                                             latent_layers=1, dec_layers=1, quantizer=QuantizerConfig(codebook_size=256)))
    l2 = SequenceCompressor(CompressorConfig(vocab_size=240, in_len=16, out_len=2, d_model=32, n_heads=2, enc_layers=1,
                                             latent_layers=1, dec_layers=1, quantizer=QuantizerConfig(codebook_size=256)))
    lad = Ladder([l1, l2], mode="codes")
    assert [lad.chunk_len(k) for k in range(3)] == [32, 16, 2]
    assert lad.encode(np.zeros(64, dtype=np.int64)).shape == (4,)


def test_ladder_rejects_wrong_level_codes():
    lad = Ladder(_levels(), mode="codes")
    with pytest.raises(VQLadderError, match="out of range for level 1"):
        lad.decode(np.full(8, 300), 1)
    with pytest.raises(VQLadderError, match="whole top chunks"):
        lad.decode(np.zeros(3, dtype=np.int64), 1)
    with pytest.raises(VQLadderError, match="does not exist"):
        lad.decode(np.zeros(2, dtype=np.int64), 5)
    with pytest.raises(VQLadderError, match="reads"):
        Ladder(list(reversed(_levels())), mode="codes")


def test_text_ladder_geometry_and_round_trips():
    torch.manual_seed(0)
    lad = Ladder(_text_levels(), mode="text")
    assert [lad.chunk_len(k) for k in range(4)] == [16, 8, 4, 2]
    assert [lad.up_geometry(k) for k in (1, 2, 3)] == [(4, 8), (4, 8), (2, 4)]  # (codes, symbols below) per chunk
    tokens = np.random.default_rng(0).integers(0, 50, 16 * 3)
    for k in (1, 2, 3):
        codes = lad.encode(tokens, level=k)
        assert len(codes) == 3 * lad.chunk_len(k)
        # each level encodes the tokens directly (not the level below) and its VQ decoder returns tokens
        assert np.array_equal(codes, lad.levels[k - 1].encode(torch.from_numpy(tokens).view(-1, lad.levels[k - 1].config.in_len)).reshape(-1).numpy())
        assert lad.decode(codes, k, 0, method="vq").shape == tokens.shape
        assert len(lad.decode(codes, k, k - 1, method="vq")) == 3 * lad.chunk_len(k - 1)
    with pytest.raises(VQLadderError, match="multiple of level 1"):
        Ladder(_text_levels()[:1] + [SequenceCompressor(CompressorConfig(
            vocab_size=50, in_len=12, out_len=2, d_model=32, n_heads=2, quantizer=QuantizerConfig(codebook_size=256)))],
            mode="text")


def test_ladder_with_a_variable_level_over_tokens_and_over_codes():
    """Ladder: [fixed, variable] (variable over codes) and [variable, fixed] (variable over tokens)."""
    from vqladder.models import CompressorConfig, SequenceCompressor
    from vqladder.text.ladder import Ladder

    q = QuantizerConfig(kind="fsq", codebook_size=256)
    small = dict(d_model=32, n_heads=2, enc_layers=1, latent_layers=1, dec_layers=1, quantizer=q)
    toks = np.random.default_rng(0).integers(0, 16, 32 * 12)
    fixed = SequenceCompressor(CompressorConfig(vocab_size=16, in_len=32, out_len=8, **small)).eval()
    var_codes = VariableCompressor(variable_config(vocab_size=fixed.quantizer.codebook_size, in_len=16, target_ratio=4)).eval()
    lad = Ladder([fixed, var_codes], mode="codes")
    assert lad.chunk_len(0) == 64 and lad.chunk_len(1) == 16 and lad.vocab(2) == var_codes.stream_vocab
    with pytest.raises(VQLadderError, match="variable number of symbols"):
        lad.chunk_len(2)
    top = lad.encode(toks)
    back = lad.decode(top, 2)
    assert back.shape == toks.shape and int(back.max()) < 16

    var_toks = VariableCompressor(variable_config()).eval()
    above = SequenceCompressor(CompressorConfig(vocab_size=var_toks.stream_vocab, in_len=8, out_len=2, **small)).eval()
    lad2 = Ladder([var_toks, above], mode="codes")
    s1 = lad2.encode(toks, level=1)
    assert np.array_equal(lad2.decode(s1, 1), var_toks.decode_stream(s1))  # level 1 exact
    top2 = lad2.encode(toks)
    assert len(top2) == len(s1) // 8 * 2
    rec = lad2.decode(top2, 2)       # an imperfect level-2 reconstruction is repaired into whole chunks
    assert len(rec) % 32 == 0 and len(rec) > 0
    with pytest.raises(VQLadderError, match="not whole chunks|crosses"):
        var_toks.decode_stream(s1[:-1])  # strict by default

