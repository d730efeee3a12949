"""The shared causal decoder core: KV-cached generation equals uncached generation, for every model on it."""

import torch

from vqladder.models import CausalLM, CodePrior, LMConfig, PriorConfig, Upsampler, UpsamplerConfig
from vqladder.models.sampling import CachedStep, beam_search, greedy, sample
from vqladder.video.models import FramePredictor, PredictorConfig


def _perturbed(model):
    """Random weights everywhere (the zero-initialised output projections would make every block the identity)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def test_lm_cached_greedy_equals_uncached_token_for_token():
    lm = _perturbed(CausalLM(LMConfig(vocab_size=50, context=32, d_model=32, n_heads=2, n_layers=2)))
    prefix = torch.tensor([[3, 7, 1], [4, 4, 9]])
    step = lm.step_fn()
    cached = greedy(step, 2, 40, prefix=prefix)           # 43 > context: the window slides in jumps
    assert step.prefills >= 2 and step.extends > 30        # it did use the cache, and re-filled past the context
    seq = prefix
    for _ in range(20):                                    # within the context: the uncached window is the whole prefix
        seq = torch.cat([seq, lm(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(cached[:, :20], seq[:, 3:])


def test_cached_logits_match_the_full_pass():
    lm = _perturbed(CausalLM(LMConfig(vocab_size=20, context=64, d_model=32, n_heads=2, n_layers=3)))
    x = torch.randint(0, 20, (3, 17))
    full = lm(x)
    cache = lm.new_cache()
    parts = [lm(x[:, :5], cache), lm(x[:, 5:6], cache), lm(x[:, 6:11], cache)]   # multi-token extension too
    parts += [lm(x[:, i:i + 1], cache) for i in range(11, 17)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_prior_beam_search_and_sampling_match_uncached():
    pr = _perturbed(CodePrior(PriorConfig(vocab_size=30, cond_vocab=5, cond_len=2, context=12, d_model=32,
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


def test_upsampler_cached_generation_matches_uncached():
    up = _perturbed(Upsampler(UpsamplerConfig(vocab_size=40, parent_vocab=16, length=12, parent_len=3,
                                              d_model=32, n_heads=2, enc_layers=1, dec_layers=2)))
    parent = torch.randint(0, 16, (3, 3))
    cached = greedy(up.step_fn(parent), 3, 12)
    ctx = up.encode_parent(parent)
    plain = greedy(lambda prefix: up(parent, prefix, ctx)[:, -1], 3, 12)
    assert torch.equal(cached, plain)
    one = beam_search(up.step_fn(parent[:1]), 12, beam_width=3)    # one chunk's parent, a growing beam
    ref = beam_search(lambda prefix: up(parent[:1].expand(len(prefix), -1), prefix)[:, -1], 12, beam_width=3)
    assert torch.equal(one.beams, ref.beams)


def test_old_upsampler_checkpoints_still_load():
    cfg = UpsamplerConfig(vocab_size=10, parent_vocab=4, length=4, parent_len=1, d_model=16, n_heads=2)
    sd = {k.replace("blocks.", "dec.", 1) if k.startswith("blocks.") else k: v
          for k, v in Upsampler(cfg).state_dict().items()}
    assert any(k.startswith("dec.") for k in sd)
    Upsampler(cfg).load_state_dict(sd)                     # strict: every renamed key found


def test_video_rollout_cached_equals_frame_by_frame():
    for mode in ("latent", "pixel"):
        kw = {"vocab": 12} if mode == "latent" else {"in_dim": 6}
        fp = _perturbed(FramePredictor(PredictorConfig(mode=mode, frames=8, tokens=4, d_model=32, n_heads=2,
                                                       n_layers=2, **kw)))
        ctx = torch.randint(0, 12, (2, 3, 4)) if mode == "latent" else torch.rand(2, 3, 4, 6)
        x = ctx
        for _ in range(4):                                 # the uncached definition: re-run the whole clip
            nxt = fp(x)[:, -1:]
            x = torch.cat([x, nxt.argmax(-1) if mode == "latent" else nxt], 1)
        out = fp.rollout(ctx, 4)
        if mode == "latent":
            assert torch.equal(out, x[:, 3:])
        else:
            assert torch.allclose(out, x[:, 3:], atol=1e-5)


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
