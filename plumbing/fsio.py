"""Crash-safe file writes: write a temporary name, fsync, rename, fsync the directory.

After a crash a reader sees either the old file or the complete new one, never a
prefix. The temporary file lives in the destination directory so the rename stays
on one filesystem (rename across filesystems is a copy, not atomic).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Persist a directory entry change (create/rename/unlink) in ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Atomically replace ``path`` with ``data``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def copy_file_synced(src: str | os.PathLike, dst: str | os.PathLike, chunk: int = 1 << 20) -> None:
    """Copy ``src`` to a new file ``dst`` and fsync it (the caller renames/fsyncs the directory)."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while block := fin.read(chunk):
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())


def check_writable(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and prove that a file can be written, fsynced and removed
    there (a read-only mount or a missing permission raises OSError now, not at the first real
    write after minutes of work); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=directory)
    try:
        os.write(fd, b"ok\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(tmp)
    return directory
