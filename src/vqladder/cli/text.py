"""Handlers of the text commands: prepare, train, eval, report, encode / decode, sweep, demo, run, the ladder
(train-ladder, generate, ladder-encode / ladder-decode) and variable-length codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import VQLadderError
from ..report.console import RESULT_COLUMNS, print_table, show_examples
from .common import (
    _load,
    _read_codes,
    _run_tokenizer,
    _run_tokenizer_dir,
    _same_files,
    _text_input,
    run_recipe,  # noqa: F401
)


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
    res.update(compression=model.config.compression, codebook_size=model.quantizer.codebook_size)
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
                "variable.yaml": "variable", "embed.yaml": "embed"}  # configs older versions saved without the key
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
    from .parser import build_parser

    inner = build_parser().parse_args(argv)
    return inner.func(inner)


def cmd_train_ladder(a) -> int:
    from ..text.ladder_recipe import LadderConfig, train_ladder

    return run_recipe(a, LadderConfig, train_ladder, "train-ladder", "results.json, results.md, reconstructions.json")


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


def cmd_variable(a) -> int:
    from ..text.variable import VariableExpConfig, run_variable

    return run_recipe(a, VariableExpConfig, run_variable, "variable",
                      "results.json, results.md, ratio_over_training.png, acc_vs_bits.png, boundaries.html")
