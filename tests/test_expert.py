"""The expert baseline (blobcore/expert.pyx): golden decisions on hand-built positions,
legality everywhere, no peeking at hidden cards, and its seat in the search pool / arena."""
import random

import pytest

from blobcore import Round, card_name
from blobcore.expert import expert, expert_bid_chances, expert_trick_distribution
from blobcore.players import PLAYERS


def deal(*hands, trump="S", dealer=0):
    return Round.from_deal([h.split() for h in hands], trump, dealer)


def play(rnd, *cards):
    for card in cards:
        rnd.apply(card)
    return rnd


def name(action):
    return card_name(action)


# --- bidding ---------------------------------------------------------------------------------

def test_top_trumps_bid_all_their_tricks():
    # 4 players x 3 cards, spades trump; seat 1 bids first holding A K Q of trumps
    rnd = deal("2H 3H 4H", "AS KS QS", "5H 6H 7H", "8H 9H TH", dealer=0)
    assert rnd.current_player == 1
    assert expert(rnd) == 3
    chances = expert_bid_chances(rnd)
    assert chances[3] == pytest.approx(1.0) and max(chances[:3]) == pytest.approx(0.0)
    assert expert_trick_distribution(rnd)[3] == pytest.approx(1.0)


def test_the_dealer_respects_the_hook():
    # the dealer holds A K Q of trumps, the others bid 0: 3 is forbidden, so it bids the
    # nearest legal number (every other bid fails anyway)
    rnd = play(deal("AS KS QS", "2H 3H 4H", "5H 6H 7H", "8H 9H TH", dealer=0), 0, 0, 0)
    assert rnd.current_player == 0 and rnd.forbidden_bid == 3
    bid = expert(rnd)
    assert bid in rnd.legal_actions() and bid == 2


def test_only_low_cards_bid_zero():
    rnd = deal("AS KS QS JS TS", "2H 3C 4D 2C 3D", "5H 6H 7H 8H 9H", "TH JH QH KH AH", dealer=0)
    assert rnd.current_player == 1
    assert expert(rnd) == 0
    assert expert_bid_chances(rnd)[0] > 0.9


def test_bid_chances_are_probabilities_and_the_distribution_sums_to_one():
    for seed in range(30):
        rnd = Round.from_seed(seed, n_players=5, cards=6)
        dist = expert_trick_distribution(rnd)
        assert len(dist) == 7 and sum(dist) == pytest.approx(1.0)
        assert all(0.0 <= p <= 1.0 + 1e-12 for p in expert_bid_chances(rnd))


# --- playing -----------------------------------------------------------------------------------

def test_last_to_play_and_needing_every_trick_it_wins_with_the_cheapest_winner():
    # 4 players x 2 cards, spades trump, dealer 0 (plays last in the first trick) bids 2 and
    # holds Q and A of hearts; hearts are led and T is the best so far: Q wins it, A keeps
    # the lead for the last trick
    rnd = deal("QH AH", "9H 2C", "TH 3C", "2H 4C", dealer=0)
    play(rnd, 1, 0, 0, 2)
    play(rnd, "9H", "TH", "2H")
    assert rnd.current_player == 0
    assert name(expert(rnd)) == "QH"


def test_with_its_bid_made_it_ducks_with_the_highest_losing_card():
    # seat 0 bid 0; the K of hearts is winning: the Q goes (the highest card that cannot win)
    rnd = deal("QH 9H 3H 2C", "KH 4C 5C 6C", "4H 7C 8C 9C", "5H TC JC QC", dealer=0)
    play(rnd, 1, 0, 1, 0)                       # seats 1, 2, 3, then the dealer
    play(rnd, "KH", "4H", "5H")
    assert rnd.current_player == 0
    assert name(expert(rnd)) == "QH"


def test_void_and_needing_a_trick_it_ruffs_with_its_lowest_winning_trump():
    # spades trump; seat 0 (last to play) is void in hearts and still needs its tricks:
    # seat 3 has ruffed with the 3, so the 4 of trumps is the cheapest card that wins
    rnd = deal("4S 9S 2C", "5H 6C 7C", "8H 8C 9C", "3S TC JC", dealer=0)
    play(rnd, 1, 1, 0, 2)
    play(rnd, "5H", "8H", "3S")
    assert rnd.current_player == 0
    assert name(expert(rnd)) == "4S"


def test_void_and_not_needing_tricks_it_discards_its_most_dangerous_card_not_a_trump():
    rnd = deal("3S AC 4D", "5H 6C 7C", "8H 8C 9C", "9H TC JC", dealer=0)
    play(rnd, 0, 0, 0, 0)
    play(rnd, "5H", "8H", "9H")
    assert rnd.current_player == 0
    assert name(expert(rnd)) == "AC"


@pytest.mark.parametrize("leader_bid,expected", [(1, "4H"), (2, "KH")])
def test_with_its_bid_lost_it_spoils(leader_bid, expected):
    """Seat 0 bid 3 and lost the first trick: its bid cannot be made any more. Seat 1 won the
    first trick and leads the 9 of hearts: with a bid of 1 it has made its bid, and seat 0 lets
    it take another trick (4H); with a bid of 2 it still needs one, and seat 0 takes it (KH)."""
    rnd = deal("2C KH 4H", "AC 9H 5D", "3C 2H 6D", "4C 3H 7D", dealer=0)
    play(rnd, leader_bid, 0, 0, 3)
    play(rnd, "AC", "3C", "4C", "2C")
    play(rnd, "9H", "2H", "3H")
    assert rnd.current_player == 0 and rnd.tricks_won == [0, 1, 0, 0]
    assert name(expert(rnd)) == expected


# --- legality, determinism, hidden information -------------------------------------------------

# every table size with 1, 2, 3, 5 (where possible) and the most cards: 8x6, 3x17, 8x1 among them
DEAL_SIZES = [(n, c) for n in range(3, 9) for c in sorted({1, 2, 3, min(5, 52 // n), 52 // n})]
assert {(8, 6), (3, 17), (8, 1)} <= set(DEAL_SIZES)


@pytest.mark.parametrize("n,c", DEAL_SIZES)
def test_never_an_illegal_action(n, c):
    rng = random.Random(n * 100 + c)
    for _ in range(25):
        rnd = Round.from_seed(rng.getrandbits(48), n_players=n, cards=c)
        experts = {seat for seat in range(n) if rng.random() < 0.7}
        while not rnd.is_terminal:
            if rnd.current_player in experts:
                action = expert(rnd)
                assert action in rnd.legal_actions()
            else:
                action = rng.choice(rnd.legal_actions())
            rnd.apply(action)            # raises on an illegal action


def test_it_is_deterministic_and_leaves_the_round_alone():
    rnd = Round.from_seed(11, n_players=5, cards=7)
    while not rnd.is_terminal:
        before = rnd.copy()
        action = expert(rnd)
        assert rnd == before and expert(rnd) == action
        rnd.apply(action)
    with pytest.raises(ValueError, match="round is over"):
        expert(rnd)


def _redeal_hidden(rnd: Round, seat: int, rng: random.Random):
    """The same public record and ``seat``'s hand, every other unplayed card (the undealt ones
    included) dealt again at random; None when the history is not legal under the new deal."""
    n = rnd.n_players
    dealt = set(c for hand in rnd.dealt_hands for c in hand)
    pool = [c for s in range(n) if s != seat for c in rnd.hand(s)]
    pool += [c for c in range(52) if c not in dealt]
    rng.shuffle(pool)
    hands = []
    for s in range(n):
        if s == seat:
            hands.append(rnd.dealt_hands[s])
        else:
            k = len(rnd.hand(s))
            hands.append(rnd.played_by(s) + pool[:k])
            pool = pool[k:]
    other = Round.from_deal(hands, rnd.trump, rnd.dealer)
    try:
        for _, action in rnd.history:
            other.apply(action)
    except ValueError:
        return None
    assert other.hand(seat) == rnd.hand(seat) and other.played_cards == rnd.played_cards
    return other


@pytest.mark.parametrize("n,c", [(4, 5), (3, 10), (6, 3)])
def test_it_never_reads_hidden_cards(n, c):
    """Two states that differ only in cards it cannot see get the same action."""
    rng = random.Random(c)
    compared = 0
    for seed in range(12):
        rnd = Round.from_seed(seed, n_players=n, cards=c)
        while not rnd.is_terminal:
            seat = rnd.current_player
            for _ in range(3):
                other = _redeal_hidden(rnd, seat, rng)
                if other is not None and other.hands != rnd.hands:
                    assert expert(other) == expert(rnd), (rnd.history, rnd.hands, other.hands)
                    compared += 1
            rnd.apply(expert(rnd))
    assert compared > 100


# --- in the search pool and the arena ----------------------------------------------------------

class NoEvaluator:
    def evaluate(self, states, masks):
        raise AssertionError("built-in players never ask for an evaluation")


def test_the_pool_seats_the_expert_and_plays_exactly_the_python_wrapper():
    from blobcore.players import AGENT_EXPERT, AGENT_GREEDY
    from blobcore.search_config import PRESETS
    from selfplay_client.runner import PooledSearch

    specs = [(seed, 4, 5, -1, -1, (AGENT_EXPERT, AGENT_GREEDY, AGENT_EXPERT, AGENT_GREEDY))
             for seed in range(40)]
    runner = PooledSearch([NoEvaluator()], PRESETS["light"].for_evaluation(), specs, n_games=16)
    runner.run()
    records = runner.finished()
    assert len(records) == 40
    for record in records:
        rnd = Round.from_deal(record["hands"], record["trump"], record["dealer"])
        for action in record["actions"]:
            seat_agent = record["agents"][rnd.current_player]
            if seat_agent == AGENT_EXPERT and len(rnd.legal_actions()) > 1:
                assert action == expert(rnd)
            rnd.apply(action)
        assert rnd.scores() == record["scores"]


def test_round_specs_accept_the_expert_and_reject_unknown_agents():
    from blobcore.search_config import PRESETS
    from selfplay_client.runner import PooledSearch

    bad = [(1, 4, 5, -1, -1, (-4, -1, -1, -1))]
    with pytest.raises(ValueError, match="-3..126"):
        PooledSearch([NoEvaluator()], PRESETS["light"].for_evaluation(), bad, n_games=1).run()


def test_expert_beats_greedy_in_the_arena():
    from blobzero.arena import Agent, play as arena_play
    from blobcore.players import AGENT_EXPERT

    assert PLAYERS["expert"].code == AGENT_EXPERT
    report = arena_play(Agent("expert", None, AGENT_EXPERT),
                        Agent("greedy", None, PLAYERS["greedy"].code), deals=400)
    assert report["difference"] > 0.5 and report["significant"]


def test_the_demo_player_is_the_same_expert():
    rnd = Round.from_seed(3, n_players=4, cards=5)
    while not rnd.is_terminal:
        assert PLAYERS["expert"](rnd, None) == expert(rnd)
        rnd.apply(expert(rnd))
