"""The bad inputs we try, and what each must say. Used by tests/cli/test_cli.py; run this file to print the
Markdown table of docs/bad-inputs.md from the real messages:

    .venv/bin/python tests/bad_input_cases.py > docs/bad-inputs.md
"""

from __future__ import annotations

import contextlib
import io
import json
import os
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
    ("segment compressor whose chunk does not split into segments",
     "train {cfg} model.downsample=segment model.enc_layers=0 model.dec_layers=0 model.out_len=5", "not divisible"),
    ("sweep budget that is not a number or a duration", "sweep {cfg_sweep} budget=soon", "budget 'soon'"),
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
    ("config made for another experiment", "train {tmp}/plan.yaml", "is a planning config"),
    ("config for an experiment that does not exist", "sweep {tmp}/unknown-exp.yaml", "unknown experiment 'teleport'"),
    ("report on a folder that is not a run", "report {tmp}/emptydir", "not a vqladder run, sweep or experiment"),
    ("report on a run with no checkpoint yet", "report {tmp}/run-nockpt", "no checkpoint yet"),
    ("report file under a missing folder", "report {run} -o {tmp}/no-such-dir/r.html", "does not exist"),
    ("report file under a plain file", "report {run} -o {tmp}/empty.txt/r.html", "does not exist"),
    ("report file that is a folder", "report {run} -o {tmp}/emptydir", "is a directory"),
    ("code out of range", "decode {run} --codes '99999 1 1 1 1 1 1 1'", "code out of range"),
    ("wrong number of codes", "decode {run} --codes '1 2 3'", "multiple of 8"),
    ("codes that are not integers", "decode {run} --codes 'a b c'", "must be integers"),
    ("empty text to encode", "encode {run} --text ''", "nothing to encode"),
    ("ladder codes out of range", "ladder-decode {ladder} --level 1 --codes '999 1 2 3 4 5 6 7'",
     "out of range for level 1"),
    ("codes of the wrong ladder level", "ladder-decode {ladder} --level 1 --codes '1 2'", "whole top chunks"),
    ("ladder level that does not exist", "ladder-encode {ladder} --level 7 --text abc", "level 7 does not exist"),
    ("ladder directory with a missing level", "generate {tmp}/ladder-missing", "missing level 2"),
    ("generate on a ladder without a prior", "generate {tmp}/ladder-noprior", "the prior"),
    ("generate zero chunks", "generate {ladder} --chunks 0", "--chunks: must be >= 1"),
    ("decode from a ladder level that does not exist", "ladder-decode {ladder} --level 4 --codes '1 2'",
     "level 4 does not exist"),
    ("ladder mode that does not exist", "train-ladder {ladder_cfg} mode=jukebox", "mode must be one of"),
    ("more upsampler step budgets than upsamplers", "train-ladder {ladder_cfg} 'upsampler_steps=[5, 5, 5, 5]'",
     "upsampler_steps lists 4 step budgets"),
    ("a stage to select that the ladder does not have", "train-ladder {ladder_cfg} 'select=[up9]'",
     "select names 'up9'"),
    ("a held-back share of all the training text", "train-ladder {ladder_cfg} 'select=[prior]' select_holdout=1",
     "select_holdout"),
    ("rate term ramped over more than all of training", "train {cfg} model.rate_layers=1 model.rate_weight=0.5 "
     "model.rate_warmup=2", "model.rate_warmup"),
    ("prompt longer than the prior's context", "generate {ladder} --prompt-file {corpus}",
     "more than the prior's context"),
    ("embedding budget no method can meet", "embed eval methods=[float32-trunc] budgets=[3] out_dir={tmp}/e",
     "no method can store 3 bytes"),
    ("embedding model path that does not exist", "embed eval corpora=[{corpus}] model={tmp}/no-model database=100 min_train=10 out_dir={tmp}/e",
     "embedding model path does not exist"),
    ("corpus that yields no texts to embed", "embed eval corpora=[{tmp}/short.txt] out_dir={tmp}/e", "no texts"),
    ("embedding index that does not exist", "embed search {tmp}/no-index --query hi", "not an embedding index"),
    ("vector file that does not exist", "embed eval vectors={tmp}/none.npy out_dir={tmp}/e", "does not exist"),
    ("vector file of another format", "embed eval vectors={corpus} out_dir={tmp}/e", "must be .npy or .fvecs"),
    ("vector file that is not an array", "embed eval vectors={tmp}/notnpy.npy out_dir={tmp}/e", "cannot read"),
    ("vector file of one dimension", "embed eval vectors={tmp}/flat.npy out_dir={tmp}/e", "must be a 2-D array"),
    ("vector file holding NaN", "embed eval vectors={tmp}/nan.npy out_dir={tmp}/e", "hold NaN or inf"),
    ("vector file with no vectors", "embed eval vectors={tmp}/empty.npy out_dir={tmp}/e", "empty vector file"),
    (".fvecs file whose rows differ in width", "embed eval vectors={tmp}/ragged.fvecs out_dir={tmp}/e",
     "rows must have one width"),
    ("empty .fvecs file", "embed eval vectors={tmp}/empty.fvecs out_dir={tmp}/e", "empty vector file"),
    ("unknown distance metric", "embed eval metric=hamming out_dir={tmp}/e", "metric must be cosine or l2"),
    ("unknown QINCo loss", "embed eval qinco.loss=last out_dir={tmp}/e", "qinco.loss must be all or served"),
    ("unknown QINCo initialisation", "embed eval qinco.init=pq out_dir={tmp}/e", "qinco.init must be kmeans or faiss-rq"),
    ("embedding budget beyond the largest QINCo model", "embed eval qinco.stages=[8] budgets=[16] out_dir={tmp}/e",
     "needs a QINCo model"),
    ("docstrings of a package that is not installed", "prepare docstrings:no_such_pkg_xyz -o {tmp}/o",
     "no installed package or folder"),
    ("planning budget of zero", "plan-experiment search.budgets=[0] out_dir={tmp}/p", "budget multiples must be > 0"),
    ("unknown planning search method", "plan-experiment search.methods=[astar] out_dir={tmp}/p",
     "search method must be beam or sample"),
    ("unknown move-segment boundary method", "plan-experiment segments.methods=[fixed] out_dir={tmp}/p",
     "segments.methods must be learned or entropy"),
    ("doors decoder from a return bucket that does not exist", "plan-experiment doors.decoder_buckets=[7] out_dir={tmp}/p",
     "doors.decoder_buckets must name return buckets 0..3"),
    ("endstate decoder from a return bucket that does not exist",
     "plan-experiment endstate.decoder_buckets=[4] out_dir={tmp}/p", "endstate.decoder_buckets must name return buckets"),
    ("endstate codes with an FSQ level below 2", "plan-experiment endstate.model.levels=[4,1] out_dir={tmp}/p",
     "endstate.model.levels must be"),
    ("endstate codes with a negative rate weight", "plan-experiment endstate.model.rate_weight=-1 out_dir={tmp}/p",
     "rate_weight"),
    ("a negative number of value roll-outs", "plan-experiment value.rollouts=-1 out_dir={tmp}/p",
     "value.rollouts' must be >= 0"),
    ("closed loop that is not true or false", "plan-experiment closed_loop=maybe out_dir={tmp}/p",
     "closed_loop': expected true/false"),
    ("closed-loop fine-tuning of zero steps", "plan-experiment closed_loop_train.steps=0 out_dir={tmp}/p",
     "closed_loop_train.steps' must be >= 1"),
    ("maze with no rooms", "plan-experiment maze.rooms=0 out_dir={tmp}/p", "maze.rooms"),
    ("unknown planning contender", "plan-experiment contenders=[astar] out_dir={tmp}/p", "contender must be one of"),
    ("variable target ratio below 1", "variable targets=[0.5] out_dir={tmp}/v", "must be between 1 and the chunk length"),
    ("variable target ratio above the chunk", "variable chunk=16 targets=[32] out_dir={tmp}/v",
     "must be between 1 and the chunk length 16"),
    ("unknown boundary method", "variable methods=[bpe] out_dir={tmp}/v", "unknown boundary method 'bpe'"),
    ("video with zero objects", "video generate data.objects=0 out_dir={tmp}/vid", "need at least one object"),
    ("video frame smaller than a patch", "video train data.size=8 ae.patch=16 out_dir={tmp}/vid",
     "smaller than a patch"),
    ("video horizon longer than the clip", "video eval data.frames=8 context=4 horizon=8 out_dir={tmp}/vid",
     "longer than the clip"),
    # the tool's own files, and what is not its own (see also tests/test_io.py)
    ("train into a folder vqladder did not make", "train {cfg} out_dir={tmp} name=userdir", "was not made by vqladder"),
    ("embedding index into a folder vqladder did not make", "embed build --out {tmp}/userdir --bytes 4",
     "was not made by vqladder"),
    ("report file that vqladder did not write", "report {run} -o {tmp}/user.html", "pass --overwrite"),
    ("report written into a folder vqladder did not make", "report {tmp}/usernotes", "give -o FILE"),
    ("report file that is a symbolic link", "report {run} -o {tmp}/link.html --overwrite", "symbolic link"),
    ("report file that is a FIFO", "report {run} -o {tmp}/fifo --overwrite", "not a regular file"),
    ("video preview onto a file vqladder did not write", "video generate out_dir={tmp}/vid --out {tmp}/user.png",
     "pass --overwrite"),
    ("resume with a changed config", "train {cfg} model.d_model=48 --resume", "--resume with a changed config"),
    ("corpus too small to hold anything out", "prepare {tmp}/short.txt -t bytes -o {tmp}/o", "nothing would be held out"),
    ("config with a list as a key", "train {tmp}/unhashable.yaml", "a key must be a name"),
    ("training device this machine does not have", "train {cfg} train.device=mps name=dev", "MPS is not available"),
    ("report on a run whose results.json is corrupted", "report {tmp}/badresults", "is corrupted"),
    ("report on an experiment whose episodes.json is corrupted", "report {tmp}/badepisodes", "is corrupted"),
    ("plan with a seed that was not trained", "plan {tmp}/planfake --seed 5", "seed 5 was not trained"),
    ("embedding index of more bytes than any code has", "embed build --out {tmp}/e2 --bytes 100000", "--bytes"),
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
    import numpy as np

    np.save(tmp / "flat.npy", np.zeros(8, dtype=np.float32))
    np.save(tmp / "nan.npy", np.array([[0.0, 1.0], [np.nan, 0.0]], dtype=np.float32))
    np.save(tmp / "empty.npy", np.zeros((0, 4), dtype=np.float32))
    (tmp / "notnpy.npy").write_text("not an array\n")
    ragged = np.array([2, 0, 0, 3, 0, 0, 0], dtype=np.int32)  # a 2-wide row, then a 3-wide one
    ragged[[1, 2, 4, 5, 6]] = np.float32(1.0).view(np.int32)
    ragged.tofile(tmp / "ragged.fvecs")
    (tmp / "empty.fvecs").write_bytes(b"")
    (tmp / "binary.txt").write_bytes(b"\x7fELF\x00\x00\x01binary")
    (tmp / "emptydir").mkdir()
    from vqladder.io import own_dir

    own_dir(tmp / "run-nockpt", "run")  # a run the tool started, killed before its first checkpoint
    (tmp / "plan.yaml").write_text("experiment: planning\nseeds: [0]\n")
    (tmp / "unknown-exp.yaml").write_text("experiment: teleport\n")
    (tmp / "run-nockpt" / "config.yaml").write_text("name: run-nockpt\n")
    (tmp / "run-nockpt" / "metrics.jsonl").write_text("")
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
    shutil.copytree(run, tmp / "badtok")  # a run whose tokenizer file was truncated
    (tmp / "badtok" / "tokenizer" / "tokenizer_meta.json").write_text('{"spec": ')
    shutil.copytree(ladder, tmp / "ladder-missing")
    shutil.rmtree(tmp / "ladder-missing" / "level2")
    shutil.copytree(ladder, tmp / "ladder-noprior")
    shutil.rmtree(tmp / "ladder-noprior" / "prior")
    # a user's folder and files with tool-like names, a link, a FIFO; corrupted run files
    (tmp / "userdir").mkdir()
    for name in ("config.yaml", "meta.json", "results.json", ".lock", "index.json"):
        (tmp / "userdir" / name).write_text(f"the user's {name}\n")
    (tmp / "usernotes").mkdir()
    (tmp / "usernotes" / "notes.md").write_text("# the user's notes (a folder with .md files looks like results)\n")
    (tmp / "user.html").write_text("<p>the user's page</p>\n")
    (tmp / "user.png").write_bytes(b"\x89PNG the user's picture")
    (tmp / "link.html").symlink_to(tmp / "user.html")
    os.mkfifo(tmp / "fifo")
    (tmp / "unhashable.yaml").write_text("? [a, b]\n: 1\n")
    shutil.copytree(run, tmp / "badresults")
    (tmp / "badresults" / "results.json").write_text('{"acc": 0.')
    own_dir(tmp / "badepisodes", "experiment")  # an experiment directory of the tool's
    (tmp / "badepisodes" / "results.md").write_text("# results\n")
    (tmp / "badepisodes" / "episodes.json").write_text("[{")
    (tmp / "planfake" / "seed0").mkdir(parents=True)
    (tmp / "planfake" / "plan.yaml").write_text("experiment: planning\nseeds: [0]\n")
    sweep_cfg = tmp / "sweep.yaml"
    sweep_cfg.write_text(yaml.safe_dump({"name": "sw", "out_dir": str(tmp / "runs"), "base": to_dict(cfg)}))
    return {"tmp": tmp, "corpus": corpus, "data": data, "cfg": cfg_path, "run": run, "ladder": ladder,
            "ladder_cfg": lcfg_path, "cfg_sweep": sweep_cfg}


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


def category(argv: str) -> str:
    """The category a hand-written case belongs to, from its subcommand."""
    cmd = argv.split()[0]
    return {"prepare": "corpus and prepare", "train": "configs and training", "fly": "configs and training",
            "sweep": "configs and training",
            "eval": "runs and checkpoints", "decode": "codes and text", "encode": "codes and text",
            "ladder-decode": "ladder", "ladder-encode": "ladder", "generate": "ladder", "train-ladder": "ladder",
            "embed": "embeddings", "plan-experiment": "planning", "variable": "variable-length codes",
            "video": "pixel videos"}.get(cmd, "other")


def print_docs() -> None:
    import tempfile

    from fuzz_cases import CONFIG_COMMANDS, fuzz_overrides

    with tempfile.TemporaryDirectory() as d:
        ctx = make_context(Path(d))
        names = {"{tmp}": "…", "{corpus}": "CORPUS.txt", "{cfg}": "CONFIG.yaml", "{data}": "DATA_DIR",
                 "{run}": "RUN_DIR", "{ladder}": "LADDER_DIR", "{ladder_cfg}": "LADDER.yaml",
                 "{cfg_sweep}": "SWEEP.yaml"}
        print("# Bad inputs and what they get\n")
        print("Printed by `.venv/bin/python tests/bad_input_cases.py > docs/bad-inputs.md` from the real messages;")
        print("every case is checked by `tests/cli/test_cli.py` and `tests/test_bad_inputs.py`. Each exits with code 2,")
        print("prints exactly one `error: …` line on stderr (a command run without a CONFIG.yaml may first print one")
        print("`note: …` line saying it runs the built-in defaults) and changes no file outside its run directory.")
        print("Other exits: 1 with one `internal error: …` line and the traceback in `<run>/error.log` (or a temp")
        print("file) for a bug of ours, or when some sweep cells failed; 130 for Ctrl-C; 141, silently, when the")
        print("reader of stdout goes away (`vqladder encode … | head -1`). Temporary paths are shown as `…`.\n")
        print("## Generated cases per subcommand\n")
        print("Every numeric field (and run name) of each command's config, nested sections included, is tried with")
        print("0, -1, -7 and 10^12 (integers), 0, -1, ±inf, nan and 1e400 (numbers), `[]`, `[0]`, `[-1]`, `[nan]` and")
        print("`[10^12]` (lists), and `''`, `../escape`, `a/b`, `.` (names). A value outside the range declared beside")
        print("the field (`config.py`: `PosInt`, `Unit`, …) is rejected before anything is written; the in-range")
        print("values (0 = off, -1 = disabled …) are the fields' documented settings.\n")
        print("| subcommand | values tried | rejected with one line, exit 2 | in range |")
        print("|---|---|---|---|")
        for cmd in CONFIG_COMMANDS:
            r = list(fuzz_overrides(cmd))
            rej = sum(1 for _, x in r if x)
            print(f"| `vqladder {cmd}` | {len(r)} | {rej} | {len(r) - rej} |")

        flags = numeric_flags()
        print(f"\nNumeric flags: each of the {len(flags)} numeric options of the subcommands (`--chunks`, `--top-p`, …)"
              f" is tried with nan, inf, -7, 1e12 and abc (and 0.5 for integers): {5 * len(flags) + sum(t == 'int' for *_, t in flags)}"
              " values, each one line and exit 2.")
        print("\nPath arguments (a missing path, a directory where a file belongs, a file where a directory belongs,"
              " an unwritable place, the current directory):\n")
        print("| # | case | message |")
        print("|---|---|---|")
        for i, (what, argv, _expect) in enumerate(path_cases(ctx), 1):
            _code, err = run_case(" ".join(__import__("shlex").quote(str(a)) for a in argv), ctx)
            msg = [l for l in err.strip().splitlines() if l.startswith("error:")][-1]
            print(f"| {i} | {what} | {msg.replace(str(ctx['tmp']), '…').replace('|', chr(92) + '|')} |")
        groups: dict = {}
        for case in CASES:
            groups.setdefault(category(case[1]), []).append(case)
        n = 0
        for cat, cases in groups.items():
            print(f"\n## {cat[0].upper() + cat[1:]}\n")
            print("| # | bad input | command | exit | message |")
            print("|---|---|---|---|---|")
            for what, argv, _expect in cases:
                n += 1
                code, err = run_case(argv, ctx)
                msg = [l for l in err.strip().splitlines() if not l.startswith("note:")][-1]
                msg = msg.replace(str(ctx["tmp"]), "…").replace("|", "\\|")
                cmd = argv
                for k, v in names.items():
                    cmd = cmd.replace(k, v)
                cmd = "vqladder " + cmd.replace("{{", "{").replace("}}", "}").replace("|", "\\|")
                print(f"| {n} | {what} | `{cmd}` | {code} | {msg} |")
        print("\n## Also checked (tests/test_bad_inputs.py)\n")
        print("- invalid UTF-8 on stdin or in `--text`: `error: input is not valid UTF-8 text …`;")
        print("- codes too large for int64: `error: code out of range …`;")
        print("- a YAML file with a key given twice: `error: config file …: key 'train' appears twice …`;")
        print("- `eval --data` prepared with another tokenizer: refused (the ids would mean other tokens);")
        print("- `bpe:N` larger than the corpus can give: `error: bpe:N: this corpus gives only M BPE entries …`;")
        print("- two writers on one run directory (`train` twice, or a run and its `--resume`): the second gets")
        print("  `error: run directory … is in use by another vqladder process (pid N)`; the lock (`fcntl.flock` on")
        print("  `<run>/.lock`) dies with its holder, so a killed run resumes at once; under torchrun rank 0 holds it;")
        print("- ownership (tests/test_io.py): every folder the tool makes carries a `.vqladder` marker; a")
        print("  non-empty folder without it (and without verified checkpoints or shards from before markers) is")
        print("  refused by every command that writes, with and without `--force`, `--fresh`, `--resume`,")
        print("  `--retrain`, and nothing in it changes, byte for byte; `--force` over a prepared folder replaces")
        print("  only `meta.json`, `train.bin`, `val.bin` and `tokenizer/`; `demo --fresh` deletes only the tool's")
        print("  own files of an earlier demo run;")
        print("- file outputs (`report -o`, `video generate/show --out`): a link, a folder, a FIFO or a device is")
        print("  never replaced, `--overwrite` or not; a plain file the tool did not write needs `--overwrite`, and")
        print("  keeps its permissions;")
        print("- a run's record: a refused `--resume` and a resume of a finished run rewrite nothing; `eval`,")
        print("  `report` and `--resume` refuse data whose shards or tokenizer changed since training;")
        print("- a changed stage in an experiment is refused (`--retrain` trains it and everything built on it")
        print("  again); a second `prepare` on the same folder is refused while the first runs.")
        print("\nNot errors: undecodable bytes in a text corpus are replaced by U+FFFD and counted in one warning line"
              " (`warning: N undecodable byte(s) …`) and in `meta.json`'s `replacements`.")


def numeric_flags():
    """(subcommand words, flag) for every numeric option of every subcommand, read from the parser itself."""
    import argparse

    from vqladder.cli import build_parser

    def walk(parser, words):
        for act in parser._actions:
            if isinstance(act, argparse._SubParsersAction):
                for name, sub in act.choices.items():
                    yield from walk(sub, words + [name])
            elif act.option_strings and callable(act.type) and act.type.__name__ in ("int", "float"):
                yield words, act.option_strings[0], act.type.__name__

    return list(walk(build_parser(), []))


def path_cases(ctx) -> list[tuple[str, list[str], str]]:
    t = ctx["tmp"]
    f = t / "corpus.txt"  # an existing file where a directory belongs
    d = t / "emptydir"    # an existing directory where a file belongs
    miss = t / "missing" / "x"
    ro = "/proc/vqladder-cannot-write"
    cfg, run, lad = ctx["cfg"], ctx["run"], ctx["ladder"]
    return [
        ("prepare: corpus missing", ["prepare", miss, "-o", t / "o1"], "does not exist"),
        ("prepare: output is a file", ["prepare", f, "-o", f], "not a directory"),
        ("prepare: output unwritable", ["prepare", f, "-t", "bytes", "-o", ro + "/d"], "cannot write"),
        ("prepare: output is the current directory", ["prepare", f, "-o", "."], "current directory"),
        ("train: config missing", ["train", miss], "not found"),
        ("train: config is a directory", ["train", d], "is a directory"),
        ("train: out_dir is a file", ["train", cfg, f"out_dir={f}"], "not a directory"),
        ("train: out_dir unwritable", ["train", cfg, f"out_dir={ro}"], "run directory"),
        ("eval: run missing", ["eval", miss], "no such run"),
        ("eval: run is a file", ["eval", f], "checkpoint"),
        ("eval: --data missing", ["eval", run, "--data", miss], "not a prepared data directory"),
        ("eval: --data is a file", ["eval", run, "--data", f], "not a prepared data directory"),
        ("encode: --file missing", ["encode", run, "--file", miss], "no such file"),
        ("encode: --file is a directory", ["encode", run, "--file", d], "is a directory"),
        ("decode: run missing", ["decode", miss, "--codes", "1"], "no such run"),
        ("sweep: out_dir is a file", ["sweep", f"out_dir={f}", "base.data.path=" + str(ctx["data"])],
         "not a directory"),
        ("train-ladder: config is a directory", ["train-ladder", d], "is a directory"),
        ("train-ladder: out_dir is a file", ["train-ladder", ctx["ladder_cfg"], f"out_dir={f}"], "not a directory"),
        ("generate: ladder missing", ["generate", miss], "ladder"),
        ("generate: ladder is a file", ["generate", f], "ladder"),
        ("generate: --prompt-file missing", ["generate", lad, "--prompt-file", miss], "no such file"),
        ("generate: --prompt-file is a directory", ["generate", lad, "--prompt-file", d], "is a directory"),
        ("ladder-encode: --file is a directory", ["ladder-encode", lad, "--file", d], "is a directory"),
        ("ladder-decode: ladder missing", ["ladder-decode", miss, "--codes", "1"], "ladder"),
        ("plan: run missing", ["plan", miss], "not a plan-experiment directory"),
        ("plan: run is a file", ["plan", f], "not a plan-experiment directory"),
        ("plan-experiment: out_dir is a file", ["plan-experiment", f"out_dir={f}"], "not a directory"),
        ("variable: out_dir is a file", ["variable", f"out_dir={f}"], "not a directory"),
        ("video train: out_dir is a file", ["video", "train", f"out_dir={f}"], "not a directory"),
        ("embed search: index missing", ["embed", "search", miss, "--query", "q"], "not an embedding index"),
        ("embed encode: index is a file", ["embed", "encode", f, "--text", "q"], "not an embedding index"),
        # runs of the wrong kind, and a broken tokenizer file
        ("eval: a ladder directory", ["eval", lad], "no valid checkpoint"),
        ("encode: a ladder directory", ["encode", lad, "--text", "x"], "no valid checkpoint"),
        ("generate: a compressor run", ["generate", run], "missing level 1"),
        ("ladder-decode: a compressor run", ["ladder-decode", run, "--codes", "1"], "missing level 1"),
        ("plan: a ladder directory", ["plan", lad], "not a plan-experiment directory"),
        ("embed search: a compressor run", ["embed", "search", run, "--query", "x"], "not an embedding index"),
        ("encode: a run whose tokenizer file is truncated", ["encode", t / "badtok", "--text", "x"], "corrupted"),
        ("decode: a run whose tokenizer file is truncated", ["decode", t / "badtok", "--codes", "1 2 3 4 5 6 7 8"],
         "corrupted"),
    ]


if __name__ == "__main__":
    print_docs()
