"""The world-value leaf (search.rollout = "world"): the whole-deal encoding, the pool's world
rows and answers, the errors, the model's data and training, and ``blobzero worlds``."""
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from blobcore.encode import OBS_SIZE, WORLD_SIZE, encode, encode_world_of
from blobcore.rules import Round
from blobcore.search.pool import SearchPool
from plumbing.config import load
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch


def world_search(**settings):
    return load().search.build(for_evaluation=True, preset="light", rollout="world", **settings)


class ConstantWorld:
    """Every world is worth ``value`` to every seat: the uniform evaluator beside it."""
    answers_worlds = True

    def __init__(self, value):
        self.value = value
        self.rows = 0

    def world_values(self, worlds):
        self.rows += len(worlds)
        return np.full((len(worlds), 8), self.value, np.float32)

    def evaluate(self, states, masks, worlds=None):
        policy, value = UniformEvaluator().evaluate(states, masks)
        assert worlds is not None and worlds.shape == (len(states), WORLD_SIZE)
        return policy, value, None, self.world_values(worlds)


def test_encode_world_is_the_observation_and_every_other_hand():
    rnd = Round.from_seed(7, 4, 5)
    for action in rnd.legal_actions()[:1] * 1:
        rnd.apply(action)
    world = encode_world_of(rnd)
    assert world.shape == (WORLD_SIZE,) == (OBS_SIZE + 7 * 52,)
    np.testing.assert_array_equal(world[:OBS_SIZE], encode(rnd)[0])
    me = rnd.current_player
    for rel in range(1, 8):
        block = world[OBS_SIZE + 52 * (rel - 1):OBS_SIZE + 52 * rel]
        if rel < 4:
            assert sorted(np.flatnonzero(block).tolist()) == sorted(rnd.hand((me + rel) % 4))
        else:
            assert not block.any()


def test_world_rows_and_answers_reach_the_leaves():
    """With lambda = 1 every non-terminal leaf is worth the world value: a model that says 0.3
    for every seat makes every root action's q 0.3 (early in the round no leaf is terminal)."""
    evaluator = ConstantWorld(0.3)
    search = PooledSearch(evaluator, world_search(), [(5, 4, 5)], n_games=1, halves=1, stop_after=2)
    search.run()
    (record,) = search.finished()
    assert evaluator.rows > 0
    for decision in record["decisions"]:
        qs = list(decision["q"].values())
        assert qs and all(abs(q - 0.3) < 1e-5 for q in qs), decision


def test_a_world_leaf_without_world_answers_is_refused_with_the_reason():
    pool = SearchPool(2, world_search(), iter([(1, 4, 5), (2, 4, 5)]))
    states, masks = pool.collect()
    assert pool.worlds is not None and pool.worlds.shape == (len(states), WORLD_SIZE)
    policy, value = UniformEvaluator().evaluate(states, masks)
    with pytest.raises(ValueError, match="answers world values"):
        pool.apply(policy, value)
    bad = np.full((len(states), 8), np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        pool.apply(policy, value, None, bad)
    with pytest.raises(ValueError, match="world must have shape"):
        pool.apply(policy, value, None, np.zeros((len(states) + 1, 8), np.float32))
    pool.apply(policy, value, None, np.full((len(states), 8), 0.5, np.float32))
    with pytest.raises(ValueError, match="answers world values"):
        PooledSearch(UniformEvaluator(), world_search(), [(1, 4, 5)], n_games=1)


def test_play_outs_blended_with_world_values_by_world_share():
    """search.world_share = mu: each leaf's play-out score is (1 - mu) x play-out + mu x the
    world value of a second deal. mu = 1 leaves only the world value (every q is the constant
    model's 0.3); the labelled leaf worlds stay the play-outs' own scores, not the blend."""
    evaluator = ConstantWorld(0.3)
    settings = load().search.build(preset="light", rollout="expert", world_share=1.0, leaf_samples=8)
    assert settings.uses_world_values and "0:1 with world values" in settings.describe()
    search = PooledSearch(evaluator, settings, [(5, 4, 5)], n_games=1, halves=1, stop_after=2)
    search.run()
    (record,) = search.finished()
    assert evaluator.rows > 0 and record["search"]["world_share"] == 1.0
    for decision in record["decisions"][:3]:          # no leaf of the first decisions is terminal
        assert all(abs(q - 0.3) < 1e-5 for q in decision["q"].values()), decision
    worlds = record["leaf_worlds"]
    assert len(worlds) == 8
    for world in worlds:                              # a round score: 0 or (10 + bid) / 15
        assert all(x == 0 or any(np.isclose(x, (10 + b) / 15) for b in range(6)) for x in world["scores"])
    half = ConstantWorld(0.3)
    blended = PooledSearch(half, replace(settings, world_share=0.5), [(5, 4, 5)], n_games=1,
                           halves=1, stop_after=2)
    blended.run()
    (record,) = blended.finished()
    qs = [q for d in record["decisions"][:3] for q in d["q"].values()]
    assert half.rows > 0 and any(abs(q - 0.3) > 1e-3 for q in qs)   # the play-outs count again
    pool = SearchPool(1, settings, iter([(1, 4, 5)]))
    states, masks = pool.collect()
    assert pool.worlds is not None
    with pytest.raises(ValueError, match="search.world_share = 1 needs an evaluator that answers world"):
        pool.apply(*UniformEvaluator().evaluate(states, masks))


def test_other_leaf_values_have_no_world_rows():
    pool = SearchPool(1, load().search.build(for_evaluation=True, preset="light"), iter([(1, 4, 5)]))
    pool.collect()
    assert pool.worlds is None


def test_explored_worlds_label_every_position_with_the_final_scores_from_its_mover():
    from trainer.world_model import explored_worlds, worlds_from_records
    data = explored_worlds(30, seed=11)
    assert len(data) > 30 and data.world.shape[1] == WORLD_SIZE
    assert ((data.target >= 0) & (data.target <= 1)).all()
    assert (data.target[:, 4:] == 0).all()
    # within a round, the mover's label is another seat's label rotated
    first = data.round == data.round[0]
    assert np.isclose(data.target[first].sum(1), data.target[first][0].sum()).all()
    from blobzero.beliefs import make_records
    recorded = worlds_from_records(make_records(3, 500, "expert"))
    assert len(recorded) == 3 * (4 + 20)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("worlds")
    done = subprocess.run([sys.executable, "-m", "blobzero.cli", "worlds", "all", "--data", str(out),
                           "--train-rounds", "300", "--heldout-rounds", "40", "--epochs", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout.strip().splitlines()[-1])


def test_blobzero_worlds_trains_exports_and_reports(trained):
    out, result = trained
    assert (out / "world.pt").is_file() and (out / "world.onnx").is_file()
    assert result["train"]["positions"] > 300
    assert 0 < result["report"]["model_mse"] < 0.5
    assert set(result["report"]["by_trick"]) >= {"0", "1"}


def test_world_evaluator_answers_and_refuses_a_model_that_is_not_one(trained, tmp_path):
    from selfplay_client.world_values import WorldEvaluator
    from trainer.export import export_fresh
    out, _ = trained
    ev = WorldEvaluator(UniformEvaluator(), out / "world.onnx")
    worlds = np.stack([encode_world_of(Round.from_seed(s, 4, 5)) for s in range(5)])
    values = ev.world_values(worlds)
    assert values.shape == (5, 8) and np.isfinite(values).all()
    with pytest.raises(ValueError, match=r"worlds must have shape \(n, 620\)"):
        ev.world_values(worlds[:, :256])
    blobnet = tmp_path / "blobnet.onnx"
    export_fresh("small", blobnet, seed=1)
    with pytest.raises(ValueError, match="is not a world-value model"):
        WorldEvaluator(UniformEvaluator(), blobnet)
    with pytest.raises(FileNotFoundError, match="blobzero worlds all"):
        WorldEvaluator(UniformEvaluator(), tmp_path / "missing.onnx")


def test_blobzero_worlds_arena_plays_both_leaf_values_on_the_same_deals(trained, tmp_path):
    from trainer.export import export_fresh
    out, _ = trained
    network = export_fresh("tiny", tmp_path / "tiny.onnx", seed=2)
    done = subprocess.run([sys.executable, "-m", "blobzero.cli", "worlds", "arena", "--data", str(out),
                           "--arena-sets", "11:2,500:1", "--search", "easy", "--json", str(out / "arena.json"),
                           "--network", str(network)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["deals"] == 3 and result["sets"] == [[11, 2], [500, 1]]
    assert result["network"] == str(network)
    assert set(result["variants"]) == {"playout", "world"}
    assert "minus_playout" in result["variants"]["world"]
    assert "world" in result["variants"]["world"]["search"]
    kept = json.loads((out / "arena.json").read_text())
    assert {name: len(v) for name, v in kept["per_deal"].items()} == {"playout": 3, "world": 3}


def test_deal_sets_are_read_or_refused_with_the_form():
    from blobzero.arena import deal_sets
    assert deal_sets("4242:600, 777:1000") == [(4242, 600), (777, 1000)]
    for bad in ("", "4242", "4242:0", "x:5"):
        with pytest.raises(ValueError):
            deal_sets(bad)


def test_world_values_by_name_need_a_model_in_the_config():
    from plumbing.config import ConfigError
    with pytest.raises(ConfigError, match="'search.rollout' \"world\" needs a world-value model"):
        load(None, ["search.rollout=world"], env={})
    with pytest.raises(ConfigError, match="'selfplay.rollout' \"world\""):
        load(None, ["selfplay.rollout=world"], env={})
    with pytest.raises(ConfigError, match="'search.world_share' 0.5 needs a world-value model"):
        load(None, ["search.world_share=0.5"], env={})
    with pytest.raises(ConfigError, match="world_share must be in"):
        load(None, ["search.world_share=1.5", "worlds.model=triton"], env={})
    assert not load(None, ["search.world_share=0.5", "search.rollout=none"], env={}).uses_world_values()
    with pytest.raises(ConfigError, match="worlds.model"):
        load(None, ["worlds.model=world.pt"], env={})
    assert load(None, ["search.rollout=world", "worlds.model=triton"], env={}).worlds.model == "triton"


def test_the_arena_and_blobzero_game_search_with_world_values_by_name(trained):
    out, _ = trained
    sets = ["--set", "search.rollout=world", "--set", f"worlds.model={out / 'world.onnx'}"]
    done = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "uniform", "--b", "expert",
                           "--rounds", "2", "--search", "easy", "--json", *sets],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deals"] == 2
    done = subprocess.run([sys.executable, "-m", "blobzero.cli", "game", "--seats", "uniform,expert,expert",
                           "--games", "1", "--start-cards", "2", "--search", "easy", *sets],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "uniform", "--b", "expert",
                              "--rounds", "1", "--set", "search.rollout=world",
                              "--set", f"worlds.model={out / 'missing.onnx'}"],
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "no world-value model at" in missing.stderr


def test_the_agent_engine_advises_with_world_values_and_refuses_without_them():
    """The agent's engine (several rounds in one pool, roots and leaves in one batch) asks the
    world values of its leaves; the constant model makes every searched action's q its value."""
    from blobzero.agent.engine import Engine
    from blobzero.agent.models import OnnxModels
    from plumbing import config as configuration
    cfg = configuration.load(None, ["storage.model_repository=/nonexistent-repository"], env={})
    search = load().search.build(for_evaluation=True, preset="light", rollout="world")
    rounds = [Round.from_seed(seed, 4, 5) for seed in range(4)]
    bare = Engine(OnnxModels(cfg), slots=4)
    try:
        with pytest.raises(ValueError, match="no world-value model"):
            bare.submit(rounds[0], search)
    finally:
        bare.close()
    engine = Engine(OnnxModels(cfg), slots=4, worlds=ConstantWorld(0.25))
    try:
        futures = [engine.submit(rnd, search, seed=1) for rnd in rounds]
        for future in futures:
            advice = future.result(timeout=120)
            assert advice.q and all(abs(q - 0.25) < 1e-5 for q in advice.q.values()), advice
    finally:
        engine.close()


def test_training_draws_its_learning_curve(trained):
    out, _ = trained
    png = (out / "world_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


@pytest.fixture(scope="module")
def belief_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("beliefs")
    for action in (["make", "--train-rounds", "120", "--heldout-rounds", "10", "--arena-rounds", "4"],
                   ["train", "--epochs", "1"]):
        done = subprocess.run([sys.executable, "-m", "blobzero.cli", "beliefs", *action, "--out", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    return out / "belief.pt"


def test_every_learned_part_by_name_in_the_arena_the_agent_and_never_in_self_play(trained, belief_model,
                                                                                  tmp_path):
    """search.rollout = "world" and search.beliefs = "learned" together, named in the config: the
    arena plays them; the agent's engine advises with them; self-play refuses at start."""
    from blobzero.agent.engine import Engine
    from blobzero.agent.models import OnnxModels
    from blobzero.learned_beliefs import BeliefModel
    from plumbing import config as configuration
    from selfplay_client.world_values import OrtWorldValues
    out, _ = trained
    sets = ["--set", "search.rollout=world", "--set", f"worlds.model={out / 'world.onnx'}",
            "--set", "search.beliefs=learned", "--set", f"beliefs.model={belief_model}"]
    done = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "uniform", "--b", "expert",
                           "--rounds", "2", "--search", "easy", "--json", *sets],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deals"] == 2
    cfg = configuration.load(None, ["storage.model_repository=/nonexistent-repository"], env={})
    search = load().search.build(for_evaluation=True, preset="light", rollout="world", beliefs="learned")
    bare = Engine(OnnxModels(cfg), slots=2, worlds=OrtWorldValues(out / "world.onnx"))
    try:
        with pytest.raises(ValueError, match="no belief model"):
            bare.submit(Round.from_seed(1, 4, 5), search)
    finally:
        bare.close()
    engine = Engine(OnnxModels(cfg), slots=2, worlds=OrtWorldValues(out / "world.onnx"),
                    beliefs=BeliefModel(belief_model))
    try:
        rnd = Round.from_seed(3, 4, 5)
        for _ in range(4):                      # the bids, then a searched card with hidden hands
            rnd.apply(rnd.legal_actions()[0])
        advice = engine.advise(rnd, search, seed=1, timeout=120)
        assert advice.action in rnd.legal_actions() and advice.visits
    finally:
        engine.close()
    refused = subprocess.run([sys.executable, "-m", "blobzero.cli", "selfplay", "--rounds", "1",
                              "--set", f"storage.games_dir={tmp_path / 'games'}", *sets[4:]],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "not served to self-play" in refused.stderr
