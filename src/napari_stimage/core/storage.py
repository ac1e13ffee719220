"""File safety shared by every writer and cache: atomic writes, a cross-process lock, file
fingerprints and cleanup of temporary files left by killed processes.

Self-contained (standard library, numpy-free, and the package's errors module only).

- `atomic_write_bytes(path, data)`: a temporary file in the target's folder, fsync'ed, then
  `os.replace`d over the target and the folder fsync'ed. A symlink is written through: its
  target file is replaced, the link stays. Readers see the old or the new file, never half.
- `file_lock(path)`: a lock file `{name}.lock` next to `path`, created with O_CREAT|O_EXCL
  (atomic on local file systems and on NFSv3+/SMB), holding pid, host and time. A lock whose
  process is gone (same host) or that is older than `STALE_LOCK_SECONDS` is broken.
- `file_fingerprint(path)`: size, mtime_ns, inode, ctime_ns and a hash of `SAMPLE_BLOCKS`
  blocks spread over the whole file, so an in-place change with the same size and mtime is
  still seen while fingerprinting a 10 GB file reads only 2 MiB.
- `remove_stale_temp_files(folder)`: deletes `TEMP_MARK` files and folders older than
  `STALE_TEMP_SECONDS` (left by a process killed mid-write).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import SlideError

TEMP_MARK = ".stimage-tmp"  # every temporary file or folder name contains this
LOCK_SUFFIX = ".lock"
STALE_LOCK_SECONDS = 120.0  # no save holds a lock this long; an older lock was left by a crash
LOCK_TIMEOUT_SECONDS = 15.0
STALE_TEMP_SECONDS = 3600.0
SAMPLE_BLOCKS = 32
SAMPLE_BLOCK_BYTES = 64 << 10
FINGERPRINT_VERSION = 2


# -- atomic writing ---------------------------------------------------------------------------
def real_target(path: str | Path) -> Path:
    """The file a write to `path` must replace: a symlink's final target (which may not exist yet)."""
    return Path(os.path.realpath(path))


def temp_name(target: Path) -> Path:
    """A unique temporary path next to `target` that `remove_stale_temp_files` recognises."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_MARK}")


def write_payload(handle, data: bytes) -> None:
    """Write `data` in chunks (a seam for tests that interrupt a write halfway)."""
    view = memoryview(data)
    for start in range(0, len(view), 1 << 20):
        handle.write(view[start : start + (1 << 20)])


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (not possible on every platform; the rename stays atomic)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, mode_from: str | Path | None = None) -> Path:
    """Replace the file at `path` (a symlink's target) by `data` atomically; returns the file written.

    The permissions of `mode_from` (default: the file replaced) are kept. On any error, including
    KeyboardInterrupt, the target is unchanged and the temporary file removed.
    """
    target = real_target(path)
    mode_source = real_target(mode_from) if mode_from is not None else target
    tmp = temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write_payload(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, mode_source.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


# -- cross-process lock -----------------------------------------------------------------------
class FileLocked(SlideError):
    """Another process holds the lock of a file (the message says which process, since when)."""


def lock_path(path: str | Path) -> Path:
    target = real_target(path)
    return target.with_name(target.name + LOCK_SUFFIX)


def _read_lock(lock: Path) -> dict | None:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        info = {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError, TypeError, OverflowError):
        return True  # exists but not ours, or unknown: assume alive
    return True


def _is_stale(lock: Path, info: dict) -> bool:
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_LOCK_SECONDS:
        return True
    if not info:  # being written right now, or garbage: only age decides
        return False
    return info.get("host") == socket.gethostname() and not _pid_alive(info.get("pid"))


def _break_stale(lock: Path, seen: dict) -> None:
    """Remove a stale lock, but never one a live process created after we looked."""
    aside = lock.with_name(f"{lock.name}.{uuid.uuid4().hex[:8]}{TEMP_MARK}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    if _read_lock(aside) != seen:  # someone re-created the lock in between: give it back
        with contextlib.suppress(OSError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: str | Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[Path]:
    """Hold the lock of `path` (a symlink's target) for the `with` block; waits up to `timeout`.

    Raises `FileLocked` when another live process keeps it longer, `SlideError` naming the folder
    when no lock file can be created there (read-only folder, ...).
    """
    lock = lock_path(path)
    token = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "id": uuid.uuid4().hex}
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            info = _read_lock(lock)
            if info is not None and _is_stale(lock, info):
                _break_stale(lock, info)
                continue
            if time.monotonic() > deadline:
                who = f"process {info.get('pid')} on {info.get('host')}" if info else "another process"
                raise FileLocked(path, f"is being saved by {who}; try again (or delete {lock} if no one is saving)") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
            continue
        except OSError as exc:
            raise SlideError(lock.parent, f"cannot create a lock file in this folder ({exc.strerror or exc})") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(token, handle)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        break
    try:
        yield lock
    finally:
        # never remove a lock someone else took after ours was broken; a lock that cannot be
        # removed must not fail a write that is done (it goes stale and is broken later)
        with contextlib.suppress(OSError):
            if _read_lock(lock) == token:
                lock.unlink(missing_ok=True)


# -- fingerprints ---------------------------------------------------------------------------
def file_fingerprint(path: str | Path) -> dict:
    """What identifies a file's content cheaply: size, mtime_ns, inode, ctime_ns and a hash of
    `SAMPLE_BLOCKS` blocks evenly spread from the first to the last byte (all of a small file)."""
    path = Path(path)
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        size = st.st_size
        digest = hashlib.sha256()
        if size <= SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        else:
            last = size - SAMPLE_BLOCK_BYTES
            for i in range(SAMPLE_BLOCKS):
                fh.seek(last * i // (SAMPLE_BLOCKS - 1))
                digest.update(fh.read(SAMPLE_BLOCK_BYTES))
    return {
        "version": FINGERPRINT_VERSION,
        "size": size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "ctime_ns": st.st_ctime_ns,
        "sampled_sha256": digest.hexdigest(),
    }


# -- cleanup ---------------------------------------------------------------------------------
def remove_stale_temp_files(
    folder: str | Path, older_than: float = STALE_TEMP_SECONDS, recurse: bool = True
) -> list[Path]:
    """Delete temporary files and folders (`TEMP_MARK` in the name, or the names earlier
    versions used) in `folder` (and, with `recurse`, its direct subfolders) older than
    `older_than` seconds; returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    now = time.time()
    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            candidates.append(entry)
            if recurse and entry.is_dir() and not entry.is_symlink() and not _is_temp(entry.name):
                with contextlib.suppress(OSError):
                    candidates.extend(entry.iterdir())
    for entry in candidates:
        if not _is_temp(entry.name):
            continue
        try:
            if now - entry.lstat().st_mtime < older_than:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


# Temporary names of versions before TEMP_MARK: `.{x}_anno.csv.XXXX.tmp` (annotation saves),
# `.recovery.XXXX.tmp`, `.{sha1}.{pid}.{hex}.tmp` (cache work folders), `.{sha1}.{pid}.{hex}.tif`
_LEGACY_TEMP = re.compile(r"^\.(.+\.csv\.[^.]+\.tmp|recovery\.[^.]+\.tmp|[0-9a-f]{40}\.\d+\.[0-9a-f]{8}\.(tmp|tif))$")


def _is_temp(name: str) -> bool:
    return TEMP_MARK in name or _LEGACY_TEMP.match(name) is not None


def temp_dir_next_to(target: Path) -> Path:
    """A private temporary folder next to `target` (same file system, so it can be renamed onto it)."""
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_MARK))
