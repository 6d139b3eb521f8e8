"""The human games as the trainer finds them, bounded and incremental (trainer.human_share > 0).

The agent writes one shard per finished game keyed by when it was written (UTC;
blobzero/agent/humangames.py): ``human-<YYYYMMDD>/<ms of that day, 8 digits>-v000000.shard``,
and its retention (``agent.keep_human_games``, ``agent.keep_human_games_days``) bounds how many
there are. A scan lists the day prefixes (one listing, as many entries as days kept) and, in each
day not yet closed, only the keys after that day's cursor — one listing per open day (today's;
yesterday's just after midnight) — so it costs O(days + new games), never O(every game).

Cursors: every key of a day at or below its cursor has been read (or passed over as older than
the window holds). Games from two writers (request threads, agent replicas) can land out of
order, so a cursor only moves over keys written more than ``SETTLE_S`` ago (a put takes less,
and the writers' clocks agree to better than that); the keys read above it are remembered by
name until it does (the games of the last few minutes). Both live in the trainer's checkpoint
(``Progress.human_cursors``, ``Progress.human_recent``): a restart reads nothing twice and misses
nothing. A day that ended more than ``SETTLE_S`` before it was listed is closed: never listed
again. A day the retention deleted leaves the cursors. Prefixes of any other shape (the bad
shards' ``quarantine/``) are not read.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from plumbing.shards import KEY_RE, ShardReader, shard_key
from trainer.shard_index import IndexedShard

SETTLE_S = 300.0
DAY_RE = re.compile(r"^human-(?P<day>\d{8})$")


def day_start(day: str) -> float:
    """Unix seconds of the UTC midnight that starts ``human-<YYYYMMDD>``."""
    return datetime.strptime(DAY_RE.match(day)["day"], "%Y%m%d").replace(tzinfo=timezone.utc).timestamp()


class HumanGamesIndex:
    """New human-game shards since the last scan; the caller reads them, then ``settle``s."""

    def __init__(self, reader: ShardReader, clock=time.time, settle_s: float = SETTLE_S):
        self.reader = reader
        self.clock = clock
        self.settle_s = settle_s
        self.closed: set[str] = set()       # days listed after they settled
        self.listings = 0                   # listings made so far (the scan's cost)
        self._closing: set[str] = set()     # days the last scan listed after they settled
        self._listed_at = 0.0

    def scan(self, cursors: dict[str, int], recent: list[str]) -> list[IndexedShard]:
        """Shards above the cursors and not in ``recent``, oldest first (by key: by time). A
        storage error raises (the caller logs it and scans again later); nothing moves then."""
        store = self.reader.store
        now = self.clock()
        days = [d for d in store.children("") if DAY_RE.match(d)]
        self.listings += 1
        for gone in set(cursors) - set(days):       # deleted by the retention (or another layout)
            del cursors[gone]
        recent[:] = [name for name in recent if name.split("/", 1)[0] in days]
        self.closed &= set(days)
        known = set(recent) | self.reader.skipped
        new, self._closing = [], set()
        for day in days:
            if day in self.closed:
                continue
            cursor = cursors.get(day, -1)
            entries = store.list(f"{day}/", start_after=shard_key(0, day, cursor) if cursor >= 0 else "")
            self.listings += 1
            for entry in entries:
                match = KEY_RE.match(entry.key)
                if match and entry.key not in known:
                    new.append(IndexedShard(entry.key, day, int(match["seq"]), entry.mtime, entry.size))
            if day_start(day) + 86_400 + self.settle_s < now:
                self._closing.add(day)
        self._listed_at = now
        return sorted(new, key=lambda s: s.name)

    def settle(self, cursors: dict[str, int], recent: list[str], read: list[IndexedShard]) -> None:
        """After the shards of the last scan were read: move each day's cursor over the keys
        written more than SETTLE_S before that scan, and keep the rest of what was read in
        ``recent`` (names) until then."""
        threshold = self._listed_at - self.settle_s
        names = list(dict.fromkeys([*recent, *(s.name for s in read)]))
        for name in names:
            match = KEY_RE.match(name)
            day = match["client"]
            seq = int(match["seq"])
            if day_start(day) + seq / 1000 < threshold:
                cursors[day] = max(cursors.get(day, -1), seq)
        recent[:] = [n for n in names if int(KEY_RE.match(n)["seq"]) > cursors.get(KEY_RE.match(n)["client"], -1)]
        self.closed |= self._closing
        self._closing = set()

    def forget(self, name: str) -> None:
        """A shard moved to quarantine: nothing to forget (the cursors passed it)."""
