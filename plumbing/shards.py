"""Game shards on shared storage: many finished rounds per file, written crash-safely.

File format (one shard): gzip of ``MAGIC`` followed by length-delimited ``RoundRecord``
protobuf messages (varint length, then the message). gzip's CRC and length trailer catch
truncation and corruption.

Name: ``games-v<model version, 6 digits>-<client id>-<sequence, 8 digits>.shard``. A shard is
written under a hidden temporary name in the same directory, fsynced, then renamed, so a
reader sees a complete shard or nothing. Readers skip hidden (``.``-prefixed) files and move a
corrupt shard to ``<root>/quarantine/`` with a ``.reason`` file instead of crashing (on a
read-only volume the shard stays, on the reader's skip-list). A writer's client id is held by
a lock in ``<root>/.clients/`` (``ClientClaim``): never two live writers with one id, and a
restarted client gets its id back and continues its sequence numbers.
"""
from __future__ import annotations

import errno
import fcntl
import gzip
import io
import logging
import os
import re
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from plumbing import records_pb2
from plumbing.fsio import atomic_write_bytes, atomic_write_text, fsync_dir

log = logging.getLogger(__name__)

MAGIC = b"BLOBZERO-SHARD-1\n"
SUFFIX = ".shard"
QUARANTINE = "quarantine"
CLIENTS = ".clients"        # lock files of the client ids in use (hidden: readers skip it)
NAME_RE = re.compile(r"^games-v(?P<version>\d{6})-(?P<client>[A-Za-z0-9_.-]+)-(?P<seq>\d{8})\.shard$")


class CorruptShard(ValueError):
    """A shard that cannot be read completely."""


def sanitize_client_id(client_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", client_id).strip("-.")
    if not cleaned:
        raise ValueError(f"client id {client_id!r} has no usable characters")
    return cleaned[:64]


class ClientIdInUse(RuntimeError):
    """An explicitly configured client id is held by another live writer."""


class ClientClaim:
    """A client id held, for as long as this process lives, through an exclusive ``flock`` on
    ``<root>/.clients/<id>.lock``: two live writers never share an id (their shard names would
    collide), and the kernel releases it when the holder dies, even by ``kill -9``.

    ``requested`` "" means the default: the host name, so a restarted client (same pod, same
    container, same laptop) gets the same id back and continues its sequence numbers; a second
    client on the same host takes ``<host>-2``, and so on. An explicit id that another live
    process holds raises ClientIdInUse."""

    def __init__(self, root: str | os.PathLike, requested: str = "", max_suffix: int = 64):
        directory = Path(root) / CLIENTS
        directory.mkdir(parents=True, exist_ok=True)
        base = sanitize_client_id(requested or socket.gethostname())
        candidates = [base] if requested else [base] + [f"{base[:60]}-{i}" for i in range(2, max_suffix + 1)]
        self._file = None
        for candidate in candidates:
            handle = open(directory / f"{candidate}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                handle.close()
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    continue                      # held by a live writer: try the next one
                log.warning("cannot lock client ids in %s (%s); using %s unlocked", directory,
                            exc.strerror or exc, candidate)
                self.id = candidate
                return
            self._file, self.id = handle, candidate
            return
        if requested:
            raise ClientIdInUse(f"client id {base!r} is in use by another live writer "
                                f"(lock {directory / (base + '.lock')})")
        raise ClientIdInUse(f"client ids {base!r} to {candidates[-1]!r} are all in use")

    def release(self) -> None:
        if self._file is not None:
            self._file.close()          # closing drops the flock
            self._file = None


def shard_name(version: int, client_id: str, seq: int) -> str:
    return f"games-v{max(0, version):06d}-{sanitize_client_id(client_id)}-{seq:08d}{SUFFIX}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_shard(records: list[records_pb2.RoundRecord]) -> bytes:
    raw = io.BytesIO()
    raw.write(MAGIC)
    for record in records:
        data = record.SerializeToString()
        raw.write(_varint(len(data)))
        raw.write(data)
    # mtime=0 keeps the bytes a pure function of the records
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def decode_shard(blob: bytes) -> list[records_pb2.RoundRecord]:
    """Parse a shard's bytes; raises CorruptShard saying what is wrong."""
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptShard(f"not a complete gzip stream ({exc})") from None
    if not raw.startswith(MAGIC):
        raise CorruptShard("missing shard header")
    records = []
    pos, end = len(MAGIC), len(raw)
    while pos < end:
        length, shift = 0, 0
        while True:
            if pos >= end:
                raise CorruptShard(f"truncated length prefix at byte {pos}")
            byte = raw[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 35:
                raise CorruptShard(f"bad length prefix at byte {pos}")
        if pos + length > end:
            raise CorruptShard(f"record at byte {pos} runs past the end")
        record = records_pb2.RoundRecord()
        try:
            record.ParseFromString(raw[pos:pos + length])
        except Exception as exc:  # protobuf raises DecodeError (a Message error subclass)
            raise CorruptShard(f"record at byte {pos} does not parse ({exc})") from None
        records.append(record)
        pos += length
    return records


class ShardWriter:
    """Buffers finished rounds of one client and writes them as shards.

    A shard holds rounds of a single model version: a version change flushes first, so
    the file name's version is exact.
    """

    def __init__(self, root: str | os.PathLike, client_id: str, rounds_per_shard: int = 64):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.client_id = sanitize_client_id(client_id)
        self.rounds_per_shard = rounds_per_shard
        self.seq = self._next_seq()
        self.buffer: list[records_pb2.RoundRecord] = []
        self.version: int | None = None
        self.shards_written = 0
        self.first_buffered_at: float | None = None

    def _next_seq(self) -> int:
        """Continue after this client's highest sequence number (restarts never overwrite)."""
        top = -1
        for path in self.root.glob(f"games-v*-{self.client_id}-*{SUFFIX}"):
            match = NAME_RE.match(path.name)
            if match and match["client"] == self.client_id:
                top = max(top, int(match["seq"]))
        return top + 1

    def add(self, record: records_pb2.RoundRecord) -> Path | None:
        """Buffer one round; returns the path of a shard if this completed one."""
        written = None
        if self.version is not None and record.model_version != self.version:
            written = self.flush()
        if not self.buffer:
            self.first_buffered_at = time.monotonic()
        self.version = record.model_version
        self.buffer.append(record)
        if len(self.buffer) >= self.rounds_per_shard:
            written = self.flush() or written
        return written

    def age(self) -> float:
        """Seconds since the oldest buffered round arrived (0 when empty)."""
        return 0.0 if not self.buffer else time.monotonic() - (self.first_buffered_at or 0)

    def flush(self) -> Path | None:
        """Write buffered rounds as one complete shard (nothing if the buffer is empty)."""
        if not self.buffer:
            return None
        path = self.root / shard_name(self.version or 0, self.client_id, self.seq)
        atomic_write_bytes(path, encode_shard(self.buffer))
        log.info("wrote %s (%d rounds)", path.name, len(self.buffer))
        self.seq += 1
        self.shards_written += 1
        self.buffer = []
        self.version = None
        return path


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    version: int
    client: str
    seq: int
    mtime: float


class ShardReader:
    """Finds complete shards under ``root`` and reads them; never crashes on a bad file."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.quarantined: list[Path] = []
        self.skipped: set[str] = set()     # bad shards that could not be moved (read-only volume)

    def list(self) -> list[ShardInfo]:
        """Complete shards, oldest first (by modification time, then name)."""
        if not self.root.is_dir():
            return []
        out = []
        for entry in os.scandir(self.root):
            if entry.name.startswith(".") or entry.name in self.skipped or not entry.is_file():
                continue                          # in-progress temporary files are hidden
            match = NAME_RE.match(entry.name)
            if not match:
                continue
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue
            out.append(ShardInfo(Path(entry.path), int(match["version"]), match["client"],
                                 int(match["seq"]), mtime))
        return sorted(out, key=lambda s: (s.mtime, s.path.name))

    def read_bytes(self, path: str | os.PathLike) -> bytes | None:
        """A shard's bytes, None when it is gone (the trainer parses them: pack_shard)."""
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def read(self, path: str | os.PathLike) -> list[records_pb2.RoundRecord]:
        """Records of one shard; a corrupt shard is quarantined and yields []."""
        path = Path(path)
        try:
            return decode_shard(path.read_bytes())
        except FileNotFoundError:
            return []
        except CorruptShard as exc:
            self.quarantine(path, str(exc))
            return []

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move a bad shard to ``quarantine/`` with a ``.reason`` file. When the move fails (a
        read-only or full volume) the shard stays where it is, on this reader's skip-list
        (``skipped``: ``list()`` no longer returns it), with a log line; returns where it is."""
        target_dir = self.root / QUARANTINE
        target = target_dir / path.name
        try:
            target_dir.mkdir(exist_ok=True)
            os.replace(path, target)
            fsync_dir(self.root)
        except OSError as exc:
            self.skipped.add(path.name)
            log.warning("bad shard %s: %s; cannot move it to %s (%s), so it is skipped in place",
                        path.name, reason, target_dir, exc.strerror or exc)
            return path
        try:
            atomic_write_text(target.with_name(target.name + ".reason"), reason + "\n")
        except OSError as exc:
            log.warning("cannot write the reason file of %s (%s)", target, exc.strerror or exc)
        log.warning("quarantined bad shard %s: %s", path.name, reason)
        self.quarantined.append(target)
        return target
