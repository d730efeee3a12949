"""``vqladder embed eval CONFIG``: our prefix codes against what practitioners use, at equal bytes per vector.

Texts from the corpora are split (seeded) into a training set (adapter, codebooks, FAISS training), a
database and queries. Ground truth: the exact top-10 neighbours of each query in the database by cosine on
the full float embeddings. Every method compresses the database to ``B`` bytes per vector and ranks it for
each (uncompressed) query; reported: recall@1 (true nearest neighbour ranked first), recall@10 (fraction
of the true top-10 in the returned top-10) and recall@100 (fraction of the true top-10 in the top-100),
plus encode time (database) and search time (all queries).

Methods at B bytes: ``float32-trunc`` (first B/4 dims of the adapted = Matryoshka embedding, the Matryoshka
baseline) and ``float32-trunc-raw`` (of the raw embedding), ``int8`` (first B dims of the adapted embedding,
per-dim min/max scalar quantisation), ``binary`` (signs of the first 8B adapted dims, Hamming distance),
``faiss-pq`` (B sub-quantisers x 8 bits), ``faiss-opq-pq`` (OPQ rotation + PQ), ``faiss-rq`` (residual
quantiser, B x 8 bits), ``ours-prefix-rvq`` (coarse-to-fine prefix residual VQ over the adapted embedding)
and ``ours-rvq`` (the same residual VQ with every stage on all dims, raw embedding). Codes-based methods
rank by cosine between the query and the decoded database vector (asymmetric distance, as FAISS does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import safetensors.torch
import torch

from ..config import NonNegInt, PathStr, PosInt, RunName, save_yaml
from ..data.embeddings import embed_cached, split_texts
from ..errors import VQLadderError
from ..eval.retrieval import METHODS, exact_topk, method_fits, recalls, run_method
from ..io import atomic_save_npy, atomic_write_bytes, atomic_write_json, atomic_write_text, claim_run_dir
from ..models.matryoshka import (
    PrefixRVQ,
    apply_adapter,
    prefix_neighbour_loss,
    prefix_schedule,
    train_adapter,
)
from ..report.embed import _plot, embed_markdown
from ..train.stage import stderr_log


@dataclass
class RVQOptions:
    beam: PosInt = 4                  # residual encoding beam, for our RVQs and FAISS's RQ alike (FAISS default: 5)


@dataclass
class EmbedConfig:
    EXPERIMENT: ClassVar[str] = "embed"  # the `experiment:` key its saved config carries
    name: RunName = "embed"
    out_dir: PathStr = "runs"
    corpora: list[str] = field(default_factory=lambda: ["builtin"])   # corpus specs, texts split from each
    model: str = "minilm"             # sentence-transformers model (minilm = offline all-MiniLM-L6-v2)
    max_texts: NonNegInt = 0                # cap on texts (0 = all)
    min_chars: NonNegInt = 30               # shortest text kept
    max_chars: PosInt = 400              # longer paragraphs are split into sentences
    queries: PosInt = 500                # held-out queries
    database: PosInt = 20000             # database size (the rest, minus queries, trains)
    min_train: PosInt = 2000             # refuse to run with fewer training texts
    budgets: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])  # bytes per vector
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    adapter: bool = True              # train the Matryoshka adapter (false for an already-Matryoshka model)
    adapter_steps: NonNegInt = 300
    rvq: RVQOptions = field(default_factory=lambda: RVQOptions())
    seed: NonNegInt = 0
    concepts: NonNegInt = 4                 # level-1 codes to show with their texts
    threads: NonNegInt = 0

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def validate(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise VQLadderError(f"unknown method {bad[0]!r}; known: {', '.join(METHODS)}")
        if not self.budgets or any(b < 1 for b in self.budgets):
            raise VQLadderError(f"budgets must be positive byte counts, got {self.budgets}")
        if not self.corpora:
            raise VQLadderError("corpora is empty")
        if self.model != "minilm" and not Path(self.model).exists():  # as eval.gist.load_embedder, but first
            raise VQLadderError(f"embedding model path does not exist: {self.model} (use minilm or a local model folder)")
        self.check_budgets(1 << 20)  # before embedding: budgets no method can meet at any width

    def check_budgets(self, dim: int) -> None:
        for b in self.budgets:
            if all(method_fits(m, b, dim) for m in self.methods):
                why = "; ".join(f"{m}: {method_fits(m, b, dim)}" for m in self.methods)
                raise VQLadderError(f"no method can store {b} bytes per vector ({why})")


def run_embed_eval(cfg: EmbedConfig, embedder=None, log=None) -> dict:
    log = log or stderr_log("embed")
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    d = claim_run_dir(cfg.dir, "experiment")
    save_yaml(cfg, d / "embed.yaml")
    texts, counts = [], []
    for c in cfg.corpora:
        got = split_texts(c, cfg.min_chars, cfg.max_chars)
        counts.append(f"{len(got):,} from {c}")
        texts += got
    if cfg.max_texts:
        texts = texts[:cfg.max_texts]
    if not texts:
        raise VQLadderError(f"the corpora gave no texts of {cfg.min_chars}-{cfg.max_chars} characters (empty text list)")
    log("texts: " + ", ".join(counts))
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(texts))
    n_q = min(cfg.queries, len(texts) // 10)
    n_db = min(cfg.database, len(texts) - n_q - cfg.min_train)
    if n_q < 1 or n_db < 100:
        raise VQLadderError(f"{len(texts)} texts are too few: need queries + >= 100 database + {cfg.min_train} "
                            f"training texts")
    idx = {"q": order[:n_q], "db": order[n_q:n_q + n_db], "train": order[n_q + n_db:]}
    emb = np.asarray(embed_cached(texts, cfg.model, Path(cfg.out_dir) / "embed-cache", embedder))
    raw = {k: emb[v] for k, v in idx.items()}
    dim = emb.shape[1]
    cfg.check_budgets(dim)
    log(f"{len(texts):,} texts embedded ({dim} dims): train {len(idx['train']):,}, database {n_db:,}, queries {n_q}")
    adapter, curve = None, []
    if cfg.adapter:
        adapter, curve = train_adapter(raw["train"], steps=cfg.adapter_steps, seed=cfg.seed)
        log(f"adapter: prefix-neighbour loss {curve[0]:.4f} -> {curve[-1]:.4f}")
    ada = {k: apply_adapter(adapter, v) for k, v in raw.items()}
    with torch.no_grad():
        held = torch.from_numpy(raw["q"][:500])
        loss_raw = float(prefix_neighbour_loss(held, held))
        loss_ada = float(prefix_neighbour_loss(torch.from_numpy(ada["q"][:500]), held))
    truth = exact_topk(raw["q"], raw["db"], 10)
    rows, concepts, concept_view = [], [], []
    for b in cfg.budgets:
        for m in cfg.methods:
            why = method_fits(m, b, dim)
            if why:
                rows.append({"method": m, "bytes": b, "note": why})
                continue
            found, enc_s, search_s, extra = run_method(m, b, raw, ada, cfg.seed, cfg.rvq.beam)
            r = {"method": m, "bytes": extra.get("bytes", b), **recalls(found, truth),
                 "encode_ms_per_1k": round(1000 * enc_s / n_db * 1000, 3),
                 "search_ms_per_query": round(1000 * search_s / n_q, 3), "train_s": extra.get("train_s", 0.0)}
            rows.append(r)
            log(f"{b:>3} bytes {m:16s} R@1 {r['recall@1']:.3f} R@10 {r['recall@10']:.3f} R@100 {r['recall@100']:.3f}")
            if m == "ours-prefix-rvq" and not concepts:
                db_texts = [texts[i] for i in idx["db"]]
                concepts = _concepts(extra["codes"][:, 0], db_texts, cfg.concepts)
                concept_view = _concepts(extra["codes"][:, 0], db_texts, 256, per=8)  # the report's explorer
    res = {"texts": len(texts), "database": n_db, "queries": n_q, "train": int(len(idx["train"])), "dim": dim,
           "model": cfg.model, "corpora": cfg.corpora, "adapter_curve": curve[::max(1, len(curve) // 20)],
           "prefix_loss_raw": loss_raw, "prefix_loss_adapted": loss_ada, "rows": rows, "concepts": concepts,
           "concept_view": concept_view, "rvq_beam": cfg.rvq.beam}
    atomic_write_json(d / "results.json", res)
    atomic_write_text(d / "results.md", embed_markdown(res, cfg))
    _plot(res, d / "recall_vs_bytes.png")
    return res


def _concepts(level1: np.ndarray, texts: list[str], n: int, per: int = 4) -> list[dict]:
    counts = np.bincount(level1.astype(np.int64), minlength=256)
    out = []
    for code in np.argsort(-counts, kind="stable")[:n]:
        if counts[code] == 0:
            break
        members = np.flatnonzero(level1 == code)[:per]
        out.append({"code": int(code), "size": int(counts[code]), "texts": [texts[i][:160] for i in members]})
    return out


# -- a searchable index of our codes ---------------------------------------------------------------------------------
def build_index(cfg: EmbedConfig, out: str | Path, n_bytes: int = 16, embedder=None, log=None) -> Path:
    """Embed the corpora, train the adapter and the prefix codes, encode every text: a directory that
    ``vqladder embed encode`` / ``search`` use (texts.json, codes.npy, model.safetensors, index.json)."""
    log = log or stderr_log("embed")
    cfg.validate()
    if not 1 <= n_bytes <= 256:
        raise VQLadderError(f"--bytes must be in 1..256 (1-byte codes per vector), got {n_bytes}")
    d = claim_run_dir(Path(out).expanduser(), "embed-index")  # before any work: a folder the tool did not make is refused
    texts = [t for c in cfg.corpora for t in split_texts(c, cfg.min_chars, cfg.max_chars)]
    if cfg.max_texts:
        texts = texts[:cfg.max_texts]
    if len(texts) < 300:
        raise VQLadderError(f"the corpora gave {len(texts)} texts; an index needs at least 300 (empty text list?)")
    emb = np.asarray(embed_cached(texts, cfg.model, Path(cfg.out_dir) / "embed-cache", embedder))
    dim = emb.shape[1]
    adapter = train_adapter(emb, steps=cfg.adapter_steps, seed=cfg.seed)[0] if cfg.adapter else None
    x = apply_adapter(adapter, emb)
    q = PrefixRVQ(dim, prefix_schedule(n_bytes, dim), seed=cfg.seed)
    q.fit(x)
    codes = q.encode(x, beam=cfg.rvq.beam)
    weights = {f"quantizer.{k}": v.detach().contiguous() for k, v in q.state_dict().items()}
    if adapter is not None:
        weights.update({f"adapter.{k}": v.detach().contiguous() for k, v in adapter.state_dict().items()})
    atomic_write_bytes(d / "model.safetensors", safetensors.torch.save(weights))
    atomic_save_npy(d / "codes.npy", codes)
    atomic_write_text(d / "texts.json", json.dumps(texts))
    atomic_write_json(d / "index.json", {"model": cfg.model, "bytes": n_bytes, "n": len(texts), "dim": dim,
                                         "prefixes": q.prefixes, "beam": cfg.rvq.beam,
                                         "adapter": adapter is not None})
    log(f"index of {len(texts):,} texts at {n_bytes} bytes each written to {d}")
    return d


