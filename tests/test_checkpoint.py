"""``vqladder.checkpoint``: keep-last, a corrupt newest checkpoint falls back, a wrong kind is refused, a full disk keeps
the earlier checkpoints."""

import pytest
from helpers import tiny_run_config, tiny_trainer

from vqladder.errors import CheckpointError, VQLadderError
from vqladder.train import find_checkpoints, latest_valid_checkpoint, load_model


def test_keep_last_and_corrupt_fallback(tmp_path, data, capsys):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=8, ckpt_every=2, keep_last=2)
    tiny_trainer(cfg, data).fit()
    root = cfg.run_dir / "checkpoints"
    assert [p.name for p in find_checkpoints(root)] == ["step_000006", "step_000008"]
    w = root / "step_000008" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])  # truncate the newest
    ckpt, meta = latest_valid_checkpoint(root)
    assert ckpt.name == "step_000006"
    assert "step_000008" in capsys.readouterr().err
    model, meta, ck = load_model(cfg.run_dir)
    assert ck.name == "step_000006"
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_model(root / "step_000008")


def test_wrong_kind_checkpoint(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=2)
    tiny_trainer(cfg, data).fit()
    with pytest.raises(CheckpointError, match="not a 'planner'"):
        load_model(cfg.run_dir, expect_kind="planner")


def test_disk_full_during_checkpoint_keeps_earlier(tmp_path, data, monkeypatch):
    import errno

    import vqladder.checkpoint as ck

    cfg = tiny_run_config(data, tmp_path / "runs", steps=6, ckpt_every=2)
    real, calls = ck.save_file, [0]

    def failing_save(state, path):
        calls[0] += 1
        if calls[0] == 2:
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(state, path)

    monkeypatch.setattr(ck, "save_file", failing_save)
    with pytest.raises(VQLadderError, match="No space left on device.*earlier checkpoints are intact"):
        tiny_trainer(cfg, data).fit()
    root = cfg.run_dir / "checkpoints"
    assert [p.name for p in root.iterdir()] == ["step_000002"]  # no partial step_000004, no temp dir
    ck.verify_checkpoint(root / "step_000002")
