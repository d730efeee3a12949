"""The embedding benchmark's stages: the vectors and their seeded split, and the QINCo models (each trained by
the stage runner from a shared residual k-means start)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from ..config import derive
from ..errors import VQLadderError
from ..io import atomic_write_bytes
from ..nn import seeded
from ..quantize.qinco import rq_init_state, standardization
from ..train.rows import train_rows
from ..train.stage import stage_results, stage_state
from .config import EmbedConfig
from .data import corpus_texts, embed_corpora, load_vectors
from .models import QINCoCodec, QINCoConfig, prefix_schedule


def load_set(cfg: EmbedConfig, log, embedder=None) -> tuple[np.ndarray, list[str] | None, list[str]]:
    """(vectors [n, d], their texts or None, a description per source): the user's vector file, or the corpora's
    texts embedded (cached per corpus) with duplicates across corpora dropped."""
    if cfg.vectors:
        x = load_vectors(cfg.vectors)
        if cfg.max_texts:
            x = x[:cfg.max_texts]
        return x, None, [f"{len(x):,} vectors from {cfg.vectors}"]
    parts = corpus_texts(cfg.corpora, cfg.min_chars, cfg.max_chars, cfg.max_texts)
    texts = [t for _, ts in parts for t in ts]
    if not texts:
        raise VQLadderError(f"the corpora gave no texts of {cfg.min_chars}-{cfg.max_chars} characters (empty text list)")
    counts = [f"{len(ts):,} from {c}" for c, ts in parts]
    log("texts: " + ", ".join(counts))
    return embed_corpora(parts, cfg.model, Path(cfg.out_dir) / "embed-cache", embedder), texts, counts


def split_indices(n: int, cfg: EmbedConfig) -> dict[str, np.ndarray]:
    """The seeded split of n vectors into queries, database, validation and training rows (disjoint)."""
    order = np.random.default_rng(cfg.seed).permutation(n)
    n_q = min(cfg.queries, n // 10)
    n_db = min(cfg.database, n - n_q - cfg.val - cfg.min_train)
    if n_q < 1 or n_db < 100:
        raise VQLadderError(f"{n} vectors are too few: need queries + >= 100 database + {cfg.val} val + "
                            f"{cfg.min_train} training vectors")
    return {"q": order[:n_q], "db": order[n_q:n_q + n_db], "val": order[n_q + n_db:n_q + n_db + cfg.val],
            "train": order[n_q + n_db + cfg.val:]}


def _rq_init(cfg: EmbedConfig, d: Path, variant: str, train: np.ndarray, log) -> dict:
    """The RQ initialisation every QINCo model of ``variant`` in the run starts from (computed once, for the
    largest model: a shorter model takes its first stages), cached in ``d/qinco/rq-init-<variant>.safetensors``
    (``rq-init-faiss-…`` for ``qinco.init: faiss-rq``)."""
    stages = max(cfg.qinco.stages)
    dim = train.shape[1]
    path = _rq_init_path(cfg, d, variant)
    if path.is_file():
        return safetensors.torch.load_file(path)
    if _faiss_start(cfg, variant):
        log(f"RQ init ({variant}, {stages} stages, FAISS's residual quantiser, beam {cfg.rvq.beam}, on "
            f"{len(train):,} rows)")
        state = faiss_rq_init_state(train, stages, beam=cfg.rvq.beam)
    else:
        log(f"RQ init ({variant}, {stages} stages, k-means on {cfg.qinco.init_rows or len(train):,} rows)")
        state = rq_init_state(train, prefix_schedule(stages, dim) if variant == "prefix" else [dim] * stages,
                              max_rows=cfg.qinco.init_rows, seed=cfg.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, safetensors.torch.save({k: v.contiguous() for k, v in state.items()}))
    return state


def _faiss_start(cfg: EmbedConfig, variant: str) -> bool:
    """Whether ``variant``'s models start from FAISS's RQ (``qinco.init: faiss-rq``; the prefix variant's schedule
    has no FAISS counterpart: it keeps residual k-means)."""
    return cfg.qinco.init == "faiss-rq" and variant == "raw"


def _rq_init_path(cfg: EmbedConfig, d: Path, variant: str) -> Path:
    kind = "faiss-" if _faiss_start(cfg, variant) else ""
    return d / "qinco" / f"rq-init-{kind}{variant}-{max(cfg.qinco.stages)}.safetensors"


def faiss_rq_init_state(x: np.ndarray, stages: int, codebook_size: int = 256, beam: int = 4) -> dict:
    """``rq_init_state``'s layout ({mean, scale, codebooks [stages, k, d]}) from FAISS's residual quantiser, trained
    with beam search on the standardised rows (FAISS trains stage by stage, so a shorter model's first stages are
    the same quantiser)."""
    try:
        import faiss
    except ImportError:
        raise VQLadderError("qinco.init: faiss-rq needs faiss-cpu: pip install 'vqladder[embed]'")
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    dim = t.shape[1]
    mean, scale = standardization(t)
    z = np.ascontiguousarray(((t - mean) / scale).numpy(), dtype=np.float32)
    faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
    rq = faiss.ResidualQuantizer(dim, stages, int(math.log2(codebook_size)))
    rq.max_beam_size = beam
    rq.train(z)
    books = torch.from_numpy(faiss.vector_to_array(rq.codebooks).reshape(stages, codebook_size, dim).copy())
    return {"mean": mean, "scale": scale, "codebooks": books}


def served_stages(cfg: EmbedConfig, stages: int) -> list[int]:
    """The budgets (bytes = stages) read from the ``stages``-stage model: those whose smallest holding model it is
    (``[stages]`` when no budget is: the model is then judged by its full code)."""
    mine = [b for b in cfg.budgets if b <= stages and min(s for s in cfg.qinco.stages if s >= b) == stages]
    return sorted(mine) or [stages]


def train_qinco(cfg: EmbedConfig, d: Path, variant: str, stages: int, seed: int, train: np.ndarray,
                val: np.ndarray, log, run_dir: Path | None = None, shared_init: bool = True) -> QINCoCodec:
    """One QINCo model (``variant``: raw = all dims on the raw vectors, prefix = the Matryoshka schedule on adapted
    ones) through the stage runner into ``d/qinco/<variant>-<stages>-s<seed>``: initialised from the run's one RQ
    (``shared_init``: every seed and size starts from the same residual k-means, computed once; seeds differ in
    their data order and MLP init) or from its own, then trained under ``qinco.train`` (exact resume); finished
    models are loaded, not retrained."""
    q = cfg.qinco
    dim = train.shape[1]
    mc = QINCoConfig(dim=dim, stages=stages, hidden=q.hidden, blocks=q.blocks, preselect=q.preselect,
                     beam=cfg.rvq.beam, train_preselect=q.train_preselect,
                     prefixes=prefix_schedule(stages, dim) if variant == "prefix" else [],
                     loss_stages=served_stages(cfg, stages) if q.loss == "served" else [])
    run_dir = run_dir or d / "qinco" / f"{variant}-{stages}-s{seed}"
    with seeded(seed):
        model = QINCoCodec(mc)
    if stage_state(run_dir) == "new":  # a resumed or finished run brings its own weights
        model.load_rq_state(_rq_init(cfg, d, variant, train, log) if shared_init else
                            rq_init_state(train, mc.prefixes or [dim] * stages, max_rows=q.init_rows, seed=seed))
    tcfg = derive(q.train, seed=seed)

    def evaluate(m):  # greedy held-out reconstruction error (input units) and the RQ it started from
        return {"mse": float(((m.decode(m.encode(val, beam=1)) - val) ** 2).sum(1).mean())} if len(val) else {}

    init = {"init": q.init} if _faiss_start(cfg, variant) else None  # (k-means starts stay unrecorded, as before)
    model = train_rows(f"QINCo {variant} {stages} bytes seed {seed}", run_dir, model, tcfg, train, log,
                       evaluate=evaluate, fingerprint=True, extra=init)
    return model


def _rq_val_mse(model: QINCoCodec, cfg: EmbedConfig, d: Path, variant: str, raw: dict, ada: dict) -> float | None:
    """Validation MSE (greedy) of ``model``'s architecture at its RQ initialisation: what training started from."""
    path = _rq_init_path(cfg, d, variant)
    val = (ada if variant == "prefix" else raw)["val"]
    if not path.is_file() or not len(val):
        return None
    init = QINCoCodec(model.config)
    init.load_rq_state(safetensors.torch.load_file(path))
    return float(((init.decode(init.encode(val, beam=1)) - val) ** 2).sum(1).mean())


def _stage_summary(d: Path, variant: str, stages: int, seed: int) -> dict:
    r = stage_results(d / "qinco" / f"{variant}-{stages}-s{seed}")
    return {k: r.get(k) for k in ("step", "train_time", "params", "mse")}


def _train_s(d: Path, method: str, b: int, cfg: EmbedConfig, seed: int) -> float:
    variant = "prefix" if method == "ours-qinco-prefix" else "raw"
    stages = min(s for s in cfg.qinco.stages if s >= b)
    return float(_stage_summary(d, variant, stages, seed).get("train_time") or 0.0)
