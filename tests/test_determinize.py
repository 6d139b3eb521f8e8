"""Determinization: every sample is consistent with the viewer's information, and samples
are uniform over consistent deals (chi-square against brute-force enumeration)."""
import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from helpers import advance

from blobcore import Rng, Round, count_consistent_deals, determinize


def assert_consistent(original, sample, viewer):
    """``sample`` keeps everything ``viewer`` knows and is a legal replay of the history."""
    assert sample.hand(viewer) == original.hand(viewer)
    assert sample.history == original.history
    assert sample.bids == original.bids and sample.tricks_won == original.tricks_won
    assert sample.played_cards == original.played_cards
    assert sample.void_suits == original.void_suits
    seen = set(original.hand(viewer)) | set(original.played_cards)
    held = []
    for seat in range(original.n_players):
        hand = sample.hand(seat)
        assert len(hand) == len(original.hand(seat))
        assert not set(hand) & set(original.played_cards)
        if seat != viewer:
            assert not set(hand) & seen, "a determinization reused a card the viewer has seen"
            assert all(c // 13 not in original.void_suits[seat] for c in hand)
        held += hand
    assert len(held) == len(set(held))
    # Strongest check: the sampled deal replays the public history legally.
    replay = Round.from_deal(sample.dealt_hands, original.trump, original.dealer)
    for _, action in original.history:
        replay.apply(action)
    assert replay.hands == sample.hands


#: (players, cards, seed, random steps played): a position somewhere in a random round
POSITIONS = st.integers(3, 8).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(1, 52 // n), st.integers(0, 10**9), st.integers(0, 60)))


@settings(max_examples=300, deadline=None)
@given(POSITIONS)
def test_every_sample_is_consistent(params):
    n, cards, seed, steps = params
    rnd = advance(Round.from_seed(seed, n, cards), steps, seed)
    if rnd.is_terminal:
        return
    viewer = rnd.current_player
    rng = Rng(seed)
    for _ in range(3):
        assert_consistent(rnd, determinize(rnd, viewer, rng), viewer)


def test_other_viewers_and_terminal_states():
    rnd = advance(Round.from_seed(3, 4, 5), 14, 3)
    for viewer in range(4):
        assert_consistent(rnd, determinize(rnd, viewer, 1), viewer)
    done = advance(rnd.copy(), 100, 0)
    assert determinize(done, 0, 1) == done
    with pytest.raises(ValueError, match="viewer"):
        determinize(done)


def test_reproducible_from_seed():
    rnd = advance(Round.from_seed(8, 5, 6), 12, 8)
    assert determinize(rnd, rng=42) == determinize(rnd, rng=42)
    assert determinize(rnd, rng=42) != determinize(rnd, rng=43)


def brute_force(rnd, viewer):
    """All consistent assignments of unseen cards to the other seats' hands."""
    unseen = sorted(set(range(52)) - set(rnd.hand(viewer)) - set(rnd.played_cards))
    others = [s for s in range(rnd.n_players) if s != viewer]
    sizes = [len(rnd.hand(s)) for s in others]
    voids = rnd.void_suits
    deals = []

    def fill(i, left, acc):
        if i == len(others):
            deals.append(tuple(acc))
            return
        for hand in itertools.combinations(left, sizes[i]):
            if any(c // 13 in voids[others[i]] for c in hand):
                continue
            rest = [c for c in left if c not in hand]
            fill(i + 1, rest, acc + [hand])
    fill(0, unseen, [])
    return others, deals


def find_position(n, cards, steps, min_constrained, max_deals):
    """A seeded position with at least ``min_constrained`` opponents showing a void."""
    for seed in range(5000):
        rnd = advance(Round.from_seed(seed, n, cards), steps, seed)
        if rnd.is_terminal:
            continue
        viewer = rnd.current_player
        constrained = sum(1 for s, v in enumerate(rnd.void_suits)
                          if v and s != viewer and rnd.hand(s))
        if constrained >= min_constrained and count_consistent_deals(rnd) <= max_deals:
            return rnd
    raise AssertionError("no suitable position found")


@pytest.mark.parametrize("n,cards,steps,constrained", [
    (4, 13, 4 + 4 * 10 + 1, 2),    # no undealt cards, mid-trick, two seats with voids
    (3, 17, 3 + 3 * 14, 1),        # one undealt card (the "pile" absorbs a card)
    (4, 13, 4 + 4 * 11, 3),        # every opponent constrained
])
def test_samples_are_uniform_over_consistent_deals(n, cards, steps, constrained):
    rnd = find_position(n, cards, steps, constrained, max_deals=200)
    viewer = rnd.current_player
    others, deals = brute_force(rnd, viewer)
    assert len(deals) == count_consistent_deals(rnd)
    assert len(deals) >= 3
    index = {d: i for i, d in enumerate(deals)}
    rng = Rng(1234)
    draws = 400 * len(deals) if len(deals) < 50 else 100 * len(deals)
    counts = Counter()
    for _ in range(draws):
        sample = determinize(rnd, viewer, rng)
        key = tuple(tuple(sample.hand(s)) for s in others)
        assert key in index, "sampled an inconsistent deal"
        counts[key] += 1
    observed = [counts[d] for d in deals]
    stat, p = chisquare(observed)
    assert p > 1e-3, f"not uniform: chi2={stat:.1f}, p={p:.2g} over {len(deals)} deals"
    assert min(observed) > 0


def test_count_without_voids_is_the_multinomial():
    """Before anyone shows out, every split of the unseen cards is consistent."""
    from math import comb
    rnd = Round.from_seed(4, 4, 5)
    assert count_consistent_deals(rnd) == pytest.approx(comb(47, 5) * comb(42, 5) * comb(37, 5), rel=1e-12)
    rnd = advance(Round.from_seed(4, 8, 6), 8, 4)          # bids in, nothing played
    expected = 1
    left = 52 - 6
    for _ in range(7):
        expected *= comb(left, 6)
        left -= 6
    assert count_consistent_deals(rnd) == pytest.approx(expected, rel=1e-12)
