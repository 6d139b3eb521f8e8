"""Every table and the whole game: the [table] distribution, full games through the search
pool, records with the game context, training on mixed tables, and the extremes 3x17, 8x6, 8x1."""
import collections
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from blobcore import Round, encode
from blobcore.encode import SLOTS
from blobcore.game import Game
from blobcore.players import AGENT_EXPERT, AGENT_GREEDY
from blobcore.players import PLAYERS
from blobcore.rules import game_schedule
from blobcore.search_config import PLAIN, PRESETS
from plumbing.config import ConfigError, load
from plumbing.records import to_proto
from plumbing import records_pb2
from selfplay_client import tables
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch
from trainer.examples import BadRecord, concat, from_record

EXTREMES = [(3, 17), (8, 6), (8, 1)]


def table(*overrides):
    return load(None, list(overrides), env={}).table


# -- the [table] section ---------------------------------------------------------------------
@pytest.mark.parametrize("players, counts", [("4", (4,)), ("3-8", (3, 4, 5, 6, 7, 8)),
                                             ("3,5,8", (3, 5, 8)), (" 6 - 7 ", (6, 7))])
def test_players_take_a_count_a_range_or_a_list(players, counts):
    assert table(f"table.players={players}").player_counts() == counts


def test_a_toml_list_of_player_counts_works(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[table]\nplayers = [3, 6]\nplayer_weights = [1, 3]\n')
    t = load(path, env={}).table
    assert t.player_counts() == (3, 6)
    assert t.weights() == pytest.approx((0.25, 0.75))


@pytest.mark.parametrize("overrides, message", [
    (["table.players=8", "table.cards_max=7"],
     "'table.cards_max' must be at most 6: 8 players x 7 cards needs 56 cards"),
    (["table.players=3-8", "table.cards_max=9"], "'table.cards_max' must be at most 6"),
    (["table.players=2-5"], "'table.players' must be 3..8"),
    (["table.players=4,4"], "without repeats"),
    (["table.players=four"], "'table.players' must be a count"),
    (["table.players=3-5", "table.player_weights=1,2"], "'table.player_weights' must be 3"),
    (["table.players=3,4", "table.player_weights=0,0"], "positive sum"),
    (["table.deal=sometimes"], "'table.deal' must be one of"),
    (["table.full_games=true"], "'table.full_games' needs table.deal = \"schedule\""),
    (["table.start_cards=18"], "'table.start_cards'"),
    (["arena.players=8", "arena.cards=7"], "'arena.cards'"),
])
def test_impossible_tables_are_named(overrides, message):
    with pytest.raises(ConfigError, match=None) as info:
        load(None, overrides, env={})
    assert message in str(info.value)


def test_the_schedule_distribution_follows_full_games():
    t = table("table.players=3,8", "table.deal=schedule", "table.player_weights=1,3")
    dist = t.distribution()
    assert sum(p for _, _, p in dist) == pytest.approx(1.0)
    for n, weight in ((3, 0.25), (8, 0.75)):
        schedule = game_schedule(n, 52 // n)
        for c in set(schedule):
            (p,) = [p for m, k, p in dist if (m, k) == (n, c)]
            assert p == pytest.approx(weight * schedule.count(c) / len(schedule))
    capped = table("table.players=3-8", "table.deal=schedule", "table.start_cards=7").distribution()
    assert max(c for n, c, _ in capped if n == 3) == 7 and max(c for n, c, _ in capped if n == 8) == 6


def test_round_draws_follow_the_distribution_and_the_seed():
    t = table("table.players=3-8", "table.deal=schedule")
    specs = list(itertools.islice(tables.table_rounds(7, t.distribution()), 30000))
    assert specs[:50] == list(itertools.islice(tables.table_rounds(7, t.distribution()), 50))
    seen = collections.Counter((n, c) for _, n, c in specs)
    for n, c, p in t.distribution():
        assert abs(seen[(n, c)] / len(specs) - p) < 4 * np.sqrt(p * (1 - p) / len(specs)) + 1e-3


# -- full games through the pool ------------------------------------------------------------
class _NoNetwork:
    def evaluate(self, states, masks):
        raise AssertionError("built-in players never ask for an evaluation")


@pytest.mark.parametrize("n, start", EXTREMES + [(5, 10)])
def test_full_games_in_the_pool_equal_the_game_played_directly(n, start):
    """Built-in players in the pool play exactly the game the rules engine plays alone: same
    deals, dealers, trumps, bids, tricks and cumulative scores, round after round."""
    agents = tuple(AGENT_EXPERT if s % 2 else AGENT_GREEDY for s in range(n))
    plans = [tables.GamePlan(n, start, seed=100 + g, first_dealer=g % n, agents=agents, key=g)
             for g in range(3)]
    feeder = tables.FullGames(plans)
    PooledSearch([_NoNetwork()], PLAIN.sized("light").for_evaluation(), feeder, n_games=2).run()
    assert sorted(r.plan.key for r in feeder.results) == [0, 1, 2]
    for result in feeder.results:
        game = Game(n, start, seed=result.plan.seed, first_dealer=result.plan.first_dealer)
        while not game.is_over:
            player = PLAYERS["expert" if game.current_player % 2 else "greedy"]
            game.apply(player(game.round, None))
        assert result.round_scores == game.round_scores
        assert result.scores == game.scores == list(np.sum(game.round_scores, axis=0))
        assert result.bids == game.round_bids and result.tricks == game.round_tricks
        assert result.winners == game.winners()
        assert len(result.round_scores) == len(game_schedule(n, start))


def test_self_play_of_full_games_records_the_game_context_the_network_saw():
    cfg = load(None, ["table.players=3,8", "table.deal=schedule", "table.full_games=true",
                      "table.start_cards=4"], env={})
    feeder = tables.feed(3, cfg.table)
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), feeder, n_games=6)
    done = []
    search.run(on_record=done.append, should_stop=lambda: len(done) >= 60)
    games = collections.defaultdict(list)
    for record in done:
        games[record["game"]["game_id"]].append(record)
    finished = [rs for rs in games.values() if len(rs) == rs[0]["game"]["n_rounds"]]
    assert finished, "no game of 3 or 8 players from 4 cards finished in 60 rounds"
    for rounds in finished:
        rounds.sort(key=lambda r: r["game"]["round_index"])
        n = rounds[0]["n_players"]
        assert [r["cards"] for r in rounds] == game_schedule(n, 4)
        totals = [0] * n
        for i, record in enumerate(rounds):
            assert record["game"]["scores_before"] == totals
            assert record["game"]["next_cards"] == (rounds[i + 1]["cards"] if i + 1 < len(rounds) else 0)
            assert record["dealer"] == (rounds[0]["dealer"] + i) % n
            totals = [t + s for t, s in zip(totals, record["scores"])]
    # the trainer encodes each position with the context: equal to the Round's own encoding
    record = finished[0][2]
    proto = to_proto(record, "t")
    ex = from_record(proto)
    rnd = Round.from_deal(record["hands"], record["trump"], record["dealer"])
    g = record["game"]
    rnd.set_game_context(g["round_index"], g["n_rounds"], g["next_cards"], g["scores_before"])
    plies = {d["ply"] for d in record["decisions"]}
    rows = []
    for ply, action in enumerate(record["actions"]):
        if ply in plies:
            rows.append(encode(rnd)[0])
        rnd.apply(action)
    np.testing.assert_array_equal(ex.states, np.array(rows))
    assert (ex.states[:, SLOTS["in_game"][0]] == 1).all()


def test_a_bad_game_context_costs_only_that_record():
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), [(5, 4, 3)], n_games=1)
    search.run()
    (record,) = search.finished()
    proto = to_proto(record, "t")
    proto.game.round_index, proto.game.n_rounds = 5, 3
    proto.game.scores_before.extend([0, 0, 0, 0])
    with pytest.raises(BadRecord, match="bad game context"):
        from_record(proto)
    again = records_pb2.RoundRecord.FromString(to_proto(record, "t").SerializeToString())
    assert not again.HasField("game") and len(from_record(again)) == len(record["decisions"])


# -- the extremes: search limits and training on mixed tables ---------------------------------
@pytest.fixture(scope="module")
def extreme_records():
    """Heavy search (5x50) on 3x17, 8x6 and 8x1 rounds: the largest trees and decision lists."""
    specs = [(20 + i, n, c) for i, (n, c) in enumerate(EXTREMES)]
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("heavy"), specs, n_games=3)
    search.run()
    return sorted(search.finished(), key=lambda r: r["seed"])


def test_heavy_search_completes_the_largest_rounds(extreme_records):
    for record, (n, c) in zip(extreme_records, EXTREMES):
        assert record["complete"] and (record["n_players"], record["cards"]) == (n, c)
        assert len(record["actions"]) == n + n * c
        for d in record["decisions"]:
            assert sum(d["visits"].values()) == PLAIN.sized("heavy").determinizations * PLAIN.sized("heavy").simulations
            assert len(d["visits"]) <= c + 1
    # 3x17: every bid and almost every card is a real decision
    assert len(extreme_records[0]["decisions"]) > 40


def test_one_network_trains_on_mixed_tables_in_one_batch(extreme_records):
    import torch
    from trainer.blobnet import ServingNet, build
    from trainer.losses import losses

    ex = concat([from_record(to_proto(r, "t"), all_views=True) for r in extreme_records])
    assert set(ex.seats.sum(1).astype(int)) == {3, 8}
    net = build("tiny", seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        p, v, k = losses(net, ex)
        first = first or (p + v + k).item()
        opt.zero_grad()
        (p + v + k).backward()
        opt.step()
    assert np.isfinite((p + v + k).item()) and (p + v + k).item() < first
    with torch.no_grad():
        policy, value = ServingNet(net)(torch.from_numpy(ex.states), torch.from_numpy(ex.masks))
    assert value.shape == (len(ex), 8) and torch.isfinite(value).all()
    legal = torch.from_numpy(ex.masks) > 0.5
    assert torch.allclose(policy.sum(1), torch.ones(len(ex)), atol=1e-4)
    assert (policy[~legal] == 0).all()


# -- the commands ---------------------------------------------------------------------------
def run_cli(*args, timeout=120):
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", *args], capture_output=True,
                         text=True, timeout=timeout)
    return res


def test_blobzero_game_plays_complete_games_and_prints_the_table():
    res = run_cli("game", "--seats", "expert,greedy,random,greedy,greedy,greedy,greedy,greedy",
                  "--start-cards", "2", "--games", "2", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["players"] == 8 and out["n_games"] == 2 and len(out["games"]) == 2
    for game in out["games"]:
        assert [r["cards"] for r in game["rounds"]] == game_schedule(8, 2)
        assert game["totals"] == list(np.sum([r["scores"] for r in game["rounds"]], axis=0))
        assert game["winners"] == [s for s, t in enumerate(game["totals"]) if t == max(game["totals"])]
        for r in game["rounds"]:
            assert sum(r["tricks"]) == r["cards"]
            assert r["scores"] == [10 + b if b == t else 0 for b, t in zip(r["bids"], r["tricks"])]
    text = run_cli("game", "--seats", "expert,greedy,greedy", "--start-cards", "17")
    assert text.returncode == 0, text.stderr
    assert "winner: seat" in text.stdout and len(text.stdout.strip().splitlines()) == 3 + 35 + 1
    bad = run_cli("game", "--players", "8", "--start-cards", "7")
    assert bad.returncode == 2 and "--start-cards must be 1..6 for 8 players" in bad.stderr


def test_arena_plays_any_table_and_duplicate_full_games():
    res = run_cli("arena", "--a", "expert", "--b", "greedy", "--players", "8", "--cards", "1",
                  "--rounds", "60", "--lineup", "solo", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["players"], report["cards"], report["plays_per_deal"]) == (8, 1, 8)
    games = run_cli("arena", "--a", "expert", "--b", "greedy", "--players", "3", "--cards", "17",
                    "--games", "--rounds", "6", "--lineup", "solo", "--json")
    assert games.returncode == 0, games.stderr
    g = json.loads(games.stdout)
    assert (g["mode"], g["games"], g["plays_per_game"], g["rounds_per_game"]) == ("games", 6, 3, 35)
    assert g["ci95"][0] <= g["difference"] <= g["ci95"][1]
    # per seat, the win shares of one A and N-1 B's add up to one win per game
    assert g["a_win_rate"] + 2 * g["b_win_rate"] == pytest.approx(1.0)


def test_self_play_service_deals_full_games_of_every_table_through_triton(tmp_path):
    """`blobzero selfplay` against a real tritonserver with the tables profile: every shard's
    rounds carry their game context and the trainer turns them into examples."""
    from triton_helpers import selfplay_records

    records = selfplay_records(tmp_path, "config/tables.toml", 60, "search.preset=light",
                               "table.start_cards=3", "selfplay.seed=5")
    assert len(records) >= 60
    assert all(r.HasField("game") and r.game.n_rounds == r.n_players + 4 for r in records)
    assert len({r.n_players for r in records}) >= 3
    examples = concat([from_record(r, all_views=True) for r in records])
    assert len(examples) == sum(len(r.decisions) * r.n_players for r in records)


def test_model_seats_play_full_games(tmp_path):
    from triton_helpers import export_tiny

    onnx = export_tiny(tmp_path / "m.onnx", seed=2)
    res = run_cli("game", "--seats", f"{onnx},greedy,{onnx},expert,random,greedy,greedy,greedy",
                  "--start-cards", "1", "--search", "light", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["seats"][0] == "m" and [r["cards"] for r in out["games"][0]["rounds"]] == [1] * 8
