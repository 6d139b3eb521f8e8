"""The one registry of built-in players: baselines for self-play seats, the arena, the
strength tracker, ``blobzero game``, the demo and the agent — all look players up here.

A player is callable ``(round, rng) -> action``; it sees the full ``Round`` object but, by
contract, reads only the public record and its own hand. ``code`` is how the search pool
seats it (``blobcore.mcts`` plays it in C, without search). A new built-in player is one
entry here (plus its code in the pool when it should sit in pooled matches).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from blobcore.expert import expert
from blobcore.greedy import greedy
from blobcore.mcts import AGENT_EXPERT, AGENT_GREEDY, AGENT_RANDOM
from blobcore.rules import Round


@dataclass(frozen=True)
class BuiltinPlayer:
    """name: how every command names it; code: its SearchPool agent id (< 0);
    act: ``(round, rng) -> action``; summary: one line for help texts."""
    name: str
    code: int
    act: Callable[[Round, random.Random], int]
    summary: str

    def __call__(self, rnd: Round, rng: random.Random) -> int:
        return self.act(rnd, rng)


def _random(rnd: Round, rng: random.Random) -> int:
    return rng.choice(rnd.legal_actions())


PLAYERS: dict[str, BuiltinPlayer] = {p.name: p for p in (
    BuiltinPlayer("random", AGENT_RANDOM, _random, "uniformly random legal action"),
    BuiltinPlayer("greedy", AGENT_GREEDY, lambda rnd, rng: greedy(rnd),
                  "bids its expected tricks from card strength, plays to win while it needs tricks"),
    BuiltinPlayer("expert", AGENT_EXPERT, lambda rnd, rng: expert(rnd),
                  "counts cards, bids the trick count with the best expected score, plays to make it"),
)}
BY_CODE: dict[int, BuiltinPlayer] = {p.code: p for p in PLAYERS.values()}


def builtin_player(name: str) -> BuiltinPlayer:
    """The built-in player called ``name``; ValueError naming the choices otherwise."""
    try:
        return PLAYERS[name]
    except KeyError:
        raise ValueError(f"unknown built-in player {name!r}; choose one of {', '.join(PLAYERS)}") from None
