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
  plan-experiment  flat vs ladder planners on the rooms maze (held-out layouts, seeds, budgets)
  plan      plan one maze episode with a trained planner and draw it
  variable  variable-length codes (entropy / learned boundaries) vs fixed rate at equal bits
  video     pixel videos: generate / train / eval / show (latent vs pixel prediction, probes per level)
  embed     codes over Matryoshka embeddings vs FAISS at equal bytes; build / encode / search an index

Bad input (missing paths, bad configs, corrupt checkpoints, out-of-range codes) prints one line
``error: …`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import VQLadderError
from ..report.console import RESULT_COLUMNS, print_table, show_examples


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


def cmd_prepare(a) -> int:
    from ..data import prepare

    sh = prepare(a.corpus, a.tokenizer, a.out, val_every=a.val_every, block_size=a.block_size, force=a.force,
                 progress=True)
    m = sh.meta
    print(f"prepared {a.out}: {m['train_tokens']:,} train / {m['val_tokens']:,} val tokens, "
          f"vocab {m['vocab_size']} ({m['tokenizer']}), {m['n_docs']} documents")
    return 0


def cmd_train(a) -> int:
    from ..text.compressor import RunConfig, train_run
    from ..train import distributed as D

    if a.resume and not a.args:
        raise VQLadderError("--resume needs the CONFIG (or run name override) of the run to continue")
    cfg = _load(RunConfig, a, 'train')
    ok = False
    try:
        res = train_run(cfg, resume=a.resume)
        D.print0(json.dumps(res, indent=2))
        ok = True
    finally:
        D.cleanup(ok)
    return 0


def cmd_eval(a) -> int:
    from ..data import TokenShards, load_tokenizer
    from ..eval import evaluate_compressor
    from ..models import load_model

    model, meta, ckpt = load_model(a.run, expect_kind="sequence_compressor")
    data_dir = a.data or meta.get("data")
    shards = TokenShards(data_dir)
    if shards.vocab_size != model.config.vocab_size:
        raise VQLadderError(f"data {data_dir} has vocab {shards.vocab_size}, the model expects {model.config.vocab_size}")
    from ..data.shards import check_fingerprint

    check_fingerprint(shards.dir, meta.get("data_fingerprint"), a.run)  # re-prepared or replaced data: refused
    if not _same_files(_run_tokenizer_dir(a.run, meta), shards.dir / "tokenizer"):
        raise VQLadderError(f"data {data_dir} was tokenised with another tokenizer than {a.run} ({shards.meta['tokenizer']} "
                            f"fitted on {shards.meta['corpus']!r}): its ids mean other tokens, so every number would be "
                            f"wrong; prepare the text with the run's tokenizer")
    embed = None
    if a.gist:
        from ..data.embedder import load_embedder

        embed = load_embedder(a.embed_model)
    from ..eval.baselines import most_frequent_token

    res = evaluate_compressor(model, shards.split(a.split), max_chunks=a.max_chunks, return_examples=a.examples,
                              tokenizer=shards.tokenizer, embed=embed,
                              frequent_token=most_frequent_token(shards.train, shards.vocab_size))
    examples = res.pop("examples", [])
    res.update(compression=model.config.in_len // model.config.out_len, codebook_size=model.quantizer.codebook_size)
    print(f"{ckpt} on {data_dir} ({a.split}, {res['chunks']} chunks)")
    print_table([res], RESULT_COLUMNS)
    extra = {k: v for k, v in res.items() if k.startswith(("gist_", "acc_free", "exact_match_free"))}
    if extra:
        print("\n" + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()))
    if examples:
        show_examples(load_tokenizer(Path(data_dir) / "tokenizer"), examples)
    if a.json:
        print(json.dumps(res, indent=2))
    return 0


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


def cmd_report(a) -> int:
    import time

    from ..report.html import build_report

    t0 = time.time()
    out = build_report(a.path, a.output, max_chunks=a.chunks, overwrite=a.overwrite)
    print(f"report written to {out} ({out.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.1f} s); open it in a browser")
    return 0


def cmd_encode(a) -> int:
    from ..models import load_model

    model, meta, _ = load_model(a.run, expect_kind="sequence_compressor")
    tok = _run_tokenizer(a.run, meta)
    ids = tok.encode(_text_input(a))
    codes, n_pad = model.encode_ids(ids, pad_id=(tok.encode(" ") or [0])[0])
    print(f"# {len(ids)} tokens -> {codes.shape[0]} chunk(s) x {model.config.out_len} codes "
          f"({model.bits_per_token:.3f} bits/token)" + (f"; last chunk padded with {n_pad} spaces" if n_pad else ""),
          file=sys.stderr)
    for row in codes.reshape(codes.shape[0], -1).tolist():
        print(" ".join(str(c) for c in row))
    return 0


def cmd_decode(a) -> int:
    from ..models import load_model

    model, meta, _ = load_model(a.run, expect_kind="sequence_compressor")
    tok = _run_tokenizer(a.run, meta)
    vals = _read_codes(a.codes if a.codes is not None else sys.stdin.read())
    out = tok.decode(model.decode_ids(vals))
    print(out.rstrip(" "))
    return 0


def cmd_sweep(a) -> int:
    from ..text.sweep import SweepConfig, run_sweep

    cfg = _load(SweepConfig, a, 'sweep')
    d = run_sweep(cfg, aggregate_only=a.aggregate_only)
    print((d / "sweep.md").read_text())
    print(f"written: {d / 'sweep.csv'}, {d / 'sweep.md'}, {d / 'plots'}/")
    return 0


def cmd_demo(a) -> int:
    from ..text.demo import run_demo

    run_demo(out_dir=a.out, data_dir=a.data, steps=a.steps, fresh=a.fresh)
    return 0


def cmd_run(a) -> int:
    """``vqladder run CONFIG.yaml [key=value …]``: the experiment the config declares, through its own command."""
    from ..config import read_yaml
    from .registry import EXPERIMENTS

    doc = read_yaml(a.config)
    name = doc.get("experiment") if isinstance(doc, dict) else None
    saved_as = {"plan.yaml": "planning", "ladder.yaml": "ladder", "sweep.yaml": "sweep", "video.yaml": "video",
                "variable.yaml": "variable", "embed.yaml": "embed"}  # configs the tool saved before the key
    p = Path(a.config)
    if name is None and (p.name in saved_as or (p.name == "config.yaml" and (p.parent / "checkpoints").is_dir())):
        name = saved_as.get(p.name, "compressor")
    if name is None:
        raise VQLadderError(f"{a.config} does not say which experiment it is for: add `experiment: NAME` "
                            f"({', '.join(EXPERIMENTS)}) or run it with its own command")
    if name not in EXPERIMENTS:
        raise VQLadderError(f"{a.config}: unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    argv = EXPERIMENTS[name].argv + [a.config] + list(a.overrides)
    print(f"note: {a.config} is a {name} config: running `vqladder {' '.join(argv)}`", file=sys.stderr)
    inner = build_parser().parse_args(argv)
    return inner.func(inner)


def cmd_train_ladder(a) -> int:
    from ..text.ladder_recipe import LadderConfig, train_ladder

    cfg = _load(LadderConfig, a, 'train-ladder')
    train_ladder(cfg)
    print((cfg.dir / "results.md").read_text())
    print(f"written: {cfg.dir / 'results.json'}, {cfg.dir / 'results.md'}")
    return 0


def cmd_generate(a) -> int:
    from ..text.ladder import Ladder

    ladder = Ladder.load(a.ladder, need_prior=True, need_upsamplers=a.decoder == "upsample")
    prompt = _text_input(a, "prompt", "prompt_file") if (a.prompt or a.prompt_file) else None
    if a.beam < 0:
        raise VQLadderError(f"--beam must be >= 0, got {a.beam}")
    out = ladder.generate(prompt, a.chunks, a.temperature, a.top_k, a.top_p, a.beam, a.decoder, a.seed)
    if a.show_levels:
        if len(out["prompt_codes"]):
            print(f"[prompt: top codes] {' '.join(map(str, out['prompt_codes'].tolist()))}")
        for k in range(ladder.n_levels, 0, -1):
            codes = out["levels"][k]
            per = ladder.chunk_len(k)
            rows = [" ".join(map(str, codes[i:i + per].tolist())) for i in range(0, len(codes), per)]
            print(f"[level {k}: {len(codes)} codes, vocabulary {ladder.vocab(k)}]")
            for r in rows:
                print("  " + r)
        print("[level 0: text]")
    if prompt:
        print(prompt, end="" if prompt.endswith(("\n", " ")) else " ")
    print(out.get("text", " ".join(map(str, out["levels"][0].tolist()))))
    return 0


def _read_codes(raw: str) -> list[int]:
    try:
        vals = [int(v) for v in raw.replace(",", " ").split()]
    except ValueError:
        raise VQLadderError("codes must be integers separated by spaces, commas or newlines")
    if any(not -2**63 <= v < 2**63 for v in vals):
        raise VQLadderError("code out of range: codes are small non-negative integers (a codebook index)")
    return vals


def cmd_ladder_encode(a) -> int:
    from ..text.ladder import Ladder

    ladder = Ladder.load(a.ladder)
    text = _text_input(a)
    level = ladder.n_levels if a.level is None else a.level
    codes = ladder.encode(text, level)
    per = ladder.chunk_len(level)
    print(f"# level {level}: {len(codes)} symbols, {per} per top chunk of {ladder.chunk_len(0)} tokens "
          f"({ladder.bits_per_token(level):.3f} bits/token); a tail shorter than one top chunk is dropped",
          file=sys.stderr)
    for i in range(0, len(codes), per):
        print(" ".join(map(str, codes[i:i + per].tolist())))
    return 0


def cmd_ladder_decode(a) -> int:
    from ..text.ladder import Ladder

    ladder = Ladder.load(a.ladder, need_upsamplers=a.decoder == "upsample")
    vals = _read_codes(a.codes if a.codes is not None else sys.stdin.read())
    if not vals:
        raise VQLadderError("no codes given")
    level = ladder.n_levels if a.level is None else a.level
    kw = {"temperature": a.temperature, "generator": __import__("torch").Generator().manual_seed(a.seed)} \
        if a.decoder == "upsample" else {}
    tokens = ladder.decode(vals, level, 0, method=a.decoder, **kw)
    print(ladder.text(tokens))
    return 0


def cmd_plan_experiment(a) -> int:
    from ..planning.recipe import PlanConfig, run_plan_experiment

    cfg = _load(PlanConfig, a, 'plan-experiment')
    run_plan_experiment(cfg)
    print((cfg.dir / "results.md").read_text())
    print(f"written: {cfg.dir / 'results.json'}, {cfg.dir / 'results.md'}, {cfg.dir / 'success_vs_budget.png'}")
    return 0


def cmd_variable(a) -> int:
    from ..text.variable import VariableExpConfig, run_variable

    cfg = _load(VariableExpConfig, a, 'variable')
    run_variable(cfg)
    print((cfg.dir / "results.md").read_text())
    print(f"written: {cfg.dir}/results.{{json,md}}, ratio_over_training.png, acc_vs_bits.png, boundaries.html")
    return 0


def cmd_video(a) -> int:
    from ..video import recipe as V

    cfg = _load(V.VideoExpConfig, a, 'video')
    cfg.validate()
    if a.action in ("generate", "show"):  # the PNG path is checked before any work
        from ..io import check_output_file
        from ..report import made_png

        default = cfg.dir / ("preview.png" if a.action == "generate" else f"show-seed{a.seed}-clip{a.clip}.png")
        out = check_output_file(Path(a.out) if a.out else default, a.overwrite, made_png, "PNG file")
    if a.action == "generate":
        V.preview(cfg, out)
        from ..video.data import load_videos

        tr, te = load_videos(cfg.data)
        print(f"{cfg.data.kind}: train frames {list(tr['frames'].shape)}, held-out {list(te['frames'].shape)}; "
              f"state: {', '.join(k for k in tr if k != 'frames')}; cached in {cfg.data.cache_dir}; preview {out}")
    elif a.action == "train":
        V.train_video(cfg)
        print(f"trained: {cfg.dir} (seeds {cfg.seeds}); next: vqladder video eval with the same config")
    elif a.action == "eval":
        V.eval_video(cfg, train_missing=a.train)
        print((cfg.dir / "results.md").read_text())
        print(f"written: {cfg.dir}/results.{{json,md}}, {cfg.dir}/strip.png")
    else:
        out = V.show(cfg, a.seed, a.clip, out)
        print(f"written: {out}")
    return 0


def _cell(text: str, what: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise VQLadderError(f"--{what} must be ROW,COL (e.g. 0,3), got {text!r}")
    return r, c


def cmd_plan(a) -> int:
    import numpy as np
    import torch

    from ..config import load_config
    from ..planning.evaluate import make_scorer
    from ..planning.maze import MOVES, EpisodeCodec, make_layout, random_task, validate
    from ..planning.recipe import PlanConfig, load_planner

    d = Path(a.run)
    if not (d / "plan.yaml").is_file():
        raise VQLadderError(f"{d} is not a plan-experiment directory (no plan.yaml)")
    cfg = load_config(PlanConfig, d / "plan.yaml")
    codec = EpisodeCodec(cfg.maze)
    if a.budget <= 0:
        raise VQLadderError(f"--budget must be > 0 model evaluations, got {a.budget}")
    sd = d / f"seed{a.seed}"
    if not sd.is_dir():
        trained = sorted(int(p.name[4:]) for p in d.glob("seed*") if p.is_dir() and p.name[4:].isdigit())
        raise VQLadderError(f"seed {a.seed} was not trained in {d} (trained seeds: "
                            f"{', '.join(map(str, trained)) or 'none'}); pick one with --seed")
    T = cfg.maze.max_moves
    planner = load_planner(cfg, sd, a.contender)
    if a.layout_seed is None:
        try:
            data = dict(np.load(d / "data.npz"))
        except (OSError, ValueError, EOFError) as e:
            raise VQLadderError(f"{d / 'data.npz'} is missing or corrupted ({type(e).__name__}); rerun "
                                f"`vqladder plan-experiment` on {d} to write it again")
        if not 0 <= a.task < len(data["test_cond"]):
            raise VQLadderError(f"--task must be in 0..{len(data['test_cond']) - 1}")
        lay, start, goal, _ = codec.decode_cond(data["test_cond"][a.task])
    else:
        rng = np.random.default_rng(a.layout_seed)
        lay = make_layout(cfg.maze, rng)
        start, goal = random_task(lay, rng)
    if a.doors:
        try:
            doors = [int(v) for v in a.doors.split(",")]
        except ValueError:
            raise VQLadderError("--doors must be comma-separated door offsets (-1 = no door)")
        if len(doors) != cfg.maze.n_walls or any(not -1 <= v < cfg.maze.room for v in doors):
            raise VQLadderError(f"--doors needs {cfg.maze.n_walls} values in -1..{cfg.maze.room - 1}")
        lay.doors = np.array(doors, dtype=np.int64)
    if a.start:
        start = _cell(a.start, "start")
    if a.goal:
        goal = _cell(a.goal, "goal")
    lay.check_cell(start, "start")
    lay.check_cell(goal, "goal")
    shortest = validate(lay, start, goal, []).shortest
    if shortest < 0:
        raise VQLadderError(f"no path from {start} to {goal} in this layout (closed doors)")
    cond = codec.cond(lay, start, goal, 3)
    value = None
    if a.scorer.startswith("value"):
        if not (sd / "value").is_dir():
            raise VQLadderError(f"{sd} has no learned value (train one: search.scorers with value in the config)")
        from ..models import load_model

        value = load_model(sd / "value", "plan_value")[0]
    scorer = make_scorer(a.scorer, cfg, {"value": value}, cond, lay, start, goal)
    budget = a.budget * T
    moves, used = planner.plan(cond, a.method, scorer, budget, seed=a.seed)
    if a.contender == "ladder":
        codes = planner.comp.encode(torch.as_tensor(moves).long()[None])[0].tolist()
        print(f"plan codes (level 1, {cfg.ladder.chunk} moves each): {' '.join(map(str, codes))}")
    ladderish = a.contender != "flat"
    o = validate(lay, start, goal, moves.tolist())
    shown = [MOVES[m] if m < 4 else "." for m in moves.tolist()[:max(o.length, 1)]]
    if ladderish:  # mark where each code's moves begin
        starts = set(getattr(planner, "code_starts", None) or range(0, T, cfg.ladder.chunk))
        shown = [("|" if i and i in starts else "") + m for i, m in enumerate(shown)]
    print(f"moves: {''.join(shown)}" + ("   (| = a code boundary)" if ladderish else ""))
    print(lay.render(start, goal, moves.tolist()))
    print(f"valid={o.valid} reached={o.reached} length={o.length} shortest={o.shortest} "
          f"evaluations={used}/{budget}")
    return 0


def cmd_embed(a) -> int:
    from ..embed.models import CodeIndex
    from ..embed.recipe import EmbedConfig, build_index, run_embed_eval

    if a.action in ("eval", "build"):
        cfg = _load(EmbedConfig, a, 'embed')
        if a.action == "eval":
            run_embed_eval(cfg)
            print((cfg.dir / "results.md").read_text())
            print(f"written: {cfg.dir / 'results.json'}, {cfg.dir / 'results.md'}, {cfg.dir / 'recall_vs_bytes.png'}")
        else:
            build_index(cfg, a.out, a.bytes)
        return 0
    index = CodeIndex(a.index)
    if a.action == "encode":
        lines = [t for t in _text_input(a).splitlines() if t.strip()]
        for t, c in zip(lines, index.encode(lines)):
            print(" ".join(map(str, c.tolist())) + "\t" + t[:80])
        return 0
    if a.k < 1:
        raise VQLadderError(f"-k must be >= 1, got {a.k}")
    for score, text, codes in index.search(a.query, a.k):
        print(f"{score:.3f}  [{' '.join(map(str, codes[:4]))} …]  {text[:120]}")
    return 0


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
    s.add_argument("--contender", default="ladder", choices=["ladder", "subgoal", "rooms", "doors", "flat"])
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


