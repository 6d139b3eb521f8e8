"""The full-game sequence: schedule, dealer and trump rotation, cumulative scores, winner."""
import random

import pytest

from blobcore import Game, game_schedule, trump_for_round


def play_out(game, seed=0):
    rng = random.Random(seed)
    seen = []
    while not game.is_over:
        rnd = game.round
        if not rnd.history:
            seen.append((game.round_index, rnd.cards, rnd.dealer, rnd.trump, rnd.game_context))
        game.apply(rng.choice(game.legal_actions()))
    return seen


def test_game_runs_the_schedule_with_rotating_dealer_and_trump():
    game = Game(5, 4, seed=2, first_dealer=3)
    seen = play_out(game)
    schedule = game_schedule(5, 4)
    assert [s[1] for s in seen] == schedule
    assert [s[2] for s in seen] == [(3 + i) % 5 for i in range(len(schedule))]
    assert [s[3] for s in seen] == [trump_for_round(i) for i in range(len(schedule))]
    for i, (_, _, _, _, ctx) in enumerate(seen):
        assert ctx["round_index"] == i and ctx["n_rounds"] == len(schedule)
        assert ctx["next_cards"] == (schedule[i + 1] if i + 1 < len(schedule) else 0)


def test_cumulative_scores_and_winner():
    game = Game(4, 3, seed=5)
    play_out(game, seed=1)
    assert game.scores == [sum(r[s] for r in game.round_scores) for s in range(4)]
    assert len(game.round_scores) == len(game.schedule)
    assert game.winners() == [s for s in range(4) if game.scores[s] == max(game.scores)]
    with pytest.raises(ValueError, match="game is over"):
        game.apply(0)


def test_game_context_carries_scores_before_each_round():
    game = Game(3, 2, seed=7)
    rng = random.Random(3)
    while not game.is_over:
        assert game.round.game_context["game_scores"] == game.scores
        game.apply(rng.choice(game.legal_actions()))


def test_winners_before_the_end_is_an_error():
    with pytest.raises(ValueError, match="not over"):
        Game(4, 2).winners()
