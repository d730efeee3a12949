"""Every command, nothing lost and no traceback: generated bad inputs per subcommand, path arguments, pipes, text
encodings, concurrent writers."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bad_input_cases import numeric_flags, path_cases
from fuzz_cases import CONFIG_COMMANDS, argv_for, fuzz_overrides
from helpers import one_line_error

from vqladder.cli import main


def snapshot(*roots: Path) -> dict:
    """Every file and folder under ``roots`` with its size and mtime: what a command may not change."""
    out = {}
    for r in roots:
        for p in sorted(Path(r).rglob("*")):
            st = p.lstat()
            out[str(p)] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def call(argv) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("cmd", list(CONFIG_COMMANDS))
def test_generated_config_fuzz(cmd, tmp_path, monkeypatch):
    """0, -1, nan, inf, huge (and empty / escaping run names) for every field: each value outside its declared
    range ends in one `error:` line with exit 2 and changes nothing on disk."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("user file")
    before = snapshot(tmp_path)
    rejected = [ov for ov, rej in fuzz_overrides(cmd) if rej]
    assert len(rejected) >= 40, len(rejected)
    for ov in rejected:
        code, _, err = call(argv_for(cmd, ov, str(tmp_path / "out")))
        assert code == 2, (cmd, ov, err)
        line = one_line_error(err)
        # the line names what is wrong: the key, or a word of it (validate() speaks of "search budget multiples")
        words = {w.rstrip("s") for part in ov.split("=")[0].split(".") for w in part.split("_") if len(w) > 2}
        assert "config key" in line or any(w in line.lower() for w in words), (ov, line)
    assert snapshot(tmp_path) == before


def test_every_config_number_is_checked():
    """nan / inf / 10^12 are rejected for every numeric field of every command: no field is left unchecked."""
    for cmd in CONFIG_COMMANDS:
        for ov, rej in fuzz_overrides(cmd):
            if ov.endswith(("=nan", "=inf", "=-inf", "=1e400", "=1000000000000", "=-7", "=[nan]")):
                assert rej, (cmd, ov)
            if ov.split("=")[0].endswith("name"):
                assert rej, (cmd, ov)


@pytest.mark.slow
def test_accepted_fuzz_values_train_for_real(ctx, tmp_path):
    """The in-range values (0 = off, -1 = disabled, …) of `train` run for real without a traceback."""
    for ov in [ov for ov, rej in fuzz_overrides("train") if not rej]:
        code, _, err = call(["train", ctx["cfg"], f"out_dir={tmp_path}", f"name=a{abs(hash(ov))}", "train.steps=3",
                             "train.max_time=-1", ov])
        assert "Traceback" not in err and code == 0, (ov, err)  # an in-range value is a valid setting: it trains


def test_generated_numeric_flags():
    """Every numeric CLI flag: a value outside its declared range (or not a number) is one line, exit 2."""
    flags = numeric_flags()
    assert len(flags) >= 20
    n = 0
    for words, flag, typ in flags:
        for v in ("nan", "inf", "-7", "1e12", "abc") + (("0.5",) if typ == "int" else ()):
            code, _, err = call(words + ["RUN"] * (words[0] not in ("prepare", "demo", "video")) + [f"{flag}={v}"])
            assert code == 2, (words, flag, v, err)
            line = one_line_error(err)
            assert flag in line, (words, flag, v, line)
            n += 1
    assert n >= 120


def test_path_arguments(ctx, monkeypatch):
    monkeypatch.chdir(ctx["tmp"])
    cases = path_cases(ctx)
    before = snapshot(ctx["tmp"])
    wrong = []
    for what, argv, expect in cases:
        code, _, err = call(argv)
        lines = [l for l in err.splitlines() if l.strip() and not l.startswith("note: ")]
        if code != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or expect.lower() not in err.lower():
            wrong.append((what, code, err))
        assert snapshot(ctx["tmp"]) == before, what
    assert not wrong, "\n".join(map(str, wrong))


def test_invalid_utf8_stdin_and_text(ctx):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.run([sys.executable, "-m", "vqladder.cli", "encode", str(ctx["run"])], input=b"ok \xff\xfe bad",
                       capture_output=True, env=env, timeout=120)
    assert p.returncode == 2 and "not valid UTF-8" in one_line_error(p.stderr.decode())
    p = subprocess.run([sys.executable, "-m", "vqladder.cli", "encode", str(ctx["run"]), "--text", b"\xff\xfe"],
                       capture_output=True, env=env, timeout=120)
    assert p.returncode == 2 and "not valid UTF-8" in one_line_error(p.stderr.decode())


def test_codes_too_large_for_int64(ctx):
    code, _, err = call(["decode", ctx["run"], "--codes", " ".join(["99999999999999999999999"] * 8)])
    assert code == 2 and "code out of range" in one_line_error(err)


def test_broken_pipe_is_quiet(ctx):
    """`vqladder encode … | head -1`: the reader goes away; no BrokenPipeError traceback, no message."""
    r, w = os.pipe()
    os.close(r)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.run([sys.executable, "-m", "vqladder.cli", "encode", str(ctx["run"]), "--text", "hello " * 50],
                       stdout=w, stderr=subprocess.PIPE, env=env, timeout=120)
    os.close(w)
    err = p.stderr.decode()
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert p.returncode == 141
    assert [l for l in err.splitlines() if l.strip() and not l.startswith("#")] == []


def test_internal_error_is_one_line_with_a_log(ctx, monkeypatch):
    import vqladder.cli as cli

    def boom(a):
        from vqladder.io import claim_run_dir

        claim_run_dir(ctx["tmp"] / "runs" / "boom")
        return 1 // 0

    monkeypatch.setattr(cli, "cmd_decode", boom)
    code, _, err = call(["decode", ctx["run"], "--codes", "1"])
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError")
    log = ctx["tmp"] / "runs" / "boom" / "error.log"
    assert str(log) in lines[0] and "Traceback" in log.read_text() and "1 // 0" in log.read_text()


def test_duplicate_yaml_key_is_an_error(ctx, tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("train:\n  steps: 5\nmodel:\n  d_model: 32\ntrain:\n  steps: 1000\n")
    code, _, err = call(["train", p])
    assert code == 2 and "'train' appears twice" in one_line_error(err)


def test_bare_command_says_it_runs_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = call(["train", "model.out_len=5"])  # a bad override fails before the notice is printed
    assert code == 2 and "note:" not in err and "not divisible" in one_line_error(err)
    from vqladder.cli import build_parser
    from vqladder.cli.common import _load

    a = build_parser().parse_args(["train", "train.steps=7"])
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        cfg = _load(__import__("vqladder.text.compressor", fromlist=["RunConfig"]).RunConfig, a, "train")
    assert cfg.train.steps == 7 and "built-in defaults (7 steps) into runs/rung1" in buf.getvalue()


def test_eval_refuses_data_with_another_tokenizer(ctx, tmp_path):
    other = tmp_path / "other"
    from vqladder.data import prepare

    prepare(str(ctx["corpus"]), "bpe:300", other, block_size=512)  # same corpus, another tokenizer
    code, _, err = call(["eval", ctx["run"], "--data", other])
    assert code == 2 and ("another tokenizer" in err or "has vocab" in err)
    # the run's own data (same tokenizer files) passes
    assert call(["eval", ctx["run"], "--data", ctx["data"], "--examples", "0", "--max-chunks", "4"])[0] == 0


def test_bpe_larger_than_the_corpus_gives(tmp_path):
    (tmp_path / "c.txt").write_text("abab abab abab\n" * 20)
    code, _, err = call(["prepare", tmp_path / "c.txt", "-t", "bpe:5000", "-o", tmp_path / "d"])
    assert code == 2 and "gives only" in one_line_error(err)
    assert not (tmp_path / "d").exists()


def test_sweep_whose_cells_fail_exits_nonzero(tmp_path, tiny_corpus):
    from helpers import sweep_cfg

    from vqladder.data import prepare
    from vqladder.errors import RunFailed
    from vqladder.text.sweep import run_sweep

    prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512)
    with pytest.raises(RunFailed, match="2 of 2 sweep cells failed"):
        run_sweep(sweep_cfg(tmp_path), runner=lambda cfg_path, resume, log: 1)
    assert RunFailed.exit_code == 1


def test_second_writer_gets_one_line(ctx, tmp_path):
    run = tmp_path / "runs" / "locked"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from vqladder.io import claim_run_dir; "
                               f"claim_run_dir({str(run)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout.readline().strip() == b"held"
        shutil.copy(ctx["cfg"], run / "config.yaml")  # as a training holder would have written it
        for argv in (["train", ctx["cfg"], f"out_dir={tmp_path / 'runs'}", "name=locked"],
                     ["train", ctx["cfg"], f"out_dir={tmp_path / 'runs'}", "name=locked", "--resume"]):
            code, _, err = call(argv)
            assert code == 2, err
            assert f"in use by another vqladder process (pid {holder.pid})" in one_line_error(err)
        assert sorted(p.name for p in run.iterdir()) == [".lock", ".vqladder", "config.yaml"]  # the second wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's lock: the same command now runs
    (run / "config.yaml").unlink()
    code, _, err = call(["train", ctx["cfg"], f"out_dir={tmp_path / 'runs'}", "name=locked", "train.steps=2"])
    assert code == 0, err


def test_prepare_never_deletes_user_files(tmp_path, tiny_corpus, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    for force in ([], ["--force"]):
        code, _, err = call(["prepare", tiny_corpus, "-t", "bytes", "-o", mine, *force])
        assert code == 2 and "was not made by vqladder" in one_line_error(err)
    assert (mine / "thesis.tex").read_text() == "precious"
    # the current directory, and the corpus's own folder, are refused even when prepared-looking
    monkeypatch.chdir(mine)
    code, _, err = call(["prepare", tiny_corpus, "-t", "bytes", "-o", "."])
    assert code == 2 and "current directory" in one_line_error(err)
    code, _, err = call(["prepare", tiny_corpus, "-t", "bytes", "-o", tiny_corpus.parent])
    assert code == 2
    # --force over a prepared directory replaces only what prepare wrote
    data = tmp_path / "data"
    assert call(["prepare", tiny_corpus, "-t", "bytes", "-o", data, "--block-size", "512"])[0] == 0
    (data / "NOTES.md").write_text("my notes")
    assert call(["prepare", tiny_corpus, "-t", "bytes", "-o", data, "--block-size", "256"])[0] == 2
    assert call(["prepare", tiny_corpus, "-t", "bytes", "-o", data, "--block-size", "256", "--force"])[0] == 0
    assert (data / "NOTES.md").read_text() == "my notes"
    assert json.loads((data / "meta.json").read_text())["block_size"] == 256
    assert (tmp_path / "mine" / "thesis.tex").is_file()


def test_demo_reuses_or_refuses_and_discards_only_with_fresh(ctx, tmp_path, monkeypatch):
    import vqladder.text.demo as demo

    monkeypatch.chdir(tmp_path)  # nothing may be prepared or written in the repository
    data = str(ctx["data"])
    out = tmp_path / "runs"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        demo.run_demo(out_dir=str(out), data_dir=data, steps=2)
    run = out / "demo"
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts
    # another step count over a finished run: refused, nothing deleted
    code, _, err = call(["demo", "--out", out, "--data", data, "--steps", "3"])
    assert code == 2 and "--fresh" in one_line_error(err)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ckpts
    # the same settings: reused
    with contextlib.redirect_stdout(io.StringIO()) as o, contextlib.redirect_stderr(io.StringIO()):
        demo.run_demo(out_dir=str(out), data_dir=data, steps=2)
    assert "reusing the finished run" in o.getvalue()
    assert f"report: {run / 'report.html'}" in o.getvalue() and (run / "report.html").stat().st_size > 100_000
    # --fresh discards and retrains
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        demo.run_demo(out_dir=str(out), data_dir=data, steps=3, fresh=True)
    assert json.loads((run / "results.json").read_text())["step"] == 3
    # a folder the tool did not make is never discarded, --fresh or not
    other = tmp_path / "other" / "demo"
    other.mkdir(parents=True)
    (other / "photo.jpg").write_bytes(b"jpg")
    for fresh in ([], ["--fresh"]):
        code, _, err = call(["demo", "--out", other.parent, "--data", data, *fresh])
        assert code == 2 and "was not made by vqladder" in one_line_error(err) and "--fresh" not in err
    assert (other / "photo.jpg").read_bytes() == b"jpg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "runs"]  # nothing prepared beside


def test_plain_progress_lines_when_stderr_is_not_a_terminal(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("VQLADDER_PROGRESS_EVERY", "0")
    cfg = yaml.safe_load(Path(ctx["cfg"]).read_text())
    cfg["train"]["progress"] = True
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(cfg))
    code, _, err = call(["train", p, f"out_dir={tmp_path}", "name=prog", "train.steps=6"])
    assert code == 0, err
    lines = [l for l in err.splitlines() if l.startswith("[train]")]
    assert len(lines) == 6 and "step 6/6 (100%)" in lines[-1] and "tok/s" in lines[-1] and "ETA" in lines[-1]

