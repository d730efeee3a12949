"""The optimiser of every stage, and the one place that decides which parameter gets which update rule.

``train.optimizer``:
  * ``adamw``  AdamW for everything; weight decay on matrices only (the recipe the README's older numbers used).
  * ``muon``   Muon (``torch.optim.Muon``: momentum, then Newton-Schulz orthogonalisation of the update) for the
               *hidden matrices*, the 2-D weights of the transformer blocks' attention and MLP layers; AdamW for
               everything else: embeddings, output heads, norms and gains, quantiser projections, biases. Muon's
               learning rate is scaled per matrix to AdamW's update RMS (``adjust_lr_fn="match_rms_adamw"``), so one
               ``train.lr`` and one schedule drive both (Moonshot's rule; modded-nanogpt uses the same split).

``Optimizers`` holds one or two torch optimisers behind the interface the trainer uses (``param_groups``, ``step``,
``zero_grad``, ``state_dict`` / ``load_state_dict`` for exact resume).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import VQLadderError
from ..nn.layers import MLP, Attention

OPTIMIZERS = ("adamw", "muon")


def newton_schulz(g: torch.Tensor, steps: int = 5, coefficients=(3.4445, -4.775, 2.0315), eps: float = 1e-7,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The quintic Newton-Schulz orthogonalisation of ``torch.optim.Muon`` (Keller Jordan's), in ``dtype``:
    torch runs it in bf16, which a CPU without native bf16 emulates about 700x slower than fp32 here; in bf16 it
    gives torch's result exactly (tests/train/test_optim.py)."""
    a, b, c = coefficients
    x = g.to(dtype)
    if g.size(0) > g.size(1):
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if g.size(0) > g.size(1) else x


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` (same update, state and ``match_rms_adamw`` scaling) with the orthogonalisation run in
    ``ns_dtype``: bf16 where it is native (CUDA, CPUs with AMX/AVX512-BF16), fp32 elsewhere."""

    def __init__(self, params, ns_dtype: torch.dtype = torch.float32, **kw):
        super().__init__(params, **kw)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                buf = st["momentum_buffer"]
                buf.lerp_(p.grad, 1 - mom)
                update = p.grad.lerp(buf, mom) if group["nesterov"] else buf
                update = newton_schulz(update, group["ns_steps"], group["ns_coefficients"], group["eps"],
                                       self.ns_dtype)
                p.mul_(1 - lr * wd)
                p.add_(update.to(p.dtype), alpha=-lr * 0.2 * math.sqrt(max(p.shape[0], p.shape[1])))
        return None


def split_params(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    """``{"muon": hidden matrices, "decay": other matrices, "no_decay": vectors and scalars}`` (trainable only;
    each parameter once, even when shared)."""
    hidden: dict[int, torch.Tensor] = {}
    for module in model.modules():
        if isinstance(module, (Attention, MLP)):
            for p in module.parameters():
                if p.requires_grad and p.dim() == 2:
                    hidden[id(p)] = p
    out: dict[str, list[torch.Tensor]] = {"muon": list(hidden.values()), "decay": [], "no_decay": []}
    seen = set(hidden)
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        out["decay" if p.dim() >= 2 else "no_decay"].append(p)
    return out


class Optimizers:
    """AdamW alone, or Muon for the hidden matrices beside AdamW for the rest, as one optimiser."""

    def __init__(self, model: nn.Module, kind: str, lr: float, betas, weight_decay: float, fused: bool | None = None,
                 momentum: float = 0.95, ns_dtype: torch.dtype = torch.float32):
        if kind not in OPTIMIZERS:
            raise VQLadderError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")
        groups = split_params(model)
        if kind == "adamw":  # in the model's own order, as before Muon (old checkpoints' state lines up)
            trainable = [p for p in model.parameters() if p.requires_grad]
            groups = {"muon": [], "decay": [p for p in trainable if p.dim() >= 2],
                      "no_decay": [p for p in trainable if p.dim() < 2]}
        self.kind = kind
        adam_groups = [g for g in ({"params": groups["decay"], "weight_decay": weight_decay},
                                   {"params": groups["no_decay"], "weight_decay": 0.0}) if g["params"]]
        self.opts: dict[str, torch.optim.Optimizer] = {}
        if adam_groups:
            self.opts["adamw"] = torch.optim.AdamW(adam_groups, lr=lr, betas=tuple(betas), fused=fused)
        if groups["muon"]:
            self.opts["muon"] = Muon(groups["muon"], ns_dtype=ns_dtype, lr=lr, weight_decay=weight_decay,
                                     momentum=momentum, adjust_lr_fn="match_rms_adamw")

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.opts.values() for g in o.param_groups]

    def step(self) -> None:
        for o in self.opts.values():
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.opts.values():
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        if self.kind == "adamw":  # the layout of checkpoints from before Muon: they resume as they are
            return self.opts["adamw"].state_dict()
        return {name: o.state_dict() for name, o in self.opts.items()}

    def load_state_dict(self, state: dict) -> None:
        if self.kind == "adamw":
            if "state" not in state:
                raise VQLadderError("the checkpoint's optimiser state is Muon's; resume with train.optimizer=muon")
            self.opts["adamw"].load_state_dict(state)
            return
        if "state" in state:
            raise VQLadderError("the checkpoint's optimiser state is AdamW's; resume with train.optimizer=adamw")
        for name, o in self.opts.items():
            o.load_state_dict(state[name])
