"""Hosted games: the server holds a full game (or one round) and plays its agents' turns.

A client (the web page, a bot) only says what a human seat does and reads what that seat may
see; rules, dealing, scores and the agents' moves all happen here, through the core
(``blobcore.Game`` / ``Round``) and the agent's engine (model seats) or the built-in players.
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field

from blobcore.game import Game
from blobcore.players import PLAYERS
from blobcore.rules import Round

KINDS = ("human", "model", *PLAYERS)     # a seat: a person, the model, or a built-in player
GAME_ID_LENGTH = 16                 # secrets.token_hex(8)


class GameNotFound(KeyError):
    pass


@dataclass(frozen=True)
class Seat:
    """kind: one of KINDS; search (model seats): a preset name; model: a version spec."""
    kind: str
    search: str = ""
    model: str = "latest"

    @property
    def label(self) -> str:
        return f"model:{self.search}" if self.kind == "model" else self.kind


class SingleRound(Game):
    """One round at a table (no game around it): Game's bookkeeping with a one-round schedule,
    a random trump and no game context (the encoder's game slots stay 0)."""

    def __init__(self, n_players: int, cards: int, seed: int = 0, first_dealer: int = 0):
        super().__init__(n_players, cards, seed, first_dealer)
        self.schedule = [cards]

    def _deal(self, index: int) -> Round:
        return Round.from_seed(self._rng, self.n_players, self.schedule[index],
                               dealer=(self.first_dealer + index) % self.n_players, trump="random")


@dataclass(eq=False)
class HostedGame:
    id: str
    seats: tuple[Seat, ...]
    game: Game
    single_round: bool
    seed: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    touched: float = field(default_factory=time.monotonic)
    last_trick: tuple[int, list[tuple[int, int]], int] | None = None   # (round, [(seat, card)], winner)
    moves: int = 0
    owner: str = ""                  # the client that started it (agent.max_games_per_client)
    finished_rounds: list[Round] = field(default_factory=list)   # terminal rounds, in order

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


class GameHost:
    """The hosted games of one server. ``advise(round, seat_spec, seed) -> action`` searches a
    model seat's move (the engine); built-in seats move here. Games idle for ``ttl_s`` are
    dropped; at most ``max_games`` are held (the least recently used goes first), and at most
    ``max_per_owner`` per owner (a client's new game replaces its own least recently used one,
    so one client cannot push other clients' games out)."""

    def __init__(self, advise, max_games: int = 1000, ttl_s: float = 6 * 3600, max_per_owner: int = 1000):
        self._advise = advise
        self.max_games, self.ttl_s, self.max_per_owner = max_games, ttl_s, max_per_owner
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
        game = (SingleRound if single_round else Game)(players, cards, seed, first_dealer)
        hosted = HostedGame(secrets.token_hex(GAME_ID_LENGTH // 2), tuple(seats), game, single_round, seed,
                            owner=owner)
        with self._lock:
            self._expire()
            own = [h for h in self._games.values() if h.owner == owner]
            for old in sorted(own, key=lambda h: h.touched)[:max(0, len(own) - self.max_per_owner + 1)]:
                del self._games[old.id]
            self._games[hosted.id] = hosted
        with hosted.lock:
            self._play_agents(hosted)
        return hosted

    def get(self, game_id: str) -> HostedGame:
        with self._lock:
            hosted = self._games.get(game_id)
        if hosted is None:
            raise GameNotFound(f"no hosted game {game_id[:32]!r} (games expire after {self.ttl_s:.0f} s "
                               f"idle, or when their client starts more than {self.max_per_owner})")
        hosted.touched = time.monotonic()
        return hosted

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
            self._play_agents(hosted)
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
        now = time.monotonic()
        for gid in [g for g, h in self._games.items() if now - h.touched > self.ttl_s]:
            del self._games[gid]
        while len(self._games) >= self.max_games:
            oldest = min(self._games.values(), key=lambda h: h.touched)
            del self._games[oldest.id]
