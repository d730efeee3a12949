"""``vqladder.train.optim``: which parameters Muon and AdamW get, exact resume, a time budget ending decayed."""

import pytest
import torch
from helpers import Boom, tiny_run_config, tiny_trainer

from vqladder.errors import VQLadderError
from vqladder.models import SequenceCompressor
from vqladder.train.trainer import lr_at


class _FakeClock:
    """``time.time`` for the trainer that advances a fixed amount per call: a time-budgeted run plans and stops
    the same way on an idle laptop and a loaded CI machine (the real clock made this test fail under load)."""

    def __init__(self, tick: float = 0.01):
        self.now, self.tick = 1_000_000.0, tick

    def time(self) -> float:
        self.now += self.tick
        return self.now


def test_optimizer_grouping_muon_for_hidden_matrices_only():
    """Muon gets exactly the 2-D weights of the blocks' attention and MLP layers; embeddings, heads, norms and
    quantiser projections stay with AdamW; every trainable parameter is in exactly one group."""
    from vqladder.models import CausalLM, LMConfig
    from vqladder.nn.layers import MLP, Attention
    from vqladder.train.optim import Optimizers, split_params

    comp = tiny_run_config("d", "o").model
    comp.vocab_size = 50
    for model in (CausalLM(LMConfig(vocab_size=50, context=16, d_model=32, n_heads=2, n_layers=2)),
                  SequenceCompressor(comp)):
        g = split_params(model)
        hidden = {id(p) for m in model.modules() if isinstance(m, (Attention, MLP)) for p in m.parameters()}
        assert {id(p) for p in g["muon"]} == hidden and all(p.dim() == 2 for p in g["muon"])
        names = {id(p): n for n, p in model.named_parameters()}
        assert not any("emb" in names[id(p)] or "head" in names[id(p)] for p in g["muon"])
        assert all(p.dim() < 2 for p in g["no_decay"])
        ids = [id(p) for grp in g.values() for p in grp]
        assert len(ids) == len(set(ids)) == len([p for p in model.parameters() if p.requires_grad])
        opt = Optimizers(model, "muon", 1e-3, (0.9, 0.95), 0.01)
        assert isinstance(opt.opts["muon"], torch.optim.Muon) and isinstance(opt.opts["adamw"], torch.optim.AdamW)
        assert sum(len(pg["params"]) for pg in opt.param_groups) == len(ids)
        assert "muon" not in Optimizers(model, "adamw", 1e-3, (0.9, 0.95), 0.01).opts


def test_muon_resume_is_bitwise_identical_and_a_time_budget_ends_decayed(tmp_path, data, monkeypatch):
    cfg = tiny_run_config(data, tmp_path / "a", steps=12, ckpt_every=6, optimizer="muon")
    full = tiny_trainer(cfg, data)
    full.fit()
    cfg2 = tiny_run_config(data, tmp_path / "b", steps=12, ckpt_every=6, optimizer="muon")
    with pytest.raises(Boom):
        tiny_trainer(cfg2, data, fail_after=8).fit()
    resumed = tiny_trainer(cfg2, data)
    resumed.fit(resume=True)
    for (n, p), (_, q) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(p, q), n
    # an AdamW checkpoint is not resumed as Muon (or the other way): one line
    cfg3 = tiny_run_config(data, tmp_path / "b", steps=14, ckpt_every=6, optimizer="adamw")
    with pytest.raises(VQLadderError, match="optimiser state is Muon's"):
        tiny_trainer(cfg3, data).fit(resume=True)
    # a time-budgeted Muon run still ends at the schedule's floor
    import vqladder.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "time", _FakeClock())
    cfg4 = tiny_run_config(data, tmp_path / "c", steps=1000, max_time=3.0, optimizer="muon")
    t = tiny_trainer(cfg4, data)
    t.fit()
    assert t.step == t.total_steps < 1000
    assert lr_at(t.step - 1, cfg4.train, t.total_steps) <= cfg4.train.lr * cfg4.train.min_lr_ratio * 1.05

