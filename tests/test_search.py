"""Determinized tree search (blobcore.search) driven through the pooled runner."""
import dataclasses
import itertools

import numpy as np
import pytest

from blobcore import Round, card_index
from blobcore.players import AGENT_GREEDY
from blobcore.search_config import PLAIN, SearchConfig
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs, search_position

EXACT = dataclasses.replace(PLAIN, determinizations=3, simulations=30, add_noise=False, temperature=0.0)


class RowHashEvaluator:
    """A deterministic, non-uniform evaluator whose answer for a row depends only on that
    row (elementwise maths, no BLAS), so batch composition cannot change results."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.w_policy = rng.normal(size=(256, 52)).astype(np.float64)
        self.w_value = rng.normal(size=(256, 8)).astype(np.float64)

    def evaluate(self, states, masks):
        # einsum without optimisation reduces each row on its own, in a fixed order
        x = states.astype(np.float64)
        logits = np.sin(np.einsum("nk,ka->na", x, self.w_policy, optimize=False))
        policy = np.exp(2 * logits) * masks
        policy /= np.maximum(policy.sum(axis=1, keepdims=True), 1e-12)
        value = 1 / (1 + np.exp(-np.einsum("nk,ks->ns", x, self.w_value, optimize=False)))
        return policy.astype(np.float32), value.astype(np.float32)


def endgame(my_bid: int) -> Round:
    """4 players x 13 cards, spades trump, dealer seat 0 (bids last). Seat 1 wins eleven
    single-suit filler tricks; in trick 12 seat 1 leads 9H, seat 2 plays TH, seat 3 plays 3H
    and seat 0 (to move, 0 tricks so far) holds KH and 2H. The opponents' last cards are
    4C 5C 6C in some order: with KH seat 0 wins tricks 12 and 13 (nobody can follow the 2H
    it then leads), with 2H it wins neither. Bids: seat 1 ten, seats 2 and 3 zero."""
    final = {1: ["9H", "4C"], 2: ["TH", "5C"], 3: ["3H", "6C"], 0: ["KH", "2H"]}
    used = {card_index(c) for cards in final.values() for c in cards}
    rest = [c for c in range(52) if c not in used]
    by_suit = {s: [c for c in rest if c // 13 == s] for s in range(4)}
    fillers, leftovers = [], []
    for suit in (0, 1, 2, 3):
        cards = by_suit[suit]
        while len(cards) >= 4:
            fillers.append(sorted(cards[:4]))
            cards = cards[4:]
        leftovers += cards
    fillers.append(sorted(leftovers, key=lambda c: (c // 13 != 0, c)))   # the spade first
    hands = {seat: [card_index(c) for c in cards] for seat, cards in final.items()}
    for trick in fillers[:-1]:
        hands[1].append(trick[-1])                                       # seat 1 wins it
        for seat, card in zip((2, 3, 0), trick[:-1]):
            hands[seat].append(card)
    hands[1].append(fillers[-1][0])                                      # lone spade wins
    for seat, card in zip((2, 3, 0), fillers[-1][1:]):
        hands[seat].append(card)
    rnd = Round.from_deal([hands[s] for s in range(4)], "S", dealer=0)
    for bid in (10, 0, 0, my_bid):
        rnd.apply(bid)
    for trick in fillers[:-1]:
        for seat, card in zip((1, 2, 3, 0), [trick[-1], *trick[:-1]]):
            assert rnd.current_player == seat
            rnd.apply(card)
    rnd.apply(fillers[-1][0])
    for card in fillers[-1][1:]:
        rnd.apply(card)
    for card in ("9H", "TH", "3H"):
        rnd.apply(card)
    assert rnd.current_player == 0 and rnd.tricks_won == [0, 11, 0, 0]
    assert sorted(rnd.legal_actions()) == sorted([card_index("KH"), card_index("2H")])
    return rnd


@pytest.mark.parametrize("root", ["puct", "gumbel"])
@pytest.mark.parametrize("perspective", ["mover", "searcher"])
@pytest.mark.parametrize("my_bid,best", [(0, "2H"), (2, "KH")])
def test_puct_picks_the_only_bid_making_card(my_bid, best, perspective, root):
    config = SearchConfig(**{**EXACT.to_dict(), "perspective": perspective, "root": root})
    decision = search_position(endgame(my_bid), config, UniformEvaluator(), seed=1)
    assert decision["action"] == card_index(best)
    target = decision["policy"] if root == "gumbel" else decision["visits"]
    assert max(target, key=target.get) == card_index(best)


def test_per_seat_backup_on_a_two_trick_position():
    """Each edge is credited with the value of the seat that chooses it: seat 0's Q for 2H
    is its own exact score (bid 0 made: 10 / 23), for KH it is 0 (missed), although KH is
    what seats 2 and 3 (bid 0, and KH keeps them trickless) would prefer."""
    decision = search_position(endgame(0), EXACT, UniformEvaluator(), seed=2)
    q = decision["q"]
    assert q[card_index("2H")] == pytest.approx(10 / 23)
    assert q[card_index("KH")] == pytest.approx(0.0)
    # Root value by seat is the visit-weighted mix of the two lines; seat 1 (bid 10, won 11)
    # always misses; seats 2 and 3 make their zero only on the KH line.
    value = decision["root_value"]
    assert value[1] == pytest.approx(0.0)
    assert value[0] > value[2] and value[0] > value[3]


def run_rounds(config, seeds, evaluator, n_games, cards=5, players=4, halves=2):
    specs = [(s, players, cards) for s in seeds]
    search = PooledSearch(evaluator, config, specs, n_games=n_games, halves=halves)
    stats = search.run()
    return sorted(search.finished(), key=lambda r: r["seed"]), stats


def replay(record):
    rnd = Round.from_deal(record["hands"], record["trump"], record["dealer"])
    states = []
    for action in record["actions"]:
        states.append(rnd.copy())
        rnd.apply(action)
    return rnd, states


@pytest.mark.parametrize("config", [PLAIN, dataclasses.replace(PLAIN, determinizations=2, simulations=7),
                                    dataclasses.replace(PLAIN, determinizations=3, simulations=30,
                                                 leaves_per_game=4)])
def test_visits_per_determinization_equal_s_and_targets_cover_legal_actions_only(config):
    records, _ = run_rounds(config, range(12), UniformEvaluator(), n_games=8)
    assert len(records) == 12
    for record in records:
        final, states = replay(record)
        assert final.is_terminal and final.scores() == record["scores"]
        for decision in record["decisions"]:
            state = states[decision["ply"]]
            assert state.current_player == decision["player"]
            legal = state.legal_actions()
            assert len(legal) > 1, "forced moves are played without search"
            assert sum(decision["visits"].values()) == config.determinizations * config.simulations
            assert set(decision["visits"]) <= set(legal)
        searched = {d["ply"] for d in record["decisions"]}
        for ply, state in enumerate(states):   # every unsearched move was forced
            if ply not in searched:
                assert len(state.legal_actions()) == 1


def test_determinizations_never_hold_a_card_the_searcher_has_seen():
    from blobcore.search.pool import SearchPool
    pool = SearchPool(64, PLAIN, [(s, 5, 6) for s in range(64)])
    evaluator = UniformEvaluator()
    checked = 0
    for _ in range(400):
        states, masks = pool.collect()
        if len(states) == 0:
            break
        for slot in range(64):
            det, true = pool.determinization_root(slot), pool.game_state(slot)
            if det is None:
                continue
            me = true.current_player
            seen = set(true.hand(me)) | set(true.played_cards)
            assert det.hand(me) == true.hand(me)
            for seat in range(5):
                if seat != me:
                    assert not set(det.hand(seat)) & seen
                    assert len(det.hand(seat)) == len(true.hand(seat))
            checked += 1
        pool.apply(*evaluator.evaluate(states, masks))
    assert checked > 1000


def test_runs_are_reproducible_from_a_seed():
    first, _ = run_rounds(PLAIN, range(20), RowHashEvaluator(), n_games=10)
    second, _ = run_rounds(PLAIN, range(20), RowHashEvaluator(), n_games=10)
    assert first == second
    other, _ = run_rounds(PLAIN, range(100, 120), RowHashEvaluator(), n_games=10)
    assert [r["actions"] for r in other] != [r["actions"] for r in first]


def test_a_round_searched_alone_equals_the_same_round_in_a_pool_of_256():
    evaluator = RowHashEvaluator()
    alone, _ = run_rounds(PLAIN, [7], evaluator, n_games=1, halves=1)
    pooled, stats = run_rounds(PLAIN, range(256), evaluator, n_games=256)
    assert stats.positions_per_batch > 50
    (match,) = [r for r in pooled if r["seed"] == 7]
    for key in ("hands", "actions", "decisions", "scores"):
        assert alone[0][key] == match[key]


def test_zero_choice_fast_path_and_terminal_leaves_cost_no_evaluation():
    records, stats = run_rounds(PLAIN, range(16), UniformEvaluator(), n_games=16)
    search = stats.search
    assert search["forced_moves"] > 0 and search["terminal_leaves"] > 0
    # every leaf sent to the evaluator is one simulation or one root evaluation
    assert stats.positions <= search["simulations"] + search["decisions"]
    assert search["decisions"] == sum(len(r["decisions"]) for r in records)


def test_root_is_evaluated_once_per_decision():
    """With S=1 and D=4 each decision needs one root evaluation plus at most 4 leaves."""
    config = dataclasses.replace(PLAIN, determinizations=4, simulations=1, add_noise=False)
    records, stats = run_rounds(config, range(8), UniformEvaluator(), n_games=8)
    decisions = stats.search["decisions"]
    assert stats.positions <= decisions * (1 + 4)
    assert stats.positions >= decisions  # the root itself is evaluated


def test_noise_and_temperature_change_play_but_evaluation_mode_is_deterministic():
    quiet = PLAIN.for_evaluation()
    a, _ = run_rounds(quiet, range(6), RowHashEvaluator(), n_games=3)
    b, _ = run_rounds(quiet, range(6), RowHashEvaluator(), n_games=6)
    assert [r["actions"] for r in a] == [r["actions"] for r in b]
    assert [r["decisions"] for r in a] == [r["decisions"] for r in b]
    noisy, _ = run_rounds(PLAIN, range(6), RowHashEvaluator(), n_games=3)
    assert [r["actions"] for r in noisy] != [r["actions"] for r in a]


def test_the_evaluation_search_weighs_the_prior_by_its_own_c_visit():
    """for_evaluation() puts gumbel_eval_c_visit in place of gumbel_c_visit (idempotently);
    self-play's search keeps its own, and the choice changes the moves played."""
    config = dataclasses.replace(GUMBEL, gumbel_c_visit=50.0, gumbel_eval_c_visit=0.0)
    assert config.for_evaluation().gumbel_c_visit == 0.0
    assert config.for_evaluation().for_evaluation() == config.for_evaluation()
    assert dataclasses.replace(config, gumbel_eval_c_visit=-1).for_evaluation().gumbel_c_visit == 50.0
    prior_heavy, _ = run_rounds(config.for_evaluation(), range(12), RowHashEvaluator(), n_games=6)
    q_heavy, _ = run_rounds(dataclasses.replace(config, gumbel_eval_c_visit=-1).for_evaluation(), range(12),
                            RowHashEvaluator(), n_games=6)
    assert [r["actions"] for r in prior_heavy] != [r["actions"] for r in q_heavy]
    with pytest.raises(ValueError, match="gumbel_eval_c_visit"):
        SearchConfig(gumbel_eval_c_visit=-0.5)


def test_round_specs_vary_dealer_trump_and_cards():
    specs = list(itertools.islice(round_specs(5, 4, (2, 6)), 200))
    assert {c for _, _, c in specs} == {2, 3, 4, 5, 6}
    records, _ = run_rounds(dataclasses.replace(PLAIN, determinizations=1, simulations=4), range(40),
                            UniformEvaluator(), n_games=20)
    assert len({r["dealer"] for r in records}) == 4
    assert len({r["trump"] for r in records}) == 5


def test_bad_inputs_are_rejected_clearly():
    from blobcore.search.pool import SearchPool
    pool = SearchPool(2, PLAIN, [(1, 4, 5)])
    states, _ = pool.collect()
    with pytest.raises(ValueError, match=r"policy must have shape \(1, 52\)"):
        pool.apply(np.zeros((2, 52), np.float32), np.zeros((1, 8), np.float32))
    with pytest.raises(RuntimeError, match="apply"):
        pool.collect()
    with pytest.raises(ValueError, match="bad round spec"):
        SearchPool(1, PLAIN, [(1, 2, 5)]).collect()
    with pytest.raises(ValueError, match="simulations"):
        SearchConfig(simulations=0)


class RecordingEvaluator(RowHashEvaluator):
    """RowHashEvaluator that keeps every (state, mask) row it was asked about."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def evaluate(self, states, masks):
        self.rows += [(s.copy(), m.copy()) for s, m in zip(states, masks)]
        return super().evaluate(states, masks)


@pytest.mark.parametrize("perspective", ["mover", "searcher"])
def test_searcher_perspective_evaluates_every_position_as_the_searcher_sees_it(perspective):
    """With perspective=searcher every row sent to the network holds only the searching
    player's cards (its hand shrinks as it plays inside the tree); with perspective=mover the
    network sees the (sampled) hands of the other seats too. Masks are the legal actions of
    the player to move either way."""
    from blobcore import encode
    rnd = Round.from_seed(5, n_players=4, cards=5)
    for _ in range(5):                                   # bids done, one card played
        rnd.apply(rnd.legal_actions()[0])
    searcher = rnd.current_player
    mine = set(rnd.hands[searcher])
    evaluator = RecordingEvaluator()
    config = SearchConfig(**{**EXACT.to_dict(), "perspective": perspective})
    search_position(rnd, config, evaluator, seed=3)
    assert len(evaluator.rows) > 10
    root_state, root_mask = encode(rnd)
    assert np.array_equal(evaluator.rows[0][0], root_state) and np.array_equal(evaluator.rows[0][1], root_mask)
    foreign = [row for row, _ in evaluator.rows if not set(np.flatnonzero(row[:52])) <= mine]
    if perspective == "searcher":
        assert foreign == []
    else:
        assert len(foreign) > len(evaluator.rows) // 2
    for row, mask in evaluator.rows:                     # a mask is never the observer's by accident
        assert mask.sum() >= 1


ROLLOUT = dataclasses.replace(PLAIN, determinizations=3, simulations=30, add_noise=False, temperature=0.0,
                       rollout="expert", rollout_weight=1.0)


def test_a_zero_rollout_weight_is_the_plain_search_and_rollouts_change_the_search():
    plain, _ = run_rounds(EXACT, range(8), RowHashEvaluator(), n_games=4)
    zero, _ = run_rounds(dataclasses.replace(EXACT, rollout="expert", rollout_weight=0.0), range(8),
                         RowHashEvaluator(), n_games=4)
    assert [r["decisions"] for r in zero] == [r["decisions"] for r in plain]
    rolled, stats = run_rounds(ROLLOUT, range(8), RowHashEvaluator(), n_games=4)
    assert [r["decisions"] for r in rolled] != [r["decisions"] for r in plain]
    # the same network evaluations: play-outs replace none of them, they only change values
    assert stats.search["leaves"] > 0
    again, _ = run_rounds(ROLLOUT, range(8), RowHashEvaluator(), n_games=8)
    assert [r["actions"] for r in again] == [r["actions"] for r in rolled]   # reproducible


def test_the_bid_weight_sets_lambda_for_bidding_decisions_only():
    """bid_rollout_weight = 0: every bid is searched on the network's values alone (exactly
    the plain search's bids), while card play keeps the play-outs; and the reverse."""
    def bids(records):
        return [[d for d in r["decisions"] if d["ply"] < r["n_players"]] for r in records]

    def cards(records):
        return [[d for d in r["decisions"] if d["ply"] >= r["n_players"]] for r in records]

    plain, _ = run_rounds(EXACT, range(8), RowHashEvaluator(), n_games=4)
    rolled, _ = run_rounds(ROLLOUT, range(8), RowHashEvaluator(), n_games=4)
    network_bids, _ = run_rounds(dataclasses.replace(ROLLOUT, bid_rollout_weight=0.0), range(8),
                                 RowHashEvaluator(), n_games=4)
    assert bids(network_bids) == bids(plain) != bids(rolled)
    assert cards(network_bids) != cards(plain)
    playout_bids, _ = run_rounds(dataclasses.replace(ROLLOUT, rollout_weight=0.0, bid_rollout_weight=1.0),
                                 range(8), RowHashEvaluator(), n_games=4)
    assert bids(playout_bids) == bids(rolled)
    assert SearchConfig(rollout_weight=0.3).leaf_weights() == (0.3, 0.3)
    assert SearchConfig(rollout_weight=0.3, bid_rollout_weight=0.0).leaf_weights() == (0.0, 0.3)


@pytest.mark.parametrize("resample,candidates", [(True, 1), (True, 8), (False, 1)])
def test_rollout_search_plays_legal_complete_rounds(resample, candidates):
    config = dataclasses.replace(ROLLOUT, rollout_resample=resample, inference_candidates=candidates)
    records, _ = run_rounds(config, range(12), UniformEvaluator(), n_games=6)
    for rec in records:
        rnd = Round.from_deal(rec["hands"], rec["trump"], rec["dealer"])
        for action in rec["actions"]:
            rnd.apply(action)                       # raises on an illegal move
        assert rnd.is_terminal and rnd.scores() == rec["scores"]


def test_expert_playouts_make_an_untrained_network_beat_greedy(tmp_path):
    """The network alone (untrained) loses to greedy; with expert play-outs at the leaves the
    same network's search beats it clearly (docs/strength.md has the measured figures)."""
    from blobzero.arena import Agent, play
    from trainer.export import export_fresh
    onnx = export_fresh("tiny", tmp_path / "tiny.onnx", seed=0)
    report = play(Agent("tiny", onnx), Agent("greedy", None, AGENT_GREEDY), deals=100, search=ROLLOUT,
                  lineup="solo")
    assert report["significant"] and report["difference"] > 0.8


def test_search_settings_are_checked():
    for bad, message in (({"rollout": "oracle"}, "rollout"), ({"rollout_weight": 1.5}, "rollout_weight"),
                         ({"bid_rollout_weight": -0.5}, "bid_rollout_weight"),
                         ({"inference_candidates": 0}, "inference_candidates"),
                         ({"inference_temperature": 0.0}, "inference_temperature")):
        with pytest.raises(ValueError, match=message):
            SearchConfig(**bad)


GUMBEL = dataclasses.replace(ROLLOUT, root="gumbel")


def test_gumbel_root_targets_are_a_distribution_over_legal_actions():
    """The Gumbel root keeps the real visit counts (D x S per decision) and records its policy
    target softmax(logit + sigma(completed q)) over the legal actions; a shard stores that
    target as counts out of 10,000."""
    from plumbing.records import POLICY_SCALE, to_proto
    for config in (GUMBEL, dataclasses.replace(GUMBEL, add_noise=True, temperature=1.0),
                   dataclasses.replace(GUMBEL, determinizations=1, simulations=3, gumbel_actions=2)):
        records, _ = run_rounds(config, range(10), UniformEvaluator(), n_games=5)
        for rec in records:
            rnd = Round.from_deal(rec["hands"], rec["trump"], rec["dealer"])
            decisions = {d["ply"]: d for d in rec["decisions"]}
            for ply, action in enumerate(rec["actions"]):
                if ply in decisions:
                    d = decisions[ply]
                    assert sum(d["visits"].values()) == config.determinizations * config.simulations
                    assert sum(d["policy"].values()) == pytest.approx(1.0, abs=1e-5)
                    assert set(d["policy"]) <= set(rnd.legal_actions())
                rnd.apply(action)
            for stored in to_proto(rec, "test").decisions:
                assert abs(sum(stored.visits) - POLICY_SCALE) <= len(stored.actions)


def test_gumbel_root_in_evaluation_is_reproducible_and_follows_the_play_outs():
    a, _ = run_rounds(GUMBEL, range(6), RowHashEvaluator(), n_games=3)
    b, _ = run_rounds(GUMBEL, range(6), RowHashEvaluator(), n_games=6)
    assert [r["actions"] for r in a] == [r["actions"] for r in b]
    # the move is the target's favourite among the actions the halving kept: never an action
    # the target gives less than the most likely one by a wide margin
    for rec in a:
        for d in rec["decisions"]:
            target = d["policy"]
            chosen = rec["actions"][d["ply"]]
            assert target.get(chosen, 0) >= 0.5 * max(target.values())


def test_gumbel_settings_are_checked():
    with pytest.raises(ValueError, match="root"):
        SearchConfig(root="alphabeta")
    with pytest.raises(ValueError, match="gumbel_actions"):
        SearchConfig(gumbel_actions=1)
