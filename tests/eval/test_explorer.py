"""``vqladder.eval.explorer``: what a run's report draws, computed once when training ends."""

import numpy as np
import torch

from vqladder.data import make_tokenizer
from vqladder.eval.explorer import explorer_data
from vqladder.models import CompressorConfig, SequenceCompressor
from vqladder.quantize import QuantizerConfig


def test_explorer_counts_every_chunk_and_decodes_only_the_shown_ones():
    """An autoregressive decoder generates token by token, so decoding all held-out chunks for a view that shows
    a few cost minutes: only the shown chunks are decoded, while the code explorer still counts every chunk."""
    tok = make_tokenizer("bytes")
    model = SequenceCompressor(CompressorConfig(vocab_size=tok.vocab_size, in_len=16, out_len=4, d_model=32,
                                                n_heads=2, quantizer=QuantizerConfig(codebook_size=256))).eval()
    decoded = []
    orig = model.decode
    model.decode = lambda c: decoded.append(len(c)) or orig(c)
    val = np.random.default_rng(0).integers(97, 123, 16 * 10)
    out = explorer_data(model, val, tok, max_chunks=3)
    assert sum(decoded) == 3 and len(out["recon"]) == 3
    assert out["explorer"]["chunks"] == 10 and sum(c["count"] for c in out["explorer"]["codes"]) == 10 * 4
    with torch.no_grad():
        want = orig(model.encode(torch.from_numpy(val[:48].reshape(3, 16)))).argmax(-1)
    assert [r["pred"] for r in out["recon"]] == want.tolist()
