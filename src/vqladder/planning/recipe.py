"""Does planning in abstract tokens beat a flat model? ``vqladder plan-experiment CONFIG``.

Contenders on the rooms maze (``plan.maze``, ``contenders``), trained on the same imperfect, return-labelled
demonstrations for the same number of steps and episodes, for each seed:

* **flat**: a Decision-Transformer-style causal transformer over moves, conditioned on the prefix
  (doors, start, goal, return bucket) -- a ``CodePrior`` whose codes are the moves;
* **ladder**: a level-1 compressor over the move sequence (each code covers ``chunk`` moves; learned, not
  hand-labelled), a top prior over those codes with the same conditioning prefix, and the compressor's
  decoder to turn codes back into moves;
* **subgoal**: the same codes and top prior, but each code is expanded to moves by a low-level model that
  sees the layout, the goal and the cell the plan has reached (``models.planners.SubgoalPlanner``): search
  branches per code and the verifier / value judge where each code leads;
* **rooms**: codes whose boundaries are the task's: each demonstration cut into room-to-room segments (a
  segment ends with the move that enters another room, at most ``ladder.chunk`` moves;
  ``models.planners.room_segments``, the maze's rule, free, as the verifier), one learned code per segment (a
  compressor of the ladder's size and steps), a top prior over them and a segment decoder as the subgoal
  contender's (code + cell -> the segment's moves; an expansion with no moves ends the plan);
* **doors**: the rooms contender with codes given by the rule instead of learned (``door_codes``: the door
  each room is left by, "to the goal" in the last room): the reference for a vocabulary that means "go
  through that door", to tell a loss of the learned codes from a loss of planning in two levels.

Both are searched on held-out layouts with the same search procedures and the same budget in model
evaluations (one evaluation = one forward pass of a model on one sequence):
``beam`` (beam search, width set by the budget) and ``sample`` (best of N samples); and with the same
scorers: ``likelihood`` (the model's own log-probability) and ``verifier`` (log-probability plus a
validator score of the partial plan: minus the BFS distance still to go, a bonus for reaching the goal, a
penalty for a bump -- a rule, free), ``value`` (log-probability minus a learned value's estimate of the moves
still to go, ``models.value.PlanValue``, trained on the demonstrations' discounted returns: a learned g + h,
Q*-style; one evaluation per scored candidate) and ``value+verifier`` (both). For the ladder, scoring a
partial plan means decoding its codes, which costs one evaluation per candidate and is charged to its budget;
a budget a search cannot afford (a charged scorer at 1x) is reported as such, not run.
Planners are asked for return bucket 3 (optimal). Training compute is counted per stage (FLOPs, counted
per step): the ladder's compressor and prior against the flat model; the value (shared) apart.

Also measured: success against the task's shortest-path length (``success_vs_length.png``) and how often code
boundaries fall on room crossings on held-out optimal plans (fixed chunks of the ladder, entropy boundaries of
the flat model, and chance; ``boundaries`` in the results).

Results: ``<out_dir>/<name>/results.{json,md}`` and ``success_vs_budget.png``: success rate, optimality
(shortest / length over successes) and validity per contender x method x scorer x budget, mean +- std over
seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..config import NonNegFloat, NonNegInt, PathStr, PosFloat, PosInt, RunName, derive, to_dict
from ..errors import VQLadderError
from ..io import (
    atomic_save_npy,
    atomic_save_npz,
    atomic_write_json,
    atomic_write_text,
    read_json,
)
from ..models import CausalLM, CodePrior, CompressorConfig, PriorConfig, SequenceCompressor, load_model
from ..models.variable import VariableCompressor, VariableConfig
from ..quantize import QuantizerConfig
from ..train import TrainerConfig
from ..train.flops import step_flops
from ..train.recipe import open_experiment, write_results
from ..train.rows import train_rows
from ..train.stage import fresh, stage_results, stage_state, stderr_log
from .evaluate import (
    boundary_alignment,
    choose_on_validation,
    diagnostics,
    evaluate,
    example_episodes,
    segment_alignment,
)
from .maze import END, EpisodeCodec, MazeConfig, plan_tasks
from .planners import (
    DOOR_END,
    FlatPlanner,
    LadderPlanner,
    SubgoalPlanner,
    door_codes,
    room_segments,
    segment_rows,
    subgoal_rows,
)
from .report import _plot, _plot_length, plan_markdown
from .value import PlanValue, ValueConfig, value_rows


@dataclass
class PlanDataConfig:
    train_layouts: PosInt = 2000         # layouts for training demonstrations
    episodes_per_layout: PosInt = 8      # demonstrations per training layout
    test_layouts: PosInt = 50            # held-out layouts (one task each), never seen in training
    val_layouts: NonNegInt = 0           # validation layouts (one task each), in neither split: the search method and
                                         # scorer of each contender are chosen on them (0: no validation split)
    seed: NonNegInt = 0                     # data seed


def _tc(**kw):
    base = dict(steps=1200, batch_size=64, lr=2e-3, warmup=60, eval_every=-1, ckpt_every=300, log_every=50)
    base.update(kw)
    return lambda: TrainerConfig(**base)


@dataclass
class FlatSpec:
    model: PriorConfig = field(default_factory=lambda: PriorConfig(d_model=128, n_heads=2, n_layers=4))
    train: TrainerConfig = field(default_factory=_tc())


@dataclass
class LadderSpec:
    chunk: PosInt = 4                    # moves per level-1 code
    compressor: CompressorConfig = field(default_factory=lambda: CompressorConfig(
        d_model=64, n_heads=2, downsample="pool", enc_layers=1, latent_layers=1, dec_layers=1,
        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024)))
    compressor_train: TrainerConfig = field(default_factory=_tc(steps=3000, lr=3e-3))  # 800 steps: 9% exact plans
    prior: PriorConfig = field(default_factory=lambda: PriorConfig(d_model=128, n_heads=2, n_layers=4))
    prior_train: TrainerConfig = field(default_factory=_tc())


@dataclass
class SubgoalSpec:
    model: PriorConfig = field(default_factory=lambda: PriorConfig(d_model=96, n_heads=2, n_layers=3))
    train: TrainerConfig = field(default_factory=_tc(steps=1200))


@dataclass
class DoorsSpec:
    """The doors contender's segment decoder learns from the segments of demonstrations in these return buckets
    (0 failed .. 3 optimal). A door code does not name the moves, so the decoder imitates a policy ("go through
    that door"), and detours and failed walks teach it to wander; the default keeps the optimal ones."""
    decoder_buckets: list[NonNegInt] = field(default_factory=lambda: [3])


CONTENDERS = ("flat", "ladder", "subgoal", "rooms", "doors")


@dataclass
class ValueSpec:
    model: ValueConfig = field(default_factory=ValueConfig)
    train: TrainerConfig = field(default_factory=_tc(steps=800))


SCORERS = ("likelihood", "verifier", "value", "value+verifier")


@dataclass
class SegmentSpec:
    """Variable-length codes of moves (``models.variable``), trained on the first seed's demonstrations at
    ``ladder.chunk`` moves per code, to measure whether content-chosen boundaries fall on room crossings."""
    methods: list[str] = field(default_factory=list)  # learned | entropy (empty: none trained)
    model: VariableConfig = field(default_factory=lambda: VariableConfig(
        d_model=64, n_heads=2, enc_layers=1, latent_layers=1, dec_layers=1,
        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024)))
    train: TrainerConfig = field(default_factory=_tc(steps=1500, lr=3e-3))
    entropy_lm_train: TrainerConfig = field(default_factory=_tc(steps=600))  # its next-move LM (entropy)


@dataclass
class SearchConfig:
    budgets: list[int] = field(default_factory=lambda: [1, 4, 16])  # x max_moves model evaluations
    methods: list[str] = field(default_factory=lambda: ["beam", "sample"])
    scorers: list[str] = field(default_factory=lambda: ["likelihood", "verifier"])
    verifier_weight: NonNegFloat = 1.0      # weight of the validator score beside the log-probability
    value_weight: NonNegFloat = 1.0         # weight of the learned value's moves to go (nats per move) in its scorers
    dense_verifier: bool = False      # add the BFS distance-to-go to the verifier (an oracle heuristic)
    temperature: PosFloat = 1.0          # sampling temperature for best-of-N
    max_tasks: NonNegInt = 0                # evaluate the first N held-out tasks only (0 = all)
    examples: NonNegInt = 6                 # held-out tasks recorded move by move in episodes.json (the report)


@dataclass
class PlanConfig:
    EXPERIMENT: ClassVar[str] = "planning"  # the `experiment:` key its saved config carries
    name: RunName = "plan-small"
    out_dir: PathStr = "runs"
    maze: MazeConfig = field(default_factory=lambda: MazeConfig(max_moves=40))
    data: PlanDataConfig = field(default_factory=PlanDataConfig)
    seeds: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2])
    flat: FlatSpec = field(default_factory=FlatSpec)
    ladder: LadderSpec = field(default_factory=LadderSpec)
    contenders: list[str] = field(default_factory=lambda: ["flat", "ladder", "subgoal"])
    subgoal: SubgoalSpec = field(default_factory=SubgoalSpec)  # the subgoal contender's low-level decoder
    doors: DoorsSpec = field(default_factory=DoorsSpec)
    value: ValueSpec = field(default_factory=ValueSpec)   # the learned value (trained when a value scorer is searched)
    segments: SegmentSpec = field(default_factory=SegmentSpec)  # variable-length codes of moves (boundary alignment)
    search: SearchConfig = field(default_factory=SearchConfig)
    threads: NonNegInt = 0                  # torch threads (0 = default)
    match_flops: bool = False  # the flat planner's steps set so its training FLOPs (counted) equal the ladder's
                               # (compressor + prior); else flat.train.steps as given

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def validate(self) -> None:
        self.maze.validate()
        if self.maze.max_moves % self.ladder.chunk:
            raise VQLadderError(f"maze.max_moves={self.maze.max_moves} must be a multiple of ladder.chunk={self.ladder.chunk}")
        if not self.seeds:
            raise VQLadderError("seeds is empty")
        for b in self.search.budgets:
            if b <= 0:
                raise VQLadderError(f"search budget multiples must be > 0, got {b}")
        for m in self.search.methods:
            if m not in ("beam", "sample"):
                raise VQLadderError(f"search method must be beam or sample, got {m!r}")
        for c in self.contenders:
            if c not in CONTENDERS:
                raise VQLadderError(f"contender must be one of {', '.join(CONTENDERS)}, got {c!r}")
        if not self.contenders:
            raise VQLadderError("contenders is empty")
        for s in self.search.scorers:
            if s not in SCORERS:
                raise VQLadderError(f"scorer must be one of {', '.join(SCORERS)}, got {s!r}")
        for m in self.segments.methods:
            if m not in ("learned", "entropy"):
                raise VQLadderError(f"segments.methods must be learned or entropy, got {m!r}")
        if not self.doors.decoder_buckets or any(b > 3 for b in self.doors.decoder_buckets):
            raise VQLadderError(f"doors.decoder_buckets must name return buckets 0..3, got {self.doors.decoder_buckets}")


DATA_KEYS = ("maze", "data")  # what makes data.npz: a rerun with other values is refused (the tasks would differ)


def open_plan_dir(cfg: PlanConfig) -> Path:
    """The experiment directory: demonstrations and tasks made with another maze or data config would make every
    stage and table of other tasks, so such a rerun is refused (once data.npz exists); the stages guard their own
    configs."""
    return open_experiment(cfg, keys=DATA_KEYS, retrainable=False, guard_when=lambda d: (d / "data.npz").is_file(),
                           legacy={"data": {"val_layouts": 0}})  # saved before the validation split: none


def build_data(cfg: PlanConfig) -> dict:
    """Train demonstrations and held-out test tasks (layouts disjoint), cached in ``data.npz``."""
    p = cfg.dir / "data.npz"
    if not p.is_file():
        atomic_save_npz(p, **plan_tasks(cfg.maze, cfg.data.train_layouts, cfg.data.episodes_per_layout,
                                        cfg.data.test_layouts, cfg.data.seed, cfg.data.val_layouts))
    z = np.load(p, allow_pickle=False)
    return {k: z[k] for k in z.files}


def train_contenders(cfg: PlanConfig, data: dict, seed: int, log) -> dict:
    codec = EpisodeCodec(cfg.maze)
    T, ch = cfg.maze.max_moves, cfg.ladder.chunk
    d = cfg.dir / f"seed{seed}"
    rows_flat = np.concatenate([data["train_cond"], data["train_moves"]], 1)
    fc = derive(cfg.flat.model, vocab_size=codec.move_vocab, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, context=T, seed=seed)
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
    ft = derive(cfg.flat.train, seed=seed)
    flat = CodePrior(fc)
    if cfg.match_flops:  # the ladder's counted training FLOPs buy the flat planner its steps
        ladder_f = sum(stage_results(d / k).get("train_flops", 0.0) for k in ("ladder_level1", "ladder_prior"))
        per_step = step_flops(flat, ft.batch_size, rows_flat.shape[1])
        if ladder_f and per_step:
            ft = derive(ft, steps=max(1, round(ladder_f / per_step)))
    flat = train_rows(f"seed {seed}: flat planner ({ft.steps} steps)", d / "flat", flat, ft, rows_flat, log)
    with torch.no_grad():  # how faithful is the level-1 code? (fraction of training plans decoded exactly)
        sub = torch.from_numpy(data["train_moves"][:512].astype(np.int64))
        exact = float((comp.decode(comp.encode(sub)).argmax(-1) == sub).all(1).float().mean())
    params = {"flat": sum(p.numel() for p in flat.parameters()),
              "ladder_prior": sum(p.numel() for p in prior.parameters()),
              "ladder_compressor": sum(p.numel() for p in comp.parameters())}
    planners = {"flat": FlatPlanner(flat, T), "ladder": LadderPlanner(comp, prior, T, ch)}
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
    for kind in ("rooms", "doors"):
        if kind in cfg.contenders:
            planners[kind], planners[f"{kind}_coder"], extra = train_rooms(cfg, data, seed, log, kind)
            params.update(extra)
    value = None
    if any(sc.startswith("value") for sc in cfg.search.scorers):
        vc = derive(cfg.value.model, move_vocab=codec.move_vocab, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, max_moves=T, seed=seed)
        vt = derive(cfg.value.train, seed=seed)
        rows_v = value_rows(codec, data["train_cond"], data["train_moves"], data["train_buckets"], END)
        value = train_rows(f"seed {seed}: value (moves to go)", d / "value", PlanValue(vc), vt, rows_v, log)
        params["value"] = sum(p.numel() for p in value.parameters())
    flops = {k: stage_results(d / sub).get("train_flops", 0.0) for k, sub in
             (("flat", "flat"), ("ladder_compressor", "ladder_level1"), ("ladder_prior", "ladder_prior"),
              *((("subgoal_decoder", "subgoal"),) if "subgoal" in planners else ()),
              *((("rooms_compressor", "rooms_level1"),) if "rooms" in planners else ()),
              *((f"{k}_{s}", f"{k}_prior" if s == "prior" else decoder_dir(cfg, k)) for k in ("rooms", "doors")
                if k in planners for s in ("prior", "decoder")),
              *((("value", "value"),) if value is not None else ()))}
    return {**planners, "params": params, "code_exact": exact, "value": value, "train_flops": flops}


def train_rooms(cfg: PlanConfig, data: dict, seed: int, log, kind: str = "rooms") -> tuple:
    """The rooms or doors contender (module docstring): room-to-room segments of the demonstrations, their codes
    (rooms: learned by a compressor; doors: ``door_codes``, the rule's), the top prior and the segment decoder,
    each a resumable stage in ``seed<k>/<kind>_*``. Returns the planner, its coder (one plan's segments ->
    codes, for the diagnostics) and the parameter counts."""
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
        def coder(sg, ex, us):
            return comp.encode(torch.from_numpy(sg.reshape(-1, ch)))[:, 0].view(sg.shape[:-1]).numpy()
    else:
        K = DOOR_END + 1

        def coder(sg, ex, us):
            return door_codes(ex, us)
    codes_p = d / f"{kind}_codes.npy"
    ups = [d / "rooms_level1"] if kind == "rooms" else []
    if not fresh(codes_p, *ups):
        atomic_save_npy(codes_p, np.concatenate([coder(segs[i:i + 1024], exits[i:i + 1024], used[i:i + 1024])
                                                 for i in range(0, len(segs), 1024)]))
    codes = np.load(codes_p)
    pc = derive(cfg.ladder.prior, vocab_size=K, cond_vocab=codec.cond_vocab, cond_len=codec.cond_len, context=n, seed=seed)
    pt = derive(cfg.ladder.prior_train, seed=seed)
    prior = train_rows(f"seed {seed}: {kind} top prior (segment codes)", d / f"{kind}_prior", CodePrior(pc), pt,
                       np.concatenate([data["train_cond"], codes], 1), log, after=ups)
    lc = derive(cfg.subgoal.model, vocab_size=codec.move_vocab, cond_vocab=codec.cond_vocab + K, cond_len=codec.cond_len, context=ch, seed=seed)
    lt = derive(cfg.subgoal.train, seed=seed)
    name = decoder_dir(cfg, kind)
    keep = np.isin(data["train_buckets"], cfg.doors.decoder_buckets if kind == "doors" else [0, 1, 2, 3])
    rows_p = d / f"{name}_rows.npy"
    if not fresh(rows_p, *ups):
        atomic_save_npy(rows_p, segment_rows(codec, data["train_cond"][keep], segs[keep], cells[keep], codes[keep],
                                             used[keep]))
    low = train_rows(f"seed {seed}: {kind} segment decoder (code + cell -> moves)", d / name,
                     CodePrior(lc), lt, np.load(rows_p), log, after=ups)
    params.update({f"{kind}_prior": sum(p.numel() for p in prior.parameters()),
                   f"{kind}_decoder": sum(p.numel() for p in low.parameters()), f"{kind}_decoder_demos": int(keep.sum()),
                   f"{kind}_segments_per_demo": float(used.mean()), f"{kind}_cut_demos": float((used >= n).mean())})
    return SubgoalPlanner(prior, low, codec, T, ch, segments=True), coder, params


def contender_stages(cfg: PlanConfig, who: str, scorer: str = "likelihood") -> list[str]:
    """The stage directories (under ``seed<k>/``) a contender's plans come from."""
    own = {"flat": ["flat"], "ladder": ["ladder_level1", "ladder_prior"],
           "subgoal": ["ladder_level1", "ladder_prior", "subgoal"],
           "rooms": ["rooms_level1", "rooms_prior", decoder_dir(cfg, "rooms")],
           "doors": ["doors_prior", decoder_dir(cfg, "doors")]}.get(who, [])
    return own + (["value"] if scorer.startswith("value") else [])


def decoder_dir(cfg: PlanConfig, kind: str) -> str:
    """The stage directory of a rooms / doors segment decoder (the doors one named by its return buckets unless
    it learns from all four)."""
    b = sorted(set(cfg.doors.decoder_buckets))
    return f"{kind}_decoder" + (f"_b{''.join(map(str, b))}" if kind == "doors" and b != [0, 1, 2, 3] else "")


def load_planner(cfg: PlanConfig, seed_dir: Path, contender: str):
    """One trained contender of a plan-experiment directory's seed (``vqladder plan``)."""
    codec, T, ch = EpisodeCodec(cfg.maze), cfg.maze.max_moves, cfg.ladder.chunk
    need = {"flat": ["flat"], "ladder": ["ladder_level1", "ladder_prior"], "subgoal": ["ladder_prior", "subgoal"],
            "rooms": ["rooms_prior", "rooms_decoder"], "doors": ["doors_prior", decoder_dir(cfg, "doors")]}[contender]
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
    return SubgoalPlanner(m[need[0]], m[need[1]], codec, T, ch, segments=True)


def train_segmenters(cfg: PlanConfig, data: dict, seed: int, log) -> dict:
    """One variable-length compressor of whole move sequences per ``segments.methods`` (entropy boundaries: a
    next-move LM trained first, its threshold calibrated on training plans)."""
    codec, T = EpisodeCodec(cfg.maze), cfg.maze.max_moves
    d, moves = cfg.dir / f"seed{seed}", data["train_moves"].astype(np.int64)
    out = {}
    for m in cfg.segments.methods:
        vc = replace(cfg.segments.model, vocab_size=codec.move_vocab, in_len=T, target_ratio=float(cfg.ladder.chunk),
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


def _evaluated(cfg: PlanConfig, planners: dict, tasks: np.ndarray, seed: int, sd: Path, ev_p: Path, log) -> list[dict]:
    """Every (contender, method, scorer, budget) row on ``tasks``, cached in ``ev_p``: finished evaluations are
    kept unless a stage they used was (re)trained after them; the rest run one contender at a time, saved after
    each."""
    done = [r for r in (read_json(ev_p) if ev_p.is_file() else [])
            if fresh(ev_p, *(sd / k for k in contender_stages(cfg, r["contender"], r["scorer"])))]
    for who in cfg.contenders:
        have = {(r["contender"], r["method"], r["scorer"], r["budget_x"]) for r in done}
        new = evaluate(replace(cfg, contenders=[who]), planners, tasks, seed, log, done=have)
        if new:
            done += new
            atomic_write_json(ev_p, done)
    want = {(w, m, s, b) for w in cfg.contenders for m in cfg.search.methods for s in cfg.search.scorers
            for b in cfg.search.budgets}
    return [r for r in done if (r["contender"], r["method"], r["scorer"], r["budget_x"]) in want]


def run_plan_experiment(cfg: PlanConfig, log=None) -> dict:
    """The planning experiment (``vqladder plan-experiment CONFIG``): demonstrations, the flat, ladder and subgoal
    planners per seed, search on held-out layouts at several budgets; returns (and writes) its results."""
    log = log or stderr_log("plan")
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    open_plan_dir(cfg)
    data = build_data(cfg)
    train_keys = set(data["train_keys"].tolist())
    overlap = sum(k in train_keys for k in data["test_keys"].tolist())
    log(f"{len(data['train_cond'])} demonstrations on {len(train_keys)} layouts; {len(data['test_cond'])} held-out "
        f"tasks; layout overlap {overlap}")
    rows, val_rows, meta = [], [], {}
    for seed in cfg.seeds:
        ev_p = cfg.dir / f"seed{seed}" / "eval.json"
        planners = train_contenders(cfg, data, seed, log)
        meta[seed] = {"params": planners["params"], "code_exact": planners["code_exact"],
                      "train_flops": planners["train_flops"]}
        if seed == cfg.seeds[0]:
            meta[seed]["boundaries"] = boundary_alignment(cfg, planners, data["test_cond"])
            if cfg.segments.methods:
                meta[seed]["segments"] = segment_alignment(train_segmenters(cfg, data, seed, log), data["test_cond"],
                                                           EpisodeCodec(cfg.maze), cfg.maze.room)
        meta[seed]["diagnostics"] = diagnostics(cfg, planners, data["test_cond"])
        tasks = data["test_cond"][:cfg.search.max_tasks] if cfg.search.max_tasks > 0 else data["test_cond"]
        sd = cfg.dir / f"seed{seed}"
        stages = [p for p in sd.iterdir() if p.is_dir()]
        if seed == cfg.seeds[0] and cfg.search.examples and not fresh(cfg.dir / "episodes.json", *stages):
            atomic_write_json(cfg.dir / "episodes.json", example_episodes(cfg, planners, tasks, seed))
        rows += _evaluated(cfg, planners, tasks, seed, sd, ev_p, log)
        if len(data.get("val_cond", ())):  # the same searches on the validation tasks, where choices are made
            val_tasks = data["val_cond"][:cfg.search.max_tasks] if cfg.search.max_tasks > 0 else data["val_cond"]
            val_rows += [{**r, "split": "val"}
                         for r in _evaluated(cfg, planners, val_tasks, seed, sd, sd / "eval_val.json", log)]
    n_tasks = min(len(data["test_cond"]), cfg.search.max_tasks or len(data["test_cond"]))
    res = {"rows": rows, "meta": meta, "tasks": int(n_tasks), "layout_overlap": overlap,
           "demonstrations": int(len(data["train_cond"])),
           "demo_buckets": np.bincount(data["train_buckets"], minlength=4).tolist()}
    if val_rows:
        n_val = len(data["val_cond"])
        res.update(val_rows=val_rows, val_tasks=int(min(n_val, cfg.search.max_tasks or n_val)),
                   chosen=choose_on_validation(val_rows))
    write_results(cfg.dir, res)
    atomic_write_text(cfg.dir / "results.md", plan_markdown(res, cfg))
    _plot(res, cfg.dir / "success_vs_budget.png")
    _plot_length(res, cfg.dir / "success_vs_length.png")
    return res
