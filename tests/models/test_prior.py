"""``vqladder.models.prior``: the code prior's conditioning prefix."""

import pytest
import torch
from helpers import fit_on_batches

from vqladder.errors import VQLadderError
from vqladder.models import (
    CodePrior,
    PriorConfig,
)
from vqladder.models.sampling import beam_search, sample


def test_prior_conditioning_prefix_is_respected():
    torch.manual_seed(0)
    prior = CodePrior(PriorConfig(vocab_size=8, cond_vocab=4, cond_len=1, context=6, d_model=32, n_heads=2, n_layers=2))

    def batch(i):  # the code sequence repeats 2 * cond (+ noise-free): a goal the plan must follow
        cond = torch.randint(0, 4, (32, 1))
        return torch.cat([cond, (2 * cond).expand(-1, 6)], 1)

    fit_on_batches(prior, batch)
    for c in range(4):
        cond = torch.tensor([c])
        res = beam_search(prior.step_fn(cond), 6, beam_width=2)
        assert res.sequence.tolist() == [2 * c] * 6
        g = torch.Generator().manual_seed(c)
        s = sample(prior.step_fn(cond), 16, 6, generator=g)
        assert (s == 2 * c).float().mean() > 0.9
    with pytest.raises(VQLadderError, match="conditioning prefix"):
        prior(torch.zeros(1, 2, dtype=torch.long))

