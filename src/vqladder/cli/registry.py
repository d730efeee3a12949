"""Experiments: the seed experiments as recipes of stages over the parts (data, models, train, eval, report).

``EXPERIMENTS`` is the registry the CLI and the config test read: each experiment's name (the ``experiment:``
key of its YAML configs), the command that runs it, its config class, and its command line: the help texts,
its actions (``video generate|train|eval|show``) and the flags beside ``CONFIG.yaml key=value …``. The CLI
builds every experiment's parser from this table (``cli.build_parser``), so an experiment is added here, not
in the CLI. A config whose ``experiment:`` names another experiment than the command it is given to is refused
with the right command; a config without the key still loads (with a one-line hint). ``vqladder run
CONFIG.yaml [key=value …]`` runs whichever experiment a config declares (training what is missing, then
evaluating), so one grammar reaches every experiment.

This module imports nothing heavy (no torch): ``vqladder --help`` reads it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Arg:
    """One command-line flag or positional: argparse's ``add_argument(*flags, help=…, **kw)``. ``num`` asks for a
    checked number: ``(type, bounds)``, e.g. ``(int, {"min": 0})`` (the CLI turns it into its checked parser)."""
    flags: tuple[str, ...]
    help: str
    kw: tuple[tuple[str, object], ...] = ()
    num: tuple | None = None


@dataclass(frozen=True)
class Action:
    """A sub-action of an experiment's command (``vqladder video eval CONFIG``); ``config``: it reads the
    experiment's CONFIG.yaml and overrides (else only its own arguments)."""
    name: str
    help: str
    args: tuple[Arg, ...] = ()
    config: bool = True


@dataclass(frozen=True)
class Experiment:
    name: str          # the ``experiment:`` key
    command: str       # ``vqladder COMMAND CONFIG.yaml``
    config: str        # "module:ClassName" of its config dataclass
    run: tuple[str, ...] = ()  # what ``vqladder run CONFIG`` calls (default: the command itself)
    help: str = ""           # one line in ``vqladder --help``
    description: str = ""    # ``vqladder COMMAND --help`` (examples included)
    args: tuple[Arg, ...] = ()        # flags beside CONFIG.yaml and the overrides
    actions: tuple[Action, ...] = ()  # sub-actions, each with its own flags (then ``args`` is unused)

    @property
    def argv(self) -> list[str]:
        return list(self.run or (self.command,))

    def config_class(self) -> type:
        module, cls = self.config.split(":")
        return getattr(importlib.import_module(module), cls)


_OUT_PNG = Arg(("--out",), "PNG path")
_RETRAIN = Arg(("--retrain",), "train again every stage whose config changed (and every stage built on it) instead of "
                               "refusing; only the tool's own files of those stages are replaced", (("action", "store_true"),))
_OVERWRITE = Arg(("--overwrite",), "replace an existing --out file that vqladder did not write (never a link, folder "
                                   "or device)", (("action", "store_true"),))
EXPERIMENTS = {e.name: e for e in (
    Experiment(
        "compressor", "train", "vqladder.text.compressor:RunConfig",
        help="train a compressor from a YAML config",
        description="Train a level-1 compressor. Example:\n"
                    "  vqladder train configs/cpu-small.yaml model.out_len=32 train.steps=500\n"
                    "Under torchrun: torchrun --nproc_per_node 2 -m vqladder.cli train CONFIG",
        args=(Arg(("--resume",), "continue the run from its newest valid checkpoint", (("action", "store_true"),)),)),
    Experiment(
        "sweep", "sweep", "vqladder.text.sweep_config:SweepConfig",
        help="compression x codebook grid of compressors, with references",
        description="Train a grid of compressors (each cell a run directory) plus the LM / zstd / unigram "
                    "references, then write sweep.csv, sweep.md and plots. Rerun the same command to resume.\n"
                    "  vqladder sweep configs/sweep_cpu.yaml budget=5m workers=2",
        args=(Arg(("--aggregate-only",), "only re-read the run directories and re-plot", (("action", "store_true"),)),
              _RETRAIN)),
    Experiment(
        "ladder", "train-ladder", "vqladder.text.ladder_config:LadderConfig",
        help="train a ladder (levels, upsamplers, prior, flat LM) and evaluate it",
        description="Train all levels (mode text: each a compressor over the tokens at its own rate; multi_exit: "
                    "one compressor whose exits are the levels; codes: level k+1 over level k's codes), one "
                    "upsampler per level, the top-level prior, a flat LM matched in parameters and training FLOPs "
                    "and (use_judge) a judge LM, then write results.md/json (per-level table, hierarchical vs flat "
                    "bits/token, generation speed and sample quality, samples) into <out_dir>/<name>/. Rerun the "
                    "same command to resume after a kill.\n"
                    "  vqladder train-ladder configs/ladder_cpu.yaml\n"
                    "  vqladder train-ladder configs/ladder_cpu.yaml name=ladder-shakespeare "
                    "data.path=data/shakespeare-bpe2048 data.corpus=../shared/data/tinyshakespeare.txt "
                    "data.tokenizer=bpe:2048",
        args=(_RETRAIN,)),
    Experiment(
        "planning", "plan-experiment", "vqladder.planning.config:PlanConfig",
        help="flat vs hierarchical planners on the rooms maze, several seeds and budgets",
        description="Generate the rooms-maze demonstrations, train the flat (Decision-Transformer-style), the "
                    "ladder and the subgoal planner per seed, search held-out layouts at several budgets, write "
                    "results.md/json and success_vs_budget.png. Resumable.\n"
                    "  vqladder plan-experiment configs/plan_cpu.yaml\n"
                    "  vqladder plan-experiment configs/plan_cpu.yaml name=plan-hard maze.rooms=4",
        args=(_RETRAIN,)),
    Experiment(
        "variable", "variable", "vqladder.text.variable:VariableExpConfig",
        help="variable-length codes (entropy / learned boundaries) vs fixed rate",
        description="Train one variable-rate compressor per boundary method (fixed | entropy | learned) and "
                    "target ratio (tokens per code) on the same windows; report held-out accuracy, achieved ratio "
                    "and bits/token with the boundary bits counted, the fixed baseline at equal bits, plots and a "
                    "boundary rendering. Resumable.\n"
                    "  vqladder variable configs/variable_cpu.yaml\n"
                    "  vqladder variable configs/variable_cpu.yaml name=variable-synth synthetic.enabled=true\n"
                    "  vqladder variable configs/variable_cpu.yaml targets=[4] methods=[fixed,learned]"),
    Experiment(
        "video", "video", "vqladder.video.config:VideoExpConfig", ("video", "eval"),
        help="pixel videos: latent vs pixel prediction, probes of each level",
        description="Small algorithmic videos with known state (balls, sprites, life, colour).\n"
                    "  vqladder video generate configs/video_cpu.yaml      clips + a preview PNG\n"
                    "  vqladder video train configs/video_cpu.yaml         level 1, level 2, both predictors\n"
                    "  vqladder video eval configs/video_cpu.yaml          tables, results.md, strip.png\n"
                    "  vqladder video show configs/video_cpu.yaml --clip 3 one held-out clip, predicted\n"
                    "Other data: data.kind=life|sprites|colour name=video-life (key=value overrides).",
        actions=(
            Action("generate", "generate (and cache) the clips, write a preview PNG", (_OUT_PNG, _OVERWRITE)),
            Action("train", "train level 1, level 2, the latent and the pixel predictor for every seed", (_RETRAIN,)),
            Action("eval", "evaluate trained seeds: prediction vs horizon, probes, times -> results.md",
                   (Arg(("--train",), "train missing stages first instead of failing", (("action", "store_true"),)),
                    _RETRAIN)),
            Action("show", "draw truth vs latent vs pixel rollouts of one held-out clip",
                   (_OUT_PNG, _OVERWRITE, Arg(("--seed",), "trained seed", (("default", 0),), (int, {"min": 0})),
                    Arg(("--clip",), "held-out clip index", (("default", 0),), (int, {"min": 0})))))),
    Experiment(
        "embed", "embed", "vqladder.embed.config:EmbedConfig", ("embed", "eval"),
        help="codes over Matryoshka embeddings: eval vs FAISS, build an index, encode, search",
        description="  vqladder embed eval configs/embed_cpu.yaml      recall vs bytes, ours vs FAISS\n"
                    "  vqladder embed build configs/embed_cpu.yaml --out runs/embed-index --bytes 16\n"
                    "  vqladder embed encode runs/embed-index --text 'To be, or not to be'\n"
                    "  vqladder embed search runs/embed-index --query 'sorting a list' -k 5",
        actions=(
            Action("eval", "the comparison table and plot"),
            Action("build", "build a searchable index of our codes",
                   (Arg(("--out",), "index directory", (("required", True),)),
                    Arg(("--bytes",), "bytes (1-byte codes) per vector, at most 256", (("default", 16),),
                        (int, {"min": 1, "max": 256})))),
            Action("encode", "texts (one per line) -> codes, coarse to fine",
                   (Arg(("index",), "index directory"), Arg(("--text",), "text (default: stdin), one text per line")),
                   config=False),
            Action("search", "nearest database texts of a query, by decoded codes",
                   (Arg(("index",), "index directory"), Arg(("--query",), "query text", (("required", True),)),
                    Arg(("-k",), "results, at most 1000", (("default", 5),), (int, {"min": 1, "max": 1000}))),
                   config=False))),
)}


def by_command(command: str) -> Experiment:
    return next(e for e in EXPERIMENTS.values() if e.command == command)
