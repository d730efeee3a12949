"""The planners over the rooms maze: scorers of partial plans (the verifier, a learned value), the flat
(Decision-Transformer-style) planner over moves and the ladder planner over move codes; both count every model
evaluation against the budget: the prior's steps, the ladder's decodes, and each learned-value evaluation.

A scorer is a callable ``moves[n, t] -> score[n]`` with a ``cost``: the model evaluations one scored candidate
costs (0 for the rule-based verifier, 1 for the learned value)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import VQLadderError
from ..models.compressor import SequenceCompressor
from ..models.prior import CodePrior
from ..models.sampling import beam_search_many, greedy, sample_many
from .maze import DELTA, END, Layout, replay_many


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
        W = lay.cfg.side
        self.table = lay.move_table()
        far = len(self.dist) + 1  # an unreachable cell's distance
        self.to_go = np.full(W * W, far, dtype=np.float32)
        for (r, c), k in self.dist.items():
            self.to_go[r * W + c] = k

    def __call__(self, moves: torch.Tensor) -> torch.Tensor:
        """Every row replayed at once (``maze.replay_many``): the same verdicts as ``validate`` row by row."""
        cell, valid, reached = replay_many(self.table, self.lay.cfg.side, self.start, self.goal,
                                           np.asarray(moves.cpu() if torch.is_tensor(moves) else moves))
        s = -self.to_go[cell] if self.dense else np.zeros(len(cell), dtype=np.float32)
        s = s + np.where(reached, 5.0, np.where(valid, 0.0, -10.0))
        return torch.from_numpy(s.astype(np.float32))


class ValueScorer:
    """Minus the learned value's estimate of the moves still to go (``PlanValue.moves_to_go``), plus the verifier's
    verdict when one is given: log p + weight x this is a learned g + h (``weight`` scales the value's term
    against the verifier's). One model evaluation per candidate."""

    cost = 1

    def __init__(self, value, cond, verifier: Verifier | None = None, weight: float = 1.0):
        self.value, self.cond, self.verifier, self.weight = value, torch.as_tensor(cond).long(), verifier, weight

    def __call__(self, moves: torch.Tensor) -> torch.Tensor:
        s = -self.weight * self.value.moves_to_go(moves.long(), self.cond)
        return s + self.verifier(moves) if self.verifier is not None else s


def scorer_cost(scorer) -> int:
    return 0 if scorer is None else int(getattr(scorer, "cost", 0))


def batched_scorer(scorers: list):
    """Per-problem scorers (all None, or none None) as one ``scorer(seqs[n, t], owner[n])`` for
    ``beam_search_many``: each problem's rows are scored by its own scorer."""
    if all(s is None for s in scorers):
        return None
    if all(isinstance(s, ValueScorer) for s in scorers) and len({id(s.value) for s in scorers}) == 1:
        return _batched_value(scorers)

    def fn(seqs: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(seqs))
        for b in owner.unique().tolist():
            rows = (owner == b).nonzero()[:, 0]
            out[rows] = scorers[b](seqs[rows]).float()
        return out
    return fn


def _batched_value(scorers: list):
    """Value scorers of one learned value (one per task): every row's value in one model call, each row read with
    its own task's conditioning and weight; the verifiers' verdicts added task by task."""
    value = scorers[0].value
    conds = torch.stack([s.cond for s in scorers])
    weights = torch.tensor([float(s.weight) for s in scorers])
    verifier = batched_scorer([s.verifier for s in scorers])

    def fn(seqs: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        out = -weights[owner] * value.moves_to_go(seqs.long(), conds[owner]).float()
        return out if verifier is None else out + verifier(seqs, owner)
    return fn


def _conds(conds) -> torch.Tensor:
    return torch.as_tensor(np.stack([np.asarray(c) for c in conds])).long()


def best_of(logp: torch.Tensor, moves: torch.Tensor, scorers: list, weight: float, n: int) -> list[int]:
    """Best-of-N for ``len(scorers)`` problems of ``n`` samples each (rows ``b * n`` on are problem b's): per
    problem, the row with the highest log p (``logp[rows]``, + weight x its scorer of its ``moves``)."""
    owner = torch.arange(len(scorers)).repeat_interleave(n)
    score = logp.float()
    scorer = batched_scorer(scorers)
    if scorer is not None:
        score = score + weight * scorer(moves, owner)
    return [b * n + int(i) for b, i in enumerate(score.view(len(scorers), n).argmax(1))]


def _generators(seeds) -> list:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


class Planner:
    """What every planner offers: ``beam_many`` and ``best_of_many`` over several tasks at once, and ``plan`` for
    one task: ``(moves, evaluations)`` by ``method`` "beam" or "sample" (best of N, drawn from a generator seeded
    ``seed``) within ``budget`` model evaluations, candidates ranked by log p + ``weight`` x ``scorer``."""

    def plan(self, cond, method, scorer, budget, weight=1.0, temperature=1.0, seed=0):
        if method == "beam":
            return self.beam_many([cond], [scorer], budget, weight)[0]
        return self.best_of_many([cond], [scorer], budget, weight, temperature, [seed])[0]


class FlatPlanner(Planner):
    def __init__(self, prior: CodePrior, T: int):
        self.prior, self.T = prior, T

    @torch.no_grad()
    def beam_many(self, conds, scorers: list, budget: int, weight: float = 1.0) -> list[tuple]:
        """Beam search on several tasks at once (one model call per step for all): [(moves, evaluations)] per
        task, each as its own search would give."""
        cost = scorer_cost(scorers[0])
        res = beam_search_many(self.prior.step_fn(_conds(conds)), self.T, len(conds),
                               beam_width=max(1, budget // (self.T * (1 + cost))), scorer=batched_scorer(scorers),
                               score_weight=weight, max_evals=budget, scorer_cost=cost)
        return [(r.sequence.numpy(), r.evaluations) for r in res]

    @torch.no_grad()
    def best_of_many(self, conds, scorers: list, budget: int, weight: float = 1.0, temperature: float = 1.0,
                     seeds=(0,)) -> list[tuple]:
        """Best-of-N sampling on several tasks at once (one model call per move for all; task b draws from a
        generator seeded ``seeds[b]``, as alone): [(moves, evaluations)] per task."""
        cost = scorer_cost(scorers[0])
        n = budget // (self.T + cost)
        if n < 1:
            raise VQLadderError(f"budget {budget} cannot afford one sample of {self.T} moves (+ {cost} to score it)")
        c = _conds(conds)
        seqs = sample_many(self.prior.step_fn(c), n, self.T, _generators(seeds), temperature)
        logp = self.prior.log_prob(seqs, c.repeat_interleave(n, 0))
        return [(seqs[i].numpy(), n * (self.T + cost)) for i in best_of(logp, seqs, scorers, weight, n)]


class LadderPlanner(Planner):
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

    @torch.no_grad()
    def beam_many(self, conds, scorers: list, budget: int, weight: float = 1.0) -> list[tuple]:
        """Beam search over codes on several tasks at once: [(moves, evaluations)] per task (the winner's decode
        is the one evaluation on top)."""
        moves_scorer = batched_scorer(scorers)
        code_scorer = None if moves_scorer is None else (lambda codes, owner: moves_scorer(self.decode(codes), owner))
        cost = 1 + scorer_cost(scorers[0])  # a scored candidate is decoded (one evaluation), then scored
        per = 1 + (cost if code_scorer is not None else 0)
        res = beam_search_many(self.prior.step_fn(_conds(conds)), self.n_codes, len(conds),
                               beam_width=max(1, (budget - 1) // (self.n_codes * per)), scorer=code_scorer,
                               score_weight=weight, max_evals=budget - 1, scorer_cost=cost)
        moves = self.decode(torch.stack([r.sequence for r in res]))
        return [(m.numpy(), r.evaluations + 1) for m, r in zip(moves, res)]

    @torch.no_grad()
    def best_of_many(self, conds, scorers: list, budget: int, weight: float = 1.0, temperature: float = 1.0,
                     seeds=(0,)) -> list[tuple]:
        """Best-of-N over codes on several tasks at once (task b's generator seeded ``seeds[b]``)."""
        cost = 1 + scorer_cost(scorers[0])  # a sample is decoded (one evaluation), then scored
        n = budget // (self.n_codes + cost)
        if n < 1:
            raise VQLadderError(f"budget {budget} cannot afford one sample of {self.n_codes} codes + decoding + scoring")
        c = _conds(conds)
        codes = sample_many(self.prior.step_fn(c), n, self.n_codes, _generators(seeds), temperature)
        moves = self.decode(codes)
        logp = self.prior.log_prob(codes, c.repeat_interleave(n, 0))
        return [(moves[i].numpy(), n * (self.n_codes + cost)) for i in best_of(logp, moves, scorers, weight, n)]


# -- the ladder with a subgoal decoder -------------------------------------------------------------------------------
def closed_prior_rows(codec, cond: np.ndarray, cells: np.ndarray, codes: np.ndarray, used: np.ndarray,
                      end_code: int) -> np.ndarray:
    """Training rows of a closed-loop top prior (``SubgoalPlanner(closed_loop=True)``): for every demonstration
    and every segment j that holds moves or is the "plan ends" one, the task's conditioning with the start
    replaced by the cell segment j begins in, then the codes from j on (padded with ``end_code``): what is left
    to do, seen from where the plan stands. ``cells``/``used`` from ``room_segments``."""
    out = []
    for j in range(codes.shape[1]):
        keep = used >= j
        if not keep.any():
            break
        c = codec.with_start(cond[keep], cells[keep, j])
        rest = np.concatenate([codes[keep, j:], np.full((int(keep.sum()), j), end_code, dtype=np.int64)], 1)
        out.append(np.concatenate([c, rest], 1))
    return np.concatenate(out)


def subgoal_cond(codec, cond, cell, code: int) -> np.ndarray:
    """The subgoal decoder's prefix: the task's conditioning with the start replaced by ``cell`` (where the
    chunk begins) and the return bucket by the chunk's level-1 code (symbol ``codec.cond_vocab + code``)."""
    row = codec.with_start(cond, cell)
    row[codec.cfg.n_walls + 2] = codec.cond_vocab + int(code)
    return row


def subgoal_rows(codec, cond: np.ndarray, moves: np.ndarray, codes: np.ndarray, chunk: int) -> np.ndarray:
    """Training rows of the subgoal decoder, one per (demonstration, chunk): ``subgoal_cond`` of the cell where
    the chunk begins and its code, then the chunk's moves. Cells come from replaying the moves."""
    out = []
    for c, mv, cd in zip(cond, moves, codes):
        lay, start, goal, _ = codec.decode_cond(c)
        u = tuple(start)
        for j in range(len(cd)):
            seg = mv[j * chunk:(j + 1) * chunk]
            out.append(np.concatenate([subgoal_cond(codec, c, u, cd[j]), seg]))
            u = replay(lay, u, seg)
    return np.stack(out)


def room_segments(codec, cond: np.ndarray, moves: np.ndarray, seg_len: int, n_segs: int) -> tuple:
    """Each demonstration cut into room-to-room segments: a segment ends with the move that enters another room
    (or the plan's last move), and one longer than ``seg_len`` moves is cut into pieces of ``seg_len``. Returns
    ``segs[e, n_segs, seg_len]`` (moves, END-padded; the slot after the last segment and every later one all
    END: the "plan ends" segment), ``cells[e, n_segs, 2]`` (the cell where each segment begins) and ``used[e]``
    (segments holding moves; a plan needing more than ``n_segs - 1`` is cut there, ``used`` = n_segs) and
    ``exits[e, n_segs]`` (the move that leaves the room when a segment ends with one, else -1)."""
    room = codec.cfg.room
    segs = np.full((len(cond), n_segs, seg_len), END, dtype=np.int64)
    cells = np.zeros((len(cond), n_segs, 2), dtype=np.int64)
    used = np.zeros(len(cond), dtype=np.int64)
    exits = np.full((len(cond), n_segs), -1, dtype=np.int64)
    for e, (c, mv) in enumerate(zip(cond, moves)):
        lay, start, _, _ = codec.decode_cond(c)
        u, j, cur = tuple(start), 0, []
        cells[e, :] = u
        for m in np.asarray(mv).tolist():
            if m == END or m not in DELTA or not lay.can_move(u, m) or j >= n_segs:
                break
            v = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
            cur.append(m)
            crossed = (u[0] // room, u[1] // room) != (v[0] // room, v[1] // room)
            if crossed or len(cur) == seg_len:
                exits[e, j] = m if crossed else -1
                segs[e, j, :len(cur)], j, cur = cur, j + 1, []
                cells[e, j:] = v
            u = v
        if cur and j < n_segs:
            segs[e, j, :len(cur)], j = cur, j + 1
            cells[e, j:] = u
        used[e] = j
    return segs, cells, used, exits


DOOR_GOAL, DOOR_END = 4, 5  # door codes beside the four exits (U D L R): "to the goal", "the plan ends"


def door_codes(exits: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Codes given by the maze's rule, not learned: each segment's code is the door its room is left by (the
    exit move of the room's last segment, so every piece of one room's walk carries it), ``DOOR_GOAL`` in the
    last room, ``DOOR_END`` from the "plan ends" segment on. ``exits``/``used`` from ``room_segments``."""
    out = np.full(exits.shape, DOOR_END, dtype=np.int64)
    for e in range(len(exits)):
        cur = DOOR_GOAL
        for j in range(int(used[e]) - 1, -1, -1):
            cur = int(exits[e, j]) if exits[e, j] >= 0 else cur
            out[e, j] = cur
    return out


def segment_rows(codec, cond: np.ndarray, segs: np.ndarray, cells: np.ndarray, codes: np.ndarray,
                 used: np.ndarray) -> np.ndarray:
    """Training rows of a segment decoder: ``subgoal_cond`` of the cell where each segment begins and its code,
    then the segment's moves, for every segment that holds moves and the "plan ends" one after them."""
    out = []
    for e in range(len(cond)):
        for j in range(min(int(used[e]) + 1, segs.shape[1])):
            out.append(np.concatenate([subgoal_cond(codec, cond[e], tuple(cells[e, j]), codes[e, j]), segs[e, j]]))
    return np.stack(out)


def replay(lay, cell, moves) -> tuple:
    """The cell after ``moves`` from ``cell`` (a bump or an end stops the walk there)."""
    u = tuple(cell)
    for m in np.asarray(moves).tolist():
        if m == END or m not in DELTA or not lay.can_move(u, m):
            break
        u = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
    return u


class SubgoalPlanner(Planner):
    """The ladder with a subgoal decoder (HIQL / Director style): the top prior proposes the next level-1 code,
    a low-level model expands it to ``chunk`` moves conditioned on the layout, the goal and the cell the plan
    has reached (a ``CodePrior`` over moves whose prefix carries the code), and search branches per code.

    ``closed_loop`` (segment codes only): the top prior is a high-level policy that re-reads where the plan
    stands before each code (HIQL's pi_h(subgoal | state, goal)): its conditioning prefix carries the cell the
    codes so far have led to (``EpisodeCodec.with_start``; trained on ``closed_prior_rows``), and it predicts the next code
    from there with no code history; an open-loop prior (the default) reads the task's start once and then its
    own codes. ``end_code`` is the "plan ends" code; a plan that has ended only continues with it.

    Costs, charged like every model call: one evaluation per prior step, ``chunk`` per code expanded (greedy,
    one per move); expansions are cached by code prefix, so a beam only pays for the new code of each
    candidate, and a scorer's own cost (the value) comes on top. Closed-loop search expands (and pays for) every
    candidate it keeps, scored or not, since the next step needs the cell it reaches. The cell after a chunk
    comes from replaying its moves (the maze's rules, free, as the verifier)."""

    def __init__(self, prior: CodePrior, low: CodePrior, codec, T: int, chunk: int, segments: bool = False,
                 closed_loop: bool = False, end_code: int = -1):
        self.prior, self.low, self.codec, self.T, self.chunk = prior, low, codec, T, chunk
        self.n_codes = T // chunk
        # segments: each code stands for a segment of up to `chunk` moves (room-to-room, ``room_segments``); its
        # expansion ends at the first END and an expansion with no moves ends the plan
        self.segments = segments
        if closed_loop and not segments:
            raise VQLadderError("a closed-loop top prior needs segment codes (a plan that can end)")
        self.closed_loop = closed_loop
        self.end_code = end_code if end_code >= 0 or not closed_loop else prior.config.vocab_size - 1
        self.code_starts: list[int] = []  # where each code's moves begin in the last plan returned
        self.reached: list[tuple] = []    # per row of the last expansion: (the cell its codes lead to, ended)

    def _expand(self, cond, codes: torch.Tensor, cache: dict) -> tuple[torch.Tensor, int]:
        """codes[n, j] -> moves[n, j * chunk] (segments: moves[n, T], END-padded) for one task; returns the moves
        and the evaluations spent (new expansions, ``chunk`` each even when a segment ends sooner). Sets
        ``code_starts`` for the last row and ``reached`` for every row."""
        moves, spent = self._expand_many([cond], [cache], torch.zeros(len(codes), dtype=torch.long), codes)
        return moves, int(spent[0])

    @torch.no_grad()
    def _expand_many(self, conds: list, caches: list, owner: torch.Tensor, codes: torch.Tensor) -> tuple:
        """``_expand`` for rows of several tasks: row i belongs to task ``owner[i]`` (its ``conds`` and its
        ``caches``); returns the moves and the evaluations spent per task ``[len(conds)]``.

        Code prefixes not cached are expanded position by position, every task's new prefixes at one position in
        one batch (a code's expansion starts where its prefix's moves end, so position j waits for j - 1); each
        is charged ``chunk`` to its own task, as if expanded alone."""
        codec, ch = self.codec, self.chunk
        own, rows_in = owner.tolist(), codes.tolist()
        tasks = {b: codec.decode_cond(conds[b]) for b in set(own)}
        start = {b: tuple(t[1]) for b, t in tasks.items()}
        spent = np.zeros(len(conds), dtype=np.int64)
        for j in range(max((len(r) for r in rows_in), default=0)):
            need: dict = {}
            for b, r in zip(own, rows_in):
                key, cache = tuple(r[:j + 1]), caches[b]
                if len(key) <= j or key in cache or (b, key) in need or (j and key[:-1] not in cache):
                    continue  # (a prefix not expanded: its plan ended before it)
                seg0, u = cache[key[:-1]] if j else ([None], start[b])
                if self.segments and not seg0:
                    continue  # its plan ended: later codes are not expanded
                need[(b, key)] = subgoal_cond(codec, conds[b], u, key[-1])
            if not need:
                continue
            segs = greedy(self.low.step_fn(torch.from_numpy(np.stack(list(need.values())))), len(need), ch).tolist()
            for (b, key), seg in zip(need, segs):
                if self.segments:
                    seg = seg[:seg.index(END)] if END in seg else seg
                cache = caches[b]
                cache[key] = (seg, replay(tasks[b][0], cache[key[:-1]][1] if j else start[b], seg))
                spent[b] += ch
        rows, self.reached = [], []
        for b, r in zip(own, rows_in):
            moves, u, starts, ended = [], start[b], [], False
            for j in range(len(r)):
                seg, u = caches[b][tuple(r[:j + 1])]
                if self.segments and not seg:
                    ended = True
                    break  # "the plan ends": later codes are not expanded
                starts.append(len(moves))
                moves += seg
            if self.segments:
                moves = (moves + [END] * self.T)[:self.T]
            rows.append(moves)
            self.reached.append((u, ended))
            self.code_starts = [s for s in starts if s < self.T]
        return torch.tensor(rows, dtype=torch.long).view(len(rows), -1), spent

    @torch.no_grad()
    def state_logits(self, cond, cells) -> torch.Tensor:
        """The closed-loop prior's next-code logits from each of ``cells`` (where plans stand) -> [len(cells), v];
        ``cond`` is one task's prefix or one per cell ``[len(cells), c]``."""
        cond = np.asarray(cond)
        rows = cond if cond.ndim == 2 else np.broadcast_to(cond, (len(cells), len(cond)))
        conds = torch.from_numpy(self.codec.with_start(rows, list(cells)))
        return self.prior(conds.new_zeros(len(conds), 0), conds)[:, -1].float()

    def _closed_step_many(self, conds: list, caches: list):
        """A step function ``fn(prefix[n, t], owner[n])`` over code prefixes of several tasks for the closed-loop
        prior: each prefix expanded (cached) to the cell it leads to, the prior asked from there; an ended plan
        continues only with the end code. Memoises each prefix's log-probabilities (``fn.logp(codes, owner)``)
        so a sampled plan's log p is read back, not recomputed."""
        memo: list = [{} for _ in conds]

        def fn(prefix: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
            self._expand_many(conds, caches, owner, prefix)
            own = owner.tolist()
            rows = np.stack([np.asarray(conds[b]) for b in own]) if own else np.zeros((0, len(conds[0])), np.int64)
            logits = self.state_logits(rows, [u for u, _ in self.reached])
            ended = torch.tensor([e for _, e in self.reached], dtype=torch.bool)
            if ended.any():
                logits[ended] = float("-inf")
                logits[ended, self.end_code] = 0.0
            for b, key, lp in zip(own, prefix.tolist(), logits.log_softmax(-1)):
                memo[b][tuple(key)] = lp
            return logits

        def logp(codes: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
            return torch.tensor([sum(float(memo[b][tuple(r[:j])][c]) for j, c in enumerate(r))
                                 for b, r in zip(owner.tolist(), codes.tolist())])
        fn.logp = logp
        return fn

    def code_logits(self, cond, codes: torch.Tensor, cells) -> torch.Tensor:
        """The top prior's logits for each code of one plan, teacher-forced: ``codes[k]`` with ``cells[k]`` (the
        cell each code's segment begins in; read only when closed-loop) -> [k, v]."""
        if self.closed_loop:
            return self.state_logits(cond, [tuple(c) for c in cells])
        return self.prior(codes[None, :-1], torch.as_tensor(cond).long()[None])[0].float()

    @torch.no_grad()
    def beam_many(self, conds, scorers: list, budget: int, weight: float = 1.0) -> list[tuple]:
        """Beam search over codes on several tasks at once (one prior call and one batch of expansions per step
        for all): [(moves, evaluations)] per task, each charged as its own search would be."""
        B = len(conds)
        caches: list = [{} for _ in range(B)]
        scored = scorers[0] is not None
        fn = self._closed_step_many(conds, caches) if self.closed_loop else self.prior.step_fn(_conds(conds))
        cost = self.chunk + scorer_cost(scorers[0])  # expanding a scored candidate's new code, then scoring it
        width = max(1, budget // (self.n_codes * (1 + cost)))
        every = torch.arange(B)
        if self.closed_loop and not scored:  # every kept candidate is expanded (and paid for), unscored
            def expand_only(codes, owner):
                self._expand_many(conds, caches, owner, codes)
                return torch.zeros(len(codes))
            res = beam_search_many(fn, self.n_codes, B, beam_width=width, scorer=expand_only, score_weight=0.0,
                                   max_evals=budget, scorer_cost=cost, shortlist=1)
            moves, _ = self._expand_many(conds, caches, every, torch.stack([r.sequence for r in res]))
            return [(m.numpy(), r.evaluations) for m, r in zip(moves, res)]
        # without a scorer only the winner is expanded, at the end: the prior gets the rest of the budget
        cap = budget if scored else budget - self.n_codes * self.chunk
        if cap < self.n_codes:
            raise VQLadderError(f"budget {budget} cannot afford {self.n_codes} codes expanded to moves "
                                f"({self.n_codes * (1 + self.chunk)} evaluations)")
        moves_scorer = batched_scorer(scorers)

        def code_scorer(codes, owner):
            return moves_scorer(self._expand_many(conds, caches, owner, codes)[0], owner)
        res = beam_search_many(fn, self.n_codes, B, beam_width=width, scorer=code_scorer if scored else None,
                               score_weight=weight, max_evals=cap, scorer_cost=cost)
        moves, spent = self._expand_many(conds, caches, every, torch.stack([r.sequence for r in res]))
        # with a scorer every code of the winner was expanded (and charged) during the search
        return [(m.numpy(), r.evaluations + (0 if scored else int(k))) for m, r, k in zip(moves, res, spent)]

    @torch.no_grad()
    def best_of_many(self, conds, scorers: list, budget: int, weight: float = 1.0, temperature: float = 1.0,
                     seeds=(0,)) -> list[tuple]:
        """Best-of-N over codes on several tasks at once (task b's generator seeded ``seeds[b]``): every sample's
        codes expanded to moves, charged ``n_codes x (1 + chunk)`` (+ its scorer)."""
        per = self.n_codes * (1 + self.chunk) + scorer_cost(scorers[0])
        n = budget // per
        if n < 1:
            raise VQLadderError(f"budget {budget} cannot afford one sample of {self.n_codes} codes expanded "
                                f"to moves ({per} evaluations)")
        B = len(conds)
        caches: list = [{} for _ in range(B)]
        c = _conds(conds)
        fn = self._closed_step_many(conds, caches) if self.closed_loop else self.prior.step_fn(c)
        codes = sample_many(fn, n, self.n_codes, _generators(seeds), temperature)
        owner = torch.arange(B).repeat_interleave(n)
        moves, _ = self._expand_many(conds, caches, owner, codes)
        logp = fn.logp(codes, owner) if self.closed_loop else self.prior.log_prob(codes, c[owner])
        best = best_of(logp, moves, scorers, weight, n)
        self._expand_many(conds, caches, torch.arange(B), codes[best])  # cached, free: code_starts of the last
        return [(moves[i].numpy(), n * per) for i in best]
