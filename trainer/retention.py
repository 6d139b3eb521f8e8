"""Retention: which game shards the trainer may delete (``storage.retain_hours`` / ``retain_gb``).

The trainer is the one reader of the games directory, and it knows what it has ingested (its
per-client cursors: the highest sequence number ingested per client id; a client writes its
shards in sequence) and which shards its window still needs after a restart (the newest
shards covering ``trainer.window_max`` positions). Both are saved in its checkpoint, and
retention runs only right after a checkpoint is written, from that saved state: a trainer
killed at any moment restarts with a state that never counts a deleted shard as un-ingested
and never needs a deleted shard to refill its window.

A shard is **eligible** when it is ingested, outside the window, and not its client's newest
shard (a restarting client continues its sequence after the newest shard it finds). Eligible
shards are deleted when older than ``retain_hours``, and also, oldest first, while the shards
on disk total more than ``retain_gb``. 0 switches that limit off; both 0 keeps everything.
Shards not yet ingested are never deleted: if the trainer falls behind, the directory can
exceed ``retain_gb`` (the ``GamesVolumeFilling`` alert covers the volume).
"""
from __future__ import annotations

from dataclasses import dataclass

from trainer.shard_index import IndexedShard

GB = 1e9


@dataclass(frozen=True)
class RetentionPolicy:
    retain_hours: float = 24.0      # 0 = no age limit
    retain_gb: float = 0.0          # 0 = no size limit

    @property
    def active(self) -> bool:
        return self.retain_hours > 0 or self.retain_gb > 0


def eligible(present: dict[str, IndexedShard], cursors: dict[str, int], needed: set[str]
             ) -> list[IndexedShard]:
    """Shards retention may delete, oldest first: ingested (seq <= its client's cursor), not
    in ``needed`` (the window's shards), not the newest shard of its client."""
    newest: dict[str, int] = {}
    for s in present.values():
        newest[s.client] = max(newest.get(s.client, -1), s.seq)
    out = [s for s in present.values()
           if s.seq <= cursors.get(s.client, -1) and s.name not in needed and s.seq < newest[s.client]]
    return sorted(out, key=lambda s: (s.mtime, s.name))


def select(present: dict[str, IndexedShard], total_bytes: int, cursors: dict[str, int],
           needed: set[str], now: float, policy: RetentionPolicy) -> list[IndexedShard]:
    """The shards to delete now (oldest first) under ``policy`` at unix time ``now``."""
    if not policy.active:
        return []
    doomed = []
    for s in eligible(present, cursors, needed):
        too_old = policy.retain_hours > 0 and now - s.mtime > policy.retain_hours * 3600
        too_big = policy.retain_gb > 0 and total_bytes > policy.retain_gb * GB
        if not (too_old or too_big):
            break               # oldest first: nothing younger is too old, the total only falls
        doomed.append(s)
        total_bytes -= s.size
    return doomed
