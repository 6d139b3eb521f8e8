"""What is in the games location, learned incrementally (the trainer's per-second scan).

One index for a directory and a bucket alike (plumbing/storage.py): each scan lists the client
prefixes (``Store.children``: one ``scandir``, or one request with a delimiter) and then each
client's keys after the newest one it knows (``StartAfter``), so a scan costs O(clients + new
shards) entries, stats and requests, not O(all shards); retention (``trainer/retention.py``)
keeps the location bounded. ``newest_mtime`` is the newest shard ever seen, ingested or not:
the trainer's data lag is measured from it, so it grows as soon as self-play stops writing,
even while the trainer is still catching up.

Shards that vanish by other hands than the trainer's are not noticed (the trainer is the one
deleter, and it forgets what it deletes or quarantines); reading one then yields nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from plumbing.shards import KEY_RE, QUARANTINE, ShardReader, ShardRef
from plumbing.storage import StorageError


@dataclass(frozen=True)
class IndexedShard:
    name: str             # the shard's key: <client>/<seq>-v<version>.shard
    client: str
    seq: int
    mtime: float          # unix seconds
    size: int             # bytes

    def path(self, root: ShardRef) -> ShardRef:
        return root / self.name


class ShardIndex:
    """Shards present in ``reader.store``: key -> IndexedShard, updated by ``scan``."""

    def __init__(self, reader: ShardReader):
        self.reader = reader
        self.present: dict[str, IndexedShard] = {}
        self.bytes = 0                      # total size of the present shards
        self.newest_mtime: float | None = None
        self.stat_calls = 0                 # new entries examined so far (the scan's O(new) part)
        self.after: dict[str, str] = {}     # client -> newest key listed
        self.error: StorageError | None = None

    def scan(self) -> list[IndexedShard]:
        """Shards that appeared since the last scan, oldest first (mtime, then key). A storage
        error after some clients were listed keeps what they found (and raises on the next
        scan if it persists); with nothing found it raises (the trainer logs it and waits)."""
        store = self.reader.store
        new = []
        self.error = None
        try:
            self.reader.migrate()               # shards of the old naming, once
            clients = store.children("")
        except StorageError as exc:
            self.error = exc
            clients = []
        for client in clients:
            if client == QUARANTINE:
                continue
            try:        # one client's listing is all or nothing: what it found is kept
                entries = store.list(f"{client}/", start_after=self.after.get(client, ""))
            except StorageError as exc:
                self.error = exc
                break
            for entry in entries:
                self.after[client] = entry.key
                match = KEY_RE.match(entry.key)
                if not match or entry.key in self.present or entry.key in self.reader.skipped:
                    continue
                self.stat_calls += 1
                shard = IndexedShard(entry.key, match["client"], int(match["seq"]), entry.mtime,
                                     entry.size)
                self.present[entry.key] = shard
                self.bytes += shard.size
                new.append(shard)
                if self.newest_mtime is None or shard.mtime > self.newest_mtime:
                    self.newest_mtime = shard.mtime
        if self.error is not None and not new:
            raise self.error
        return sorted(new, key=lambda s: (s.mtime, s.name))

    def forget(self, name: str) -> None:
        shard = self.present.pop(name, None)
        if shard is not None:
            self.bytes -= shard.size

