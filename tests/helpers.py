"""Tiny configs shared by the training and CLI tests."""

from vqladder.config import build
from vqladder.experiments.rung1 import RunConfig


def tiny_run_config(data_path, out_dir, name="t", kind="fsq", steps=40, out_len=8, **train):
    import json
    from pathlib import Path

    meta_p = Path(data_path) / "meta.json"
    data = {"path": str(data_path)}
    if meta_p.is_file():  # the prepared directory's own corpus and tokenizer
        meta = json.loads(meta_p.read_text())
        data.update(corpus=meta["corpus"], tokenizer=meta["tokenizer"])
    return build(RunConfig, {
        "name": name, "out_dir": str(out_dir),
        "data": data,
        "model": {"in_len": 32, "out_len": out_len, "d_model": 32, "n_heads": 2, "enc_layers": 1, "latent_layers": 1,
                  "dec_layers": 1, "quantizer": {"kind": kind, "codebook_size": 256, "codebook_dim": 8}},
        "train": {"steps": steps, "batch_size": 16, "lr": 3e-3, "warmup": 5, "eval_every": -1, "ckpt_every": -1,
                  "log_every": 5, "progress": False, "precision": "fp32", **train},
        "eval": {"max_chunks": 64},
    })


def tiny_ladder_config(data_path, out_dir, name="lad", steps=20):
    """Three tiny levels (32 tokens -> 8 -> 4 -> 2 codes), upsamplers, prior and flat LM: seconds on CPU."""
    import json
    from pathlib import Path

    from vqladder.experiments.ladder import LadderConfig

    meta = json.loads((Path(data_path) / "meta.json").read_text())
    small = {"d_model": 32, "n_heads": 2, "enc_layers": 1, "latent_layers": 1, "dec_layers": 1,
             "quantizer": {"codebook_size": 256}}
    train = {"steps": steps, "batch_size": 8, "lr": 3e-3, "warmup": 5, "eval_every": -1, "ckpt_every": 10,
             "log_every": 5, "progress": False, "precision": "fp32"}
    return build(LadderConfig, {
        "name": name, "out_dir": str(out_dir),
        "data": {"path": str(data_path), "corpus": meta["corpus"], "tokenizer": meta["tokenizer"]},
        "levels": [{"model": {"in_len": 32, "out_len": 8, **small}, "train": train},
                   {"model": {"in_len": 8, "out_len": 4, **small}, "train": train},
                   {"model": {"in_len": 4, "out_len": 2, **small}, "train": train}],
        "upsampler": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 1},
        "upsampler_train": train, "prior": {"context": 8, "d_model": 32, "n_heads": 2, "n_layers": 1},
        "prior_train": train, "flat": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "flat_train": train,
        "eval": {"max_chunks": 8, "batch_size": 8, "samples": 1, "sample_chunks": 1},
    })
