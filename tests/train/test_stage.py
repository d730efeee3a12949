"""``vqladder.train.stage``: a changed stage is refused, retrained with --retrain, and so is what is built on it."""

import pytest

from vqladder.data import WindowSampler
from vqladder.errors import VQLadderError


def test_stage_guard_refuses_a_changed_stage_and_retrains_it_and_what_is_built_on_it(tmp_path):
    """A finished stage rerun with another config slice is refused in one line; with --retrain it is trained again
    (only its own files go), and a stage built on it (``after``) follows; an unchanged rerun is skipped."""
    import numpy as np

    from vqladder.models import CausalLM, LMConfig
    from vqladder.train import TrainerConfig
    from vqladder.train.stage import run_stage, set_retrain

    stream = np.random.default_rng(0).integers(0, 16, 4000).astype(np.uint16)
    tc = TrainerConfig(steps=3, batch_size=4, warmup=1, eval_every=-1, ckpt_every=-1, progress=False, mfu=False)

    def stage(name, width, after=(), steps=3):
        t = TrainerConfig(**{**__import__("dataclasses").asdict(tc), "steps": steps})
        return run_stage(name, tmp_path / name, CausalLM(LMConfig(vocab_size=16, context=16, d_model=width,
                                                                  n_heads=2, n_layers=1)), t,
                         lambda r, w: WindowSampler(stream, 16, 4, 0, r, w), log=lambda m: None, after=after)

    a = stage("a", 16)
    b = stage("b", 16, after=[tmp_path / "a"])
    assert stage("a", 16) == a and stage("b", 16, after=[tmp_path / "a"]) == b  # unchanged: skipped
    (tmp_path / "a" / "notes.md").write_text("mine")
    for changed in (lambda: stage("a", 32), lambda: stage("a", 16, steps=4)):
        with pytest.raises(VQLadderError, match="a was trained with another config .*--retrain"):
            changed()
    set_retrain(True)
    try:
        a2 = stage("a", 32)
    finally:
        set_retrain(False)
    assert a2["params"] != a["params"] and (tmp_path / "a" / "notes.md").read_text() == "mine"
    with pytest.raises(VQLadderError, match="before the stage it is built on \\(a\\) was retrained"):
        stage("b", 16, after=[tmp_path / "a"])
    set_retrain(True)
    try:
        stage("b", 16, after=[tmp_path / "a"])
    finally:
        set_retrain(False)
    assert stage("b", 16, after=[tmp_path / "a"])["stage"] == "b"  # now newer than a: skipped



def test_a_config_field_added_since_is_no_change_at_its_default(tmp_path):
    """A stage recorded before a config field existed (its stage.yaml lacks the key) is reused while the field is
    at its default, the behaviour it had; set to anything else, the stage is refused as changed."""
    import numpy as np
    import yaml

    from vqladder.models import CausalLM, LMConfig
    from vqladder.train import TrainerConfig
    from vqladder.train.stage import STAGE_CONFIG, run_stage

    stream = np.random.default_rng(0).integers(0, 16, 4000).astype(np.uint16)

    def stage(lr_ratio):
        t = TrainerConfig(steps=2, batch_size=4, warmup=1, eval_every=-1, ckpt_every=-1, progress=False, mfu=False,
                          min_lr_ratio=lr_ratio)
        return run_stage("s", tmp_path / "s", CausalLM(LMConfig(vocab_size=16, context=16, d_model=16, n_heads=2,
                                                                n_layers=1)), t,
                         lambda r, w: WindowSampler(stream, 16, 4, 0, r, w), log=lambda m: None)

    default = TrainerConfig().min_lr_ratio
    first = stage(default)
    saved = tmp_path / "s" / STAGE_CONFIG
    rec = yaml.safe_load(saved.read_text())
    del rec["train"]["min_lr_ratio"]   # as if recorded before the field existed
    saved.write_text(yaml.safe_dump(rec))
    assert stage(default) == first     # at its default: the same stage, skipped
    with pytest.raises(VQLadderError, match="train.min_lr_ratio differ"):
        stage(default / 2)


def test_a_partial_stage_is_not_resumed_on_a_stage_retrained_since(tmp_path):
    """A stage killed part-way (checkpoints, no results) whose upstream stage was retrained afterwards is refused,
    not resumed on inputs it did not begin with; with --retrain it starts again."""
    import numpy as np

    from vqladder.models import CausalLM, LMConfig
    from vqladder.train import TrainerConfig
    from vqladder.train.stage import MARKER, run_stage, set_retrain

    stream = np.random.default_rng(0).integers(0, 16, 4000).astype(np.uint16)

    def stage(name, width, after=()):
        t = TrainerConfig(steps=3, batch_size=4, warmup=1, eval_every=-1, ckpt_every=1, progress=False, mfu=False)
        return run_stage(name, tmp_path / name, CausalLM(LMConfig(vocab_size=16, context=16, d_model=width, n_heads=2,
                                                                  n_layers=1)), t,
                         lambda r, w: WindowSampler(stream, 16, 4, 0, r, w), log=lambda m: None, after=after)

    stage("a", 16)
    stage("b", 16, after=[tmp_path / "a"])
    (tmp_path / "b" / MARKER).unlink()          # b as if killed after its last checkpoint: partial
    set_retrain(True)
    try:
        stage("a", 32)                          # a retrained while b waits
    finally:
        set_retrain(False)
    with pytest.raises(VQLadderError, match="b was begun before the stage it is built on \\(a\\) was retrained"):
        stage("b", 16, after=[tmp_path / "a"])
    set_retrain(True)
    try:
        assert stage("b", 16, after=[tmp_path / "a"])["step"] == 3
    finally:
        set_retrain(False)
