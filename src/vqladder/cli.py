"""The ``vqladder`` command. ``vqladder <subcommand> --help`` explains each.

  prepare   corpus -> tokenizer -> train/val token shards
  train     train a level-1 compressor from a YAML config (+ dotted overrides), resumable
  sweep     a grid of compressors (codes per chunk x codebook size x …) with LM / zstd references
  eval      held-out metrics of a trained run (and a few reconstructions)
  encode    text -> codes
  decode    codes -> text
  demo      the whole first rung on the built-in corpus in a few minutes

Bad input (missing paths, bad configs, corrupt checkpoints, out-of-range codes) prints one line
``error: …`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import VQLadderError


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


def cmd_prepare(a) -> int:
    from .data import prepare

    sh = prepare(a.corpus, a.tokenizer, a.out, val_every=a.val_every, block_size=a.block_size, force=a.force,
                 progress=True)
    m = sh.meta
    print(f"prepared {a.out}: {m['train_tokens']:,} train / {m['val_tokens']:,} val tokens, "
          f"vocab {m['vocab_size']} ({m['tokenizer']}), {m['n_docs']} documents")
    return 0


def cmd_train(a) -> int:
    from .config import load_config
    from .experiments.rung1 import RunConfig, train_run
    from .train import distributed as D

    config, overrides = _split_config_args(a.args)
    cfg = load_config(RunConfig, config, overrides)
    if a.resume and config is None and not overrides:
        raise VQLadderError("--resume needs the CONFIG (or run name override) of the run to continue")
    ok = False
    try:
        res = train_run(cfg, resume=a.resume)
        D.print0(json.dumps(res, indent=2))
        ok = True
    finally:
        D.cleanup(ok)
    return 0


def _print_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> None:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    print(head)
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(format(r[c[0]], c[2]) for c in cols) + " |")


RESULT_COLUMNS = [("compression", "compression", "d"), ("codebook_size", "codebook", "d"),
                  ("bits_per_token", "bits/token", ".3f"), ("acc", "held-out token acc", ".3f"),
                  ("exact_match", "exact chunks", ".3f"), ("ce_bits", "recon CE (bits)", ".3f"),
                  ("usage", "code usage", ".3f"), ("perplexity", "code perplexity", ".1f")]


def _show_examples(tok, examples, n_chars: int = 240) -> None:
    for i, (orig, pred, _codes) in enumerate(examples):
        o = tok.decode(orig)[:n_chars].replace("\n", "⏎")
        p = tok.decode(pred)[:n_chars].replace("\n", "⏎")
        print(f"\n[{i}] original     : {o}\n[{i}] reconstructed: {p}")


def cmd_eval(a) -> int:
    from .data import TokenShards, load_tokenizer
    from .eval import evaluate_compressor
    from .train.checkpoint import load_model

    model, meta, ckpt = load_model(a.run, expect_kind="sequence_compressor")
    data_dir = a.data or meta.get("data")
    shards = TokenShards(data_dir)
    if shards.vocab_size != model.config.vocab_size:
        raise VQLadderError(f"data {data_dir} has vocab {shards.vocab_size}, the model expects {model.config.vocab_size}")
    embed = None
    if a.gist:
        from .eval.gist import load_embedder

        embed = load_embedder(a.embed_model)
    res = evaluate_compressor(model, shards.split(a.split), max_chunks=a.max_chunks, return_examples=a.examples,
                              tokenizer=shards.tokenizer, embed=embed)
    examples = res.pop("examples", [])
    res.update(compression=model.config.in_len // model.config.out_len, codebook_size=model.quantizer.codebook_size)
    print(f"{ckpt} on {data_dir} ({a.split}, {res['chunks']} chunks)")
    _print_table([res], RESULT_COLUMNS)
    extra = {k: v for k, v in res.items() if k.startswith(("gist_", "acc_free", "exact_match_free"))}
    if extra:
        print("\n" + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()))
    if examples:
        _show_examples(load_tokenizer(Path(data_dir) / "tokenizer"), examples)
    if a.json:
        print(json.dumps(res, indent=2))
    return 0


def _run_tokenizer(run: str, meta: dict):
    from .data import load_tokenizer

    p = Path(run)
    for cand in (p / "tokenizer", p.parent.parent / "tokenizer", Path(meta.get("data", "")) / "tokenizer"):
        if (cand / "tokenizer_meta.json").is_file():
            return load_tokenizer(cand)
    raise VQLadderError(f"no tokenizer found for {run}")


def cmd_encode(a) -> int:
    import torch

    from .train.checkpoint import load_model

    model, meta, _ = load_model(a.run, expect_kind="sequence_compressor")
    tok = _run_tokenizer(a.run, meta)
    text = Path(a.file).read_text(encoding="utf-8", errors="replace") if a.file else a.text
    if text is None:
        text = sys.stdin.read()
    ids = tok.encode(text)
    if not ids:
        raise VQLadderError("nothing to encode: the text is empty")
    n = model.config.in_len
    pad_id = (tok.encode(" ") or [0])[0]
    n_pad = (-len(ids)) % n
    x = torch.tensor(ids + [pad_id] * n_pad).view(-1, n)
    codes = model.encode(x)
    print(f"# {len(ids)} tokens -> {codes.shape[0]} chunk(s) x {model.config.out_len} codes "
          f"({model.bits_per_token:.3f} bits/token)" + (f"; last chunk padded with {n_pad} spaces" if n_pad else ""),
          file=sys.stderr)
    for row in codes.reshape(codes.shape[0], -1).tolist():
        print(" ".join(str(c) for c in row))
    return 0


def cmd_decode(a) -> int:
    import torch

    from .train.checkpoint import load_model

    model, meta, _ = load_model(a.run, expect_kind="sequence_compressor")
    tok = _run_tokenizer(a.run, meta)
    raw = a.codes if a.codes is not None else sys.stdin.read()
    try:
        vals = [int(v) for v in raw.replace(",", " ").split()]
    except ValueError:
        raise VQLadderError("codes must be integers separated by spaces, commas or newlines")
    depth = getattr(model.quantizer, "depth", 1)
    per_chunk = model.config.out_len * depth
    if not vals or len(vals) % per_chunk:
        raise VQLadderError(f"got {len(vals)} codes; this model takes a multiple of {per_chunk} codes per chunk")
    codes = torch.tensor(vals).view(-1, model.config.out_len, *([depth] if depth > 1 else []))
    logits = model.decode(codes)
    out = tok.decode(logits.argmax(-1).reshape(-1).tolist())
    print(out.rstrip(" "))
    return 0


def cmd_sweep(a) -> int:
    from .config import load_config
    from .experiments.sweep import SweepConfig, run_sweep

    config, overrides = _split_config_args(a.args)
    cfg = load_config(SweepConfig, config, overrides)
    d = run_sweep(cfg, aggregate_only=a.aggregate_only)
    print((d / "sweep.md").read_text())
    print(f"written: {d / 'sweep.csv'}, {d / 'sweep.md'}, {d / 'plots'}/")
    return 0


def cmd_demo(a) -> int:
    from .experiments.demo import run_demo

    run_demo(out_dir=a.out, data_dir=a.data, steps=a.steps, fresh=a.fresh)
    return 0


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
    s.add_argument("--val-every", type=int, default=10, help="every N-th block of tokens goes to val (10%%)")
    s.add_argument("--block-size", type=int, default=4096, help="tokens per split block (smaller for tiny corpora)")
    s.add_argument("--force", action="store_true", help="rebuild an existing data directory")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train a compressor from a YAML config",
                       description="Train a level-1 compressor. Example:\n"
                                   "  vqladder train configs/cpu-small.yaml model.out_len=32 train.steps=500\n"
                                   "Under torchrun: torchrun --nproc_per_node 2 -m vqladder.cli train CONFIG",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("args", nargs="*", help="CONFIG.yaml then key.sub=value overrides (e.g. model.out_len=32)")
    s.add_argument("--resume", action="store_true", help="continue the run from its newest valid checkpoint")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sweep", help="compression x codebook grid of compressors, with references",
                       description="Train a grid of compressors (each cell a run directory) plus the LM / zstd /"
                                   " unigram references, then write sweep.csv, sweep.md and plots. Rerun the same"
                                   " command to resume.\n  vqladder sweep configs/sweep_cpu.yaml budget=5m workers=2",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("args", nargs="*", help="SWEEP.yaml then key.sub=value overrides (e.g. grid.out_len=[64,8])")
    s.add_argument("--aggregate-only", action="store_true", help="only re-read the run directories and re-plot")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("eval", help="held-out metrics of a trained run")
    s.add_argument("run", help="run directory (newest valid checkpoint) or a checkpoint directory")
    s.add_argument("--data", help="data directory (default: the one the run was trained on)")
    s.add_argument("--split", default="val", choices=["val", "train"])
    s.add_argument("--max-chunks", type=int, default=-1, help="chunks to evaluate; -1 = all")
    s.add_argument("--examples", type=int, default=3, help="reconstructions to print")
    s.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    s.add_argument("--gist", action="store_true",
                   help="add embedding gist metrics (semantic similarity, retrieval); needs the [gist] extra")
    s.add_argument("--embed-model", default="minilm", help="sentence-transformers model path (default: offline MiniLM)")
    s.set_defaults(func=cmd_eval)

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
    s.add_argument("--steps", type=int, default=-1, help="training steps (-1 = the demo preset)")
    s.add_argument("--fresh", action="store_true", help="discard an earlier demo run instead of reusing it")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VQLadderError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
