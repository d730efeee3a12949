"""Variable-length codes: does letting the content decide how many codes a chunk gets buy accuracy at equal
bits? ``vqladder variable CONFIG``.

For every boundary method (``fixed`` | ``entropy`` | ``learned``, see ``models.variable``) and target ratio
(tokens per code), a ``VariableCompressor`` is trained on the same windows for the same steps; entropy
boundaries use one small causal LM trained first on the same split. On held-out chunks each cell reports
token accuracy, the achieved ratio and the measured rate in bits/token **including the bits of the
boundaries** (fixed boundaries cost none). Because variable cells pay for their boundaries, they are compared
with the fixed baseline *at equal bits/token*: the fixed cells' accuracy, interpolated (linear in log-rate)
at each variable cell's rate.

``synthetic.enabled: true`` swaps the corpus for ``data.synthetic.mixed_spans`` (repetitive and random spans
with per-token labels) and adds the codes per token spent on each kind of span.

Output ``<out_dir>/<name>/``: one run directory per cell (``<method>-r<target>/``, resumable, ``results.json``
when finished), ``entropy_lm/``, ``results.{json,md}``, ``ratio_over_training.png`` (achieved vs target
ratio over training), ``acc_vs_bits.png``, ``boundaries.html`` (held-out text with segments marked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..config import Annotated, Check, NonNegInt, PathStr, PosInt, RunName, derive
from ..data import DataConfig, WindowSampler, load_shards
from ..data.sampler import gather_windows, val_windows
from ..data.synthetic import mixed_spans, render_symbols
from ..errors import VQLadderError
from ..eval import evaluate_compressor
from ..io import atomic_write_text
from ..models import CausalLM, LMConfig, load_model
from ..models.variable import BOUNDARY_METHODS, VariableCompressor, VariableConfig
from ..train import TrainerConfig
from ..train.recipe import open_experiment, write_results
from ..train.stage import mark_done, run_stage, stage_results, stage_state, stderr_log
from .compressor import EvalConfig
from .variable_eval import add_equal_bits, cell_segments, codes_per_token_by_label
from .variable_report import _plot_acc, _plot_ratio, cell_name, render_boundaries, variable_markdown


@dataclass
class SyntheticConfig:
    enabled: bool = False             # use the synthetic mixed-span corpus instead of data.*
    tokens: PosInt = 200_000             # train tokens (val: a tenth, from another seed)
    vocab: Annotated[int, Check(min=2)] = 64                   # symbols
    seed: NonNegInt = 0                     # generator seed
    span: Annotated[list[PosInt], Check(length=2)] = field(default_factory=lambda: [16, 64])    # span length range
    period: Annotated[list[PosInt], Check(length=2)] = field(default_factory=lambda: [1, 4])    # repeated-pattern period range


@dataclass
class VariableExpConfig:
    EXPERIMENT: ClassVar[str] = "variable"  # the `experiment:` key its saved config carries
    name: RunName = "variable"
    out_dir: PathStr = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    chunk: PosInt = 64                   # tokens per chunk (the compressor's in_len)
    targets: list[float] = field(default_factory=lambda: [2.0, 4.0, 8.0])   # tokens per code
    methods: list[str] = field(default_factory=lambda: ["fixed", "entropy", "learned"])
    fixed_extra: list[float] = field(default_factory=list)  # more fixed-rate cells (e.g. [1]) to widen the
    #                                                           equal-bits comparison to the variable cells' rates
    model: VariableConfig = field(default_factory=VariableConfig)   # template: in_len/target/boundary are set per cell
    train: TrainerConfig = field(default_factory=lambda: TrainerConfig(steps=600, batch_size=32, lr=2e-3, warmup=50,
                                                                      eval_every=-1, ckpt_every=200, progress=False))
    entropy_lm: LMConfig = field(default_factory=lambda: LMConfig(d_model=64, n_heads=2, n_layers=2))
    entropy_lm_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=600, batch_size=32, lr=2e-3, warmup=50, eval_every=-1, ckpt_every=200, progress=False))
    eval: EvalConfig = field(default_factory=EvalConfig)
    render_chunks: NonNegInt = 4            # held-out chunks drawn with their segments in boundaries.html
    threads: NonNegInt = 0                  # torch threads (0 = default)

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def validate(self) -> None:
        if self.chunk < 2:
            raise VQLadderError(f"chunk must be >= 2 tokens, got {self.chunk}")
        if not self.targets or not self.methods:
            raise VQLadderError("targets and methods must not be empty")
        for m in self.methods:
            if m not in BOUNDARY_METHODS:
                raise VQLadderError(f"unknown boundary method {m!r}; choose from {', '.join(BOUNDARY_METHODS)}")
        for t in self.targets:
            if not 1 <= t <= self.chunk:
                raise VQLadderError(f"target ratio {t} must be between 1 and the chunk length {self.chunk} (tokens per code)")
            if "fixed" in self.methods and t != int(t):
                raise VQLadderError(f"fixed boundaries need whole target ratios, got {t}")
        for t in self.fixed_extra:
            if t != int(t) or not 1 <= t <= self.chunk:
                raise VQLadderError(f"fixed_extra ratio {t} must be a whole number between 1 and the chunk length {self.chunk}")
        for t in self.targets:  # build every cell's model config once, so that errors surface before training
            self.cell_model(2, "fixed" if t == int(t) else "learned", t).validate()

    def cell_model(self, vocab: int, method: str, target: float) -> VariableConfig:
        return derive(self.model, vocab_size=vocab, in_len=self.chunk, target_ratio=float(target), boundary=method,
                       entropy_lm=derive(self.entropy_lm))


# -- data -------------------------------------------------------------------------------------------------------
def load_streams(cfg: VariableExpConfig) -> dict:
    """-> {train, val, vocab, tokenizer (or None), val_labels (synthetic only)}."""
    if cfg.synthetic.enabled:
        s = cfg.synthetic
        tr, _ = mixed_spans(s.tokens, s.vocab, s.seed, tuple(s.span), tuple(s.period))
        va, lab = mixed_spans(max(s.tokens // 10, cfg.chunk), s.vocab, s.seed + 1_000_003, tuple(s.span), tuple(s.period))
        return {"train": tr, "val": va, "vocab": s.vocab, "tokenizer": None, "val_labels": lab}
    sh = load_shards(cfg.data, progress=False)
    if len(sh.val) < cfg.chunk:
        raise VQLadderError(f"the val split of {sh.dir} has {len(sh.val)} tokens, fewer than one chunk of {cfg.chunk}")
    return {"train": sh.train, "val": sh.val, "vocab": sh.vocab_size, "tokenizer": sh.tokenizer, "val_labels": None}


# -- training ---------------------------------------------------------------------------------------------------
def _train(what: str, model, tcfg: TrainerConfig, run_dir: Path, stream: np.ndarray, n: int, log) -> dict:
    """One stage through the stage runner on windows of ``n`` symbols of ``stream``."""
    return run_stage(what, run_dir, model, tcfg,
                     lambda r, w: WindowSampler(stream, n, tcfg.batch_size, tcfg.seed, r, w), None, log)


def train_entropy_lm(cfg: VariableExpConfig, data: dict, log) -> CausalLM:
    """The small causal LM behind entropy boundaries (trained once per experiment, resumable)."""
    d = cfg.dir / "entropy_lm"
    lm_cfg = derive(cfg.entropy_lm, vocab_size=data["vocab"], context=cfg.chunk)
    _train("entropy LM", CausalLM(lm_cfg), cfg.entropy_lm_train, d, data["train"], cfg.chunk, log)
    return load_model(d, expect_kind="causal_lm")[0]


def train_cell(cfg: VariableExpConfig, data: dict, method: str, target: float, lm: CausalLM | None, log) -> dict:
    """One variable-rate compressor (a stage), then its held-out evaluation, kept in the cell's ``results.json``."""
    d, name = cfg.dir / cell_name(method, target), cell_name(method, target)
    if stage_state(d) == "done" and "acc" in stage_results(d):
        return stage_results(d)
    mcfg = cfg.cell_model(data["vocab"], method, target)
    model = VariableCompressor(mcfg)
    if method == "entropy":
        model.entropy_lm.load_state_dict(lm.state_dict())
        calib = gather_windows(data["train"], val_windows(data["train"], cfg.chunk, 512), cfg.chunk)
        log(f"{name}: entropy threshold {model.calibrate(calib):.3f} nats")
    st = _train(name, model, derive(cfg.train, progress=False), d, data["train"], cfg.chunk, log)
    model = load_model(d, expect_kind="variable_compressor")[0]
    res = evaluate_compressor(model, data["val"], cfg.eval.batch_size, cfg.eval.max_chunks)
    res.update({"method": method, "target": float(target), "step": st["step"], "train_time": st["train_time"],
                "codebook_size": model.quantizer.codebook_size, "bits_per_code": model.quantizer.bits_per_code})
    if data["val_labels"] is not None:
        res.update(codes_per_token_by_label(model, data["val"], data["val_labels"], cfg.chunk, cfg.eval.max_chunks))
    mark_done(d, res)
    log(f"{name}: acc {res['acc']:.3f}, ratio {res['ratio']:.2f}, {res['bits_per_token']:.3f} bits/token")
    return res


# -- the experiment -----------------------------------------------------------------------------------------------
def run_variable(cfg: VariableExpConfig, log=None) -> dict:
    """The variable-length codes experiment (``vqladder variable CONFIG``): one variable-rate compressor per
    boundary method and target ratio, the fixed baseline at equal bits; returns (and writes) its results."""
    log = log or stderr_log("variable")
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    started = any(stage_state(cfg.dir / cell_name(m, t)) == "done" for m in cfg.methods for t in cfg.targets)
    # the cells and where they live may change between runs; everything that shapes a cell may not
    open_experiment(cfg, ignore=("targets", "methods", "fixed_extra", "out_dir", "threads", "render_chunks", "name"),
                    retrainable=False, force=not started)
    data = load_streams(cfg)
    lm = train_entropy_lm(cfg, data, log) if "entropy" in cfg.methods else None
    rows = [train_cell(cfg, data, m, t, lm, log) for t in cfg.targets for m in cfg.methods]
    rows += [train_cell(cfg, data, "fixed", t, lm, log) for t in cfg.fixed_extra if t not in cfg.targets]
    add_equal_bits(rows)
    res = {"rows": rows, "chunk": cfg.chunk, "synthetic": cfg.synthetic.enabled,
           "data": "synthetic" if cfg.synthetic.enabled else cfg.data.corpus,
           "tokenizer": None if cfg.synthetic.enabled else cfg.data.tokenizer}
    write_results(cfg.dir, res, variable_markdown(res, cfg, BOUNDARY_METHODS))
    _plot_ratio(cfg, cfg.dir / "ratio_over_training.png")
    _plot_acc(rows, cfg.dir / "acc_vs_bits.png", BOUNDARY_METHODS)
    atomic_write_text(cfg.dir / "boundaries.html", boundaries_html(cfg, data))
    return res


def boundaries_html(cfg, data: dict) -> str:
    """The first held-out chunks segmented by every trained cell (evaluation), drawn by the report view."""
    n = cfg.chunk
    idx = val_windows(data["val"], n, cfg.render_chunks)
    chunks = gather_windows(data["val"], idx, n)
    tok = data["tokenizer"]
    piece = (lambda ts: tok.decode([int(t) for t in ts])) if tok is not None else render_symbols  # a segment at once
    labels = data.get("val_labels")
    lab = labels[idx[:, None] + np.arange(n)[None, :]] if labels is not None else None
    cells = [(m, t, cfg.dir / cell_name(m, t)) for t in cfg.targets for m in cfg.methods]
    return render_boundaries(cfg.name, np.asarray(chunks), cell_segments(chunks, cells), piece, lab)
