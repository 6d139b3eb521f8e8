"""Simple built-in players: baselines for the demo, tests and the arena.

A player is a callable ``(round, rng) -> action`` that sees the full ``Round`` object
but, by contract, reads only the public record and its own hand.
"""
from __future__ import annotations

import random

from blobcore.expert import expert
from blobcore.greedy import greedy
from blobcore.rules import Round


def random_player(rnd: Round, rng: random.Random) -> int:
    """Uniformly random legal action."""
    return rng.choice(rnd.legal_actions())


def greedy_player(rnd: Round, rng: random.Random) -> int:
    """The greedy baseline (blobcore/greedy.pyx, shared with the arena): bids its expected
    tricks from card strength, then plays to win while it needs tricks and to lose after."""
    return greedy(rnd)


def expert_player(rnd: Round, rng: random.Random) -> int:
    """The expert baseline (blobcore/expert.pyx, shared with the arena): counts cards, bids the
    trick count that maximises its expected score and plays to make it exactly."""
    return expert(rnd)


PLAYERS = {"random": random_player, "greedy": greedy_player, "expert": expert_player}
