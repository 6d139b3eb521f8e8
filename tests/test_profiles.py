"""The configuration profiles under config/: each loads and validates, and the pure self-play
profile keeps `expert` out of everything the player learns from (its records say so)."""
from __future__ import annotations

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
        # leaves valued by the world model learned from its own rounds; hidden hands uniform
        assert search.rollout == "world" and search.beliefs == "uniform"
        assert search.leaf_samples == 0               # no leaf labelled by an expert play-out
    assert config.worlds.model == "version" and config.trainer.world_games
    assert config.selfplay.opponent == "" and config.selfplay.opponent_share == 0.0
    # the default, for contrast, plays out with expert and infers with its bidding model
    default = load(PROJECT / "config" / "blobzero.toml").selfplay_search()
    assert default.rollout == "expert" and default.inference_candidates > 1


def test_the_pure_profile_keeps_a_window_for_its_fast_self_play():
    """Pure self-play writes ~99 k positions a minute on 2 cores: its window keeps half of
    what it has seen, up to 4 M positions, where the default keeps a quarter, up to 500 k."""
    pure, default = load(PROJECT / "config" / "pure.toml"), load(PROJECT / "config" / "blobzero.toml")
    assert (pure.trainer.window_max, pure.trainer.window_growth) == (4_000_000, 0.5)
    assert (default.trainer.window_max, default.trainer.window_growth) == (500_000, 0.25)


def test_pure_self_play_through_triton_records_a_search_without_expert(tmp_path):
    """`blobzero selfplay --config config/pure.toml` against a real tritonserver serving BlobNet
    and a world-value model: every record's search settings say world values, no play-outs,
    uniform hidden hands and no labelled leaves, and no seat is a built-in player."""
    from triton_helpers import selfplay_records

    records = selfplay_records(tmp_path, "config/pure.toml", 40, "selfplay.seed=7", model_seed=3,
                               world_model=True)
    assert len(records) >= 40
    for r in records:
        assert r.search.rollout == "world" and r.search.beliefs == "uniform"
        assert r.search.root == "gumbel" and r.search.leaf_samples == 0 and not r.leaf_worlds
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
