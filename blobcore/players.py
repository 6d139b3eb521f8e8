"""The one registry of built-in players: baselines for self-play seats, the arena, the
strength tracker, ``blobzero game``, the demo and the agent — all look players up here.

The players themselves are C functions registered in ``blobcore/builtin.pyx`` (one
``_register`` line each): this module wraps that table for Python callers. A player is
callable ``(round, rng) -> action``; it reads only the public record and its own hand.
``code`` is how the search pool seats it (played in C, without search).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from blobcore import builtin
from blobcore.rules import Round


@dataclass(frozen=True)
class BuiltinPlayer:
    """name: how every command names it; code: its SearchPool agent id (< 0);
    summary: one line for help texts."""
    name: str
    code: int
    summary: str

    def __call__(self, rnd: Round, rng: random.Random | None) -> int:
        """The action this player takes in ``rnd``; ``rng`` feeds a player that draws at
        random (None: a fixed draw)."""
        return builtin.act(self.code, rnd, rng.getrandbits(64) if rng is not None else 0)


PLAYERS: dict[str, BuiltinPlayer] = {name: BuiltinPlayer(name, code, summary)
                                     for name, code, summary in builtin.ENTRIES}
BY_CODE: dict[int, BuiltinPlayer] = {p.code: p for p in PLAYERS.values()}


def builtin_player(name: str) -> BuiltinPlayer:
    """The built-in player called ``name``; ValueError naming the choices otherwise."""
    try:
        return PLAYERS[name]
    except KeyError:
        raise ValueError(f"unknown built-in player {name!r}; choose one of {', '.join(PLAYERS)}") from None


#: Agent codes of the players every release has, for round specs written by hand.
AGENT_RANDOM = PLAYERS["random"].code
AGENT_GREEDY = PLAYERS["greedy"].code
AGENT_EXPERT = PLAYERS["expert"].code
