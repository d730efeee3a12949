"""The command line's parser, built in one place: the fixed subcommands here, every experiment's from the
registry (``registry.EXPERIMENTS``)."""

from __future__ import annotations

import argparse
import sys

from .domains import cmd_embed, cmd_plan, cmd_plan_experiment, cmd_video  # noqa: F401
from .text import (  # noqa: F401
    cmd_decode,
    cmd_demo,
    cmd_encode,
    cmd_eval,
    cmd_generate,
    cmd_ladder_decode,
    cmd_ladder_encode,
    cmd_prepare,
    cmd_report,
    cmd_run,
    cmd_sweep,
    cmd_train,
    cmd_train_ladder,
    cmd_variable,
)


def _num(typ, **check):
    """An argparse type: ``typ`` within a declared range (the same :class:`config.Check` the configs use)."""
    import math

    from ..config import Check

    c = Check(**check)

    def parse(text: str):
        try:
            v = typ(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if typ is int else 'a number'}, got {text!r}")
        if (typ is float and not math.isfinite(v)) or not c.ok(v):
            raise argparse.ArgumentTypeError(f"must be {c.describe()}, got {text!r}")
        if abs(v) > 2**31 - 1:
            raise argparse.ArgumentTypeError(f"must be at most {2**31 - 1} in size, got {text!r}")
        return v

    parse.__name__ = typ.__name__
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like every other vqladder error."""

    def error(self, message):
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vqladder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="SUBCOMMAND", parser_class=_Parser)

    s = sub.add_parser("prepare", help="tokenise a corpus into train/val shards",
                       description="Tokenise a corpus into train/val memmap shards + meta.json + tokenizer/.")
    s.add_argument("corpus", help="builtin | FILE | FOLDER | GLOB | hf:NAME[:SPLIT] (several joined with ',')")
    s.add_argument("--tokenizer", "-t", default="bpe:1024", help="bytes | bpe:N | cl100k_base | o200k_base | gpt2")
    s.add_argument("--out", "-o", required=True, help="output data directory")
    s.add_argument("--val-every", type=_num(int, min=2), default=10,
                   help="every N-th block of text goes to val (10%%); a BPE is fitted on the other blocks only")
    s.add_argument("--block-size", type=_num(int, min=1), default=16384,
                   help="characters per split block: every --val-every-th block is held out (smaller for tiny corpora)")
    s.add_argument("--force", action="store_true", help="rebuild an existing data directory")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("eval", help="held-out metrics of a trained run")
    s.add_argument("run", help="run directory (newest valid checkpoint) or a checkpoint directory")
    s.add_argument("--data", help="data directory (default: the one the run was trained on)")
    s.add_argument("--split", default="val", choices=["val", "train"])
    s.add_argument("--max-chunks", type=_num(int, min=1, allow=(-1,)), default=-1, help="chunks to evaluate; -1 = all")
    s.add_argument("--examples", type=_num(int, min=0, max=1000), default=3, help="reconstructions to print (at most 1000)")
    s.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    s.add_argument("--gist", action="store_true",
                   help="add embedding gist metrics (semantic similarity, retrieval); needs the [gist] extra")
    s.add_argument("--embed-model", default="minilm", help="sentence-transformers model path (default: offline MiniLM)")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("run", help="run the experiment a config declares (experiment: …), whatever it is",
                       description="Run CONFIG.yaml with the command of the experiment it declares "
                                   "(experiment: compressor | sweep | ladder | planning | variable | video | embed); "
                                   "dotted key=value overrides follow.")
    s.add_argument("config", help="a YAML config with an experiment: key")
    s.add_argument("overrides", nargs=argparse.REMAINDER, help="key.sub=value overrides and the command's own flags")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("report", help="one self-contained HTML page for a run, sweep or experiment directory",
                       description="Write a self-contained HTML report (opens from disk, no network): summary, "
                                   "training curves, held-out reconstructions with wrong tokens marked and the code "
                                   "explorer for a run; the rate-distortion plot for a sweep; tables and plots for "
                                   "other experiments.")
    s.add_argument("path", help="run, sweep or experiment directory")
    s.add_argument("-o", "--output", help="HTML file to write (default: PATH/report.html)")
    s.add_argument("--chunks", type=_num(int, min=1, max=4096), default=48, help="held-out reconstructions to show")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an existing -o file that vqladder did not write (never a link, folder or device)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("encode", help="text -> codes (one line of codes per chunk)")
    s.add_argument("run", help="run or checkpoint directory")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--text", help="text to encode (default: stdin)")
    g.add_argument("--file", help="file whose text to encode")
    s.set_defaults(func=cmd_encode)

    s = sub.add_parser("decode", help="codes -> text")
    s.add_argument("run", help="run or checkpoint directory")
    s.add_argument("--codes", help="codes separated by spaces/commas/newlines (default: stdin)")
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("demo", help="prepare the built-in corpus, train a level-1 compressor, show results")
    s.add_argument("--out", default="runs", help="runs directory")
    s.add_argument("--data", default="data/builtin-bpe1024", help="data directory (prepared if missing)")
    s.add_argument("--steps", type=_num(int, min=1, allow=(-1,)), default=-1, help="training steps (-1 = the demo preset)")
    s.add_argument("--fresh", action="store_true", help="discard an earlier demo run instead of reusing it")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("generate", help="plan with a ladder's top prior, decode down the ladder, print text",
                       description="Sample (or beam-search) top-level codes with the prior, conditioned on the "
                                   "prompt's top codes, decode them rung by rung with the upsamplers (or the VQ "
                                   "decoders) and print the text.\n"
                                   "  vqladder generate runs/ladder-builtin --prompt 'def ' --chunks 2 --show-levels",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("ladder", help="ladder directory written by train-ladder")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--prompt", help="text to continue (left-padded with newlines to whole top chunks)")
    g.add_argument("--prompt-file", help="file whose text to continue")
    s.add_argument("--chunks", type=_num(int, min=1, max=4096), default=1,
                   help="top chunks to generate (each = the ladder's chunk of tokens; at most 4096)")
    s.add_argument("--temperature", type=_num(float, gt=0), default=1.0, help="sampling temperature (> 0)")
    s.add_argument("--top-k", type=_num(int, min=0), default=0, help="keep the k most likely symbols (0 = all)")
    s.add_argument("--top-p", type=_num(float, gt=0, max=1), default=0.95, help="nucleus sampling mass (1 = off)")
    s.add_argument("--beam", type=_num(int, min=0), default=0, help="beam width for the top-level plan (0 = sample)")
    s.add_argument("--decoder", default="upsample", choices=["upsample", "vq"],
                   help="down the ladder with the upsamplers (sampled) or the deterministic VQ decoders")
    s.add_argument("--show-levels", action="store_true", help="print the codes at every level")
    s.add_argument("--seed", type=_num(int, min=0), default=0, help="sampling seed")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("ladder-encode", help="text -> the codes of one ladder level (one line per top chunk)")
    s.add_argument("ladder", help="ladder directory")
    s.add_argument("--level", type=_num(int, min=0), help="level to encode to (default: the top; 0 = tokens)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--text", help="text to encode (default: stdin)")
    g.add_argument("--file", help="file whose text to encode")
    s.set_defaults(func=cmd_ladder_encode)

    s = sub.add_parser("ladder-decode", help="codes of one ladder level -> text, down the ladder")
    s.add_argument("ladder", help="ladder directory")
    s.add_argument("--level", type=_num(int, min=0), help="level the codes belong to (default: the top)")
    s.add_argument("--codes", help="codes separated by spaces/commas/newlines (default: stdin)")
    s.add_argument("--decoder", default="vq", choices=["vq", "upsample"], help="VQ decoders or sampled upsamplers")
    s.add_argument("--temperature", type=_num(float, min=0), default=1.0, help="upsampler temperature (0 = greedy)")
    s.add_argument("--seed", type=_num(int, min=0), default=0, help="sampling seed")
    s.set_defaults(func=cmd_ladder_decode)

    s = sub.add_parser("plan", help="plan one maze episode with a trained planner and draw it",
                       description="Show one episode: the plan codes (ladder), the decoded moves, an ASCII "
                                   "rendering and the validator's verdict.\n"
                                   "  vqladder plan runs/plan-small --task 3 --contender ladder --scorer verifier")
    s.add_argument("run", help="plan-experiment directory")
    s.add_argument("--seed", type=_num(int, min=0), default=0, help="which trained seed")
    s.add_argument("--contender", default="ladder", choices=["ladder", "subgoal", "rooms", "doors", "endstate", "flat"])
    s.add_argument("--method", default="beam", choices=["beam", "sample"])
    s.add_argument("--scorer", default="likelihood", choices=["likelihood", "verifier", "value", "value+verifier"])
    s.add_argument("--budget", type=_num(int, min=1), default=4, help="model evaluations as a multiple of max_moves")
    s.add_argument("--task", type=_num(int, min=0), default=0, help="held-out task index")
    s.add_argument("--layout-seed", type=_num(int, min=0), help="a fresh random layout instead of a held-out task")
    s.add_argument("--doors", help="explicit door offsets, comma-separated (-1 = no door)")
    s.add_argument("--start", help="start cell ROW,COL")
    s.add_argument("--goal", help="goal cell ROW,COL")
    s.set_defaults(func=cmd_plan)

    from .registry import EXPERIMENTS

    handlers = {"train": cmd_train, "sweep": cmd_sweep, "train-ladder": cmd_train_ladder,
                "plan-experiment": cmd_plan_experiment, "variable": cmd_variable, "video": cmd_video,
                "embed": cmd_embed}
    for e in EXPERIMENTS.values():  # every experiment's command, from the registry
        s = sub.add_parser(e.command, help=e.help, description=e.description or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        config_help = f"{e.name} CONFIG.yaml, then key.sub=value overrides (e.g. name=other)"
        if e.actions:
            asub = s.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
            for act in e.actions:
                v = asub.add_parser(act.name, help=act.help)
                if act.config:
                    v.add_argument("args", nargs="*", help=config_help)
                for arg in act.args:
                    _add_arg(v, arg)
        else:
            s.add_argument("args", nargs="*", help=config_help)
            for arg in e.args:
                _add_arg(s, arg)
        s.set_defaults(func=handlers[e.command])
    return p


def _add_arg(parser, arg) -> None:
    """One registry ``Arg`` on an argparse parser (``num``: a checked number, see ``_num``)."""
    kw = dict(arg.kw)
    if arg.num is not None:
        typ, bounds = arg.num
        kw["type"] = _num(typ, **bounds)
    parser.add_argument(*arg.flags, help=arg.help, **kw)
