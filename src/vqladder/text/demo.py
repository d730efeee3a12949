"""``vqladder demo``: the first rung end to end on the built-in corpus in about 5.5 minutes on 2 CPU cores.

Prepares the built-in corpus (Python's own documentation) with a 1,024-entry byte-level BPE (fitted on the
train split), trains the local-first compressor (``downsample: segment``) of 256-token chunks into 64 FSQ
codes (4,375-entry codebook, ~3 bits/token) and, beside it, the same model with 4 residual FSQ stages (12.1
bits/token, near-lossless); then prints both held-out rows and the same held-out chunks reconstructed at both
rates, every wrong token marked, and writes the HTML report. Finished run directories are reused
(``--fresh`` retrains).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

from ..config import build
from ..data import load_shards
from .compressor import RunConfig, train_run

DEMO_PRESET = {
    "name": "demo",
    "data": {"path": "data/builtin-bpe1024", "corpus": "builtin", "tokenizer": "bpe:1024"},
    "model": {"in_len": 256, "out_len": 64, "d_model": 192, "n_heads": 3, "downsample": "segment", "seg_layers": 2,
              "latent_layers": 2, "enc_layers": 0, "dec_layers": 0, "quantizer": {"kind": "fsq", "codebook_size": 4096}},
    "train": {"steps": 2400, "batch_size": 8, "lr": 2e-3, "warmup": 60, "eval_every": 800, "ckpt_every": 400,
              "log_every": 50},
    "eval": {"max_chunks": -1},
}


NEAR_LOSSLESS_DEPTH = 4      # residual FSQ stages of the demo's second run (4 x 3.02 = 12.1 bits/token)
NEAR_LOSSLESS_STEPS = 1000   # its training steps (see README: measured accuracy and time)

# the train settings that change what a finished demo run holds (not logging, progress or threads)
TRAINING_KEYS = ("steps", "batch_size", "grad_accum", "lr", "min_lr_ratio", "warmup", "weight_decay", "betas",
                 "grad_clip", "seed", "max_time")


def demo_config(out_dir: str = "runs", data_dir: str | None = None, steps: int = -1) -> RunConfig:
    cfg = build(RunConfig, json.loads(json.dumps(DEMO_PRESET)))
    cfg.out_dir = out_dir
    if data_dir:
        cfg.data.path = data_dir
        meta_p = Path(data_dir) / "meta.json"
        if meta_p.is_file():  # an already prepared directory: its own corpus and tokenizer
            try:
                meta = json.loads(meta_p.read_text())
                cfg.data.corpus, cfg.data.tokenizer = meta["corpus"], meta["tokenizer"]
            except (ValueError, KeyError):
                pass  # a corrupted meta.json is reported by load_shards
    if steps > 0:
        cfg.train.steps = steps
        cfg.train.warmup = min(cfg.train.warmup, max(1, steps // 10))
    return cfg


def near_lossless_config(cfg: RunConfig, steps: int = -1) -> RunConfig:
    """The demo's second run: the same compressor with 4 residual FSQ stages (12.1 bits/token, above the 10 raw
    bits of a bpe:1024 token), so that a newcomer sees what a code that keeps (almost) everything looks like."""
    c = copy.deepcopy(cfg)
    c.name = cfg.name + "-x4"
    c.model.quantizer.depth = NEAR_LOSSLESS_DEPTH
    c.train.steps = NEAR_LOSSLESS_STEPS if steps <= 0 else max(1, steps // 2)
    c.train.warmup = min(c.train.warmup, max(1, c.train.steps // 10))
    c.train.eval_every = -1
    return c


def _claim(cfg: RunConfig, fresh: bool) -> Path:
    """The run directory, ready to train into or reuse: a folder vqladder did not make is refused untouched
    (``claim_run_dir``); a demo run made with other settings is refused; ``fresh`` discards only the tool's own
    files of an earlier demo run (anything else in the folder stays)."""
    from ..config import read_yaml, to_dict
    from ..errors import VQLadderError
    from ..io import claim_run_dir, clear_owned

    run = claim_run_dir(cfg.run_dir)  # one writer; refuses, untouched, a non-empty folder the tool did not make
    saved = run / "config.yaml"
    if fresh and saved.is_file():
        print(f"--fresh: discarding the earlier demo run in {run} (only the files vqladder wrote)", file=sys.stderr)
        clear_owned(run)
    elif saved.is_file():
        old = read_yaml(saved)
        now = to_dict(cfg)
        old.get("model", {}).pop("vocab_size", None)
        now["model"].pop("vocab_size", None)
        changed = [k for k in ("data", "model") if old.get(k) != now[k]]
        changed += ["train"] if any(old.get("train", {}).get(k) != now["train"][k] for k in TRAINING_KEYS) else []
        if changed:
            steps = old.get("train", {}).get("steps")
            raise VQLadderError(f"{run} holds a demo run made with other {'/'.join(changed)} settings ({steps} steps); "
                                f"pass --fresh to discard it and retrain, or --out to use another directory")
    return run


def _train_or_reuse(cfg: RunConfig, run: Path) -> None:
    prev = json.loads((run / "results.json").read_text()) if (run / "results.json").is_file() else {}
    if prev.get("step") != cfg.train.steps:
        m = cfg.model
        depth = f" x {m.quantizer.depth} residual stages" if m.quantizer.depth > 1 else ""
        print(f"training {m.in_len} -> {m.out_len} codes ({m.quantizer.kind}, codebook {m.quantizer.codebook_size}"
              f"{depth}) for {cfg.train.steps} steps; run directory {run}", file=sys.stderr)
        train_run(cfg, resume=(run / "checkpoints").is_dir())
    else:
        print(f"reusing the finished run in {run} (pass --fresh to retrain)")


def run_demo(out_dir: str = "runs", data_dir: str | None = None, steps: int = -1, fresh: bool = False) -> dict:
    from ..errors import VQLadderError
    from ..eval import evaluate_compressor
    from ..models import load_model
    from ..report.console import RESULT_COLUMNS, print_table, show_examples, show_side_by_side

    t0 = time.time()
    cfg = demo_config(out_dir, data_dir, steps)
    shards = load_shards(cfg.data)
    print(f"data: {shards.dir} — {shards.meta['train_tokens']:,} train / {shards.meta['val_tokens']:,} held-out "
          f"tokens, {shards.meta['tokenizer']} (vocab {shards.vocab_size})")
    near = near_lossless_config(cfg, steps)
    runs = [(cfg, _claim(cfg, fresh)), (near, _claim(near, fresh))]
    results = []
    for c, run in runs:
        _train_or_reuse(c, run)
        model, _, _ = load_model(run, expect_kind="sequence_compressor")
        res = evaluate_compressor(model, shards.val, max_chunks=-1, return_examples=3)
        res.update(compression=model.config.compression, codebook_size=model.quantizer.codebook_size)
        results.append(res)
    res, res_near = results
    print(f"\nheld-out results ({res['chunks']} chunks of {cfg.model.in_len} tokens never seen in training): the demo "
          f"run (64 codes), and the same model with {NEAR_LOSSLESS_DEPTH} residual stages (near-lossless)")
    print_table(results, RESULT_COLUMNS)
    ex, ex_near = res.pop("examples"), res_near.pop("examples")
    if [e[0] for e in ex] == [e[0] for e in ex_near]:
        print(f"\nthe same held-out chunks at {res['bits_per_token']:.2f} and {res_near['bits_per_token']:.2f} bits/token "
              f"(wrong tokens marked ⟦…⟧):")
        show_side_by_side(shards.tokenizer, [(f"{res['bits_per_token']:.1f} bits/token", ex),
                                             (f"{res_near['bits_per_token']:.1f} bits/token", ex_near)])
    else:
        show_examples(shards.tokenizer, ex)
    run = runs[0][1]
    try:
        from ..report.html import build_report

        print(f"\nreport: {build_report(run)} (open it in a browser: reconstructions, code explorer, curves)")
    except VQLadderError as e:  # the report's extra is not installed: the demo itself still succeeded
        print(f"\nno HTML report: {e}", file=sys.stderr)
    print(f"\ndone in {time.time() - t0:.0f}s. Next: vqladder eval {run} | vqladder encode {run} --text '…'")
    res["near_lossless"] = {k: v for k, v in res_near.items() if not isinstance(v, list)}
    return res
