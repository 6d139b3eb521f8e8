"""Drive pooled search against an evaluator, overlapping search and network time.

The games in flight are split into two ``SearchPool`` halves. While one half's batch of
leaves is being evaluated (by Triton in another process, or ONNX Runtime in a thread, both
outside the GIL), the other half runs its search and prepares the next batch: double
buffering. docs/search.md explains the flow.
"""
from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from blobcore.search.pool import SearchPool
from blobcore.rules import Round
from blobcore.search_config import SearchConfig
from selfplay_client.tables import table_rounds


@dataclass
class RunStats:
    """Counters of one run; times in seconds."""

    rounds: int = 0
    batches: int = 0
    positions: int = 0           # leaf evaluations requested (rows sent)
    search_s: float = 0.0        # inside collect()/apply(): tree work, encoding
    wait_s: float = 0.0          # blocked on the evaluator
    wall_s: float = 0.0
    search: dict = field(default_factory=dict)   # SearchPool counters, summed over halves

    @property
    def positions_per_batch(self) -> float:
        return self.positions / self.batches if self.batches else 0.0

    def as_dict(self) -> dict:
        return {"rounds": self.rounds, "batches": self.batches, "positions": self.positions,
                "positions_per_batch": round(self.positions_per_batch, 1),
                "search_s": round(self.search_s, 3), "wait_s": round(self.wait_s, 3),
                "wall_s": round(self.wall_s, 3), **self.search}


def round_specs(seed: int, n_players: int = 4, cards: int | tuple[int, int] = 5) -> Iterator[tuple]:
    """Endless round specs for one player count with seeds ``seed, seed+1, ...``; dealer and
    trump come from each round's seed (so every situation is seen). ``cards`` may be a
    (low, high) range, drawn per round from the seed too (``tables.table_rounds``)."""
    low, high = cards if isinstance(cards, tuple) else (cards, cards)
    return table_rounds(seed, [(n_players, c, 1.0) for c in range(low, high + 1)])


class _ThreadSubmit:
    """Gives a blocking ``evaluate`` the ``submit -> Future`` shape, on one worker thread."""

    def __init__(self, evaluate: Callable):
        self._evaluate = evaluate
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="evaluator")

    def __call__(self, states: np.ndarray, masks: np.ndarray, *worlds) -> concurrent.futures.Future:
        # The pool's buffers are not touched until apply(), so no copy is needed here.
        return self._executor.submit(self._evaluate, states, masks, *worlds)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _unpack(result) -> tuple[np.ndarray, np.ndarray, int | None, np.ndarray | None, np.ndarray | None]:
    """(policy, value, model version, beliefs, world) of an evaluator's answer: a tuple
    (policy, value[, beliefs[, world]]) or an object with those attributes (and
    ``model_version``)."""
    if isinstance(result, tuple):
        return (result[0], result[1], None, (result[2] if len(result) > 2 else None),
                (result[3] if len(result) > 3 else None))
    return (result.policy, result.value, getattr(result, "model_version", None),
            getattr(result, "beliefs", None), getattr(result, "world", None))


def _needs_worlds(evaluator, pool: SearchPool) -> None:
    """A search whose leaf value needs worlds must have an evaluator that answers them."""
    if pool.worlds is not None and not getattr(evaluator, "answers_worlds", False):
        raise ValueError(f"search.rollout = {pool.config.rollout!r} needs an evaluator that "
                         f"answers world values (selfplay_client.world_values.WorldEvaluator), got "
                         f"{type(evaluator).__name__}")


class _SplitSubmit:
    """Several agents in one pool: rows go to the evaluator of the seat that is searching
    (``SearchPool.row_agents``); the answers are stitched back in row order."""

    def __init__(self, evaluators: list):
        self._submits = [getattr(e, "submit", None) or _ThreadSubmit(e.evaluate) for e in evaluators]
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="split")

    def __call__(self, states, masks, agents, worlds=None) -> concurrent.futures.Future:
        agents = np.array(agents, copy=True)
        parts = []
        for agent in np.unique(agents):
            if not 0 <= agent < len(self._submits):
                raise ValueError(f"row agent {agent} has no evaluator ({len(self._submits)} given)")
            rows = np.flatnonzero(agents == agent)
            extra = () if worlds is None else (worlds[rows],)
            parts.append((rows, self._submits[agent](states[rows], masks[rows], *extra)))
        n = len(states)

        def place(out, rows, part):
            """``part`` (one evaluator's answer for ``rows``) into the whole batch's ``out``."""
            if part is None:
                return out
            if out is None:
                out = np.zeros((n, *part.shape[1:]), np.float32)
            out[rows] = part
            return out

        def gather():
            policy = value = beliefs = world = None
            for rows, future in parts:
                p, v, _, b, w = _unpack(future.result())
                policy, value = place(policy, rows, p), place(value, rows, v)
                beliefs, world = place(beliefs, rows, b), place(world, rows, w)
            return policy, value, beliefs, world
        return self._executor.submit(gather)

    def close(self) -> None:
        for submit in self._submits:
            if isinstance(submit, _ThreadSubmit):
                submit.close()
        self._executor.shutdown(wait=True)


class PooledSearch:
    """K rounds searched at once against ``evaluator`` (``evaluate`` and optionally ``submit``).

    ``evaluator`` may also be a list: round specs then name, per seat, the index of the
    evaluator that seat's searches use (or -1 for random play), e.g. for the arena.

    n_games: rounds in flight in total; split into ``halves`` pools (2 = double buffering).
    rounds: iterable of round specs (see ``SearchPool``); the run ends when it is exhausted.
    stop_after: searched decisions after which each round stops (0 = play it out).
    record_builtin: record built-in seats' moves as one-visit decisions (imitation targets).
    """

    def __init__(self, evaluator, config: SearchConfig, rounds: Iterable, n_games: int,
                 halves: int = 2, stop_after: int = 0, record_builtin: bool = False):
        if n_games < 1:
            raise ValueError(f"n_games must be >= 1, got {n_games}")
        halves = max(1, min(halves, n_games))
        self.config = config
        self._rounds = iter(rounds)
        sizes = [n_games // halves + (1 if i < n_games % halves else 0) for i in range(halves)]
        # A feeder of full games (selfplay_client.tables.FullGames) learns of each finished
        # round before the pool asks it for the next one.
        on_finished = getattr(rounds, "round_finished", None)
        self.pools = [SearchPool(size, config, self._rounds, stop_after=stop_after,
                                 on_finished=on_finished, record_builtin=record_builtin)
                      for size in sizes]
        if self.pools[0].worlds is not None:
            for each in (evaluator if isinstance(evaluator, (list, tuple)) else (evaluator,)):
                _needs_worlds(each, self.pools[0])
        if isinstance(evaluator, (list, tuple)):
            self._split = _SplitSubmit(list(evaluator))
            self._thread_submit = None
            self._submit = None
        else:
            self._split = None
            own_submit = getattr(evaluator, "submit", None)
            self._thread_submit = None if own_submit else _ThreadSubmit(evaluator.evaluate)
            self._submit = own_submit or self._thread_submit
        self.model_version: int | None = None
        self.stats = RunStats()
        self._held: list[dict] = []    # records of run() calls made without on_record
        self._on_record: Callable[[dict], None] | None = None

    def run(self, on_record: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> RunStats:
        """Search until the round specs run out (or ``should_stop()``); every finished round
        goes to ``on_record`` (tagged with ``model_version`` when the evaluator reports it).
        When stopping early, rounds still in flight are dropped."""
        stats = self.stats
        started = time.perf_counter()
        self._on_record = on_record
        futures = [self._collect_and_submit(pool) for pool in self.pools]
        try:
            while any(f is not None for f in futures):
                for i, pool in enumerate(self.pools):
                    if futures[i] is None:
                        continue
                    t0 = time.perf_counter()
                    policy, value, version, beliefs, world = _unpack(futures[i].result())
                    t1 = time.perf_counter()
                    stats.wait_s += t1 - t0
                    if version is not None:
                        self.model_version = version
                    pool.apply(policy, value, beliefs, world)
                    stats.search_s += time.perf_counter() - t1
                    if should_stop is not None and should_stop():
                        futures[i] = None
                        continue
                    futures[i] = self._collect_and_submit(pool)
        finally:
            for f in futures:        # never leave a request behind on an early exit
                if f is not None:
                    f.cancel()
            if self._thread_submit is not None:
                self._thread_submit.close()
            if self._split is not None:
                self._split.close()
        stats.wall_s += time.perf_counter() - started
        stats.search = {k: sum(p.stats[k] for p in self.pools) for k in self.pools[0].stats}
        return stats

    def _collect_and_submit(self, pool: SearchPool):
        t0 = time.perf_counter()
        states, masks = pool.collect()
        self.stats.search_s += time.perf_counter() - t0
        self._emit(pool)        # rounds finish inside collect(), when their last move is played
        if len(states) == 0:
            return None
        self.stats.batches += 1
        self.stats.positions += len(states)
        worlds = pool.worlds
        if self._split is not None:
            return self._split(states, masks, pool.row_agents, worlds)
        if worlds is not None:
            return self._submit(states, masks, worlds)
        return self._submit(states, masks)

    def _emit(self, pool: SearchPool) -> None:
        for record in pool.pop_finished():
            record["model_version"] = self.model_version
            self.stats.rounds += 1
            if self._on_record is not None:
                self._on_record(record)
            else:
                self._held.append(record)

    def finished(self) -> list[dict]:
        """Records collected by ``run()`` calls made without ``on_record``."""
        out, self._held = self._held, []
        return out


def search_position(rnd: Round, config: SearchConfig, evaluator, seed: int = 0) -> dict:
    """Search the decision at ``rnd`` (the player to move) once; return its record:
    ``action`` (chosen), ``visits`` and ``q`` per legal action, ``root_value`` by seat and
    ``policy`` (the Gumbel root's improved policy; None with a PUCT root)."""
    legal = rnd.legal_actions()
    if not legal:
        raise ValueError("the round is over: there is no decision to search")
    if len(legal) == 1:
        return {"action": legal[0], "visits": {legal[0]: 0}, "q": {}, "root_value": None,
                "policy": None, "player": rnd.current_player, "ply": len(rnd.history), "forced": True}
    search = PooledSearch(evaluator, config, [(rnd, seed)], n_games=1, halves=1, stop_after=1)
    search.run()
    (record,) = search.finished()
    decision = dict(record["decisions"][0])
    decision["action"] = record["actions"][record["start_ply"]]
    decision["forced"] = False
    return decision
