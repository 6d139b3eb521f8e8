"""Hosted games: the server holds a full game (or one round) and plays its agents' turns.

A client (the web page, a bot) only says what a human seat does and reads what that seat may
see; rules, dealing, scores and the agents' moves all happen here, through the core
(``blobcore.Game`` / ``Round``) and the agent's engine (model seats) or the built-in players.
"""
from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field

from blobcore.game import Game
from blobcore.players import PLAYERS
from blobcore.rules import Round, trump_for_round
from blobzero.gamefile import GameRecord, RoundRecord

log = logging.getLogger("blobzero.agent")
KINDS = ("human", "model", *PLAYERS)     # a seat: a person, the model, or a built-in player
GAME_ID_LENGTH = 16                 # secrets.token_hex(8)


class GameNotFound(KeyError):
    pass


class GameUnavailable(RuntimeError):
    """The game is in the store, which cannot be read now (retry)."""


@dataclass(frozen=True)
class Seat:
    """kind: one of KINDS; search (model seats): a preset name; model: a version spec."""
    kind: str
    search: str = ""
    model: str = "latest"

    @property
    def label(self) -> str:
        return f"model:{self.search}" if self.kind == "model" else self.kind

    def as_dict(self) -> dict:
        """The seat as a game file writes it."""
        return {"kind": self.kind, "search": self.search, "model_version": self.model} if self.kind == "model" \
            else {"kind": self.kind}


class HostGame(Game):
    """A hosted game (or one round): ``Game``'s bookkeeping, with the deals of the first rounds
    given (an imported or restored game file) and the rest drawn from ``seed`` exactly as a new
    game draws them, so a game rebuilt from its file deals the same cards. A single round has a
    random trump and no game context (the encoder's game slots stay 0)."""

    def __init__(self, n_players: int, cards: int, seed: int = 0, first_dealer: int = 0,
                 single_round: bool = False, given: list[RoundRecord] | tuple = ()):
        self.single_round, self._given = single_round, list(given)
        super().__init__(n_players, cards, seed, first_dealer)
        if single_round:
            self.schedule = [cards]

    def _deal(self, index: int) -> Round:
        dealer = (self.first_dealer + index) % self.n_players
        cards = self.schedule[0] if self.single_round else self.schedule[index]
        rnd = Round.from_seed(self._rng, self.n_players, cards, dealer=dealer,      # always drawn: the
                              trump="random" if self.single_round else trump_for_round(index))   # seed stays in step
        if index < len(self._given):
            g = self._given[index]
            rnd = Round.from_deal(g.hands, g.trump, g.dealer)
        if not self.single_round:
            nxt = self.schedule[index + 1] if index + 1 < len(self.schedule) else 0
            rnd.set_game_context(index, len(self.schedule), nxt, self.scores)
        return rnd


@dataclass(eq=False)
class HostedGame:
    id: str
    seats: tuple[Seat, ...]
    game: HostGame
    single_round: bool
    seed: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    touched: float = field(default_factory=time.monotonic)
    last_trick: tuple[int, list[tuple[int, int]], int] | None = None   # (round, [(seat, card)], winner)
    moves: int = 0
    owner: str = ""                  # the client that started it (agent.max_games_per_client)
    finished_rounds: list[Round] = field(default_factory=list)   # terminal rounds, in order
    imported: bool = False           # hosted from a game file (ImportGame)

    @property
    def round(self) -> Round:
        return self.game.round

    @property
    def over(self) -> bool:
        return self.game.is_over

    def apply(self, action: int) -> None:
        """Apply for the seat to act; keeps the last completed trick for the seats' views."""
        rnd, index = self.game.round, self.game.round_index
        trick, seat, playing = list(rnd.current_trick), rnd.current_player, rnd.phase_name == "play"
        self.game.apply(action)          # raises ValueError (state unchanged) when illegal
        self.moves += 1
        if playing and len(trick) == rnd.n_players - 1:      # this card completed the trick
            self.last_trick = (index, trick + [(seat, action)], rnd.trick_winners[-1])
        if rnd.is_terminal:
            self.finished_rounds.append(rnd)

    def record(self, reveal: bool = True) -> GameRecord:
        """The game as a game file's record. reveal=False (what a player downloads) leaves out
        what a seat may not know yet: the round in progress and, while the game runs, the seed
        (the deals follow from it). Call under the lock."""
        rounds = list(self.finished_rounds)
        if reveal and not self.over:
            rounds.append(self.round)
        records = [RoundRecord(r.cards, r.dealer, r.trump, [list(h) for h in r.dealt_hands], list(r.history))
                   for r in rounds]
        return GameRecord(len(self.seats), self.game.schedule[0], self.single_round, self.game.first_dealer,
                          [s.as_dict() for s in self.seats], records,
                          self.seed if reveal or self.over else None)


def host_record(game_id: str, record: GameRecord, seats: list[Seat], seed: int, owner: str = "",
                imported: bool = False) -> HostedGame:
    """A hosted game rebuilt from a record: its deals, then every action replayed through the
    rules engine (rounds not in the record are dealt from ``seed``)."""
    first_dealer = record.rounds[0].dealer if record.single_round and record.rounds else record.first_dealer
    game = HostGame(record.players, record.start_cards, seed, first_dealer, record.single_round, record.rounds)
    hosted = HostedGame(game_id, tuple(seats), game, record.single_round, seed, owner=owner, imported=imported)
    for r in record.rounds:
        for _, action in r.actions:
            hosted.apply(action)
    return hosted


class GameHost:
    """The hosted games of one server. ``advise(round, seat_spec, seed) -> action`` searches a
    model seat's move (the engine); built-in seats move here. Games idle for ``ttl_s`` leave
    memory; at most ``max_games`` are held (the least recently used goes first), and at most
    ``max_per_owner`` per owner (a client's new game replaces its own least recently used one,
    so one client cannot push other clients' games out).

    ``store`` (a ``GameStore`` or None): every game is written there after each change, and a
    game not in memory (another replica's, or one from before a restart) is read back from it,
    so games survive reloads, restarts and load balancers. ``on_finished(hosted)`` is called
    once when a game ends (the opt-in human-game records)."""

    def __init__(self, advise, max_games: int = 1000, ttl_s: float = 6 * 3600, max_per_owner: int = 1000,
                 store=None, on_finished=None):
        self._advise = advise
        self.max_games, self.ttl_s, self.max_per_owner = max_games, ttl_s, max_per_owner
        self.store, self.on_finished = store, on_finished
        self._games: dict[str, HostedGame] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._games)

    def start(self, players: int, cards: int, seats: list[Seat], single_round: bool = False,
              seed: int = 0, first_dealer: int = 0, owner: str = "") -> HostedGame:
        if len(seats) != players:
            raise ValueError(f"seats: need one per player ({players}), got {len(seats)}")
        for i, s in enumerate(seats):
            if s.kind not in KINDS:
                raise ValueError(f"seats[{i}].kind: {s.kind!r} is not one of {', '.join(KINDS)}")
        if not 0 <= first_dealer < players:
            raise ValueError(f"first_dealer must be a seat 0..{players - 1}, got {first_dealer}")
        seed = seed or secrets.randbits(48)
        game = HostGame(players, cards, seed, first_dealer, single_round)
        hosted = HostedGame(secrets.token_hex(GAME_ID_LENGTH // 2), tuple(seats), game, single_round, seed,
                            owner=owner)
        self._add(hosted)
        with hosted.lock:
            self._play_agents(hosted)
            self._save(hosted)
        return hosted

    def add_record(self, record: GameRecord, owner: str = "") -> HostedGame:
        """Host a game file (ImportGame): its seats as recorded (a seat of kind ``other``, a
        person at a real table, is hosted as human); rounds it lacks are dealt from its seed."""
        seats = [Seat("human" if s["kind"] in ("human", "other") else s["kind"], s.get("search", ""),
                      s.get("model_version", "latest")) for s in record.seats]
        seed = record.seed or secrets.randbits(48)
        hosted = host_record(secrets.token_hex(GAME_ID_LENGTH // 2), record, seats, seed, owner, imported=True)
        self._add(hosted)
        with hosted.lock:
            try:
                self._play_agents(hosted)        # an unfinished game: the agents play up to a human turn
            finally:
                self._save(hosted)
        return hosted

    def _add(self, hosted: HostedGame) -> None:
        with self._lock:
            self._expire()
            own = [h for h in self._games.values() if h.owner == hosted.owner]
            for old in sorted(own, key=lambda h: h.touched)[:max(0, len(own) - self.max_per_owner + 1)]:
                del self._games[old.id]
                if self.store is not None:
                    self.store.delete(old.id)
            self._games[hosted.id] = hosted

    def get(self, game_id: str) -> HostedGame:
        with self._lock:
            hosted = self._games.get(game_id)
        if self.store is not None:
            try:
                stored_moves = self.store.moves(game_id)     # None: not stored
                if stored_moves is not None and (hosted is None or stored_moves > hosted.moves):
                    hosted = self._restore(game_id)          # another replica (or process) moved it on
            except (ValueError, KeyError, TypeError) as exc:   # a stored file someone broke: say so
                log.error("hosted game %s: the stored copy is unreadable: %s", game_id[:32], exc)
                if hosted is None:
                    raise GameNotFound(f"game {game_id[:32]!r}: its stored copy is unreadable ({exc})") from None
            except OSError as exc:                           # storage down: what memory holds still plays
                log.warning("hosted game %s: cannot read the store: %s", game_id[:32], exc)
                if hosted is None:
                    raise GameUnavailable(f"game {game_id[:32]!r} is kept in storage, which cannot be read now "
                                          f"({exc}); retry") from None
        if hosted is None:
            raise GameNotFound(f"no hosted game {game_id[:32]!r} (games expire after {self.ttl_s:.0f} s "
                               f"idle, or when their client starts more than {self.max_per_owner})")
        hosted.touched = time.monotonic()
        return hosted

    def _restore(self, game_id: str) -> HostedGame | None:
        loaded = self.store.load(game_id)
        if loaded is None:
            return None
        record, seats, seed, owner, imported = loaded
        hosted = host_record(game_id, record, seats, seed, owner, imported)
        with self._lock:
            self._expire()
            self._games[game_id] = hosted
        return hosted

    def _save(self, hosted: HostedGame) -> None:
        """Write the game to the store; a failing store is logged (the game goes on in memory,
        the next successful write catches up)."""
        if self.store is not None:
            try:
                self.store.save(hosted)
            except OSError as exc:
                log.warning("hosted game %s not saved: %s", hosted.id, exc)

    def act(self, game_id: str, seat: int, action: int) -> HostedGame:
        """A human seat's bid or card; then the agents play until a human is to act."""
        hosted = self.get(game_id)
        with hosted.lock:
            self._play_agents(hosted)    # agents' moves an earlier failure (network down) left pending
            if hosted.over:
                raise ValueError("the game is over")
            if not 0 <= seat < len(hosted.seats):
                raise ValueError(f"seat must be 0..{len(hosted.seats) - 1}, got {seat}")
            if hosted.seats[seat].kind != "human":
                raise ValueError(f"seat {seat} is played by the agent ({hosted.seats[seat].label})")
            if hosted.round.current_player != seat:
                raise ValueError(f"it is seat {hosted.round.current_player}'s turn, not seat {seat}'s")
            hosted.apply(action)
            try:
                self._play_agents(hosted)
            finally:
                self._save(hosted)           # the human's move is kept even when an agent's search failed
            if hosted.over and self.on_finished is not None:
                self.on_finished(hosted)
        return hosted

    def _play_agents(self, hosted: HostedGame) -> None:
        rng = random.Random(hosted.seed)
        while not hosted.over:
            rnd = hosted.round
            seat = hosted.seats[rnd.current_player]
            if seat.kind == "human":
                return
            legal = rnd.legal_actions()
            if len(legal) == 1:
                action = legal[0]
            elif seat.kind in PLAYERS:
                rng.seed(hosted.seed * 1_000_003 + hosted.moves)
                action = PLAYERS[seat.kind](rnd, rng)
            else:
                action = self._advise(rnd, seat, hosted.seed + hosted.moves)
            hosted.apply(action)

    def _expire(self) -> None:
        """Memory only: an expired game stays in the store (its retention bounds it)."""
        now = time.monotonic()
        for gid in [g for g, h in self._games.items() if now - h.touched > self.ttl_s]:
            del self._games[gid]
        while len(self._games) >= self.max_games:
            oldest = min(self._games.values(), key=lambda h: h.touched)
            del self._games[oldest.id]
