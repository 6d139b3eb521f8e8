"""A full game of Blob: the round schedule, dealer rotation, trump rotation,
cumulative scores and the winner (docs/rules.md).

Rounds are the Cython ``Round``; this class only sequences them.
"""
from __future__ import annotations

from blobcore.rules import Rng, Round, game_schedule, trump_for_round


class Game:
    """A full game for ``n_players`` starting at ``start_cards`` cards per seat.

    Round i has ``schedule[i]`` cards, dealer ``(first_dealer + i) % N`` and trump
    ``trump_for_round(i)``. Deals come from ``seed`` (reproducible) unless ``deals``
    supplies explicit hands per round.
    """

    def __init__(self, n_players: int, start_cards: int, seed: int = 0,
                 first_dealer: int = 0, deals: list[list[list[int]]] | None = None):
        self.n_players = n_players
        self.schedule = game_schedule(n_players, start_cards)
        if not 0 <= first_dealer < n_players:
            raise ValueError(f"first_dealer must be a seat 0..{n_players - 1}, got {first_dealer}")
        if deals is not None and len(deals) != len(self.schedule):
            raise ValueError(f"need {len(self.schedule)} deals, got {len(deals)}")
        self.first_dealer = first_dealer
        self._rng = Rng(seed)
        self._deals = deals
        self.scores = [0] * n_players          # cumulative, after completed rounds
        self.round_scores: list[list[int]] = []
        self.round_bids: list[list[int]] = []      # by completed round, by seat
        self.round_tricks: list[list[int]] = []
        self.round_index = 0
        self.round = self._deal(0)

    # -- sequencing ----------------------------------------------------------
    def _deal(self, index: int) -> Round:
        dealer = (self.first_dealer + index) % self.n_players
        trump = trump_for_round(index)
        if self._deals is not None:
            rnd = Round.from_deal(self._deals[index], trump, dealer)
            if rnd.cards != self.schedule[index]:
                raise ValueError(f"round {index} must deal {self.schedule[index]} cards per seat, "
                                 f"got {rnd.cards}")
        else:
            rnd = Round.from_seed(self._rng, self.n_players, self.schedule[index],
                                  dealer=dealer, trump=trump)
        nxt = self.schedule[index + 1] if index + 1 < len(self.schedule) else 0
        rnd.set_game_context(index, len(self.schedule), nxt, self.scores)
        return rnd

    def apply(self, action) -> None:
        """Apply ``action`` in the current round; deal the next round when it ends."""
        if self.is_over:
            raise ValueError("the game is over")
        self.round.apply(action)
        if self.round.is_terminal:
            scores = self.round.scores()
            self.round_scores.append(scores)
            self.round_bids.append(list(self.round.bids))
            self.round_tricks.append(list(self.round.tricks_won))
            self.scores = [a + b for a, b in zip(self.scores, scores)]
            self.round_index += 1
            if not self.is_over:
                self.round = self._deal(self.round_index)

    # -- queries -------------------------------------------------------------
    @property
    def is_over(self) -> bool:
        return self.round_index >= len(self.schedule)

    @property
    def current_player(self) -> int:
        return -1 if self.is_over else self.round.current_player

    def legal_actions(self) -> list[int]:
        return [] if self.is_over else self.round.legal_actions()

    def winners(self) -> list[int]:
        """Seats with the highest cumulative score (several on a tie)."""
        if not self.is_over:
            raise ValueError(f"the game is not over: round {self.round_index + 1} of "
                             f"{len(self.schedule)}")
        best = max(self.scores)
        return [seat for seat, s in enumerate(self.scores) if s == best]
