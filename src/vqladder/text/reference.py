"""The LM reference of the sweeps: a small causal LM whose held-out bits per token bound the text's entropy rate
from above (a better LM lowers it), its training steps chosen on held-back training text, never on val."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import find_checkpoints
from ..config import derive
from ..data import WindowSampler
from ..errors import VQLadderError
from ..eval.baselines import lm_bits_per_token, unigram_logp
from ..io import read_metrics
from ..models import CausalLM, LMConfig, load_model
from ..train.stage import run_stage
from ..train.trainer import TrainerConfig


def train_lm_reference(lm_cfg: LMConfig, tcfg: TrainerConfig, shards, n: int, maxc: int, dev_fraction: float,
                       run_dir: Path, log=print) -> dict:
    """The LM reference on ``n``-token windows of ``shards``: trained on train minus its last ``dev_fraction``,
    its checkpoint (one per eval) chosen by the lowest bits on that held-back train slice (never on val), then
    scored on (up to ``maxc`` windows of) val at every position, the first token under the train unigram.
    Resumes from ``run_dir``'s last checkpoint. The configs are copied, not changed."""
    lm_cfg = derive(lm_cfg, vocab_size=shards.vocab_size, context=n)
    tcfg = derive(tcfg, progress=False, keep_last=-1,  # a checkpoint for every dev evaluation, to pick from
                  ckpt_every=tcfg.eval_every if tcfg.eval_every > 0 else tcfg.ckpt_every)
    cut = int(len(shards.train) * (1 - dev_fraction))
    train, dev = shards.train[:cut], shards.train[cut:]
    if len(dev) < n:
        raise VQLadderError(f"references.dev_fraction={dev_fraction} holds back fewer than one chunk")
    first = unigram_logp(train, shards.vocab_size)
    run_stage("the LM reference", run_dir, CausalLM(lm_cfg), tcfg,
              lambda r, w: WindowSampler(train, n, tcfg.batch_size, tcfg.seed, r, w),
              lambda m: {"dev_bits": lm_bits_per_token(m, dev, n, maxc, first_logp=first)}, log,
              extra={"dev_fraction": dev_fraction, "max_chunks": maxc})  # another config: refused, or --retrain
    dev_by_step = {rec["step"]: rec["val_dev_bits"] for rec in read_metrics(run_dir) if "val_dev_bits" in rec}
    ckpts = {int(c.name.split("_")[1]): c for c in find_checkpoints(run_dir / "checkpoints")}
    step = min((s for s in ckpts if s in dev_by_step), key=lambda s: dev_by_step[s], default=max(ckpts))
    model, _, _ = load_model(ckpts[step], expect_kind="causal_lm")
    with torch.autocast("cpu", enabled=False):
        bits = lm_bits_per_token(model, shards.val, n, maxc, first_logp=first)
    return {"lm_bits": bits, "lm_params": sum(p.numel() for p in model.parameters()), "lm_steps": step,
            "lm_trained_steps": tcfg.steps, "lm_dev_bits": dev_by_step.get(step), "lm_positions": "all"}
