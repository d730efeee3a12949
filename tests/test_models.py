"""Model API conveniences: whole-text encode / decode with padding."""

import pytest
import torch


def test_encode_ids_pads_and_decode_ids_round_trips_the_chunks():
    from vqladder.errors import VQLadderError
    from vqladder.models import CompressorConfig, SequenceCompressor
    from vqladder.quantize import QuantizerConfig

    m = SequenceCompressor(CompressorConfig(vocab_size=50, in_len=16, out_len=4, d_model=32, n_heads=2,
                                            quantizer=QuantizerConfig(kind="fsq", codebook_size=256))).eval()
    ids = list(range(1, 21))                                   # 20 ids: one chunk + 4 ids, padded with 12
    codes, n_pad = m.encode_ids(ids, pad_id=0)
    assert codes.shape == (2, 4) and n_pad == 12
    x = torch.tensor(ids + [0] * 12).view(2, 16)
    assert torch.equal(codes, m.encode(x))
    assert m.decode_ids(codes.reshape(-1).tolist()) == m.decode(codes).argmax(-1).reshape(-1).tolist()
    with pytest.raises(VQLadderError, match="multiple of 4"):
        m.decode_ids([1, 2, 3])
    with pytest.raises(VQLadderError, match="empty"):
        m.encode_ids([], pad_id=0)


def test_the_default_compressor_is_local_first():
    """Issue #16: a config that names no ``downsample`` gets the local-first compressor (every attention block
    over the M segments, none over the N tokens); the query variant without token-level blocks is refused."""
    from vqladder.config import build
    from vqladder.errors import VQLadderError
    from vqladder.experiments.rung1 import RunConfig
    from vqladder.models import CompressorConfig, SequenceCompressor

    assert build(RunConfig, {}).model.downsample == "segment"
    m = SequenceCompressor(CompressorConfig(vocab_size=50, in_len=16, out_len=4, d_model=32, n_heads=2)).eval()
    assert (len(m.enc), len(m.enc_latent), len(m.dec_latent), len(m.dec)) == (0, 2, 2, 0)
    x = torch.randint(0, 50, (3, 16))
    codes = m.encode(x)
    assert codes.shape == (3, 4) and m.decode(codes).shape == (3, 16, 50)
    with pytest.raises(VQLadderError, match="query needs"):
        CompressorConfig(vocab_size=50, in_len=16, out_len=4, downsample="query").validate()
