"""``vqladder.models.multi_exit``: exits that share a trunk and train jointly."""

import pytest
import torch

from vqladder.errors import VQLadderError
from vqladder.models import (
    CompressorConfig,
)
from vqladder.quantize import QuantizerConfig
from vqladder.text.ladder import Ladder


def test_multi_exit_compressor_exits_share_a_trunk_and_train_jointly():
    from vqladder.models import MultiExitCompressor, MultiExitConfig

    torch.manual_seed(0)
    me = MultiExitCompressor(MultiExitConfig(
        base=CompressorConfig(vocab_size=30, in_len=16, out_len=8, d_model=32, n_heads=2, downsample="segment",
                              enc_layers=0, dec_layers=0, latent_layers=1, quantizer=QuantizerConfig(codebook_size=256)),
        exits=[4, 2], exit_layers=1, quantizer=QuantizerConfig(codebook_size=256)))
    x = torch.randint(0, 30, (6, 16))
    loss, m = me.loss(x)
    assert {"ce1", "ce2", "ce3"} <= set(m)
    loss.backward()
    # exit 3's loss reaches the trunk's encoder (it pools exit 1's continuous latents)
    assert me.trunk.seg_in.weight.grad.abs().sum() > 0 and next(me.exits[1].enc.parameters()).grad is not None
    views = [me.exit(k) for k in (1, 2, 3)]
    assert [v.config.out_len for v in views] == [8, 4, 2]
    for v in views:
        codes = v.encode(x)
        assert codes.shape == (6, v.config.out_len)
        assert v.decode(codes).shape == (6, 16, 30)
    lad = Ladder(views, mode="multi_exit")
    assert [lad.chunk_len(k) for k in range(4)] == [16, 8, 4, 2]
    with pytest.raises(VQLadderError, match="exit 4 does not exist"):
        me.exit(4)
    with pytest.raises(VQLadderError, match="must divide"):
        MultiExitConfig(base=CompressorConfig(in_len=16, out_len=8), exits=[3]).validate()

