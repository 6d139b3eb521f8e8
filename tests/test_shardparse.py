"""The trainer's fast ingest (blobcore/shardparse.pyx via trainer/compact_window.pack_shard):
records parsed from the wire bytes in C give the same arrays, bad-record reasons and errors as
protobuf + ``pack_records``, on real records of every table, full-game context, every kind of
malformed record, other valid encodings of the same message, and randomly damaged shards; and
it reaches the ingest target (issue 19: >= 50k rounds per CPU-second)."""
import gzip
import struct
import time

import numpy as np
import pytest

from plumbing.shards import MAGIC, CorruptShard, _varint, decode_shard, encode_shard
from trainer.compact_window import (DECISION_FIELDS, ROUND_FIELDS, pack_fast, pack_records,
                                    pack_shard)
from test_compact_window import HOW, corrupt, records, with_context  # noqa: F401 (fixture)

FIELDS = ROUND_FIELDS + DECISION_FIELDS + ("d_probs", "views")


def both(blob: bytes, all_views: bool = True):
    """(fast, slow) results, each (arrays..., reasons, records) or the CorruptShard text."""
    try:
        fast = pack_shard(blob, all_views=all_views)
    except CorruptShard as exc:
        fast = f"corrupt: {exc}"
    try:
        records = decode_shard(blob)
        slow = (*pack_records(records, all_views=all_views), len(records))
    except CorruptShard as exc:
        slow = f"corrupt: {exc}"
    return fast, slow


def assert_same(fast, slow):
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    (a, bad_a, n_a), (b, bad_b, n_b) = fast, slow
    assert (bad_a, n_a) == (bad_b, n_b)
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), field


@pytest.mark.parametrize("all_views", [True, False])
def test_real_records_of_every_table_parse_identically(records, all_views):
    fast, slow = both(encode_shard(records), all_views)
    assert_same(fast, slow)
    assert fast[0].rounds == len(records) and not fast[1]


def test_full_game_context_parses_identically(records):
    assert_same(*both(encode_shard([with_context(r, i) for i, r in enumerate(records)])))


@pytest.mark.parametrize("how", HOW)
def test_a_malformed_record_gets_the_same_reason(records, how):
    mixed = records[:3] + [corrupt(records[3], how)] + records[4:6]
    fast, slow = both(encode_shard(mixed))
    assert_same(fast, slow)
    assert len(fast[1]) == 1 and fast[0].rounds == 5


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _decision(d, root_value: bytes) -> bytes:
    """A Decision's bytes with its root values written as ``root_value`` (field 6) instead."""
    copy = type(d)()
    copy.CopyFrom(d)
    del copy.root_value[:]
    return root_value + copy.SerializeToString()


def _unpacked(rec) -> bytes:
    """The same RoundRecord written differently: repeated scalars unpacked (wire type 0, legal
    proto3 too; root values as one fixed32 each, wire type 5, or packed in two runs), fields
    in another order, unknown fields added."""
    out = bytearray()
    out += _key(99, 0) + _varint(7)                                   # an unknown varint field
    for value in rec.actions:
        out += _key(6, 0) + _varint(value)
    for i, d in enumerate(rec.decisions):
        values = [struct.pack("<f", v) for v in d.root_value]
        if i % 2:
            first, rest = b"".join(values[:1]), b"".join(values[1:])
            root = (_key(6, 2) + _varint(len(first)) + first
                    + _key(6, 2) + _varint(len(rest)) + rest)
        else:
            root = b"".join(_key(6, 5) + v for v in values)
        body = _decision(d, root)
        out += _key(7, 2) + _varint(len(body)) + body
    for h in rec.hands:
        body = b"".join(_key(1, 0) + _varint(c) for c in h.cards)
        out += _key(5, 2) + _varint(len(body)) + body
    for s in rec.scores:
        out += _key(8, 0) + _varint(s & (2**64 - 1))
    out += _key(3, 0) + _varint(rec.dealer) + _key(4, 0) + _varint(rec.trump)
    out += _key(1, 0) + _varint(rec.n_players) + _key(2, 0) + _varint(rec.cards)
    out += _key(98, 2) + _varint(3) + b"xyz"                          # an unknown string field
    return bytes(out)


def _shard_of(messages: list[bytes]) -> bytes:
    raw = MAGIC + b"".join(_varint(len(m)) + m for m in messages)
    return gzip.compress(raw, mtime=0)


def test_other_valid_encodings_parse_identically(records):
    blob = _shard_of([_unpacked(r) for r in records[:8]])
    fast, slow = both(blob)
    assert_same(fast, slow)
    assert fast[0].rounds == 8 and not fast[1]
    assert pack_fast(gzip.decompress(blob), all_views=True) is not None   # the C parse vouched
    assert np.isfinite(fast[0].d_value[:, 0]).mean() > 0.8    # ... for the search values too


def test_root_values_of_any_count_or_wire_type_agree_with_protobuf(records):
    """Root values that are not one per seat, and a field 6 written as a varint (protobuf keeps
    it as an unknown field): the same arrays either way; none of them is a search value."""
    rec = records[2]
    d0, d1, d2 = rec.decisions[:3]
    n = rec.n_players
    odd = {0: b"".join(_key(6, 5) + struct.pack("<f", 0.25) for _ in range(n - 1)),
           1: b"".join(_key(6, 5) + struct.pack("<f", 0.25) for _ in range(9)),
           2: _key(6, 0) + _varint(3)}
    raw = rec.SerializeToString()
    for i, d in enumerate((d0, d1, d2)):
        body, new = d.SerializeToString(), _decision(d, odd[i])
        raw = raw.replace(_key(7, 2) + _varint(len(body)) + body,
                          _key(7, 2) + _varint(len(new)) + new, 1)
    fast, slow = both(_shard_of([raw, records[3].SerializeToString()]))
    assert_same(fast, slow)
    assert not fast[1] and np.isnan(fast[0].d_value[:3]).all()
    assert np.isfinite(fast[0].d_value[3:, 0]).any()


@pytest.mark.parametrize("value", ["puct", "expert", "mover"])
def test_a_string_that_is_not_utf8_fails_as_through_protobuf(records, value):
    """Every string field of the search settings (root, rollout, perspective) with one byte made
    invalid UTF-8: protobuf refuses the record, so the fast path must refuse it the same way."""
    rec = type(records[0])()
    rec.CopyFrom(records[0])
    rec.search.root, rec.search.rollout, rec.search.perspective = "puct", "expert", "mover"
    raw = rec.SerializeToString()
    at = raw.index(value.encode())
    damaged = raw[:at] + b"\xcf" + raw[at + 1:]
    blob = _shard_of([records[1].SerializeToString(), damaged])
    fast, slow = both(blob)
    assert_same(fast, slow)
    assert isinstance(slow, str) and "does not parse" in slow


def test_damaged_shards_fail_or_parse_exactly_as_through_protobuf(records):
    """Random damage to the uncompressed bytes (then compressed again, so gzip's CRC does not
    catch it): the fast path agrees with protobuf + pack_records every time."""
    raw = gzip.decompress(encode_shard(records[:6]))
    rng = np.random.default_rng(19)
    outcomes = set()
    for trial in range(300):
        damaged = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(len(MAGIC), len(damaged)))
            damaged[pos] = int(rng.integers(0, 256))
        if trial % 7 == 0:
            damaged = damaged[:int(rng.integers(len(MAGIC), len(damaged)))]
        fast, slow = both(gzip.compress(bytes(damaged), mtime=0))
        assert_same(fast, slow)
        outcomes.add("corrupt" if isinstance(fast, str) else ("bad" if fast[1] else "ok"))
    assert outcomes == {"corrupt", "bad", "ok"}
    assert_same(*both(encode_shard(records[:3])[:-5]))                # truncated gzip
    assert_same(*both(gzip.compress(b"not a shard")))                 # no header
    assert both(encode_shard([]))[0][2] == 0                          # an empty shard


def test_ingest_reaches_fifty_thousand_rounds_per_cpu_second(records):
    blob = encode_shard((records * 20)[:512])
    pack_shard(blob, all_views=True)
    best = 0.0
    for _ in range(3):
        started = time.process_time()
        for _ in range(5):
            packed, bad, n = pack_shard(blob, all_views=True)
        elapsed = time.process_time() - started
        best = max(best, 5 * n / elapsed)
    assert not bad and best >= 50_000, f"{best:.0f} rounds per CPU-second"
