"""Codes over sentence embeddings: texts and cached embeddings, QINCo and prefix residual codes as trainable models,
the Matryoshka adapter, retrieval against FAISS, the recipe and its report view."""

from .models import CodeIndex, QINCoCodec, QINCoConfig  # noqa: F401
