"""Self-play's labelled leaf worlds and the world-value model the trainer learns from them.

Real searches, real shards, a real trainer: a round's record keeps a uniform sample of its
play-outs (the world each was played in and what it scored); the trainer replays them, learns the
world value beside BlobNet and publishes blobworld N with blobnet N; ``worlds.model = "version"``
seats each version with its own."""
import io
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from blobcore.encode import encode_world_of
from blobcore.rules import Round
from blobcore.search_config import SearchConfig
from plumbing.records import to_proto
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs
from trainer.leaf_worlds import LeafWorldWindow, from_records
from tests.test_training import trainer_setup

K = 8


@pytest.fixture(scope="module")
def records():
    config = SearchConfig(determinizations=2, simulations=12, leaf_samples=K)
    search = PooledSearch(UniformEvaluator(), config, itertools.islice(round_specs(5, 4, 5), 24), n_games=12)
    search.run()
    return search.finished()


def _world(rec: dict, world: dict, after: int | None = None) -> Round:
    """The leaf world replayed with the rules engine: its deal, the round's moves to the
    decision, then the tree's path to the leaf (and ``after`` moves of the play-out)."""
    hands = [[c for c in range(52) if mask >> c & 1] for mask in world["dealt"]]
    rnd = Round.from_deal(hands, rec["trump"], rec["dealer"])
    moves = world["path"][:world["leaf"] + (after or 0)]
    for action in rec["actions"][:world["ply"]] + moves:
        assert action in rnd.legal_actions()
        rnd.apply(action)
    return rnd


def test_a_round_keeps_a_sample_of_its_play_outs_as_labelled_worlds(records):
    cards = 5
    for rec in records:
        worlds = rec["leaf_worlds"]
        assert len(worlds) == K                       # hundreds of play-outs a round, K kept
        assert [w["ply"] for w in worlds] == sorted(w["ply"] for w in worlds)
        plies = {d["ply"] for d in rec["decisions"]}
        for world in worlds:
            assert world["ply"] in plies              # searched for one of the round's decisions
            rnd = _world(rec, world)
            assert not rnd.is_terminal
            # the play-out's moves end the round with the scores recorded
            done = _world(rec, world, after=len(world["path"]) - world["leaf"])
            assert done.is_terminal
            assert np.allclose(world["scores"], [x / (10 + cards) for x in done.scores()])
            mover = rec["actions"] and [d["player"] for d in rec["decisions"] if d["ply"] == world["ply"]][0]
            # the searcher's own cards are its own in every world it imagines
            assert world["dealt"][mover] == sum(1 << c for c in rec["hands"][mover])
            for x in world["scores"]:                 # a normalised round score: 0 or 10 + bid
                assert x == 0 or any(np.isclose(x, (10 + b) / (10 + cards)) for b in range(cards + 1))
    # a uniform sample over the round: not only its first decisions
    assert max(w["ply"] for rec in records for w in rec["leaf_worlds"]) > 12


def test_the_trainer_encodes_each_world_for_its_mover_with_the_scores_from_there(records):
    protos = [to_proto(r, "t") for r in records]
    assert all(len(p.leaf_worlds) == K for p in protos)
    worlds, bad = from_records(protos)
    assert bad == [] and len(worlds) == K * len(records)
    encoded, target, ok = worlds.encode()
    assert ok.all()
    flat = [(rec, w) for rec in records for w in rec["leaf_worlds"]]
    for i in range(0, len(flat), 7):
        rec, world = flat[i]
        rnd = _world(rec, world)
        assert np.array_equal(encoded[i], encode_world_of(rnd))
        mover, n = rnd.current_player, rec["n_players"]
        assert np.allclose(target[i, :n], [world["scores"][(mover + k) % n] for k in range(n)])
        assert not target[i, n:].any()
    # a position later in the play-out: the same deal further on, the same scores from its mover
    rows = np.arange(0, len(flat), 5, dtype=np.int32)
    upto = worlds.cut_points(rows, np.random.default_rng(1))
    assert (upto >= worlds.leaf_n[rows]).all() and (upto < worlds.n_actions[rows]).all()
    assert (upto > worlds.leaf_n[rows]).any() and (upto == worlds.leaf_n[rows]).any()
    later, later_target, ok = worlds.encode(rows, upto)
    assert ok.all()
    for j in range(0, len(rows), 5):
        rec, world = flat[rows[j]]
        rnd = _world(rec, world, after=int(upto[j] - worlds.leaf_n[rows[j]]))
        assert np.array_equal(later[j], encode_world_of(rnd))
        n = rec["n_players"]
        assert np.allclose(later_target[j, :n], [world["scores"][(rnd.current_player + k) % n] for k in range(n)])
    window = LeafWorldWindow(50)
    window.add(worlds)
    assert len(window) == 50 and window.total == len(worlds)
    x, y = window.sample(64, np.random.default_rng(0))
    assert x.shape == (64, 620) and y.shape == (64, 8)


def test_a_bad_leaf_world_costs_that_world_only_and_says_why(records):
    protos = [to_proto(r, "t") for r in records[:2]]
    worlds = protos[0].leaf_worlds
    worlds[0].dealt[1] = worlds[0].dealt[0]           # two seats hold the same cards
    worlds[1].scores[0] = float("nan")
    worlds[2].path = bytes([60]) + worlds[2].path[1:]    # no such card
    worlds[3].ply = 200                               # past the round's moves
    worlds[4].leaf = len(worlds[4].path) + 1          # a leaf past its own path
    good, bad = from_records(protos)
    assert len(good) == 2 * K - 5
    text = "; ".join(bad)
    assert "not one of N disjoint hands" in text and "not normalised scores" in text
    assert "do not fit the round's" in text and "do not replay legally" in text


def test_each_round_own_deal_is_a_world_labelled_by_its_outcome(records):
    """trainer.world_games: the true deal, the moves played in it, the final scores, at any of
    its positions with equal chance; a record whose own deal is broken costs that world only."""
    protos = [to_proto(r, "t") for r in records[:6]]
    for p in protos:
        del p.leaf_worlds[:]                          # no play-outs kept (the pure profile)
    none, _ = from_records(protos)
    assert len(none) == 0
    worlds, bad = from_records(protos, games=True)
    assert bad == [] and len(worlds) == len(protos)
    assert (worlds.leaf_n == 0).all() and (worlds.n_actions == 4 * 6).all()
    assert np.allclose(worlds.at_leaf, 1 / 24)
    rows = np.repeat(np.arange(len(worlds), dtype=np.int32), 400)
    upto = worlds.cut_points(rows, np.random.default_rng(2))
    counts = np.bincount(upto, minlength=24)
    assert counts.min() > 40 and upto.max() == 23     # every position, about equally often
    x, y, ok = worlds.encode(rows[:200:9], upto[:200:9])
    assert ok.all()
    for j, (r, u) in enumerate(zip(rows[:200:9], upto[:200:9])):
        rec = records[r]
        rnd = Round.from_deal([sorted(h) for h in rec["hands"]], rec["trump"], rec["dealer"])
        for action in rec["actions"][:u]:
            rnd.apply(action)
        assert np.array_equal(x[j], encode_world_of(rnd))
        final = [s / 15 for s in rec["scores"]]
        assert np.allclose(y[j, :4], [final[(rnd.current_player + k) % 4] for k in range(4)])
    protos[1].hands[0].cards[0] = protos[1].hands[1].cards[0]     # a card dealt twice
    del protos[2].actions[-3:]                                      # a round cut short
    protos[3].scores[0] = 99                                        # not a score of this round
    worlds, bad = from_records(protos, games=True)
    assert len(worlds) == len(protos) - 3
    text = "; ".join(bad)
    assert "record 1: its own deal: its deal is not one of N disjoint hands" in text
    assert "record 2: its own deal: 21 moves, not a whole round's 24" in text
    assert "record 3: its own deal: its scores are not normalised" in text


def test_only_self_play_keeps_labels_and_only_from_play_outs():
    from plumbing.config import ConfigError, load
    cfg = load(None, [], env={})
    assert cfg.selfplay_search().leaf_samples == 64 and cfg.search.build().leaf_samples == 0
    with pytest.raises(ConfigError, match="selfplay.leaf_worlds"):
        load(None, ["selfplay.leaf_worlds=65"], env={})
    with pytest.raises(ValueError, match="leaf_samples"):
        SearchConfig(leaf_samples=-1)
    plain = PooledSearch(UniformEvaluator(), SearchConfig(determinizations=1, simulations=4, rollout="none",
                                                          leaf_samples=K),
                         itertools.islice(round_specs(1, 4, 3), 2), n_games=2)
    plain.run()
    assert all(r["leaf_worlds"] == [] for r in plain.finished())   # no play-outs, no labels


@pytest.fixture(scope="module")
def trained_run(records, tmp_path_factory):
    from trainer.service import Trainer
    tmp = tmp_path_factory.mktemp("loop")
    cfg = trainer_setup(tmp, [to_proto(r, "t", model_version=1) for r in records],
                        "trainer.world_batch_size=64", "trainer.world_hidden=32",
                        "trainer.world_sample_reuse=4")
    trainer = Trainer(cfg)
    assert trainer.run(steps=20) == 0
    return tmp, cfg, trainer


def test_the_trainer_learns_the_world_value_beside_blobnet_and_publishes_both(trained_run):
    tmp, cfg, trainer = trained_run
    # each world trained on trainer.world_sample_reuse = 4 times on average, then it waits
    assert len(trainer.world.window) == K * 24 and trainer.world.steps == 4 * K * 24 // 64 == 12
    assert trainer.world.loss is not None and 0 < trainer.world.loss < 0.5
    text = trainer.metrics.registry and __import__("prometheus_client").generate_latest(trainer.metrics.registry).decode()
    assert 'blobzero_trainer_loss{kind="world"}' in text
    assert f"blobzero_trainer_world_window_worlds {float(K * 24)}" in text
    assert sorted(p.name for p in (tmp / "repo" / "blobworld").iterdir()) == ["1", "2", "3", "config.pbtxt"]
    manifest = json.loads((tmp / "ckpt" / "versions" / "v000003.json").read_text())
    assert manifest["world_steps"] == 12 and manifest["worlds_seen"] == K * 24 and manifest["world_loss"] > 0
    from selfplay_client.world_values import OrtWorldValues
    worlds, _ = from_records([to_proto(r, "t") for r in trainer_records(tmp)])
    x, _, _ = worlds.encode(np.arange(5))
    served = OrtWorldValues(tmp / "repo" / "blobworld" / "3" / "model.onnx").world_values(x)
    with torch.no_grad():
        assert np.allclose(served, trainer.world.net.cpu()(torch.from_numpy(x)).numpy(), atol=1e-5)


def trainer_records(tmp):
    from plumbing.shards import decode_shard
    out = []
    for path in sorted((tmp / "games").rglob("*.shard")):
        for rec in decode_shard(path.read_bytes()):
            out.append({"n_players": rec.n_players, "cards": rec.cards, "dealer": rec.dealer,
                        "trump": None if rec.trump == 4 else rec.trump, "hands": [list(h.cards) for h in rec.hands],
                        "actions": list(rec.actions), "decisions": [], "scores": list(rec.scores),
                        "search": {}, "seed": rec.seed,
                        "leaf_worlds": [{"ply": w.ply, "path": list(w.path), "leaf": w.leaf, "dealt": list(w.dealt),
                                         "scores": list(w.scores)} for w in rec.leaf_worlds]})
    return out


def test_a_resumed_trainer_goes_on_with_its_world_model_and_refuses_another_size(trained_run):
    from trainer.service import Trainer
    tmp, cfg, trainer = trained_run
    resumed = Trainer(cfg)
    assert resumed.run(steps=30) == 0
    # the shards read again after the restart are no new worlds: no more world steps
    assert resumed.world.steps == 12 and resumed.world.worlds_seen == K * 24
    # refilled from the shards BlobNet's window is refilled from (the newest that fill it)
    assert 0 < len(resumed.world.window) <= K * 24 and len(resumed.world.window) % K == 0
    state = torch.load(io.BytesIO((tmp / "ckpt" / "trainer.pt").read_bytes()), weights_only=False)
    assert state["world"]["steps"] == 12 and state["world"]["samples_trained"] == 12 * 64
    from plumbing.config import load
    wider = load(None, [f"{k}={v}" for k, v in (("storage.games_dir", tmp / "games"),
                                                 ("storage.model_repository", tmp / "repo"),
                                                 ("storage.checkpoint_dir", tmp / "ckpt"))]
                 + ["network.preset=tiny", "metrics.trainer_port=0", "trainer.world_hidden=64"], env={})
    with pytest.raises(SystemExit, match="trainer.world_depth x trainer.world_hidden"):
        Trainer(wider).run(steps=31)


def test_worlds_model_version_seats_each_version_with_its_own_world_model(trained_run):
    tmp, cfg, _ = trained_run
    sets = ["--set", f"storage.model_repository={tmp / 'repo'}", "--set", f"storage.checkpoint_dir={tmp / 'ckpt'}",
            "--set", "search.rollout=world", "--set", "worlds.model=version"]
    blend = [s.replace("search.rollout=world", "search.world_share=0.5") for s in sets]
    # uniform: version 1's untrained world model; the blend: play-outs and world values together
    for seat, how in (("v2", sets), ("uniform", sets), ("v2", blend)):
        done = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", seat, "--b", "expert",
                               "--rounds", "2", "--search", "easy", "--json", *how],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["deals"] == 2
    path = tmp / "repo" / "blobnet" / "2" / "model.onnx"
    refused = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", str(path), "--b", "expert",
                              "--rounds", "1", "--search", "easy", *sets], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "is no version: name it v<N>" in refused.stderr
    missing = subprocess.run([sys.executable, "-m", "blobzero.cli", "arena", "--a", "v9", "--b", "expert",
                              "--rounds", "1", *sets], capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "model version 9" in missing.stderr


def test_the_world_value_learning_curve_is_drawn_from_the_versions_manifests(trained_run, tmp_path):
    from blobzero.strength import manifests, plot_world
    tmp, _, _ = trained_run
    found = manifests(tmp / "ckpt" / "versions")
    assert all("world_loss" in m and "world_new_loss" in m for m in found.values())
    out = plot_world(found, tmp_path / "world_curve.png")
    assert out is not None and (tmp_path / "world_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_world({1: {"version": 1, "rounds_seen": 0}}, tmp_path / "none.png") is None


def test_without_labelled_worlds_no_world_model_is_trained_or_published(records, tmp_path):
    from trainer.service import Trainer
    for setting in ("selfplay.leaf_worlds=0", "selfplay.rollout=none"):
        where = tmp_path / setting.split("=")[0].replace(".", "_")
        cfg = trainer_setup(where, [to_proto(r, "t", model_version=1) for r in records[:12]], setting)
        trainer = Trainer(cfg)
        assert trainer.world is None
        assert trainer.run(steps=10) == 0
        assert not (where / "repo" / "blobworld").exists()
        assert not list((where / "ckpt" / "versions").glob("*.world.onnx"))


def test_the_rounds_own_deals_train_the_world_model_without_any_play_out(records, tmp_path):
    """trainer.world_games (the pure profile): self-play keeps no labelled leaves, yet every
    round's own deal and outcome is a world, so the world model is trained and published; and
    self-play on world values (labelled by expert for the purpose) counts as labelled too."""
    from trainer.service import Trainer
    protos = [to_proto(r, "t", model_version=1) for r in records[:20]]
    for p in protos:
        del p.leaf_worlds[:]
    cfg = trainer_setup(tmp_path / "games_only", protos, "selfplay.leaf_worlds=0", "trainer.world_games=true",
                        "trainer.world_batch_size=16", "trainer.world_hidden=32", "trainer.world_sample_reuse=8")
    trainer = Trainer(cfg)
    assert trainer.world is not None
    assert trainer.run(steps=20) == 0
    assert trainer.world.worlds_seen == 20 and trainer.world.steps == 8 * 20 // 16
    assert sorted(p.name for p in (tmp_path / "games_only" / "repo" / "blobworld").iterdir())[-1] == "config.pbtxt"
    on_worlds = trainer_setup(tmp_path / "world_search", protos[:2], "search.rollout=world", "worlds.model=version")
    assert Trainer(on_worlds).world is not None


def test_a_search_on_world_values_still_labels_worlds_with_expert_play_outs(trained_run):
    """Self-play that values its leaves by world values plays no play-outs; the worlds its
    reservoir keeps are played out by expert for the purpose, so the model keeps learning."""
    from selfplay_client.world_values import WorldEvaluator
    tmp, _, _ = trained_run
    evaluator = WorldEvaluator(UniformEvaluator(), tmp / "repo" / "blobworld" / "3" / "model.onnx")
    config = SearchConfig(determinizations=2, simulations=12, rollout="world", leaf_samples=K)
    search = PooledSearch(evaluator, config, itertools.islice(round_specs(9, 4, 5), 6), n_games=6)
    search.run()
    done = search.finished()
    assert all(len(r["leaf_worlds"]) == K for r in done)
    for rec in done:
        for world in rec["leaf_worlds"]:
            assert not _world(rec, world).is_terminal
            end = _world(rec, world, after=len(world["path"]) - world["leaf"])
            assert end.is_terminal and np.allclose(world["scores"], [x / 15 for x in end.scores()])
    worlds, bad = from_records([to_proto(r, "t") for r in done])
    assert bad == [] and len(worlds) == K * 6


def test_asked_directly_version_world_values_answer_with_the_newest_version(trained_run):
    from plumbing.model_repository import ModelVersions
    from plumbing.netspec import WORLD_MODEL_NAME
    from selfplay_client.world_values import OrtWorldValues, VersionWorldValues
    tmp, _, _ = trained_run
    values = VersionWorldValues(ModelVersions(tmp / "repo", tmp / "ckpt" / "versions", model_name=WORLD_MODEL_NAME))
    worlds, _ = from_records([to_proto(r, "t") for r in trainer_records(tmp)[:2]])
    x, _, _ = worlds.encode()
    newest = OrtWorldValues(tmp / "ckpt" / "versions" / "v000003.world.onnx").world_values(x)
    assert np.array_equal(values.world_values(x), newest)
    assert values.for_agent(__import__("blobzero.arena").arena.Agent("uniform", uniform=True)) is values.version(1)
