"""Does planning in abstract tokens beat a flat model? ``vqladder plan-experiment CONFIG``.

Two contenders on the rooms maze (``plan.maze``), trained on the same imperfect, return-labelled
demonstrations for the same number of steps and episodes, for each seed:

* **flat**: a Decision-Transformer-style causal transformer over moves, conditioned on the prefix
  (doors, start, goal, return bucket) -- a ``CodePrior`` whose codes are the moves;
* **ladder**: a level-1 compressor over the move sequence (each code covers ``chunk`` moves; learned, not
  hand-labelled), a top prior over those codes with the same conditioning prefix, and the compressor's
  decoder to turn codes back into moves.

Both are searched on held-out layouts with the same search procedures and the same budget in model
evaluations (one evaluation = one forward pass of a model on one sequence):
``beam`` (beam search, width set by the budget) and ``sample`` (best of N samples); and with the same
scorers: ``likelihood`` (the model's own log-probability) and ``verifier`` (log-probability plus a
validator score of the partial plan: minus the BFS distance still to go, a bonus for reaching the goal, a
penalty for a bump -- a Q*-like heuristic given to both). For the ladder, scoring a partial plan means
decoding its codes, which costs one evaluation per candidate and is charged to its budget.
Planners are asked for return bucket 3 (optimal).

Results: ``<out_dir>/<name>/results.{json,md}`` and ``success_vs_budget.png``: success rate, optimality
(shortest / length over successes) and validity per contender x method x scorer x budget, mean +- std over
seeds.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import NonNegFloat, NonNegInt, PosFloat, PosInt, RunName, save_yaml, to_dict
from ..data.maze import DELTA, MOVES, EpisodeCodec, MazeConfig, make_dataset, validate
from ..errors import VQLadderError
from ..io import atomic_save_npy, atomic_save_npz, atomic_write_json, atomic_write_text, claim_run_dir
from ..models import CodePrior, CompressorConfig, PriorConfig, SequenceCompressor
from ..models.planners import FlatPlanner, LadderPlanner, Verifier  # noqa: F401
from ..quantize import QuantizerConfig
from ..report.planning import _agg, _ms, _plot, plan_markdown  # noqa: F401
from ..train import TrainerConfig
from .stages import train_rows


@dataclass
class PlanDataConfig:
    train_layouts: PosInt = 2000         # layouts for training demonstrations
    episodes_per_layout: PosInt = 8      # demonstrations per training layout
    test_layouts: PosInt = 50            # held-out layouts (one task each), never seen in training
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
        d_model=64, n_heads=2, enc_layers=1, latent_layers=1, dec_layers=1,
        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024)))
    compressor_train: TrainerConfig = field(default_factory=_tc(steps=3000, lr=3e-3))  # 800 steps: 9% exact plans
    prior: PriorConfig = field(default_factory=lambda: PriorConfig(d_model=128, n_heads=2, n_layers=4))
    prior_train: TrainerConfig = field(default_factory=_tc())


@dataclass
class SearchConfig:
    budgets: list[int] = field(default_factory=lambda: [1, 4, 16])  # x max_moves model evaluations
    methods: list[str] = field(default_factory=lambda: ["beam", "sample"])
    scorers: list[str] = field(default_factory=lambda: ["likelihood", "verifier"])
    verifier_weight: NonNegFloat = 1.0      # weight of the validator score beside the log-probability
    dense_verifier: bool = False      # add the BFS distance-to-go to the verifier (an oracle heuristic)
    temperature: PosFloat = 1.0          # sampling temperature for best-of-N
    max_tasks: NonNegInt = 0                # evaluate the first N held-out tasks only (0 = all)
    examples: NonNegInt = 6                 # held-out tasks recorded move by move in episodes.json (the report)


@dataclass
class PlanConfig:
    name: RunName = "plan-small"
    out_dir: str = "runs"
    maze: MazeConfig = field(default_factory=lambda: MazeConfig(max_moves=40))
    data: PlanDataConfig = field(default_factory=PlanDataConfig)
    seeds: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2])
    flat: FlatSpec = field(default_factory=FlatSpec)
    ladder: LadderSpec = field(default_factory=LadderSpec)
    search: SearchConfig = field(default_factory=SearchConfig)
    threads: NonNegInt = 0                  # torch threads (0 = default)

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
        for s in self.search.scorers:
            if s not in ("likelihood", "verifier"):
                raise VQLadderError(f"scorer must be likelihood or verifier, got {s!r}")


# -- data -------------------------------------------------------------------------------------------------------
def build_data(cfg: PlanConfig) -> dict:
    """Train demonstrations and held-out test tasks (layouts disjoint), cached in ``data.npz``."""
    p = cfg.dir / "data.npz"
    if p.is_file():
        z = np.load(p, allow_pickle=False)
        return {k: z[k] for k in z.files}
    train = make_dataset(cfg.maze, cfg.data.train_layouts, cfg.data.episodes_per_layout, cfg.data.seed)
    test = make_dataset(cfg.maze, cfg.data.test_layouts, 1, cfg.data.seed + 1_000_003, exclude=set(train["keys"]))
    codec = EpisodeCodec(cfg.maze)
    # test tasks: ask for the optimal bucket; drop tasks whose shortest path does not fit max_moves
    conds = []
    for c in test["cond"]:
        lay, s, g, _ = codec.decode_cond(c)
        if validate(lay, s, g, []).shortest <= cfg.maze.max_moves:
            conds.append(codec.cond(lay, s, g, 3))
    data = {"train_cond": train["cond"], "train_moves": train["moves"], "train_keys": train["keys"],
            "train_buckets": train["buckets"], "test_cond": np.stack(conds), "test_keys": test["keys"][:len(conds)]}
    atomic_save_npz(p, **data)
    return data


def train_contenders(cfg: PlanConfig, data: dict, seed: int, log) -> dict:
    codec = EpisodeCodec(cfg.maze)
    T, ch = cfg.maze.max_moves, cfg.ladder.chunk
    d = cfg.dir / f"seed{seed}"
    rows_flat = np.concatenate([data["train_cond"], data["train_moves"]], 1)
    fc = PriorConfig(**{**to_dict(cfg.flat.model), "vocab_size": codec.move_vocab, "cond_vocab": codec.cond_vocab,
                        "cond_len": codec.cond_len, "context": T, "seed": seed})
    ft = TrainerConfig(**{**to_dict(cfg.flat.train), "seed": seed})
    flat = train_rows(f"seed {seed}: flat planner", d / "flat", CodePrior(fc), ft, rows_flat, log)
    qc = cfg.ladder.compressor.quantizer
    cc = CompressorConfig(**{**to_dict(cfg.ladder.compressor), "quantizer": QuantizerConfig(**to_dict(qc)),
                             "vocab_size": codec.move_vocab, "in_len": T, "out_len": T // ch, "seed": seed})
    ct = TrainerConfig(**{**to_dict(cfg.ladder.compressor_train), "seed": seed})
    comp = train_rows(f"seed {seed}: ladder level 1 (moves -> codes)", d / "ladder_level1", SequenceCompressor(cc), ct,
                  data["train_moves"], log)
    codes_p = d / "ladder_codes.npy"
    if not codes_p.is_file():
        with torch.no_grad():
            codes = torch.cat([comp.encode(torch.from_numpy(data["train_moves"][i:i + 512].astype(np.int64)))
                               for i in range(0, len(data["train_moves"]), 512)]).numpy()
        atomic_save_npy(codes_p, codes)
    codes = np.load(codes_p)
    pc = PriorConfig(**{**to_dict(cfg.ladder.prior), "vocab_size": comp.quantizer.codebook_size,
                        "cond_vocab": codec.cond_vocab, "cond_len": codec.cond_len, "context": T // ch, "seed": seed})
    pt = TrainerConfig(**{**to_dict(cfg.ladder.prior_train), "seed": seed})
    prior = train_rows(f"seed {seed}: ladder top prior (codes)", d / "ladder_prior", CodePrior(pc), pt,
                   np.concatenate([data["train_cond"], codes], 1), log)
    with torch.no_grad():  # how faithful is the level-1 code? (fraction of training plans decoded exactly)
        sub = torch.from_numpy(data["train_moves"][:512].astype(np.int64))
        exact = float((comp.decode(comp.encode(sub)).argmax(-1) == sub).all(1).float().mean())
    params = {"flat": sum(p.numel() for p in flat.parameters()),
              "ladder_prior": sum(p.numel() for p in prior.parameters()),
              "ladder_compressor": sum(p.numel() for p in comp.parameters())}
    return {"flat": FlatPlanner(flat, T), "ladder": LadderPlanner(comp, prior, T, ch), "params": params,
            "code_exact": exact}


def evaluate(cfg: PlanConfig, planners: dict, test_cond: np.ndarray, seed: int, log) -> list[dict]:
    codec = EpisodeCodec(cfg.maze)
    T = cfg.maze.max_moves
    rows = []
    for who in ("flat", "ladder"):
        pl = planners[who]
        for method in cfg.search.methods:
            for sc in cfg.search.scorers:
                for mult in cfg.search.budgets:
                    budget = mult * T
                    succ, opt, valid, evals = [], [], [], []
                    t0 = time.time()
                    for i, cond in enumerate(test_cond):
                        lay, s, g, _ = codec.decode_cond(cond)
                        scorer = Verifier(lay, s, g, cfg.search.dense_verifier) if sc == "verifier" else None
                        moves, used = pl.plan(cond, method, scorer, budget, cfg.search.verifier_weight,
                                              cfg.search.temperature, seed=seed * 100_003 + i)
                        o = validate(lay, s, g, moves.tolist())
                        succ.append(o.valid and o.reached)
                        valid.append(o.valid)
                        if o.valid and o.reached:
                            opt.append(o.optimality)
                        evals.append(used)
                    row = {"seed": seed, "contender": who, "method": method, "scorer": sc, "budget_x": mult,
                           "budget": budget, "success": float(np.mean(succ)), "validity": float(np.mean(valid)),
                           "optimality": float(np.mean(opt)) if opt else float("nan"),
                           "mean_evals": float(np.mean(evals)), "max_evals": int(np.max(evals)),
                           "seconds": round(time.time() - t0, 2)}
                    if row["max_evals"] > budget:
                        raise RuntimeError(f"search exceeded its budget: {row}")
                    log(f"seed {seed} {who:6s} {method:6s} {sc:10s} budget {mult:>2}x: success {row['success']:.2f} "
                        f"optimality {row['optimality']:.2f} validity {row['validity']:.2f}")
                    rows.append(row)
    return rows


def example_episodes(cfg: PlanConfig, planners: dict, test_cond: np.ndarray, seed: int) -> list[dict]:
    """The first ``search.examples`` held-out tasks planned by both contenders with the first search method,
    the verifier if it is searched (else likelihood), at the largest budget: the maze, the moves, the cells
    walked and where each code's moves begin (every ``ladder.chunk`` moves; one code per move for flat)."""
    codec = EpisodeCodec(cfg.maze)
    T, ch = cfg.maze.max_moves, cfg.ladder.chunk
    method = cfg.search.methods[0]
    sc = "verifier" if "verifier" in cfg.search.scorers else cfg.search.scorers[0]
    budget = max(cfg.search.budgets) * T
    out = []
    for i, cond in enumerate(test_cond[:cfg.search.examples]):
        lay, start, goal, _ = codec.decode_cond(cond)
        for who in ("flat", "ladder"):
            scorer = Verifier(lay, start, goal, cfg.search.dense_verifier) if sc == "verifier" else None
            moves, used = planners[who].plan(cond, method, scorer, budget, cfg.search.verifier_weight,
                                             cfg.search.temperature, seed=seed * 100_003 + i)
            moves = [int(m) for m in moves]
            o = validate(lay, start, goal, moves)
            cells, u = [list(start)], start
            for m in moves:
                if m not in DELTA or not lay.can_move(u, m):
                    break
                u = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
                cells.append(list(u))
                if u == goal:
                    break
            out.append({"task": i, "contender": who, "method": method, "scorer": sc, "budget": budget,
                        "evaluations": int(used), "maze": lay.render(start, goal).splitlines(),
                        "start": list(start), "goal": list(goal), "moves": "".join(MOVES[m] if m < 4 else "."
                                                                                  for m in moves),
                        "cells": cells, "valid": bool(o.valid), "reached": bool(o.reached),
                        "code_starts": list(range(0, T, ch if who == "ladder" else 1))})
    return out


def run_plan_experiment(cfg: PlanConfig, log=None) -> dict:
    log = log or (lambda m: print(f"[plan] {m}", file=sys.stderr, flush=True))
    cfg.validate()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    claim_run_dir(cfg.dir)
    save_yaml(cfg, cfg.dir / "plan.yaml")
    data = build_data(cfg)
    train_keys = set(data["train_keys"].tolist())
    overlap = sum(k in train_keys for k in data["test_keys"].tolist())
    log(f"{len(data['train_cond'])} demonstrations on {len(train_keys)} layouts; {len(data['test_cond'])} held-out "
        f"tasks; layout overlap {overlap}")
    rows, meta = [], {}
    for seed in cfg.seeds:
        ev_p = cfg.dir / f"seed{seed}" / "eval.json"
        planners = train_contenders(cfg, data, seed, log)
        meta[seed] = {"params": planners["params"], "code_exact": planners["code_exact"]}
        tasks = data["test_cond"][:cfg.search.max_tasks] if cfg.search.max_tasks > 0 else data["test_cond"]
        if seed == cfg.seeds[0] and cfg.search.examples and not (cfg.dir / "episodes.json").is_file():
            atomic_write_json(cfg.dir / "episodes.json", example_episodes(cfg, planners, tasks, seed))
        if ev_p.is_file():
            rows += json.loads(ev_p.read_text())
            continue
        r = evaluate(cfg, planners, tasks, seed, log)
        atomic_write_json(ev_p, r)
        rows += r
    n_tasks = min(len(data["test_cond"]), cfg.search.max_tasks or len(data["test_cond"]))
    res = {"rows": rows, "meta": meta, "tasks": int(n_tasks), "layout_overlap": overlap,
           "demonstrations": int(len(data["train_cond"])),
           "demo_buckets": np.bincount(data["train_buckets"], minlength=4).tolist()}
    atomic_write_json(cfg.dir / "results.json", res)
    atomic_write_text(cfg.dir / "results.md", plan_markdown(res, cfg))
    _plot(res, cfg.dir / "success_vs_budget.png")
    return res


