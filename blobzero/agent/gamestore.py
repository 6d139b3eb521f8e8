"""Hosted games in the run's storage (``plumbing.storage``: a local path or ``s3://``).

Each game is one object, ``<id>.json``: the game file (``blobzero.gamefile``, every deal and
action, the seed) plus a ``host`` block (seat settings, owner, moves). The agent writes it after
every change (one crash-safe ``put``: a reader sees the old game or the new one, never a part),
and reads it back for a game it does not hold, so a page reload, an agent restart or another
replica on the same storage continues the game. Finished games stay for review.

Where: ``<parent of storage.games_dir>/agent/games`` (``var/agent/games`` by default; with
``storage.url = s3://b/run`` it is ``s3://b/run/agent/games``) — beside the self-play shards,
never among them, so the trainer never reads them.

Retention: at most ``keep_games`` games, none idle for more than ``keep_days`` (0 = no limit of
that kind); pruned at start and every ``PRUNE_EVERY`` saves, oldest first.
"""
from __future__ import annotations

import json
import logging
import re
import time

from blobzero import gamefile
from blobzero.agent.games import Seat
from plumbing import storage

log = logging.getLogger("blobzero.agent")
ID_RE = re.compile(r"^[0-9a-f]{16}$")
PRUNE_EVERY = 100
#: until plumbing/config.py has [agent] keys for them (docs/agent.md, "Games that survive")
DEFAULT_KEEP_GAMES = 10_000
DEFAULT_KEEP_DAYS = 30.0


def games_location(cfg) -> str:
    """``<parent of storage.games_dir>/agent/games`` (a URL stays a URL; storage.locations)."""
    return storage.locations(cfg.storage).agent_games


class GameStore:
    def __init__(self, location: str, keep_games: int = DEFAULT_KEEP_GAMES, keep_days: float = DEFAULT_KEEP_DAYS):
        self.store = storage.open_store(location)
        self.location = location
        self.keep_games, self.keep_days = keep_games, keep_days
        self._saves = 0

    @staticmethod
    def _key(game_id: str) -> str | None:
        return f"{game_id}.json" if ID_RE.match(game_id) else None     # nothing else touches storage

    def save(self, hosted) -> None:
        record = hosted.record(reveal=True)
        data = gamefile.to_dict(record, game_id=hosted.id, host={
            "seats": [{"kind": s.kind, "search": s.search, "model_version": s.model} for s in hosted.seats],
            "seed": hosted.seed, "owner": hosted.owner, "moves": hosted.moves, "imported": hosted.imported,
            "saved": time.time()})
        self.store.put(self._key(hosted.id), json.dumps(data, separators=(",", ":")).encode())
        self._saves += 1
        if self._saves % PRUNE_EVERY == 0:
            self.prune()

    def _read(self, game_id: str) -> dict | None:
        key = self._key(game_id)
        if key is None:
            return None
        try:
            return json.loads(self.store.get(key))
        except FileNotFoundError:
            return None

    def moves(self, game_id: str) -> int | None:
        """How many actions the stored game has (None: no such game)."""
        data = self._read(game_id)
        return None if data is None else int(data["host"]["moves"])

    def load(self, game_id: str):
        """(record, seats, seed, owner, imported) or None; the stored file is checked by the
        rules engine like any imported one."""
        data = self._read(game_id)
        if data is None:
            return None
        host = data.pop("host")
        data.pop("game_id", None)
        record = gamefile.from_dict(data)
        seats = [Seat(s["kind"], s.get("search", ""), s.get("model_version", "latest")) for s in host["seats"]]
        return record, seats, int(host["seed"]), host.get("owner", ""), bool(host.get("imported"))

    def delete(self, game_id: str) -> None:
        key = self._key(game_id)
        if key is not None:
            self.store.delete(key)

    def prune(self, now: float | None = None) -> int:
        """Apply the retention; returns how many games it deleted."""
        now = time.time() if now is None else now
        entries = sorted((e for e in self.store.list() if e.key.endswith(".json")), key=lambda e: e.mtime)
        doomed = [e for e in entries if self.keep_days and now - e.mtime > self.keep_days * 86400]
        rest = [e for e in entries if e not in doomed]
        if self.keep_games and len(rest) > self.keep_games:
            doomed += rest[:len(rest) - self.keep_games]
        for e in doomed:
            self.store.delete(e.key)
        if doomed:
            log.info("hosted games: retention deleted %d of %d stored games", len(doomed), len(entries))
        return len(doomed)
