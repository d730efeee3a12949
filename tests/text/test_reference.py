"""``vqladder.text.reference``: the LM reference, its checkpoint chosen on held-back train text."""

import json

import numpy as np
from helpers import sweep_cfg

from vqladder.data import prepare


def test_lm_reference_learns_a_repetitive_corpus(tmp_path):

    from vqladder.data import WindowSampler
    from vqladder.eval.baselines import lm_bits_per_token
    from vqladder.models import CausalLM, LMConfig
    from vqladder.train import Trainer, TrainerConfig

    rep = np.frombuffer(b"the cat sat on the mat. " * 400, dtype=np.uint8).astype(np.uint16)
    lm = CausalLM(LMConfig(vocab_size=256, context=32, d_model=32, n_heads=2, n_layers=1))
    cfg = TrainerConfig(steps=60, batch_size=8, lr=1e-2, warmup=5, progress=False, eval_every=-1, ckpt_every=-1,
                        precision="fp32")
    before = lm_bits_per_token(lm, rep, 32)
    Trainer(lm, cfg, tmp_path / "lm", lambda r, w: WindowSampler(rep, 32, 8, 0, r, w)).fit()
    after = lm_bits_per_token(lm, rep, 32)
    assert before > 7 and after < 0.5


def test_lm_reference_checkpoint_is_chosen_on_held_back_train_text(tmp_path, tiny_corpus):
    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512)
    cfg = sweep_cfg(tmp_path)
    cfg.references.lm = True
    m, t = cfg.references.lm_model, cfg.references.lm_train
    m.d_model, m.n_heads, m.n_layers = 32, 2, 1
    t.steps, t.batch_size, t.eval_every, t.lr = 30, 8, 10, 3e-3
    from vqladder.data import TokenShards
    from vqladder.text.reference import train_lm_reference

    ref = train_lm_reference(m, t, TokenShards(tmp_path / "data"), 32, 16, cfg.references.dev_fraction,
                             tmp_path / "sw" / "references" / "lm")
    logged = [json.loads(l) for l in (tmp_path / "sw" / "references" / "lm" / "metrics.jsonl").read_text().splitlines()]
    dev = {r["step"]: r["val_dev_bits"] for r in logged if "val_dev_bits" in r}
    assert sorted(dev) == [10, 20, 30] and ref["lm_steps"] == min(dev, key=dev.get)
    assert ref["lm_dev_bits"] == dev[ref["lm_steps"]] and ref["lm_positions"] == "all" and 0 < ref["lm_bits"] < 8
    assert not any(k.startswith("val_bits") for r in logged for k in r)  # val never seen while training

