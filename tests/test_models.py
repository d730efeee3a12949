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
