"""Simple built-in players: baselines for the demo, tests and the arena.

A player is a callable ``(round, rng) -> action`` that sees the full ``Round`` object
but, by contract, reads only the public record and its own hand.
"""
from __future__ import annotations

import random

from blobcore.rules import PHASE_BID, Round


def random_player(rnd: Round, rng: random.Random) -> int:
    """Uniformly random legal action."""
    return rng.choice(rnd.legal_actions())


def _trick_strength(card: int, trump: int | None) -> float:
    """Rough chance that ``card`` wins a trick: high ranks and trumps."""
    suit, rank = divmod(card, 13)
    if trump is not None and suit == trump:
        return 0.45 + 0.05 * rank
    return max(0.0, (rank - 8) * 0.22)   # ten 0.0, J 0.22, Q 0.44, K 0.66, A 0.88


def greedy_player(rnd: Round, rng: random.Random) -> int:
    """Bids its expected tricks from card strength; then plays to win a trick while it
    still needs tricks, and to lose one otherwise (cheapest card that does the job)."""
    me = rnd.current_player
    legal = rnd.legal_actions()
    if rnd.phase == PHASE_BID:
        want = round(sum(_trick_strength(c, rnd.trump) for c in rnd.hand(me)))
        return min(legal, key=lambda b: (abs(b - want), b))
    need = rnd.bids[me] - rnd.tricks_won[me]
    winning, losing = [], []
    for card in legal:
        trial = rnd.copy()
        trial.apply(card)
        (winning if trial.current_trick_winner == me or
         (trial.tricks_won[me] > rnd.tricks_won[me]) else losing).append(card)
    rank = lambda c: (c % 13) + (13 if rnd.trump is not None and c // 13 == rnd.trump else 0)
    if need > 0 and winning:
        last_to_play = len(rnd.current_trick) == rnd.n_players - 1
        # Last to play: the cheapest winner suffices; otherwise play the strongest.
        return min(winning, key=rank) if last_to_play else max(winning, key=rank)
    if losing:
        return max(losing, key=rank)     # shed the highest card that still loses
    return min(legal, key=rank)


PLAYERS = {"random": random_player, "greedy": greedy_player}
