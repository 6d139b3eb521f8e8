"""The configuration profiles under config/: each loads and validates, and the pure self-play
profile keeps `expert` out of everything the player learns from (its records say so)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plumbing.config import load

PROJECT = Path(__file__).resolve().parents[1]
PROFILES = sorted((PROJECT / "config").glob("*.toml"))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_every_profile_loads_and_builds_its_searches(profile):
    config = load(profile)
    config.selfplay_search()
    config.search.build(for_evaluation=True)


def test_the_pure_profile_uses_no_expert_in_search_inference_or_seats():
    config = load(PROJECT / "config" / "pure.toml")
    for search in (config.selfplay_search(), config.search.build(for_evaluation=True)):
        assert search.rollout == "none" and search.inference_candidates == 1
    assert config.selfplay.opponent == "" and config.selfplay.opponent_share == 0.0
    # the default, for contrast, plays out with expert and infers with its bidding model
    default = load(PROJECT / "config" / "blobzero.toml").selfplay_search()
    assert default.rollout == "expert" and default.inference_candidates > 1


def test_pure_self_play_through_triton_records_a_search_without_expert(tmp_path):
    """`blobzero selfplay --config config/pure.toml` against a real tritonserver: every
    record's search settings say no play-outs and uniform hidden hands, and no seat is a
    built-in player."""
    from plumbing.shards import SUFFIX, decode_shard
    from triton_helpers import export_tiny, make_repository, start_server

    repo = make_repository(tmp_path, export_tiny(tmp_path / "tiny.onnx", seed=3))
    server = start_server(tmp_path, repo, instances=1)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "blobzero.cli", "selfplay", "--config", "config/pure.toml",
             "--rounds", "40", "--progress", "off", "--set", f"triton.url={server.url}",
             "--set", f"storage.games_dir={tmp_path / 'games'}", "--set", "selfplay.games_in_flight=16",
             "--set", "metrics.selfplay_port=0", "--set", "selfplay.seed=7"],
            capture_output=True, text=True, timeout=300, cwd=PROJECT)
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr[-2000:]
    records = [r for shard in sorted((tmp_path / "games").rglob("*" + SUFFIX))
               for r in decode_shard(shard.read_bytes())]
    assert len(records) >= 40
    for r in records:
        assert r.search.rollout == "none" and r.search.inference_candidates == 1
        assert r.search.root == "puct"
        # every seat searched its own decisions (no built-in player sat in)
        assert {d.player for d in r.decisions} == set(range(r.n_players))


def test_the_embedded_default_states_every_key_of_the_schema():
    """config/blobzero.toml is where users look for a setting: it names every one."""
    import dataclasses
    import tomllib

    stated = tomllib.loads((PROJECT / "config" / "blobzero.toml").read_text())
    config = load(PROJECT / "config" / "blobzero.toml")
    missing = [f"{section.name}.{key.name}" for section in dataclasses.fields(config)
               if dataclasses.is_dataclass(getattr(config, section.name))
               for key in dataclasses.fields(getattr(config, section.name))
               if key.name not in stated.get(section.name, {})]
    assert not missing, f"config/blobzero.toml does not state {missing}"
