"""Experiments: the seed experiments as recipes of stages over the parts (data, models, train, eval, report).

``EXPERIMENTS`` is the registry the CLI and the config test read: each experiment's name (the ``experiment:``
key of its YAML configs), the command that runs it and its config class. A config whose ``experiment:`` names
another experiment than the command it is given to is refused with the right command; a config without the
key still loads (with a one-line hint). ``vqladder run CONFIG.yaml [key=value …]`` runs whichever experiment a
config declares (training what is missing, then evaluating), so one grammar reaches every experiment.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Experiment:
    name: str          # the ``experiment:`` key
    command: str       # ``vqladder COMMAND CONFIG.yaml``
    config: str        # "module:ClassName" of its config dataclass
    run: tuple[str, ...] = ()  # what ``vqladder run CONFIG`` calls (default: the command itself)

    @property
    def argv(self) -> list[str]:
        return list(self.run or (self.command,))

    def config_class(self) -> type:
        module, cls = self.config.split(":")
        return getattr(importlib.import_module(module), cls)


EXPERIMENTS = {e.name: e for e in (
    Experiment("compressor", "train", "vqladder.experiments.rung1:RunConfig"),
    Experiment("sweep", "sweep", "vqladder.experiments.sweep:SweepConfig"),
    Experiment("ladder", "train-ladder", "vqladder.experiments.ladder:LadderConfig"),
    Experiment("planning", "plan-experiment", "vqladder.experiments.planning:PlanConfig"),
    Experiment("variable", "variable", "vqladder.experiments.variable:VariableExpConfig"),
    Experiment("video", "video", "vqladder.experiments.video:VideoExpConfig", ("video", "eval")),
    Experiment("embed", "embed", "vqladder.experiments.matryoshka:EmbedConfig", ("embed", "eval")),
)}


def by_command(command: str) -> Experiment:
    return next(e for e in EXPERIMENTS.values() if e.command == command)
