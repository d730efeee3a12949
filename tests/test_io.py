"""``vqladder.io``, ownership: nothing of the user's is ever changed, for every subcommand that writes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from helpers import one_line_error

from vqladder.cli import main

TOOL_NAMES = ("config.yaml", "meta.json", "results.json", ".lock", "index.json", "metrics.jsonl", ".vqladder.txt")


def call(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


def digest(root: Path) -> dict:
    """Every path under ``root`` (links not followed) with its kind, mode and content hash."""
    out = {}
    paths = [root] + (sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [])
    for p in paths:
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(p.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = "link:" + os.readlink(p)
        else:
            what = stat.S_IFMT(st.st_mode)
        out[str(p)] = (what, stat.S_IMODE(st.st_mode))
    return out


def plant_folder(d: Path) -> None:
    d.mkdir(parents=True)
    for name in TOOL_NAMES:
        (d / name).write_text(f"the user's own {name}\n")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "notes.md").write_text("the user's notes\n")
    (d / "secret.txt").write_text("keep me\n")
    os.chmod(d / "secret.txt", 0o600)


WRITERS = [
    ("prepare", ["prepare", "{corpus}", "-t", "bytes", "-o", "{target}", "--block-size", "512"], [[], ["--force"]]),
    ("train", ["train", "{cfg}", "out_dir={parent}", "name={name}"], [[], ["--resume"]]),
    ("demo", ["demo", "--out", "{parent}", "--data", "{data}", "--steps", "2"], [[], ["--fresh"]]),
    ("sweep", ["sweep", "{cfg_sweep}", "out_dir={parent}", "name={name}", "grid.out_len=[8]", "grid.codebook_size=[256]"],
     [[], ["--retrain"]]),
    ("train-ladder", ["train-ladder", "{ladder_cfg}", "out_dir={parent}", "name={name}"], [[], ["--retrain"]]),
    ("plan-experiment", ["plan-experiment", "out_dir={parent}", "name={name}"], [[], ["--retrain"]]),
    ("variable", ["variable", "out_dir={parent}", "name={name}"], [[]]),
    ("video train", ["video", "train", "out_dir={parent}", "name={name}"], [[], ["--retrain"]]),
    ("video eval", ["video", "eval", "out_dir={parent}", "name={name}"], [[], ["--retrain", "--train"]]),
    ("embed eval", ["embed", "eval", "out_dir={parent}", "name={name}"], [[]]),
    ("embed build", ["embed", "build", "--out", "{target}", "--bytes", "4"], [[]]),
]


def _argv(template, ctx, parent, name):
    vals = {k: str(v) for k, v in ctx.items()} | {"parent": str(parent), "name": name, "target": str(parent / name)}
    return [a.format(**vals) for a in template]


FILE_WRITERS = [
    ("report -o", ["report", "{run}", "-o", "{target}"]),
    ("video generate --out", ["video", "generate", "out_dir={parent}/vid", "--out", "{target}"]),
    ("video show --out", ["video", "show", "out_dir={parent}/vid", "--out", "{target}"]),
]


def _special(kind: str, path: Path, user_file: Path) -> bool:
    if kind == "file":
        path.write_text("the user's own file\n")
        os.chmod(path, 0o600)
    elif kind == "symlink":
        path.symlink_to(user_file)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # like /dev/null
        except PermissionError:
            return False
    return True


@pytest.mark.parametrize("cmd,template,flags", WRITERS, ids=[w[0] for w in WRITERS])
def test_user_folder_at_the_output_is_never_touched(ctx, tmp_path, monkeypatch, cmd, template, flags):
    monkeypatch.chdir(tmp_path)
    name = "demo" if cmd == "demo" else "out"
    parent = tmp_path / "place"
    plant_folder(parent / name)
    if cmd == "demo":
        plant_folder(parent / "demo-x4")
    before = digest(parent)
    for extra in flags:
        code, err = call(_argv(template, ctx, parent, name) + extra)
        assert code == 2, (cmd, extra, err)
        line = one_line_error(err)
        assert "not made by vqladder" in line, (cmd, extra, line)
        for flag in ("--force", "--fresh", "--overwrite", "--retrain"):
            assert flag not in line, (cmd, line)  # a refusal never suggests a flag that would destroy the folder
        assert digest(parent) == before, (cmd, extra)


@pytest.mark.parametrize("cmd,template,flags", WRITERS, ids=[w[0] for w in WRITERS])
def test_user_file_at_the_output_is_never_touched(ctx, tmp_path, monkeypatch, cmd, template, flags):
    monkeypatch.chdir(tmp_path)
    name = "demo" if cmd == "demo" else "out"
    parent = tmp_path / "place"
    parent.mkdir()
    (parent / name).write_text("the user's file where a folder would go\n")
    before = digest(parent)
    for extra in flags:
        code, err = call(_argv(template, ctx, parent, name) + extra)
        assert code == 2, (cmd, extra, err)
        one_line_error(err)
        assert digest(parent) == before, (cmd, extra)


@pytest.mark.parametrize("kind", ["file", "symlink", "fifo", "device"])
@pytest.mark.parametrize("cmd,template", FILE_WRITERS, ids=[w[0] for w in FILE_WRITERS])
def test_file_outputs_never_replace_what_is_not_theirs(ctx, tmp_path, monkeypatch, cmd, template, kind):
    monkeypatch.chdir(tmp_path)
    parent = tmp_path / "place"
    parent.mkdir()
    user_file = parent / "elsewhere.txt"
    user_file.write_text("the file a link points at\n")
    target = parent / "out"
    if not _special(kind, target, user_file):
        pytest.skip("mknod needs root")
    before = digest(parent)
    for extra in ([], ["--overwrite"]) if kind != "file" else ([],):
        code, err = call(_argv(template, ctx, parent, "out") + extra)
        assert code == 2, (cmd, kind, extra, err)
        line = one_line_error(err)
        assert ("--overwrite" in line) == (kind == "file"), line  # only a plain file can be replaced, on request
        assert digest(parent) == before, (cmd, kind, extra)


def test_report_overwrite_keeps_the_mode_and_replaces_its_own_report(ctx, tmp_path):
    target = tmp_path / "mine.html"
    target.write_text("the user's page\n")
    os.chmod(target, 0o600)
    assert call(["report", ctx["run"], "-o", target, "--overwrite", "--chunks", "2"])[0] == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and b"vqladder-report" in target.read_bytes()[:4096]
    # a report the tool wrote is replaced without the flag; the same path as a plain user file is not
    assert call(["report", ctx["run"], "-o", target, "--chunks", "2"])[0] == 0
    target.write_text("the user's page again\n")
    assert call(["report", ctx["run"], "-o", target, "--chunks", "2"])[0] == 2
    assert target.read_text() == "the user's page again\n"


def test_sweep_never_deletes_a_user_file_in_a_cell_folder(ctx, tmp_path):
    """A sweep directory the tool made, with a cell folder that holds a user's notes and no checkpoint."""
    from helpers import sweep_cfg

    from vqladder.errors import VQLadderError
    from vqladder.io import own_dir
    from vqladder.text.sweep import expand_grid, run_cells

    cfg = sweep_cfg(tmp_path)
    own_dir(cfg.dir, "experiment")
    name, rc = expand_grid(cfg)[0]
    rc.run_dir.mkdir(parents=True)
    (rc.run_dir / "notes.md").write_text("the user's notes\n")
    before = digest(cfg.dir)
    with pytest.raises(VQLadderError, match="not made by vqladder"):
        run_cells(cfg, runner=lambda *a: pytest.fail("trained something"))
    assert digest(cfg.dir) == before
    # a cell the tool made, unfinished: started over, and a user's file in it is kept
    shutil.rmtree(rc.run_dir)
    own_dir(rc.run_dir, "run")
    (rc.run_dir / "notes.md").write_text("the user's notes\n")
    (rc.run_dir / "metrics.jsonl").write_text("{}\n")
    run_cells(cfg, runner=lambda path, resume, log: 1)
    assert (rc.run_dir / "notes.md").read_text() == "the user's notes\n" and not (rc.run_dir / "metrics.jsonl").exists()


@pytest.mark.slow  # two demo runs; test_bad_inputs' demo test covers --fresh
def test_demo_fresh_discards_only_the_tools_files(ctx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs"
    assert call(["demo", "--out", out, "--data", ctx["data"], "--steps", "2"])[0] == 0
    (out / "demo" / "notes.md").write_text("mine\n")
    assert call(["demo", "--out", out, "--data", ctx["data"], "--steps", "3", "--fresh"])[0] == 0
    assert (out / "demo" / "notes.md").read_text() == "mine\n"
    assert json.loads((out / "demo" / "results.json").read_text())["step"] == 3


def test_runs_from_before_markers_keep_working(ctx, tmp_path):
    """A run directory without the marker is recognised by its verified checkpoints (and adopted)."""
    run = tmp_path / "runs" / "old"
    shutil.copytree(ctx["run"], run)
    (run / ".vqladder").unlink()
    code, err = call(["train", ctx["cfg"], f"out_dir={tmp_path / 'runs'}", "name=old", "train.steps=32", "--resume"])
    assert code == 0, err
    assert json.loads((run / ".vqladder").read_text())["adopted"] is True
    assert json.loads((run / "results.json").read_text())["step"] == 32
    # a folder whose meta.json merely looks like a checkpoint's is not
    fake = tmp_path / "runs" / "fake"
    (fake / "checkpoints" / "step_000010").mkdir(parents=True)
    (fake / "checkpoints" / "step_000010" / "meta.json").write_text('{"kind": "sequence_compressor"}')
    (fake / "config.yaml").write_text("name: fake\n")
    code, err = call(["train", ctx["cfg"], f"out_dir={tmp_path / 'runs'}", "name=fake", "--resume"])
    assert code == 2 and "not made by vqladder" in one_line_error(err)


def test_resume_never_rewrites_the_record_of_a_run(ctx, tmp_path):
    """A refused resume, and a resume of a finished run with no more steps, leave config.yaml as it was; a resume
    with more steps extends the run and says so."""
    runs = tmp_path / "runs"
    base = ["train", ctx["cfg"], f"out_dir={runs}", "name=r", "train.steps=4"]
    assert call(base)[0] == 0
    saved = (runs / "r" / "config.yaml").read_bytes()
    results = (runs / "r" / "results.json").read_bytes()
    code, err = call(base + ["model.d_model=48", "--resume"])
    assert code == 2 and "model.d_model" in one_line_error(err)
    code, err = call(base[:-1] + ["train.steps=3", "--resume"])
    assert code == 0 and "already complete" in err
    assert (runs / "r" / "config.yaml").read_bytes() == saved and (runs / "r" / "results.json").read_bytes() == results
    code, err = call(base[:-1] + ["train.steps=6", "--resume"])
    assert code == 0 and "extending the finished run from 4 to 6 steps" in err
    assert json.loads((runs / "r" / "results.json").read_text())["step"] == 6
    assert "steps: 6" in (runs / "r" / "config.yaml").read_text()
    # without --resume a run with checkpoints is refused before config.yaml is touched
    saved = (runs / "r" / "config.yaml").read_bytes()
    code, err = call(base[:-1] + ["train.steps=9"])
    assert code == 2 and "--resume" in one_line_error(err) and (runs / "r" / "config.yaml").read_bytes() == saved


def test_data_re_prepared_under_the_same_path_is_refused(ctx, tmp_path):
    """The corpus file was edited and prepared again into the same directory with the same tokenizer spec: eval and
    resume check the data against the checksums the run recorded, and refuse; the report reads only what evaluation
    wrote into the run when training ended (on the run's own data), so it is unaffected."""
    import yaml
    from conftest import make_text

    corpus, data, runs = tmp_path / "corpus.txt", tmp_path / "data", tmp_path / "runs"
    corpus.write_text(make_text(6000))
    assert call(["prepare", corpus, "-t", "bytes", "-o", data, "--block-size", "512"])[0] == 0
    cfg = yaml.safe_load(Path(ctx["cfg"]).read_text())
    cfg["data"].update(path=str(data), corpus=str(corpus))
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert call(["train", p, f"out_dir={runs}", "name=r", "train.steps=3"])[0] == 0
    assert call(["eval", runs / "r", "--max-chunks", "2", "--examples", "0"])[0] == 0
    corpus.write_text(make_text(6000, seed=123))
    assert call(["prepare", corpus, "-t", "bytes", "-o", data, "--block-size", "512", "--force"])[0] == 0
    before = (runs / "r" / "explorer.json").read_bytes()
    for argv in (["eval", runs / "r"], ["train", p, f"out_dir={runs}", "name=r", "train.steps=5", "--resume"]):
        code, err = call(argv)
        assert code == 2 and "is not the data" in one_line_error(err), argv
    assert call(["report", runs / "r", "-o", tmp_path / "r.html"])[0] == 0
    assert (runs / "r" / "explorer.json").read_bytes() == before


def test_prepare_is_locked_and_cleans_a_killed_prepare(ctx, tmp_path):
    out = tmp_path / "d"
    assert call(["prepare", ctx["corpus"], "-t", "bytes", "-o", out, "--block-size", "512"])[0] == 0
    (out / ".prepare.tmp-99999").mkdir()  # what a kill -9 leaves
    (out / ".prepare.tmp-99999" / "train.bin").write_bytes(b"\0" * 10)
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    holder = subprocess.Popen([sys.executable, "-c", "import time; from vqladder.io import claim_run_dir; "
                               f"claim_run_dir({str(out)!r}, 'data'); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, env=env)  # another `prepare` on the same folder
    try:
        assert holder.stdout.readline().strip() == b"held"
        code, err = call(["prepare", ctx["corpus"], "-t", "bytes", "-o", out, "--block-size", "512", "--force"])
        assert code == 2 and "in use by another vqladder process" in one_line_error(err)
    finally:
        holder.kill()
        holder.wait()
    assert call(["prepare", ctx["corpus"], "-t", "bytes", "-o", out, "--block-size", "256", "--force"])[0] == 0
    assert not list(out.glob(".prepare.tmp-*"))
    assert json.loads((out / "meta.json").read_text())["block_size"] == 256


def test_globs_and_folders_read_each_real_file_once(tmp_path):
    from vqladder.data import open_corpus

    c = tmp_path / "c"
    (c / "sub").mkdir(parents=True)
    (c / "a.txt").write_text("alpha\n")
    (c / "sub" / "b.txt").write_text("beta\n")
    (c / "loop").symlink_to(c)  # a folder that links to itself
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.txt").write_text("epsilon\n")
    (c / "linked").symlink_to(tmp_path / "elsewhere")  # a symlinked folder: followed, not skipped
    assert sorted(open_corpus(str(c))) == ["alpha\n", "beta\n", "epsilon\n"]
    assert sorted(open_corpus(str(c / "**" / "*.txt"))) == ["alpha\n", "beta\n", "epsilon\n"]
    # a path whose name holds a comma or a bracket is a path, not a list or a glob
    odd = tmp_path / "odd, [1].txt"
    odd.write_text("odd\n")
    assert list(open_corpus(str(odd))) == ["odd\n"]


def test_names_stay_strings_and_home_is_expanded(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("010", "0x1F", "2024-01-01", "on"):
        code, err = call(["train", ctx["cfg"], "out_dir=~/runs", f"name={name}", "train.steps=1"])
        assert code == 0, err
        assert (tmp_path / "runs" / name / "results.json").is_file()
    assert not (tmp_path / "~").exists()


def test_bad_progress_interval_and_zero_cached_peak(ctx, tmp_path, monkeypatch):
    import yaml

    import vqladder.train.flops as F

    cfg = yaml.safe_load(Path(ctx["cfg"]).read_text())
    cfg["train"]["progress"] = True
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("VQLADDER_PROGRESS_EVERY", "often")
    code, err = call(["train", p, f"out_dir={tmp_path}", "name=prog", "train.steps=2"])
    assert code == 2 and "VQLADDER_PROGRESS_EVERY" in one_line_error(err)
    monkeypatch.setattr(F, "_cache_dir", lambda: tmp_path)
    import torch

    key = f"peak-cpu-float32-t{torch.get_num_threads()}.json"
    (tmp_path / key).write_text(json.dumps({"flops": 0.0}))
    assert F.matmul_peak(torch.device("cpu"), torch.float32, size=64, repeats=2) > 0


def test_yaml_merge_keys_and_overrides_after_flags(ctx, tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(Path(ctx["cfg"]).read_text() + "\nx-common: &common\n  steps: 2\n")
    code, err = call(["train", p])
    assert code == 2 and "unknown config key 'x-common'" in one_line_error(err)
    import yaml

    doc = yaml.safe_load(Path(ctx["cfg"]).read_text())
    text = yaml.safe_dump({k: v for k, v in doc.items() if k != "train"})
    text += "train:\n  <<: {steps: 2, batch_size: 4}\n  lr: 0.001\n  progress: false\n"
    p.write_text(text)
    code, err = call(["train", p, f"out_dir={tmp_path}", "name=merged"])
    assert code == 0, err
    assert json.loads((tmp_path / "merged" / "results.json").read_text())["step"] == 2
    code, err = call(["train", p, "--resume", f"out_dir={tmp_path}", "name=merged", "train.steps=3"])
    assert code == 0, err
    # the tool's own saved config runs with `vqladder run`
    code, err = call(["run", tmp_path / "merged" / "config.yaml", "train.steps=4", "--resume"])
    assert code == 0, err

