"""A learned value over partial plans (Q*-style): how close a move prefix is to reaching the goal.

``PlanValue`` reads ``[cond_1 … cond_c, BOS, move_1 … move_t]`` (the planner's conditioning prefix: doors,
start, goal, with the return bucket fixed so the value cannot read the outcome from it) through the shared
causal decoder core and predicts at every position the discounted return of the demonstration that continued
from there: ``gamma ** (moves still to go)`` when that demonstration reached the goal, 0 when it failed (Monte
Carlo targets from the demonstrations, ``value_targets``). As a search score it is turned into an estimated
number of moves to go, ``log V / log gamma`` (``moves_to_go``), so log-probability plus a weighted value is a
learned g + h, the BFS-free counterpart of the dense verifier.

Training rows are ``cat([cond, moves, to_go], 1)`` with ``to_go[t]`` (t = 0 … T) the moves still to go after t
moves, or -1 for a failed demonstration (integers, so the shared row sampler feeds them).
Axes: b batch, c cond_len, t moves, d width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Annotated, Check, NonNegInt, PosInt, trunk
from ..errors import VQLadderError
from ..models.decoder import DecoderCore
from ..models.registry import register
from ..models.sampling import sample
from ..nn import check_heads, init_weights_, seeded
from .maze import END, validate


@dataclass
class ValueConfig(trunk(96, 2)):
    move_vocab: NonNegInt = 0               # move symbols (0 = from the maze)
    cond_vocab: NonNegInt = 0               # conditioning symbols (0 = from the maze)
    cond_len: NonNegInt = 0                 # conditioning symbols per row (0 = from the maze)
    max_moves: NonNegInt = 0                # moves per plan (0 = from the maze)
    gamma: Annotated[float, Check(gt=0, lt=1)] = 0.95  # discount per move
    n_layers: PosInt = 3                 # blocks

    def validate(self) -> None:
        check_heads("value.", self.d_model, self.n_heads)


def value_targets(moves: np.ndarray, reached: np.ndarray, end: int) -> np.ndarray:
    """Moves still to go after each prefix: ``moves[e, T]`` (padded with ``end``), ``reached[e]`` -> ``to_go[e, T+1]``:
    for a demonstration that reached the goal after L moves, ``max(L - t, 0)`` after t moves; -1 throughout for
    one that failed."""
    moves = np.asarray(moves)
    T = moves.shape[1]
    length = np.where(moves == end, np.arange(T)[None, :], T).min(1)  # first end = the plan's length
    t = np.arange(T + 1)[None, :]
    to_go = np.maximum(length[:, None] - t, 0)
    return np.where(np.asarray(reached, dtype=bool)[:, None], to_go, -1).astype(np.int64)


def value_rows(codec, cond: np.ndarray, moves: np.ndarray, buckets: np.ndarray, end: int) -> np.ndarray:
    """Training rows of the value: the demonstrations' conditioning with the return bucket fixed at 3 (the value
    must judge the moves, not read the outcome), their moves, and the moves still to go after each prefix
    (``codec`` is the maze's ``EpisodeCodec``; a demonstration with bucket 0 failed)."""
    return np.concatenate([codec.with_bucket(cond, 3), moves, value_targets(moves, buckets > 0, end)], 1)


@torch.no_grad()
def rollout_rows(prior, codec, cond: np.ndarray, T: int, per_task: int, temperature: float, seed: int,
                 relabel: bool = False, batch: int = 2048) -> tuple[np.ndarray, float]:
    """Training rows of the value from search roll-outs: ``per_task`` plans sampled from ``prior`` (the flat
    planner, asked for return bucket 3, at ``temperature``: the plans its best-of-N search draws) for each task of
    ``cond``, each replayed in the maze (the environment's verdict, no oracle): one that reaches the goal is cut
    there (END after), one that does not is a failure (to go -1 throughout, as a failed demonstration), or with
    ``relabel`` (hindsight relabelling) a success at reaching the last cell it got to before a bump or its end:
    the goal replaced by that cell, the moves cut there (a roll-out that never left its start is dropped).
    Returns the rows (as ``value_rows``) and the fraction of roll-outs that reached their own goal."""
    tasks = np.repeat(codec.with_bucket(cond, 3), per_task, axis=0)
    g = torch.Generator().manual_seed(seed)
    moves = np.concatenate([sample(prior.step_fn(torch.from_numpy(tasks[i:i + batch])), len(tasks[i:i + batch]), T,
                                   temperature, generator=g).numpy() for i in range(0, len(tasks), batch)])
    reached = np.zeros(len(tasks), dtype=bool)
    keep = np.ones(len(tasks), dtype=bool)
    for r, (c, mv) in enumerate(zip(tasks, moves)):
        lay, start, goal, _ = codec.decode_cond(c)
        o = validate(lay, start, goal, mv.tolist())
        if o.valid and o.reached:
            reached[r] = True
            moves[r, o.length:] = END
        elif relabel:  # where it did get to, by these moves: the goal of a successful episode
            keep[r] = o.length > 0
            tasks[r] = codec.with_goal(tasks[r], o.final)
            moves[r, o.length:] = END
    labels = np.where(reached | relabel, 3, 0)
    return value_rows(codec, tasks[keep], moves[keep], labels[keep], END), float(reached.mean())


@register("plan_value", ValueConfig)
class PlanValue(DecoderCore):
    def __init__(self, cfg: ValueConfig):
        super().__init__()
        cfg.validate()
        for k in ("move_vocab", "cond_vocab", "cond_len", "max_moves"):
            if getattr(cfg, k) < 1:
                raise VQLadderError(f"value.{k} must be set (it is filled in from the maze when 0)")
        self.config = cfg
        with seeded(cfg.seed):
            d = cfg.d_model
            self.cond_emb = nn.Embedding(cfg.cond_vocab, d)
            self.move_emb = nn.Embedding(cfg.move_vocab, d)
            self.pos = nn.Parameter(torch.zeros(cfg.cond_len + 1 + cfg.max_moves, d))
            self.bos = nn.Parameter(torch.zeros(d))
            self.build_core(d, cfg.n_heads, cfg.n_layers, cfg.mlp_ratio)
            self.head = nn.Linear(d, 1)
            init_weights_(self, normal=("bos", "pos"))

    def forward(self, moves: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """moves[b, t] (t <= max_moves), cond[b, c] -> value logits[b, t + 1] (after 0 … t moves)."""
        c = self.config
        if moves.shape[1] > c.max_moves or cond.shape[1] != c.cond_len:
            raise VQLadderError(f"value expects <= {c.max_moves} moves after {c.cond_len} conditioning symbols, "
                                f"got {moves.shape[1]} after {cond.shape[1]}")
        b = moves.shape[0]
        x = torch.cat([self.cond_emb(cond), self.bos.expand(b, 1, -1).to(self.move_emb.weight.dtype),
                       self.move_emb(moves.clamp(0, c.move_vocab - 1))], 1)
        x = x + self.pos[:x.shape[1]].to(x.dtype)
        return self.head(self.run(x))[:, c.cond_len:, 0]

    def split(self, batch: torch.Tensor):
        c = self.config
        return batch[:, :c.cond_len], batch[:, c.cond_len:c.cond_len + c.max_moves], batch[:, c.cond_len + c.max_moves:]

    def target(self, to_go: torch.Tensor) -> torch.Tensor:
        """Moves still to go (-1 = failed) -> the discounted return ``gamma ** to_go`` (0 when failed)."""
        return torch.where(to_go >= 0, self.config.gamma ** to_go.clamp_min(0).float(), torch.zeros((), device=to_go.device))

    def loss(self, batch: torch.Tensor):
        cond, moves, to_go = self.split(batch)
        logits = self(moves, cond).float()
        y = self.target(to_go)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        with torch.no_grad():
            mae = (torch.sigmoid(logits) - y).abs().mean()
        return loss, {"bce": loss.detach(), "mae": mae}

    @torch.no_grad()
    def value(self, moves: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """V after the whole of each prefix moves[b, t], in (0, 1)."""
        cc = cond.view(1, -1).expand(moves.shape[0], -1) if cond.dim() == 1 else cond
        return torch.sigmoid(self(moves, cc)[:, -1].float())

    @torch.no_grad()
    def moves_to_go_all(self, moves: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The value after every prefix of moves[b, t] (0 … t moves) as an estimated number of moves still to go,
        ``log V / log gamma`` (capped at 4 x max_moves) -> [b, t + 1]."""
        cc = cond.view(1, -1).expand(moves.shape[0], -1) if cond.dim() == 1 else cond
        v = torch.sigmoid(self(moves, cc).float()).clamp_min(1e-12)
        return (v.log() / math.log(self.config.gamma)).clamp(0, 4 * self.config.max_moves)

    def moves_to_go(self, moves: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The estimated moves still to go after the whole of each prefix moves[b, t] -> [b]."""
        return self.moves_to_go_all(moves, cond)[:, -1]
