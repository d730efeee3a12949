"""What the command handlers share: reading a command's config, text from --text / --file / stdin, codes and cells
given on the command line, the tokenizer a run was trained with."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import VQLadderError


def _split_config_args(args: list[str]) -> tuple[str | None, list[str]]:
    config, overrides = None, []
    for a in args:
        if "=" not in a and config is None:
            config = a
        elif "=" in a:
            overrides.append(a)
        else:
            raise VQLadderError(f"unexpected argument {a!r}: give one CONFIG.yaml and key.sub=value overrides")
    return config, overrides


def _load(cls, a, what: str):
    """The command's config: CONFIG.yaml + dotted overrides. Without a CONFIG file the command says, before any
    work, that it runs the built-in defaults and where they write."""
    from ..config import load_config, read_yaml
    from .registry import EXPERIMENTS, by_command

    config, overrides = _split_config_args(a.args)
    tree = read_yaml(config, raw=True) if config is not None else {}
    declared = tree.pop("experiment", None) if isinstance(tree, dict) else None
    command = by_command(what.split()[0])
    if declared is not None and declared != command.name:
        other = EXPERIMENTS.get(declared)
        if other is None:
            raise VQLadderError(f"{config}: unknown experiment {declared!r}; known: {', '.join(EXPERIMENTS)}")
        raise VQLadderError(f"{config} is a {declared} config (experiment: {declared}): run it with "
                            f"`vqladder {other.command} {config}`, not `vqladder {what}`")
    if config is not None and declared is None:
        print(f"note: {config} does not say which experiment it is for (add `experiment: {command.name}`); "
              f"loading it as one", file=sys.stderr)
    cfg = load_config(cls, None, overrides, base=tree)
    if config is None:
        where = getattr(cfg, "dir", None) or getattr(cfg, "run_dir", None)
        steps = getattr(getattr(cfg, "train", None), "steps", None)
        print(f"note: no CONFIG.yaml given: {what} runs the built-in defaults"
              + (f" ({steps} steps)" if steps else "") + (f" into {where}" if where else "")
              + (f" with {len(overrides)} override(s)" if overrides else "")
              + "; the shipped presets are in configs/", file=sys.stderr)
    return cfg


def _text_input(a, attr_text: str = "text", attr_file: str = "file") -> str:
    """--text, --file or stdin, as UTF-8 text (a bad file or undecodable bytes end in one line at the boundary)."""
    text = getattr(a, attr_text, None)
    path = getattr(a, attr_file, None)
    if path:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    if text is None:  # the bytes of stdin, decoded here: undecodable input is one line, whatever the locale says
        raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise VQLadderError(f"standard input is not valid UTF-8 text ({e.reason} at byte {e.start})")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise VQLadderError(f"--{attr_text.replace('_', '-')} is not valid UTF-8 text")
    return text


def _read_codes(raw: str) -> list[int]:
    try:
        vals = [int(v) for v in raw.replace(",", " ").split()]
    except ValueError:
        raise VQLadderError("codes must be integers separated by spaces, commas or newlines")
    if any(not -2**63 <= v < 2**63 for v in vals):
        raise VQLadderError("code out of range: codes are small non-negative integers (a codebook index)")
    return vals


def _cell(text: str, what: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise VQLadderError(f"--{what} must be ROW,COL (e.g. 0,3), got {text!r}")
    return r, c


def _same_files(a: Path, b: Path) -> bool:
    """Do two tokenizer directories hold the same files, byte for byte?"""
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return fa == fb and all((a / f).read_bytes() == (b / f).read_bytes() for f in fa)


def _run_tokenizer_dir(run: str, meta: dict) -> Path:
    from ..data.shards import tree_digest

    p = Path(run)
    data_tok = Path(meta.get("data", "")) / "tokenizer"
    for cand in (p / "tokenizer", p.parent.parent / "tokenizer", data_tok):
        if (cand / "tokenizer_meta.json").is_file():
            recorded = (meta.get("data_fingerprint") or {}).get("tokenizer")
            if cand == data_tok and recorded and tree_digest(cand) != recorded:  # the data was prepared again
                raise VQLadderError(f"the tokenizer in {cand} is not the one {run} was trained with (it changed "
                                    f"since); its ids would mean other tokens")
            return cand
    raise VQLadderError(f"no tokenizer found for {run}")


def _run_tokenizer(run: str, meta: dict):
    from ..data import load_tokenizer

    return load_tokenizer(_run_tokenizer_dir(run, meta))


def run_recipe(a, cls, run, command: str, written: str = "results.json, results.md") -> int:
    """An experiment command's body: its config (CONFIG.yaml + overrides), the recipe run, its ``results.md``
    printed and what was written named."""
    cfg = _load(cls, a, command)
    run(cfg)
    print((cfg.dir / "results.md").read_text())
    print(f"written in {cfg.dir}: {written}")
    return 0
