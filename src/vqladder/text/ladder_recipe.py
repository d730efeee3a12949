"""``vqladder train-ladder CONFIG``: train a whole ladder, bottom-up, into one directory, then measure it.

Stages, in order, each a normal run directory that is skipped when finished (``results.json``) and resumed
from its last checkpoint when interrupted, so re-running the command after a kill continues where it stopped:

1. ``level1`` … ``levelL``: compressors; level 1 over token chunks, level k+1 over the (frozen, precomputed)
   code stream of level k (``codes/levelk.{train,val}.npy``), windows aligned to lower chunk boundaries.
2. ``up1`` … ``upL``: upsamplers, level-k codes -> level-(k-1) symbols of the same chunk.
3. ``prior``: causal transformer over the top-level code stream.
4. ``flat``: a flat causal LM over tokens, sized like prior + upsamplers (non-embedding parameters) and trained on as many tokens as
   the level-1 upsampler (``flat_match_tokens: true``, the default, sets its steps).
5. evaluation on held-out text: per level (vocabulary, symbols per top chunk, bits/token, reconstruction
   accuracy of the level's own input, end-to-end token accuracy decoding from that level to tokens with the
   VQ decoders and with the upsamplers, code usage), bits/token of the hierarchical model (prior + upsamplers,
   a two-part code: -log2 p(top codes) - sum_k log2 p(level k-1 | level k), an upper bound on its code length
   for the text) beside the flat LM on the same tokens, and generated samples from both ->
   ``results.json`` and ``results.md``.

``flat_rivals`` adds more flat LMs (``flat-rivalI``), their sizes as given, each trained for the hierarchy's
counted FLOPs and scored beside the matched one.

``skip_level: k`` adds ``skipk``: a token decoder conditioned on level-k codes directly (skip-level likelihood:
the levels below k are never transmitted), trained for upsampler 1's steps and measured beside the two-part code.

``joint_steps`` > 0 adds a joint fine-tuning stage after the levels: all levels train together, each on
the live codes of the level below (codes are recomputed every step from the current lower level, so upper
levels follow the lower levels' drift); gradients do not cross a level boundary (codes are discrete).
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import torch

from ..data import load_shards
from ..io import atomic_write_json
from ..models import load_model
from ..train.recipe import open_experiment, write_results
from ..train.stage import stderr_log
from .ladder import Ladder
from .ladder_config import LadderConfig, LadderEvalConfig, LevelSpec  # noqa: F401  (the recipe's public names)
from .ladder_eval import evaluate_ladder, level_reconstructions
from .ladder_report import ladder_markdown
from .ladder_stages import (  # noqa: F401
    _with_seed,
    fsq_levels,
    train_flat,
    train_flat_rivals,
    train_judge,
    train_levels,
    train_prior,
    train_skip,
    train_upsamplers,
)


def train_ladder(cfg: LadderConfig, log=None) -> dict:
    """Train every stage of the ladder (resumable per stage), evaluate, write results.{json,md}."""
    log = log or stderr_log("ladder")
    cfg.validate()
    # the part of the config that made the stages (the multi-exit one, or the levels); with --retrain, each stage's
    # own guard retrains what changed; ladders from before text mode were codes ladders
    d = open_experiment(cfg, keys=("data", "mode", "multi_exit" if cfg.mode == "multi_exit" else "levels",
                                   "upsampler", "prior", "flat", "joint_steps", "seed"), legacy={"mode": "codes"})
    cfg = _with_seed(cfg)
    shards = load_shards(cfg.data, progress=False)
    if not (d / "tokenizer").exists():
        shutil.copytree(shards.dir / "tokenizer", d / ".tokenizer.tmp", dirs_exist_ok=True)
        (d / ".tokenizer.tmp").rename(d / "tokenizer")
    t_start = time.time()
    streams = {0: (np.asarray(shards.train), np.asarray(shards.val))}

    levels, level_res, level_dirs = train_levels(cfg, d, shards, streams, log)               # 1. levels
    ladder = Ladder(levels, tokenizer=shards.tokenizer, directory=d, mode=cfg.mode)
    ladder.upsamplers, up_res = train_upsamplers(cfg, d, ladder, streams, level_dirs, log)   # 2. upsamplers
    prior_res = train_prior(cfg, d, ladder, streams, level_dirs, log)                          # 3. top prior
    ladder.prior = load_model(d / "prior", "code_prior")[0]
    flat_res, matched = train_flat(cfg, d, ladder, shards, streams, level_res + up_res + [prior_res],
                                  up_res[0]["step"], log)  # 4. the flat LM
    rivals = train_flat_rivals(cfg, d, ladder, shards, streams, matched["hierarchical_train_flops"], log)  # 4a.
    skip, skip_res = None, None
    if cfg.skip_level:  # 4b. the skip-level token decoder, and what its code's stages cost to train
        skip, skip_res = train_skip(cfg, d, ladder, streams, level_dirs, up_res[0]["step"], log)
        k = cfg.skip_level
        used = (level_res[k - 1:] if cfg.mode == "text" else level_res) + up_res[k:] + [prior_res, skip_res]
        matched["skip_level_train_flops"] = sum(r.get("train_flops", 0.0) for r in used)
    judge, judge_res = train_judge(cfg, d, ladder, shards, streams, log) if cfg.use_judge else (None, None)  # 5.

    # 6. evaluation (its thread count set, not left to whichever stage ran last: generation speed is timed)
    if cfg.eval.threads > 0:
        torch.set_num_threads(cfg.eval.threads)
    log(f"evaluating the ladder on held-out text ({torch.get_num_threads()} threads)")
    results = evaluate_ladder(ladder, streams, cfg, log, judge=judge, rivals=[m for m, _ in rivals], skip=skip)
    results["mode"] = cfg.mode
    results["stages"] = {"levels": level_res, "upsamplers": up_res, "prior": prior_res, "flat": flat_res,
                         **({"judge": judge_res} if judge_res else {}), **({"skip": skip_res} if skip_res else {}),
                         **({"flat_rivals": [r for _, r in rivals]} if rivals else {})}
    results["matched"] = matched
    results["wall_time_s"] = round(time.time() - t_start, 1)
    atomic_write_json(d / "reconstructions.json", level_reconstructions(ladder, shards.val))  # what the report draws
    return write_results(d, results, ladder_markdown(results, cfg))

