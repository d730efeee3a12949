"""``vqladder.quantize.prefix_rvq``: coarse-to-fine prefix residual codes."""

import torch
from helpers import planted_clusters

from vqladder.embed.models import PrefixRVQ, prefix_schedule


def test_prefix_rvq_refines_coarse_to_fine():
    x = planted_clusters(1500, 64)
    q = PrefixRVQ(64, prefix_schedule(8, 64))
    q.fit(x[:1200])
    errs = []
    for k in (1, 2, 4, 8):
        sub = PrefixRVQ(64, q.prefixes[:k])
        sub.stages = torch.nn.ModuleList(list(q.stages)[:k])
        rec = sub.decode(q.encode(x[1200:])[:, :k])
        errs.append(float(((rec - x[1200:]) ** 2).sum(1).mean()))
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.6 * errs[0]

