"""Game shards: many finished rounds per object, written crash-safely, in one naming.

File format (one shard): gzip of ``MAGIC`` followed by length-delimited ``RoundRecord``
protobuf messages (varint length, then the message). gzip's CRC and length trailer catch
truncation and corruption.

Where (the games location, ``storage.games_dir``: a directory or ``s3://bucket/prefix``; the
same keys in both, through plumbing/storage.py)::

    <client id>/<sequence, 8 digits>-v<model version, 6 digits>.shard

Shards group by client and sort by time within a client, so the trainer lists each client
incrementally (``trainer/shard_index.py``: ``StartAfter`` its newest known key) instead of
re-listing everything. A shard is written with one ``Store.put`` (a directory: hidden
temporary name, fsync, rename; a bucket: one PUT), so a reader sees a complete shard or
nothing. Readers skip hidden names and move a corrupt shard to ``quarantine/<key>`` with a
``.reason`` beside it instead of crashing (where it cannot be moved, a read-only volume, it
stays, on the reader's skip-list).

Shards of runs before this naming (``games-v<version>-<client>-<seq>.shard`` at the top of a
games directory) are renamed into it (``migrate_legacy``) when a writer opens the location or
a reader first lists it: same bytes, same client and sequence, so a resumed trainer's cursors still hold.
Where they cannot be renamed (a read-only volume) they are not read, and a log line says so.

Client ids: a writer's id is held by a lock ``.clients/<id>.lock`` in the games location
(``ClientClaim``, ``Store.lock``): never two live writers with one id on a directory, and a
restarted client gets its id back and continues its sequence numbers. Object storage has no
locks: ids come from the configuration or the host name (a StatefulSet's pod name,
``selfplay-0``), unique per live writer by construction.

When a bucket's endpoint is unreachable the writer keeps finished shards in memory (in order)
and retries them with backoff while self-play goes on; ``drain`` at shutdown retries for a
while before giving up (then it says how many rounds were lost).
"""
from __future__ import annotations

import gzip
import io
import logging
import os
import re
import socket
import time
import zlib
from dataclasses import dataclass

from plumbing import records_pb2
from plumbing.storage import Store, StorageUnavailable, open_store

log = logging.getLogger(__name__)

MAGIC = b"BLOBZERO-SHARD-1\n"
SUFFIX = ".shard"
QUARANTINE = "quarantine"
CLIENTS = ".clients"        # lock files of the client ids in use (hidden: readers skip it)
KEY_RE = re.compile(r"^(?P<client>[A-Za-z0-9_.-]+)/(?P<seq>\d{8})-v(?P<version>\d{6})\.shard$")
#: the name shards had in a directory before the one naming (renamed by ``migrate_legacy``)
LEGACY_NAME_RE = re.compile(
    r"^games-v(?P<version>\d{6})-(?P<client>[A-Za-z0-9_.-]+)-(?P<seq>\d{8})\.shard$")


class CorruptShard(ValueError):
    """A shard that cannot be read completely."""


def sanitize_client_id(client_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", client_id).strip("-.")
    if not cleaned:
        raise ValueError(f"client id {client_id!r} has no usable characters")
    return cleaned[:64]


def shard_key(version: int, client_id: str, seq: int) -> str:
    """The key of a shard: ``<client>/<seq, 8 digits>-v<version, 6 digits>.shard``."""
    return f"{sanitize_client_id(client_id)}/{seq:08d}-v{max(0, version):06d}{SUFFIX}"


def legacy_to_key(name: str) -> str | None:
    """The key of a shard named the old way (``games-v…-<client>-<seq>.shard``), else None."""
    match = LEGACY_NAME_RE.match(name)
    return shard_key(int(match["version"]), match["client"], int(match["seq"])) if match else None


def _store(location: Store | str | os.PathLike) -> Store:
    return location if isinstance(location, Store) else open_store(location)


def migrate_legacy(store: Store) -> int:
    """Rename shards named the old way into the one naming; returns how many were renamed.
    Idempotent, and safe with several processes doing it at once (a rename happens once)."""
    legacy = [e.key for e in store.list("games-v") if LEGACY_NAME_RE.match(e.key)]
    moved = 0
    for name in legacy:
        try:
            store.move(name, store, legacy_to_key(name))
            moved += 1
        except FileNotFoundError:
            continue                              # another process renamed it first
        except OSError as exc:
            log.warning("%d shards in %s have the old name games-v<version>-<client>-<seq>.shard "
                        "and cannot be renamed to <client>/<seq>-v<version>.shard (%s), so they are "
                        "not read; make the location writable once, or rename them", len(legacy),
                        store.url, getattr(exc, "strerror", None) or exc)
            return moved
    if moved:
        log.info("renamed %d shards of the old naming in %s to <client>/<seq>-v<version>.shard",
                 moved, store.url)
    return moved


class ClientIdInUse(RuntimeError):
    """An explicitly configured client id is held by another live writer."""


class ClientClaim:
    """A client id held, for as long as this process lives, through the store's lock
    ``.clients/<id>.lock`` (a directory: an exclusive ``flock``; the kernel releases it when the
    holder dies, even by ``kill -9``): two live writers never share an id (their shard keys
    would collide).

    ``requested`` "" means the default: the host name, so a restarted client (same pod, same
    container, same laptop) gets the same id back and continues its sequence numbers; a second
    client on the same host takes ``<host>-2``, and so on. An explicit id that another live
    process holds raises ClientIdInUse. On object storage the first candidate is always
    granted (no locks; ids unique by construction)."""

    def __init__(self, location: Store | str | os.PathLike, requested: str = "",
                 max_suffix: int = 64):
        store = _store(location)
        base = sanitize_client_id(requested or socket.gethostname())
        candidates = [base] if requested else [base] + [f"{base[:60]}-{i}" for i in range(2, max_suffix + 1)]
        self._lock = None
        for candidate in candidates:
            try:
                lock = store.lock(f"{CLIENTS}/{candidate}.lock", wait=False)
            except OSError as exc:
                log.warning("cannot lock client ids in %s/%s (%s); using %s unlocked", store.url,
                            CLIENTS, exc.strerror or exc, candidate)
                self.id = candidate
                return
            if lock is None:
                continue                          # held by a live writer: try the next one
            self._lock, self.id = lock, candidate
            return
        if requested:
            raise ClientIdInUse(f"client id {base!r} is in use by another live writer "
                                f"(lock {store.url}/{CLIENTS}/{base}.lock)")
        raise ClientIdInUse(f"client ids {base!r} to {candidates[-1]!r} are all in use")

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


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
    """Buffers finished rounds of one client and writes them as shards into a Store (or a
    location: a directory or ``s3://``).

    A shard holds rounds of a single model version: a version change flushes first, so the
    key's version is exact. A sealed shard is uploaded in one ``put``; shards the store could
    not take yet (``StorageUnavailable``: a bucket's endpoint is down) wait in ``pending``
    (oldest first) and are retried with backoff. Other errors (a full or read-only volume,
    refused credentials) propagate; ``discard`` drops what could not be written.
    """

    def __init__(self, location: Store | str | os.PathLike, client_id: str,
                 rounds_per_shard: int = 64, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 30.0):
        self.store = _store(location)
        self.root = self.store.url
        self.client_id = sanitize_client_id(client_id)
        self.rounds_per_shard = rounds_per_shard
        self.buffer: list[records_pb2.RoundRecord] = []
        self.version: int | None = None
        self.shards_written = 0
        self.first_buffered_at: float | None = None
        self.pending: list[tuple[str, bytes, int]] = []     # (key, shard bytes, rounds)
        self.upload_errors = 0
        self.on_upload_error = None        # callable: the service counts errors{kind="storage"}
        self._backoff_initial, self._backoff_max = backoff_initial_s, backoff_max_s
        self._backoff = backoff_initial_s
        self._retry_at = 0.0
        migrate_legacy(self.store)
        self.seq = self._next_seq()

    def _next_seq(self) -> int:
        """Continue after this client's highest sequence number (restarts never overwrite)."""
        top = -1
        for entry in self.store.list(f"{self.client_id}/"):
            match = KEY_RE.match(entry.key)
            if match and match["client"] == self.client_id:
                top = max(top, int(match["seq"]))
        return top + 1

    def add(self, record: records_pb2.RoundRecord) -> str | None:
        """Buffer one round; returns the key of a shard if this completed (and wrote) one."""
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
        """Seconds since the oldest buffered round arrived (0 when empty); "due" (inf) while
        uploads wait and their retry time has come (the service flushes when this exceeds
        selfplay.shard_max_seconds)."""
        if self.pending and time.monotonic() >= self._retry_at:
            return float("inf")
        return 0.0 if not self.buffer else time.monotonic() - (self.first_buffered_at or 0)

    @property
    def pending_rounds(self) -> int:
        return sum(rounds for _, _, rounds in self.pending)

    def flush(self) -> str | None:
        """Seal the buffered rounds as a shard and write every waiting shard in order; returns
        the key of the last shard written (None when none was). An unreachable endpoint is
        logged and retried later; any other storage error raises."""
        if self.buffer:
            key = shard_key(self.version or 0, self.client_id, self.seq)
            self.pending.append((key, encode_shard(self.buffer), len(self.buffer)))
            self.seq += 1
            self.buffer = []
            self.version = None
        return self._upload()

    def _upload(self) -> str | None:
        last = None
        while self.pending:
            key, data, rounds = self.pending[0]
            try:
                self.store.put(key, data)
            except StorageUnavailable as exc:
                self.upload_errors += 1
                if self.on_upload_error is not None:
                    self.on_upload_error()
                self._retry_at = time.monotonic() + self._backoff
                log.warning("cannot upload shard %s (%s); %d shards (%d rounds) wait, retrying "
                            "in %.0f s", key, exc, len(self.pending), self.pending_rounds,
                            self._backoff)
                self._backoff = min(self._backoff * 2, self._backoff_max)
                return last
            self.pending.pop(0)
            self.shards_written += 1
            self._backoff = self._backoff_initial
            log.info("wrote %s (%d rounds)", key, rounds)
            last = key
        return last

    def discard(self) -> int:
        """Drop the buffered and waiting rounds (they could not be written); returns how many."""
        dropped = len(self.buffer) + self.pending_rounds
        self.buffer, self.pending, self.version = [], [], None
        return dropped

    def drain(self, timeout_s: float = 60.0) -> int:
        """Seal and write everything, retrying for up to ``timeout_s``; returns the rounds
        that could not be written (0 = nothing lost)."""
        self.flush()
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._retry_at - time.monotonic(), deadline - time.monotonic())))
            self._upload()
        if self.pending:
            log.error("giving up on %d shards (%d rounds): the storage at %s stayed unreachable "
                      "for %.0f s", len(self.pending), self.pending_rounds, self.store.url, timeout_s)
        return self.pending_rounds


@dataclass(frozen=True)
class _Stat:
    st_size: int
    st_mtime: float


class ShardRef:
    """One shard in a Store, as much of ``pathlib.Path`` as the trainer and tools use
    (``name``, ``exists``, ``read_bytes``, ``stat``, ``unlink``, ``/``)."""

    def __init__(self, store: Store, key: str):
        self.store, self.key = store, key

    @property
    def name(self) -> str:
        return self.key

    def __truediv__(self, key: str) -> "ShardRef":
        return ShardRef(self.store, f"{self.key}/{key}" if self.key else key)

    def __eq__(self, other) -> bool:
        return isinstance(other, ShardRef) and (other.store.url, other.key) == (self.store.url, self.key)

    def __hash__(self) -> int:
        return hash((self.store.url, self.key))

    def exists(self) -> bool:
        return self.store.exists(self.key)

    def read_bytes(self) -> bytes:
        return self.store.get(self.key)

    def stat(self) -> _Stat:
        entry = self.store.stat(self.key)
        return _Stat(entry.size, entry.mtime)

    def unlink(self, missing_ok: bool = False) -> None:
        self.store.delete(self.key)

    def __str__(self) -> str:
        return f"{self.store.url}/{self.key}" if self.key else self.store.url

    __repr__ = __str__


@dataclass(frozen=True)
class ShardInfo:
    path: ShardRef
    version: int
    client: str
    seq: int
    mtime: float


class ShardReader:
    """Finds complete shards in a Store (or a location) and reads them; never crashes on a bad
    one: a corrupt shard moves to ``quarantine/`` with a ``.reason`` beside it."""

    def __init__(self, location: Store | str | os.PathLike):
        self.store = _store(location)
        self.root = ShardRef(self.store, "")
        self.quarantined: list[ShardRef] = []
        self.skipped: set[str] = set()     # bad shards that could not be moved (read-only volume)
        self.stop = None            # threading.Event: ends the retries of ``read_bytes``
        self._migrated = False

    def migrate(self) -> None:
        """Rename shards of the old naming, once, before the first listing (not in the
        constructor: a service checks its storage first, and says which key is wrong)."""
        if not self._migrated:
            migrate_legacy(self.store)
            self._migrated = True

    def _ref(self, path) -> ShardRef:
        return path if isinstance(path, ShardRef) else ShardRef(self.store, str(path))

    def list(self) -> list[ShardInfo]:
        """Complete shards, oldest first (by modification time, then key); the trainer lists
        incrementally instead (trainer/shard_index.py)."""
        self.migrate()
        out = []
        for entry in self.store.list():
            match = KEY_RE.match(entry.key)
            if match and entry.key not in self.skipped:
                out.append(ShardInfo(ShardRef(self.store, entry.key), int(match["version"]),
                                     match["client"], int(match["seq"]), entry.mtime))
        return sorted(out, key=lambda s: (s.mtime, s.path.key))

    def read_bytes(self, path) -> bytes | None:
        """A shard's bytes (None when it is gone). While the endpoint is unreachable it
        retries with backoff until it answers or ``stop`` (an Event the trainer sets on
        SIGTERM) is set: the trainer waits, and nothing listed is skipped."""
        key = self._ref(path).key
        delay = 1.0
        while True:
            try:
                return self.store.get(key)
            except FileNotFoundError:
                return None
            except StorageUnavailable as exc:
                if self.stop is not None and self.stop.is_set():
                    raise
                log.warning("cannot read shard %s (%s); retrying in %.0f s", key, exc, delay)
                if self.stop is not None:
                    self.stop.wait(delay)
                else:
                    time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def read(self, path) -> list[records_pb2.RoundRecord]:
        """Records of one shard; a gone shard yields [], a corrupt one is quarantined and
        yields []."""
        blob = self.read_bytes(path)
        if blob is None:
            return []
        try:
            return decode_shard(blob)
        except CorruptShard as exc:
            self.quarantine(path, str(exc))
            return []

    def quarantine(self, path, reason: str) -> ShardRef:
        """Move a bad shard to ``quarantine/<key>`` with a ``.reason`` beside it. When the move
        fails (a read-only or full volume, a refusing bucket) the shard stays where it is, on
        this reader's skip-list (``skipped``: ``list()`` no longer returns it), with a log
        line; returns where it is."""
        ref = self._ref(path)
        target = f"{QUARANTINE}/{ref.key}"
        try:
            self.store.move(ref.key, self.store, target)
        except FileNotFoundError:
            return ref
        except OSError as exc:
            self.skipped.add(ref.key)
            log.warning("bad shard %s: %s; cannot move it to %s/%s (%s), so it is skipped in place",
                        ref.key, reason, self.store.url, QUARANTINE,
                        getattr(exc, "strerror", None) or exc)
            return ref
        try:
            self.store.put(target + ".reason", (reason + "\n").encode())
        except OSError as exc:
            log.warning("cannot write the reason of %s (%s)", target, exc)
        log.warning("quarantined bad shard %s: %s", ref.key, reason)
        moved = ShardRef(self.store, target)
        self.quarantined.append(moved)
        return moved
