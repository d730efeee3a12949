"""Data: corpora, tokenizers, memmap token shards and the window sampler."""

from .corpus import Corpus, open_corpus  # noqa: F401
from .tokenizers import Tokenizer, load_tokenizer, make_tokenizer  # noqa: F401
from .shards import TokenShards, prepare  # noqa: F401
from .sampler import WindowSampler, val_windows  # noqa: F401
