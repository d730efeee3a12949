"""The ladder's training stages, bottom-up, each a run directory that is skipped when finished and resumed when
interrupted: the levels (or one multi-exit compressor), the upsamplers, the top prior, the flat LM matched to the
hierarchy, the judge."""

from __future__ import annotations

import copy
import math
from pathlib import Path

from ..config import derive
from ..data import WindowSampler
from ..data.sampler import PairSampler
from ..errors import VQLadderError
from ..eval import evaluate_compressor
from ..models import CausalLM, CodePrior, MultiExitCompressor, SequenceCompressor, Upsampler, load_model
from ..train.flops import body_params, match_lm_depth, step_flops
from ..train.stage import fresh, params, run_stage
from .joint import joint_finetune
from .ladder import FLAT_RIVAL_DIR, LEVEL_DIR, MULTI_EXIT_DIR, SKIP_DIR, UP_DIR, Ladder, level_codes
from .ladder_config import LadderConfig
from .ladder_eval import _lm_logprob, _seq_nll, _windows, bits_of, upsampler_bits


def train_levels(cfg: LadderConfig, d: Path, shards, streams: dict, log) -> tuple[list, list, list[Path]]:
    """The levels, bottom-up (a text ladder's levels all read the tokens; a codes ladder's level k+1 the codes of
    level k; a multi-exit ladder trains them as one), then the joint fine-tuning when asked. Fills ``streams[k]``
    with level k's (train, val) code streams. Returns the levels, their stage results and where each level's
    weights come from."""
    text = cfg.mode != "codes"
    levels, level_res, vocab = [], [], shards.vocab_size
    if cfg.mode == "multi_exit":
        levels, level_res = _train_multi_exit(cfg, d, shards, streams, log)
    for k, spec in enumerate(cfg.levels if cfg.mode != "multi_exit" else [], 1):
        mc = derive(spec.model, vocab_size=vocab)  # the config object stays as the user gave it (config.yaml compares it)
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
    L = len(levels)
    dirs = ([d / "joint"] * L if cfg.joint_steps > 0 else [d / MULTI_EXIT_DIR] * L if cfg.mode == "multi_exit"
            else [d / LEVEL_DIR.format(k) for k in range(1, L + 1)])
    return levels, level_res, dirs


SELECT_CHUNKS = 128  # held-back chunks scored at each selection (at most)


def held_back(cfg: LadderConfig, stage: str, streams: list, units: list[int]) -> tuple[list, list | None]:
    """Aligned train streams (chunk i of each is ``units[i]`` symbols over the same text) cut for ``stage``: when
    the stage is in ``select``, its last ``select_holdout`` of chunks is held back (training parts, held-back
    parts); otherwise (the streams, None)."""
    if stage not in cfg.select:
        return list(streams), None
    n = min(len(s) // u for s, u in zip(streams, units))
    cut = n - max(1, round(n * cfg.select_holdout))
    if cut < 1:
        raise VQLadderError(f"select: {stage} has {n} train chunks, too few to hold {cfg.select_holdout} back")
    return [s[:cut * u] for s, u in zip(streams, units)], [s[cut * u:n * u] for s, u in zip(streams, units)]


def _selected(cfg: LadderConfig, t, hold):
    """Trainer settings of a stage: scored every ``select_every`` steps when it holds a validation part back."""
    return t if hold is None else derive(t, select_every=cfg.select_every)


def _up_select(cfg: LadderConfig, hold, length: int, par_len: int):
    if hold is None:
        return None
    low, par = hold
    return lambda m: upsampler_bits(m, low, par, length, par_len, SELECT_CHUNKS, cfg.eval.batch_size,
                                    code_value=False)["bits_per_symbol"]


def train_upsamplers(cfg: LadderConfig, d: Path, ladder: Ladder, streams: dict, level_dirs: list[Path],
                     log) -> tuple[list, list]:
    """Upsampler k: level-k codes (+ the previous chunk below) -> the level-(k-1) symbols of the chunk."""
    ups, up_res, levels = [], [], ladder.levels
    for k in range(1, ladder.n_levels + 1):
        par_len, length = ladder.up_geometry(k)
        uc = derive(cfg.upsampler, vocab_size=ladder.vocab(k - 1), parent_vocab=ladder.vocab(k), length=length,
                    parent_len=par_len, parent_levels=fsq_levels(levels[k - 1], ladder.vocab(k)),
                    levels=fsq_levels(levels[k - 2], ladder.vocab(k - 1)) if k > 1 else [])
        low_va, par_va = streams[k - 1][1], streams[k][1]
        (low_tr, par_tr), hold = held_back(cfg, UP_DIR.format(k), [streams[k - 1][0], streams[k][0]],
                                           [length, par_len])
        run = d / UP_DIR.format(k)
        t = _selected(cfg, upsampler_train(cfg, k), hold)
        res = run_stage(
            f"upsampler {k} (level {k} codes -> level {k - 1})", run, Upsampler(uc), t,
            lambda r, w, low_tr=low_tr, par_tr=par_tr, length=length, par_len=par_len, t=t: PairSampler(
                low_tr, par_tr, length, par_len, t.batch_size, t.seed, r, w, prev=cfg.upsampler.prev_chunk),
            lambda m, low_va=low_va, par_va=par_va, length=length, par_len=par_len: upsampler_bits(
                m, low_va, par_va, length, par_len, cfg.eval.max_chunks, cfg.eval.batch_size), log,
            after=level_dirs[max(0, k - 2):k], select=_up_select(cfg, hold, length, par_len))
        up_res.append(res)
        ups.append(load_model(run, "upsampler")[0])
    return ups, up_res


def upsampler_train(cfg: LadderConfig, k: int):
    """Upsampler k's trainer settings: ``upsampler_train``, on a step budget of ``upsampler_steps[k - 1]`` when
    the list gives one."""
    if k <= len(cfg.upsampler_steps):
        return derive(cfg.upsampler_train, steps=cfg.upsampler_steps[k - 1], max_time=-1.0)
    return cfg.upsampler_train


def skip_geometry(ladder: Ladder, k: int) -> tuple[int, int]:
    """(parent_len, length) of the skip-level decoder: level-k codes per level-k chunk and the tokens under them."""
    par_len = ladder.up_geometry(k)[0]
    return par_len, ladder.chunk_len(0) * par_len // ladder.chunk_len(k)


def train_skip(cfg: LadderConfig, d: Path, ladder: Ladder, streams: dict, level_dirs: list[Path], up1_steps: int,
               log):
    """Skip-level likelihood (``skip_level`` = k): a token decoder of the upsamplers' design conditioned on level-k
    codes directly, trained for upsampler 1's steps (same batch and chunk: about its compute) on a step budget.
    Returns (model, stage results)."""
    k = cfg.skip_level
    par_len, length = skip_geometry(ladder, k)
    uc = derive(cfg.upsampler, vocab_size=ladder.vocab(0), parent_vocab=ladder.vocab(k), length=length,
                parent_len=par_len, parent_levels=fsq_levels(ladder.levels[k - 1], ladder.vocab(k)), levels=[])
    tok_va, par_va = streams[0][1], streams[k][1]
    (tok_tr, par_tr), hold = held_back(cfg, SKIP_DIR.format(k), [streams[0][0], streams[k][0]], [length, par_len])
    t = _selected(cfg, derive(cfg.upsampler_train, steps=max(1, up1_steps), max_time=-1.0), hold)
    run = d / SKIP_DIR.format(k)
    res = run_stage(
        f"skip-level decoder (level {k} codes -> tokens, {t.steps} steps)", run, Upsampler(uc), t,
        lambda r, w: PairSampler(tok_tr, par_tr, length, par_len, t.batch_size, t.seed, r, w, prev=uc.prev_chunk),
        lambda m: upsampler_bits(m, tok_va, par_va, length, par_len, cfg.eval.max_chunks, cfg.eval.batch_size), log,
        after=level_dirs[k - 1:k], select=_up_select(cfg, hold, length, par_len))
    return load_model(run, "upsampler")[0], res


def train_prior(cfg: LadderConfig, d: Path, ladder: Ladder, streams: dict, level_dirs: list[Path], log) -> dict:
    """The causal prior over the top level's code stream (windows aligned to whole top chunks)."""
    L = ladder.n_levels
    top_va = streams[L][1]
    m_top = ladder.chunk_len(L)
    pc = derive(cfg.prior, vocab_size=ladder.vocab(L))
    ctx = pc.context
    (top_tr,), hold = held_back(cfg, "prior", [streams[L][0]], [m_top])
    t = _selected(cfg, cfg.prior_train, hold)

    def prior_eval(m):
        return bits_of(*_seq_nll(lambda x: m.log_prob(x), top_va, ctx, _windows(cfg.eval.max_chunks, ctx // m_top)),
                       "code")

    def prior_select(m):
        return bits_of(*_seq_nll(lambda x: m.log_prob(x), hold[0], ctx, _windows(SELECT_CHUNKS, ctx // m_top)),
                       "code")["bits_per_code"]

    return run_stage("prior (top codes)", d / "prior", CodePrior(pc), t,
                     lambda r, w: WindowSampler(top_tr, ctx, t.batch_size, t.seed, r, w, align=m_top),
                     prior_eval, log, after=level_dirs[L - 1:L], select=None if hold is None else prior_select)


def prior_span(cfg: LadderConfig, ladder: Ladder) -> int:
    """Tokens under one window of the top prior (the flat LM's and the judge's default context)."""
    return cfg.prior.context // ladder.chunk_len(ladder.n_levels) * ladder.chunk_len(0)


def _token_eval(cfg: LadderConfig, ladder: Ladder, tok_va):
    """Held-out bits/token of a token LM over the tokens under the prior's evaluation windows."""
    m_top, ctx = ladder.chunk_len(ladder.n_levels), cfg.prior.context
    span = prior_span(cfg, ladder)

    def lm_eval(m):
        return bits_of(*_seq_nll(lambda x: _lm_logprob(m, x), tok_va, m.config.context,
                                 _windows(cfg.eval.max_chunks, ctx // m_top) * span // m.config.context or 1), "token")
    return lm_eval


def train_flat(cfg: LadderConfig, d: Path, ladder: Ladder, shards, streams: dict, stages: list[dict], up1_steps: int,
               log) -> tuple[dict, dict]:
    """The flat LM, matched in parameters (all of them, against what the hierarchy runs at generation: prior +
    upsamplers) and in training FLOPs (counted, against every stage of the hierarchy, compressors included), or in
    tokens seen (upsampler 1's, ``up1_steps`` steps). Returns its stage results and what was matched."""
    tok_tr, _ = streams[0]
    span = prior_span(cfg, ladder)
    fc = derive(cfg.flat, vocab_size=shards.vocab_size, context=cfg.flat.context or span)
    ups = ladder.upsamplers
    gen_params = sum(params(u) for u in ups) + params(ladder.prior)
    if cfg.flat_match_params:
        fc = match_lm_depth(fc, gen_params)
    hier_flops = sum(r.get("train_flops", 0.0) for r in stages)
    flat_train = cfg.flat_train
    up1_tokens = up1_steps * cfg.upsampler_train.batch_size * (
        ladder.up_geometry(1)[1] * (2 if cfg.upsampler.prev_chunk else 1) + ladder.up_geometry(1)[0])
    flat = CausalLM(fc)
    flat_step_flops = step_flops(flat, flat_train.batch_size, fc.context)
    if cfg.flat_match_flops and hier_flops and flat_step_flops:
        flat_train = _for_flops(flat_train, flat_step_flops, hier_flops)
    elif cfg.flat_match_tokens:
        flat_train = derive(flat_train, steps=max(1, round(up1_tokens / (flat_train.batch_size * fc.context))))
    flat_res = run_stage("flat causal LM (tokens)", d / "flat", flat, flat_train,
                         lambda r, w: WindowSampler(tok_tr, fc.context, flat_train.batch_size, flat_train.seed, r, w),
                         _token_eval(cfg, ladder, streams[0][1]), log)
    ladder.flat = load_model(d / "flat", "causal_lm")[0]
    levels = ladder.levels
    matched = {
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
    return flat_res, matched


def _for_flops(t, per_step: float, flops: float):
    """Trainer settings ``t`` with its steps set so that training at ``per_step`` counted FLOPs a step costs
    ``flops``; ``t`` unchanged when either count is zero."""
    return derive(t, steps=max(1, round(flops / per_step))) if flops and per_step else t


def train_flat_rivals(cfg: LadderConfig, d: Path, ladder: Ladder, shards, streams: dict, hier_flops: float,
                      log) -> list[tuple]:
    """More flat LMs (``flat_rivals``: their sizes as given, not matched in parameters), each trained for the
    hierarchy's counted training FLOPs (steps = FLOPs / its step's FLOPs) with ``flat_train``'s other settings.
    Returns [(model, stage results)]."""
    out = []
    for i, rc in enumerate(cfg.flat_rivals, 1):
        fc = derive(rc, vocab_size=shards.vocab_size, context=rc.context or prior_span(cfg, ladder))
        lm = CausalLM(fc)
        t = _for_flops(cfg.flat_train, step_flops(lm, cfg.flat_train.batch_size, fc.context), hier_flops)
        run = d / FLAT_RIVAL_DIR.format(i)
        res = run_stage(f"flat rival {i} (d={fc.d_model}, {fc.n_layers} layers, {t.steps} steps)", run, lm, t,
                        lambda r, w, fc=fc, t=t: WindowSampler(streams[0][0], fc.context, t.batch_size, t.seed, r, w),
                        _token_eval(cfg, ladder, streams[0][1]), log)
        out.append((load_model(run, "causal_lm")[0], res))
    return out


def train_judge(cfg: LadderConfig, d: Path, ladder: Ladder, shards, streams: dict, log) -> tuple:
    """A separately trained LM that scores the samples of every generation path (``use_judge``)."""
    jc = derive(cfg.judge, vocab_size=shards.vocab_size, context=cfg.judge.context or prior_span(cfg, ladder))
    res = run_stage("judge LM (scores samples)", d / "judge", CausalLM(jc), cfg.judge_train,
                    lambda r, w: WindowSampler(streams[0][0], jc.context, cfg.judge_train.batch_size,
                                               cfg.judge_train.seed + 1, r, w),
                    _token_eval(cfg, ladder, streams[0][1]), log)
    return load_model(d / "judge", "causal_lm")[0], res


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
             cfg.prior_train, cfg.flat, cfg.flat_train] + [x for lv in cfg.levels for x in (lv.model, lv.train)] + \
        list(cfg.flat_rivals)
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
    mc = derive(cfg.multi_exit, base=derive(cfg.multi_exit.base, vocab_size=shards.vocab_size))
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
