"""One test per rule of docs/rules.md, on hand-built deals."""
import copy

import numpy as np
import pytest

from blobcore import (NO_TRUMP, PHASE_BID, PHASE_DONE, PHASE_PLAY, Round, card_index, card_name,
                      game_schedule, max_cards, trump_for_round)


def deal(*hands, trump="S", dealer=0):
    return Round.from_deal([h.split() for h in hands], trump, dealer)


def test_card_indexing_is_suit_times_13_plus_rank():
    assert card_index("2S") == 0 and card_index("AS") == 12
    assert card_index("2H") == 13 and card_index("AD") == 51
    assert [card_name(c) for c in (0, 12, 13, 51)] == ["2S", "AS", "2H", "AD"]
    with pytest.raises(ValueError, match="not a card"):
        card_index("1X")


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_deal_from_seed_gives_each_seat_c_distinct_cards(n):
    for cards in (1, max_cards(n)):
        r = Round.from_seed(n, n, cards)
        hands = r.hands
        assert [len(h) for h in hands] == [cards] * n
        flat = [c for h in hands for c in h]
        assert len(set(flat)) == n * cards


def test_player_count_and_card_count_are_validated():
    with pytest.raises(ValueError, match="3..8 players"):
        Round.from_seed(0, 2, 5)
    with pytest.raises(ValueError, match="3..8 players"):
        Round.from_seed(0, 9, 5)
    with pytest.raises(ValueError, match="1..13"):
        Round.from_seed(0, 4, 14)
    with pytest.raises(ValueError, match="dealt twice"):
        deal("AS KS", "AS QS", "2H 3H")
    with pytest.raises(ValueError, match="same number"):
        deal("AS KS", "QS", "2H 3H")


def test_bidding_starts_left_of_dealer_and_dealer_bids_last():
    r = deal("AS KS", "QS JS", "2H 3H", "4H 5H", dealer=2)
    order = []
    while r.phase == PHASE_BID:
        order.append(r.current_player)
        r.apply(0 if r.current_player != 2 else 1)
    assert order == [3, 0, 1, 2]


def test_bids_range_zero_to_c():
    r = deal("AS KS", "QS JS", "2H 3H")
    assert r.legal_actions() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"illegal action 3 \(bid 3\) for player 1.*bids are 0..2"):
        r.apply(3)


def test_hook_rule_dealer_may_not_make_total_equal_c():
    r = deal("AS KS", "QS JS", "2H 3H", dealer=2)  # order 0, 1, 2(dealer)
    r.apply(1)
    r.apply(0)
    assert r.current_player == 2 and r.forbidden_bid == 1
    assert r.legal_actions() == [0, 2]
    before = r.to_bytes()
    with pytest.raises(ValueError, match="dealer may not bid 1.*hook rule"):
        r.apply(1)
    assert r.to_bytes() == before  # state unchanged after an illegal action
    r.apply(2)
    assert sum(r.bids) != r.cards


def test_hook_rule_inactive_when_forbidden_value_out_of_range():
    r = deal("AS KS", "QS JS", "2H 3H", dealer=2)
    r.apply(2)
    r.apply(2)   # total 4 > 2: dealer's "forbidden" would be -2, so everything is allowed
    assert r.forbidden_bid is None and r.legal_actions() == [0, 1, 2]


def test_no_forbidden_bid_for_non_dealers():
    r = deal("AS KS", "QS JS", "2H 3H", dealer=2)
    assert r.forbidden_bid is None
    r.apply(2)
    assert r.forbidden_bid is None and r.legal_actions() == [0, 1, 2]


def test_trump_rotation_by_round_index():
    assert [trump_for_round(i) for i in range(11)] == [0, 1, 2, 3, None, 0, 1, 2, 3, None, 0]


def _bid_all(r, bids):
    for b in bids:
        r.apply(b)
    assert r.phase == PHASE_PLAY


def test_left_of_dealer_leads_first_trick():
    r = deal("AS KS", "QS JS", "2H 3H", dealer=1)
    _bid_all(r, [0, 0, 0])
    assert r.current_player == 2 and r.leader == 2


def test_must_follow_suit_if_able():
    r = deal("AS 2H", "KS 3H", "QS 4H", dealer=2)
    _bid_all(r, [1, 1, 1])
    r.apply("2H")                              # seat 0 leads hearts
    assert r.legal_actions() == [card_index("3H")]
    with pytest.raises(ValueError, match=r"player 1.*must follow hearts while holding 3H"):
        r.apply("KS")


def test_void_player_may_play_anything_no_duty_to_trump():
    r = deal("AH 2H", "KS 3C", "QD 4D", trump="S", dealer=2)
    _bid_all(r, [1, 0, 0])
    r.apply("AH")
    # seat 1 holds no hearts: any card, trump or not
    assert sorted(r.legal_actions()) == sorted([card_index("KS"), card_index("3C")])
    r.apply("3C")
    assert r.void_suits[1] == {1}              # showed out of hearts: public knowledge


def test_highest_trump_wins():
    r = deal("AH 2C", "2S 3C", "3S 4C", "KH 5C", trump="S", dealer=3)
    _bid_all(r, [0, 0, 0, 0])
    for c in ["AH", "2S", "3S", "KH"]:
        r.apply(c)
    assert r.trick_winners == [2] and r.tricks_won == [0, 0, 1, 0]
    assert r.current_player == 2               # the winner leads next


def test_highest_of_led_suit_wins_without_trumps():
    r = deal("9H 2C", "AD 3C", "QH 4C", "TH 5C", trump="S", dealer=3)
    _bid_all(r, [0, 0, 0, 0])
    for c in ["9H", "AD", "QH", "TH"]:         # the ace of diamonds is off-suit: loses
        r.apply(c)
    assert r.trick_winners == [2]


def test_no_trump_round_highest_of_led_suit_wins():
    r = deal("9H 2C", "AS 3C", "QH 4C", "TH 5C", trump=None, dealer=3)
    assert r.trump is None
    _bid_all(r, [0, 0, 0, 0])
    for c in ["9H", "AS", "QH", "TH"]:         # spades are not trump here
        r.apply(c)
    assert r.trick_winners == [2]


def test_scores_exact_bid_gets_ten_plus_bid_else_zero():
    r = deal("AS KS", "2H 3H", "2C 3C", trump="S", dealer=2)
    _bid_all(r, [2, 0, 1])                     # 0 bids 2, 1 bids 0, 2 (dealer) bids 1: total 3
    for c in ["AS", "2H", "2C", "KS", "3H", "3C"]:
        r.apply(c)
    assert r.is_terminal and r.phase == PHASE_DONE
    assert r.tricks_won == [2, 0, 0]
    assert r.scores() == [12, 10, 0]
    assert r.normalised_scores() == [12 / 12, 10 / 12, 0.0]


def test_scores_unavailable_before_the_end():
    r = deal("AS KS", "2H 3H", "2C 3C")
    with pytest.raises(ValueError, match="not over"):
        r.scores()


def test_actions_after_the_end_are_rejected():
    r = deal("AS", "2H", "2C", dealer=2)
    _bid_all(r, [1, 0, 1])
    for c in ["AS", "2H", "2C"]:
        r.apply(c)
    with pytest.raises(ValueError, match="round is over"):
        r.apply(0)


def test_playing_a_card_not_in_hand_names_card_and_player():
    r = deal("AS KS", "2H 3H", "2C 3C", dealer=2)
    _bid_all(r, [0, 0, 0])
    with pytest.raises(ValueError, match=r"illegal action 25 \(AH\) for player 0.*AH is not in player 0's hand"):
        r.apply("AH")
    with pytest.raises(ValueError, match="0..51"):
        r.apply(52)


def test_full_game_schedule():
    assert game_schedule(4, 5) == [5, 4, 3, 2, 1, 1, 1, 1, 2, 3, 4, 5]
    assert game_schedule(3, 1) == [1, 1, 1]
    with pytest.raises(ValueError, match="start_cards"):
        game_schedule(4, 14)


def test_state_copy_is_independent():
    r = Round.from_seed(3, 4, 5)
    c = r.copy()
    c.apply(c.legal_actions()[0])
    assert r.history == [] and len(c.history) == 1
    assert copy.deepcopy(r) == r


def test_legal_mask_matches_legal_actions():
    r = Round.from_seed(4, 5, 6)
    while not r.is_terminal:
        mask = r.legal_mask()
        assert list(np.flatnonzero(mask)) == r.legal_actions()
        r.apply(r.legal_actions()[-1])
    assert r.legal_mask().sum() == 0 and r.legal_actions() == []


def test_from_seed_is_reproducible_and_varies_dealer_and_trump():
    assert Round.from_seed(9, 4, 5) == Round.from_seed(9, 4, 5)
    seen = {(Round.from_seed(s, 4, 5).dealer, Round.from_seed(s, 4, 5).trump) for s in range(200)}
    assert {d for d, _ in seen} == {0, 1, 2, 3}
    assert {t for _, t in seen} == {0, 1, 2, 3, None}
    assert NO_TRUMP == 4
