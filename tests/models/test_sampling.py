"""``vqladder.models.sampling``: beam search, budgets, top-k / top-p."""

import itertools
import math

import pytest
import torch

from vqladder.errors import VQLadderError
from vqladder.models.sampling import beam_search, filter_logits, sample


def _planted_table():
    """A 3-symbol, 3-step distribution where greedy decoding is not the most likely sequence."""
    def fn(prefix):
        rows = []
        for p in prefix.tolist():
            if len(p) == 0:
                rows.append([0.6, 0.4, 0.0])          # greedy takes 0 …
            elif p[0] == 0:
                rows.append([0.34, 0.33, 0.33])       # … then everything is flat
            else:
                rows.append([0.0, 0.0, 1.0])          # 1 is followed by certain 2s: p(1,2,2) = 0.4
        return torch.tensor(rows).clamp_min(1e-9).log()
    return fn


def test_beam_search_finds_the_best_sequence_greedy_misses():
    fn = _planted_table()
    greedy = beam_search(fn, 3, beam_width=1)
    best = beam_search(fn, 3, beam_width=3)
    # exhaustive check
    scores = {s: sum(float(fn(torch.tensor([s[:i]]))[0, s[i]]) for i in range(3))
              for s in itertools.product(range(3), repeat=3)}
    top = max(scores, key=scores.get)
    assert tuple(best.sequence.tolist()) == top == (1, 2, 2)
    assert tuple(greedy.sequence.tolist()) != top
    assert best.logprob == pytest.approx(math.log(0.4), rel=1e-4)


def test_beam_search_respects_budget_and_scorer():
    fn = _planted_table()
    for budget in (3, 4, 5, 7, 9):
        res = beam_search(fn, 3, beam_width=3, max_evals=budget)
        assert res.evaluations <= budget
    with pytest.raises(VQLadderError, match="budget"):
        beam_search(fn, 3, beam_width=3, max_evals=2)
    # a scorer that rewards symbol 0 everywhere overrides the likelihood
    res = beam_search(fn, 3, beam_width=3, scorer=lambda s: (s == 0).float().sum(1) * 100)
    assert res.sequence.tolist() == [0, 0, 0]


def test_filter_logits_top_k_top_p():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    p = logits.softmax(-1)[0]
    kept = ~torch.isinf(filter_logits(logits, top_p=float(p[0]) + 0.01)[0])
    assert kept.tolist() == [True, True, False, False]
    g = torch.Generator().manual_seed(0)
    out = sample(lambda pre: logits.expand(pre.shape[0], -1), 64, 5, top_k=1, generator=g)
    assert (out == 0).all()



def _cond_prior():
    """A tiny prior whose conditioning decides the answer: trained (40 steps) on codes (c0 + t c1) mod 6."""
    from vqladder.models import CodePrior, PriorConfig

    torch.manual_seed(0)
    prior = CodePrior(PriorConfig(vocab_size=6, cond_vocab=5, cond_len=2, context=8, d_model=16, n_heads=2, n_layers=2))
    opt = torch.optim.Adam(prior.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        c = torch.randint(0, 5, (64, 2), generator=g)
        codes = (c[:, :1] + torch.arange(6) * c[:, 1:]) % 6
        noise = torch.rand(64, 6, generator=g) < 0.3
        codes = torch.where(noise, torch.randint(0, 6, (64, 6), generator=g), codes)
        loss, _ = prior.loss(torch.cat([c, codes], 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return prior.eval()


@pytest.mark.parametrize("scored", [False, True])
def test_beam_search_many_searches_each_problem_as_it_would_alone(scored):
    """Several problems in one search (one KV-cached model call per step for all): each problem gets the beams,
    scores and evaluations its own search gives, even where two problems' prefixes are the same symbols (the
    cache must keep each row with its own problem's conditioning)."""
    from vqladder.models.sampling import beam_search_many

    prior = _cond_prior()
    conds = torch.tensor([[0, 1], [0, 2], [4, 2], [0, 1], [3, 3], [1, 0]])  # 0 1 ... and 0 2 ... share a prefix
    bonus = torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5, 0.0])  # a scorer that differs per problem

    def score(seqs, b):
        return (seqs == 2).float().sum(1) * bonus[b] - (seqs == 5).float().sum(1)
    kw = dict(beam_width=3, max_evals=40, scorer_cost=1 if scored else 0)
    many = beam_search_many(prior.step_fn(conds), 6, len(conds),
                            scorer=(lambda s, o: score(s, o)) if scored else None, **kw)
    for b, got in enumerate(many):
        alone = beam_search(prior.step_fn(conds[b]), 6,
                            scorer=(lambda s, b=b: score(s, torch.full((len(s),), b))) if scored else None, **kw)
        assert torch.equal(got.beams, alone.beams) and got.evaluations == alone.evaluations <= 40
        assert got.score == pytest.approx(alone.score, abs=1e-5) and got.logprob == pytest.approx(alone.logprob, abs=1e-5)
    assert not torch.equal(many[0].beams, many[1].beams)  # the conditioning matters, so the check can fail


def test_sample_many_draws_each_problem_from_its_own_generator():
    """Each problem's rows are the ones ``sample`` draws for it alone with the same generator seed."""
    from vqladder.models.sampling import sample_many

    prior = _cond_prior()
    conds = torch.tensor([[0, 1], [4, 2], [2, 2]])
    gens = [torch.Generator().manual_seed(s) for s in (5, 6, 7)]
    got = sample_many(prior.step_fn(conds), 4, 7, gens, temperature=1.5)  # one conditioning per problem
    for b, s in enumerate((5, 6, 7)):
        alone = sample(prior.step_fn(conds[b]), 4, 7, temperature=1.5, generator=torch.Generator().manual_seed(s))
        assert torch.equal(got[4 * b:4 * b + 4], alone)
    assert not torch.equal(got[:4], got[4:8])
