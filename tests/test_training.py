"""Training pieces on real self-play data: examples, the window, losses, the trainer service."""
import itertools

import numpy as np
import pytest

from blobcore import Round, encode
from blobcore.search_config import PLAIN
from plumbing.config import load
from plumbing.records import to_proto
from plumbing.shards import ShardWriter
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs
from trainer.examples import BadRecord, concat, from_record
from trainer.window import Window, window_capacity


@pytest.fixture(scope="module")
def protos():
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), itertools.islice(round_specs(11, 4, (3, 6)), 40),
                          n_games=20)
    search.run()
    return [to_proto(r, "t", model_version=1) for r in search.finished()]


def test_examples_re_encode_each_searched_decision(protos):
    rec = protos[0]
    ex = from_record(rec)
    assert len(ex) == len(rec.decisions)
    rnd = dealt(rec)
    decisions = {d.ply: d for d in rec.decisions}
    row = 0
    for ply, action in enumerate(rec.actions):
        if ply in decisions:
            obs, mask = encode(rnd)
            np.testing.assert_array_equal(ex.states[row], obs)
            np.testing.assert_array_equal(ex.masks[row], mask)
            d = decisions[ply]
            assert ex.policy[row].sum() == pytest.approx(1.0)
            assert set(np.flatnonzero(ex.policy[row])) <= set(np.flatnonzero(mask))
            # value target: final normalised scores, rotated so the mover is seat 0
            expected = np.roll(np.array(rec.scores) / (10 + rec.cards), -d.player)
            np.testing.assert_allclose(ex.value[row, :rec.n_players], expected, rtol=1e-6)
            assert ex.seats[row].sum() == rec.n_players
            row += 1
        rnd.apply(action)


def test_all_views_give_every_seat_an_example_of_each_decision(protos):
    """all_views (searcher-perspective search): per decision, the mover's view first, then each
    other seat's view of the same position, with the mover's policy target and the value and
    trick targets rotated to the observer."""
    rec = protos[1]
    n = rec.n_players
    ex = from_record(rec, all_views=True)
    mover_only = from_record(rec)
    assert len(ex) == n * len(rec.decisions)
    np.testing.assert_array_equal(ex.states[::n], mover_only.states)
    rnd = dealt(rec)
    decisions = {d.ply: d for d in rec.decisions}
    row = 0
    for ply, action in enumerate(rec.actions):
        if ply in decisions:
            d = decisions[ply]
            for k in range(n):
                observer = (d.player + k) % n
                obs, mask = encode(rnd, observer=observer)
                np.testing.assert_array_equal(ex.states[row], obs)
                np.testing.assert_array_equal(ex.masks[row], mask)
                np.testing.assert_array_equal(ex.policy[row], mover_only.policy[row // n])
                expected = np.roll(np.array(rec.scores) / (10 + rec.cards), -observer)
                np.testing.assert_allclose(ex.value[row, :n], expected, rtol=1e-6)
                np.testing.assert_array_equal(ex.tricks[row, :n], np.roll(rnd_final_tricks(rec), -observer))
                row += 1
        rnd.apply(action)


def dealt(rec) -> Round:
    """The record's round before its first action."""
    return Round.from_deal([list(h.cards) for h in rec.hands], None if rec.trump == 4 else rec.trump,
                           rec.dealer)


def rnd_final_tricks(rec) -> list[int]:
    rnd = dealt(rec)
    for action in rec.actions:
        rnd.apply(action)
    return rnd.tricks_won


def test_inconsistent_records_are_rejected(protos):
    bad = type(protos[0])()
    bad.CopyFrom(protos[0])
    bad.scores[0] = 99
    with pytest.raises(BadRecord, match="scores"):
        from_record(bad)
    bad.CopyFrom(protos[0])
    bad.actions[-1] = 51 if bad.actions[-1] != 51 else 50
    with pytest.raises(BadRecord):
        from_record(bad)


def test_window_keeps_the_newest_positions(protos):
    ex = concat([from_record(r) for r in protos])
    window = Window(100)
    window.add(ex)
    assert len(window) == 100
    np.testing.assert_array_equal(window.store.states[(window.next - 1) % 100], ex.states[-1])
    window.capacity = 10
    sample = window.sample(500, np.random.default_rng(0))
    newest = {ex.states[-k].tobytes() for k in range(1, 11)}
    assert {row.tobytes() for row in sample.states} <= newest
    assert window_capacity(0, 1000, 5000, 0.5) == 1000
    assert window_capacity(4000, 1000, 5000, 0.5) == 2000
    assert window_capacity(10**6, 1000, 5000, 0.5) == 5000


def test_losses_use_one_log_softmax_and_learn(protos):
    import torch
    from trainer.blobnet import build
    from trainer.losses import losses
    ex = concat([from_record(r) for r in protos])
    net = build("tiny", seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    first = None
    for _ in range(150):
        p, v, k = losses(net, ex)
        if first is None:
            first = (p.item(), v.item(), k.item())
        opt.zero_grad()
        (p + v + k).backward()
        opt.step()
    p, v, k = losses(net, ex)
    # cross-entropy is bounded below by the targets' entropy: compare the KL parts
    t = ex.policy
    entropy = float(-(t * np.log(np.where(t > 0, t, 1))).sum(1).mean())
    assert p.item() - entropy < 0.7 * (first[0] - entropy)
    assert v.item() < 0.7 * first[1]
    assert k.item() < 0.7 * first[2]


def trainer_setup(tmp_path, records, *overrides: str):
    """The config of a tiny trainer in ``tmp_path`` (``overrides`` last) whose games directory
    holds ``records`` in shards of 10."""
    cfg = load(None, [f"storage.games_dir={tmp_path / 'games'}",
                      f"storage.model_repository={tmp_path / 'repo'}",
                      f"storage.checkpoint_dir={tmp_path / 'ckpt'}",
                      "network.preset=tiny", "metrics.trainer_port=0", "trainer.batch_size=32",
                      "trainer.min_positions=50", "trainer.window_min=100",
                      "trainer.steps_per_publish=10", "trainer.checkpoint_every=5",
                      "trainer.sample_reuse=100", *overrides], env={})
    writer = ShardWriter(tmp_path / "games", "t", rounds_per_shard=10)
    for rec in records:
        writer.add(rec)
    writer.flush()
    return cfg


def test_trainer_ingests_trains_publishes_and_resumes(tmp_path, protos):
    from trainer.service import Trainer
    cfg = trainer_setup(tmp_path, protos[:30])
    trainer = Trainer(cfg)
    assert trainer.run(steps=25) == 0
    assert trainer.progress.step == 25 and trainer.progress.version == 3   # v1 initial + 2 publishes
    assert sorted(p.name for p in (tmp_path / "repo" / "blobnet").iterdir()) == ["1", "2", "3", "config.pbtxt"]
    assert len(list((tmp_path / "ckpt" / "versions").glob("v??????.onnx"))) == 3
    # each version's world-value model beside it (trainer.world_value), served as blobworld N
    assert len(list((tmp_path / "ckpt" / "versions").glob("v??????.world.onnx"))) == 3
    assert sorted(p.name for p in (tmp_path / "repo" / "blobworld").iterdir()) == ["1", "2", "3", "config.pbtxt"]
    resumed = Trainer(cfg)
    assert resumed.run(steps=30) == 0
    assert resumed.progress.step == 30
    assert resumed.progress.positions_seen == trainer.progress.positions_seen  # nothing re-counted
    assert len(resumed.window) == len(trainer.window)                          # window rebuilt


def test_the_learning_rate_halves_every_half_life_down_to_its_floor():
    from plumbing.config import TrainerSection
    schedule = TrainerSection(learning_rate=0.01, learning_rate_half_life=100, learning_rate_min=1e-3)
    assert schedule.learning_rate_at(0) == 0.01
    assert schedule.learning_rate_at(100) == pytest.approx(0.005)
    assert schedule.learning_rate_at(150) == pytest.approx(0.01 * 0.5 ** 1.5)
    assert schedule.learning_rate_at(400) == 1e-3                  # 0.01 / 16 < the floor
    assert schedule.learning_rate_at(10**9) == 1e-3
    constant = TrainerSection(learning_rate=0.01)                  # half-life 0: today's behaviour
    assert {constant.learning_rate_at(step) for step in (0, 100, 10**9)} == {0.01}


def test_the_trainer_follows_the_schedule_across_a_restart_and_mixes_value_targets(tmp_path, protos):
    """A real trainer with a 10-step half-life: the optimiser's rate (and the exported gauge) at
    steps 10 and, after a restart from the checkpoint, 20 and 30 (floored); the window encodes
    the configured value mix."""
    from trainer.service import Trainer
    cfg = trainer_setup(tmp_path, protos[:10], "trainer.batch_size=16",
                        "trainer.steps_per_publish=100", "trainer.learning_rate=0.01",
                        "trainer.learning_rate_half_life=10", "trainer.learning_rate_min=0.002",
                        "trainer.value_target_search=0.25")

    def rate(trainer) -> float:
        (group,) = trainer.optimizer.param_groups
        assert trainer.metrics.learning_rate._value.get() == group["lr"]
        return group["lr"]

    trainer = Trainer(cfg)
    assert trainer.window.value_weights == (0.75, 0.25)
    assert trainer.run(steps=11) == 0
    assert rate(trainer) == pytest.approx(0.005)                   # step 10 (the 11th) at 0.01 / 2
    resumed = Trainer(cfg)                                        # from the checkpoint of step 11
    assert resumed.run(steps=21) == 0
    assert resumed.metrics.steps._value.get() == 10                # steps 11..20: it resumed
    assert resumed.progress.step == 21 and rate(resumed) == pytest.approx(0.0025)
    again = Trainer(cfg)
    assert again.run(steps=31) == 0
    assert rate(again) == pytest.approx(0.002)                     # 0.00125 floored
    sample = again.window.sample(64, np.random.default_rng(1))
    assert np.isfinite(sample.value).all()


# -- human games mixed in (trainer.human_share) -----------------------------------------------------

def play_human_games(cfg, n: int, seed: int) -> list:
    """``n`` finished 3-player games (from 3 cards) on a real GameHost whose finished games the real
    ``HumanGames`` writer stores where the trainer looks for them: seat 1 a person making random
    legal moves, ``expert`` and ``greedy`` around it. Returns the written shards' records."""
    import random

    from blobcore.players import PLAYERS
    from blobzero.agent.games import GameHost, Seat
    from blobzero.agent.humangames import HumanGames
    from plumbing.shards import decode_shard

    writer = HumanGames.from_config(cfg)
    keys = []
    host = GameHost(lambda rnd, seat, s: PLAYERS["expert"](rnd, None),
                    on_finished=lambda hosted: keys.append(writer.write(hosted)))
    rng = random.Random(seed)
    for game in range(n):
        hosted = host.start(3, 3, [Seat("expert"), Seat("human"), Seat("greedy")], seed=seed + game)
        while not hosted.over:
            host.act(hosted.id, 1, rng.choice(hosted.round.legal_actions()))
    assert len(keys) == n and all(keys)
    return [r for key in keys for r in decode_shard(writer.store.get(key))]


def test_the_trainer_mixes_human_games_in_at_its_share(tmp_path, protos, caplog):
    """trainer.human_share = 0.25 with a batch of 32: before any human game the trainer trains on
    self-play alone and says so once; then games played on a real GameHost and written by the real
    HumanGames writer are ingested through the shard reader and index, and 8 rows of every batch
    (its last) are exactly human positions — the move taken as the policy target — the other 24
    self-play positions; a restart puts them back without counting them twice."""
    import logging

    from blobzero.agent.humangames import human_games_location
    from trainer.service import Trainer
    cfg = trainer_setup(tmp_path, protos[:30], "trainer.human_share=0.25", "trainer.steps_per_publish=100")
    assert human_games_location(cfg) == str(tmp_path / "human_games")
    caplog.set_level(logging.INFO, logger="blobzero.train")

    trainer = Trainer(cfg)
    assert trainer.run(steps=4) == 0                       # no human game yet: trains as before
    assert trainer.progress.step == 4 and trainer.progress.samples_trained == 4 * 32
    assert trainer._sample_batch()[1] == 0
    assert trainer.metrics.human_window._value.get() == 0
    said = [r.getMessage() for r in caplog.records if "no human games" in r.getMessage()]
    assert len(said) == 1 and str(tmp_path / "human_games") in said[0], said

    records = play_human_games(cfg, 3, seed=40)
    assert len({r.client_id for r in records}) == 3                    # human-<game id>, one per game
    assert len(list((tmp_path / "human_games").rglob("human-*/*.shard"))) == 3
    human = concat([from_record(r, all_views=trainer.all_views) for r in records])
    human_rows = {(s.tobytes(), p.tobytes()) for s, p in zip(human.states, human.policy)}
    assert (human.policy.max(axis=1) == 1).all()          # imitation: the move taken, all of it

    caplog.clear()
    resumed = Trainer(cfg)
    assert resumed.run(steps=10) == 0                      # ingests the human games, trains 6 steps
    assert resumed.progress.human_positions_seen == len(human) == len(resumed.human.window)
    assert resumed.metrics.human_window._value.get() == len(human)
    assert resumed.progress.samples_trained == 4 * 32 + 6 * 24       # sample_reuse counts self-play rows
    assert resumed.progress.positions_seen == trainer.progress.positions_seen
    [line] = [r.getMessage() for r in caplog.records if "human games (" in r.getMessage()]
    assert line.startswith(f"ingested 3 human games ({len(human)} positions): {len(human)} human positions "
                           f"in the window; 8 of each batch of 32")
    assert not [r for r in caplog.records if "no human games" in r.getMessage()]
    for _ in range(5):
        batch, n_human = resumed._sample_batch()
        assert n_human == 8 and len(batch) == 32
        rows = [(s.tobytes(), p.tobytes()) for s, p in zip(batch.states, batch.policy)]
        assert all(row in human_rows for row in rows[-8:])
        assert not any(row in human_rows for row in rows[:-8])
        assert np.isfinite(batch.value).all() and np.allclose(batch.policy.sum(axis=1), 1)

    again = Trainer(cfg)                                  # restart: the human window comes back
    assert again.run(steps=12) == 0
    assert len(again.human.window) == len(human) and again.progress.human_positions_seen == len(human)
    assert again.progress.samples_trained == 4 * 32 + 8 * 24


def test_without_human_share_the_trainer_never_reads_human_games(tmp_path, protos):
    from trainer.service import Trainer
    cfg = trainer_setup(tmp_path, protos[:30])
    play_human_games(cfg, 1, seed=7)
    trainer = Trainer(cfg)
    assert trainer.human is None and trainer.run(steps=2) == 0
    assert trainer.progress.human_positions_seen == 0 and trainer._sample_batch()[1] == 0
    assert trainer.metrics.human_window._value.get() == 0
