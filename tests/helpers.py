"""Tiny configs shared by the training and CLI tests."""

from vqladder.config import build
from vqladder.text.compressor import RunConfig


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
        "model": {"in_len": 32, "out_len": out_len, "d_model": 32, "n_heads": 2, "downsample": "pool", "enc_layers": 1, "latent_layers": 1,
                  "dec_layers": 1, "quantizer": {"kind": kind, "codebook_size": 256, "codebook_dim": 8}},
        "train": {"steps": steps, "batch_size": 16, "lr": 3e-3, "warmup": 5, "eval_every": -1, "ckpt_every": -1,
                  "log_every": 5, "progress": False, "precision": "fp32", **train},
        "eval": {"max_chunks": 64},
    })


def tiny_ladder_config(data_path, out_dir, name="lad", steps=20, mode="codes"):
    """Three tiny levels, upsamplers, prior and flat LM: seconds on CPU. ``codes``: 32 tokens -> 8 -> 4 -> 2 codes,
    each level over the codes below; ``text``: every level over the tokens, 16 -> 4, 32 -> 4, 32 -> 2 (a level's
    chunk covers whole chunks of the level below: level 1 has 8 codes under a top chunk of 32 tokens)."""
    import json
    from pathlib import Path

    from vqladder.text.ladder_recipe import LadderConfig

    meta = json.loads((Path(data_path) / "meta.json").read_text())
    small = {"d_model": 32, "n_heads": 2, "enc_layers": 1, "latent_layers": 1, "dec_layers": 1,
             "quantizer": {"codebook_size": 256}}
    train = {"steps": steps, "batch_size": 8, "lr": 3e-3, "warmup": 5, "eval_every": -1, "ckpt_every": 10,
             "log_every": 5, "progress": False, "precision": "fp32"}
    return build(LadderConfig, {
        "name": name, "out_dir": str(out_dir),
        "data": {"path": str(data_path), "corpus": meta["corpus"], "tokenizer": meta["tokenizer"]},
        "mode": mode,
        "levels": [{"model": {"in_len": i, "out_len": o, **small}, "train": train}
                   for i, o in ([(32, 8), (8, 4), (4, 2)] if mode == "codes" else [(16, 4), (32, 4), (32, 2)])],
        "upsampler": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 1},
        "upsampler_train": train, "prior": {"context": 8, "d_model": 32, "n_heads": 2, "n_layers": 1},
        "prior_train": train, "flat": {"d_model": 32, "n_heads": 2, "n_layers": 1}, "flat_train": train,
        "eval": {"max_chunks": 8, "batch_size": 8, "samples": 1, "sample_chunks": 1},
    })
