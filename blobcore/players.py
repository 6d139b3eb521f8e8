"""Simple built-in players: baselines for the demo, tests and the arena.

A player is a callable ``(round, rng) -> action`` that sees the full ``Round`` object
but, by contract, reads only the public record and its own hand.
"""
from __future__ import annotations

import random

from blobcore.greedy import greedy
from blobcore.rules import Round


def random_player(rnd: Round, rng: random.Random) -> int:
    """Uniformly random legal action."""
    return rng.choice(rnd.legal_actions())


def greedy_player(rnd: Round, rng: random.Random) -> int:
    """The greedy baseline (blobcore/greedy.pyx, shared with the arena): bids its expected
    tricks from card strength, then plays to win while it needs tricks and to lose after."""
    return greedy(rnd)


PLAYERS = {"random": random_player, "greedy": greedy_player}
