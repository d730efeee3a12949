"""Abstract vocabularies over Matryoshka embeddings: the adapter and coarse-to-fine prefix codes.

* ``MatryoshkaAdapter``: a residual MLP on frozen embeddings (identity at init), trained so every prefix
  (16, 32, 64, 128, 256, 384 dims) keeps the full embedding's neighbour structure -- a KL between softmaxed
  similarity rows of the full teacher embedding and of each normalised prefix (similarity distillation over
  the batch).
* ``PrefixRVQ``: residual VQ where stage i quantises the residual restricted to prefix ``prefixes[i]`` with
  a 256-code codebook (1 byte): level 1 codes come from the shortest prefix (a small vocabulary of big
  concepts), every next level refines with a longer prefix. ``prefixes = [dim] * B`` is plain residual VQ.
  Codebooks are our ``VectorQuantizer`` (k-means init + EMA), fit on a training split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from ..config import PosInt
from ..errors import VQLadderError
from ..io import read_metrics
from ..models.registry import register
from ..nn import seeded
from ..quantize.prefix_rvq import PREFIXES, PrefixRVQ, prefix_schedule  # noqa: F401
from ..quantize.qinco import QINCo
from .data import normalize


# -- Matryoshka adapter ---------------------------------------------------------------------------------------------
@dataclass
class AdapterConfig:
    dim: PosInt = 384
    hidden: PosInt = 768
    seed: int = 0
    prefixes: list[int] = field(default_factory=lambda: list(PREFIXES))  # the prefixes its loss keeps faithful


@register("matryoshka_adapter", AdapterConfig)
class MatryoshkaAdapter(nn.Module):
    """x -> normalise(x + MLP(x)); the MLP's output layer starts at zero (identity at init). ``loss(x)``: the
    prefix-neighbour loss of the adapted batch against the frozen one (what the trainer minimises)."""

    def __init__(self, cfg: AdapterConfig):
        super().__init__()
        self.config = cfg
        with seeded(cfg.seed):
            self.up = nn.Linear(cfg.dim, cfg.hidden)
            self.down = nn.Linear(cfg.hidden, cfg.dim)
            nn.init.zeros_(self.down.weight)
            nn.init.zeros_(self.down.bias)
        self.dim = cfg.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x + self.down(F.gelu(self.up(x))), dim=-1)

    def loss(self, x: torch.Tensor):
        loss = prefix_neighbour_loss(self(x), x, self.config.prefixes)
        return loss, {}


def prefix_neighbour_loss(student: torch.Tensor, teacher: torch.Tensor, prefixes=PREFIXES, tau: float = 0.05) -> torch.Tensor:
    """Mean over prefixes of KL(softmax(teacher sims / tau) || softmax(prefix sims / tau)), rows of the batch,
    the diagonal excluded: low when every prefix ranks the batch's neighbours as the full embedding does."""
    n = teacher.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=teacher.device)
    t = F.normalize(teacher, dim=-1)
    p_t = F.softmax((t @ t.T / tau).masked_fill(eye, -1e9), -1)
    loss = 0.0
    used = [p for p in prefixes if p <= student.shape[1]]
    for p in used:
        s = F.normalize(student[:, :p], dim=-1)
        log_s = F.log_softmax((s @ s.T / tau).masked_fill(eye, -1e9), -1)
        loss = loss + F.kl_div(log_s, p_t, reduction="batchmean")
    return loss / len(used)


def train_adapter(emb: np.ndarray, run_dir: Path, steps: int = 300, batch: int = 512, lr: float = 1e-3, seed: int = 0,
                  prefixes=PREFIXES, log=None) -> tuple[MatryoshkaAdapter, list[float]]:
    """Fit the adapter on frozen embeddings through the stage runner into ``run_dir`` (constant learning rate,
    AdamW without decay, fp32; a finished run is loaded, not retrained); returns it (eval mode) and its training
    loss curve (one value per step, from ``metrics.jsonl``)."""
    from ..train import TrainerConfig
    from ..train.rows import train_rows

    x = np.asarray(emb, dtype=np.float32)
    model = MatryoshkaAdapter(AdapterConfig(dim=x.shape[1], seed=seed, prefixes=list(prefixes)))
    tcfg = TrainerConfig(steps=steps, batch_size=min(batch, len(x)), lr=lr, min_lr_ratio=1.0, warmup=0,
                         weight_decay=0.0, betas=[0.9, 0.999], grad_clip=-1.0, precision="fp32", seed=seed,
                         eval_every=-1, ckpt_every=-1, log_every=1, progress=False, mfu=False)
    ad = train_rows("Matryoshka adapter", Path(run_dir), model, tcfg, x, log or (lambda m: None), fingerprint=True)
    curve = [r["train_loss"] for r in read_metrics(run_dir) if "train_loss" in r]
    return ad.eval(), curve


# -- implicit neural codebooks as a trainable, checkpointable model -----------------------------------------------------
@dataclass
class QINCoConfig:
    dim: PosInt = 384
    stages: PosInt = 16                  # bytes per vector (256 codewords a stage)
    codebook_size: PosInt = 256
    hidden: PosInt = 128                 # MLP block width
    blocks: PosInt = 1                   # residual MLP blocks per codeword (1: the fast exact candidate errors)
    preselect: PosInt = 16               # candidates per stage and beam at encoding (QINCo2 pre-selection)
    beam: PosInt = 1                     # encoding beam
    train_preselect: PosInt = 16         # candidates per stage during training
    prefixes: list[int] = field(default_factory=list)  # per-stage prefix lengths (Matryoshka schedule); [] = all dims
    loss_stages: list[int] = field(default_factory=list)  # stage counts whose error the loss averages; [] = every stage


@register("qinco", QINCoConfig)
class QINCoCodec(QINCo):
    """``quantize.QINCo`` built from a ``QINCoConfig``: what the trainer trains and ``load_model`` rebuilds."""

    def __init__(self, cfg: QINCoConfig):
        super().__init__(cfg.dim, cfg.stages, cfg.codebook_size, cfg.hidden, cfg.blocks, cfg.preselect, cfg.beam,
                         cfg.train_preselect, cfg.prefixes or None, cfg.loss_stages or None)
        self.config = cfg


@torch.no_grad()
def apply_adapter(ad: MatryoshkaAdapter | None, emb: np.ndarray, batch: int = 4096) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float32)
    if ad is None or not len(x):  # (an empty split stays empty)
        return x
    return np.concatenate([ad(torch.from_numpy(x[s:s + batch])).numpy() for s in range(0, len(x), batch)])


class CodeIndex:
    """A built index: embed new text, encode it to codes, search the database by decoded codes."""

    def __init__(self, path: str | Path, embedder=None):
        d = Path(path)
        if not (d / "index.json").is_file():
            raise VQLadderError(f"{d} is not an embedding index (no index.json); build one with `vqladder embed build`")
        self.meta = json.loads((d / "index.json").read_text())
        if not (d / "model.safetensors").is_file():
            raise VQLadderError(f"{d} has no model.safetensors (an index built before safetensors: rebuild it with "
                                "`vqladder embed build`)")
        state = safetensors.torch.load_file(d / "model.safetensors")
        part = lambda prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        dim = int(self.meta["dim"])
        self.adapter = None
        if self.meta.get("adapter"):
            self.adapter = MatryoshkaAdapter(AdapterConfig(dim=dim))
            self.adapter.load_state_dict(part("adapter."))
            self.adapter.eval()
        if self.meta.get("quantizer", "prefix-rvq") == "qinco":
            self.q = QINCoCodec(QINCoConfig(**self.meta["qinco"]))
        else:
            self.q = PrefixRVQ(dim, self.meta["prefixes"])
        self.q.load_state_dict(part("quantizer."))
        self.q.eval()
        self.codes = np.load(d / "codes.npy")
        self.texts = json.loads((d / "texts.json").read_text())
        self._db = normalize(self.q.decode(self.codes))
        self._embedder = embedder

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts or not any(t.strip() for t in texts):
            raise VQLadderError("no text given (empty text list)")
        if self._embedder is None:
            from ..data.embedder import load_embedder

            self._embedder = load_embedder(self.meta["model"])
        return apply_adapter(self.adapter, np.asarray(self._embedder(texts), dtype=np.float32))

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.q.encode(self.embed(texts), beam=int(self.meta.get("beam", 1)))

    def search(self, text: str, k: int = 5) -> list[tuple[float, str, list[int]]]:
        qv = self.embed([text])
        scores = (torch.from_numpy(normalize(qv)) @ torch.from_numpy(self._db).T)[0]
        top = scores.topk(min(k, len(self.texts))).indices.tolist()
        return [(float(scores[i]), self.texts[i], self.codes[i].tolist()) for i in top]
