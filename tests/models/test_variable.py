"""``vqladder.models.variable``: segment arithmetic, boundary methods, ratio loss, bit accounting, streams."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import variable_config

from vqladder.data import WindowSampler
from vqladder.data.synthetic import mixed_spans
from vqladder.errors import VQLadderError
from vqladder.eval import evaluate_compressor
from vqladder.models import CausalLM, LMConfig, VariableCompressor
from vqladder.models.variable import (
    boundary_bits,
    cap_segments,
    content_mask,
    entropy_starts,
    pool_segments,
    ratio_loss,
    segment_lengths,
    segment_positions,
    starts_from_lengths,
    unpool_segments,
)
from vqladder.quantize import QuantizerConfig
from vqladder.train import Trainer, TrainerConfig


def _starts(rows):
    return torch.tensor(rows, dtype=torch.bool)




def test_pool_unpool_round_trip_on_known_segments():
    starts = _starts([[1, 0, 0, 1, 0, 1, 1, 0], [1, 1, 0, 0, 0, 0, 1, 0]])
    seg, off = segment_positions(starts)
    assert seg.tolist() == [[0, 0, 0, 1, 1, 2, 3, 3], [0, 1, 1, 1, 1, 1, 2, 2]]
    assert off.tolist() == [[0, 1, 2, 0, 1, 0, 0, 1], [0, 0, 1, 2, 3, 4, 0, 1]]
    assert segment_lengths(starts).tolist() == [[3, 2, 1, 2], [1, 5, 2, 0]]
    # a signal constant within each segment survives pool -> unpool exactly; pooling is the segment mean
    z = torch.randn(2, 4, 5)
    h = unpool_segments(z, seg)
    pooled = pool_segments(h, seg, 4)
    assert torch.allclose(pooled[0], z[0]) and torch.allclose(pooled[1, :3], z[1, :3])
    assert torch.equal(pooled[1, 3], torch.zeros(5))  # padding slot
    x = torch.arange(8.0).view(1, 8, 1).expand(2, 8, 1)
    assert pool_segments(x, seg, 4)[0, :, 0].tolist() == [1.0, 3.5, 5.0, 6.5]
    # lengths -> starts -> lengths
    assert torch.equal(starts_from_lengths(segment_lengths(starts), 8), starts)
    with pytest.raises(VQLadderError, match="sum to the chunk length"):
        starts_from_lengths(torch.tensor([[3, 3, 0]]), 8)


def test_cap_splits_long_segments_only():
    starts = _starts([[1, 0, 0, 0, 0, 0, 0, 1, 0, 0]])
    capped = cap_segments(starts, 3)
    assert capped.int().tolist() == [[1, 0, 0, 1, 0, 0, 1, 1, 0, 0]]
    assert int(segment_lengths(capped).max()) <= 3
    assert torch.equal(cap_segments(capped, 3), capped)  # nothing left to split
    assert bool(cap_segments(_starts([[0, 0, 1, 0]]), 4)[0, 0])  # position 0 always starts a segment


def test_entropy_starts_on_planted_entropies():
    h = torch.tensor([[9.0, 0.1, 0.2, 3.0, 0.1, 0.1, 2.5, 0.0]])
    assert torch.nonzero(entropy_starts(h, 1.0)[0]).view(-1).tolist() == [0, 3, 6]
    assert torch.nonzero(entropy_starts(h, 2.7)[0]).view(-1).tolist() == [0, 3]


def test_entropy_boundaries_fall_after_the_planted_surprise(monkeypatch):
    """A planted LM: token 1 is always followed by a uniformly random token, everything else is predictable.
    Entropy boundaries must fall exactly on the tokens after each 1; calibration picks the target rate."""
    m = VariableCompressor(variable_config(boundary="entropy", target_ratio=8, vocab_size=8, in_len=32))

    def planted(tokens):
        h = torch.zeros(tokens.shape, dtype=torch.float32)
        h[:, 1:] = torch.where(tokens[:, :-1] == 1, math.log(8), 0.05)
        h[:, 0] = float("inf")
        return h

    monkeypatch.setattr(m, "token_entropy", planted)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, 8, (64, 32), generator=g)
    x[:, 7::8] = 1  # a "1" every 8 tokens: the surprise comes right after it
    thr = m.calibrate(x)
    assert 0.05 <= thr < math.log(8)
    starts, _ = m.boundaries(x, torch.zeros(64, 32, 4))
    want = torch.zeros(32, dtype=torch.bool)
    want[0::8] = True
    assert torch.equal(starts, want.expand(64, 32))


def test_real_entropy_lm_spends_codes_on_random_spans():
    """Train a tiny causal LM on repetitive + random spans: entropy patching must give random spans more
    codes per token than repetitive ones."""
    from vqladder.text.variable_eval import codes_per_token_by_label

    tr, _ = mixed_spans(40_000, vocab=16, seed=0, span=(16, 32), period=(1, 2))
    va, lab = mixed_spans(4_096, vocab=16, seed=1, span=(16, 32), period=(1, 2))
    lm = CausalLM(LMConfig(vocab_size=16, context=32, d_model=32, n_heads=2, n_layers=1))
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    s = WindowSampler(tr, 32, 32, seed=0)
    for _ in range(150):
        loss, _ = lm.loss(s.next_batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    m = VariableCompressor(variable_config(boundary="entropy", target_ratio=4, vocab_size=16, in_len=32,
                                entropy_lm=LMConfig(d_model=32, n_heads=2, n_layers=1)))
    m.entropy_lm.load_state_dict(lm.state_dict())
    m.calibrate(torch.from_numpy(tr[:32 * 256].astype(np.int64)).view(256, 32))
    r = codes_per_token_by_label(m, va, lab, 32, 0)
    assert r["codes_per_token_random"] > 1.5 * r["codes_per_token_repetitive"], r


def test_uncalibrated_entropy_model_refuses():
    m = VariableCompressor(variable_config(boundary="entropy"))
    with pytest.raises(VQLadderError, match="not calibrated"):
        m.encode(torch.zeros(2, 32, dtype=torch.long))


def test_ratio_loss_moves_the_achieved_ratio_toward_the_target(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 16, 50_000).astype(np.uint16)
    m = VariableCompressor(variable_config(target_ratio=8, ratio_weight=1.0))
    x = torch.from_numpy(tokens[:32 * 64].astype(np.int64)).view(64, 32)
    before = float(m(x)[1].segments.float().mean())
    cfg = TrainerConfig(steps=40, batch_size=16, lr=3e-3, warmup=0, eval_every=-1, ckpt_every=1000, log_every=10,
                        progress=False)
    Trainer(m, cfg, tmp_path / "r", lambda r, w: WindowSampler(tokens, 32, 16, 0, r, w)).fit()
    after = float(m(x)[1].segments.float().mean())
    ratio_before, ratio_after = 32 / before, 32 / after
    assert ratio_before < 4 and abs(math.log(ratio_after / 8)) < 0.5 * abs(math.log(ratio_before / 8)), \
        (ratio_before, ratio_after)
    logged = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    train_logs = [r for r in logged if "train_ce" in r]
    assert train_logs and all("train_ratio" in r and "train_ratio_loss" in r for r in train_logs)


def test_ratio_loss_gradient_sign():
    p = torch.full((1, 16), 0.5, requires_grad=True)
    ratio_loss(torch.ones(1, 16, dtype=torch.bool), p, 4.0).backward()   # too many starts: push p down
    assert float(p.grad.sum()) > 0
    p.grad = None
    ratio_loss(torch.eye(16, dtype=torch.bool)[:1], p, 4.0).backward()  # too few: push p up
    assert float(p.grad.sum()) < 0


def test_padding_counts_toward_neither_the_ratio_loss_nor_the_calibration(monkeypatch):
    """A plan of 7 moves + END padded with END to 16 positions. With ``pad_id`` the ratio loss sees the
    8 content positions only (F = 3/8, not 3/16), and the entropy calibration asks for target-ratio segments over
    the content, so the padding no longer pushes the boundaries into the moves."""
    END = 4
    tok = torch.tensor([[0, 1, 2, 3, 0, 1, 2, END] + [END] * 8])
    mask = content_mask(tok, END)
    assert mask.sum() == 8 and mask[0, :8].all() and not mask[0, 8:].any()
    assert content_mask(tok, -1).all()
    starts = torch.zeros(1, 16, dtype=torch.bool)
    starts[0, [0, 2, 4]] = True
    p = torch.full((1, 16), 0.5)
    f, g, n = 3 / 8, 0.5, 4.0
    assert float(ratio_loss(starts, p, n, mask)) == pytest.approx(n / (n - 1) * ((n - 1) * f * g + (1 - f) * (1 - g)))
    assert float(ratio_loss(starts, p, n, mask)) != pytest.approx(float(ratio_loss(starts, p, n)))

    m = VariableCompressor(variable_config(boundary="entropy", target_ratio=4, vocab_size=8, in_len=16, pad_id=END))
    h = torch.arange(16, dtype=torch.float32).expand(64, 16).clone()  # position t has entropy t
    monkeypatch.setattr(m, "token_entropy", lambda x: h)
    x = tok.expand(64, 16)
    thr = m.calibrate(x)
    # content = positions 0..7: 8 / 4 - 1 = 1 start wanted among positions 1..7, so the threshold sits at the
    # top 1/7 of entropies 1..7 (about 6); without the pad_id it would ask for 3 of 15 among 1..15
    assert 5.9 <= thr <= 7.0
    m.config.pad_id = -1
    assert m.calibrate(x) > 11.0


def test_router_gets_gradient_from_reconstruction():
    m = VariableCompressor(variable_config(ratio_weight=0.0))
    loss, _ = m.loss(torch.randint(0, 16, (4, 32)))
    loss.backward()
    assert m.router_q.weight.grad is not None and float(m.router_q.weight.grad.abs().sum()) > 0


def test_bit_accounting_includes_boundaries():
    n = 32
    for s in (1, 5, 32):
        assert float(boundary_bits(torch.tensor([s]), n)[0]) == pytest.approx(math.log2(n) + math.log2(math.comb(n - 1, s - 1)))
    learned = VariableCompressor(variable_config())
    fixed = VariableCompressor(variable_config(boundary="fixed"))
    seg = torch.tensor([8])
    bpc = learned.quantizer.bits_per_code
    assert float(fixed.chunk_bits(seg)[0]) == pytest.approx(8 * bpc)
    assert float(learned.chunk_bits(seg)[0]) == pytest.approx(8 * bpc + math.log2(32) + math.log2(math.comb(31, 7)))
    # evaluation reports the measured rate, boundaries included
    val = np.random.default_rng(1).integers(0, 16, 32 * 8).astype(np.uint16)
    r = evaluate_compressor(learned, val, 8, 8)
    segs = learned(torch.from_numpy(val.astype(np.int64)).view(8, 32))[1].segments
    assert r["bits_per_token"] == pytest.approx(float(learned.chunk_bits(segs).sum()) / val.size, rel=1e-6)
    assert r["bits_per_token"] > float(segs.sum()) * bpc / val.size
    assert r["ratio"] == pytest.approx(val.size / float(segs.sum()))
    assert evaluate_compressor(fixed, val, 8, 8)["bits_per_token"] == pytest.approx(8 * bpc / 32)


@pytest.mark.parametrize("boundary", ["fixed", "learned"])
def test_encode_decode_and_stream_round_trip(boundary):
    m = VariableCompressor(variable_config(boundary=boundary)).eval()
    x = torch.randint(0, 16, (6, 32), generator=torch.Generator().manual_seed(3))
    codes, lengths = m.encode(x)
    assert codes.shape == lengths.shape and bool((lengths.sum(1) == 32).all())
    assert bool(((codes >= 0) == (lengths > 0)).all())
    with torch.no_grad():
        want = m(x)[0].argmax(-1)
    assert torch.equal(m.decode(codes, lengths).argmax(-1), want)
    stream = m.encode_stream(x.reshape(-1).numpy())
    assert len(stream) == int((lengths > 0).sum()) and int(stream.max()) < m.stream_vocab
    assert np.array_equal(m.decode_stream(stream), want.reshape(-1).numpy())
    with pytest.raises(VQLadderError, match="whole chunks"):
        m.decode_stream(stream[:-1])


def test_variable_level_over_fixed_codes():
    """A variable level stacks over a fixed-rate level's code stream (codes are just symbols)."""
    from vqladder.models import CompressorConfig, SequenceCompressor
    from vqladder.text.ladder import encode_stream

    low = SequenceCompressor(CompressorConfig(vocab_size=16, in_len=32, out_len=8, d_model=32, n_heads=2, enc_layers=1,
                                              latent_layers=1, dec_layers=1,
                                              quantizer=QuantizerConfig(kind="fsq", codebook_size=256)))
    toks = np.random.default_rng(0).integers(0, 16, 32 * 16)
    codes = encode_stream(low, toks)
    top = VariableCompressor(variable_config(vocab_size=low.quantizer.codebook_size, in_len=16, target_ratio=4)).eval()
    sym = top.encode_stream(codes)
    back = top.decode_stream(sym)
    assert back.shape == codes.shape and len(sym) < len(codes)  # fewer symbols than the codes below
    with torch.no_grad():  # the stream decodes to exactly what the level reconstructs from those codes
        want = top(torch.as_tensor(np.asarray(codes).reshape(-1, 16), dtype=torch.long))[0].argmax(-1)
    assert np.array_equal(back, want.reshape(-1).numpy())


@pytest.mark.parametrize("kw,msg", [({"target_ratio": 0.5}, "between 1 and the chunk length"),
                                     ({"target_ratio": 33}, "between 1 and the chunk length in_len=32"),
                                     ({"boundary": "bpe"}, "unknown boundary method 'bpe'"),
                                     ({"boundary": "fixed", "target_ratio": 2.5}, "whole target_ratio")])
def test_bad_configs(kw, msg):
    with pytest.raises(VQLadderError, match=msg):
        variable_config(**kw).validate()

