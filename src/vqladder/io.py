"""Atomic file writes: write beside, fsync, rename. A kill at any moment leaves the old file or the new."""

from __future__ import annotations

import json
import os
import shutil
import stat
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


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically. A regular file it replaces keeps its permission bits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = os.lstat(path)
        mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else 0o666 & ~_umask()
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
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


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run directory's ``metrics.jsonl`` (none if it has none); a line cut by a kill is skipped."""
    rows, f = [], Path(run_dir) / "metrics.jsonl"
    if f.is_file():
        for line in f.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def read_json(path: str | Path):
    """A JSON file the tool wrote, or one line naming it when it is corrupted or unreadable."""
    from .errors import VQLadderError

    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise VQLadderError(f"{p} is corrupted (not valid JSON); restore it or rerun what wrote it")
    except OSError as e:
        raise VQLadderError(f"cannot read {p}: {(e.strerror or str(e)).lower()}")


def read_yaml_doc(path: str | Path):
    """A YAML file the tool wrote (a saved config), or one line naming it when it is corrupted."""
    import yaml

    from .errors import VQLadderError

    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, ValueError):
        raise VQLadderError(f"{p} is corrupted (not valid YAML); restore it or rerun what wrote it")
    except OSError as e:
        raise VQLadderError(f"cannot read {p}: {(e.strerror or str(e)).lower()}")


# -- ownership: the tool writes, replaces or deletes only inside what it made --------------------------------------
MARKER_NAME = ".vqladder"  # {"tool": "vqladder", "kind": …, "id": …}: written by the tool into every directory it makes
# what the tool writes into a run or stage directory: the only entries ``clear_owned`` ever deletes
RUN_ENTRIES = ("config.yaml", "stage.yaml", "metrics.jsonl", "checkpoints", "tokenizer", "results.json", "done.json",
               "report.html", "error.log", "tensorboard", "plots", "gist.json", ".tokenizer.tmp")


def owner(directory: str | Path) -> dict | None:
    """The ownership marker of ``directory`` (a dict with its ``kind``), or None when vqladder did not mark it."""
    p = Path(directory) / MARKER_NAME
    try:
        if not p.is_file() or p.is_symlink():
            return None
        m = json.loads(p.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return m if isinstance(m, dict) and m.get("tool") == "vqladder" else None


def _has_verified_checkpoint(d: Path) -> bool:
    """A checkpoint whose meta.json names the sha256 of its weights, and the weights match it."""
    from .checkpoint import MODEL_FILE, find_checkpoints, verify_checkpoint
    from .errors import VQLadderError

    for ckpt in reversed(find_checkpoints(d / "checkpoints")):
        try:
            meta = verify_checkpoint(ckpt)
        except (VQLadderError, OSError):
            continue
        if isinstance(meta.get("checksums"), dict) and MODEL_FILE in meta["checksums"]:
            return True
    return False


def _legacy_kind(d: Path) -> str | None:
    """A directory written by vqladder before it marked its directories, recognised by content, not by names:
    a checkpoint whose meta.json verifies against its files (a run or stage), a prepared data directory whose
    shard sizes match its meta.json, or an experiment directory holding such runs."""
    try:
        if _has_verified_checkpoint(d):
            return "run"
        meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").is_file() else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if isinstance(meta, dict) and {"tokenizer", "vocab_size", "dtype", "train_tokens", "val_tokens"} <= set(meta):
        try:
            import numpy as np

            size = np.dtype(meta["dtype"]).itemsize
            ok = all((d / f"{sp}.bin").is_file() and (d / f"{sp}.bin").stat().st_size == int(meta[f"{sp}_tokens"]) * size
                     for sp in ("train", "val")) and (d / "tokenizer" / "tokenizer_meta.json").is_file()
        except (TypeError, ValueError, OSError):
            ok = False
        return "data" if ok else None
    try:
        subs = [c for c in d.iterdir() if c.is_dir() and not c.is_symlink()]
        for c in subs + [g for c in subs for g in c.iterdir() if g.is_dir() and not g.is_symlink()]:
            if owner(c) or _has_verified_checkpoint(c):
                return "experiment"
    except OSError:
        return None
    return None


def _mark(d: Path, kind: str, adopted: bool = False) -> None:
    import time
    import uuid

    atomic_write_json(d / MARKER_NAME, {"tool": "vqladder", "kind": kind, "id": uuid.uuid4().hex,
                                        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                        **({"adopted": True} if adopted else {})})


def is_ours(directory: str | Path) -> bool:
    """Did vqladder make ``directory`` (its marker, or a run or data directory from before markers)?"""
    d = Path(directory)
    return d.is_dir() and (owner(d) is not None or _legacy_kind(d) is not None)


def own_dir(directory: str | Path, kind: str, what: str = "directory") -> Path:
    """Make ``directory`` the tool's before anything is written into it: a new or empty directory is created and
    marked; one vqladder marked (or, from before markers, recognised by its checkpoints or shards) is used as
    it is. Any other directory is refused in one line, and nothing in it is touched."""
    from .errors import VQLadderError

    d = Path(directory)
    if d.is_symlink() and not d.exists():
        raise VQLadderError(f"{what} {d} is a broken symbolic link")
    if d.exists() and not d.is_dir():
        raise VQLadderError(f"{what} {d} exists and is not a directory")
    if owner(d) is not None:
        return d
    try:
        if not d.exists():
            d.mkdir(parents=True, exist_ok=True)
            _mark(d, kind)
            return d
        entries = sorted(p.name for p in d.iterdir())
        if not entries:
            _mark(d, kind)
            return d
        legacy = _legacy_kind(d)
        if legacy is not None:
            _mark(d, legacy, adopted=True)
            return d
    except FileExistsError:
        raise VQLadderError(f"{what} {d} exists and is not a directory")
    except OSError as e:
        raise VQLadderError(f"cannot write {what} {d} (not writable: {(e.strerror or str(e)).lower()})")
    shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
    raise VQLadderError(f"{what} {d} is not empty ({shown}) and was not made by vqladder; it writes only into new or "
                        f"empty directories or ones it made: give another path")


def clear_owned(directory: str | Path, entries: tuple[str, ...] = RUN_ENTRIES) -> None:
    """Delete the tool's own ``entries`` of a directory vqladder made (refused otherwise); everything else in it
    (a user's notes, say) stays."""
    from .errors import VQLadderError

    d = Path(directory)
    if not d.exists():
        return
    if not is_ours(d):
        raise VQLadderError(f"{d} was not made by vqladder: nothing in it is deleted")
    for name in entries:
        p = d / name
        if p.is_dir() and not p.is_symlink():
            remove_tree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


# -- file outputs a user names -------------------------------------------------------------------------------------
def check_output_file(path: str | Path, overwrite: bool = False, made_by_us=None, what: str = "output") -> Path:
    """Check, before any work, that ``path`` may be written: a new file in an existing folder, or a regular file
    that vqladder made (``made_by_us(path) -> bool``) or that ``overwrite`` allows. A symbolic link, a folder, a
    FIFO, a device or a socket is never replaced, whatever the flag."""
    from .errors import VQLadderError

    p = Path(path).expanduser()
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        if not p.parent.is_dir():
            raise VQLadderError(f"cannot write {what} {p}: the folder {p.parent} does not exist")
        return p
    except OSError as e:
        raise VQLadderError(f"cannot write {what} {p}: {(e.strerror or str(e)).lower()}")
    if stat.S_ISLNK(st.st_mode):
        raise VQLadderError(f"{what} {p} is a symbolic link; vqladder never writes through or replaces one: "
                            f"give the path of a regular file")
    if stat.S_ISDIR(st.st_mode):
        raise VQLadderError(f"{what} {p} is a directory; give a file path")
    if not stat.S_ISREG(st.st_mode):
        raise VQLadderError(f"{what} {p} is not a regular file (a FIFO, device or socket); vqladder never replaces "
                            f"one: give the path of a regular file")
    if overwrite:
        return p
    try:
        ours = bool(made_by_us(p)) if made_by_us else False
    except OSError:
        ours = False
    if not ours:
        raise VQLadderError(f"{what} {p} exists and was not written by vqladder; pass --overwrite to replace it, or "
                            f"give another path")
    return p


def file_starts_with(path: Path, signature: bytes, within: int = 4096) -> bool:
    """Does ``path`` hold ``signature`` in its first ``within`` bytes (how the tool recognises files it wrote)?"""
    with open(path, "rb") as f:
        return signature in f.read(within)


# -- one writer per run directory ------------------------------------------------------------------------------
LOCK_NAME = ".lock"
_held: dict[str, int] = {}  # resolved run directory -> the descriptor holding its flock


def claim_run_dir(directory: str | Path, kind: str = "run") -> Path:
    """Make ``directory`` the tool's (:func:`own_dir`: new, empty or made by vqladder, else refused untouched)
    and take its advisory lock (``fcntl.flock`` on ``<dir>/.lock``) for this process.

    One writer per run directory: a second process gets :class:`VQLadderError` naming the holder's pid. The
    kernel drops the lock when the holder dies (kill -9 included), so a stale lock never blocks a resume. The
    lock is held until :func:`release_run_dirs` (the CLI calls it when a command ends) or the process exits;
    claiming a directory this process already holds is a no-op. Under torchrun only rank 0 claims."""
    import fcntl

    from .errors import VQLadderError

    d = Path(directory)
    key = str(d.resolve())
    if key in _held:
        return d
    own_dir(d, kind, {"data": "data directory", "embed-index": "index directory"}.get(kind, "run directory"))
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


def release_run_dir(directory: str | Path) -> None:
    """Drop this process's lock on one directory (no-op when it holds none)."""
    fd = _held.pop(str(Path(directory).resolve()), None)
    if fd is not None:
        os.close(fd)


def release_run_dirs() -> None:
    """Drop every run-directory lock this process holds (closing the descriptor releases the flock)."""
    while _held:
        os.close(_held.popitem()[1])
