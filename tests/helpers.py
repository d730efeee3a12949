"""What several test modules share: tiny configs, planted data, small fitting loops, the repository root."""

from pathlib import Path

import numpy as np
import torch

from vqladder.config import build, to_dict
from vqladder.data import WindowSampler
from vqladder.eval import evaluate_compressor
from vqladder.models import SequenceCompressor
from vqladder.planning.maze import Layout, MazeConfig
from vqladder.text.compressor import RunConfig
from vqladder.text.sweep_config import SweepConfig
from vqladder.train import Trainer

ROOT = Path(__file__).resolve().parents[1]  # the repository root


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


def one_line_error(err: str) -> str:
    # a command run without a CONFIG.yaml first says, in one `note:` line, that it runs the built-in defaults
    lines = [l for l in err.strip().splitlines() if l.strip() and not l.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def sweep_cfg(tmp_path, data="data", **grid):
    base = to_dict(tiny_run_config(tmp_path / data, tmp_path, steps=20))
    return build(SweepConfig, {"name": "sw", "out_dir": str(tmp_path), "base": base, "budget": "20",
                               "grid": {"out_len": [16, 8], "codebook_size": [256], **grid},
                               "references": {"lm": False, "local_ae": False}})


def bag_embed(texts):
    """A stand-in embedder (hashed bag of words) for the metric logic; the real one is MiniLM."""
    out = np.zeros((len(texts), 64))
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, hash(w) % 64] += 1
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)


def planted_clusters(n=600, dim=64, clusters=30, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(clusters, dim))
    x = centers[g.integers(clusters, size=n)] + 0.3 * g.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class CountingEmbedder:
    def __init__(self, dim=32):
        self.calls, self.dim = 0, dim

    def __call__(self, texts):
        self.calls += 1
        out = np.stack([np.random.default_rng(abs(hash(t)) % (1 << 32)).normal(size=self.dim) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def perturbed(model):
    """Random weights everywhere (the zero-initialised output projections would make every block the identity)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def fit_on_batches(model, batches, steps=150, lr=3e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for i in range(steps):
        loss, _ = model.loss(batches(i))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def two_rooms(door=1):
    """1x2 rooms of 2x2 cells... as a 2x2-room maze with only the wall (0,0)|(0,1) open at ``door``."""
    cfg = MazeConfig(rooms=2, room=2, max_moves=8)
    doors = np.full(cfg.n_walls, -1)
    doors[0] = door  # vertical wall between rooms (0,0) and (0,1), door at row offset `door`
    return Layout(cfg, doors)


def tiny_trainer(cfg, shards_dir, fail_after=None, select=None):
    from vqladder.data import TokenShards

    sh = TokenShards(shards_dir)
    cfg.model.vocab_size = sh.vocab_size
    model = SequenceCompressor(cfg.model)

    def factory(rank, world):
        s = WindowSampler(sh.train, cfg.model.in_len, cfg.train.batch_size, cfg.train.seed, rank, world)
        if fail_after is not None:
            orig, count = s.next_batch, [0]

            def nb():
                count[0] += 1
                if count[0] > fail_after:
                    raise Boom()
                return orig()

            s.next_batch = nb
        return s

    return Trainer(model, cfg.train, cfg.run_dir, factory,
                   lambda m: evaluate_compressor(m, sh.val, max_chunks=16),
                   {"model_config": __import__("dataclasses").asdict(cfg.model)}, select)


class Boom(Exception):
    pass


def variable_config(**kw):
    """A tiny variable-length compressor config (``kw`` overrides)."""
    from vqladder.models.variable import VariableConfig
    from vqladder.quantize import QuantizerConfig

    base = dict(vocab_size=16, in_len=32, target_ratio=4, boundary="learned", d_model=32, n_heads=2, enc_layers=1,
                latent_layers=1, dec_layers=1, quantizer=QuantizerConfig(kind="fsq", codebook_size=256))
    base.update(kw)
    return VariableConfig(**base)


def fake_cell_results(run_dir, acc, usage=0.5, bits=1.0, out_len=16, k=256, local=False):
    """A sweep cell's run directory as training leaves it (config.yaml, results.json), with planted numbers."""
    import json

    import yaml

    from vqladder.io import own_dir

    own_dir(run_dir, "run")  # as `vqladder train` makes it
    cfg = to_dict(tiny_run_config("d", "o", out_len=out_len))
    cfg["model"]["quantizer"]["codebook_size"] = k
    if local:
        cfg["model"].update(downsample="segment", latent_layers=0, enc_layers=0, dec_layers=0)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run_dir / "results.json").write_text(json.dumps(
        {"acc": acc, "exact_match": 0.0, "ce_bits": 2.0, "usage": usage, "perplexity": 10.0, "dead_codes": 3,
         "bits_per_token": bits, "codebook_size": k, "step": 20, "tokens_seen": 100, "train_time": 1.0,
         "chunks": 100}))
