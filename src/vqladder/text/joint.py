"""Joint fine-tuning of a ladder's levels (``train-ladder``'s ``joint_steps``): every level on the live codes of
the level below, together, as one model (``JointLevels``) trained by the stage runner like every other stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import derive
from ..data import WindowSampler
from ..models import CompressorConfig, SequenceCompressor, load_model
from ..models.registry import register
from ..train.stage import run_stage
from ..train.trainer import TrainerConfig
from .geometry import LadderGeometry
from .ladder import encode_stream


@dataclass
class JointConfig:
    levels: list[CompressorConfig] = field(default_factory=list)  # a codes ladder's levels, bottom-up


@register("joint_levels", JointConfig)
class JointLevels(nn.Module):
    """A codes ladder's levels as one trainable model: ``loss(tokens)`` encodes the batch level by level (each level
    on the live codes of the one below, so upper levels follow the lower levels' drift) and sums the levels' losses;
    no gradient crosses a level boundary (codes are discrete)."""

    def __init__(self, cfg: JointConfig):
        super().__init__()
        self.config = cfg
        self.levels = nn.ModuleList(SequenceCompressor(c) for c in cfg.levels)

    def loss(self, tokens: torch.Tensor):
        total, metrics = 0.0, {}
        inp = tokens.reshape(-1, self.levels[0].config.in_len)
        for k, lv in enumerate(self.levels, 1):
            l_k, m = lv.loss(inp)
            total = total + l_k
            metrics[f"acc{k}"] = m["acc"]
            if k < len(self.levels):
                with torch.no_grad():
                    codes = lv.quantizer(lv.pre_quant(inp)).codes
                inp = codes.reshape(-1, self.levels[k].config.in_len)
        return total, {**metrics, "acc": metrics["acc1"]}


def joint_finetune(levels: list, streams: dict, steps: int, spec: TrainerConfig, run: Path, log, after=()) -> list:
    """Fine-tune all levels together for ``steps`` steps on live codes (``JointLevels``) at a tenth of level 1's
    learning rate (``spec``), through the stage runner into ``run`` (resumable; a finished ``run`` is loaded, not
    retrained), and re-encode ``streams[k]`` (level k's train / val codes; ``streams[0]`` the tokens). Returns the
    fine-tuned levels."""
    model = JointLevels(JointConfig([lv.config for lv in levels]))
    for mine, trained in zip(model.levels, levels):
        mine.load_state_dict(trained.state_dict())
    tcfg = derive(spec, steps=steps, lr=spec.lr * 0.1, warmup=min(spec.warmup, steps // 10), max_time=-1.0)
    c0 = LadderGeometry.from_models("codes", levels).chunk_len(0)  # tokens per top chunk
    run_stage(f"joint fine-tuning ({len(levels)} levels)", run, model, tcfg,
              lambda r, w: WindowSampler(streams[0][0], c0, tcfg.batch_size, tcfg.seed, r, w, align=1), None, log,
              after=after)
    out = list(load_model(run, "joint_levels")[0].levels)
    for k, lv in enumerate(out, 1):  # re-encode the code streams with the fine-tuned levels
        tr, va = (np.asarray(streams[k - 1][0]), np.asarray(streams[k - 1][1]))
        streams[k] = (encode_stream(lv, tr), encode_stream(lv, va))
    return out
