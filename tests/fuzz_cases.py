"""Bad inputs generated per subcommand: every numeric (and run-name) field of each command's config dataclass
fuzzed with 0, -1, nan, inf and huge values, and every path argument given a missing path, a directory, a file
where a directory belongs and an unwritable place. Used by tests/test_bad_inputs.py and by
``python tests/bad_input_cases.py`` (docs/bad-inputs.md)."""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Annotated

# subcommand (argv words) -> the config class its CONFIG.yaml + overrides build
CONFIG_COMMANDS = {
    "train": "vqladder.text.compressor:RunConfig",
    "sweep": "vqladder.text.sweep_config:SweepConfig",
    "train-ladder": "vqladder.text.ladder_config:LadderConfig",
    "plan-experiment": "vqladder.planning.config:PlanConfig",
    "variable": "vqladder.text.variable:VariableExpConfig",
    "video generate": "vqladder.video.config:VideoExpConfig",
    "video train": "vqladder.video.config:VideoExpConfig",
    "video eval": "vqladder.video.config:VideoExpConfig",
    "embed eval": "vqladder.embed.config:EmbedConfig",
    "embed build": "vqladder.embed.config:EmbedConfig",
}

VALUES = {
    int: ["0", "-1", "-7", "1000000000000"],
    float: ["0", "-1", "nan", "inf", "-inf", "1e400"],
    "list": ["[]", "[0]", "[-1]", "[nan]", "[1000000000000]"],
    "name": ["''", "../escape", "a/b", "."],
}


def config_class(cmd: str):
    mod, name = CONFIG_COMMANDS[cmd].split(":")
    return getattr(importlib.import_module(mod), name)


def _base(t):
    while typing.get_origin(t) is Annotated:
        t = typing.get_args(t)[0]
    return t


def leaves(cls, prefix: str = ""):
    """(dotted key, kind) for every int / float / list-of-numbers / run-name field, nested sections included."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        b = _base(t)
        key = prefix + f.name
        if dataclasses.is_dataclass(b):
            yield from leaves(b, key + ".")
        elif b in (int, float):
            yield key, b
        elif typing.get_origin(b) is list and _base(typing.get_args(b)[0]) in (int, float):
            yield key, "list"
        elif b is str and f.name == "name":
            yield key, "name"


def fuzz_overrides(cmd: str):
    """Every (override, rejected-by-the-config?) for ``cmd``."""
    from vqladder.config import load_config
    from vqladder.errors import VQLadderError

    cls = config_class(cmd)
    for key, kind in leaves(cls):
        for v in VALUES[kind]:
            ov = f"{key}={v}"
            try:
                load_config(cls, None, [ov])
                yield ov, False
            except VQLadderError:
                yield ov, True


def argv_for(cmd: str, ov: str, out_dir: str) -> list[str]:
    argv = cmd.split() + [f"out_dir={out_dir}", ov]
    if cmd == "embed build":
        argv += ["--out", f"{out_dir}/index"]
    return argv
