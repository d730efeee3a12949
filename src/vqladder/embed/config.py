"""The embedding benchmark's configuration (``vqladder embed eval|build CONFIG``): the vectors (texts embedded, or
a user's vector file), the split, the methods and byte budgets, and the QINCo models' options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..config import NonNegInt, PathStr, PosInt, RunName
from ..errors import VQLadderError
from ..train import TrainerConfig
from .data import load_vectors
from .retrieval import METHODS, QINCO_METHODS, method_fits


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
    # what every model starts from (its codeword networks at zero): kmeans = residual k-means (greedy); faiss-rq =
    # FAISS's residual quantiser trained with the run's beam (rvq.beam), as the faiss-rq method is (raw variant)
    init: str = "kmeans"
    loss: str = "all"                    # the error the loss averages: after every stage (all), or only after the
                                         # stage counts the budgets read from this model (served)
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
            if q.loss not in ("all", "served"):
                raise VQLadderError(f"qinco.loss must be all or served, got {q.loss!r}")
            if q.init not in ("kmeans", "faiss-rq"):
                raise VQLadderError(f"qinco.init must be kmeans or faiss-rq, got {q.init!r}")
            q.train.validate()
        if not self.vectors and self.model != "minilm" and not Path(self.model).exists():  # as data.embedder.load_embedder, but first
            raise VQLadderError(f"embedding model path does not exist: {self.model} (use minilm or a local model folder)")
        self.check_budgets(1 << 20)  # before embedding: budgets no method can meet at any width

    def check_budgets(self, dim: int) -> None:
        for b in self.budgets:
            if all(method_fits(m, b, dim) for m in self.methods):
                why = "; ".join(f"{m}: {method_fits(m, b, dim)}" for m in self.methods)
                raise VQLadderError(f"no method can store {b} bytes per vector ({why})")
