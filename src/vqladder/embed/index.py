"""``vqladder embed build``: a searchable index of codes over a corpus's embeddings (QINCo, or the adapter and
prefix residual codes), the directory ``embed encode`` / ``embed search`` read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import safetensors.torch

from ..errors import VQLadderError
from ..io import atomic_save_npy, atomic_write_bytes, atomic_write_json, atomic_write_text, claim_run_dir
from ..train.stage import stderr_log
from .config import EmbedConfig
from .data import corpus_texts, embed_corpora
from .models import PrefixRVQ, apply_adapter, prefix_schedule, train_adapter
from .stages import train_qinco


def build_index(cfg: EmbedConfig, out: str | Path, n_bytes: int = 16, embedder=None, log=None) -> Path:
    """Embed the corpora, train the quantiser (``index_quantizer``: QINCo on the raw embeddings, or the adapter
    and prefix codes), encode every text: a directory that ``vqladder embed encode`` / ``search`` use (texts.json,
    codes.npy, model.safetensors, index.json; QINCo's training run under ``train/``)."""
    log = log or stderr_log("embed")
    cfg.validate()
    if not 1 <= n_bytes <= 256:
        raise VQLadderError(f"--bytes must be in 1..256 (1-byte codes per vector), got {n_bytes}")
    if cfg.vectors:
        raise VQLadderError("embed build indexes texts (it embeds queries to search them); vectors= is for embed eval")
    d = claim_run_dir(Path(out).expanduser(), "embed-index")  # before any work: a folder the tool did not make is refused
    parts = corpus_texts(cfg.corpora, cfg.min_chars, cfg.max_chars, cfg.max_texts)
    texts = [t for _, ts in parts for t in ts]
    if len(texts) < 300:
        raise VQLadderError(f"the corpora gave {len(texts)} texts; an index needs at least 300 (empty text list?)")
    emb = np.asarray(embed_corpora(parts, cfg.model, Path(cfg.out_dir) / "embed-cache", embedder), dtype=np.float32)
    dim = emb.shape[1]
    meta = {"model": cfg.model, "bytes": n_bytes, "n": len(texts), "dim": dim, "beam": cfg.rvq.beam,
            "quantizer": cfg.index_quantizer}
    if cfg.index_quantizer == "qinco":
        adapter = None
        q = train_qinco(cfg, d, "raw", n_bytes, cfg.seed, emb, emb[:0], log, run_dir=d / "train", shared_init=False)
        meta["qinco"] = dataclasses.asdict(q.config)
    else:
        adapter = train_adapter(emb, d / "adapter", steps=cfg.adapter_steps, seed=cfg.seed, log=log)[0] if cfg.adapter else None
        x = apply_adapter(adapter, emb)
        q = PrefixRVQ(dim, prefix_schedule(n_bytes, dim), seed=cfg.seed)
        q.fit(x)
        emb = x
        meta["prefixes"] = q.prefixes
    meta["adapter"] = adapter is not None
    codes = q.encode(emb, beam=cfg.rvq.beam)
    weights = {f"quantizer.{k}": v.detach().contiguous() for k, v in q.state_dict().items()}
    if adapter is not None:
        weights.update({f"adapter.{k}": v.detach().contiguous() for k, v in adapter.state_dict().items()})
    atomic_write_bytes(d / "model.safetensors", safetensors.torch.save(weights))
    atomic_save_npy(d / "codes.npy", codes)
    atomic_write_text(d / "texts.json", json.dumps(texts))
    atomic_write_json(d / "index.json", meta)
    log(f"index of {len(texts):,} texts at {n_bytes} bytes each ({cfg.index_quantizer}) written to {d}")
    return d
