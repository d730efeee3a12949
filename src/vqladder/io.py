"""Atomic file writes: write beside, fsync, rename. A kill at any moment leaves the old file or the new."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_save_npy(path: Path, array) -> None:
    """``np.save`` through ``atomic_write_bytes`` (complete or absent after a kill)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_npz(path: Path, compressed: bool = False, **arrays) -> None:
    """``np.savez`` (or ``savez_compressed``) through ``atomic_write_bytes``."""
    import io

    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written ``tmp_dir`` to ``final_dir`` (which must not exist yet)."""
    for root, _dirs, files in os.walk(tmp_dir):
        for fn in files:
            with open(os.path.join(root, fn), "rb") as f:
                os.fsync(f.fileno())
    os.replace(tmp_dir, final_dir)
    _fsync_dir(final_dir.parent)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- one writer per run directory ------------------------------------------------------------------------------
LOCK_NAME = ".lock"
_held: dict[str, int] = {}  # resolved run directory -> the descriptor holding its flock


def claim_run_dir(directory: str | Path) -> Path:
    """Create ``directory`` and take its advisory lock (``fcntl.flock`` on ``<dir>/.lock``) for this process.

    One writer per run directory: a second process gets :class:`VQLadderError` naming the holder's pid. The
    kernel drops the lock when the holder dies (kill -9 included), so a stale lock never blocks a resume. The
    lock is held until :func:`release_run_dirs` (the CLI calls it when a command ends) or the process exits;
    claiming a directory this process already holds is a no-op. Under torchrun only rank 0 claims."""
    import fcntl

    from .errors import VQLadderError

    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise VQLadderError(f"run directory {d} exists and is not a directory")
    except OSError as e:
        raise VQLadderError(f"cannot create run directory {d}: {e.strerror}")
    key = str(d.resolve())
    if key in _held:
        return d
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError as e:
        raise VQLadderError(f"run directory {d} is not writable: {e.strerror}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise VQLadderError(f"run directory {d} is in use by another vqladder process (pid {holder}); "
                            f"wait for it to end or stop it")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return d


def clear_run_dir(directory: Path) -> None:
    """Empty a claimed run directory, keeping its lock file (so the lock stays on the same file)."""
    for p in Path(directory).iterdir():
        if p.name != LOCK_NAME:
            remove_tree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def release_run_dirs() -> None:
    """Drop every run-directory lock this process holds (closing the descriptor releases the flock)."""
    while _held:
        os.close(_held.popitem()[1])
