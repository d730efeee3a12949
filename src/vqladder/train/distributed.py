"""Distributed helpers: ``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; we use gloo on CPU, nccl on CUDA.

Rank-0 printing (``print0``) keeps the training loop free of rank branches.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Initialise the process group if launched by torchrun; returns (rank, world)."""
    world = env_world()
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if world() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world()
    return t


def any_rank(flag: bool, device) -> bool:
    """True if ``flag`` is true on any rank (a collective: every rank must call it)."""
    if world() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def print0(*args, **kwargs) -> None:
    if is_main():
        kwargs.setdefault("file", sys.stdout)
        print(*args, **kwargs)


def cleanup(ok: bool = True) -> None:
    """Tear the process group down; after an error no barrier is attempted (other ranks may be gone)."""
    if dist.is_available() and dist.is_initialized():
        try:
            if ok:
                dist.barrier()
        finally:
            dist.destroy_process_group()
