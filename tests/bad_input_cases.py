"""The bad inputs we try, and what each must say. Used by tests/test_cli.py; run this file to print the
Markdown table of docs/bad-inputs.md from the real messages:

    .venv/bin/python tests/bad_input_cases.py > docs/bad-inputs.md
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# (what is wrong, CLI arguments, text the one-line message must contain)
CASES = [
    ("corpus path does not exist", "prepare {tmp}/nope.txt -o {tmp}/o", "corpus path does not exist"),
    ("corpus file is empty", "prepare {tmp}/empty.txt -o {tmp}/o", "corpus is empty"),
    ("corpus file is binary", "prepare {tmp}/binary.txt -o {tmp}/o", "looks binary"),
    ("corpus glob matches nothing", "prepare {tmp}/*.nothing -o {tmp}/o", "matches no file"),
    ("corpus folder has no text files", "prepare {tmp}/emptydir -o {tmp}/o", "has no .txt/.md/.jsonl file"),
    ("JSONL line without a text field", "prepare {tmp}/bad.jsonl -o {tmp}/o", "no string field 'text'"),
    ("unknown tokenizer", "prepare {corpus} -t wordpiece -o {tmp}/o", "unknown tokenizer"),
    ("malformed bpe size", "prepare {corpus} -t bpe:x -o {tmp}/o", "expected bpe:N"),
    ("data directory already prepared", "prepare {corpus} -o {data}", "already prepared"),
    ("config file missing", "train {tmp}/missing.yaml", "config file not found"),
    ("config file is not YAML", "train {tmp}/bad.yaml", "not valid YAML"),
    ("unknown config key (typo)", "train {cfg} model.out_lenn=4", "unknown config key 'model.out_lenn'"),
    ("config value of the wrong type", "train {cfg} train.lr=fast", "expected a number"),
    ("in_len not divisible by out_len", "train {cfg} model.out_len=5", "not divisible"),
    ("unknown quantizer kind", "train {cfg} model.quantizer.kind=pq", "quantizer.kind must be fsq or vq"),
    ("FSQ codebook size without levels", "train {cfg} model.quantizer.codebook_size=1000", "no recommended levels"),
    ("chunk longer than the corpus can fill", "train {cfg} model.in_len=8192 model.out_len=8 name=big",
     "fewer than one chunk"),
    ("data dir prepared from another corpus/tokenizer", "train {cfg} data.tokenizer=bpe:512 name=other",
     "holds corpus"),
    ("run exists, --resume not given", "train {cfg}", "already has checkpoints; pass --resume"),
    ("--resume with nothing to resume", "train {cfg} name=fresh --resume", "nothing to resume"),
    ("stray CLI argument", "train {cfg} extra", "unexpected argument"),
    ("unknown subcommand", "fly", "invalid choice"),
    ("run directory does not exist", "eval {tmp}/no-run", "no such run or checkpoint directory"),
    ("every checkpoint truncated", "eval {tmp}/truncated", "no valid checkpoint"),
    ("a truncated checkpoint given directly", "eval {tmp}/truncated/checkpoints/step_000030",
     "corrupted or truncated"),
    ("checkpoint of another model kind", "eval {tmp}/foreign/checkpoints/step_000030", "not a 'sequence_compressor'"),
    ("code out of range", "decode {run} --codes '99999 1 1 1 1 1 1 1'", "code out of range"),
    ("wrong number of codes", "decode {run} --codes '1 2 3'", "multiple of 8"),
    ("codes that are not integers", "decode {run} --codes 'a b c'", "must be integers"),
    ("empty text to encode", "encode {run} --text ''", "nothing to encode"),
    ("ladder codes out of range", "ladder-decode {ladder} --level 1 --codes '999 1 2 3 4 5 6 7'",
     "out of range for level 1"),
    ("codes of the wrong ladder level", "ladder-decode {ladder} --level 1 --codes '1 2'", "whole top chunks"),
    ("ladder level that does not exist", "ladder-encode {ladder} --level 7 --text abc", "level 7 does not exist"),
    ("ladder directory with a missing level", "generate {tmp}/ladder-missing", "missing level 2"),
    ("prompt longer than the prior's context", "generate {ladder} --prompt-file {corpus}",
     "more than the prior's context"),
    ("embedding budget no method can meet", "embed eval methods=[float32-trunc] budgets=[3] out_dir={tmp}/e",
     "no method can store 3 bytes"),
    ("embedding model path that does not exist", "embed eval corpora=[{corpus}] model={tmp}/no-model database=100 min_train=10 out_dir={tmp}/e",
     "embedding model path does not exist"),
    ("corpus that yields no texts to embed", "embed eval corpora=[{tmp}/short.txt] out_dir={tmp}/e", "no texts"),
    ("embedding index that does not exist", "embed search {tmp}/no-index --query hi", "not an embedding index"),
    ("planning budget of zero", "plan-experiment search.budgets=[0] out_dir={tmp}/p", "budget multiples must be > 0"),
    ("unknown planning search method", "plan-experiment search.methods=[astar] out_dir={tmp}/p",
     "search method must be beam or sample"),
    ("variable target ratio below 1", "variable targets=[0.5] out_dir={tmp}/v", "must be between 1 and the chunk length"),
    ("variable target ratio above the chunk", "variable chunk=16 targets=[32] out_dir={tmp}/v",
     "must be between 1 and the chunk length 16"),
    ("unknown boundary method", "variable methods=[bpe] out_dir={tmp}/v", "unknown boundary method 'bpe'"),
    ("video with zero objects", "video generate data.objects=0 out_dir={tmp}/vid", "need at least one object"),
    ("video frame smaller than a patch", "video train data.size=8 ae.patch=16 out_dir={tmp}/vid",
     "smaller than a patch"),
    ("video horizon longer than the clip", "video eval data.frames=8 context=4 horizon=8 out_dir={tmp}/vid",
     "longer than the clip"),
    ("ladder config with misaligned levels", "train-ladder {ladder_cfg} name=bad2 "
     "'levels=[{{model: {{in_len: 32, out_len: 8}}}}, {{model: {{in_len: 6, out_len: 2}}}}]'", "must be a multiple of level 1"),
]


def make_context(tmp: Path) -> dict:
    """A prepared tiny corpus, a trained tiny run, and the broken files the cases point at."""
    import yaml

    from conftest import make_text
    from helpers import tiny_run_config
    from vqladder.cli import main
    from vqladder.config import to_dict

    tmp.mkdir(parents=True, exist_ok=True)
    corpus = tmp / "corpus.txt"
    corpus.write_text(make_text(6000))
    data = tmp / "data"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["prepare", str(corpus), "-t", "bytes", "-o", str(data), "--block-size", "512"]) == 0
    cfg = tiny_run_config(data, tmp / "runs", name="cli", steps=30, ckpt_every=15)
    cfg_path = tmp / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(to_dict(cfg)))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", str(cfg_path)]) == 0
    run = tmp / "runs" / "cli"
    (tmp / "empty.txt").write_text("")
    (tmp / "binary.txt").write_bytes(b"\x7fELF\x00\x00\x01binary")
    (tmp / "emptydir").mkdir()
    (tmp / "emptydir" / "image.png").write_bytes(b"\x89PNG")
    (tmp / "bad.jsonl").write_text('{"body": "no text field"}\n')
    (tmp / "bad.yaml").write_text("model: [unclosed\n")
    (tmp / "short.txt").write_text("too short\nshort too\n")
    shutil.copytree(run, tmp / "truncated")
    for c in (tmp / "truncated" / "checkpoints").iterdir():
        w = c / "model.safetensors"
        w.write_bytes(w.read_bytes()[:100])
    shutil.copytree(run, tmp / "foreign")
    meta_p = tmp / "foreign" / "checkpoints" / "step_000030" / "meta.json"
    meta = json.loads(meta_p.read_text())
    meta["kind"] = "planner"
    meta_p.write_text(json.dumps(meta))
    from helpers import tiny_ladder_config

    lcfg = tiny_ladder_config(data, tmp / "runs", name="ladder", steps=10)
    lcfg_path = tmp / "ladder.yaml"
    lcfg_path.write_text(yaml.safe_dump(to_dict(lcfg)))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train-ladder", str(lcfg_path)]) == 0
    ladder = tmp / "runs" / "ladder"
    shutil.copytree(ladder, tmp / "ladder-missing")
    shutil.rmtree(tmp / "ladder-missing" / "level2")
    return {"tmp": tmp, "corpus": corpus, "data": data, "cfg": cfg_path, "run": run, "ladder": ladder,
            "ladder_cfg": lcfg_path}


def run_case(argv_template: str, ctx: dict) -> tuple[int, str]:
    """Run one case in-process; returns (exit code, stderr)."""
    import shlex

    from vqladder.cli import main

    argv = shlex.split(argv_template.format(**{k: str(v) for k, v in ctx.items()}))
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    return code, err.getvalue()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        ctx = make_context(Path(d))
        print("# Bad inputs and what they get\n")
        print("Each row is a case in `tests/bad_input_cases.py`, checked by `tests/test_cli.py`; this page is")
        print("printed by `python tests/bad_input_cases.py`. Every one exits with code 2, prints exactly one")
        print("line on stderr and writes nothing half-done (temporary paths are placeholders).\n")
        print("| # | bad input | command | exit | message |")
        print("|---|---|---|---|---|")
        for i, (what, argv, _expect) in enumerate(CASES, 1):
            code, err = run_case(argv, ctx)
            msg = err.strip().splitlines()[-1].replace(str(ctx["tmp"]), "…").replace("|", "\\|")
            names = {"{tmp}": "…", "{corpus}": "CORPUS.txt", "{cfg}": "CONFIG.yaml", "{data}": "DATA_DIR",
                     "{run}": "RUN_DIR", "{ladder}": "LADDER_DIR", "{ladder_cfg}": "LADDER.yaml"}
            cmd = argv
            for k, v in names.items():
                cmd = cmd.replace(k, v)
            cmd = "vqladder " + cmd.replace("{{", "{").replace("}}", "}").replace("|", "\\|")
            print(f"| {i} | {what} | `{cmd}` | {code} | {msg} |")
        print("\nNot errors: undecodable bytes in a text corpus are replaced by U+FFFD and counted in one warning line"
              " (`warning: N undecodable byte(s) …`) and in `meta.json`'s `replacements`.")
