"""The ``vqladder`` command. ``vqladder <subcommand> --help`` explains each.

  prepare   corpus -> tokenizer -> train/val token shards
  train     train a level-1 compressor from a YAML config (+ dotted overrides), resumable
  sweep     a grid of compressors (codes per chunk x codebook size x …) with LM / zstd references
  eval      held-out metrics of a trained run (and a few reconstructions)
  encode    text -> codes
  decode    codes -> text
  demo      the whole first rung on the built-in corpus in a few minutes
  train-ladder  a ladder of levels (mode text | multi_exit | codes) + prior + upsamplers + flat LM + judge, resumable
  generate  plan top-level codes with a ladder's prior, decode down the ladder, print text
  ladder-encode / ladder-decode   text <-> the codes of any ladder level
  plan-experiment  flat vs hierarchical planners on the rooms maze (held-out layouts, seeds, budgets)
  plan      plan one maze episode with a trained planner and draw it
  variable  variable-length codes (entropy / learned boundaries) vs fixed rate at equal bits
  video     pixel videos: generate / train / eval / show (latent vs pixel prediction, probes per level)
  embed     codes over Matryoshka embeddings vs FAISS at equal bytes; build / encode / search an index

Bad input (missing paths, bad configs, corrupt checkpoints, out-of-range codes) prints one line
``error: …`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import VQLadderError
from .common import _split_config_args  # noqa: F401,E402
from .domains import cmd_embed, cmd_plan, cmd_plan_experiment, cmd_video  # noqa: F401,E402
from .parser import _add_arg, _num, _Parser, build_parser  # noqa: F401,E402
from .text import (  # noqa: F401,E402
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


def _error_log(exc: BaseException) -> Path:
    """Write the traceback of an internal error beside the run it happened in (or to a temp file)."""
    import tempfile
    import traceback

    from ..io import _held

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for d in list(_held)[::-1] + [None]:
        try:
            if d is None:
                fd, name = tempfile.mkstemp(prefix="vqladder-error-", suffix=".log")
                os.close(fd)
                path = Path(name)
            else:
                path = Path(d) / "error.log"
            path.write_text(text)
            return path
        except OSError:
            continue
    return Path("(unwritable)")


def _user_error(e: BaseException) -> str | None:
    """The one-line message for an exception caused by the user's input or machine, or None (a bug of ours)."""
    if isinstance(e, UnicodeDecodeError):
        return f"input is not valid UTF-8 text ({e.reason} at byte {e.start})"
    if isinstance(e, UnicodeEncodeError):
        return "input is not valid UTF-8 text (undecodable bytes in an argument)"
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or (
            isinstance(e, RuntimeError) and "allocate" in str(e) and "memory" in str(e).lower()):
        return "out of memory: the config asks for more memory than this machine has (smaller sizes or batches?)"
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror.lower()}{where}"
    return None


_PARSERS: list = []


def _parser() -> argparse.ArgumentParser:
    """The command line's parser, built once per process (building it is most of a bad input's 25 ms)."""
    if not _PARSERS:
        _PARSERS.append(build_parser())
    return _PARSERS[0]


PATH_ARGS = ("out", "data", "run", "path", "output", "file", "prompt_file", "ladder", "index", "config")  # paths


def main(argv: list[str] | None = None) -> int:
    """The command line. Every failure ends in one line on stderr: ``error: …`` and exit 2 for bad input (and for
    what the machine cannot do), 130 for Ctrl-C, a quiet exit when a downstream pipe closes, and for anything
    else ``internal error: …`` with the traceback written to ``<run>/error.log`` (or a temp file), exit 1."""
    from ..io import release_run_dirs

    try:
        parser = _parser()
        args, rest = parser.parse_known_args(argv)
        if rest and hasattr(args, "args") and all("=" in r and not r.startswith("-") for r in rest):
            args.args = list(args.args) + rest  # `train CONFIG --resume name=x`: overrides after a flag
        elif rest:
            parser.parse_args(argv)  # says which argument is not understood, in one line
    except SystemExit as e:  # argparse: --help (0) leaves as usual; a bad argument was already said in one line
        if e.code in (0, None):
            raise
        return int(e.code)
    if getattr(args, "retrain", False):
        from ..train.stage import set_retrain

        set_retrain(True)
    for dest in PATH_ARGS:  # `--out=~/x` reaches us unexpanded (the shell expands only a word that starts with ~)
        v = getattr(args, dest, None)
        if isinstance(v, str) and v.startswith("~"):
            setattr(args, dest, os.path.expanduser(v))
    try:
        return getattr(sys.modules[__name__], args.func.__name__, args.func)(args)  # by name: patchable in tests
    except VQLadderError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`vqladder encode … | head -1`): stop quietly, as Unix tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except Exception as e:  # noqa: BLE001 - the boundary: nothing may leak a traceback to the user
        msg = _user_error(e)
        if msg is not None:
            print(f"error: {msg}", file=sys.stderr)
            return 2
        log = _error_log(e)
        print(f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
              f"(a bug in vqladder; traceback in {log})", file=sys.stderr)
        return 1
    finally:
        release_run_dirs()
        if getattr(args, "retrain", False):
            from ..train.stage import set_retrain

            set_retrain(False)
