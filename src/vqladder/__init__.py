"""vqladder: learn ladders of abstract vocabularies.

Discrete codes (FSQ / VQ-VAE) over chunks of token sequences, stacked level on level.

Quick start (Python)::

    from vqladder.data import prepare, load_tokenizer
    from vqladder.models import SequenceCompressor, CompressorConfig
    prepare("builtin", "bpe:1024", "data/builtin")     # train/val shards
    model = SequenceCompressor(CompressorConfig(vocab_size=1024, in_len=256, out_len=32))
    codes = model.encode(tokens)            # [B, 256] -> [B, 32]
    logits = model.decode(codes)            # [B, 32] -> [B, 256, vocab]
"""

__version__ = "0.1.0"

from .errors import VQLadderError  # noqa: F401
