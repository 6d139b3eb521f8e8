"""Property tests over random tables and random legal play (hypothesis)."""
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from blobcore import PHASE_BID, PHASE_PLAY, Round


@st.composite
def tables(draw):
    n = draw(st.integers(3, 8))
    cards = draw(st.integers(1, 52 // n))
    seed = draw(st.integers(0, 2**63 - 1))
    return n, cards, seed


@settings(max_examples=300, deadline=None)
@given(tables())
def test_random_legal_play_respects_every_invariant(table):
    n, cards, seed = table
    rnd = Round.from_seed(seed, n, cards)
    rng = random.Random(seed)
    played = []
    steps = 0
    while not rnd.is_terminal:
        legal = rnd.legal_actions()
        assert legal, "a non-terminal state always has a legal action"
        if rnd.phase == PHASE_PLAY:
            hand = set(rnd.hand(rnd.current_player))
            assert set(legal) <= hand                       # mask is a subset of the hand
            if rnd.current_trick:
                led = rnd.current_trick[0][1] // 13
                if any(c // 13 == led for c in hand):       # must follow when able
                    assert all(c // 13 == led for c in legal)
        else:
            assert set(legal) <= set(range(cards + 1))
        action = rng.choice(legal)
        if rnd.phase == PHASE_PLAY:
            played.append(action)
        was_bidding = rnd.phase == PHASE_BID
        rnd.apply(action)
        if was_bidding and rnd.phase == PHASE_PLAY:         # the dealer just bid
            assert sum(rnd.bids) != cards
        steps += 1
        assert steps <= n + n * cards                        # always terminates
    assert steps == n + n * cards
    assert len(played) == len(set(played)) == n * cards     # no card played twice
    assert sorted(played) == sorted(c for h in rnd.dealt_hands for c in h)
    assert sum(rnd.tricks_won) == cards
    for bid, won, score in zip(rnd.bids, rnd.tricks_won, rnd.scores()):
        assert score == (10 + bid if bid == won else 0)


@settings(max_examples=200, deadline=None)
@given(tables(), st.integers(0, 60))
def test_illegal_actions_leave_the_state_unchanged(table, stop):
    n, cards, seed = table
    rnd = Round.from_seed(seed, n, cards)
    rng = random.Random(seed)
    for _ in range(min(stop, n + n * cards)):   # stop past the end = the terminal state
        rnd.apply(rng.choice(rnd.legal_actions()))
    before = rnd.to_bytes()
    legal = set(rnd.legal_actions())
    for action in range(-1, 53):
        if action in legal:
            continue
        try:
            rnd.apply(action)
        except ValueError as exc:
            assert str(action) in str(exc)
        else:
            raise AssertionError(f"illegal action {action} was accepted")
        assert rnd.to_bytes() == before
