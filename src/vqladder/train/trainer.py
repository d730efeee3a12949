"""The Trainer: trains anything with ``loss(batch) -> (loss, metrics)``.

Owns the optimiser (AdamW, no decay on norms/biases/embeddings of width 1), the schedule (linear warmup +
cosine to ``min_lr_ratio``), gradient accumulation and clipping, autocast (bf16 on CUDA and on CPUs with
native bf16: AVX512-BF16/AMX), periodic held-out evaluation, the progress bar, ``metrics.jsonl``, atomic
checkpoints with keep-last-N, exact resume, and DDP when launched by ``torchrun``.

The run directory is the source of truth: the trainer appends to ``<run>/metrics.jsonl`` and writes
``<run>/checkpoints/``; everything else (tables, plots) reads them afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from ..checkpoint import (
    find_checkpoints,
    latest_valid_checkpoint,
    load_trainer_state,
    load_weights,
    save_checkpoint,
)
from ..config import (
    Annotated,
    Check,
    HalfOpenUnit,
    NonNegFloat,
    NonNegInt,
    OptPosFloat,
    OptPosInt,
    PosFloat,
    PosInt,
    Unit,
)
from ..errors import NonFiniteLossError, VQLadderError
from ..io import own_dir, remove_tree
from . import distributed as D
from .optim import OPTIMIZERS, Optimizers


@dataclass
class TrainerConfig:
    steps: PosInt = 1000                 # optimiser steps
    batch_size: PosInt = 16              # chunks per micro-batch per rank
    grad_accum: PosInt = 1               # micro-batches per optimiser step
    lr: PosFloat = 1e-3                  # peak learning rate
    min_lr_ratio: Unit = 0.1         # cosine floor as a fraction of lr
    warmup: NonNegInt = 50                  # linear warmup steps
    weight_decay: NonNegFloat = 0.01        # decoupled decay on matrices only (AdamW and Muon)
    optimizer: str = "adamw"          # adamw | muon (Muon for hidden matrices, AdamW for the rest; see train/optim.py)
    betas: Annotated[list[HalfOpenUnit], Check(length=2)] = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    grad_clip: OptPosFloat = 1.0            # max grad norm; -1 = disabled
    precision: str = "auto"           # auto | bf16 | fp32   (auto: bf16 on CUDA and on CPUs with native bf16)
    device: str = "auto"              # auto | cpu | cuda | mps
    seed: NonNegInt = 0                     # data order and global RNG
    eval_every: OptPosInt = 200             # steps between held-out evals; -1 = only at the end
    # steps between scores of the trainer's ``select`` callback (a validation split, never the held-out one): the
    # run ends holding the weights of the best-scored step (early stopping's choice, the budget still trained);
    # -1 = off (the last step's weights)
    select_every: OptPosInt = -1
    log_every: PosInt = 10               # steps between metrics.jsonl lines
    ckpt_every: OptPosInt = 200             # steps between checkpoints; -1 = only at the end
    keep_last: OptPosInt = 3                # checkpoints kept; -1 = all
    nan_policy: str = "stop"          # stop | skip   (what a NaN/inf loss does)
    progress: bool = True             # progress bar on stderr
    threads: OptPosInt = -1                 # torch CPU threads; -1 = leave torch's default
    max_time: OptPosFloat = -1.0            # seconds; the schedule is planned to end then (see _plan_steps); -1 = none
    mfu: bool = True                  # log model FLOP utilisation (FLOPs/token counted once, peak measured once)
    # torch.compile the training forward and backward (the model's loss; weights and checkpoints unchanged). Pays
    # where benchmarks/bench_levers.py measures it faster (the text compressor on CPU) after its compile time (tens
    # of seconds cold); a model it cannot compile trains eagerly with one warning
    compile: bool = False
    tensorboard: bool = False         # also write every logged scalar to <run>/tensorboard (needs the [tb] extra)

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise VQLadderError("train.steps, train.batch_size and train.grad_accum must be >= 1")
        if self.lr <= 0:
            raise VQLadderError(f"train.lr must be positive, got {self.lr}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise VQLadderError(f"train.precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise VQLadderError(f"train.device must be auto, cpu, cuda or mps, got {self.device!r}")
        if self.optimizer not in OPTIMIZERS:
            raise VQLadderError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.nan_policy not in ("stop", "skip"):
            raise VQLadderError(f"train.nan_policy must be stop or skip, got {self.nan_policy!r}")


TIME_PLAN_MARGIN = 0.9  # share of the time left that a time-budgeted run plans its schedule for


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VQLadderError("train.device=cuda but CUDA is not available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise VQLadderError("train.device=mps but MPS is not available")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise VQLadderError(f"unknown train.device {name!r}: use auto, cpu, cuda (cuda:N) or mps")
    return dev


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device):
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def lr_at(step: int, cfg: TrainerConfig, total: int | None = None) -> float:
    """Linear warmup, then cosine from ``lr`` to ``lr * min_lr_ratio`` at step ``total`` (default ``cfg.steps``;
    a time-budgeted run passes the step count it planned from its measured step time)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, (cfg.steps if total is None else total) - cfg.warmup)
    frac = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


class _LossModule(nn.Module):
    """DDP must see the call that computes the loss; this wraps ``model.loss`` as ``forward``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


class Trainer:
    """``Trainer(model, cfg, run_dir, sampler_factory, evaluate).fit(resume=...)``.

    ``sampler_factory(rank, world)`` returns an object with ``next_batch()``, ``state_dict()`` and
    ``load_state_dict()`` (see ``data.WindowSampler``). ``evaluate(model) -> dict`` computes held-out
    metrics (keys are logged with a ``val_`` prefix). ``meta`` is stored in every checkpoint's meta.json.
    ``select(model) -> float`` (lower is better) scores the model on a validation split every
    ``train.select_every`` steps and at the end; the run ends holding the best-scored weights (``best_step``),
    which the final evaluation and checkpoint see. The best weights travel in every checkpoint (exact resume).

    >>> import tempfile, numpy as np
    >>> from vqladder import CompressorConfig, SequenceCompressor, Trainer, TrainerConfig, WindowSampler, load_model
    >>> tokens = np.random.default_rng(0).integers(0, 64, 20_000).astype(np.uint16)
    >>> model = SequenceCompressor(CompressorConfig(vocab_size=64, in_len=32, out_len=8, d_model=32, n_heads=2))
    >>> run = tempfile.mkdtemp()
    >>> cfg = TrainerConfig(steps=4, batch_size=4, eval_every=-1, log_every=2, progress=False)
    >>> trainer = Trainer(model, cfg, run, lambda rank, world: WindowSampler(tokens, 32, 4, 0, rank, world))
    >>> _ = trainer.fit()
    >>> trainer.step
    4
    >>> loaded, meta, ckpt = load_model(run)           # the newest valid checkpoint, rebuilt from its meta
    >>> ckpt.name, type(loaded).__name__
    ('step_000004', 'SequenceCompressor')
    """

    def __init__(self, model: nn.Module, cfg: TrainerConfig, run_dir: str | Path,
                 sampler_factory: Callable, evaluate: Callable | None = None, meta: dict | None = None,
                 select: Callable | None = None):
        cfg.validate()
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.device = pick_device(cfg.device)
        self.rank, self.world = D.init_distributed(self.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        self.model = model.to(self.device)
        self.sampler = sampler_factory(self.rank, self.world)
        self.evaluate = evaluate
        self.select = select if cfg.select_every > 0 else None
        if cfg.select_every > 0 and select is None:
            D.print0("warning: train.select_every is ignored: this stage has no validation split to score on (a "
                     "ladder's `select` names the stages that hold one back)", file=sys.stderr)
        self.best_value, self.best_step, self.best_weights = math.inf, -1, None
        self.meta = dict(meta or {})
        self.meta.setdefault("model_config", _config_dict(model))
        self.step = 0
        self.tokens_seen = 0
        self.total_steps = cfg.steps  # with train.max_time: planned from the measured step time after warmup
        self.plan_points: list[int] = []  # time budget: the steps at which the schedule is (re-)planned
        self.fingerprints: list[float] = []
        self.time_offset = 0.0  # training seconds before the last resume (for train.max_time and logs)
        self.opt = Optimizers(self.model, cfg.optimizer, cfg.lr, cfg.betas, cfg.weight_decay,
                              fused=self.device.type == "cuda" or None,  # Muon's orthogonalisation in bf16 where
                              ns_dtype=self.amp_dtype or torch.float32)  # it is native, else fp32
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # buffers (codebooks, EMA state) are kept identical by the quantizers' own all-reduces
            self.ddp = DDP(_LossModule(self.model), device_ids=ids, broadcast_buffers=False)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.tb = None

    # -- run directory ----------------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail before training if the run directory cannot be written or the disk is nearly full.

        A collective under DDP: rank 0 checks, every rank raises the same one-line error."""
        err = None
        if D.is_main():
            try:
                own_dir(self.run_dir, "stage", "run directory")  # new, empty or the tool's: never a user's folder
                probe = self.run_dir / f".write-test-{os.getpid()}"
                with open(probe, "wb") as f:
                    f.write(b"0" * 4096)
                    f.flush()
                    os.fsync(f.fileno())
                os.unlink(probe)
                need = sum(p.numel() * p.element_size() for p in self.model.parameters()) * 4
                free = _free_bytes(self.run_dir)
                if free is not None and free < need:
                    err = (f"not enough disk space in {self.run_dir}: {free // 2**20} MiB free, a checkpoint "
                           f"needs about {need // 2**20} MiB")
            except VQLadderError as e:
                err = str(e)
            except OSError as e:
                err = f"run directory {self.run_dir} is not writable: {e.strerror}"
        if D.any_rank(err is not None, self.device):
            raise VQLadderError(err or f"run directory {self.run_dir} is not usable (see rank 0)")

    def _log(self, record: dict) -> None:
        if D.is_main():
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.tb is not None:
                for k, v in record.items():
                    if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                        self.tb.add_scalar(k.replace("_", "/", 1) if k.startswith(("train_", "val_")) else k, v,
                                           record["step"])
                self.tb.flush()

    def _open_tensorboard(self):
        """The same scalars as metrics.jsonl, for TensorBoard (``tensorboard --logdir runs``)."""
        if not (self.cfg.tensorboard and D.is_main()):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise VQLadderError("train.tensorboard needs the tensorboard package (pip install -e '.[tb]')") from e
        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1 if self.step else None)

    def _truncate_metrics(self, step: int) -> None:
        """On resume, drop log lines beyond the checkpoint's step (and any torn last line)."""
        if not D.is_main() or not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("step", 0) <= step:
                keep.append(line)
        from ..io import atomic_write_text

        atomic_write_text(self.metrics_path, "".join(l + "\n" for l in keep))

    # -- checkpoints ------------------------------------------------------------------------------------------
    def trainer_state(self) -> dict:
        st = {
            "optimizer": self.opt.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "step": torch.tensor(self.step),
            "tokens_seen": torch.tensor(self.tokens_seen),
            "total_steps": torch.tensor(self.total_steps),
            "plan_points": torch.tensor(self.plan_points, dtype=torch.long),
        }
        if self.best_weights is not None:
            st.update(best_value=torch.tensor(self.best_value, dtype=torch.float64),
                      best_step=torch.tensor(self.best_step), best_weights=self.best_weights)
        if torch.cuda.is_available():
            st["rng_cuda"] = torch.cuda.get_rng_state()
        return st

    def save(self) -> None:
        if D.is_main():
            meta = dict(self.meta, sampler=self.sampler.state_dict(), tokens_seen=self.tokens_seen,
                        world=self.world, train_time=round(self.train_time, 3))
            try:
                save_checkpoint(self.ckpt_root, self.step, self.model, self.trainer_state(), meta,
                                self.cfg.keep_last)
            except OSError as e:
                raise VQLadderError(f"cannot write checkpoint step {self.step} in {self.ckpt_root}: "
                                    f"{e.strerror or e}; earlier checkpoints are intact")
        D.barrier()

    def restore(self) -> bool:
        """Load the newest valid checkpoint; returns False if there is none."""
        if D.is_main() and self.ckpt_root.is_dir():
            for stale in self.ckpt_root.glob(".step_*"):  # a kill during a checkpoint write
                remove_tree(stale)
        D.barrier()
        found = latest_valid_checkpoint(self.ckpt_root, warn=D.is_main())
        if found is None:
            n = len(find_checkpoints(self.ckpt_root))
            if n:
                D.print0(f"warning: all {n} checkpoints in {self.ckpt_root} are corrupted; starting from step 0",
                         file=sys.stderr)
            torch.manual_seed(self.cfg.seed)
            return False
        ckpt, meta = found
        if meta.get("kind") != getattr(self.model, "kind", None):
            raise VQLadderError(f"checkpoint {ckpt} holds a {meta.get('kind')!r} model, not {self.model.kind!r}")
        if meta.get("model_config") != self.meta.get("model_config"):
            raise VQLadderError(f"checkpoint {ckpt} was made with a different model config; use a new run name")
        load_weights(self.model, ckpt)
        st = load_trainer_state(ckpt)
        self.opt.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["rng_cpu"])
        if "rng_cuda" in st and torch.cuda.is_available():
            torch.cuda.set_rng_state(st["rng_cuda"])
        self.step = int(st["step"])
        self.tokens_seen = int(st["tokens_seen"])
        if "total_steps" in st:  # a time-budgeted run resumes with the schedule it planned (and its next plan point)
            self.total_steps = int(st["total_steps"])
            self.plan_points = [int(v) for v in st.get("plan_points", torch.zeros(0)).tolist()]
        if self.cfg.max_time <= 0 and self.cfg.steps > self.total_steps:  # a resume that extends the run
            self.total_steps = self.cfg.steps
        if "best_weights" in st:
            self.best_value, self.best_step = float(st["best_value"]), int(st["best_step"])
            self.best_weights = st["best_weights"]
        self.time_offset = float(meta.get("train_time", 0.0))
        # the data position is global (the same on every rank), so it also holds for another world size
        self.sampler.load_state_dict(meta["sampler"])
        self._truncate_metrics(self.step)
        D.print0(f"resumed from {ckpt} (step {self.step})", file=sys.stderr)
        return True

    # -- loop -------------------------------------------------------------------------------------------------
    def _measure_flops(self) -> None:
        """FLOPs per token of one training step (counted on the sampler's next batch, then the sampler's state is
        put back, so the data order is untouched) and this machine's matmul peak at the training dtype."""
        from .flops import flops_per_token, matmul_peak

        self.flops_per_token, self.peak_flops = 0.0, 1.0
        if not self.cfg.mfu or not hasattr(self.model, "loss"):
            return
        state = self.sampler.state_dict()
        batch = self.sampler.next_batch().to(self.device)
        self.sampler.load_state_dict(state)
        import copy

        rng = torch.get_rng_state()  # counting must move neither the RNG nor any buffer (exact resume):
        self.flops_per_token = flops_per_token(copy.deepcopy(self.model), batch, self._autocast())  # a copy
        torch.set_rng_state(rng)
        self.peak_flops = matmul_peak(self.device, self.amp_dtype or torch.float32)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _in_eval_mode(self, fn):
        """``fn(model)`` with the model in eval mode (train mode again after) under the training autocast."""
        self.model.eval()
        try:
            with self._autocast():
                return fn(self.model)
        finally:
            self.model.train()

    def _eval(self) -> dict:
        return {} if self.evaluate is None else self._in_eval_mode(self.evaluate)

    def _select_step(self, last: bool) -> None:
        """Score the weights on the validation split; keep a copy when they are the best so far; at the last step,
        put the best weights back in the model."""
        with torch.no_grad():
            value = float(self._in_eval_mode(self.select))
        self._log({"step": self.step, "time": round(self.train_time, 3), "select": value})
        if value < self.best_value or self.best_weights is None:
            self.best_value, self.best_step = value, self.step
            self.best_weights = {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}
        if last and self.best_step != self.step:
            self.model.load_state_dict(self.best_weights)
            D.print0(f"selected the weights of step {self.best_step} (validation {self.best_value:.4f})",
                     file=sys.stderr)

    def fit(self, resume: bool = False) -> dict:
        """Train to ``cfg.steps``; returns the last held-out metrics."""
        cfg = self.cfg
        self.check_writable()
        if resume:
            self.restore()
        elif self.ckpt_root.exists() and any(self.ckpt_root.iterdir()):
            raise VQLadderError(f"run directory {self.run_dir} already has checkpoints; pass --resume or a new name")
        else:
            torch.manual_seed(cfg.seed)
        self.tb = self._open_tensorboard()
        if self.step >= self.total_steps:
            D.print0(f"run already complete at step {self.step}", file=sys.stderr)
            self.fingerprints = self.rank_fingerprints()
            return self._eval()
        self._measure_flops()
        self.model.train()
        fwd = self.ddp if self.ddp is not None else _LossModule(self.model)
        if cfg.compile:
            fwd = _CompiledLoss(fwd, self.model)
        set_progress = getattr(self.model, "set_progress", None)
        show = cfg.progress and D.is_main()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=None if show else True, file=sys.stderr,
                   dynamic_ncols=True, leave=False, mininterval=1.0)
        plain = PlainProgress(self.run_dir, self.total_steps, self.step) if show and bar.disable else None
        if cfg.max_time > 0 and not self.plan_points and self.step == 0:
            # plan after warmup (measured over its second half), then once more halfway through the planned
            # schedule (measured since the first plan): step times drift, the deadline does not
            self.plan_points = [max(cfg.warmup, 10)]
        t_plan0, step_plan0 = None, None
        t0, tok0 = time.time(), self.tokens_seen
        self._t0 = t0
        last_val: dict = {}
        window_metrics: dict = {}
        n_window = 0
        while self.step < self.total_steps:
            lr = lr_at(self.step, cfg, self.total_steps)
            for g in self.opt.param_groups:
                g["lr"] = lr
            if set_progress is not None:  # a model whose loss changes over training (a ramped term), by step
                set_progress(self.step / max(1, self.total_steps))
            step_metrics: dict = {}
            step_loss = 0.0
            for micro in range(cfg.grad_accum):
                batch = self.sampler.next_batch().to(self.device, non_blocking=True)
                sync = self.ddp is not None and micro < cfg.grad_accum - 1
                with (self.ddp.no_sync() if sync else contextlib.nullcontext()), self._autocast():
                    loss, metrics = fwd(batch)
                    loss = loss / cfg.grad_accum
                loss.backward()
                step_loss += loss.detach().float()
                for k, v in metrics.items():  # tensors: no device sync until the log step
                    step_metrics[k] = step_metrics.get(k, 0.0) + v.detach().float() / cfg.grad_accum
                self.tokens_seen += batch.numel() * self.world
            gnorm = None
            if cfg.grad_clip > 0:
                gnorm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
            step_loss = float(step_loss)  # the one sync per step: a NaN must be caught before the update
            bad = not math.isfinite(step_loss) or (gnorm is not None and not math.isfinite(gnorm))
            if D.any_rank(bad, self.device):
                self.opt.zero_grad(set_to_none=True)
                if cfg.nan_policy == "stop":
                    bar.close()
                    raise NonFiniteLossError(
                        f"loss became {step_loss} at step {self.step}; stopped, the last good checkpoint is kept "
                        f"(set train.nan_policy=skip to skip such batches)"
                    )
                D.print0(f"warning: non-finite loss at step {self.step}; batch skipped", file=sys.stderr)
                self.step += 1
                bar.update(1)
                continue
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
            step_metrics["loss"] = step_loss
            for k, v in step_metrics.items():
                window_metrics[k] = window_metrics.get(k, 0.0) + v
            n_window += 1
            elapsed = time.time() - t0
            tps = (self.tokens_seen - tok0) / max(elapsed, 1e-9)
            elapsed += self.time_offset
            nxt = self.plan_points[-1] if self.plan_points else -1
            if t_plan0 is None and nxt // 2 <= self.step < nxt:
                t_plan0, step_plan0 = time.time(), self.step  # the measuring window starts (again after a resume)
            if self.step == nxt and t_plan0 is not None and self.step > step_plan0:
                self.total_steps = self._plan_steps(time.time() - t_plan0, self.step - step_plan0, elapsed)
                t_plan0 = None
                if len(self.plan_points) == 1 and self.total_steps - self.step > 20:
                    self.plan_points.append((self.step + self.total_steps) // 2)
                else:
                    self.plan_points.append(-1)  # planning done
                bar.total = self.total_steps
                if plain is not None:
                    plain.total = self.total_steps
            if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                rec = {"step": self.step, "tokens": self.tokens_seen, "time": round(elapsed, 3), "lr": lr,
                       "tok_per_s": round(tps, 1)}
                if self.flops_per_token:
                    rec["mfu"] = round(tps / self.world * self.flops_per_token / self.peak_flops, 4)
                keys = sorted(window_metrics)
                avg = D.all_reduce_mean(torch.stack([torch.as_tensor(window_metrics[k], device=self.device)
                                                     .double() / n_window for k in keys]))
                rec.update({f"train_{k}": round(float(v), 6) for k, v in zip(keys, avg)})
                if gnorm is not None:
                    rec["grad_norm"] = round(gnorm, 4)
                self._log(rec)
                window_metrics, n_window = {}, 0
                bar.set_postfix(loss=f"{rec['train_loss']:.3f}", acc=f"{rec.get('train_acc', 0):.3f}",
                                usage=f"{rec.get('train_usage', 0):.3f}", tok_s=f"{tps:.0f}",
                                mfu=f"{rec.get('mfu', 0):.0%}", refresh=False)
                if plain is not None:
                    plain.last = rec
            bar.update(1)
            if plain is not None:
                plain.tick(self.step, tps)
            out_of_time = cfg.max_time > 0 and elapsed > cfg.max_time
            out_of_time = D.any_rank(out_of_time, self.device) if self.world > 1 else out_of_time
            last = self.step == self.total_steps or out_of_time
            if self.select is not None and (self.step % cfg.select_every == 0 or last):
                self._select_step(last)
            if (cfg.eval_every > 0 and self.step % cfg.eval_every == 0) or last:
                last_val = self._eval()
                self._log({"step": self.step, "tokens": self.tokens_seen, "time": round(self.train_time, 3),
                           **{f"val_{k}": v for k, v in last_val.items()}})
            if (cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0) or last:
                self.save()
            if out_of_time:
                D.print0(f"stopping at step {self.step}: train.max_time={cfg.max_time}s reached", file=sys.stderr)
                break
        bar.close()
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        self.time_offset, self._t0 = self.train_time, None  # freeze the clock
        self.fingerprints = self.rank_fingerprints()
        if len(set(self.fingerprints)) > 1:
            raise VQLadderError(f"ranks disagree on the model state after training: {self.fingerprints}")
        return last_val

    def _plan_steps(self, seconds: float, steps: int, elapsed: float) -> int:
        """The step count that ends the cosine schedule at ``train.max_time``, from the measured seconds per step
        (held-out evals ahead are not counted: with many, the run stops at the deadline a little before the
        floor); at most ``train.steps``. The same on
        every rank (rank 0 decides), stored in every checkpoint so a resume keeps the schedule bitwise."""
        per_step = seconds / max(steps, 1)
        cfg = self.cfg
        # plan for 90% of the time left: step times drift (checkpoints, logging, a busy machine), and the
        # deadline stops a slower run before its floor while a faster one merely ends a little early
        left = TIME_PLAN_MARGIN * (cfg.max_time - elapsed)
        planned = min(cfg.steps, self.step + max(1, int(left / max(per_step, 1e-9))))
        if self.world > 1:
            t = torch.tensor([planned], device=self.device)
            torch.distributed.broadcast(t, 0)
            planned = int(t.item())
        D.print0(f"time budget {cfg.max_time:.0f}s: {per_step * 1000:.0f} ms/step measured, the schedule now ends "
                 f"at step {planned}", file=sys.stderr)
        return planned

    @property
    def train_time(self) -> float:
        """Seconds spent training in this run, across resumes."""
        t0 = getattr(self, "_t0", None)
        return self.time_offset + (time.time() - t0 if t0 is not None else 0.0)

    def rank_fingerprints(self) -> list[float]:
        """One number per rank summarising all weights and buffers (codebooks, EMA state); equal across ranks
        when DDP and the quantizers' all-reduces keep every rank identical."""
        with torch.no_grad():
            fp = torch.zeros((), dtype=torch.float64, device=self.device)
            for i, t in enumerate(self.model.state_dict().values()):
                if torch.is_tensor(t) and t.is_floating_point():
                    w = 1 + torch.arange(t.numel(), device=t.device) % 7
                    fp += (t.double().flatten() * w).sum() * (i + 1)
            if self.world == 1:
                return [float(fp)]
            out = [torch.zeros_like(fp) for _ in range(self.world)]
            torch.distributed.all_gather(out, fp)
            return [float(x) for x in out]


class PlainProgress:
    """Progress for logs: with stderr not a terminal (tqdm then draws nothing), one plain line every
    ``VQLADDER_PROGRESS_EVERY`` seconds (default 30): step, tokens/s, loss, accuracy, ETA."""

    def __init__(self, run_dir: Path, total: int, start: int):
        self.run, self.total, self.start = run_dir, total, start
        raw = os.environ.get("VQLADDER_PROGRESS_EVERY", "30") or "30"
        try:
            self.every = float(raw)
        except ValueError:
            self.every = float("nan")
        if not (math.isfinite(self.every) and self.every >= 0):
            raise VQLadderError(f"VQLADDER_PROGRESS_EVERY must be a number of seconds >= 0, got {raw!r}")
        self.t0 = self.next = time.time()
        self.next += self.every
        self.last: dict = {}

    def tick(self, step: int, tok_per_s: float) -> None:
        now = time.time()
        if now < self.next and step < self.total:
            return
        self.next = now + self.every
        done = step - self.start
        eta = (now - self.t0) / max(done, 1) * (self.total - step)
        loss = f" | loss {self.last['train_loss']:.3f}" if "train_loss" in self.last else ""
        acc = f" | acc {self.last['train_acc']:.3f}" if "train_acc" in self.last else ""
        print(f"[train] {self.run}: step {step}/{self.total} ({100 * step / self.total:.0f}%) | "
              f"{tok_per_s:,.0f} tok/s{loss}{acc} | ETA {int(eta) // 60}m{int(eta) % 60:02d}s",
              file=sys.stderr, flush=True)


class _LostGradient(RuntimeError):
    pass


class _CompiledLoss:
    """``train.compile``: the loss call ``eager`` under torch.compile. Its first call is checked: if the compiler
    fails, or returns a loss with no gradient (seen with inductor on CPU for some graphs), the buffers (running
    statistics, code usage) and RNG that call may have moved are put back, one warning is printed, and this and
    every later step run eagerly."""

    def __init__(self, eager, model: nn.Module):
        self.eager, self.model, self.fn, self.checked = eager, model, torch.compile(eager), False

    def __call__(self, batch):
        if self.checked:
            return self.fn(batch)
        bufs = {k: b.detach().clone() for k, b in self.model.named_buffers()}
        rng = torch.get_rng_state()
        try:
            out = self.fn(batch)
            if not out[0].requires_grad and torch.is_grad_enabled():
                raise _LostGradient("the compiled loss carries no gradient")
        except Exception as e:  # noqa: BLE001 - the compiler's own failures, whatever their class
            if not _is_compile_error(e):
                raise
            D.print0(f"warning: train.compile: torch.compile failed ({type(e).__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''}); training eagerly", file=sys.stderr)
            with torch.no_grad():
                for k, b in self.model.named_buffers():
                    b.copy_(bufs[k])
            torch.set_rng_state(rng)
            self.fn = self.eager
            out = self.fn(batch)
        self.checked = True
        return out


def _is_compile_error(e: BaseException) -> bool:
    """A failure of torch.compile's machinery (dynamo, inductor, the C++ toolchain), not of the model."""
    mod = type(e).__module__ or ""
    return (isinstance(e, _LostGradient) or mod.startswith(("torch._dynamo", "torch._inductor"))
            or "BackendCompilerFailed" in type(e).__name__)


def _config_dict(model) -> dict:
    import dataclasses

    cfg = getattr(model, "config", None)
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}


def _free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
