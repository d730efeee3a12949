"""Every `vqladder …` command the README and the docs pages document still exists: its --help works, the config
files it names are shipped, and its subcommand accepts the flags it is shown with."""

import re
import shlex
from pathlib import Path

import pytest

from vqladder.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def documented() -> list[list[str]]:
    cmds = []
    pages = [ROOT / "README.md", ROOT / "docs" / "usage.md", *sorted((ROOT / "docs" / "results").glob("*.md"))]
    text = "\n".join(p.read_text() for p in pages)
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("vqladder "):
                for part in line.split("|"):
                    part = part.strip()
                    if part.startswith("vqladder "):
                        cmds.append(shlex.split(part.replace("…", "x"))[1:])
    return cmds


CMDS = documented()


def test_the_readme_documents_commands():
    assert len([c for c in REAL if c[0] == "eval"]) >= 1 and {c[0] for c in REAL} >= {"encode", "report", "generate"}
    assert len(CMDS) >= 15 and {c[0] for c in CMDS} >= {"prepare", "train", "eval", "encode", "decode", "demo",
                                                         "report", "sweep", "train-ladder", "generate"}


@pytest.mark.parametrize("argv", CMDS, ids=[" ".join(c)[:60] for c in CMDS])
def test_documented_command_parses_and_has_help(argv, capsys):
    sub = argv[:2] if argv[0] in ("video", "embed") and len(argv) > 1 and not argv[1].startswith("-") else argv[:1]
    with pytest.raises(SystemExit) as e:
        main(sub + ["--help"])
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out
    build_parser().parse_args(argv)          # the flags shown are the flags it takes
    for arg in argv:
        if arg.startswith("configs/"):
            assert (ROOT / arg).is_file(), arg


TRAINED = {"runs/c32": "run", "runs/ladder-text": "ladder"}  # documented run directories -> the session's tiny ones
REAL = [c for c in CMDS if c[0] in ("eval", "encode", "report", "generate") and len(c) > 1 and c[1] in TRAINED]


@pytest.mark.parametrize("argv", REAL, ids=[" ".join(c)[:60] for c in REAL])
def test_documented_commands_on_a_trained_run_work_for_real(argv, ctx, capsys):
    """The documented commands that read a trained run (eval, encode, report, generate) run as shown, on the
    session's tiny run and ladder in place of the documented directory."""
    args = [str(ctx[TRAINED[a]]) if a in TRAINED else a for a in argv]
    assert main(args) == 0, capsys.readouterr().err
