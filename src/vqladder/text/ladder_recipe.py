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

``joint_steps`` > 0 adds a joint fine-tuning stage after the levels: all levels train together, each on
the live codes of the level below (codes are recomputed every step from the current lower level, so upper
levels follow the lower levels' drift); gradients do not cross a level boundary (codes are discrete).
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..config import (
    Annotated,
    Check,
    NonNegInt,
    OptPosInt,
    PathStr,
    PosFloat,
    PosInt,
    RunName,
    derive,
)
from ..data import DataConfig, WindowSampler, load_shards
from ..data.sampler import PairSampler
from ..errors import VQLadderError
from ..eval import evaluate_compressor
from ..io import atomic_write_json
from ..models import (
    CausalLM,
    CodePrior,
    CompressorConfig,
    LMConfig,
    MultiExitCompressor,
    MultiExitConfig,
    PriorConfig,
    SequenceCompressor,
    Upsampler,
    UpsamplerConfig,
    load_model,
)
from ..train import TrainerConfig
from ..train.flops import body_params, match_lm_depth, step_flops
from ..train.recipe import open_experiment, write_results
from ..train.stage import fresh, params, run_stage, stderr_log
from .geometry import MODES, LadderGeometry
from .joint import joint_finetune
from .ladder import LEVEL_DIR, MULTI_EXIT_DIR, UP_DIR, Ladder, level_codes
from .ladder_eval import (
    _lm_logprob,
    _seq_nll,
    _windows,
    bits_of,
    evaluate_ladder,
    level_reconstructions,
    upsampler_bits,
)
from .ladder_report import ladder_markdown


def _default_levels():
    return [
        LevelSpec(CompressorConfig(in_len=128, out_len=32, d_model=128, n_heads=2, downsample="pool", enc_layers=2,
                                   dec_layers=2),
                  TrainerConfig(steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100)),
        LevelSpec(CompressorConfig(in_len=128, out_len=8, d_model=128, n_heads=2, downsample="pool", enc_layers=2,
                                   dec_layers=2),
                  TrainerConfig(steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100)),
    ]


@dataclass
class LevelSpec:
    model: CompressorConfig = field(default_factory=CompressorConfig)   # vocab_size 0 = from the level below
    train: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class LadderEvalConfig:
    max_chunks: OptPosInt = 256             # held-out top chunks for the tables (-1 = the whole val split)
    batch_size: PosInt = 32              # chunks per eval batch
    samples: NonNegInt = 2                  # generated samples per model in results.md
    sample_chunks: PosInt = 2            # top chunks per generated sample
    temperature: PosFloat = 1.0          # sampling temperature for the samples
    top_k: NonNegInt = 0                    # top-k for the samples (0 = off)
    top_p: Annotated[float, Check(gt=0, max=1)] = 0.95               # nucleus for the samples
    threads: OptPosInt = -1                 # torch CPU threads for the evaluation (generation is timed); -1 = leave


@dataclass
class LadderConfig:
    EXPERIMENT: ClassVar[str] = "ladder"  # the `experiment:` key its saved config carries
    name: RunName = "ladder"              # ladder directory name under out_dir
    out_dir: PathStr = "runs"             # where ladders live
    data: DataConfig = field(default_factory=DataConfig)
    mode: str = "text"                  # text: every level compresses the tokens; codes: level k+1 the codes of k;
    #                                     multi_exit: one compressor whose exits are the levels (multi_exit below)
    levels: list[LevelSpec] = field(default_factory=_default_levels)
    multi_exit: MultiExitConfig = field(default_factory=MultiExitConfig)  # mode: multi_exit (levels unused)
    multi_exit_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=1200, batch_size=8, lr=2e-3, warmup=80, eval_every=-1, ckpt_every=100))
    joint_steps: NonNegInt = 0              # > 0: joint fine-tuning of all levels on live codes (see module doc)
    upsampler: UpsamplerConfig = field(default_factory=lambda: UpsamplerConfig(prev_chunk=True, code_dropout=0.1))  # every level's
    upsampler_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    prior: PriorConfig = field(default_factory=PriorConfig)
    prior_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=32, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    flat: LMConfig = field(default_factory=lambda: LMConfig(context=0, d_model=128, n_heads=2, n_layers=4))
    flat_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=16, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    flat_match_flops: bool = True     # set flat_train.steps so its training FLOPs (counted) match the hierarchy's
    flat_match_tokens: bool = True    # (without flat_match_flops) ... so it sees as many tokens as upsampler 1
    flat_match_params: bool = True    # set flat.n_layers so its parameters (all) are closest to prior + upsamplers
    use_judge: bool = False           # train a judge LM that scores the samples of every path (generation table)
    judge: LMConfig = field(default_factory=lambda: LMConfig(context=0, d_model=128, n_heads=2, n_layers=4, seed=7))
    judge_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        steps=400, batch_size=8, lr=2e-3, warmup=40, eval_every=-1, ckpt_every=100))
    eval: LadderEvalConfig = field(default_factory=LadderEvalConfig)
    seed: NonNegInt = 0               # added to every stage's model and data seeds (not the judge's): one ladder per seed

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def geometry(self, vocab: int = 0) -> LadderGeometry:
        """The ladder's shape from its level configs (``vocab``: the token vocabulary, 0 before the data is read)."""
        return LadderGeometry.from_configs(self.mode, [lv.model for lv in self.levels], vocab)

    def validate(self) -> None:
        if not self.levels:
            raise VQLadderError("a ladder needs at least one level (levels: [...])")
        if self.mode not in MODES:
            raise VQLadderError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "multi_exit":
            self.multi_exit.validate()
        for k, lv in enumerate(self.levels, 1):
            if lv.model.quantizer.depth != 1:
                raise VQLadderError(f"level {k}: ladder levels need quantizer.depth=1 (codes are the next level's symbols)")
        if self.mode != "multi_exit":  # the multi-exit compressor's exits are checked when it is built
            self.geometry().validate()
        top = self.levels[-1].model.out_len
        if self.prior.context % top:
            raise VQLadderError(f"prior.context={self.prior.context} must be a multiple of the top level's "
                                f"out_len={top} (whole top chunks)")
        if self.prior.cond_len:
            raise VQLadderError("the text ladder's prior is conditioned by its prefix (a prompt's codes); "
                                "leave prior.cond_len at 0")


# -- stages -------------------------------------------------------------------------------------------------------
# -- the whole ladder -----------------------------------------------------------------------------------------------
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
    text = cfg.mode != "codes"

    # 1. levels, bottom-up (a text ladder's levels all read the tokens; a multi-exit ladder trains them as one)
    streams = {0: (np.asarray(shards.train), np.asarray(shards.val))}
    levels = []
    vocab = shards.vocab_size
    level_res = []
    if cfg.mode == "multi_exit":
        levels, level_res = _train_multi_exit(cfg, d, shards, streams, log)
    for k, spec in enumerate(cfg.levels if cfg.mode != "multi_exit" else [], 1):
        mc = copy.deepcopy(spec.model)  # the config object stays as the user gave it (the saved config.yaml compares it)
        mc.vocab_size = vocab
        mc.validate()
        model = SequenceCompressor(mc)
        tr, va = streams[0 if text else k - 1]
        align = 1 if k == 1 or text else cfg.levels[k - 2].model.out_len
        run = d / LEVEL_DIR.format(k)
        tok = shards.tokenizer if k == 1 or text else None
        src = "tokens" if k == 1 or text else f"level {k - 1} codes"
        res = run_stage(
            f"level {k} ({mc.in_len} {src} -> {mc.out_len}, K={model.quantizer.codebook_size})", run, model,
            spec.train,
            lambda r, w, tr=tr, mc=mc, spec=spec, align=align: WindowSampler(tr, mc.in_len, spec.train.batch_size,
                                                                              spec.train.seed, r, w, align=align),
            lambda m, va=va, tok=tok: evaluate_compressor(m, va, cfg.eval.batch_size, cfg.eval.max_chunks, tokenizer=tok),
            log, after=[] if k == 1 or text else [d / LEVEL_DIR.format(k - 1)])
        level_res.append(res)
        model, _, _ = load_model(run, "sequence_compressor")
        levels.append(model)
        vocab = vocab if text else model.quantizer.codebook_size
        _drop_stale_codes(d, k, run)
        streams[k] = level_codes(d, k, model, tr, va, log)  # for the next stages
    if cfg.joint_steps > 0:
        if text:
            raise VQLadderError("joint_steps is for mode: codes (a text ladder's levels are trained on the tokens)")
        levels = joint_finetune(levels, streams, cfg.joint_steps, cfg.levels[0].train, d / "joint", log,
                                after=[d / LEVEL_DIR.format(k) for k in range(1, len(levels) + 1)])
    ladder = Ladder(levels, tokenizer=shards.tokenizer, directory=d, mode=cfg.mode)
    L = ladder.n_levels
    level_dirs = ([d / "joint"] * L if cfg.joint_steps > 0 else [d / MULTI_EXIT_DIR] * L if cfg.mode == "multi_exit"
                  else [d / LEVEL_DIR.format(k) for k in range(1, L + 1)])  # where each level's weights come from

    # 2. upsamplers: level-k codes (+ the previous chunk below) -> the level-(k-1) symbols of the chunk
    ups, up_res = [], []
    for k in range(1, L + 1):
        par_len, length = ladder.up_geometry(k)
        uc = derive(cfg.upsampler, vocab_size=ladder.vocab(k - 1), parent_vocab=ladder.vocab(k), length=length, parent_len=par_len, parent_levels=fsq_levels(levels[k - 1], ladder.vocab(k)), levels=fsq_levels(levels[k - 2], ladder.vocab(k - 1)) if k > 1 else [])
        up = Upsampler(uc)
        low_tr, low_va = streams[k - 1]
        par_tr, par_va = streams[k]
        run = d / UP_DIR.format(k)
        res = run_stage(
            f"upsampler {k} (level {k} codes -> level {k - 1})", run, up, cfg.upsampler_train,
            lambda r, w, low_tr=low_tr, par_tr=par_tr, length=length, par_len=par_len: PairSampler(
                low_tr, par_tr, length, par_len, cfg.upsampler_train.batch_size, cfg.upsampler_train.seed, r, w,
                prev=cfg.upsampler.prev_chunk),
            lambda m, low_va=low_va, par_va=par_va, length=length, par_len=par_len: upsampler_bits(
                m, low_va, par_va, length, par_len, cfg.eval.max_chunks, cfg.eval.batch_size), log,
            after=level_dirs[max(0, k - 2):k])
        up_res.append(res)
        ups.append(load_model(run, "upsampler")[0])
    ladder.upsamplers = ups

    # 3. prior over the top codes
    top_tr, top_va = streams[L]
    m_top = ladder.chunk_len(L)
    pc = derive(cfg.prior, vocab_size=ladder.vocab(L))
    prior = CodePrior(pc)
    ctx = pc.context

    def prior_eval(m):
        return bits_of(*_seq_nll(lambda x: m.log_prob(x), top_va, ctx, _windows(cfg.eval.max_chunks, ctx // m_top)),
                       "code")

    prior_res = run_stage("prior (top codes)", d / "prior", prior, cfg.prior_train,
                             lambda r, w: WindowSampler(top_tr, ctx, cfg.prior_train.batch_size, cfg.prior_train.seed,
                                                        r, w, align=m_top),
                             prior_eval, log, after=level_dirs[L - 1:L])
    ladder.prior = load_model(d / "prior", "code_prior")[0]

    # 4. flat LM, matched in parameters (all of them, against what the hierarchy runs at generation: prior +
    #    upsamplers) and in training FLOPs (counted, against every stage of the hierarchy, compressors included)
    tok_tr, tok_va = streams[0]
    span = ctx // m_top * ladder.chunk_len(0)  # tokens under one prior window
    fc = derive(cfg.flat, vocab_size=shards.vocab_size, context=cfg.flat.context or span)
    gen_params = sum(params(u) for u in ups) + params(ladder.prior)
    if cfg.flat_match_params:
        fc = match_lm_depth(fc, gen_params)
    stages = level_res + up_res + [prior_res]
    hier_flops = sum(r.get("train_flops", 0.0) for r in stages)
    flat_train = cfg.flat_train
    up1_tokens = up_res[0]["step"] * cfg.upsampler_train.batch_size * (
        ladder.up_geometry(1)[1] * (2 if cfg.upsampler.prev_chunk else 1) + ladder.up_geometry(1)[0])
    flat = CausalLM(fc)
    flat_step_flops = step_flops(flat, flat_train.batch_size, fc.context)
    if cfg.flat_match_flops and hier_flops and flat_step_flops:
        flat_train = derive(flat_train, steps=max(1, round(hier_flops / flat_step_flops)))
    elif cfg.flat_match_tokens:
        flat_train = derive(flat_train, steps=max(1, round(up1_tokens / (flat_train.batch_size * fc.context))))

    def lm_eval(m):
        return bits_of(*_seq_nll(lambda x: _lm_logprob(m, x), tok_va, m.config.context,
                                 _windows(cfg.eval.max_chunks, ctx // m_top) * span // m.config.context or 1), "token")

    flat_res = run_stage("flat causal LM (tokens)", d / "flat", flat, flat_train,
                            lambda r, w: WindowSampler(tok_tr, fc.context, flat_train.batch_size, flat_train.seed, r, w),
                            lm_eval, log)
    ladder.flat = load_model(d / "flat", "causal_lm")[0]

    # 5. the judge: a separately trained LM that scores the samples of both (optional)
    judge = judge_res = None
    if cfg.use_judge:
        jc = derive(cfg.judge, vocab_size=shards.vocab_size, context=cfg.judge.context or span)
        judge_res = run_stage("judge LM (scores samples)", d / "judge", CausalLM(jc), cfg.judge_train,
                              lambda r, w: WindowSampler(tok_tr, jc.context, cfg.judge_train.batch_size,
                                                         cfg.judge_train.seed + 1, r, w), lm_eval, log)
        judge = load_model(d / "judge", "causal_lm")[0]

    # 6. evaluation (its thread count set, not left to whichever stage ran last: generation speed is timed)
    if cfg.eval.threads > 0:
        torch.set_num_threads(cfg.eval.threads)
    log(f"evaluating the ladder on held-out text ({torch.get_num_threads()} threads)")
    results = evaluate_ladder(ladder, streams, cfg, log, judge=judge)
    results["mode"] = cfg.mode
    results["stages"] = {"levels": level_res, "upsamplers": up_res, "prior": prior_res, "flat": flat_res,
                         **({"judge": judge_res} if judge_res else {})}
    results["matched"] = {
        "hierarchical_params": gen_params,
        "hierarchical_body_params": sum(body_params(u) for u in ups) + body_params(ladder.prior),
        "compressor_params": sum(p.numel() for p in {id(p): p for lv in levels for p in lv.parameters()}.values()),
        "flat_params": params(ladder.flat),
        "flat_body_params": body_params(ladder.flat),
        "flat_layers": ladder.flat.config.n_layers,
        "flat_context": ladder.flat.config.context,
        "hierarchy_context_tokens": span,
        "up1_training_tokens": up1_tokens,
        "flat_training_tokens": flat_res["step"] * flat_train.batch_size * fc.context,
        "hierarchical_train_flops": hier_flops,
        "hierarchical_train_flops_by_stage": {r["stage"]: r.get("train_flops", 0.0) for r in stages},
        "flat_train_flops": flat_res.get("train_flops", flat_step_flops * flat_res["step"]),
        "hierarchical_train_time": sum(r.get("train_time", 0.0) for r in stages),
        "flat_train_time": flat_res.get("train_time", 0.0),
    }
    results["wall_time_s"] = round(time.time() - t_start, 1)
    atomic_write_json(d / "reconstructions.json", level_reconstructions(ladder, shards.val))  # what the report draws
    return write_results(d, results, ladder_markdown(results, cfg))


def fsq_levels(model, vocab: int) -> list[int]:
    """The FSQ levels of a level's codes when its symbols are exactly those codes (the upsamplers then embed a code
    by its per-dimension levels too); [] otherwise."""
    lv = list(getattr(getattr(model, "quantizer", None), "levels", None) or [])
    return lv if lv and math.prod(lv) == vocab else []


def _with_seed(cfg: LadderConfig) -> LadderConfig:
    """The stage configs of ladder seed ``cfg.seed``: every model's and trainer's seed shifted by it (the judge,
    a measuring instrument, keeps its own)."""
    if not cfg.seed:
        return cfg
    cfg = copy.deepcopy(cfg)
    parts = [cfg.multi_exit, cfg.multi_exit.base, cfg.multi_exit_train, cfg.upsampler, cfg.upsampler_train, cfg.prior,
             cfg.prior_train, cfg.flat, cfg.flat_train] + [x for lv in cfg.levels for x in (lv.model, lv.train)]
    for part in parts:
        part.seed += cfg.seed
    return cfg


def _drop_stale_codes(d: Path, k: int, source: Path) -> None:
    """Level k's cached code streams are made again when the stage they come from was (re)trained after them."""
    for split in ("train", "val"):
        p = d / "codes" / f"level{k}.{split}.npy"
        if p.is_file() and not fresh(p, source):
            p.unlink()


def _train_multi_exit(cfg: LadderConfig, d: Path, shards, streams: dict, log) -> tuple[list, list]:
    """mode: multi_exit — one compressor, its exits the levels; each exit's code streams written as a level's."""
    mc = copy.deepcopy(cfg.multi_exit)
    mc.base.vocab_size = shards.vocab_size
    mc.validate()
    model = MultiExitCompressor(mc)
    tr, va = streams[0]
    n = mc.base.in_len

    def evaluate(m):
        out = {}
        for k in range(1, m.n_exits + 1):
            r = evaluate_compressor(m.exit(k), va, cfg.eval.batch_size, cfg.eval.max_chunks)
            out.update({f"acc{k}": r["acc"], f"usage{k}": r["usage"]})
        return {**out, "acc": out["acc1"]}

    t = cfg.multi_exit_train
    res = run_stage(f"multi-exit compressor ({n} tokens -> {mc.base.out_len} / "
                    f"{' / '.join(map(str, mc.exits))} codes)", d / MULTI_EXIT_DIR, model, t,
                    lambda r, w: WindowSampler(tr, n, t.batch_size, t.seed, r, w), evaluate, log)
    model = load_model(d / MULTI_EXIT_DIR, "multi_exit_compressor")[0]
    levels = [model.exit(k) for k in range(1, model.n_exits + 1)]
    for k, lv in enumerate(levels, 1):
        _drop_stale_codes(d, k, d / MULTI_EXIT_DIR)
        streams[k] = level_codes(d, k, lv, tr, va, log)
    # one stage trains every level: its FLOPs and time are counted once, under level 1
    return levels, [res] + [{"stage": f"exit {k} (trained with exit 1)", "step": res["step"]}
                            for k in range(2, len(levels) + 1)]
