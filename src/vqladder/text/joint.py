"""Joint fine-tuning of a ladder's levels (``train-ladder``'s ``joint_steps``): every level on the live codes of
the level below, together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..config import to_dict
from ..data import WindowSampler
from ..models import load_model
from ..train.stage import guard_stage, mark_done, record_stage, stage_slice
from ..train.trainer import TrainerConfig
from .geometry import LadderGeometry
from .ladder import encode_stream


def joint_finetune(levels: list, streams: dict, steps: int, spec: TrainerConfig, run: Path, log, after=()) -> list:
    """Fine-tune all levels together for ``steps`` steps on live codes (each step re-encodes the batch level by
    level, so upper levels follow the lower levels' drift; no gradient crosses a level boundary, codes being
    discrete), at a tenth of level 1's learning rate (``spec``); writes ``run`` (one checkpoint per level, marked
    done through the stage runner) and re-encodes ``streams[k]`` (level k's train / val codes; ``streams[0]``
    the tokens). Returns the fine-tuned levels; a finished ``run`` is loaded, not retrained."""
    slice_ = {"steps": steps, "train": stage_slice(levels[0], spec)["train"],
              "levels": [stage_slice(lv, spec)["model"] for lv in levels]}
    if guard_stage("joint fine-tuning", run, slice_, after, log) == "done":
        log("joint fine-tuning: done, skipped")
    else:
        record_stage(run, slice_)
        log(f"joint fine-tuning: {steps} steps")
        params = [p for lv in levels for p in lv.parameters()]
        opt = torch.optim.AdamW(params, lr=spec.lr * 0.1, betas=tuple(spec.betas), weight_decay=spec.weight_decay)
        c0 = LadderGeometry.from_models("codes", levels).chunk_len(0)  # tokens per top chunk
        sampler = WindowSampler(streams[0][0], c0, spec.batch_size, spec.seed, align=1)
        for lv in levels:
            lv.train()
        for step in range(steps):
            x = sampler.next_batch()
            loss = 0.0
            inp = x.reshape(-1, levels[0].config.in_len)
            for k, lv in enumerate(levels):
                l_k, _ = lv.loss(inp)
                loss = loss + l_k
                if k + 1 < len(levels):
                    with torch.no_grad():
                        codes = lv.quantizer(lv.pre_quant(inp)).codes
                    inp = codes.reshape(-1, levels[k + 1].config.in_len)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
            opt.step()
        for k, lv in enumerate(levels, 1):
            lv.eval()
            save_checkpoint(run / f"level{k}" / "checkpoints", steps, lv, {},
                            {"stage": f"joint level {k}", "model_config": to_dict(lv.config)})
        mark_done(run, {"stage": "joint fine-tuning", "steps": steps})
    out = []
    for k in range(1, len(levels) + 1):
        model, _, _ = load_model(run / f"level{k}", "sequence_compressor")
        out.append(model)
    # re-encode the code streams with the fine-tuned levels
    for k, model in enumerate(out, 1):
        tr, va = (np.asarray(streams[k - 1][0]), np.asarray(streams[k - 1][1]))
        streams[k] = (encode_stream(model, tr), encode_stream(model, va))
    return out
