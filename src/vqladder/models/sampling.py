"""Decoding strategies over any next-symbol model: filtered sampling and budgeted beam search.

Both take a ``step_fn(prefix[b, t]) -> logits[b, v]`` (the next symbol's logits for each prefix; ``t`` may be 0)
so the same code searches the top-level prior, an upsampler, a flat LM or a planted toy distribution.

Beam search ranks partial sequences by ``log p(prefix) + score_weight * scorer(prefix)``; ``scorer`` is
pluggable (a verifier, a reward model, a length penalty) and ``None`` means likelihood only. Every call of
``step_fn`` on one prefix counts as one model evaluation, and ``max_evals`` caps the total, so searches with
different widths can be compared at the same budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import VQLadderError

StepFn = Callable[[torch.Tensor], torch.Tensor]
Scorer = Callable[[torch.Tensor], torch.Tensor]


class CachedStep:
    """A ``StepFn`` with a KV cache, so that each generated symbol costs one position, not the whole prefix.

    ``prefill(prefix[b, t]) -> (logits[b, v], cache)`` runs a prefix from scratch; ``extend(sym[b, 1], cache) ->
    logits[b, v]`` feeds one more symbol. A call whose prefix is an earlier call's prefix plus one symbol per
    row (rows in any order, duplicated or dropped, as beam search leaves them) reorders the cache and extends
    it; any other call prefills. So ``sample`` and ``beam_search`` use it unchanged, and the evaluation count
    (one per prefix) is the same with or without the cache. ``max_len``: positions the model may hold (its
    context); past it the cache is rebuilt from the last ``max_len // 2`` symbols (a sliding window in jumps).
    """

    def __init__(self, prefill: Callable, extend: Callable, max_len: int = 0):
        self.prefill, self.extend, self.max_len = prefill, extend, max_len
        self.seq: torch.Tensor | None = None   # the last prefix seen
        self.start = 0                         # symbols of it before the cached window
        self.cache = None
        self.prefills = self.extends = 0

    def _parents(self, prefix: torch.Tensor) -> torch.Tensor | None:
        old = self.seq
        if old is None or prefix.shape[1] != old.shape[1] + 1:
            return None
        body = prefix[:, :-1]
        if body.shape == old.shape and torch.equal(body, old):
            return torch.arange(len(old), device=old.device)
        same = (body[:, None, :] == old[None, :, :]).all(-1)        # [b_new, b_old]
        if not bool(same.any(1).all()):
            return None
        return same.float().argmax(1)

    def __call__(self, prefix: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """``owner[b]`` (optional): the problem each row belongs to, when one call serves several problems at once
        (``beam_search_many``); a row's parent must then belong to the same problem, and ``prefill(prefix, owner)``
        is given it (to pick each row's conditioning)."""
        key = prefix if owner is None else torch.cat([owner.view(-1, 1).to(prefix), prefix], 1)
        parents = self._parents(key)
        full = self.max_len and prefix.shape[1] - self.start > self.max_len
        if parents is None or full:
            self.start = max(0, prefix.shape[1] - (self.max_len // 2 if full else self.max_len)) if self.max_len else 0
            rest = prefix[:, self.start:]
            logits, self.cache = self.prefill(rest) if owner is None else self.prefill(rest, owner)
            self.prefills += 1
        else:
            if not torch.equal(parents, torch.arange(len(parents), device=parents.device)):
                self.cache.reorder(parents)
            logits = self.extend(prefix[:, -1:], self.cache)
            self.extends += 1
        self.seq = key
        return logits


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Temperature, then keep the ``top_k`` most likely symbols (0 = all), then the smallest set whose
    probability reaches ``top_p`` (1.0 = all). Filtered symbols get ``-inf``."""
    if temperature <= 0:
        raise VQLadderError(f"temperature must be > 0, got {temperature} (use beam search for greedy decoding)")
    if not 0 < top_p <= 1:
        raise VQLadderError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float() / temperature
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = logits.sort(-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a symbol when the mass before it already reaches top_p (the most likely one always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


@torch.no_grad()
def sample(step_fn: StepFn, batch: int, length: int, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, prefix: torch.Tensor | None = None, generator: torch.Generator | None = None,
           device: str | torch.device = "cpu") -> torch.Tensor:
    """Sample ``length`` symbols after ``prefix`` (``[batch, t]``, may be None): returns ``[batch, length]``."""
    return sample_many(lambda p, o: step_fn(p), batch, length, [generator], temperature, top_k, top_p, prefix,
                       device)


@torch.no_grad()
def sample_many(step_fn: Callable, batch: int, length: int, generators: list, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0, prefix: torch.Tensor | None = None,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """``sample`` for ``len(generators)`` problems at once, ``batch`` rows each (rows ``b * batch`` to
    ``(b + 1) * batch - 1`` are problem b's): one ``step_fn(prefix[n, t], owner[n])`` call per symbol for all,
    each problem's symbols drawn from its own generator, so a problem gets the rows it would get alone.
    ``prefix``: ``[len(generators) * batch, t]`` or None. Returns ``[len(generators) * batch, length]``."""
    n = len(generators) * batch
    seq = prefix if prefix is not None else torch.zeros(n, 0, dtype=torch.long, device=device)
    owner = torch.arange(len(generators), device=seq.device).repeat_interleave(batch)
    start = seq.shape[1]
    for _ in range(length):
        probs = filter_logits(step_fn(seq, owner), temperature, top_k, top_p).softmax(-1)
        nxt = torch.cat([torch.multinomial(probs[b * batch:(b + 1) * batch], 1, generator=g)
                         for b, g in enumerate(generators)])
        seq = torch.cat([seq, nxt.to(seq.device)], 1)
    return seq[:, start:]


@torch.no_grad()
def greedy(step_fn: StepFn, batch: int, length: int, prefix: torch.Tensor | None = None,
           device: str | torch.device = "cpu") -> torch.Tensor:
    """Argmax decoding of ``length`` symbols after ``prefix`` ([batch, t] or None): returns [batch, length]."""
    seq = prefix if prefix is not None else torch.zeros(batch, 0, dtype=torch.long, device=device)
    start = seq.shape[1]
    for _ in range(length):
        seq = torch.cat([seq, step_fn(seq).argmax(-1, keepdim=True).to(seq.device)], 1)
    return seq[:, start:]


@dataclass
class BeamResult:
    sequence: torch.Tensor      # [length] the best sequence
    score: float                # its ranking score (log-prob + score_weight * scorer)
    logprob: float              # its log-probability under the model (nats)
    evaluations: int            # step_fn prefixes evaluated
    beams: torch.Tensor         # [k, length] final beams, best first
    beam_scores: torch.Tensor   # [k]


@torch.no_grad()
def beam_search(step_fn: StepFn, length: int, beam_width: int = 4, scorer: Scorer | None = None,
                score_weight: float = 1.0, max_evals: int = 0, prefix: torch.Tensor | None = None,
                shortlist: int = 0, scorer_cost: int = 0, device: str | torch.device = "cpu") -> BeamResult:
    """Best ``length``-symbol continuation of ``prefix`` (``[t]`` or None) by beam search.

    With a ``scorer``, the ``shortlist`` (default 4 x width; -1 = all) most likely extensions are scored and
    the best ``beam_width`` by ``log p + score_weight * scorer`` are kept. ``scorer_cost`` is the number of
    model evaluations one scored candidate costs (e.g. 1 when the scorer must decode codes with a model; 0
    for a free verifier). ``max_evals`` > 0 caps the total evaluations (``step_fn`` prefixes + scorer costs):
    each step spends at most its share of what is left, narrowing the beam and the shortlist (never below
    1); a budget that cannot afford one greedy pass is an error. One problem of ``beam_search_many``.
    """
    pre = None if prefix is None else prefix.view(1, -1)
    return beam_search_many(lambda p, o: step_fn(p), length, 1, beam_width,
                            None if scorer is None else (lambda s, o: scorer(s)), score_weight, max_evals, pre,
                            shortlist, scorer_cost, device)[0]


@torch.no_grad()
def beam_search_many(step_fn: Callable, length: int, n_problems: int, beam_width: int = 4,
                     scorer: Callable | None = None, score_weight: float = 1.0, max_evals: int = 0,
                     prefix: torch.Tensor | None = None, shortlist: int = 0, scorer_cost: int = 0,
                     device: str | torch.device = "cpu") -> list[BeamResult]:
    """``beam_search`` on ``n_problems`` independent problems at once, one model call per step for all of them:
    ``step_fn(prefix[n, t], owner[n]) -> logits[n, v]`` and ``scorer(seqs[n, t], owner[n]) -> [n]``, where
    ``owner`` names each row's problem; ``prefix`` is ``[n_problems, t]`` (or None). Each problem is searched
    exactly as ``beam_search`` would search it alone (its own beam, shortlist and ``max_evals``), so every
    problem spends the same evaluations; returns one ``BeamResult`` per problem."""
    if length < 1:
        raise VQLadderError(f"beam search length must be >= 1, got {length}")
    if beam_width < 1:
        raise VQLadderError(f"beam width must be >= 1, got {beam_width}")
    per_greedy = 1 + (scorer_cost if scorer is not None else 0)
    if max_evals and max_evals < length * per_greedy:
        raise VQLadderError(f"search budget of {max_evals} model evaluations cannot decode {length} symbols "
                            f"(needs at least {length * per_greedy})")
    B = n_problems
    pre = prefix if prefix is not None else torch.zeros(B, 0, dtype=torch.long, device=device)
    seqs = pre.view(B, 1, -1)                                  # [B, live, t]
    logp = torch.zeros(B, 1, device=seqs.device)
    rank = logp.clone()
    evals = 0
    for t in range(length):
        width = beam_width
        n_short_cap = None
        if max_evals:
            allow = (max_evals - evals) // (length - t)  # this step's share of the remaining budget
            width = max(1, min(beam_width, allow // per_greedy))
            if seqs.shape[1] > width:
                seqs, logp = seqs[:, :width], logp[:, :width]  # already sorted best first
            if scorer is not None and scorer_cost:
                n_short_cap = max(width, (allow - seqs.shape[1]) // scorer_cost)
        live = seqs.shape[1]
        owner = torch.arange(B, device=seqs.device).repeat_interleave(live)
        logits = step_fn(seqs.reshape(B * live, -1), owner).float()
        evals += live
        lp = F.log_softmax(logits, -1).view(B, live, -1)       # [B, live, v]
        cand = (logp[:, :, None] + lp).reshape(B, -1)          # [B, live * v]
        v = lp.shape[-1]
        if scorer is None:
            n_short = width
        else:
            n_short = cand.shape[1] if shortlist < 0 else (shortlist or width * 4)
            if n_short_cap is not None:
                n_short = min(n_short, n_short_cap)
        n_short = max(1, min(cand.shape[1], max(n_short, width)))
        short = cand.topk(n_short, dim=1).indices              # [B, n_short]
        parents, syms = short // v, short % v
        new = torch.cat([seqs.gather(1, parents[:, :, None].expand(-1, -1, seqs.shape[2])), syms[:, :, None]], 2)
        new_logp = cand.gather(1, short)
        rank = new_logp.clone()
        if scorer is not None:
            owner = torch.arange(B, device=seqs.device).repeat_interleave(n_short)
            got = scorer(new[:, :, pre.shape[1]:].reshape(B * n_short, -1), owner)
            rank = rank + score_weight * got.float().to(rank.device).view(B, n_short)
            evals += scorer_cost * n_short
        order = rank.argsort(dim=1, descending=True)[:, :width]
        seqs = new.gather(1, order[:, :, None].expand(-1, -1, new.shape[2]))
        logp, rank = new_logp.gather(1, order), rank.gather(1, order)
    body = seqs[:, :, pre.shape[1]:]
    return [BeamResult(body[b, 0], float(rank[b, 0]), float(logp[b, 0]), evals, body[b], rank[b]) for b in range(B)]
