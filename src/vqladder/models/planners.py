"""The planners over the rooms maze: scorers of partial plans (the verifier, a learned value), the flat
(Decision-Transformer-style) planner over moves and the ladder planner over move codes; both count every model
evaluation against the budget: the prior's steps, the ladder's decodes, and each learned-value evaluation.

A scorer is a callable ``moves[n, t] -> score[n]`` with a ``cost``: the model evaluations one scored candidate
costs (0 for the rule-based verifier, 1 for the learned value)."""

from __future__ import annotations

import torch

from ..data.maze import END, Layout, validate
from ..errors import VQLadderError
from .compressor import SequenceCompressor
from .prior import CodePrior
from .sampling import beam_search, sample


# -- planners -----------------------------------------------------------------------------------------------------
class Verifier:
    """Validator score of (partial) move sequences for one task: +5 at the goal, -10 for a bump into a wall;
    ``dense`` adds minus the BFS distance still to go (an oracle heuristic: with it, greedy search alone
    solves the maze, so the default is the sparse verdict). Never raises on arbitrary symbols. Free: a rule,
    not a model."""

    cost = 0

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


class ValueScorer:
    """Minus the learned value's estimate of the moves still to go (``PlanValue.moves_to_go``), plus the verifier's
    verdict when one is given: log p + weight x this is a learned g + h. One model evaluation per candidate."""

    cost = 1

    def __init__(self, value, cond, verifier: Verifier | None = None):
        self.value, self.cond, self.verifier = value, torch.as_tensor(cond).long(), verifier

    def __call__(self, moves: torch.Tensor) -> torch.Tensor:
        s = -self.value.moves_to_go(moves.long(), self.cond)
        return s + self.verifier(moves) if self.verifier is not None else s


def scorer_cost(scorer) -> int:
    return 0 if scorer is None else int(getattr(scorer, "cost", 0))


class FlatPlanner:
    def __init__(self, prior: CodePrior, T: int):
        self.prior, self.T = prior, T

    def plan(self, cond, method, scorer, budget, weight=1.0, temperature=1.0, seed=0):
        c = torch.as_tensor(cond).long()
        fn = self.prior.step_fn(c)
        cost = scorer_cost(scorer)
        if method == "beam":
            res = beam_search(fn, self.T, beam_width=max(1, budget // (self.T * (1 + cost))), scorer=scorer,
                              score_weight=weight, max_evals=budget, scorer_cost=cost)
            return res.sequence.numpy(), res.evaluations
        n = budget // (self.T + cost)
        if n < 1:
            raise VQLadderError(f"budget {budget} cannot afford one sample of {self.T} moves (+ {cost} to score it)")
        g = torch.Generator().manual_seed(seed)
        seqs = sample(fn, n, self.T, temperature, generator=g)
        score = self.prior.log_prob(seqs, c.view(1, -1).expand(n, -1))
        if scorer is not None:
            score = score + weight * scorer(seqs)
        return seqs[int(score.argmax())].numpy(), n * (self.T + cost)


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
        cost = 1 + scorer_cost(scorer)  # a scored candidate is decoded (one evaluation), then scored
        if method == "beam":
            per = 1 + (cost if scorer is not None else 0)
            res = beam_search(fn, self.n_codes, beam_width=max(1, (budget - 1) // (self.n_codes * per)),
                              scorer=code_scorer, score_weight=weight, max_evals=budget - 1, scorer_cost=cost)
            return self.decode(res.sequence[None])[0].numpy(), res.evaluations + 1
        n = budget // (self.n_codes + cost)
        if n < 1:
            raise VQLadderError(f"budget {budget} cannot afford one sample of {self.n_codes} codes + decoding + scoring")
        g = torch.Generator().manual_seed(seed)
        codes = sample(fn, n, self.n_codes, temperature, generator=g)
        moves = self.decode(codes)
        score = self.prior.log_prob(codes, c.view(1, -1).expand(n, -1))
        if scorer is not None:
            score = score + weight * scorer(moves)
        return moves[int(score.argmax())].numpy(), n * (self.n_codes + cost)
