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

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import safetensors.torch
import torch

from ..config import NonNegInt, PathStr, PosInt, RunName
from ..errors import VQLadderError
from ..io import atomic_save_npy, atomic_write_bytes, atomic_write_json, atomic_write_text, claim_run_dir
from ..nn import seeded
from ..quantize.qinco import rq_init_state
from ..train import TrainerConfig
from ..train.recipe import open_experiment, write_results
from ..train.rows import train_rows
from ..train.stage import stderr_log
from .data import corpus_texts, embed_corpora, load_vectors
from .models import (
    PREFIXES,
    PrefixRVQ,
    QINCoCodec,
    QINCoConfig,
    apply_adapter,
    prefix_neighbour_loss,
    prefix_schedule,
    train_adapter,
)
from .report import _plot, embed_markdown
from .retrieval import METHODS, QINCO_METHODS, exact_topk, method_fits, recalls, run_method


@dataclass
class RVQOptions:
    beam: PosInt = 4                  # residual encoding beam, for our RVQs and FAISS's RQ alike (FAISS default: 5)


def _qinco_train() -> TrainerConfig:
    return TrainerConfig(steps=4000, batch_size=512, lr=1e-3, warmup=50, eval_every=-1, ckpt_every=100,
                         log_every=20, max_time=300.0, mfu=False)


@dataclass
class QINCoOptions:
    stages: list[PosInt] = field(default_factory=lambda: [16, 32, 64])  # models trained per seed; a budget of b bytes
                                      # is the first b stages of the smallest model with >= b stages
    hidden: PosInt = 128                 # codeword MLP width
    blocks: PosInt = 1                   # codeword MLP blocks
    preselect: PosInt = 16               # candidates per stage and beam when encoding (QINCo2 pre-selection)
    train_preselect: PosInt = 16         # candidates per stage in training
    seeds: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2])  # every ours-qinco* method runs once per seed
    init_rows: NonNegInt = 0             # training rows the RQ initialisation's k-means sees (0 = all)
    train: TrainerConfig = field(default_factory=_qinco_train)  # per model (max_time: seconds per model)


@dataclass
class EmbedConfig:
    EXPERIMENT: ClassVar[str] = "embed"  # the `experiment:` key its saved config carries
    name: RunName = "embed"
    out_dir: PathStr = "runs"
    corpora: list[str] = field(default_factory=lambda: ["builtin"])   # corpus specs, texts split from each
    vectors: PathStr = ""                 # a .npy / .fvecs file of vectors instead of texts (no embedding model)
    metric: str = "cosine"            # cosine | l2: ground truth and the ranking of reconstructed vectors
    model: str = "minilm"             # sentence-transformers model (minilm = offline all-MiniLM-L6-v2)
    max_texts: NonNegInt = 0                # cap on texts (0 = all)
    min_chars: NonNegInt = 30               # shortest text kept
    max_chars: PosInt = 400              # longer paragraphs are split into sentences
    queries: PosInt = 500                # held-out queries
    database: PosInt = 20000             # database size (the rest, minus queries and val, trains)
    val: NonNegInt = 0                   # training vectors held out (QINCo's held-out MSE); no method trains on them
    min_train: PosInt = 2000             # refuse to run with fewer training texts
    budgets: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])  # bytes per vector
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    adapter: bool = True              # train the Matryoshka adapter (false for an already-Matryoshka model)
    adapter_steps: NonNegInt = 300
    rvq: RVQOptions = field(default_factory=lambda: RVQOptions())
    qinco: QINCoOptions = field(default_factory=lambda: QINCoOptions())
    seed: NonNegInt = 0
    concepts: NonNegInt = 4                 # level-1 codes to show with their texts
    lsq_max_bytes: NonNegInt = 8            # faiss-lsq runs at budgets up to this (its training time grows fast)
    index_quantizer: str = "qinco"    # embed build: qinco (implicit neural codebooks) | prefix-rvq
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
        if self.index_quantizer not in ("qinco", "prefix-rvq"):
            raise VQLadderError(f"index_quantizer must be qinco or prefix-rvq, got {self.index_quantizer!r}")
        if self.metric not in ("cosine", "l2"):
            raise VQLadderError(f"metric must be cosine or l2, got {self.metric!r}")
        if self.vectors:
            load_vectors(self.vectors)  # every defect of the file, one line, before any work
        elif not self.corpora:
            raise VQLadderError("corpora is empty")
        if any(m in QINCO_METHODS for m in self.methods):
            q = self.qinco
            if not q.seeds or not q.stages or min(q.stages) < 1:
                raise VQLadderError(f"qinco.seeds and qinco.stages must be non-empty, stages >= 1; got {q.seeds}, "
                                    f"{q.stages}")
            if max(self.budgets) > max(q.stages):
                raise VQLadderError(f"budget {max(self.budgets)} bytes needs a QINCo model of as many stages; "
                                    f"qinco.stages is {q.stages}")
            q.train.validate()
        if not self.vectors and self.model != "minilm" and not Path(self.model).exists():  # as data.embedder.load_embedder, but first
            raise VQLadderError(f"embedding model path does not exist: {self.model} (use minilm or a local model folder)")
        self.check_budgets(1 << 20)  # before embedding: budgets no method can meet at any width

    def check_budgets(self, dim: int) -> None:
        for b in self.budgets:
            if all(method_fits(m, b, dim) for m in self.methods):
                why = "; ".join(f"{m}: {method_fits(m, b, dim)}" for m in self.methods)
                raise VQLadderError(f"no method can store {b} bytes per vector ({why})")


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
    largest model: a shorter model takes its first stages), cached in ``d/qinco/rq-init-<variant>.safetensors``."""
    stages = max(cfg.qinco.stages)
    dim = train.shape[1]
    path = d / "qinco" / f"rq-init-{variant}-{stages}.safetensors"
    if path.is_file():
        return safetensors.torch.load_file(path)
    log(f"RQ init ({variant}, {stages} stages, k-means on {cfg.qinco.init_rows or len(train):,} rows)")
    state = rq_init_state(train, prefix_schedule(stages, dim) if variant == "prefix" else [dim] * stages,
                          max_rows=cfg.qinco.init_rows, seed=cfg.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, safetensors.torch.save({k: v.contiguous() for k, v in state.items()}))
    return state


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
                     prefixes=prefix_schedule(stages, dim) if variant == "prefix" else [])
    run_dir = run_dir or d / "qinco" / f"{variant}-{stages}-s{seed}"
    with seeded(seed):
        model = QINCoCodec(mc)
    from ..train.stage import stage_state

    if stage_state(run_dir) == "new":  # a resumed or finished run brings its own weights
        model.load_rq_state(_rq_init(cfg, d, variant, train, log) if shared_init else
                            rq_init_state(train, mc.prefixes or [dim] * stages, max_rows=q.init_rows, seed=seed))
    tcfg = replace(q.train, seed=seed)

    def evaluate(m):  # greedy held-out reconstruction error (input units) and the RQ it started from
        return {"mse": float(((m.decode(m.encode(val, beam=1)) - val) ** 2).sum(1).mean())} if len(val) else {}

    model = train_rows(f"QINCo {variant} {stages} bytes seed {seed}", run_dir, model, tcfg, train, log,
                       evaluate=evaluate)
    return model


def run_embed_eval(cfg: EmbedConfig, embedder=None, log=None) -> dict:
    """Codes over embeddings vs FAISS at equal bytes (``vqladder embed eval CONFIG``): recall@k and MSE per method
    and budget on one seeded split; returns (and writes) the table."""
    log = log or stderr_log("embed")
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    d = open_experiment(cfg, force=True)  # an evaluation: every number is recomputed, so any config may rerun
    emb, texts, counts = load_set(cfg, log, embedder)
    n = len(emb)
    idx = split_indices(n, cfg)
    n_q, n_db = len(idx["q"]), len(idx["db"])
    emb = np.asarray(emb, dtype=np.float32)
    raw = {k: emb[v] for k, v in idx.items()}
    dim = emb.shape[1]
    cfg.check_budgets(dim)
    log(f"{n:,} vectors ({dim} dims): train {len(idx['train']):,}, val {len(idx['val']):,}, database {n_db:,}, "
        f"queries {n_q}")
    adapter, curve = None, []
    if cfg.adapter:
        adapter, curve = train_adapter(raw["train"], steps=cfg.adapter_steps, seed=cfg.seed)
        log(f"adapter: prefix-neighbour loss {curve[0]:.4f} -> {curve[-1]:.4f}")
    ada = {k: apply_adapter(adapter, v) for k, v in raw.items()}
    with torch.no_grad():
        held = torch.from_numpy(raw["q"][:500])
        loss_raw = float(prefix_neighbour_loss(held, held))
        loss_ada = float(prefix_neighbour_loss(torch.from_numpy(ada["q"][:500]), held))
    truth = exact_topk(raw["q"], raw["db"], 10, "l2" if cfg.metric == "l2" else "ip")
    models: dict = {}

    def qinco_for(method: str, b: int, seed: int) -> QINCoCodec:
        variant = "prefix" if method == "ours-qinco-prefix" else "raw"
        stages = min(s for s in cfg.qinco.stages if s >= b)
        key = (variant, stages, seed)
        if key not in models:
            src = ada if variant == "prefix" else raw
            models[key] = train_qinco(cfg, d, variant, stages, seed, src["train"], src["val"], log)
        return models[key]

    rows, concepts, concept_view = [], [], []
    for b in cfg.budgets:
        for m in cfg.methods:
            why = method_fits(m, b, dim) or (f"faiss-lsq runs up to lsq_max_bytes = {cfg.lsq_max_bytes} (its "
                                              "training time grows fast with bytes)"
                                              if m == "faiss-lsq" and b > cfg.lsq_max_bytes else None)
            if why:
                rows.append({"method": m, "bytes": b, "note": why})
                continue
            runs = []
            for seed in (cfg.qinco.seeds if m in QINCO_METHODS else [cfg.seed]):
                q = qinco_for(m, b, seed) if m in QINCO_METHODS else None
                found, enc_s, search_s, extra = run_method(m, b, raw, ada, seed, cfg.rvq.beam, cfg.metric, q)
                runs.append((recalls(found, truth), enc_s, search_s, extra))
                if len(runs) > 1:
                    log(f"    seed {seed}: R@10 {runs[-1][0]['recall@10']:.3f}")
            r = {"method": m, "bytes": runs[0][3].get("bytes", b), **_mean_std([x[0] for x in runs]),
                 "seeds": len(runs), "recall@10_seeds": [x[0]["recall@10"] for x in runs], "encode_ms_per_1k": round(1000 * np.mean([x[1] for x in runs]) / n_db * 1000, 3),
                 "search_ms_per_query": round(1000 * np.mean([x[2] for x in runs]) / n_q, 3),
                 "train_s": runs[0][3].get("train_s", 0.0)}
            if "mse" in runs[0][3]:
                r.update(_mean_std([{"mse": x[3]["mse"]} for x in runs]))
            if m in QINCO_METHODS:
                r["train_s"] = round(float(np.mean([_train_s(d, m, b, cfg, s) for s in cfg.qinco.seeds])), 1)
            rows.append(r)
            log(f"{b:>3} bytes {m:17s} R@1 {r['recall@1']:.3f} R@10 {r['recall@10']:.3f}"
                + (f" ± {r['recall@10_std']:.3f}" if len(runs) > 1 else "") + f" R@100 {r['recall@100']:.3f}")
            first = runs[0][3].get("codes")
            if texts is not None and first is not None and not concepts and m in ("ours-qinco", "ours-prefix-rvq"):
                db_texts = [texts[i] for i in idx["db"]]
                concepts = _concepts(first[:, 0], db_texts, cfg.concepts)
                concept_view = _concepts(first[:, 0], db_texts, 256, per=8)  # the report's explorer
                concept_view and concept_view[0].setdefault("method", m)
    res = {"texts": n, "database": n_db, "queries": n_q, "train": int(len(idx["train"])), "val": int(len(idx["val"])),
           "dim": dim, "model": "(vectors)" if cfg.vectors else cfg.model,
           "corpora": [cfg.vectors] if cfg.vectors else cfg.corpora, "sources": counts, "metric": cfg.metric,
           "adapter_curve": curve[::max(1, len(curve) // 20)],
           "prefix_loss_raw": loss_raw, "prefix_loss_adapted": loss_ada, "prefixes": list(PREFIXES), "rows": rows, "concepts": concepts,
           "concept_view": concept_view, "rvq_beam": cfg.rvq.beam,
           "qinco": {"seeds": cfg.qinco.seeds, "stages": cfg.qinco.stages, "hidden": cfg.qinco.hidden,
                     "blocks": cfg.qinco.blocks, "preselect": cfg.qinco.preselect,
                     "train_preselect": cfg.qinco.train_preselect, "max_time": cfg.qinco.train.max_time,
                     "models": {f"{v}-{st}-s{sd}": _stage_summary(d, v, st, sd) for v, st, sd in models},
                     "rq_init_val_mse": {f"{v}-{st}": _rq_val_mse(models[(v, st, sd)], cfg, d, v, raw, ada)
                                         for v, st, sd in models if sd == cfg.qinco.seeds[0]}}}
    write_results(d, res)
    atomic_write_text(d / "results.md", embed_markdown(res, cfg))
    _plot(res, d / "recall_vs_bytes.png")
    return res


def _rq_val_mse(model: QINCoCodec, cfg: EmbedConfig, d: Path, variant: str, raw: dict, ada: dict) -> float | None:
    """Validation MSE (greedy) of ``model``'s architecture at its RQ initialisation: what training started from."""
    path = d / "qinco" / f"rq-init-{variant}-{max(cfg.qinco.stages)}.safetensors"
    val = (ada if variant == "prefix" else raw)["val"]
    if not path.is_file() or not len(val):
        return None
    init = QINCoCodec(model.config)
    init.load_rq_state(safetensors.torch.load_file(path))
    return float(((init.decode(init.encode(val, beam=1)) - val) ** 2).sum(1).mean())


def _mean_std(runs: list[dict]) -> dict:
    """Each key's mean over runs, and ``<key>_std`` (population std) when there is more than one run."""
    out = {}
    for k in runs[0]:
        v = np.array([r[k] for r in runs], dtype=np.float64)
        out[k] = float(v.mean())
        if len(v) > 1:
            out[f"{k}_std"] = float(v.std())
    return out


def _stage_summary(d: Path, variant: str, stages: int, seed: int) -> dict:
    from ..train.stage import stage_results

    r = stage_results(d / "qinco" / f"{variant}-{stages}-s{seed}")
    return {k: r.get(k) for k in ("step", "train_time", "params", "mse")}


def _train_s(d: Path, method: str, b: int, cfg: EmbedConfig, seed: int) -> float:
    variant = "prefix" if method == "ours-qinco-prefix" else "raw"
    stages = min(s for s in cfg.qinco.stages if s >= b)
    return float(_stage_summary(d, variant, stages, seed).get("train_time") or 0.0)


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
        adapter = train_adapter(emb, steps=cfg.adapter_steps, seed=cfg.seed)[0] if cfg.adapter else None
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
