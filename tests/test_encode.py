"""Observation encoder: slot layout, relative seats, normalisation, no hidden information."""
import itertools
import random
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import advance

from blobcore import OBS_SIZE, Round, card_index, determinize, encode, encode_into
from blobcore.encode import SLOTS

DOC = Path(__file__).parents[1] / "docs" / "observation.md"


def test_slots_tile_the_256_floats_exactly():
    spans = sorted(SLOTS.values())
    assert spans[0][0] == 0
    for (off, width), (nxt, _) in zip(spans, spans[1:]):
        assert off + width == nxt
    assert spans[-1][0] + spans[-1][1] == OBS_SIZE == 256


def test_every_slot_is_documented():
    text = DOC.read_text()
    for name, (off, width) in SLOTS.items():
        assert re.search(rf"`{name}`", text), f"slot {name} missing from docs/observation.md"
        assert f"{off}" in text


def test_encode_into_writes_caller_buffers_and_checks_shapes():
    rnd = Round.from_seed(1, 4, 5)
    obs = np.full(256, 7.0, dtype=np.float32)
    mask = np.full(52, 7.0, dtype=np.float32)
    encode_into(rnd, obs, mask)
    ref_obs, ref_mask = encode(rnd)
    np.testing.assert_array_equal(obs, ref_obs)
    np.testing.assert_array_equal(mask, ref_mask)
    with pytest.raises(ValueError, match="shape"):
        encode_into(rnd, np.zeros(255, np.float32), mask)


def test_mask_equals_legal_actions_all_round():
    rnd = Round.from_seed(2, 5, 7)
    while not rnd.is_terminal:
        _, mask = encode(rnd)
        assert list(np.flatnonzero(mask)) == rnd.legal_actions()
        advance(rnd, 1, seed=len(rnd.history))


def test_own_hand_and_relative_seats():
    rnd = Round.from_deal([["AS", "KS"], ["QS", "JS"], ["2H", "3H"], ["4H", "5H"]], "H", dealer=0)
    rnd.apply(2)                      # seat 1 bids 2
    obs, _ = encode(rnd)              # seat 2 to move: seat 1 is relative seat 3
    off = SLOTS["hand"][0]
    assert set(np.flatnonzero(obs[off:off + 52])) == {13, 14}
    bids = SLOTS["bids"][0]
    assert obs[bids + 3] == pytest.approx(3 / 3)      # (bid + 1) / (C + 1)
    assert obs[bids + 0] == 0 and obs[bids + 1] == 0 and obs[bids + 2] == 0
    dealer = SLOTS["dealer"][0]
    assert obs[dealer + 2] == 1       # dealer seat 0 is two seats after seat 2
    seats = SLOTS["seats"][0]
    assert list(obs[seats:seats + 8]) == [1, 1, 1, 1, 0, 0, 0, 0]
    trump = SLOTS["trump"][0]
    assert list(obs[trump:trump + 5]) == [0, 1, 0, 0, 0]


def test_forbidden_bid_slot_only_for_the_dealer():
    rnd = Round.from_deal([["AS", "KS"], ["QS", "JS"], ["2H", "3H"]], "S", dealer=2)
    rnd.apply(1)
    obs, _ = encode(rnd)
    assert obs[SLOTS["forbidden"][0]] == 0
    rnd.apply(0)
    obs, mask = encode(rnd)
    flag = SLOTS["forbidden"][0]
    assert obs[flag] == 1 and obs[flag + 1] == pytest.approx(1 / 2) and mask[1] == 0


def test_counts_normalised_by_cards_dealt_not_hand_size():
    rnd = Round.from_seed(5, 4, 6)
    advance(rnd, 4, seed=1)           # all bids in
    bids_off = SLOTS["bids"][0]
    first, _ = encode(rnd)
    mover = rnd.current_player
    seen = {}
    while not rnd.is_terminal:
        obs, _ = encode(rnd)
        rel = {(rnd.current_player + k) % 4: k for k in range(4)}
        for seat, bid in enumerate(rnd.bids):
            value = obs[bids_off + rel[seat]]
            assert value == pytest.approx((bid + 1) / 7)     # same all round: C = 6 fixed
            seen.setdefault(seat, set()).add(float(value))
        cards_off = SLOTS["cards"][0]
        assert obs[cards_off] == pytest.approx(6 / 17)
        advance(rnd, 1, seed=len(rnd.history))
    assert all(len(v) == 1 for v in seen.values())
    assert first[SLOTS["hand_size"][0]] == pytest.approx(1.0) and mover is not None


def test_current_trick_encodes_who_played_what():
    rnd = Round.from_deal([["AS", "2H"], ["KS", "3H"], ["QD", "4C"]], "S", dealer=2)
    for b in (1, 0, 0):
        rnd.apply(b)
    rnd.apply("2H")                   # seat 0 leads 2H; seat 1 to move
    obs, _ = encode(rnd)
    trick = SLOTS["trick"][0]
    # seat 0 is relative seat 2 from seat 1's view (3 players)
    assert list(obs[trick + 10:trick + 15]) == pytest.approx([0, 1, 0, 0, 1 / 13])
    assert obs[SLOTS["leader"][0] + 2] == 1 and obs[SLOTS["led_suit"][0] + 1] == 1
    rnd.apply("3H")
    rnd.apply("QD")                   # seat 2 shows out of hearts
    obs, _ = encode(rnd)              # seat 1 won with 3H and leads; seat 2 is relative 1
    voids = SLOTS["voids"][0]
    assert obs[voids + 4 * 1 + 1] == 1 and obs[voids:voids + 32].sum() == 1
    assert obs[SLOTS["to_lead"][0]] == 1
    assert obs[SLOTS["trick"][0]:SLOTS["trick"][0] + 40].sum() == 0   # trick cleared
    assert obs[SLOTS["leader"][0]:SLOTS["leader"][0] + 8].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    # seat 0's view of the same moment: seat 1 (relative 1) is to lead the empty trick
    obs0, mask0 = encode(rnd, observer=0)
    assert obs0[SLOTS["leader"][0]:SLOTS["leader"][0] + 8].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert np.flatnonzero(obs0[:52]).tolist() == [card_index("AS")]   # seat 0's own hand
    np.testing.assert_array_equal(mask0, encode(rnd)[1])             # the mover's legal cards


@pytest.mark.parametrize("n,cards,steps", [(4, 5, 9), (3, 17, 25), (8, 6, 20), (5, 3, 5), (4, 5, 2)])
def test_no_hidden_information(n, cards, steps):
    """States that differ only in the opponents' hidden cards encode identically."""
    for seed in range(20):
        rnd = advance(Round.from_seed(seed, n, cards), steps, seed)
        if rnd.is_terminal:
            continue
        ref = encode(rnd)
        changed = 0
        for k in range(5):
            other = determinize(rnd, rng=seed * 10 + k)
            assert other.hand(rnd.current_player) == rnd.hand(rnd.current_player)
            changed += other.hands != rnd.hands
            obs, mask = encode(other)
            np.testing.assert_array_equal(obs, ref[0])
            np.testing.assert_array_equal(mask, ref[1])
        assert changed > 0, "the determinizations should differ in hidden cards"


@pytest.mark.parametrize("n,cards,steps", [(4, 5, 9), (3, 17, 25), (8, 6, 20), (4, 5, 2)])
def test_observer_views_hide_every_other_hand(n, cards, steps):
    """Any seat's view (not only the mover's) depends on its own cards and the public record
    only; the mover's own view is exactly ``encode(rnd)``."""
    for seed in range(10):
        rnd = advance(Round.from_seed(seed, n, cards), steps, seed)
        if rnd.is_terminal:
            continue
        np.testing.assert_array_equal(encode(rnd, observer=rnd.current_player)[0], encode(rnd)[0])
        checked = 0
        for observer in range(n):
            ref, _ = encode(rnd, observer=observer)
            assert set(np.flatnonzero(ref[:52])) == set(rnd.hand(observer))
            # swap two unplayed same-suit cards between two other seats and replay: the
            # public record is unchanged, so the observer's view must be too
            others = [s for s in range(n) if s != observer]
            for a, b in itertools.combinations(others, 2):
                pair = next(((x, y) for x in rnd.hand(a) for y in rnd.hand(b) if x // 13 == y // 13), None)
                if pair is None:
                    continue
                dealt = [list(h) for h in rnd.dealt_hands]
                dealt[a][dealt[a].index(pair[0])] = pair[1]
                dealt[b][dealt[b].index(pair[1])] = pair[0]
                other = Round.from_deal(dealt, rnd.trump, rnd.dealer)
                for _, action in rnd.history:
                    other.apply(action)
                assert other.hands != rnd.hands
                np.testing.assert_array_equal(encode(other, observer=observer)[0], ref)
                checked += 1
                break
        assert checked > 0 or n * cards < 4
    with pytest.raises(ValueError, match="observer"):
        encode(Round.from_seed(0, 4, 5), observer=4)


def test_no_hidden_information_with_explicit_deals():
    """Two hand-built deals, same public history, different hidden cards."""
    a = Round.from_deal([["AS", "2H", "9C"], ["KS", "3H", "TD"], ["QD", "4H", "5C"]], "S", 2)
    b = Round.from_deal([["AS", "2H", "9C"], ["KS", "3H", "5C"], ["QD", "4H", "TD"]], "S", 2)
    for action in (1, 0, 1, "AS", "KS", "QD"):
        a.apply(action)
        b.apply(action)
    assert a.current_player == b.current_player == 0
    assert a.hands[1] != b.hands[1]
    np.testing.assert_array_equal(encode(a)[0], encode(b)[0])
    np.testing.assert_array_equal(encode(a)[1], encode(b)[1])


def test_full_game_context_is_encoded():
    from blobcore import Game
    game = Game(4, 3, seed=1)
    advance_game = random.Random(0)
    while game.round_index < 2:
        game.apply(advance_game.choice(game.legal_actions()))
    obs, _ = encode(game.round)
    assert obs[SLOTS["in_game"][0]] == 1
    assert obs[SLOTS["round_pos"][0]] == pytest.approx(2 / 8)
    assert obs[SLOTS["next_cards"][0]] == pytest.approx(1 / 17)
    me = game.round.current_player
    assert obs[SLOTS["game_scores"][0]] == pytest.approx(game.scores[me] / 80)
    standalone, _ = encode(Round.from_seed(1, 4, 3))
    assert standalone[SLOTS["in_game"][0]:SLOTS["in_game"][0] + 3].sum() == 0


def test_the_wire_contract_matches_the_core():
    """plumbing.netspec (torch-free, used by clients and servers) agrees with the encoder."""
    from blobcore import MAX_PLAYERS
    from blobcore.encode import NUM_ACTIONS
    from plumbing import netspec
    assert netspec.STATE_DIM == OBS_SIZE
    assert netspec.NUM_ACTIONS == NUM_ACTIONS == 52
    assert netspec.VALUE_DIM == MAX_PLAYERS
