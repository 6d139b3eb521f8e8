"""Game shards as objects in a bucket (``storage.games_dir = s3://bucket/prefix/games``).

Same bytes as on a filesystem (plumbing/shards.py ``encode_shard``), one ``PutObject`` per
shard, so a shard is visible whole or not at all (an interrupted upload, single or multipart,
leaves no object). Keys group shards by client and sort by time within a client::

    <client id>/<sequence, 8 digits>-v<model version, 6 digits>.shard

so the trainer lists each client incrementally with ``StartAfter`` its newest known key
(``trainer/shard_index.py`` ``ObjectShardIndex``) instead of re-listing everything.

Object storage has no locks: client ids come from the configuration or the host name (a
StatefulSet's pod name, ``selfplay-0``), unique per live writer by construction. A restarted
client lists its own prefix once and continues its sequence numbers.

When the endpoint is unreachable the writer keeps finished shards in memory (in order) and
retries them with backoff while self-play goes on; ``drain`` at shutdown retries for a while
before giving up (then it says how many rounds were lost).
"""
from __future__ import annotations

import logging
import re
import time

from plumbing.shards import QUARANTINE, CorruptShard, ShardWriter, decode_shard, encode_shard, \
    sanitize_client_id
from plumbing.storage import Store, StorageUnavailable

log = logging.getLogger(__name__)

KEY_RE = re.compile(r"^(?P<client>[A-Za-z0-9_.-]+)/(?P<seq>\d{8})-v(?P<version>\d{6})\.shard$")


def object_key(version: int, client_id: str, seq: int) -> str:
    return f"{sanitize_client_id(client_id)}/{seq:08d}-v{max(0, version):06d}.shard"


class ObjectShardWriter(ShardWriter):
    """``ShardWriter`` into a Store: a shard is encoded when complete and uploaded in one PUT;
    shards the store could not take yet wait in ``pending`` (oldest first) and are retried."""

    def __init__(self, store: Store, client_id: str, rounds_per_shard: int = 64,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 30.0):
        self.store = store
        self.root = store.url
        self.client_id = sanitize_client_id(client_id)
        self.rounds_per_shard = rounds_per_shard
        self.buffer = []
        self.version = None
        self.shards_written = 0
        self.first_buffered_at = None
        self.pending: list[tuple[str, bytes, int]] = []     # (key, shard bytes, rounds)
        self.upload_errors = 0
        self.on_upload_error = None        # callable: the service counts errors{kind="storage"}
        self._backoff_initial, self._backoff_max = backoff_initial_s, backoff_max_s
        self._backoff = backoff_initial_s
        self._retry_at = 0.0
        self.seq = self._next_seq()

    def _next_seq(self) -> int:
        top = -1
        for entry in self.store.list(f"{self.client_id}/"):
            match = KEY_RE.match(entry.key)
            if match and match["client"] == self.client_id:
                top = max(top, int(match["seq"]))
        return top + 1

    def age(self) -> float:
        """As ShardWriter.age, but "due" while uploads wait and their retry time has come (the
        service flushes when this exceeds selfplay.shard_max_seconds)."""
        if self.pending and time.monotonic() >= self._retry_at:
            return float("inf")
        return super().age()

    @property
    def pending_rounds(self) -> int:
        return sum(rounds for _, _, rounds in self.pending)

    def flush(self) -> str | None:
        """Seal the buffered rounds as a shard and upload every waiting shard in order; returns
        the key of the last shard uploaded (None when none was). An unreachable endpoint is
        logged and retried later; a refusal (credentials, bucket gone) raises StorageRefused."""
        if self.buffer:
            key = object_key(self.version or 0, self.client_id, self.seq)
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

    def drain(self, timeout_s: float = 60.0) -> int:
        """Seal and upload everything, retrying for up to ``timeout_s``; returns the rounds
        that could not be uploaded (0 = nothing lost)."""
        self.flush()
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._retry_at - time.monotonic(), deadline - time.monotonic())))
            self._upload()
        if self.pending:
            log.error("giving up on %d shards (%d rounds): the storage at %s stayed unreachable "
                      "for %.0f s", len(self.pending), self.pending_rounds, self.store.url, timeout_s)
        return self.pending_rounds


class ObjectRef:
    """A shard object, as much of ``pathlib.Path`` as the trainer uses (``name``, ``exists``,
    ``read_bytes``, ``unlink``), so the trainer treats both kinds of games storage alike."""

    def __init__(self, store: Store, key: str):
        self.store, self.key = store, key

    @property
    def name(self) -> str:
        return self.key

    def __truediv__(self, key: str) -> "ObjectRef":
        return ObjectRef(self.store, f"{self.key}/{key}" if self.key else key)

    def exists(self) -> bool:
        return self.store.exists(self.key)

    def read_bytes(self) -> bytes:
        return self.store.get(self.key)

    def unlink(self, missing_ok: bool = False) -> None:
        self.store.delete(self.key)

    def __str__(self) -> str:
        return f"{self.store.url}/{self.key}" if self.key else self.store.url


class ObjectShardReader:
    """``ShardReader`` over a Store: reads shards, quarantines bad ones under ``quarantine/``
    (copy with a ``.reason`` object, then delete), never crashes on a bad object."""

    local = False

    def __init__(self, store: Store):
        self.store = store
        self.root = ObjectRef(store, "")
        self.quarantined: list[str] = []
        self.skipped: set[str] = set()
        self.stop = None            # threading.Event: ends the retries of ``read``

    def read(self, path: ObjectRef):
        """Records of one shard ([] when it is gone or corrupt). While the endpoint is
        unreachable it retries with backoff until it answers or ``stop`` (an Event the trainer
        sets on SIGTERM) is set: the trainer waits, and nothing listed is skipped."""
        blob = self.read_bytes(path)
        if blob is None:
            return []
        try:
            return decode_shard(blob)
        except CorruptShard as exc:
            self.quarantine(path, str(exc), blob)
            return []

    def read_bytes(self, path) -> bytes | None:
        """A shard's bytes (None when it is gone), retried while the endpoint is down."""
        key = path.key if isinstance(path, ObjectRef) else str(path)
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

    def quarantine(self, path, reason: str, blob: bytes | None = None):
        key = path.key if isinstance(path, ObjectRef) else str(path)
        target = f"{QUARANTINE}/{key}"
        try:
            self.store.put(target, blob if blob is not None else self.store.get(key))
            self.store.put(target + ".reason", (reason + "\n").encode())
            self.store.delete(key)
        except OSError as exc:
            self.skipped.add(key)
            log.warning("bad shard %s: %s; cannot move it to %s (%s), so it is skipped in place",
                        key, reason, QUARANTINE, exc)
            return path
        log.warning("quarantined bad shard %s: %s", key, reason)
        self.quarantined.append(target)
        return ObjectRef(self.store, target)


def open_writer(location: str, client_id: str, rounds_per_shard: int) -> ShardWriter:
    """The shard writer for a games location (a directory or an object-storage URL)."""
    from plumbing.storage import is_remote, open_store
    if is_remote(location):
        return ObjectShardWriter(open_store(location), client_id, rounds_per_shard)
    return ShardWriter(location, client_id, rounds_per_shard)


def open_reader(location: str):
    """The shard reader for a games location (``ShardReader`` for a directory)."""
    from plumbing.shards import ShardReader
    from plumbing.storage import is_remote, open_store
    if is_remote(location):
        return ObjectShardReader(open_store(location))
    return ShardReader(location)
