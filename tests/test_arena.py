"""The arena: duplicate deals with rotated seats, confidence intervals, agent specs."""
import dataclasses
import json
import subprocess
import sys

import pytest

from blobzero.arena import Agent, arena_search, play, pool_agents, resolve_agent, seat_patterns, split_agent
from plumbing.config import load


def test_seat_patterns_alternate_and_rotate():
    assert seat_patterns(4) == [(0, 1, 0, 1), (1, 0, 1, 0)]
    patterns = seat_patterns(3)
    assert len(patterns) == 3
    for seat in range(3):   # with an odd table every seat is A's as often as needed to balance
        assert sorted(p[seat] for p in patterns) == [0, 0, 1]


def test_random_against_itself_is_exactly_even():
    """Same deal, same random stream, seats swapped: every deal's difference cancels."""
    report = play(Agent("random", None), Agent("random", None), deals=150)
    assert report["difference"] == pytest.approx(0.0, abs=1e-12)
    assert not report["significant"]


def test_a_searching_model_beats_random_play(tmp_path):
    from trainer.export import export_fresh
    onnx = export_fresh("tiny", tmp_path / "tiny.onnx", seed=0)
    from blobcore.search_config import PLAIN
    report = play(Agent("tiny", onnx), Agent("random", None), deals=600,
                  search=PLAIN.sized("light").for_evaluation())
    assert report["deals"] == 600 and report["plays_per_deal"] == 2
    low, high = report["ci95"]
    assert low < report["difference"] < high
    assert report["difference"] > 0 and report["significant"]
    assert report["a_mean_score"] > report["b_mean_score"]


def test_agent_specs_resolve_or_explain(tmp_path):
    cfg = load(None, [f"storage.model_repository={tmp_path / 'repo'}",
                      f"storage.checkpoint_dir={tmp_path / 'ckpt'}"], env={})
    assert resolve_agent("random", cfg).onnx is None
    with pytest.raises(ValueError, match="model version 3"):
        resolve_agent("v3", cfg)
    with pytest.raises(ValueError, match="unknown agent"):
        resolve_agent("strongest", cfg)
    with pytest.raises(ValueError, match="no model versions"):
        resolve_agent("latest", cfg)
    archived = tmp_path / "ckpt" / "versions"
    archived.mkdir(parents=True)
    (archived / "v000003.onnx").write_bytes(b"x")
    assert resolve_agent("v3", cfg).onnx == archived / "v000003.onnx"
    for version in (2, 4):               # the repository keeps the newest; the archive has v3
        (tmp_path / "repo" / "blobnet" / str(version)).mkdir(parents=True)
        (tmp_path / "repo" / "blobnet" / str(version) / "model.onnx").write_bytes(b"x")
    assert [resolve_agent(spec, cfg).name for spec in ("latest", "latest~1", "latest~2")] == \
        ["v4", "v3", "v2"]
    with pytest.raises(ValueError, match="newest version is v4, so there is no version 4 before it"):
        resolve_agent("latest~4", cfg)


def test_cli_prints_json():
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "random", "--b", "random",
                          "--rounds", "20", "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["deals"] == 20 and report["difference"] == 0
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "v99"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "model version 99" in res.stderr


def test_the_greedy_baseline_beats_random_and_is_seated_by_the_pool():
    greedy = resolve_agent("greedy", load(None, [], env={}))
    report = play(greedy, Agent("random"), deals=300)
    assert report["significant"] and report["difference"] > 1.5
    # the same heuristic as the demo's Python player (one implementation, blobcore/greedy.pyx)
    from blobcore import Round
    from blobcore.greedy import greedy as greedy_action
    from blobcore.players import PLAYERS
    rnd = Round.from_seed(5, 4, 5)
    while not rnd.is_terminal:
        assert PLAYERS["greedy"](rnd, None) == greedy_action(rnd)
        rnd.apply(greedy_action(rnd))


def test_loop_strength_table_formats_every_opponent():
    from blobzero.loop import strength_table
    point = {"difference": 1.0, "ci95": [0.5, 1.5], "deals": 200, "minutes": 2.5, "rounds": 4000}
    table = strength_table([{**point, "version": 1, "opponent": "greedy"},
                            {**point, "version": 9, "opponent": "greedy"},
                            {**point, "version": 9, "opponent": "expert", "ci95": [-0.2, 2.2]}])
    lines = table.splitlines()
    assert "vs greedy" in lines[0] and "vs expert" in lines[0]
    assert lines[1].startswith("v1 ") and "—" in lines[1] and lines[2].startswith("v9 ")
    assert lines[2].count("*") == 1 and "4000" in lines[2]


def test_solo_lineup_seats_one_a_against_the_field():
    assert seat_patterns(4, "solo") == [(0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0)]
    with pytest.raises(ValueError, match="lineup"):
        seat_patterns(4, "three")
    greedy = resolve_agent("greedy", load(None, [], env={}))
    report = play(greedy, Agent("random"), deals=100, lineup="solo")
    assert report["plays_per_deal"] == 4 and report["lineup"] == "solo"
    # one greedy seat among three random players still beats them clearly
    assert report["significant"] and report["difference"] > 1.0


def test_a_split_agent_bids_like_one_player_and_plays_like_another():
    """expert's bids with greedy's card play: every bid is the expert's, every card greedy's."""
    from blobcore import PHASE_BID, Round
    from blobcore.expert import expert
    from blobcore.greedy import greedy
    from blobcore.search_config import PLAIN, SearchConfig
    from selfplay_client.runner import PooledSearch

    cfg = load(None, [], env={})
    split = split_agent(resolve_agent("expert", cfg), resolve_agent("greedy", cfg))
    evaluators, ids = pool_agents([split, resolve_agent("random", cfg)])
    specs = [(seed, 4, 5, -1, -1, (ids[0], ids[1], ids[0], ids[1])) for seed in range(40)]
    runner = PooledSearch(evaluators, dataclasses.replace(PLAIN, add_noise=False, temperature=0.0), specs, n_games=8)
    runner.run()
    records = runner.finished()
    assert len(records) == 40
    for rec in records:
        rnd = Round.from_deal(rec["hands"], rec["trump"], rec["dealer"])
        for action in rec["actions"]:
            seat = rnd.current_player
            if seat % 2 == 0 and len(rnd.legal_actions()) > 1:
                assert action == (expert(rnd) if rnd.phase == PHASE_BID else greedy(rnd))
            rnd.apply(action)
    report = play(split, resolve_agent("expert", cfg), deals=60, lineup="solo")
    assert report["a"] == "expert(bids)+greedy(cards)"
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "greedy", "--a-cards",
                          "expert", "--b", "expert", "--rounds", "20", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and json.loads(res.stdout)["a"] == "greedy(bids)+expert(cards)"


def test_the_search_with_no_network_is_an_agent(tmp_path):
    """``uniform``: the configured search on a uniform evaluator, seated like a model — what the
    search earns without any network, beside which a model shows what its training added."""
    cfg = load(None, [], env={})
    uniform = resolve_agent("uniform", cfg)
    assert uniform.searches and uniform.onnx is None
    search = arena_search(cfg, "light")
    report = play(uniform, resolve_agent("random", cfg), deals=40, search=search, lineup="solo")
    assert report["deals"] == 40 and report["evaluations_per_round"] > 0
    assert report["difference"] > 1.0 and report["significant"]
    with pytest.raises(ValueError, match="needs its search"):
        play(uniform, resolve_agent("random", cfg), deals=2)
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "uniform", "--b", "greedy",
                          "--rounds", "8", "--search", "light", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["a"] == "uniform"
