"""The planning experiment's training stages, per seed: every contender's models (each a resumable stage under
``seed<k>/``), the learned value, the variable-length segmenters; and loading one trained contender back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import derive, to_dict
from ..errors import VQLadderError
from ..io import atomic_save_npy, atomic_write_json, read_json
from ..models import CausalLM, CodePrior, SequenceCompressor, load_model
from ..models.variable import VariableCompressor
from ..quantize import QuantizerConfig
from ..train.flops import step_flops
from ..train.rows import train_rows
from ..train.stage import fresh, stage_results, stage_state
from .config import SEGMENT_KINDS, PlanConfig
from .endstate import EndStateCoder, endstate_codes, endstate_rows
from .maze import END, EpisodeCodec
from .planners import (
    DOOR_END,
    FlatPlanner,
    LadderPlanner,
    SubgoalPlanner,
    closed_prior_rows,
    door_codes,
    room_segments,
    segment_rows,
    subgoal_rows,
)
from .value import PlanValue, rollout_rows, value_rows


def train_contenders(cfg: PlanConfig, data: dict, seed: int, log) -> dict:
    codec = EpisodeCodec(cfg.maze)
    T, ch = cfg.maze.max_moves, cfg.ladder.chunk
    d = cfg.dir / f"seed{seed}"
    rows_flat = np.concatenate([data["train_cond"], data["train_moves"]], 1)
    fc = derive(cfg.flat.model, vocab_size=codec.move_vocab, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, context=T, seed=seed)
    planners, params, exact = {}, {}, float("nan")
    if {"ladder", "subgoal"} & set(cfg.contenders):  # the fixed-chunk ladder (and the subgoal contender's codes)
        comp, prior, codes, exact = train_ladder(cfg, data, seed, log)
        params = {"ladder_prior": sum(p.numel() for p in prior.parameters()),
                  "ladder_compressor": sum(p.numel() for p in comp.parameters())}
        planners["ladder"] = LadderPlanner(comp, prior, T, ch)
    if "subgoal" in cfg.contenders:
        K = comp.quantizer.codebook_size
        sc_ = derive(cfg.subgoal.model, vocab_size=codec.move_vocab, cond_vocab=codec.cond_vocab + K, cond_len=codec.cond_len, context=ch, seed=seed)
        st = derive(cfg.subgoal.train, seed=seed)
        rows_p = d / "subgoal_rows.npy"
        if not fresh(rows_p, d / "ladder_level1"):
            atomic_save_npy(rows_p, subgoal_rows(codec, data["train_cond"], data["train_moves"], codes, ch))
        low = train_rows(f"seed {seed}: subgoal decoder (code + cell -> moves)", d / "subgoal", CodePrior(sc_), st,
                         np.load(rows_p), log, after=[d / "ladder_level1"])
        planners["subgoal"] = SubgoalPlanner(prior, low, codec, T, ch)
        params["subgoal_decoder"] = sum(p.numel() for p in low.parameters())
    for kind in SEGMENT_KINDS:
        if kind in cfg.contenders:
            planners[kind], planners[f"{kind}_coder"], extra = train_rooms(cfg, data, seed, log, kind)
            params.update(extra)
    ft = derive(cfg.flat.train, seed=seed)
    flat = CodePrior(fc)
    if cfg.match_flops:  # the largest contender's counted training FLOPs buy the flat planner its steps
        most = max((contender_flops(cfg, d, who) for who in set(cfg.contenders) - {"flat"}), default=0.0)
        per_step = step_flops(flat, ft.batch_size, rows_flat.shape[1])
        if most and per_step:
            ft = derive(ft, steps=max(1, round(most / per_step)))
    flat = train_rows(f"seed {seed}: flat planner ({ft.steps} steps)", d / "flat", flat, ft, rows_flat, log)
    planners["flat"] = FlatPlanner(flat, T)
    params["flat"] = sum(p.numel() for p in flat.parameters())
    value = None
    if any(sc.startswith("value") for sc in cfg.search.scorers):
        vc = derive(cfg.value.model, move_vocab=codec.move_vocab, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, max_moves=T, seed=seed)
        vt = derive(cfg.value.train, seed=seed)
        rows_v = value_rows(codec, data["train_cond"], data["train_moves"], data["train_buckets"], END)
        n_roll = cfg.value.rollouts
        if n_roll:  # search roll-outs of the trained flat planner beside the demonstrations
            rp, sp = d / f"{value_dir(cfg)}_rows.npy", d / f"{value_dir(cfg)}_rows.json"
            if not (fresh(rp, d / "flat") and fresh(sp, d / "flat")):  # a kill between the two writes: made again
                rows_r, reached = rollout_rows(flat, codec, data["train_cond"], T, n_roll, cfg.search.temperature, seed,
                                               relabel=cfg.value.relabel)
                atomic_save_npy(rp, rows_r)
                atomic_write_json(sp, {"rollouts": len(rows_r), "reached": reached})
            rows_v = np.concatenate([rows_v, np.load(rp)])
            stats = read_json(sp)
            # sampling a roll-out is one forward pass: a third of a training step's counted FLOPs per row
            params.update(value_rollouts=stats["rollouts"], value_rollout_reached=stats["reached"],
                          value_rollout_flops=step_flops(flat, 1, rows_flat.shape[1]) / 3 * stats["rollouts"])
        value = train_rows(f"seed {seed}: value (moves to go{', with search roll-outs' if n_roll else ''})",
                           d / value_dir(cfg), PlanValue(vc), vt, rows_v, log, after=[d / "flat"] if n_roll else [])
        params["value"] = sum(p.numel() for p in value.parameters())
    flops = {k: stage_results(d / sub).get("train_flops", 0.0) for k, sub in
             (("flat", "flat"),
              *((("ladder_compressor", "ladder_level1"), ("ladder_prior", "ladder_prior")) if "ladder" in planners else ()),
              *((("subgoal_decoder", "subgoal"),) if "subgoal" in planners else ()),
              *((("rooms_compressor", "rooms_level1"),) if "rooms" in planners else ()),
              *((("endstate_coder", "endstate_coder"),) if "endstate" in planners else ()),
              *((f"{k}_decoder", decoder_dir(cfg, k)) for k in SEGMENT_KINDS if k in planners),
              *((("value", value_dir(cfg)),) if value is not None else ()))}
    for k in SEGMENT_KINDS:  # a closed-loop prior's compute: the open-loop prior's and its fine-tuning
        if k in planners:
            flops[f"{k}_prior"] = sum(stage_results(d / p).get("train_flops", 0.0) for p in prior_dirs(cfg, k))
    # each stage's training wall-clock as its record gives it (a reused stage keeps the time it took when made)
    used = dict.fromkeys(k for who in cfg.contenders for sc in cfg.search.scorers for k in contender_stages(cfg, who, sc))
    seconds = {k: float(stage_results(d / k).get("train_time", 0.0)) for k in used if stage_state(d / k) == "done"}
    return {**planners, "params": params, "code_exact": exact, "value": value, "train_flops": flops,
            "train_seconds": seconds}


def train_ladder(cfg: PlanConfig, data: dict, seed: int, log) -> tuple:
    """The ladder contender's stages: a level-1 compressor over the move sequence (a code per ``ladder.chunk``
    moves) and its top prior; returns them, the training plans' codes and the fraction of training plans the
    codes decode back exactly."""
    codec = EpisodeCodec(cfg.maze)
    T, ch = cfg.maze.max_moves, cfg.ladder.chunk
    d = cfg.dir / f"seed{seed}"
    qc = cfg.ladder.compressor.quantizer
    cc = derive(cfg.ladder.compressor, quantizer=QuantizerConfig(**to_dict(qc)), vocab_size=codec.move_vocab, in_len=T, out_len=T // ch, seed=seed)
    ct = derive(cfg.ladder.compressor_train, seed=seed)
    comp = train_rows(f"seed {seed}: ladder level 1 (moves -> codes)", d / "ladder_level1", SequenceCompressor(cc), ct,
                  data["train_moves"], log)
    codes_p = d / "ladder_codes.npy"
    if not fresh(codes_p, d / "ladder_level1"):
        with torch.no_grad():
            codes = torch.cat([comp.encode(torch.from_numpy(data["train_moves"][i:i + 512].astype(np.int64)))
                               for i in range(0, len(data["train_moves"]), 512)]).numpy()
        atomic_save_npy(codes_p, codes)
    codes = np.load(codes_p)
    pc = derive(cfg.ladder.prior, vocab_size=comp.quantizer.codebook_size, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, context=T // ch, seed=seed)
    pt = derive(cfg.ladder.prior_train, seed=seed)
    prior = train_rows(f"seed {seed}: ladder top prior (codes)", d / "ladder_prior", CodePrior(pc), pt,
                       np.concatenate([data["train_cond"], codes], 1), log, after=[d / "ladder_level1"])
    with torch.no_grad():  # how faithful is the level-1 code? (fraction of training plans decoded exactly)
        sub = torch.from_numpy(data["train_moves"][:512].astype(np.int64))
        exact = float((comp.decode(comp.encode(sub)).argmax(-1) == sub).all(1).float().mean())
    return comp, prior, codes, exact


def train_rooms(cfg: PlanConfig, data: dict, seed: int, log, kind: str = "rooms") -> tuple:
    """The rooms, doors or endstate contender (``planning.config``): room-to-room segments of the demonstrations,
    their codes (rooms: learned by a compressor of the moves; doors: ``door_codes``, the rule's; endstate: learned
    by ``EndStateCoder`` from where each room's walk ends), the top prior and the segment decoder, each a
    resumable stage in ``seed<k>/<kind>_*``. Returns the planner, its coder (``coder(cond, segs, cells, used,
    exits) -> codes``, for the diagnostics) and the parameter counts."""
    codec, T, ch = EpisodeCodec(cfg.maze), cfg.maze.max_moves, cfg.ladder.chunk
    d, n = cfg.dir / f"seed{seed}", T // ch
    segs, cells, used, exits = room_segments(codec, data["train_cond"], data["train_moves"], ch, n)
    params = {}
    if kind == "rooms":
        qc = cfg.ladder.compressor.quantizer
        cc = derive(cfg.ladder.compressor, quantizer=QuantizerConfig(**to_dict(qc)), vocab_size=codec.move_vocab, in_len=ch, out_len=1, seed=seed)
        ct = derive(cfg.ladder.compressor_train, seed=seed)
        held = np.arange(n)[None, :] <= used[:, None]  # segments with moves and the "plan ends" one after them
        comp = train_rows(f"seed {seed}: rooms level 1 (room segments -> codes)", d / "rooms_level1",
                          SequenceCompressor(cc), ct, segs[held], log)
        params["rooms_compressor"] = sum(p.numel() for p in comp.parameters())
        K = comp.quantizer.codebook_size

        @torch.no_grad()
        def coder(cd, sg, ce, us, ex):
            return comp.encode(torch.from_numpy(sg.reshape(-1, ch)))[:, 0].view(sg.shape[:-1]).numpy()
    elif kind == "endstate":
        W = cfg.maze.side
        ec = derive(cfg.endstate.model, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, cells=W * W,
                    span=2 * W - 1, room=cfg.maze.room, seed=seed)
        rows, held = endstate_rows(codec, data["train_cond"], segs, cells, used, exits)
        end_coder = train_rows(f"seed {seed}: endstate coder (where a segment leads -> code)", d / "endstate_coder",
                               EndStateCoder(ec), derive(cfg.endstate.train, seed=seed), rows[held], log)
        params["endstate_coder"] = sum(p.numel() for p in end_coder.parameters())
        K = end_coder.codebook_size + 1  # + "the plan ends"

        def coder(cd, sg, ce, us, ex):
            return endstate_codes(end_coder, *endstate_rows(codec, cd, sg, ce, us, ex))
        coder.model = end_coder  # for the diagnostics: the end cell decoded back from a code
    else:
        K = DOOR_END + 1

        def coder(cd, sg, ce, us, ex):
            return door_codes(ex, us)
    codes_p = d / f"{kind}_codes.npy"
    ups = {"rooms": [d / "rooms_level1"], "endstate": [d / "endstate_coder"]}.get(kind, [])
    if not fresh(codes_p, *ups):
        sl = [slice(i, i + 1024) for i in range(0, len(segs), 1024)]
        atomic_save_npy(codes_p, np.concatenate([coder(data["train_cond"][i], segs[i], cells[i], used[i], exits[i])
                                                 for i in sl]))
    codes = np.load(codes_p)
    pc = derive(cfg.ladder.prior, vocab_size=K, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, context=n, seed=seed)
    pt = derive(cfg.ladder.prior_train, seed=seed)
    prior = train_rows(f"seed {seed}: {kind} top prior (segment codes)", d / f"{kind}_prior", CodePrior(pc), pt,
                       np.concatenate([data["train_cond"], codes], 1), log, after=ups)
    closed = cfg.closed(kind)
    if closed:  # a high-level policy: the open-loop prior fine-tuned on what is left to do from every segment's start
        policy = CodePrior(pc)
        policy.load_state_dict(prior.state_dict())
        prior = train_rows(f"seed {seed}: {kind} top prior, closed loop (fine-tuned from the open-loop one)",
                           d / prior_dir(cfg, kind), policy, derive(cfg.closed_loop_train, seed=seed),
                           closed_prior_rows(codec, data["train_cond"], cells, codes, used, K - 1), log,
                           after=[*ups, d / f"{kind}_prior"], extra={"initialised_from": f"{kind}_prior"})
    lc = derive(cfg.subgoal.model, vocab_size=codec.move_vocab, cond_vocab=codec.cond_vocab + K, cond_len=codec.cond_len, context=ch, seed=seed)
    lt = derive(cfg.subgoal.train, seed=seed)
    name = decoder_dir(cfg, kind)
    keep = np.isin(data["train_buckets"], cfg.decoder_buckets(kind))
    rows_p = d / f"{name}_rows.npy"
    if not fresh(rows_p, *ups):
        atomic_save_npy(rows_p, segment_rows(codec, data["train_cond"][keep], segs[keep], cells[keep], codes[keep],
                                             used[keep]))
    low = train_rows(f"seed {seed}: {kind} segment decoder (code + cell -> moves)", d / name,
                     CodePrior(lc), lt, np.load(rows_p), log, after=ups)
    params.update({f"{kind}_prior": sum(p.numel() for p in prior.parameters()), f"{kind}_vocab": int(K),
                   f"{kind}_decoder": sum(p.numel() for p in low.parameters()), f"{kind}_decoder_demos": int(keep.sum()),
                   f"{kind}_segments_per_demo": float(used.mean()), f"{kind}_cut_demos": float((used >= n).mean())})
    return SubgoalPlanner(prior, low, codec, T, ch, segments=True, closed_loop=closed), coder, params


def contender_flops(cfg: PlanConfig, d: Path, who: str) -> float:
    """A contender's training FLOPs (counted): the sum over the stages its plans come from (the ladder's compressor
    and prior count once for the subgoal contender too)."""
    return sum(stage_results(d / k).get("train_flops", 0.0) for k in dict.fromkeys(contender_stages(cfg, who)))


def contender_stages(cfg: PlanConfig, who: str, scorer: str = "likelihood") -> list[str]:
    """The stage directories (under ``seed<k>/``) a contender's plans come from."""
    own = {"flat": ["flat"], "ladder": ["ladder_level1", "ladder_prior"],
           "subgoal": ["ladder_level1", "ladder_prior", "subgoal"],
           "rooms": ["rooms_level1", "rooms_prior", decoder_dir(cfg, "rooms")],
           "doors": [*prior_dirs(cfg, "doors"), decoder_dir(cfg, "doors")],
           "endstate": ["endstate_coder", *prior_dirs(cfg, "endstate"), decoder_dir(cfg, "endstate")]}.get(who, [])
    return own + ([value_dir(cfg)] if scorer.startswith("value") else [])


def value_dir(cfg: PlanConfig) -> str:
    """The learned value's stage directory (``value_rollouts<k>`` when it also learns from search roll-outs)."""
    return "value" + (f"_rollouts{cfg.value.rollouts}" + ("_relabel" if cfg.value.relabel else "")
                      if cfg.value.rollouts else "")


def prior_dir(cfg: PlanConfig, kind: str) -> str:
    """The stage directory of the top prior a segment contender plans with (``_closed``: the closed-loop policy)."""
    return f"{kind}_prior" + ("_closed" if cfg.closed(kind) else "")


def prior_dirs(cfg: PlanConfig, kind: str) -> list[str]:
    """Every stage its top prior comes from: the open-loop prior, and the closed-loop one fine-tuned from it."""
    return list(dict.fromkeys([f"{kind}_prior", prior_dir(cfg, kind)]))


def decoder_dir(cfg: PlanConfig, kind: str) -> str:
    """The stage directory of a segment decoder (the doors and endstate ones named by their return buckets unless
    they learn from all four)."""
    b = sorted(set(cfg.decoder_buckets(kind)))
    return f"{kind}_decoder" + (f"_b{''.join(map(str, b))}" if b != [0, 1, 2, 3] else "")


def load_planner(cfg: PlanConfig, seed_dir: Path, contender: str):
    """One trained contender of a plan-experiment directory's seed (``vqladder plan``)."""
    codec, T, ch = EpisodeCodec(cfg.maze), cfg.maze.max_moves, cfg.ladder.chunk
    need = {"flat": ["flat"], "ladder": ["ladder_level1", "ladder_prior"], "subgoal": ["ladder_prior", "subgoal"],
            "rooms": ["rooms_prior", "rooms_decoder"], "doors": [prior_dir(cfg, "doors"), decoder_dir(cfg, "doors")],
            "endstate": [prior_dir(cfg, "endstate"), decoder_dir(cfg, "endstate")]}[contender]
    for k in need:
        if not (seed_dir / k).is_dir():
            raise VQLadderError(f"{seed_dir} has no trained {k} (contenders in the config did not include {contender})")
    m = {k: load_model(seed_dir / k, "sequence_compressor" if k.endswith("level1") else "code_prior")[0] for k in need}
    if contender == "flat":
        return FlatPlanner(m["flat"], T)
    if contender == "ladder":
        return LadderPlanner(m["ladder_level1"], m["ladder_prior"], T, ch)
    if contender == "subgoal":
        return SubgoalPlanner(m["ladder_prior"], m["subgoal"], codec, T, ch)
    return SubgoalPlanner(m[need[0]], m[need[1]], codec, T, ch, segments=True, closed_loop=cfg.closed(contender))


def train_segmenters(cfg: PlanConfig, data: dict, seed: int, log) -> dict:
    """One variable-length compressor of whole move sequences per ``segments.methods`` (entropy boundaries: a
    next-move LM trained first, its threshold calibrated on training plans)."""
    codec, T = EpisodeCodec(cfg.maze), cfg.maze.max_moves
    d, moves = cfg.dir / f"seed{seed}", data["train_moves"].astype(np.int64)
    out = {}
    for m in cfg.segments.methods:
        vc = derive(cfg.segments.model, vocab_size=codec.move_vocab, in_len=T, target_ratio=float(cfg.ladder.chunk),
                     boundary=m, seed=seed, pad_id=END)  # the ratio is over the plan's moves, not its END padding
        vc.validate()
        model = VariableCompressor(vc)
        if m == "entropy" and stage_state(d / "segments-entropy") != "done":
            lt = derive(cfg.segments.entropy_lm_train, seed=seed)
            lm = train_rows(f"seed {seed}: next-move LM (entropy boundaries)", d / "segments-entropy-lm",
                            CausalLM(model.entropy_lm.config), lt, moves, log)
            model.entropy_lm.load_state_dict(lm.state_dict())
            log(f"seed {seed}: entropy threshold {model.calibrate(torch.from_numpy(moves[:2048])):.3f} nats")
        t = derive(cfg.segments.train, seed=seed)
        out[m] = train_rows(f"seed {seed}: variable-length codes of moves ({m} boundaries)", d / f"segments-{m}",
                            model, t, moves, log)
    return out
