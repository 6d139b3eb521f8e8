"""Storage that does not grow forever: a long synthetic run (thousands of real shard files over
simulated hours, the real trainer's ingest and retention) keeps the disk, the trainer's ingest
state and each scan's work bounded; a restart after retention loses and re-counts nothing;
the data lag is measured from the newest shard on disk."""
import itertools
import os

import pytest

from blobcore.search_config import PLAIN
from plumbing.config import ConfigError, load
from plumbing.records import to_proto
from plumbing.shards import ShardWriter
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs
from trainer.retention import RetentionPolicy, select
from trainer.shard_index import IndexedShard

HOUR = 3600.0
START = 1_800_000_000.0             # simulated unix time of the first shard
CLIENTS = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def records():
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), itertools.islice(round_specs(7, 4, 3), 6), n_games=6)
    search.run()
    return [to_proto(r, "t", model_version=1) for r in search.finished()]


def make_trainer(tmp_path, *overrides):
    from trainer.service import Trainer
    cfg = load(None, [f"storage.games_dir={tmp_path / 'games'}", f"storage.model_repository={tmp_path / 'repo'}",
                      f"storage.checkpoint_dir={tmp_path / 'ckpt'}", "network.preset=tiny",
                      "metrics.trainer_port=0", "trainer.window_min=100", "trainer.window_max=2000",
                      *overrides], env={})
    trainer = Trainer(cfg)
    trainer._check_storage()
    return trainer


class SyntheticRun:
    """Clients writing one-round shards at simulated times; the trainer scanning every 'tick'."""

    def __init__(self, tmp_path, records, trainer):
        self.games = tmp_path / "games"
        self.writers = {c: ShardWriter(self.games, c, rounds_per_shard=1) for c in CLIENTS}
        self.records = itertools.cycle(records)
        self.trainer = trainer
        self.now = START
        trainer.clock = lambda: self.now

    def write(self, n: int, seconds: float) -> None:
        """n shards spread over the next ``seconds`` of simulated time."""
        for i in range(n):
            self.now += seconds / n
            key = self.writers[CLIENTS[i % len(CLIENTS)]].add(next(self.records))
            os.utime(self.games / key, (self.now, self.now))

    def tick(self) -> int:
        """One scan + checkpoint (retention runs from the saved state); returns stats made."""
        before = self.trainer.index.stat_calls
        self.trainer._ingest_new()
        self.trainer._save_checkpoint()
        return self.trainer.index.stat_calls - before

    def files(self) -> list:
        return [p for p in self.games.rglob("*.shard") if "quarantine" not in p.parts]

    def keys(self) -> list[str]:
        """The files' keys: <client>/<seq>-v<version>.shard (plumbing/shards.py)."""
        return [str(p.relative_to(self.games)) for p in self.files()]


def test_long_run_keeps_disk_and_ingest_state_bounded(tmp_path, records):
    trainer = make_trainer(tmp_path, "storage.retain_hours=1", "storage.retain_gb=0")
    run = SyntheticRun(tmp_path, records, trainer)
    per_hour, hours = 128, 16
    sizes, states = [], []
    for hour in range(hours):
        for quarter in range(4):
            run.write(per_hour // 4, HOUR / 4)
            assert run.tick() == per_hour // 4         # stats only the new shards
        sizes.append(len(run.files()))
        states.append((len(trainer.progress.cursors), len(trainer.progress.window_shards),
                       len(trainer.index.present)))
    total = per_hour * hours
    assert trainer.progress.rounds_seen == total       # every shard ingested exactly once
    # bounded: about one hour of shards (+ the window's, + each client's newest) from hour 2 on
    assert max(sizes[2:]) <= per_hour + 40 and max(sizes[2:]) - min(sizes[2:]) <= 10, sizes
    assert all(c == len(CLIENTS) for c, _, _ in states)
    assert max(w for _, w, _ in states) <= 2000 // 40 + 2          # window_max / positions per shard
    assert trainer.index.bytes == sum(p.stat().st_size for p in run.files())
    assert trainer.metrics.shards_deleted._value.get() == total - len(run.files())
    # every shard left is younger than the limit, or needed: window, or a client's newest
    needed = {n for n, _ in trainer.progress.window_shards}
    newest = {max(k for k in run.keys() if k.startswith(f"{c}/")) for c in CLIENTS}
    old = [k for k in run.keys() if run.now - (run.games / k).stat().st_mtime > HOUR]
    assert set(old) <= needed | newest

    # a restart after retention: nothing re-counted, the window refilled from the kept shards
    seen, window = trainer.progress.positions_seen, len(trainer.window)
    again = make_trainer(tmp_path, "storage.retain_hours=1")
    assert again._load_checkpoint()
    again._refill_window()
    again.clock = lambda: run.now
    again._save_checkpoint()            # before its first scan (e.g. publishing version 1 again)
    assert again.progress.cursors == trainer.progress.cursors
    again._ingest_new()
    assert again.progress.positions_seen == seen and len(again.window) == window
    assert again.index.stat_calls == len(run.files())      # the one full listing at start


def test_size_cap_deletes_oldest_ingested_first(tmp_path, records):
    trainer = make_trainer(tmp_path, "storage.retain_hours=0", "storage.retain_gb=0.00004")
    run = SyntheticRun(tmp_path, records, trainer)
    for _ in range(30):
        run.write(20, 60.0)
        run.tick()
    kept = run.files()
    needed = {n for n, _ in trainer.progress.window_shards}
    # under the cap except for what may not be deleted (the window, each client's newest)
    deletable_bytes = sum(p.stat().st_size for p, k in zip(kept, run.keys()) if k not in needed)
    assert deletable_bytes <= 40_000 + 3 * max(p.stat().st_size for p in kept)
    assert len(kept) < 600 and trainer.progress.rounds_seen == 600


def test_data_lag_is_the_age_of_the_newest_shard_on_disk(tmp_path, records):
    trainer = make_trainer(tmp_path)
    run = SyntheticRun(tmp_path, records, trainer)
    run.write(3, 30.0)
    run.tick()
    newest = run.now
    run.now += 1800                                    # self-play silent for half an hour
    trainer._ingest_new()
    assert trainer.metrics.data_lag._value.get() == pytest.approx(1800, abs=1)
    run.write(1, 10.0)                                 # a new shard: lag back to ~0
    trainer._ingest_new()
    assert trainer.metrics.data_lag._value.get() == pytest.approx(0, abs=1)
    assert run.now - newest > 1800


def shard(name, client, seq, mtime, size=100):
    return IndexedShard(name, client, seq, mtime, size)


def test_policy_never_deletes_uningested_needed_or_newest():
    present = {s.name: s for s in [
        shard("a0", "a", 0, 0), shard("a1", "a", 1, 10), shard("a2", "a", 2, 20),
        shard("b0", "b", 0, 5), shard("b1", "b", 1, 15)]}
    cursors = {"a": 1, "b": 1}                      # a2 not ingested yet
    old = select(present, 500, cursors, {"a1"}, now=10 * HOUR, policy=RetentionPolicy(1, 0))
    assert [s.name for s in old] == ["a0", "b0"]    # a1 needed, a2 un-ingested, b1 b's newest
    assert select(present, 500, cursors, set(), 10 * HOUR, RetentionPolicy(0, 0)) == []
    capped = select(present, 500, cursors, set(), now=30, policy=RetentionPolicy(0, 350 / 1e9))
    assert [s.name for s in capped] == ["a0", "b0"]  # oldest first until <= 350 bytes
    assert select(present, 500, {}, set(), 10 * HOUR, RetentionPolicy(1, 0)) == []


@pytest.mark.parametrize("override, key", [("storage.retain_hours=-1", "storage.retain_hours"),
                                           ("storage.retain_gb=-2", "storage.retain_gb"),
                                           ("storage.retain_hours=1e9", "storage.retain_hours")])
def test_retention_settings_are_validated(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load(None, [override], env={})


def test_a_checkpoint_with_the_old_list_of_ingested_names_is_converted():
    from trainer.service import _progress_from
    names = [f"games-v000001-{c}-{s:08d}.shard" for s in range(5) for c in ("a", "b")]
    progress = _progress_from({"step": 7, "positions_seen": 100, "ingested": names + ["junk"]}, 1000)
    assert progress.step == 7 and progress.cursors == {"a": 4, "b": 4}
    # the keys the old names were renamed to (plumbing/shards.py migrate_legacy)
    assert [n for n, _ in progress.window_shards] == [f"{c}/{s:08d}-v000001.shard"
                                                      for s in range(5) for c in ("a", "b")]
    assert progress.is_ingested("a", 4) and not progress.is_ingested("a", 5)
    assert not progress.is_ingested("c", 0)


def test_a_run_of_the_old_naming_resumes_without_counting_anything_twice(tmp_path, records):
    """A games directory and a checkpoint from before the one naming (games-v…-<client>-<seq>
    .shard at the top, window names of that form): the resumed trainer renames the shards,
    refills its window from them, ingests only what is new, and retention still works."""
    from plumbing.shards import legacy_to_key
    trainer = make_trainer(tmp_path, "storage.retain_hours=1")
    run = SyntheticRun(tmp_path, records, trainer)
    run.write(12, 600.0)
    run.tick()
    seen, window = trainer.progress.positions_seen, len(trainer.window)
    # turn it into a run of the old naming: files at the top, old names in the checkpoint
    old_name = {k: f"games-v000001-{k.split('/')[0]}-{k.split('/')[1][:8]}.shard" for k in run.keys()}
    for key, name in old_name.items():
        os.replace(run.games / key, run.games / name)
        assert legacy_to_key(name) == key
    for client in CLIENTS:
        (run.games / client).rmdir()
    trainer.progress.window_shards = [[old_name[k], p] for k, p in trainer.progress.window_shards]
    trainer._save_checkpoint()
    again = make_trainer(tmp_path, "storage.retain_hours=1")
    assert again._load_checkpoint()
    again._refill_window()
    assert len(again.window) == window                       # refilled from the renamed shards
    assert sorted(run.keys()) == sorted(old_name) and not list(run.games.glob("games-v*"))
    again.clock = lambda: run.now
    again._ingest_new()
    assert again.progress.positions_seen == seen             # nothing counted twice
    run.trainer = again
    run.writers = {c: ShardWriter(run.games, c, rounds_per_shard=1) for c in CLIENTS}
    assert {c: w.seq for c, w in run.writers.items()} == {"alpha": 4, "beta": 4, "gamma": 4}
    run.write(3, 60.0)
    run.tick()
    assert again.progress.rounds_seen == trainer.progress.rounds_seen + 3
