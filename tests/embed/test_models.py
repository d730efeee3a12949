"""``vqladder.embed.models``: the Matryoshka adapter, trained through the stage runner."""

import pytest
import torch
from helpers import planted_clusters

from vqladder.embed.models import prefix_neighbour_loss, train_adapter
from vqladder.errors import VQLadderError


def test_adapter_lowers_prefix_neighbour_loss(tmp_path):
    x = planted_clusters(800, 64)
    before = float(prefix_neighbour_loss(torch.from_numpy(x[600:]), torch.from_numpy(x[600:]), [8, 16, 32, 64]))
    ad, curve = train_adapter(x[:600], tmp_path / "adapter", steps=150, batch=256, prefixes=[8, 16, 32, 64])
    with torch.no_grad():
        after = float(prefix_neighbour_loss(ad(torch.from_numpy(x[600:])), torch.from_numpy(x[600:]), [8, 16, 32, 64]))
    assert curve[-1] < curve[0]
    assert after < 0.8 * before  # held-out rows too


def test_adapter_stage_refuses_other_rows_and_loads_its_own(tmp_path):
    """The adapter trains through the stage runner: a rerun on the same rows loads it (no training), a rerun on
    other rows is refused (its fingerprint is part of the stage's recorded slice), and --retrain trains again."""
    from vqladder.train.stage import set_retrain

    x = planted_clusters(300, 32)
    ad, curve = train_adapter(x, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    assert len(curve) == 4
    again, _ = train_adapter(x, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    assert all(torch.equal(p, q) for p, q in zip(ad.parameters(), again.parameters()))
    other = x[::-1].copy()
    with pytest.raises(VQLadderError, match="another config"):
        train_adapter(other, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    set_retrain(True)
    try:
        train_adapter(other, tmp_path / "a", steps=4, batch=64, prefixes=[8, 32])
    finally:
        set_retrain(False)




def test_a_qinco_started_from_faiss_rq_reconstructs_as_faiss_does():
    """``qinco.init: faiss-rq``: the codebooks are FAISS's beam-trained residual quantiser's, in QINCo's standardised
    space, so before training (codeword networks at zero) QINCo's beam encoding reconstructs vectors as well as
    FAISS's own encoding with the same codebooks and beam does."""
    faiss = pytest.importorskip("faiss")
    import numpy as np

    from vqladder.embed.models import QINCoCodec, QINCoConfig
    from vqladder.embed.stages import faiss_rq_init_state

    x = planted_clusters(n=3000, dim=16, seed=0)
    state = faiss_rq_init_state(x, stages=3, codebook_size=16, beam=4)
    mean, scale = state["mean"].numpy(), float(state["scale"])
    z = np.ascontiguousarray((x - mean) / scale, dtype=np.float32)
    rq = faiss.ResidualQuantizer(16, 3, 4)   # the same training, by FAISS directly
    rq.max_beam_size = 4
    rq.train(z)
    books = faiss.vector_to_array(rq.codebooks).reshape(3, 16, 16)
    assert np.array_equal(state["codebooks"].numpy(), books)
    faiss_mse = float(((rq.decode(rq.compute_codes(z)) * scale + mean - x) ** 2).sum(1).mean())
    model = QINCoCodec(QINCoConfig(dim=16, stages=3, codebook_size=16, hidden=8, beam=4))
    model.load_rq_state(state)
    our_mse = float(((model.decode(model.encode(x)) - x) ** 2).sum(1).mean())
    first_stage_only = float(((model.decode(model.encode(x, stages=1)) - x) ** 2).sum(1).mean())
    assert our_mse == pytest.approx(faiss_mse, rel=0.02), (our_mse, faiss_mse)
    assert our_mse < 0.8 * first_stage_only  # the later stages refine: a real residual quantiser, not stage 1 thrice
