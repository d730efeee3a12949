"""``vqladder.models.upsampler``: conditioning that is used, local codes, the previous chunk, KV caches, old
checkpoints."""

import torch
from helpers import fit_on_batches, perturbed

from vqladder.models import (
    Upsampler,
    UpsamplerConfig,
)
from vqladder.models.sampling import beam_search, greedy


def _prev_upsampler(seed=0):
    return Upsampler(UpsamplerConfig(vocab_size=12, parent_vocab=10, length=6, parent_len=2, d_model=32, n_heads=2,
                                     enc_layers=1, dec_layers=2, prev_chunk=True, seed=seed))


def test_upsampler_uses_its_conditioning():
    torch.manual_seed(0)
    up = Upsampler(UpsamplerConfig(vocab_size=10, parent_vocab=10, length=8, parent_len=2, d_model=32, n_heads=2,
                                   enc_layers=1, dec_layers=2))

    def batch(i):  # lower = the two parent codes, each repeated 4 times
        parent = torch.randint(0, 10, (32, 2))
        return torch.cat([parent, parent.repeat_interleave(4, 1)], 1)

    fit_on_batches(up, batch, steps=200)
    parent = torch.tensor([[3, 7]])
    changed = torch.tensor([[5, 1]])
    target = parent.repeat_interleave(4, 1)
    assert float(up.log_prob(parent, target)) > float(up.log_prob(changed, target)) + 10
    a = up(parent, target[:, :4]).softmax(-1)
    b = up(changed, target[:, :4]).softmax(-1)
    assert (a - b).abs().sum(-1).mean() > 0.5  # a changed plan changes the output distribution
    from vqladder.text.ladder import greedy_upsample
    assert greedy_upsample(up, changed).tolist() == [[5] * 4 + [1] * 4]


def test_upsampler_local_codes_kv_cache_matches_recomputing_and_old_checkpoints_load(tmp_path):
    """Local code vectors are added at the right position in the cached path too, and an upsampler saved before
    ``local_codes`` existed loads as it was (no local map)."""
    from vqladder.checkpoint import save_checkpoint
    from vqladder.config import to_dict
    from vqladder.models.registry import load_model
    from vqladder.models.sampling import greedy

    torch.manual_seed(0)
    up = Upsampler(UpsamplerConfig(vocab_size=12, parent_vocab=10, length=6, parent_len=2, d_model=32, n_heads=2,
                                   prev_chunk=True)).eval()
    assert up.config.local_codes and hasattr(up, "local_out")
    with torch.no_grad():
        up.local_out.weight.normal_(0, 1.0)  # make the local path matter
    parent, prev = torch.randint(0, 10, (4, 2)), torch.randint(0, 12, (4, 6))
    step = up.step_fn(parent, prev)
    assert torch.equal(greedy(step, 4, 6), greedy(lambda p: up(parent, p, prev=prev)[:, -1], 4, 6))
    old = Upsampler(UpsamplerConfig(vocab_size=12, parent_vocab=10, length=6, parent_len=2, d_model=32, n_heads=2,
                                    local_codes=False))
    cfg = to_dict(old.config)
    del cfg["local_codes"], cfg["code_dropout"]
    save_checkpoint(tmp_path / "ck", 1, old, {}, meta={"model_config": cfg})
    loaded = load_model(tmp_path / "ck" / "step_000001", "upsampler")[0]
    assert not loaded.config.local_codes and not hasattr(loaded, "local_out")


def test_upsampler_previous_chunk_context_is_used_and_kv_cache_matches():
    from vqladder.models.sampling import greedy
    from vqladder.text.ladder import greedy_upsample

    torch.manual_seed(0)
    up = _prev_upsampler()

    def batch(i):  # lower = the previous chunk reversed (only the context can tell)
        parent = torch.randint(0, 10, (32, 2))
        prev = torch.randint(0, 12, (32, 6))
        return torch.cat([parent, prev, prev.flip(1)], 1)

    fit_on_batches(up, batch, steps=300)
    up.eval()
    b = batch(0)[:8]
    parent, prev, lower = up.split(b)
    assert float(up.log_prob(parent, lower, prev).mean()) > float(up.log_prob(parent, lower, (prev + 1) % 12).mean()) + 5
    # greedy with the KV cache = greedy recomputing the whole prefix every step, token for token
    cached = greedy_upsample(up, parent, prev)

    def uncached(prefix):
        return up(parent, prefix, prev=prev)[:, -1]
    assert torch.equal(cached, greedy(uncached, 8, 6))
    assert (cached == lower).float().mean() > 0.9
    # no previous chunk (-1s) is the learned "none" context, the same as passing None
    none = torch.full_like(prev, -1)
    assert torch.allclose(up(parent, lower[:, :3], prev=none), up(parent, lower[:, :3]), atol=1e-5)


def test_upsampler_cached_generation_matches_uncached():
    up = perturbed(Upsampler(UpsamplerConfig(vocab_size=40, parent_vocab=16, length=12, parent_len=3,
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

