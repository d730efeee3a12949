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
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import NonNegFloat, NonNegInt, PosFloat, PosInt, RunName, save_yaml, to_dict
from ..data.maze import END, EpisodeCodec, Layout, MazeConfig, make_dataset, validate
from ..errors import VQLadderError
from ..io import atomic_save_npy, atomic_save_npz, atomic_write_json, atomic_write_text, claim_run_dir
from ..models import CodePrior, CompressorConfig, PriorConfig, SequenceCompressor
from ..models.sampling import beam_search, sample
from ..quantize import QuantizerConfig
from ..report import save_figure
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


# -- planners -----------------------------------------------------------------------------------------------------
class Verifier:
    """Validator score of (partial) move sequences for one task: +5 at the goal, -10 for a bump into a wall;
    ``dense`` adds minus the BFS distance still to go (an oracle heuristic: with it, greedy search alone
    solves the maze, so the default is the sparse verdict). Never raises on arbitrary symbols."""

    def __init__(self, lay: Layout, start, goal, dense: bool = False):
        self.lay, self.start, self.goal, self.dense = lay, tuple(start), tuple(goal), dense
        self.dist = lay.bfs(self.goal)

    def __call__(self, moves: torch.Tensor) -> torch.Tensor:
        out = []
        far = len(self.dist) + 1
        for row in moves.tolist():
            o = validate(self.lay, self.start, self.goal, row)
            s = -self.dist.get(o.final, far) if self.dense else 0.0
            if o.reached:
                s += 5.0
            elif not o.valid:
                s -= 10.0
            out.append(float(s))
        return torch.tensor(out)


class FlatPlanner:
    def __init__(self, prior: CodePrior, T: int):
        self.prior, self.T = prior, T

    def plan(self, cond, method, scorer, budget, weight=1.0, temperature=1.0, seed=0):
        c = torch.as_tensor(cond).long()
        fn = self.prior.step_fn(c)
        if method == "beam":
            res = beam_search(fn, self.T, beam_width=max(1, budget // self.T), scorer=scorer, score_weight=weight,
                              max_evals=budget)
            return res.sequence.numpy(), res.evaluations
        n = budget // self.T
        if n < 1:
            raise VQLadderError(f"budget {budget} cannot afford one sample of {self.T} moves")
        g = torch.Generator().manual_seed(seed)
        seqs = sample(fn, n, self.T, temperature, generator=g)
        score = self.prior.log_prob(seqs, c.view(1, -1).expand(n, -1))
        if scorer is not None:
            score = score + weight * scorer(seqs)
        return seqs[int(score.argmax())].numpy(), n * self.T


class LadderPlanner:
    def __init__(self, comp: SequenceCompressor, prior: CodePrior, T: int, chunk: int):
        self.comp, self.prior, self.T, self.chunk = comp, prior, T, chunk
        self.n_codes = T // chunk
        # the code that says "four ends": pads a partial plan so it can be decoded
        self.end_code = int(comp.encode(torch.full((1, T), END, dtype=torch.long))[0, -1])

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes[n, j] (j <= n_codes) -> moves[n, j * chunk] (padded with the end code to decode)."""
        n, j = codes.shape
        full = torch.full((n, self.n_codes), self.end_code, dtype=torch.long)
        full[:, :j] = codes
        return self.comp.decode(full).argmax(-1)[:, :j * self.chunk]

    def plan(self, cond, method, scorer, budget, weight=1.0, temperature=1.0, seed=0):
        c = torch.as_tensor(cond).long()
        fn = self.prior.step_fn(c)
        code_scorer = None if scorer is None else (lambda codes: scorer(self.decode(codes)))
        if method == "beam":
            per = 1 + (1 if scorer is not None else 0)
            res = beam_search(fn, self.n_codes, beam_width=max(1, (budget - 1) // (self.n_codes * per)),
                              scorer=code_scorer, score_weight=weight, max_evals=budget - 1, scorer_cost=1)
            return self.decode(res.sequence[None])[0].numpy(), res.evaluations + 1
        n = budget // (self.n_codes + 1)
        if n < 1:
            raise VQLadderError(f"budget {budget} cannot afford one sample of {self.n_codes} codes + decoding")
        g = torch.Generator().manual_seed(seed)
        codes = sample(fn, n, self.n_codes, temperature, generator=g)
        moves = self.decode(codes)
        score = self.prior.log_prob(codes, c.view(1, -1).expand(n, -1))
        if scorer is not None:
            score = score + weight * scorer(moves)
        return moves[int(score.argmax())].numpy(), n * (self.n_codes + 1)


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
        if ev_p.is_file():
            rows += json.loads(ev_p.read_text())
            continue
        tasks = data["test_cond"][:cfg.search.max_tasks] if cfg.search.max_tasks > 0 else data["test_cond"]
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


def _agg(rows):
    out = {}
    for r in rows:
        k = (r["contender"], r["method"], r["scorer"], r["budget_x"])
        out.setdefault(k, []).append(r)
    return out


def _ms(vals):
    vals = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    return f"{np.mean(vals):.2f} ± {np.std(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"


def plan_markdown(res: dict, cfg: PlanConfig) -> str:
    m = cfg.maze
    seeds = sorted(res["meta"])
    p = res["meta"][seeds[0]]["params"]
    lines = [f"# Planning: flat vs ladder ({cfg.name})", "",
             f"Maze {m.rooms}x{m.rooms} rooms of {m.room}x{m.room} cells, {m.max_moves} moves max; "
             f"{res['demonstrations']:,} demonstrations (return buckets fail/poor/ok/optimal: {res['demo_buckets']}); "
             f"{res['tasks']} held-out layouts (overlap with training: {res['layout_overlap']}); seeds {seeds}. "
             f"Budget = model evaluations, as a multiple of {m.max_moves} (one greedy pass of the flat model).", "",
             f"Parameters: flat {p['flat']:,}; ladder prior {p['ladder_prior']:,} + level-1 compressor "
             f"{p['ladder_compressor']:,}. Level-1 codes decode training plans exactly: "
             + ", ".join(f"{res['meta'][s]['code_exact']:.3f}" for s in seeds) + " (per seed).", "",
             "| contender | search | scorer | budget | success | optimality | validity |",
             "|---|---|---|---|---|---|---|"]
    for (who, method, sc, mult), rs in sorted(_agg(res["rows"]).items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], kv[0][0])):
        lines.append(f"| {who} | {method} | {sc} | {mult}x | {_ms([r['success'] for r in rs])} | "
                     f"{_ms([r['optimality'] for r in rs])} | {_ms([r['validity'] for r in rs])} |")
    return "\n".join(lines) + "\n"


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    agg = _agg(res["rows"])
    for ax, method in zip(axes, ("beam", "sample")):
        for who, color in (("flat", "tab:blue"), ("ladder", "tab:red")):
            for sc, ls in (("likelihood", "--"), ("verifier", "-")):
                pts = sorted((k[3], np.mean([r["success"] for r in v])) for k, v in agg.items()
                             if k[0] == who and k[1] == method and k[2] == sc)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, color=color, marker="o", label=f"{who}, {sc}")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{method} search")
        ax.set_xlabel("budget (x one greedy pass, model evaluations)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate (held-out layouts)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
