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


# --- policy-based inference with the network's own policy (search.policy_inference) ---------

import dataclasses

import numpy as np

from blobcore.search.pool import SearchPool
from blobcore.search_config import batch_capacity
from blobcore.search_config import PLAIN

HAND, PHASE_BID, TRUMP = 0, 233, 228


class TrumpCountingBidder:
    """An evaluator with a known model of bidding: a bidder bids the number of trumps it holds
    (P(bid b) proportional to exp(-2 |b - trumps|)); card play and values are uninformed. It
    reads only the view it is given, as a network does, so the search's inference must hand
    it each other seat's view in each candidate deal."""

    def evaluate(self, states, masks):
        n = len(states)
        policy = masks.copy()
        for i in range(n):
            if states[i, PHASE_BID] > 0.5:
                trump = int(np.argmax(states[i, TRUMP:TRUMP + 5]))
                held = 0 if trump == 4 else int(states[i, HAND + 13 * trump:HAND + 13 * trump + 13].sum())
                bids = np.arange(52)
                policy[i] = masks[i] * np.exp(-2.0 * np.abs(bids - held))
            policy[i] /= policy[i].sum()
        return policy.astype(np.float32), np.full((n, 8), 0.5, np.float32)


def _high_bid_position():
    """The position of ``test_a_high_bid_draws_the_trumps_to_the_bidder``: seat 3 (no spade)
    to bid after seat 0 bid 4 and seats 1 and 2 bid 0, spades trump."""
    hands = [["AS", "KS", "QS", "AH", "KH"], ["2C", "3C", "4C", "5C", "6C"],
             ["2D", "3D", "4D", "5D", "6D"], ["7C", "8C", "9C", "7D", "8D"]]
    rnd = Round.from_deal([[card_index(c) for c in h] for h in hands], "S", dealer=3)
    for bid in (4, 0, 0):
        rnd.apply(bid)
    return rnd


def _first_worlds(config, rounds=64):
    """Seat 0's trump count in the first determinization of each of ``rounds`` searches of
    that position, and the pool's counters."""
    evaluator = TrumpCountingBidder()
    pool = SearchPool(rounds, config, [(_high_bid_position(), seed) for seed in range(rounds)],
                      stop_after=1)
    held = {}
    while len(held) < rounds:
        states, masks = pool.collect()
        assert 0 < len(states) <= batch_capacity(rounds, config)
        pool.apply(*evaluator.evaluate(np.array(states), np.array(masks)))
        for slot in range(rounds):
            world = pool.determinization_root(slot)
            if world is not None and slot not in held:
                held[slot] = trumps_held(world, 0)
    return list(held.values()), pool.stats


def test_the_networks_own_bidding_model_draws_the_trumps_to_the_high_bidder():
    plain = dataclasses.replace(PLAIN, add_noise=False, inference_candidates=1)
    uniform, stats_u = _first_worlds(plain)
    weighted, stats_w = _first_worlds(dataclasses.replace(plain, beliefs="policy", policy_inference=16))
    assert 1.0 < np.mean(uniform) < 1.9            # 5 x 13 / 47 = 1.4 spades drawn uniformly
    assert np.mean(weighted) > np.mean(uniform) + 1.0
    # one row per candidate deal and other seat's bid (each had 6 legal bids), nothing more
    assert stats_u["inference_rows"] == 0
    assert stats_w["inference_rows"] == 64 * 16 * 3


def test_policy_inference_plays_whole_rounds_within_the_batch_capacity():
    """Every round finishes and no batch outgrows ``batch_capacity``, with the most candidates
    and few slots (rounds then wait for room for their inference rows)."""
    config = dataclasses.replace(PLAIN, determinizations=2, simulations=8, beliefs="policy",
                                 policy_inference=32)
    pool = SearchPool(12, config, [(seed, 4, 5) for seed in range(24)])
    evaluator = TrumpCountingBidder()
    while True:
        states, masks = pool.collect()
        if len(states) == 0:
            break
        assert len(states) <= batch_capacity(12, config)
        pool.apply(*evaluator.evaluate(np.array(states), np.array(masks)))
    records = pool.pop_finished()
    assert len(records) == 24 and all(r["complete"] for r in records)
    assert pool.stats["inference_rows"] > 0
    assert all(r["search"]["policy_inference"] == 32 for r in records)


def test_policy_inference_settings_are_checked():
    with pytest.raises(ValueError, match="policy_inference must be 0..32"):
        dataclasses.replace(PLAIN, policy_inference=33)
    with pytest.raises(ValueError, match="policy_inference_temperature"):
        dataclasses.replace(PLAIN, beliefs="policy", policy_inference=8,
                            policy_inference_temperature=0)
    with pytest.raises(ValueError, match='set beliefs = "policy" too'):
        dataclasses.replace(PLAIN, policy_inference=8)
    with pytest.raises(ValueError, match='beliefs "policy" needs policy_inference'):
        dataclasses.replace(PLAIN, beliefs="policy")
