"""Inference when sampling hidden hands (blobcore.inference): consistent worlds, weighted by
how likely each other seat's bid was with the hand it is given."""
import pytest
from hypothesis import given, settings

from helpers import advance
from test_determinize import POSITIONS, assert_consistent

from blobcore import Rng, Round, card_index, determinize, sample_hidden_hands
from blobcore.expert import expert, expert_bid_probability


@settings(max_examples=150, deadline=None)
@given(POSITIONS)
def test_every_weighted_sample_is_consistent(params):
    n, cards, seed, steps = params
    rnd = advance(Round.from_seed(seed, n, cards), steps, seed)
    if rnd.is_terminal:
        return
    viewer = rnd.current_player
    rng = Rng(seed)
    for _ in range(2):
        assert_consistent(rnd, sample_hidden_hands(rnd, viewer, rng, candidates=8), viewer)


def test_one_candidate_is_the_uniform_sampler():
    rnd = advance(Round.from_seed(7, 4, 5), 9, 7)
    for seed in range(20):
        assert sample_hidden_hands(rnd, None, seed, candidates=1) == determinize(rnd, None, seed)


def test_bid_probabilities_sum_to_one_and_peak_at_the_experts_bid():
    for seed in range(30):
        deal = Round.from_seed(seed, 4, 5)
        first = deal.current_player
        best = expert(deal)
        probs = []
        for bid in range(6):
            rnd = deal.copy()
            rnd.apply(bid)
            probs.append(expert_bid_probability(rnd, first, temperature=2.0))
        assert sum(probs) == pytest.approx(1.0, abs=1e-9)
        assert max(probs) == probs[best]
    # a seat that has not bid yet tells nothing
    assert expert_bid_probability(Round.from_seed(0, 4, 5), 2) == 1.0


def trumps_held(rnd, seat):
    return sum(1 for c in rnd.hand(seat) if c // 13 == rnd.trump)


def test_a_high_bid_draws_the_trumps_to_the_bidder():
    """4 x 5, spades trump. The viewer (seat 3, the dealer) holds no spade; seat 0 bid 4, seats
    1 and 2 bid 0. Drawn uniformly, each other seat holds 5 x 13 / 47 = 1.4 spades on average;
    with inference seat 0, the one that bid 4, must hold clearly more of them."""
    hands = [["AS", "KS", "QS", "AH", "KH"], ["2C", "3C", "4C", "5C", "6C"],
             ["2D", "3D", "4D", "5D", "6D"], ["7C", "8C", "9C", "7D", "8D"]]
    rnd = Round.from_deal([[card_index(c) for c in h] for h in hands], "S", dealer=3)
    for bid in (4, 0, 0):
        rnd.apply(bid)
    uniform = weighted = 0
    draws = 300
    rng_u, rng_w = Rng(1), Rng(1)
    for _ in range(draws):
        uniform += trumps_held(determinize(rnd, 3, rng_u), 0)
        weighted += trumps_held(sample_hidden_hands(rnd, 3, rng_w, candidates=16, temperature=1.0), 0)
    assert 1.0 < uniform / draws < 1.9
    assert weighted / draws > uniform / draws + 0.8


def test_bad_arguments_are_refused():
    rnd = Round.from_seed(0, 4, 5)
    with pytest.raises(ValueError, match="candidates"):
        sample_hidden_hands(rnd, candidates=0)
    with pytest.raises(ValueError, match="viewer"):
        sample_hidden_hands(rnd, viewer=4)
    with pytest.raises(ValueError, match="seat"):
        expert_bid_probability(rnd, 9)
