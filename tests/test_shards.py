"""Game shards: crash-safe writes, version-homogeneous files, corrupt files quarantined."""
import itertools

import pytest

from blobcore.search_config import PLAIN
from plumbing.records import to_proto
from plumbing.shards import CorruptShard, ShardReader, ShardWriter, decode_shard, encode_shard
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs


@pytest.fixture(scope="module")
def records():
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), itertools.islice(round_specs(3), 24), n_games=12)
    search.run()
    return search.finished()


def test_round_trip(records):
    protos = [to_proto(r, "client-a", model_version=3) for r in records]
    back = decode_shard(encode_shard(protos))
    assert back == protos
    first = back[0]
    assert first.model_version == 3 and first.client_id == "client-a"
    assert list(first.actions) == records[0]["actions"]
    assert first.search.simulations == PLAIN.sized("light").simulations
    assert [list(h.cards) for h in first.hands] == records[0]["hands"]
    d = first.decisions[0]
    assert dict(zip(d.actions, d.visits)) == records[0]["decisions"][0]["visits"]


def test_writer_names_sequences_and_splits_by_version(tmp_path, records):
    writer = ShardWriter(tmp_path, "host/1 weird id", rounds_per_shard=5)
    for i, record in enumerate(records[:12]):
        writer.add(to_proto(record, "c", model_version=1 if i < 7 else 2))
    assert writer.flush() is None                       # the last shard was full: written by add
    # one naming for a directory and a bucket: <client>/<seq>-v<version>.shard
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host-1-weird-id"]
    names = sorted(p.name for p in (tmp_path / "host-1-weird-id").iterdir())
    assert names == ["00000000-v000001.shard", "00000001-v000001.shard", "00000002-v000002.shard"]
    reader = ShardReader(tmp_path)
    assert [s.path.key for s in reader.list()] == [f"host-1-weird-id/{n}" for n in names]
    assert [len(reader.read(s.path)) for s in reader.list()] == [5, 2, 5]
    assert [s.version for s in reader.list()] == [1, 1, 2]
    again = ShardWriter(tmp_path, "host/1 weird id")        # a restart continues the sequence
    assert again.seq == 3


def test_reader_skips_temporary_files_and_quarantines_corrupt_shards(tmp_path, records):
    writer = ShardWriter(tmp_path, "c", rounds_per_shard=100)
    for record in records[:6]:
        writer.add(to_proto(record, "c", model_version=1))
    good = writer.flush()
    assert good == "c/00000000-v000001.shard"
    (tmp_path / "c" / ".00000009-v000001.shard.tmp").write_bytes(b"partial")
    truncated = "c/00000001-v000001.shard"
    (tmp_path / truncated).write_bytes((tmp_path / good).read_bytes()[:-40])
    garbage = "c/00000002-v000001.shard"
    (tmp_path / garbage).write_bytes(b"not gzip at all")
    reader = ShardReader(tmp_path)
    assert [s.path.key for s in reader.list()] == sorted([good, truncated, garbage],
                                                          key=lambda k: (tmp_path / k).stat().st_mtime)
    assert len(reader.read(good)) == 6
    assert reader.read(truncated) == [] and reader.read(garbage) == []
    quarantine = tmp_path / "quarantine" / "c"
    assert sorted(p.name for p in quarantine.iterdir()) == [
        "00000001-v000001.shard", "00000001-v000001.shard.reason",
        "00000002-v000001.shard", "00000002-v000001.shard.reason"]
    assert "gzip" in (quarantine / "00000002-v000001.shard.reason").read_text()
    assert [s.path.key for s in reader.list()] == [good]


def test_shards_of_the_old_naming_are_renamed_once_and_read(tmp_path, records):
    """A games directory of a run before the one naming (games-v<version>-<client>-<seq>.shard
    at the top): opening it renames them to <client>/<seq>-v<version>.shard, same bytes, and a
    writer of the same client continues after them."""
    old = {f"games-v000001-alpha-{seq:08d}.shard": encode_shard(
        [to_proto(r, "alpha", model_version=1) for r in records[seq * 3:seq * 3 + 3]]) for seq in range(2)}
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)
    reader = ShardReader(tmp_path)
    assert [s.path.key for s in reader.list()] == ["alpha/00000000-v000001.shard",
                                                   "alpha/00000001-v000001.shard"]
    assert (tmp_path / "alpha/00000001-v000001.shard").read_bytes() == \
        old["games-v000001-alpha-00000001.shard"]
    assert not list(tmp_path.glob("games-v*"))
    assert ShardWriter(tmp_path, "alpha").seq == 2
    assert ShardReader(tmp_path).list() == reader.list()      # idempotent


def test_old_named_shards_on_a_read_only_directory_are_not_read_and_said_so(tmp_path, records):
    import subprocess
    import sys

    from test_faults import PROJECT_ROOT, read_only
    games = tmp_path / "games"
    games.mkdir()
    (games / "games-v000001-alpha-00000000.shard").write_bytes(
        encode_shard([to_proto(records[0], "alpha", model_version=1)]))
    script = ("import logging, sys; logging.basicConfig(); from plumbing.shards import ShardReader; "
              "print(len(ShardReader(sys.argv[1]).list()))")
    with read_only(games) as prefix:
        res = subprocess.run([*prefix, sys.executable, "-c", script, str(games)], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "0"
    assert "1 shards in" in res.stderr and "cannot be renamed to <client>/<seq>-v<version>.shard" in res.stderr
    assert (games / "games-v000001-alpha-00000000.shard").exists()


def test_decode_rejects_bad_content():
    import gzip
    with pytest.raises(CorruptShard, match="header"):
        decode_shard(gzip.compress(b"hello"))
    from plumbing.shards import MAGIC
    with pytest.raises(CorruptShard, match="past the end"):
        decode_shard(gzip.compress(MAGIC + b"\x05ab"))


def test_only_complete_rounds_are_recorded(records):
    partial = dict(records[0], complete=False, scores=None)
    with pytest.raises(ValueError, match="complete"):
        to_proto(partial, "c")
