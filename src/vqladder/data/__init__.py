"""Data: corpora, tokenizers, memmap token shards, the window sampler; the rooms maze (``maze``) and
cached sentence embeddings (``embeddings``), pixel videos (``video``) and synthetic token streams
(``synthetic``) as synthetic / derived domains."""

from .corpus import Corpus, open_corpus  # noqa: F401
from .sampler import RowSampler, WindowSampler, val_windows  # noqa: F401
from .shards import DataConfig, TokenShards, load_shards, prepare  # noqa: F401
from .tokenizers import Tokenizer, load_tokenizer, make_tokenizer  # noqa: F401
