"""What is in the games directory, learned incrementally (the trainer's per-second scan).

Each scan lists the directory's names (one ``readdir``: no ``stat``, no parsing of names
already known) and parses and ``stat``s only the names it has not seen before, so the work per
scan beyond the listing is O(new shards), not O(all shards); retention
(``trainer/retention.py``) keeps the listing itself bounded. ``newest_mtime`` is the newest
shard ever seen on disk, ingested or not: the trainer's data lag is measured from it, so it
grows as soon as self-play stops writing, even while the trainer is still catching up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from plumbing.shards import NAME_RE, SUFFIX, ShardReader


@dataclass(frozen=True)
class IndexedShard:
    name: str
    client: str
    seq: int
    mtime: float          # unix seconds
    size: int             # bytes

    def path(self, root: Path) -> Path:
        return root / self.name


class ShardIndex:
    """Shards present in ``reader.root``: name -> IndexedShard, updated by ``scan``."""

    def __init__(self, reader: ShardReader):
        self.reader = reader
        self.present: dict[str, IndexedShard] = {}
        self.bytes = 0                      # total size of the present shards
        self.newest_mtime: float | None = None
        self.stat_calls = 0                 # stats made so far (the scan's O(new) part)

    def scan(self) -> list[IndexedShard]:
        """Shards that appeared since the last scan, oldest first (mtime, then name); shards
        that disappeared (deleted, quarantined) are forgotten."""
        root = self.reader.root
        try:
            names = {n for n in os.listdir(root) if n.endswith(SUFFIX) and not n.startswith(".")}
        except FileNotFoundError:
            names = set()
        names -= self.reader.skipped
        for gone in self.present.keys() - names:
            self.forget(gone)
        new = []
        for name in names - self.present.keys():
            match = NAME_RE.match(name)
            if not match:
                continue
            try:
                st = os.stat(root / name)
            except FileNotFoundError:
                continue
            self.stat_calls += 1
            shard = IndexedShard(name, match["client"], int(match["seq"]), st.st_mtime, st.st_size)
            self.present[name] = shard
            self.bytes += shard.size
            new.append(shard)
            if self.newest_mtime is None or shard.mtime > self.newest_mtime:
                self.newest_mtime = shard.mtime
        return sorted(new, key=lambda s: (s.mtime, s.name))

    def forget(self, name: str) -> None:
        shard = self.present.pop(name, None)
        if shard is not None:
            self.bytes -= shard.size


class ObjectShardIndex(ShardIndex):
    """``ShardIndex`` over a bucket (plumbing/object_shards.py): each scan lists the client
    prefixes (one call with a delimiter) and then each client's keys after the newest one it
    knows (``StartAfter``), so a scan costs O(clients + new shards) requests and bytes, not
    O(all shards). Shards that vanish by other hands than the trainer's are not noticed (the
    trainer is the one deleter); reading one then yields nothing."""

    def __init__(self, reader):
        super().__init__(reader)
        self.after: dict[str, str] = {}     # client -> newest key listed

    def scan(self) -> list[IndexedShard]:
        from plumbing.object_shards import KEY_RE
        from plumbing.shards import QUARANTINE
        from plumbing.storage import StorageError
        store = self.reader.store
        new = []
        self.error = None
        try:
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
            raise self.error                    # the trainer logs it and waits
        return sorted(new, key=lambda s: (s.mtime, s.name))


def index_for(reader) -> ShardIndex:
    """The index for a reader of either kind (a directory or a bucket)."""
    return ShardIndex(reader) if getattr(reader, "local", True) else ObjectShardIndex(reader)
