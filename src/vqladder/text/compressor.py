"""The first rung: train / evaluate a level-1 compressor over token chunks, from one config.

``RunConfig`` is the config of ``vqladder train`` (YAML under ``configs/``, dotted overrides on the CLI).
A run directory ``<out_dir>/<name>/`` gets ``config.yaml`` (fully resolved), ``metrics.jsonl``,
``checkpoints/``, ``tokenizer/`` and, at the end, ``results.json``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..config import OptPosInt, PathStr, PosInt, RunName, config_diff, save_yaml, to_dict
from ..data import WindowSampler
from ..data.shards import DataConfig, check_fingerprint, data_fingerprint, load_shards  # noqa: F401
from ..errors import VQLadderError
from ..eval import evaluate_compressor
from ..io import atomic_write_json, claim_run_dir
from ..models import CompressorConfig, SequenceCompressor
from ..train import Trainer, TrainerConfig
from ..train import distributed as D


@dataclass
class EvalConfig:
    batch_size: PosInt = 32                # chunks per eval batch
    max_chunks: OptPosInt = 256               # held-out chunks per eval; -1 = the whole val split


@dataclass
class RunConfig:
    EXPERIMENT: ClassVar[str] = "compressor"  # the `experiment:` key its saved config carries
    name: RunName = "rung1"                 # run directory name under out_dir
    out_dir: PathStr = "runs"               # where run directories live
    data: DataConfig = field(default_factory=DataConfig)
    model: CompressorConfig = field(default_factory=CompressorConfig)
    train: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def train_run(cfg: RunConfig, resume: bool = False) -> dict:
    """Train a level-1 compressor as ``cfg`` says; returns the final held-out results (also results.json). The
    run directory ``out_dir/name`` holds config.yaml, metrics.jsonl, checkpoints, results.json and what the report
    draws (``vqladder report``).

    >>> from pathlib import Path
    >>> from vqladder import RunConfig, load_config, prepare, train_run
    >>> _ = Path("corpus.txt").write_text("The quick brown fox jumps over the lazy dog. " * 400)
    >>> _ = prepare("corpus.txt", "bytes", "data/fox", block_size=512)
    >>> cfg = load_config(RunConfig, None, ["data.path=data/fox", "data.corpus=corpus.txt", "data.tokenizer=bytes",
    ...     "model.in_len=32", "model.out_len=8", "model.d_model=32", "model.n_heads=2", "model.tok_dim=16",
    ...     "model.quantizer.codebook_size=256", "train.steps=6", "train.batch_size=4", "train.eval_every=-1",
    ...     "train.progress=false", "eval.max_chunks=8", "out_dir=runs", "name=fox"])
    >>> res = train_run(cfg)
    >>> res["step"], 0.0 <= res["acc"] <= 1.0, sorted(p.name for p in Path("runs/fox").glob("*.json"))
    (6, True, ['explorer.json', 'results.json'])
    """
    from ..train.trainer import pick_device

    D.init_distributed(pick_device(cfg.train.device))  # before preparing data: rank 0 prepares, others wait
    shards = load_shards(cfg.data, progress=cfg.train.progress)
    if cfg.model.vocab_size == 0:
        cfg.model.vocab_size = shards.vocab_size
    elif cfg.model.vocab_size != shards.vocab_size:
        raise VQLadderError(f"model.vocab_size={cfg.model.vocab_size} but the data has {shards.vocab_size} symbols")
    n = cfg.model.in_len
    if len(shards.val) < n:
        raise VQLadderError(
            f"the val split of {shards.dir} has {len(shards.val)} tokens, fewer than one chunk of {n}; "
            f"use a bigger corpus, a smaller model.in_len or `prepare --block-size`"
        )
    model = SequenceCompressor(cfg.model)
    run_dir = cfg.run_dir
    cfg_path = run_dir / "config.yaml"
    if resume and not cfg_path.is_file():
        raise VQLadderError(f"nothing to resume: {run_dir} has no config.yaml")
    if D.is_main():
        claim_run_dir(run_dir)  # one writer, and only a directory the tool made: a second `train` gets one line
    done = _accept(cfg, run_dir, shards, resume)  # before anything is written: config.yaml says only what will run
    if done is not None:
        if D.is_main() and not (run_dir / "explorer.json").is_file():  # a run finished before the report read it
            from ..models import load_model

            write_explorer(run_dir, load_model(run_dir, "sequence_compressor")[0], shards)
        return done

    def sampler(rank, world):
        return WindowSampler(shards.train, n, cfg.train.batch_size, cfg.train.seed, rank, world)

    def evaluate(m):
        return evaluate_compressor(m, shards.val, cfg.eval.batch_size, cfg.eval.max_chunks, tokenizer=shards.tokenizer)

    meta = {"model_config": to_dict(cfg.model), "data": str(shards.dir), "tokenizer": shards.meta["tokenizer"],
            "data_fingerprint": data_fingerprint(shards.dir)}
    trainer = Trainer(model, cfg.train, run_dir, sampler, evaluate, meta)
    trainer.check_writable()
    if D.is_main():
        save_yaml(cfg, cfg_path)
        tok_dir = run_dir / "tokenizer"
        if not tok_dir.exists():
            tmp = run_dir / ".tokenizer.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(shards.dir / "tokenizer", tmp)
            tmp.rename(tok_dir)
    val = trainer.fit(resume=resume)
    results = {"step": trainer.step, "tokens_seen": trainer.tokens_seen, "world": trainer.world,
               "train_time": round(trainer.train_time, 2), "bits_per_token": model.bits_per_token,
               "rank_fingerprints": trainer.fingerprints,
               "compression": cfg.model.compression,
               "codebook_size": model.quantizer.codebook_size, "quantizer": cfg.model.quantizer.kind,
               **{k: v for k, v in val.items() if k != "examples"}}
    if D.is_main():
        write_explorer(run_dir, model, shards)
        atomic_write_json(run_dir / "results.json", results)
    return results


def write_explorer(run_dir: Path, model, shards, max_chunks: int = 48) -> None:
    """Write what the run's report draws (held-out reconstructions and the code explorer) into ``explorer.json``."""
    from ..checkpoint import latest_valid_checkpoint
    from ..eval.explorer import explorer_data

    found = latest_valid_checkpoint(run_dir / "checkpoints", warn=False)
    data = explorer_data(model, shards.val, shards.tokenizer, max_chunks)
    atomic_write_json(run_dir / "explorer.json", {"checkpoint": found[0].name if found else "", **data})


# what a resume may change: how long it trains, and how it logs, checkpoints, evaluates and shows progress
RESUMABLE_KEYS = {"train": ("steps", "max_time", "log_every", "eval_every", "ckpt_every", "keep_last", "progress",
                            "threads", "tensorboard", "device"),
                  "eval": ("batch_size", "max_chunks")}
RESUMABLE = {f"{sec}.{k}" for sec, keys in RESUMABLE_KEYS.items() for k in keys} | {"model.vocab_size", "name", "out_dir"}


def _accept(cfg: RunConfig, run_dir: Path, shards, resume: bool) -> dict | None:
    """Decide, before anything is written, whether this ``train`` may run in ``run_dir``. A new run needs a
    directory without checkpoints; a resume needs the same config (up to ``RESUMABLE_KEYS``) and the data the run
    was trained on. A resume of a finished run with as many steps or fewer returns its results (nothing is
    rewritten); with more steps it extends the run, and says so."""
    import json
    import sys

    from ..checkpoint import latest_valid_checkpoint
    from ..config import read_yaml

    cfg_path = run_dir / "config.yaml"
    found = latest_valid_checkpoint(run_dir / "checkpoints", warn=False)
    if not resume:
        if found is not None or any((run_dir / "checkpoints").glob("step_*")):
            raise VQLadderError(f"run directory {run_dir} already has checkpoints; pass --resume to continue it, or "
                                f"a new name=")
        return None
    if not cfg_path.is_file():
        raise VQLadderError(f"nothing to resume: {run_dir} has no config.yaml")
    diff = config_diff(read_yaml(cfg_path), to_dict(cfg), RESUMABLE)
    if diff:
        raise VQLadderError(f"--resume with a changed config ({', '.join(diff[:6])} differ); {run_dir} "
                            f"was made with the settings in {cfg_path}: resume with those, or train a new name=")
    if found is None:
        return None  # a run killed before its first checkpoint: starts over with the same config
    ckpt, meta = found
    check_fingerprint(shards.dir, meta.get("data_fingerprint"), run_dir)
    prev = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else None
    if cfg.train.max_time <= 0 and meta.get("step", 0) >= cfg.train.steps and prev is not None:
        print(f"run already complete at step {meta['step']} (train.steps={cfg.train.steps}); nothing to do "
              f"(give train.steps above {meta['step']} to extend it)", file=sys.stderr)
        return prev
    if prev is not None and cfg.train.steps > meta.get("step", 0):
        print(f"extending the finished run from {meta['step']} to {cfg.train.steps} steps (the learning-rate schedule "
              f"is re-planned over {cfg.train.steps} steps)", file=sys.stderr)
    return None
