"""What the search pool deals: rounds drawn from a table distribution, or complete games.

Both are iterators of round specs for ``SearchPool`` (blobcore/search/pool.pyx):

* ``table_rounds(seed, distribution)``: endless independent rounds; round ``i`` has seed
  ``seed + i`` and its (players, cards) drawn from ``distribution`` by that seed, so a round
  is the same whatever else is in flight.
* ``FullGames``: complete games of Blob (blobcore.game.Game: the schedule, dealer and trump
  rotation, cumulative scores). Each game has at most one round in the pool at a time; the
  next round is dealt when the pool reports the previous one finished (``round_finished``),
  with the game context (round position, scores so far, next deal size) in every position
  the network sees. Rounds of many games fill the pool's slots.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from blobcore.game import Game
from plumbing.config import TableSection

_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _unit(seed: int, salt: int) -> float:
    """A deterministic number in [0, 1) from ``seed`` (splitmix64 finaliser)."""
    z = (seed * _GOLDEN + salt) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


class TableDraw:
    """Draws (players, cards) from a distribution of ``(players, cards, probability)`` rows
    (``TableSection.distribution()``) by a seed: the same seed, the same table."""

    def __init__(self, distribution: Iterable[tuple[int, int, float]]):
        rows = [(int(n), int(c), float(p)) for n, c, p in distribution if p > 0]
        if not rows:
            raise ValueError("the table distribution is empty")
        total = sum(p for _, _, p in rows)
        self.tables = [(n, c) for n, c, _ in rows]
        self._edges = list(itertools.accumulate(p / total for _, _, p in rows))

    def __call__(self, seed: int) -> tuple[int, int]:
        k = bisect.bisect_right(self._edges, _unit(seed, 1))
        return self.tables[min(k, len(self.tables) - 1)]


def table_rounds(seed: int, distribution: Iterable[tuple[int, int, float]]) -> Iterator[tuple]:
    """Endless round specs ``(seed + i, players, cards)`` with the table of each drawn from
    ``distribution``; dealer and trump come from each round's seed."""
    draw = TableDraw(distribution)
    for i in itertools.count():
        round_seed = seed + i
        yield (round_seed,) + draw(round_seed)


@dataclass(frozen=True)
class GamePlan:
    """One full game to play: the table, the deals' seed, who sits where.

    agents: per seat, the SearchPool agent (evaluator index >= 0, or a built-in player < 0).
    key: the caller's name for the game (e.g. (deal set, seating) in the arena)."""
    n_players: int
    start_cards: int
    seed: int
    first_dealer: int = 0
    agents: tuple[int, ...] | None = None
    key: object = None


@dataclass
class GameResult:
    """A finished game: totals and per-round scores by seat, and the winning seats."""
    plan: GamePlan
    scores: list[int]
    round_scores: list[list[int]]
    winners: list[int]
    bids: list[list[int]] = field(default_factory=list)
    tricks: list[list[int]] = field(default_factory=list)


class FullGames:
    """Round specs that play complete games; pass it as ``rounds`` to ``PooledSearch``.

    plans: iterable of ``GamePlan`` (endless for self-play; the arena gives a finite list).
    Records of rounds of a game get ``record["game"]["game_id"] = plan.seed``; finished games
    collect in ``results`` (when ``keep_results``). Iteration stops when the plans are spent
    and every game has ended; while a game waits for its round to finish, a free slot takes
    the next plan (or stays empty for a moment when there is none).
    """

    def __init__(self, plans: Iterable[GamePlan], keep_results: bool = True):
        self._plans = iter(plans)
        self._ready: collections.deque[tuple[GamePlan, Game]] = collections.deque()  # can deal on
        self._playing: dict[int, tuple[GamePlan, Game]] = {}   # round in the pool, by game id
        self._next_id = 0
        self.keep_results = keep_results
        self.results: list[GameResult] = []
        self.games_started = 0
        self.games_finished = 0

    def __iter__(self) -> "FullGames":
        return self

    def __next__(self) -> tuple:
        if self._ready:
            plan, game = self._ready.popleft()
        else:
            plan = next(self._plans, None)
            if plan is None:
                raise StopIteration
            game = Game(plan.n_players, plan.start_cards, seed=plan.seed,
                        first_dealer=plan.first_dealer)
            self.games_started += 1
        game_id = self._next_id
        self._next_id += 1
        self._playing[game_id] = (plan, game)
        round_seed = (plan.seed * 1_000_003 + game.round_index * 7919 + 1) & _MASK64
        return (game.round, round_seed, plan.agents, ("game", game_id))

    def round_finished(self, record: dict) -> None:
        """The pool's ``on_finished`` hook: replay the round into its game; deal on."""
        tag = record.get("tag")
        if not (isinstance(tag, tuple) and len(tag) == 2 and tag[0] == "game"):
            return
        plan, game = self._playing.pop(tag[1])
        if record.get("game") is not None:
            record["game"]["game_id"] = plan.seed & _MASK64
        record["tag"] = (plan.key, game.round_index)
        if not record.get("complete"):      # a round cut short (stop_after) ends its game
            return
        for action in record["actions"][record["start_ply"]:]:
            game.apply(action)
        if game.is_over:
            self.games_finished += 1
            if self.keep_results:
                self.results.append(GameResult(plan, list(game.scores),
                                               [list(r) for r in game.round_scores],
                                               game.winners(), list(game.round_bids),
                                               list(game.round_tricks)))
        else:
            self._ready.append((plan, game))


def game_plans(seed: int, table: TableSection) -> Iterator[GamePlan]:
    """Endless full games for ``table``: game ``g`` has seed ``seed + g``, which draws its
    player count (by ``table.weights()``) and first dealer; it starts at ``table.start_for``."""
    counts, weights = table.player_counts(), table.weights()
    draw = TableDraw((n, 0, w) for n, w in zip(counts, weights))
    for g in itertools.count():
        game_seed = seed + g
        n, _ = draw(game_seed)
        yield GamePlan(n, table.start_for(n), seed=game_seed,
                       first_dealer=int(_unit(game_seed, 3) * n))


def seat_agents(seed: int, n_players: int, opponent: int, share: float) -> tuple[int, ...]:
    """Who sits where in one self-play round or game: each seat is the built-in player
    ``opponent`` (a SearchPool code < 0) with chance ``share``, else the network (0); drawn from
    ``seed``, and one seat always searches (a round of built-in players alone teaches nothing
    about the network's own play)."""
    agents = [opponent if _unit(seed, 100 + k) < share else 0 for k in range(n_players)]
    if 0 not in agents:
        agents[min(int(_unit(seed, 99) * n_players), n_players - 1)] = 0
    return tuple(agents)


def feed(seed: int, table: TableSection, opponent: int = 0, share: float = 0.0):
    """What self-play deals for ``table``: complete games when ``table.full_games``, else
    independent rounds drawn from ``table.distribution()``. With ``share`` > 0 the built-in
    player ``opponent`` (its SearchPool code) takes that share of the seats (``seat_agents``):
    the opponent pool of ``selfplay.opponent``."""
    if table.full_games:
        plans = game_plans(seed, table)
        if share > 0:
            plans = (dataclasses.replace(p, agents=seat_agents(p.seed, p.n_players, opponent, share))
                     for p in plans)
        return FullGames(plans, keep_results=False)
    rounds = table_rounds(seed, table.distribution())
    if share > 0:
        rounds = ((r, n, c, -1, -1, seat_agents(r, n, opponent, share)) for r, n, c in rounds)
    return rounds
