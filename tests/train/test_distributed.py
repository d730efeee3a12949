"""``vqladder.train.distributed``: torchrun / DDP with 2 gloo processes on CPU, kill -9 and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from helpers import tiny_run_config
from safetensors.torch import load_file

from vqladder.config import to_dict
from vqladder.data import prepare
from vqladder.train import find_checkpoints


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([p for p in sys.path if p]), OMP_NUM_THREADS="1")


def _write(cfg, path):
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory, ):
    from conftest import make_text

    d = tmp_path_factory.mktemp("ddp")
    (d / "c.txt").write_text(make_text(6000))
    return prepare(str(d / "c.txt"), "bytes", d / "data", block_size=512).dir


@pytest.mark.slow  # torchrun with two ranks (both kinds)
@pytest.mark.parametrize("kind", ["fsq", "vq"])
def test_ddp_two_ranks_agree_and_match_single(tmp_path, data, kind):
    steps = 60
    single = tiny_run_config(data, tmp_path, name="one", kind=kind, steps=steps, batch_size=16, out_len=16)
    double = tiny_run_config(data, tmp_path, name="two", kind=kind, steps=steps, batch_size=8, out_len=16,
                             threads=1)
    for cfg, cmd in ((single, [sys.executable, "-m", "vqladder.cli", "train"]),
                     (double, [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(29500 + os.getpid() % 1000), "-m", "vqladder.cli", "train"])):
        p = subprocess.run(cmd + [str(_write(cfg, tmp_path / f"{cfg.name}.yaml"))], env=_env(), capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
    r1 = json.loads((single.run_dir / "results.json").read_text())
    r2 = json.loads((double.run_dir / "results.json").read_text())
    assert r2["world"] == 2 and len(r2["rank_fingerprints"]) == 2
    assert r2["rank_fingerprints"][0] == r2["rank_fingerprints"][1]  # identical weights and codebooks
    assert r1["tokens_seen"] == r2["tokens_seen"]  # same global batch
    # same global batches in the same order: the runs agree up to float reduction order (FSQ has no
    # batch-dependent state; VQ's k-means init and restarts sample from rank 0's half of the batch)
    tol = 0.02 if kind == "fsq" else 0.1
    assert abs(r1["acc"] - r2["acc"]) < tol, (r1["acc"], r2["acc"])
    l1 = [json.loads(l)["train_loss"] for l in (single.run_dir / "metrics.jsonl").read_text().splitlines()
          if "train_loss" in l]
    l2 = [json.loads(l)["train_loss"] for l in (double.run_dir / "metrics.jsonl").read_text().splitlines()
          if "train_loss" in l]
    assert len(l1) == len(l2)
    if kind == "fsq":
        assert abs(l1[0] - l2[0]) < 1e-3  # the first steps are the same computation
    # only rank 0 wrote: one metrics file with unique steps
    steps_logged = [json.loads(l)["step"] for l in (double.run_dir / "metrics.jsonl").read_text().splitlines()
                    if "train_loss" in l]
    assert steps_logged == sorted(set(steps_logged))


@pytest.mark.slow  # kill -9 of a training process (two CLI runs); test_train's exact-resume tests are the fast ones
def test_sigkill_then_resume_is_bitwise_identical(tmp_path, data):
    ref = tiny_run_config(data, tmp_path, name="ref", kind="vq", steps=60, ckpt_every=10)
    p = subprocess.run([sys.executable, "-m", "vqladder.cli", "train", str(_write(ref, tmp_path / "ref.yaml"))],
                       env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    cfg = tiny_run_config(data, tmp_path, name="killed", kind="vq", steps=60, ckpt_every=10)
    path = _write(cfg, tmp_path / "killed.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "vqladder.cli", "train", str(path)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = cfg.run_dir / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and len(find_checkpoints(root)) < 3:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [c.name for c in find_checkpoints(root)]
    assert "step_000060" not in done, "the run finished before it could be killed"
    p = subprocess.run([sys.executable, "-m", "vqladder.cli", "train", str(path), "--resume"], env=_env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "resumed from" in p.stderr
    wa = load_file(str(ref.run_dir / "checkpoints" / "step_000060" / "model.safetensors"))
    wb = load_file(str(root / "step_000060" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not list(root.glob(".step_*"))


@pytest.mark.slow
def test_ddp_sigkill_then_resume_matches(tmp_path, data):
    """kill -9 the whole 2-rank torchrun job mid-run, resume it under torchrun: the final weights match an
    uninterrupted 2-rank run (within float tolerance; in practice bitwise on this CPU)."""
    port = str(29700 + os.getpid() % 200)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
              "-m", "vqladder.cli", "train"]
    ref = tiny_run_config(data, tmp_path, name="ref", kind="vq", steps=120, ckpt_every=10, batch_size=8, threads=1)
    p = subprocess.run(launch + [str(_write(ref, tmp_path / "ref.yaml"))], env=_env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    cfg = tiny_run_config(data, tmp_path, name="killed", kind="vq", steps=120, ckpt_every=10, batch_size=8, threads=1)
    path = _write(cfg, tmp_path / "killed.yaml")
    proc = subprocess.Popen(launch + [str(path)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    root = cfg.run_dir / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and len(find_checkpoints(root)) < 3:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    assert "step_000120" not in [c.name for c in find_checkpoints(root)], "finished before the kill"
    p = subprocess.run(launch + [str(path), "--resume"], env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    wa = load_file(str(ref.run_dir / "checkpoints" / "step_000120" / "model.safetensors"))
    wb = load_file(str(root / "step_000120" / "model.safetensors"))
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5), k
    r = json.loads((cfg.run_dir / "results.json").read_text())
    assert r["rank_fingerprints"][0] == r["rank_fingerprints"][1]

