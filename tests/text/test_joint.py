"""``vqladder.text.joint``: joint fine-tuning through the stage runner, loaded by the ladder."""

import torch

from vqladder.text.ladder import Ladder


def test_joint_finetuning_changes_levels_and_is_loaded(tmp_path, tiny_corpus):

    from helpers import tiny_ladder_config

    from vqladder.data import prepare
    from vqladder.models import load_model
    from vqladder.text.ladder_recipe import train_ladder

    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512, progress=False)
    cfg = tiny_ladder_config(tmp_path / "data", tmp_path / "runs", steps=10)
    cfg.joint_steps = 5
    cfg.eval.samples = 0
    train_ladder(cfg, log=lambda m: None)
    d = cfg.dir
    before, _, _ = load_model(d / "level1", "sequence_compressor")
    after = load_model(d / "joint", "joint_levels")[0].levels[0]
    diff = sum(float((a - b).abs().sum().detach()) for a, b in zip(before.parameters(), after.parameters()))
    assert diff > 0
    lad = Ladder.load(d)
    loaded = dict(lad.levels[0].named_parameters())
    assert all(torch.equal(loaded[n], p) for n, p in after.named_parameters())

