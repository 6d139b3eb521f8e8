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
    writer.flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["games-v000001-host-1-weird-id-00000000.shard",
                     "games-v000001-host-1-weird-id-00000001.shard",
                     "games-v000002-host-1-weird-id-00000002.shard"]
    reader = ShardReader(tmp_path)
    assert [len(reader.read(s.path)) for s in reader.list()] == [5, 2, 5]
    again = ShardWriter(tmp_path, "host/1 weird id")        # a restart continues the sequence
    assert again.seq == 3


def test_reader_skips_temporary_files_and_quarantines_corrupt_shards(tmp_path, records):
    writer = ShardWriter(tmp_path, "c", rounds_per_shard=100)
    for record in records[:6]:
        writer.add(to_proto(record, "c", model_version=1))
    good = writer.flush()
    (tmp_path / ".games-v000001-c-00000009.shard.tmp").write_bytes(b"partial")
    truncated = tmp_path / "games-v000001-c-00000001.shard"
    truncated.write_bytes(good.read_bytes()[:-40])
    garbage = tmp_path / "games-v000001-c-00000002.shard"
    garbage.write_bytes(b"not gzip at all")
    reader = ShardReader(tmp_path)
    listed = [s.path.name for s in reader.list()]
    assert ".games-v000001-c-00000009.shard.tmp" not in listed and len(listed) == 3
    assert len(reader.read(good)) == 6
    assert reader.read(truncated) == [] and reader.read(garbage) == []
    quarantine = tmp_path / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == sorted([
        truncated.name, truncated.name + ".reason", garbage.name, garbage.name + ".reason"])
    assert "gzip" in (quarantine / (garbage.name + ".reason")).read_text()
    assert [s.path.name for s in reader.list()] == [good.name]


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
