"""The compression sweep's configuration and its grid: ``SweepConfig`` (the base run config every cell starts from,
the grid's axes, the budget per cell, the references) and ``expand_grid``, which turns it into one validated run
config per cell (and its local-autoencoder twin) before anything trains."""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..config import NonNegFloat, NonNegInt, OpenUnit, PathStr, PosInt, RunName, build, to_dict
from ..errors import VQLadderError
from ..models import LMConfig
from ..models.compressor import is_local
from ..quantize import QuantizerConfig
from ..train import TrainerConfig
from .compressor import RunConfig


@dataclass
class GridConfig:
    out_len: list[PosInt] = field(default_factory=lambda: [128, 64, 32, 16, 8])   # codes per chunk (M)
    codebook_size: list[PosInt] = field(default_factory=lambda: [256, 4096, 65536])  # K
    kind: list[str] = field(default_factory=lambda: ["fsq"])                 # fsq | vq
    decoder: list[str] = field(default_factory=lambda: ["parallel"])         # parallel | autoregressive
    depth: list[PosInt] = field(default_factory=lambda: [1])                    # residual depth
    seed: list[NonNegInt] = field(default_factory=lambda: [0])                     # model and data seeds
    rate_weight: list[NonNegFloat] = field(default_factory=lambda: [0.0])   # weight of the codes' rate in the loss
    #   (> 0 trains base.model.rate_layers' context model jointly: distortion against *actual* bits)
    max_bits_per_token: NonNegFloat = 0.0   # skip cells whose rate (M x depth x log2 K / N) exceeds this; 0 = keep all


@dataclass
class ReferenceConfig:
    lm: bool = True                   # train the causal-LM reference (an upper bound on the entropy rate)
    dev_fraction: OpenUnit = 0.05     # last part of train held back to pick the LM's checkpoint (never val)
    lm_model: LMConfig = field(default_factory=LMConfig)
    lm_train: TrainerConfig = field(default_factory=lambda: TrainerConfig(steps=1000, warmup=100, lr=2e-3))
    local_ae: bool = True             # train the context-free local autoencoder beside every cell (same rate, split,
                                      # budget): downsample=segment without context blocks, the floor to beat
    local_seg_layers: PosInt = 3      # the local autoencoder's residual MLP blocks per side


@dataclass
class SweepConfig:
    EXPERIMENT: ClassVar[str] = "sweep"  # the `experiment:` key its saved config carries
    name: RunName = "sweep"               # sweep directory name under out_dir
    out_dir: PathStr = "runs"             # where sweeps live
    budget: str = "600"               # per cell: steps (600) or wall-clock (90s, 10m, 1h)
    workers: PosInt = 1                  # cells trained at once, each in its own process
    gist: bool = False                # after training, add embedding gist metrics per cell (needs [gist])
    gist_chunks: PosInt = 100            # held-out chunks for the gist metrics (also the retrieval pool)
    base: RunConfig = field(default_factory=RunConfig)  # template for every cell
    grid: GridConfig = field(default_factory=GridConfig)
    references: ReferenceConfig = field(default_factory=ReferenceConfig)

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name


TIME_BUDGET_STEPS = 10_000_000  # the step cap of a time-budgeted cell: the trainer plans the real count


def parse_budget(budget: str) -> tuple[int | None, float | None]:
    """'600' -> (600 steps, None); '10m' -> (None, 600.0 s)."""
    b = str(budget).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)", b)
    if m:
        return None, float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    if re.fullmatch(r"\d+", b) and int(b) > 0:
        return int(b), None
    raise VQLadderError(f"budget {budget!r}: give steps (e.g. 600) or wall-clock (90s, 10m, 1h)")


def cell_name(c: dict) -> str:
    return (f"m{c['out_len']:03d}-k{c['codebook_size']}-{c['kind']}" + ("-ar" if c["decoder"] == "autoregressive" else "")
            + (f"-r{c['depth']}" if c["depth"] > 1 else "") + (f"-rw{c['rate_weight']:g}" if c.get("rate_weight") else "")
            + f"-s{c['seed']}")


def local_twin(cell: dict, seg_layers: int) -> dict:
    """The local-autoencoder reference of a cell: same rate, data, seed and budget; no context."""
    d = copy.deepcopy(cell)
    d["name"] = cell["name"] + "-local"
    d["model"].update(downsample="segment", latent_layers=0, enc_layers=0, dec_layers=0, seg_layers=seg_layers,
                      decoder="parallel", rate_weight=0.0)
    return d


def expand_grid(cfg: SweepConfig) -> list[tuple[str, RunConfig]]:
    """Every cell as (name, RunConfig); raises before anything trains if the grid is empty or a cell is bad."""
    g = cfg.grid
    axes = {k: getattr(g, k) for k in ("out_len", "codebook_size", "kind", "decoder", "depth", "rate_weight", "seed")}
    for k, v in axes.items():
        if not v:
            raise VQLadderError(f"sweep grid is empty: grid.{k} has no values")
    steps, seconds = parse_budget(cfg.budget)
    base = to_dict(cfg.base)
    cells, names = [], set()
    for values in itertools.product(*axes.values()):
        c = dict(zip(axes, values))
        name = cell_name(c)
        if g.max_bits_per_token > 0:
            qc = QuantizerConfig(kind=c["kind"], codebook_size=c["codebook_size"])
            try:
                k = qc.effective_codebook_size()
            except VQLadderError as e:
                raise VQLadderError(f"sweep cell {name}: {e}")
            if c["out_len"] * c["depth"] * math.log2(k) / cfg.base.model.in_len > g.max_bits_per_token:
                continue
        d = copy.deepcopy(base)
        d["name"], d["out_dir"] = name, str(cfg.dir / "cells")
        d["model"].update(out_len=c["out_len"], decoder=c["decoder"], seed=c["seed"], rate_weight=c["rate_weight"])
        if c["rate_weight"] > 0 and not d["model"].get("rate_layers"):
            d["model"]["rate_layers"] = 1  # the rate term needs its context model
        d["model"]["quantizer"].update(codebook_size=c["codebook_size"], kind=c["kind"], depth=c["depth"],
                                       levels=[])
        d["train"]["seed"] = c["seed"]
        if steps is not None:
            d["train"]["steps"] = steps
        if seconds is not None:  # equal wall-clock: the schedule spans the budget, not a step count
            d["train"]["max_time"] = seconds
            d["train"]["steps"] = TIME_BUDGET_STEPS
        try:
            cells.append((name, build(RunConfig, d)))
            twin = cell_name({**c, "decoder": "parallel"}) + "-local"  # one twin per rate and seed, whatever decoder
            if cfg.references.local_ae and not is_local(d["model"]) and not c["rate_weight"] and twin not in names:
                d["name"] = twin[:-len("-local")]
                cells.append((twin, build(RunConfig, local_twin(d, cfg.references.local_seg_layers))))
                names.add(twin)
        except VQLadderError as e:
            raise VQLadderError(f"sweep cell {name}: {e}")
    if not cells:
        raise VQLadderError(f"sweep grid is empty: every cell is above grid.max_bits_per_token={g.max_bits_per_token}")
    return cells
