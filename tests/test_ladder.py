"""``blobzero ladder``: the Bradley–Terry fit on known strengths, the real command (built-in players
and a level of a real ONNX model on duplicate deals), incremental additions, the PNG and the
Prometheus gauge in storage, and the agent naming its levels with their ratings."""
from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from blobzero.ladder import ELO, fit
from agent_helpers import start_agent
from triton_helpers import PROJECT_ROOT, PYTHON, export_tiny


def simulated(a: str, b: str, gap_elo: float, deals: int, rng: random.Random) -> dict:
    p = 1 / (1 + 10 ** (-gap_elo / 400))
    wins = sum(rng.random() < p for _ in range(deals))
    return {"a": a, "b": b, "deals": deals, "wins": wins, "losses": deals - wins, "draws": 0}


def test_the_fit_recovers_known_ratings_with_intervals():
    truth = {"random": 0, "greedy": 250, "expert": 400, "level:heavy": 550}
    rng = random.Random(1)
    names = list(truth)
    matches = [simulated(a, b, truth[a] - truth[b], 4000, rng)
               for i, a in enumerate(names) for b in names[i + 1:]]
    ratings = fit(matches)
    assert ratings["random"] == {"rating": 0.0, "low": 0.0, "high": 0.0, "deals": 12000}
    for name, value in truth.items():
        r = ratings[name]
        assert r["low"] <= value <= r["high"], (name, r)
        assert r["high"] - r["low"] < 60
    # everyone-beats-random matches stay finite (one virtual draw per match)
    lopsided = fit([{"a": "expert", "b": "random", "deals": 100, "wins": 100, "losses": 0, "draws": 0}])
    assert math.isfinite(lopsided["expert"]["rating"]) and lopsided["expert"]["rating"] == pytest.approx(
        ELO * math.log(100.5 / 0.5), abs=0.1)


def ladder(storage: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "blobzero.cli", "ladder", "--set", f"storage.games_dir={storage}/games",
                           *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A real ladder: the built-ins, then a level of a tiny freshly initialised network."""
    root = tmp_path_factory.mktemp("ladder")
    onnx = export_tiny(root / "tiny.onnx", seed=2)
    first = ladder(root / "run", "--add", "random", "greedy", "expert", "--deals", "60")
    assert first.returncode == 0, first.stderr
    second = ladder(root / "run", "--add", "level:normal", "--model", str(onnx), "--deals", "20", "--json")
    assert second.returncode == 0, second.stderr
    return root, onnx, first, second


def test_the_command_rates_built_ins_and_a_level_incrementally(measured):
    root, onnx, first, second = measured
    kept = root / "run" / "ladder"
    data = json.loads((kept / "ladder.json").read_text())
    pairs = [(m["a"], m["b"]) for m in data["matches"]]
    assert pairs == [("random", "greedy"), ("random", "expert"), ("greedy", "expert"),
                     ("level:normal", "greedy"), ("level:normal", "expert")]      # the level played the anchors only
    assert [m["deals"] for m in data["matches"]] == [60, 60, 60, 20, 20]
    assert all(m["wins"] + m["losses"] + m["draws"] == m["deals"] for m in data["matches"])
    assert data["matches"][3]["search"] == "1x24"
    ratings = json.loads(second.stdout)
    assert ratings == data["ratings"] and ratings["random"]["rating"] == 0
    assert ratings["expert"]["rating"] > ratings["random"]["high"]
    assert all(r["low"] <= r["rating"] <= r["high"] for r in ratings.values())
    table = first.stdout.splitlines()
    assert table[0].split() == ["entrant", "rating", "95%", "interval", "deals"]
    assert [line.split()[0] for line in table[1:4]] == sorted(("random", "greedy", "expert"),
                                                             key=lambda n: -data["ratings"][n]["rating"])
    # the picture and the gauge
    assert (kept / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [family] = text_string_to_metric_families((kept / "ladder.prom").read_text())
    values = {(s.labels["entrant"], s.labels["bound"]): s.value for s in family.samples}
    assert values[("level:normal", "mid")] == ratings["level:normal"]["rating"]
    assert len(values) == 3 * len(ratings)
    # nothing new to play: the same matches, the same fit
    again = ladder(root / "run", "--add", "level:normal", "--model", str(onnx), "--deals", "20", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == ratings
    assert len(json.loads((kept / "ladder.json").read_text())["matches"]) == 5
    bad = ladder(root / "run", "--add", "level:huge")
    assert bad.returncode == 2 and "a level is one of level:easy, level:normal, level:heavy" in bad.stderr
    for preset in ("medium", "light"):                                 # presets, but no levels
        other = ladder(root / "run", "--add", f"level:{preset}")
        assert other.returncode == 2 and f"level:{preset}: a level is one of" in other.stderr


def test_the_agent_names_its_levels_with_their_ratings(measured, tmp_path):
    root, onnx, _, second = measured
    ratings = json.loads(second.stdout)
    agent = start_agent(tmp_path / "agent", "--onnx", str(onnx), storage=root / "run")
    try:
        import urllib.request
        with urllib.request.urlopen(agent.page + "api/info", timeout=10) as r:
            info = json.loads(r.read())
        assert info["ratings"]["level:normal"] == ratings["level:normal"]
        # the levels the page offers: the one definition (blobcore.search_config.LEVELS), weakest first
        assert info["search_presets"] == ["easy", "normal", "heavy"]
        assert info["levels"]["easy"] == {"determinizations": 1, "simulations": 4, "rollout": "random"}
        assert info["levels"]["normal"] == {"determinizations": 1, "simulations": 24, "rollout": "random",
                                            "root": "puct"}
        assert info["levels"]["heavy"] == {"determinizations": 5, "simulations": 50}
        assert info["ratings"]["expert"] == ratings["expert"]
        assert agent.metric("blobzero_ladder_rating", entrant="level:normal", bound="mid") == \
            pytest.approx(ratings["level:normal"]["rating"])
    finally:
        assert agent.stop() == 0, agent.log.read_text()[-2000:]
