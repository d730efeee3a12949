"""``vqladder.models.decoder``: KV-cached generation equals uncached generation."""

import torch
from helpers import perturbed

from vqladder.models import CausalLM, CodePrior, LMConfig, PriorConfig
from vqladder.models.sampling import CachedStep, beam_search, greedy, sample


def test_lm_cached_greedy_equals_uncached_token_for_token():
    lm = perturbed(CausalLM(LMConfig(vocab_size=50, context=32, d_model=32, n_heads=2, n_layers=2)))
    prefix = torch.tensor([[3, 7, 1], [4, 4, 9]])
    step = lm.step_fn()
    cached = greedy(step, 2, 40, prefix=prefix)           # 43 > context: the window slides in jumps
    assert step.prefills >= 2 and step.extends > 30        # it did use the cache, and re-filled past the context
    seq = prefix
    for _ in range(20):                                    # within the context: the uncached window is the whole prefix
        seq = torch.cat([seq, lm(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(cached[:, :20], seq[:, 3:])


def test_cached_logits_match_the_full_pass():
    lm = perturbed(CausalLM(LMConfig(vocab_size=20, context=64, d_model=32, n_heads=2, n_layers=3)))
    x = torch.randint(0, 20, (3, 17))
    full = lm(x)
    cache = lm.new_cache()
    parts = [lm(x[:, :5], cache), lm(x[:, 5:6], cache), lm(x[:, 6:11], cache)]   # multi-token extension too
    parts += [lm(x[:, i:i + 1], cache) for i in range(11, 17)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_prior_beam_search_and_sampling_match_uncached():
    pr = perturbed(CodePrior(PriorConfig(vocab_size=30, cond_vocab=5, cond_len=2, context=12, d_model=32,
                                          n_heads=2, n_layers=2)))
    cond = torch.tensor([1, 4])
    plain = lambda prefix: pr(prefix, cond.view(1, -1).expand(prefix.shape[0], -1))[:, -1]
    a = beam_search(pr.step_fn(cond), 10, beam_width=5)
    b = beam_search(plain, 10, beam_width=5)
    assert torch.equal(a.beams, b.beams) and a.evaluations == b.evaluations
    assert abs(a.logprob - b.logprob) < 1e-4
    s1 = sample(pr.step_fn(cond), 4, 12, generator=torch.Generator().manual_seed(0))
    s2 = sample(plain, 4, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2)


def test_cached_step_falls_back_when_the_prefix_is_not_an_extension():
    calls = []

    def prefill(prefix):
        calls.append(("prefill", prefix.shape[1]))
        return torch.zeros(prefix.shape[0], 3), object()

    step = CachedStep(prefill, lambda sym, cache: (calls.append(("extend", 1)), torch.zeros(sym.shape[0], 3))[1])
    step(torch.tensor([[1, 2]]))
    step(torch.tensor([[1, 2, 0]]))                        # an extension
    step(torch.tensor([[5, 2, 0, 1]]))                     # not an extension of [1, 2, 0]
    assert calls == [("prefill", 2), ("extend", 1), ("prefill", 4)]

