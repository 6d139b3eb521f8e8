"""Human games as training data (opt-in), bounded at both ends: the agent's writer keys each game
by when it was written and its retention (``agent.keep_human_games``, ``agent.keep_human_games_days``)
deletes the oldest; the trainer finds them incrementally (``trainer/human_index.py``: a listing of
the days and one per open day, cursors that move only over settled keys) and reads only the newest
games its window holds. On real files and on a real S3 API server on loopback (moto), through
real GameHosts, the real trainer and a real ``blobzero agent`` process."""
from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timezone

import pytest

from blobcore.players import PLAYERS
from blobzero.agent.games import GameHost, Seat
from blobzero.agent.humangames import HumanGames, key_for, key_time
from plumbing.shards import ShardReader, decode_shard, encode_shard
from plumbing.storage import open_store
from test_object_storage import s3  # noqa: F401  (a real S3 API server on loopback, bucket blobzero)
from test_training import protos  # noqa: F401  (the module-scoped fixture: real self-play records)
from trainer.human_index import HumanGamesIndex

NOON = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc).timestamp()
DAY = 86_400.0


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path, s3):
    return str(tmp_path / "human_games") if request.param == "local" else \
        f"s3://blobzero/human-{time.time_ns()}"


def finished_games(n: int, seed: int, writer: HumanGames, when: list[float]) -> list[str]:
    """``n`` finished 3-player games (from 2 cards), seat 1 a person making random legal moves,
    written by ``writer`` as if at ``when[i]``; their keys."""
    keys = []
    clock = iter(when)
    host = GameHost(lambda rnd, seat, s: PLAYERS["expert"](rnd, None),
                    on_finished=lambda hosted: keys.append(writer.write(hosted, now=next(clock))))
    rng = random.Random(seed)
    for game in range(n):
        hosted = host.start(3, 2, [Seat("expert"), Seat("human"), Seat("greedy")], seed=seed + game)
        while not hosted.over:
            host.act(hosted.id, 1, rng.choice(hosted.round.legal_actions()))
    assert len(keys) == n
    return keys


def test_keys_sort_by_the_time_they_were_written():
    assert key_for(NOON) == "human-20261207/43200000-v000000.shard"
    assert key_for(NOON + 12 * 3600 - 1) == "human-20261207/86399000-v000000.shard"
    assert key_for(NOON + 12 * 3600) == "human-20261208/00000000-v000000.shard"
    assert key_time(key_for(NOON + 1.5)) == pytest.approx(NOON + 1.5)
    assert key_time("quarantine/" + key_for(NOON)) == NOON
    assert key_time("human-0123456789abcdef/00000000-v000000.shard") is None
    assert sorted(key_for(NOON + 3600 * h) for h in (30, -30, 0, 13)) == \
        [key_for(NOON + 3600 * h) for h in (-30, 0, 13, 30)]


def test_retention_bounds_the_human_games(location):
    """keep_games and keep_days on real files and in a bucket: oldest first, a directory's emptied
    day folders go too (never today's), bad shards in quarantine/ count; two games in one
    millisecond get two keys."""
    writer = HumanGames(location, keep_games=4, keep_days=2.5)
    when = [NOON - 4 * DAY, NOON - 3 * DAY, NOON - 2 * DAY, NOON - DAY, NOON - 60, NOON, NOON]
    keys = finished_games(len(when), 11, writer, when)
    assert keys[-1] == key_for(NOON, 1) and keys[-2] == key_for(NOON)       # the same millisecond
    assert [k.split("/")[0] for k in keys] == ["human-20261203", "human-20261204", "human-20261205",
                                               "human-20261206", "human-20261207", "human-20261207",
                                               "human-20261207"]
    store = open_store(location)
    assert [e.key for e in store.list()] == sorted(keys)                    # no temporary names left
    for key in keys:
        [record, *_] = decode_shard(store.get(key))
        assert record.client_id.startswith("human-") and len(record.client_id) == 22
    store.put("quarantine/" + key_for(NOON - 10 * DAY), b"bad")            # the trainer moved it there
    # older than 2.5 days: 2 games and the quarantined one; then one over keep_games = 4
    assert writer.prune(now=NOON) == 4
    assert [e.key for e in store.list()] == sorted(keys[3:])
    assert writer.prune(now=NOON) == 0
    writer.keep_games = 2
    assert writer.prune(now=NOON + DAY) == 2      # the count: the oldest go
    assert [e.key for e in store.list()] == keys[-2:]
    assert [c for c in store.children() if c != "quarantine"] == ["human-20261207"]   # emptied folders go
    writer.keep_games = writer.keep_days = 0                               # 0: no limit
    assert writer.prune(now=NOON + 1000 * DAY) == 0


def test_games_of_the_first_layout_move_to_their_day(location):
    store = open_store(location)
    blob = encode_shard(HumanGames.records(_one_game()))
    store.put("human-0123456789abcdef/00000000-v000000.shard", blob)
    writer = HumanGames(location)
    assert writer.migrate() == 1 and writer.migrate() == 0
    [entry] = store.list()
    assert entry.key.startswith("human-20") and abs(key_time(entry.key) - time.time()) < 600
    assert store.get(entry.key) == blob and store.children() == [entry.key.split("/")[0]]


def _one_game():
    host = GameHost(lambda rnd, seat, s: PLAYERS["greedy"](rnd, None))
    hosted = host.start(3, 1, [Seat("human"), Seat("greedy"), Seat("expert")], single_round=True, seed=2)
    rng = random.Random(2)
    while not hosted.over:
        host.act(hosted.id, 0, rng.choice(hosted.round.legal_actions()))
    return hosted


def test_the_trainer_lists_human_games_incrementally(location):
    """The index the trainer scans with: one listing of the days plus one per open day, whatever
    the history; a game landing out of order (another replica, within SETTLE_S) is still found;
    a restart from the saved cursors reads nothing twice; a day the retention deleted leaves the
    cursors."""
    writer = HumanGames(location, keep_games=0, keep_days=2.5)
    now = [NOON]
    index = HumanGamesIndex(ShardReader(location), clock=lambda: now[0])
    cursors, recent = {}, []

    def scan() -> list[str]:
        shards = index.scan(cursors, recent)
        index.settle(cursors, recent, shards)
        return [s.name for s in shards]

    old = finished_games(4, 21, writer, [NOON - 3 * DAY, NOON - 3 * DAY + 1, NOON - 2 * DAY, NOON - DAY])
    fresh = finished_games(2, 31, writer, [NOON - 600, NOON - 60])
    assert scan() == sorted(old + fresh) and index.listings == 1 + 4          # the days, 4 days
    assert recent == [fresh[1]]                  # written 60 s ago: not settled yet
    assert cursors == {k.split("/")[0]: int(k.split("/")[1][:8]) for k in (old[1], old[2], old[3], fresh[0])}

    listed = index.listings
    now[0] = NOON + 120
    late = finished_games(1, 41, HumanGames(location), [NOON - 90])   # another replica: lands after
                                                                     # fresh[1], keyed before it
    new = finished_games(1, 42, writer, [NOON + 100])
    assert scan() == [late[0], new[0]]
    assert index.listings - listed == 1 + 1        # the days, and today only: the other days are closed
    assert scan() == []

    resumed = HumanGamesIndex(ShardReader(location), clock=lambda: now[0])   # a restart, same cursors
    assert resumed.scan(dict(cursors), list(recent)) == []

    now[0] = NOON + 1000
    assert scan() == [] and recent == []           # everything settled under the cursors
    assert writer.prune(now=NOON) == 2             # the two games 3 days old
    assert scan() == [] and "human-20261204" not in cursors


def test_the_trainer_reads_only_the_newest_games_its_window_holds(tmp_path, protos, caplog):
    """A backlog of 12 human games and a human window of 100 positions: the trainer reads the
    newest games until the window is full and passes over the rest; a restart reads none again."""
    from test_training import trainer_setup
    from trainer.service import Trainer
    cfg = trainer_setup(tmp_path, protos[:30], "trainer.human_share=0.25", "trainer.window_max=100",
                        "trainer.steps_per_publish=100")
    writer = HumanGames.from_config(cfg)
    start = time.time() - 3600
    keys = finished_games(12, 51, writer, [start + 60 * i for i in range(12)])
    caplog.set_level(logging.INFO, logger="blobzero.train")
    trainer = Trainer(cfg)
    assert trainer.run(steps=2) == 0
    read = [name for name, _ in trainer.progress.human_window_shards]
    assert 0 < len(read) < 12 and read == keys[len(keys) - len(read):]       # the newest, oldest first
    [line] = [r.getMessage() for r in caplog.records if "human games (" in r.getMessage()]
    assert f"; {12 - len(read)} older or unusable games passed over" in line
    assert len(trainer.human.window) == 100 and trainer.progress.human_cursors    # all settled
    seen = trainer.progress.human_positions_seen
    again = Trainer(cfg)
    assert again.run(steps=4) == 0
    assert again.progress.human_positions_seen == seen and len(again.human.window) == 100


def test_the_agent_records_and_bounds_human_games_in_a_bucket(tmp_path, s3):
    """A real agent on a run in a bucket with ``agent.record_human_games`` and
    ``agent.keep_human_games = 2``: at start it moves a game of the first layout to its day and
    applies the retention (the oldest of three goes); a game played through HTTP is written under
    today's day."""
    from agent_helpers import start_agent
    from test_review import ok, play
    from triton_helpers import export_tiny

    run = f"s3://blobzero/run-{time.time_ns()}"
    location = f"{run}/human_games"
    writer = HumanGames(location)
    old = finished_games(2, 61, writer, [time.time() - 3 * DAY, time.time() - DAY])
    store = open_store(location)
    store.put("human-0123456789abcdef/00000000-v000000.shard", encode_shard(HumanGames.records(_one_game())))
    onnx = export_tiny(tmp_path / "tiny.onnx", seed=6)
    agent = start_agent(tmp_path / "agent", "--onnx", str(onnx), "--set", "agent.record_human_games=true",
                        "--set", "agent.keep_human_games=2", storage=run)
    try:
        kept = [e.key for e in store.list()]
        assert len(kept) == 2 and old[0] not in kept and old[1] in kept      # migrated, then pruned
        state = ok(agent, "StartGame", {"players": 3, "cards": 2, "seed": 5,
                                        "seats": [{"kind": "human"}, {"kind": "expert"}, {"kind": "greedy"}]})
        assert play(agent, state, random.Random(8))["game_over"]
        written = sorted(set(e.key for e in store.list()) - set(kept))
        assert len(written) == 1 and written[0].split("/")[0] == key_for(time.time()).split("/")[0]
        records = decode_shard(store.get(written[0]))
        assert {r.client_id for r in records} == {f"human-{state['game_id']}"}
    finally:
        assert agent.stop() == 0, agent.log.read_text()[-2000:]
    log = agent.log.read_text()
    assert "moved 1 games of the first layout" in log and "retention deleted 1 of 3" in log
