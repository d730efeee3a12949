"""Codes over Matryoshka embeddings (``core``) and their comparison with FAISS at equal bytes (``experiment``)."""

from .core import MatryoshkaAdapter, PrefixRVQ, embed_cached, prefix_neighbour_loss, split_texts, train_adapter  # noqa: F401
