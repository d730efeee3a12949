"""``vqladder.cli``: the commands end to end, their help, the bad-input table, the experiment registry."""

import os
import subprocess
import sys

import pytest
import yaml
from bad_input_cases import CASES  # noqa: E402
from helpers import ROOT, one_line_error, tiny_run_config

from vqladder.cli import main


def run_cli(*argv):
    """Run the CLI in a subprocess; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(p) for p in sys.path if p]))
    p = subprocess.run([sys.executable, "-m", "vqladder.cli", *map(str, argv)], capture_output=True, text=True,
                       env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """prepare + train + checkpoint through the CLI, once for this module."""
    d = tmp_path_factory.mktemp("cli")
    corpus = d / "c.txt"
    from conftest import make_text

    corpus.write_text(make_text(6000))
    rc, out, err = run_cli("prepare", corpus, "-t", "bpe:300", "-o", d / "data", "--block-size", "512")
    assert rc == 0, err
    assert "prepared" in out
    cfg = tiny_run_config(d / "data", d / "runs", name="cli", steps=30, ckpt_every=15)
    cfg_path = d / "tiny.yaml"
    from vqladder.config import to_dict

    cfg_path.write_text(yaml.safe_dump(to_dict(cfg)))
    rc, out, err = run_cli("train", cfg_path, "train.steps=30")
    assert rc == 0, err
    return d, cfg_path, d / "runs" / "cli"


@pytest.fixture(scope="module")
def bad_ctx(bad_context):
    return bad_context


def test_cli_end_to_end(trained, capsys):
    d, cfg_path, run = trained
    assert (run / "results.json").is_file()
    assert main(["eval", str(run), "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "held-out token acc" in out and "original" in out
    assert main(["encode", str(run), "--text", "the quick brown fox jumps over the lazy dog"]) == 0
    codes = capsys.readouterr().out.strip().splitlines()
    assert len(codes) == 1 and len(codes[0].split()) == 8
    assert main(["decode", str(run), "--codes", codes[0]]) == 0
    text = capsys.readouterr().out
    # the CLI's text is the argmax decoding of those codes through the Python API
    import torch

    from vqladder.data import load_tokenizer
    from vqladder.train import load_model

    model, _, _ = load_model(run)
    ids = model.decode(torch.tensor([[int(c) for c in codes[0].split()]])).argmax(-1)[0].tolist()
    assert text == load_tokenizer(run / "tokenizer").decode(ids).rstrip(" ") + "\n"


def test_cli_resume_completed_run(trained):
    d, cfg_path, run = trained
    rc, out, err = run_cli("train", cfg_path, "--resume")
    assert rc == 0, err
    assert "already complete" in err


def test_help_texts():
    for sub in ("prepare", "train", "eval", "encode", "decode", "demo"):
        with pytest.raises(SystemExit) as e:
            main([sub, "--help"])
        assert e.value.code == 0


def test_bad_corpus_path_subprocess(tmp_path):
    rc, out, err = run_cli("prepare", tmp_path / "nope.txt", "-o", tmp_path / "d")
    assert rc == 2
    assert "does not exist" in one_line_error(err)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("what,argv,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_table(bad_ctx, what, argv, expect):
    from bad_input_cases import run_case

    code, err = run_case(argv, bad_ctx)
    assert code == 2, (code, err)
    assert expect in one_line_error(err)
    assert not list(bad_ctx["tmp"].glob(".*tmp*"))  # nothing half-written
    assert not (bad_ctx["tmp"] / "o").exists()


def test_bad_input_docs_list_every_case():
    """docs/bad-inputs.md is printed from these cases: every case (and every generated subcommand) is in it."""

    from fuzz_cases import CONFIG_COMMANDS

    doc = (ROOT / "docs" / "bad-inputs.md").read_text()
    missing = [what for what, _, _ in CASES if f"| {what} |" not in doc]
    missing += [cmd for cmd in CONFIG_COMMANDS if f"| `vqladder {cmd}` |" not in doc]
    assert not missing, f"re-run `python tests/bad_input_cases.py > docs/bad-inputs.md`; missing: {missing}"


def test_reconstructions_mark_exactly_the_wrong_tokens():
    from vqladder.data import make_tokenizer
    from vqladder.report.console import mark_errors

    tok = make_tokenizer("bytes")
    orig, pred = list(b"the cat sat"), list(b"the cot sit")
    assert mark_errors(tok, orig, pred) == "the c⟦o⟧t s⟦i⟧t"
    assert mark_errors(tok, list(b"abcd"), list(b"axyd")) == "a⟦xy⟧d"
    assert mark_errors(tok, orig, orig) == "the cat sat"


def test_run_dispatches_on_the_experiment_key(tmp_path, capsys):
    """`vqladder run CONFIG` runs the experiment the config declares, with overrides and the command's flags."""
    import yaml

    from vqladder.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("experiment: compressor\nname: r\n")
    assert main(["run", str(cfg), "train.steps=0"]) == 2             # reached `train`'s own range check
    assert "train.steps" in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump({"name": "r"}))
    assert main(["run", str(cfg)]) == 2
    assert "does not say which experiment" in capsys.readouterr().err


def test_every_experiment_command_is_built_from_the_registry():
    """The experiments' parsers come from ``EXPERIMENTS``: each command (and each of its actions) parses a config
    and its overrides into the experiment's handler, with the registry's flags."""
    from vqladder.cli import build_parser
    from vqladder.cli.registry import EXPERIMENTS

    p = build_parser()
    for e in EXPERIMENTS.values():
        for act in e.actions or (None,):
            argv = [e.command] + ([act.name] if act else [])
            if act is None or act.config:
                a = p.parse_args(argv + ["x.yaml", "name=y"] + (["--out", "o"] if act and act.name == "build" else []))
                assert a.args == ["x.yaml", "name=y"], argv
            else:
                a = p.parse_args(argv + ["idx"] + (["--query", "q"] if act.name == "search" else []))
                assert a.index == "idx"
            assert callable(a.func) and a.func.__name__.startswith("cmd_"), argv
            for arg in (act.args if act else e.args):
                dest = arg.flags[0].lstrip("-").replace("-", "_")
                assert hasattr(a, dest), (argv, dest)
    assert p.parse_args(["video", "show", "c.yaml", "--clip", "3"]).clip == 3
    with pytest.raises(SystemExit):
        p.parse_args(["video", "show", "c.yaml", "--clip", "-1"])  # the registry's bounds are checked

