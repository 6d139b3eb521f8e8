"""Human games as training data, opt-in (off by default: ``agent.record_human_games``).

When a hosted game with a human seat ends (a game played on the page or through Act; not an
imported file), each of its rounds is written as a ``RoundRecord`` — the self-play record
(``plumbing/records.py``): the deal, every action, the scores, the game context — in which only
the human seats' moves are decisions, each with one visit on the move taken (an imitation target,
as ``selfplay.imitate`` records a built-in seat), and the client id ``human-<game_id>`` marks them.

Where: one shard per game (``plumbing/shards.py`` format, one crash-safe put) under
``<parent of storage.games_dir>/human_games/`` — beside the self-play shards, never among them,
so the trainer reads them only when told to mix a share of them in — keyed by when it was
written (UTC)::

    human-<YYYYMMDD>/<milliseconds since that midnight, 8 digits>-v000000.shard

The day is the shard naming's client and the moment its sequence number, so keys sort by time:
the trainer lists only the days and, within a day, only the keys after the last it read
(``trainer/human_index.py``), and the retention deletes from the oldest key.

Retention: at most ``agent.keep_human_games`` games, none written more than
``agent.keep_human_games_days`` days ago (0 = no limit of that kind; the bad shards the trainer
moved to ``quarantine/`` count too); applied at start and every ``PRUNE_EVERY`` games written,
oldest first, by every agent replica (deleting is idempotent). Games of the first layout (one
``human-<game id>/00000000-v000000.shard`` per game) are moved into this one at start, keyed by
their modification time.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timezone

from plumbing import storage
from plumbing.records import to_proto
from plumbing.shards import KEY_RE, QUARANTINE, encode_shard, shard_key

log = logging.getLogger("blobzero.agent")
PRUNE_EVERY = 100
DAY_MS = 86_400_000
#: a day's prefix (the shard naming's client): human-<YYYYMMDD>, UTC
DAY_RE = re.compile(r"^human-(?P<day>\d{8})$")
#: the first layout: one prefix per game
GAME_RE = re.compile(r"^human-[0-9a-f]{16}$")


def human_games_location(cfg) -> str:
    """``<parent of storage.games_dir>/human_games`` (storage.locations)."""
    return storage.locations(cfg.storage).human_games


def key_for(unix: float, bump: int = 0) -> str:
    """The key of a game written at ``unix`` seconds (``bump`` milliseconds later)."""
    ms = int(unix * 1000) + bump
    day = datetime.fromtimestamp(ms // DAY_MS * 86_400, timezone.utc).strftime("%Y%m%d")
    return shard_key(0, f"human-{day}", ms % DAY_MS)


def key_time(key: str) -> float | None:
    """When the game under ``key`` (or ``quarantine/<key>``) was written, in unix seconds;
    None for a key of another shape."""
    match = KEY_RE.match(key.removeprefix(f"{QUARANTINE}/"))
    day = DAY_RE.match(match["client"]) if match else None
    if day is None:
        return None
    midnight = datetime.strptime(day["day"], "%Y%m%d").replace(tzinfo=timezone.utc).timestamp()
    return midnight + int(match["seq"]) / 1000


class HumanGames:
    def __init__(self, location: str, keep_games: int = 20_000, keep_days: float = 180.0):
        self.store = storage.open_store(location)
        self.location = location
        self.keep_games, self.keep_days = keep_games, keep_days
        self._lock = threading.Lock()
        self._last_key = ""                 # keys this writer gave out increase
        self._written = 0

    @classmethod
    def from_config(cls, cfg) -> "HumanGames":
        """The configured writer, its retention applied once (storage down: a warning, and it is
        applied again as games are written)."""
        games = cls(human_games_location(cfg), cfg.agent.keep_human_games, cfg.agent.keep_human_games_days)
        log.info("human games recorded in %s (at most %d, none older than %g days)", games.location,
                 games.keep_games, games.keep_days)
        try:
            games.migrate()
            games.prune()
        except OSError as exc:
            log.warning("human games: cannot apply the retention to %s now: %s", games.location, exc)
        return games

    @staticmethod
    def records(hosted) -> list:
        """The finished rounds of ``hosted`` as RoundRecords (the human seats' decisions only)."""
        humans = {i for i, s in enumerate(hosted.seats) if s.kind == "human"}
        game_id = int(hosted.id, 16)
        out, before = [], [0] * len(hosted.seats)
        for index, rnd in enumerate(hosted.finished_rounds):
            history = rnd.history
            decisions = [{"ply": ply, "player": seat, "visits": {action: 1}, "q": {}, "root_value": []}
                         for ply, (seat, action) in enumerate(history) if seat in humans]
            record = {"n_players": rnd.n_players, "cards": rnd.cards, "dealer": rnd.dealer, "trump": rnd.trump,
                      "actions": [a for _, a in history], "scores": rnd.scores(), "seed": hosted.seed + index,
                      "hands": rnd.dealt_hands, "decisions": decisions, "search": {}}
            if not hosted.single_round:
                schedule = hosted.game.schedule
                record["game"] = {"round_index": index, "n_rounds": len(schedule),
                                  "next_cards": schedule[index + 1] if index + 1 < len(schedule) else 0,
                                  "scores_before": list(before), "game_id": game_id}
            before = [a + b for a, b in zip(before, rnd.scores())]
            out.append(to_proto(record, client_id=f"human-{hosted.id}", model_version=0))
        return out

    def _new_key(self, now: float) -> str:
        """A key for now, after every key this writer gave out, and not taken (another replica
        writing in the same millisecond)."""
        with self._lock:
            bump = 0
            while True:
                key = key_for(now, bump)
                if key > self._last_key and not self.store.exists(key):
                    self._last_key = key
                    return key
                bump += 1

    def write(self, hosted, now: float | None = None) -> str | None:
        """One shard with the game's rounds; its key (None: no human seat, nothing written).
        Every ``PRUNE_EVERY`` games the retention runs."""
        if not any(s.kind == "human" for s in hosted.seats):
            return None
        key = self._new_key(time.time() if now is None else now)
        self.store.put(key, encode_shard(self.records(hosted)))
        self._written += 1
        if self._written % PRUNE_EVERY == 0:
            try:
                self.prune()
            except OSError as exc:          # the game is written; the retention runs again later
                log.warning("human games: cannot apply the retention to %s now: %s", self.location, exc)
        return key

    def migrate(self) -> int:
        """Move games of the first layout (``human-<game id>/…``) to their day's key (from their
        modification time); returns how many. Safe with several replicas at once."""
        moved = 0
        for client in self.store.children(""):
            if not GAME_RE.match(client):
                continue
            for entry in self.store.list(f"{client}/"):
                try:
                    self.store.move(entry.key, self.store, self._new_key(entry.mtime))
                    moved += 1
                except FileNotFoundError:
                    continue                    # another replica moved it first
            self.store.remove_dir(client)       # a directory's empty folder (a bucket has none)
        if moved:
            log.info("human games: moved %d games of the first layout (human-<game id>/) to "
                     "human-<day>/<ms>", moved)
        return moved

    def prune(self, now: float | None = None) -> int:
        """Apply the retention; returns how many games it deleted (oldest first). A directory's
        day folders left empty go too (never today's or yesterday's, where games may be being written)."""
        now = time.time() if now is None else now
        stored = sorted(((t, e.key) for e in self.store.list() if (t := key_time(e.key)) is not None))
        keys = [key for _, key in stored]
        old = sum(1 for t, _ in stored if self.keep_days and now - t > self.keep_days * 86_400)
        over = max(0, len(keys) - old - self.keep_games) if self.keep_games else 0
        doomed, kept = keys[:old + over], keys[old + over:]
        for key in doomed:
            self.store.delete(key)
        writing = {key_for(now).split("/")[0], key_for(now - 86_400).split("/")[0]}
        folders = {key.rsplit("/", 1)[0] for key in doomed} - {key.rsplit("/", 1)[0] for key in kept}
        for folder in sorted(f for f in folders if f.rsplit("/", 1)[-1] not in writing):
            self.store.remove_dir(folder)
        if doomed:
            log.info("human games: retention deleted %d of %d stored games", len(doomed), len(stored))
        return len(doomed)
