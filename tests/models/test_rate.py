"""``vqladder.models.rate``: the rate term and its context model."""

import pytest
import torch


def test_rate_term_lowers_the_codes_actual_rate_on_a_planted_source():
    """Uniform-noise chunks: every bit the codes keep costs rate, so with ``rate_weight`` > 0 the codes' actual
    rate under the jointly trained context model falls well below the rate-free run's (which sits near the nominal
    bits), and evaluate_compressor reports it beside the nominal bits."""
    import math

    from vqladder.eval import evaluate_compressor
    from vqladder.models import CompressorConfig, SequenceCompressor
    from vqladder.quantize import QuantizerConfig

    def run(w):
        m = SequenceCompressor(CompressorConfig(vocab_size=16, in_len=16, out_len=4, d_model=32, n_heads=1,
                                                latent_layers=1, seg_layers=1, tok_dim=32, rate_layers=1, rate_dim=32,
                                                rate_weight=w, quantizer=QuantizerConfig(codebook_size=256)))
        opt = torch.optim.AdamW(m.parameters(), 3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(120):
            loss, met = m.loss(torch.randint(0, 16, (32, 16), generator=g))
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert "rate_bits" in met
        val = torch.randint(0, 16, (64 * 16,), generator=torch.Generator().manual_seed(5)).numpy()
        return evaluate_compressor(m, val, batch_size=32, max_chunks=-1)

    free, paid = run(0.0), run(1.0)
    assert free["bits_per_token"] == paid["bits_per_token"] == pytest.approx(4 * math.log2(240) / 16)
    assert free["rate_bits_per_token"] > 0.6 * free["bits_per_token"]
    assert paid["rate_bits_per_token"] < 0.6 * free["rate_bits_per_token"]


def test_rate_term_config_is_checked():
    from vqladder.errors import VQLadderError
    from vqladder.models import CompressorConfig
    from vqladder.quantize import QuantizerConfig

    with pytest.raises(VQLadderError, match="rate_layers"):
        CompressorConfig(vocab_size=16, rate_weight=0.5).validate()
    with pytest.raises(VQLadderError, match="FSQ"):
        CompressorConfig(vocab_size=16, rate_layers=1, quantizer=QuantizerConfig(kind="vq")).validate()


@pytest.mark.parametrize("q", [{"kind": "fsq", "codebook_size": 4096}, {"kind": "vq", "codebook_size": 512},
                               {"kind": "fsq", "codebook_size": 256, "depth": 2}])
def test_the_config_knows_its_rate(q):
    """``CompressorConfig.compression`` / ``bits_per_token`` (nominal) equal what the built model reports."""
    from vqladder.models import CompressorConfig, SequenceCompressor
    from vqladder.quantize import QuantizerConfig

    cfg = CompressorConfig(vocab_size=64, in_len=64, out_len=16, d_model=32, n_heads=2, quantizer=QuantizerConfig(**q))
    model = SequenceCompressor(cfg)
    assert cfg.compression == 4 and abs(cfg.bits_per_token - model.bits_per_token) < 1e-9

