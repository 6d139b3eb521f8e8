"""The trainer's sliding window, stored compactly: rounds once, decisions as a few bytes.

``trainer/window.py`` kept every training row as encoded float32 arrays (≈1.5 KB per row); at
GPU-box rates the window must hold millions of rows. Here each **round** is stored once (deal
as 8 bit masks, actions, dealer/trump, full-game context, final value/trick targets: 220 bytes)
and each searched **decision** as ply, mover, its sparse policy target and its search root value
(≈140 bytes); a row is a (decision, view) pair (5 bytes). A batch is made by replaying each
sampled row's round to its ply and encoding it in C (``blobcore.replay.encode_rows``), bit for
bit the row ``trainer.examples.from_record`` makes (tests/test_compact_window.py).
``bytes_per_position`` reports what it costs; ``blobzero bench train`` measures it.

The window stores the outcome and the search value apart and mixes them when it encodes a batch
(``value_target_search``, as ``from_record``), so what it holds does not depend on the mix.

Sampling is uniform (with replacement) over the newest ``capacity`` rows, as in ``Window``:
``capacity = min(window_max, max(window_min, window_growth × positions seen))``.

Records are checked when packed (``pack_records``): a malformed record costs that record, and
its reason is the same ``BadRecord`` text ``from_record`` gives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blobcore import replay
from blobcore.rules import NO_TRUMP
from plumbing import records_pb2
from trainer.examples import (VALUE_SEATS, BadRecord, Examples, check_structure, from_record,
                              search_values, value_weights)

MAX_DEC = replay.MAX_DECISION_ACTIONS
MAX_ACTIONS = replay.MAX_ROUND_ACTIONS
CTX = replay.CONTEXT_COLUMNS
#: Round slots per decision slot. Rounds average >= 4 searched decisions at every table we play
#: (a 4-player 5-card round ~20, a full game's rounds ~10); if they averaged fewer, the round
#: ring would hold fewer than window_max rows (``len`` counts only rows whose round is stored).
ROUNDS_PER_DECISION = 0.25


@dataclass
class CompactRounds:
    """Checked rounds and their searched decisions, packed (layouts: ``blobcore/replay.pyx``).

    views: training rows per decision (N seats with all views, else 1), per decision (D,)."""
    hands: np.ndarray       # (R, 8) uint64
    meta: np.ndarray        # (R, 4) int8
    actions: np.ndarray     # (R, 60) uint8
    ctx: np.ndarray         # (R, 11) int32
    value: np.ndarray       # (R, 8) float32
    tricks: np.ndarray      # (R, 8) int8
    d_round: np.ndarray     # (D,) int32, index into the round arrays
    d_ply: np.ndarray       # (D,) uint8
    d_player: np.ndarray    # (D,) uint8
    d_n: np.ndarray         # (D,) uint8
    d_actions: np.ndarray   # (D, 18) uint8
    d_probs: np.ndarray     # (D, 18) float32
    d_value: np.ndarray     # (D, 8) float32 search root value by absolute seat; NaN row = none
    views: np.ndarray       # (D,) uint8

    @property
    def rounds(self) -> int:
        return len(self.hands)

    @property
    def positions(self) -> int:
        return int(self.views.sum())


ROUND_FIELDS = ("hands", "meta", "actions", "ctx", "value", "tricks")
DECISION_FIELDS = ("d_round", "d_ply", "d_player", "d_n", "d_actions", "d_probs", "d_value")
_ROUND_SHAPES = {"hands": ((8,), np.uint64), "meta": ((4,), np.int8),
                 "actions": ((MAX_ACTIONS,), np.uint8), "ctx": ((CTX,), np.int32),
                 "value": ((VALUE_SEATS,), np.float32), "tricks": ((VALUE_SEATS,), np.int8)}
_DECISION_SHAPES = {"d_round": ((), np.int32), "d_ply": ((), np.uint8), "d_player": ((), np.uint8),
                    "d_n": ((), np.uint8), "d_actions": ((MAX_DEC,), np.uint8),
                    "d_probs": ((MAX_DEC,), np.float32), "d_value": ((VALUE_SEATS,), np.float32)}


def _alloc(shapes: dict, n: int) -> dict[str, np.ndarray]:
    return {name: np.zeros((n, *shape), dtype) for name, (shape, dtype) in shapes.items()}


def _bad_reason(rec: records_pb2.RoundRecord) -> str:
    """The reason ``from_record`` rejects ``rec`` (the compact check found it bad)."""
    try:
        from_record(rec)
    except Exception as exc:  # BadRecord, or whatever else a malformed record provokes
        return str(exc) if isinstance(exc, BadRecord) else f"{type(exc).__name__}: {exc}"
    return "rejected by the compact replay check"


def _game_context(rec: records_pb2.RoundRecord, n: int) -> list[int] | None:
    """[round_index, n_rounds, next_cards, scores...] of an in-game round, None if standalone;
    raises BadRecord if the context cannot describe a game."""
    if not rec.HasField("game"):
        return None
    g = rec.game
    if not (0 <= g.round_index < g.n_rounds <= 32767 and g.next_cards <= 32767
            and len(g.scores_before) == n):
        raise BadRecord(f"game context round {g.round_index} of {g.n_rounds}, next cards "
                        f"{g.next_cards}, {len(g.scores_before)} scores for {n} players")
    return [g.round_index, g.n_rounds, g.next_cards, *g.scores_before]


def _unpack(rec: records_pb2.RoundRecord):
    """(n_players, cards, hand masks, game context or None,
    {ply: (player, actions, visits, root values)})
    of one record, read once; raises BadRecord with ``check_structure``'s or ``from_record``'s
    reason when the record is malformed (the replay itself is checked in C afterwards)."""
    n = rec.n_players
    n_act = len(rec.actions)
    decisions = {}
    ok = 3 <= n <= VALUE_SEATS and len(rec.hands) == n and len(rec.scores) == n
    if ok:
        for d in rec.decisions:            # check_structure's conditions, each field read once
            acts = list(d.actions)
            m = len(acts)
            if (d.ply >= n_act or d.player >= n or not m or len(d.visits) != m
                    or max(acts) >= 52 or len(set(acts)) != m):
                ok = False
                break
            # a repeated ply: the last
            decisions[d.ply] = (d.player, acts, list(d.visits), list(d.root_value))
    if not ok:
        check_structure(rec)                # raises, naming the problem
        raise BadRecord("malformed record")
    hands = [list(h.cards) for h in rec.hands]
    cards = len(hands[0])
    masks = [0] * n
    for seat, hand in enumerate(hands):
        for c in hand:
            masks[seat] |= 1 << c if c < 52 else 1 << 63
    deal_ok = (all(len(h) == cards for h in hands) and 1 <= cards <= 52 // n
               and rec.dealer < n and rec.trump <= NO_TRUMP
               and all(m < 1 << 52 and m.bit_count() == cards for m in masks)
               and sum(masks).bit_count() == n * cards and n_act <= MAX_ACTIONS
               and all(len(acts) <= MAX_DEC for _, acts, _, _ in decisions.values()))
    if not deal_ok:
        raise BadRecord(_bad_reason(rec))
    return n, cards, masks, _game_context(rec, n), decisions


def pack_records(records: list[records_pb2.RoundRecord], all_views: bool
                 ) -> tuple[CompactRounds, list[str]]:
    """Check and pack ``records``; returns (the usable rounds, one reason per bad record as
    ``"record <i>: <why>"``). Records without searched decisions are usable but give no rows."""
    n_rec = len(records)
    rounds = _alloc(_ROUND_SHAPES, n_rec)
    n_actions = np.zeros(n_rec, np.int16)
    scores = np.zeros((n_rec, VALUE_SEATS), np.int32)
    max_dec = sum(len(r.decisions) for r in records)
    dec = _alloc(_DECISION_SHAPES, max_dec)
    visits = np.zeros((max_dec, MAX_DEC), np.uint32)
    n_value = np.zeros(max_dec, np.int64)
    dec_start = np.zeros(n_rec + 1, np.int64)
    bad: dict[int, str] = {}
    k = 0
    for i, rec in enumerate(records):
        dec_start[i] = k
        try:
            n, cards, masks, context, decisions = _unpack(rec)
        except BadRecord as exc:
            bad[i] = str(exc)
            continue
        except Exception as exc:  # whatever else a malformed record provokes
            bad[i] = f"{type(exc).__name__}: {exc}"
            continue
        rounds["hands"][i, :n] = masks
        rounds["meta"][i] = (n, cards, rec.dealer, rec.trump)
        acts = [a if a < 255 else 255 for a in rec.actions]     # >= 52 is illegal anyway
        rounds["actions"][i, :len(acts)] = acts
        n_actions[i] = len(acts)
        scores[i, :n] = [min(max(x, -2**31), 2**31 - 1) for x in rec.scores]
        if context is not None:
            rounds["ctx"][i, :len(context)] = context
        for ply in sorted(decisions):
            player, d_acts, d_visits, d_value = decisions[ply]
            m = len(d_acts)
            dec["d_round"][k] = i
            dec["d_ply"][k] = ply
            dec["d_player"][k] = player
            dec["d_n"][k] = m
            dec["d_actions"][k, :m] = d_acts
            visits[k, :m] = d_visits
            n_value[k] = len(d_value)
            if len(d_value) <= VALUE_SEATS:
                dec["d_value"][k, :len(d_value)] = d_value
            k += 1
    dec_start[n_rec] = k
    return _finish(rounds, n_actions, scores, dec, visits, n_value, dec_start, k, bad,
                   lambda i: _bad_reason(records[i]), all_views)


def _finish(rounds: dict, n_actions, scores, dec: dict, visits, n_value, dec_start, k: int,
            bad: dict, reason, all_views: bool) -> tuple[CompactRounds, list[str]]:
    """The part of packing after the records are read: replay-check every round in C, turn
    visits into policy targets and recorded root values (``dec["d_value"]``, the first of
    ``n_value`` (D,) entries each) into search values, drop the bad rounds. ``reason(i)`` names
    why record i fails the replay check."""
    n_rec = len(n_actions)
    for name in dec:
        dec[name] = dec[name][:k]
    search_values(dec["d_value"], n_value[:k], rounds["meta"][dec["d_round"], 0])
    exact = np.ones(k, np.uint8)
    status = np.array([-1 if i in bad else 0 for i in range(n_rec)], np.int32)
    replay.check_rounds(rounds["hands"], rounds["meta"], rounds["actions"], n_actions, scores,
                        dec_start, dec["d_ply"], dec["d_player"], dec["d_n"], dec["d_actions"],
                        visits[:k], dec["d_probs"], exact, rounds["value"], rounds["tricks"], status)
    for i in np.flatnonzero(status > 0):
        if i not in bad:
            bad[int(i)] = reason(int(i))
    for j in np.flatnonzero(exact == 0):      # huge visit totals: numpy's float32 arithmetic
        m = dec["d_n"][j]
        v = visits[j, :m].astype(np.float32)
        dec["d_probs"][j, :m] = v / v.sum()
    good = np.array([i not in bad for i in range(n_rec)], bool)
    new_index = np.cumsum(good) - 1
    keep_dec = good[dec["d_round"]]
    packed = {name: a[good] for name, a in rounds.items()}
    packed.update({name: a[keep_dec] for name, a in dec.items()})
    packed["d_round"] = new_index[packed["d_round"]].astype(np.int32)
    n_views = packed["meta"][packed["d_round"], 0].astype(np.uint8) if all_views else \
        np.ones(len(packed["d_round"]), np.uint8)
    reasons = [f"record {i}: {why}" for i, why in sorted(bad.items())]
    return CompactRounds(**packed, views=n_views), reasons


def pack_shard(blob: bytes, all_views: bool) -> tuple[CompactRounds, list[str], int]:
    """``pack_records(decode_shard(blob))`` without a protobuf object per record: the records
    are parsed from the wire bytes in C (``pack_fast``), bit for bit the same arrays. A shard
    the fast path does not vouch for in full (a malformed or unusual record) goes through
    protobuf and ``pack_records``, which names the problem; a corrupt shard raises
    ``CorruptShard`` as ``decode_shard`` does. Returns (packed, bad-record reasons, records)."""
    import gzip
    import zlib

    from plumbing.shards import MAGIC, decode_shard

    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error):
        raw = b""
    fast = pack_fast(raw, all_views) if raw.startswith(MAGIC) else None
    if fast is not None:
        return fast
    records = decode_shard(blob)           # raises CorruptShard saying what is wrong
    return (*pack_records(records, all_views=all_views), len(records))


def pack_fast(raw: bytes, all_views: bool) -> tuple[CompactRounds, list[str], int] | None:
    """``pack_shard``'s fast path on a gunzipped shard (``raw`` starts with the shard header):
    every record parsed from the wire bytes in C (``blobcore/shardparse.pyx``); None when the
    framing is broken or a record is one the fast path does not vouch for."""
    from blobcore import shardparse
    from plumbing.shards import MAGIC

    data = np.frombuffer(raw, np.uint8)
    try:
        starts, ends, n_dec = shardparse.frame(data, len(MAGIC))
    except ValueError:
        return None
    n_rec = len(starts)
    rounds = _alloc(_ROUND_SHAPES, n_rec)
    n_actions = np.zeros(n_rec, np.int16)
    scores = np.zeros((n_rec, VALUE_SEATS), np.int32)
    dec_start = np.zeros(n_rec + 1, np.int64)
    np.cumsum(n_dec, out=dec_start[1:])
    k = int(dec_start[-1])
    dec = _alloc(_DECISION_SHAPES, k)
    visits = np.zeros((k, MAX_DEC), np.uint32)
    n_value = np.zeros(k, np.uint8)
    flags = np.zeros(n_rec, np.uint8)
    if shardparse.parse(data, starts, ends, dec_start, rounds["hands"], rounds["meta"],
                        rounds["actions"], n_actions, scores, rounds["ctx"], dec["d_round"],
                        dec["d_ply"], dec["d_player"], dec["d_n"], dec["d_actions"], visits,
                        dec["d_value"], n_value, flags):
        return None

    def reason(i: int) -> str:
        record = records_pb2.RoundRecord()
        record.ParseFromString(raw[starts[i]:ends[i]])
        return _bad_reason(record)

    return (*_finish(rounds, n_actions, scores, dec, visits, n_value, dec_start, k, {}, reason,
                     all_views), n_rec)


class CompactWindow:
    """Ring buffers of rounds, decisions and rows; only the newest ``capacity`` rows are sampled.

    window_max: rows (positions) held at most. views_min: fewest rows one decision makes (the
    number of players, 3, with all views; 1 otherwise), which sizes the decision ring so it can
    always back window_max rows. value_target_search: α in [0, 1], the search root value's
    share of the value targets it encodes (``from_record``'s argument)."""

    def __init__(self, window_max: int, views_min: int = 1, value_target_search: float = 0.0):
        self.max = int(window_max)
        self.value_weights = value_weights(value_target_search)    # (outcome, search) float32
        self.dec_cap = -(-self.max // views_min) + 1
        self.round_cap = max(1024, int(self.dec_cap * ROUNDS_PER_DECISION))
        self.r = _alloc(_ROUND_SHAPES, self.round_cap)
        self.r_first_dec = np.zeros(self.round_cap, np.int64)   # serial of its first decision
        self.d = _alloc(_DECISION_SHAPES, self.dec_cap)
        self.d_first_row = np.zeros(self.dec_cap, np.int64)     # serial of its first row
        self.rows_dec = np.zeros(self.max, np.int32)            # decision slot of each row
        self.rows_view = np.zeros(self.max, np.uint8)
        self.rounds_total = self.decs_total = self.rows_total = 0     # serials handed out
        self.capacity = self.max

    # -- size ------------------------------------------------------------------------------
    def _live_rows(self) -> int:
        """Rows whose decision and round are still stored (a suffix of everything added)."""
        first_dec = max(0, self.decs_total - self.dec_cap)
        if self.rounds_total > self.round_cap:
            oldest_round = (self.rounds_total - self.round_cap) % self.round_cap
            first_dec = max(first_dec, int(self.r_first_dec[oldest_round]))
        first_row = max(0, self.rows_total - self.max)
        if first_dec < self.decs_total:
            first_row = max(first_row, int(self.d_first_row[first_dec % self.dec_cap]))
        else:
            first_row = self.rows_total
        return self.rows_total - first_row

    def __len__(self) -> int:
        return min(self.capacity, self._live_rows())

    @property
    def nbytes(self) -> int:
        """Bytes of every array the window holds (allocated up front)."""
        arrays = [*self.r.values(), *self.d.values(), self.r_first_dec, self.d_first_row,
                  self.rows_dec, self.rows_view]
        return sum(a.nbytes for a in arrays)

    @property
    def bytes_per_position(self) -> float:
        """Bytes per row at full capacity (window_max rows)."""
        return self.nbytes / self.max

    # -- add -------------------------------------------------------------------------------
    def add(self, packed: CompactRounds) -> None:
        """Append checked rounds (from ``pack_records``); the oldest rows fall out."""
        n_r, n_d = packed.rounds, len(packed.d_round)
        if n_r == 0 or n_d == 0:
            return
        r_slots = (self.rounds_total + np.arange(n_r)) % self.round_cap
        d_slots = (self.decs_total + np.arange(n_d)) % self.dec_cap
        for name in ROUND_FIELDS:
            self.r[name][r_slots] = getattr(packed, name)
        # decisions are in round order: a round's first decision (for a round without any, the
        # next round's first: a bound just as good, since that round is newer)
        first = np.searchsorted(packed.d_round, np.arange(n_r))
        self.r_first_dec[r_slots] = self.decs_total + first
        for name in DECISION_FIELDS:
            self.d[name][d_slots] = getattr(packed, name)
        self.d["d_round"][d_slots] = r_slots[packed.d_round]
        views = packed.views.astype(np.int64)
        starts = self.rows_total + np.concatenate(([0], np.cumsum(views)[:-1]))
        self.d_first_row[d_slots] = starts
        n_rows = int(views.sum())
        rows_dec = np.repeat(d_slots, views)
        rows_view = np.arange(n_rows) - np.repeat(starts - self.rows_total, views)
        if n_rows > self.max:                   # keep only the newest max rows
            rows_dec, rows_view = rows_dec[-self.max:], rows_view[-self.max:]
        row_slots = (self.rows_total + n_rows - len(rows_dec) + np.arange(len(rows_dec))) % self.max
        self.rows_dec[row_slots] = rows_dec
        self.rows_view[row_slots] = rows_view
        self.rounds_total += n_r
        self.decs_total += n_d
        self.rows_total += n_rows

    # -- sample ----------------------------------------------------------------------------
    def rows(self, back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(decision slots, views) of the rows ``back`` places from the newest (1 = newest)."""
        slots = (self.rows_total - back) % self.max
        return self.rows_dec[slots], self.rows_view[slots]

    def encode(self, rows_dec: np.ndarray, rows_view: np.ndarray, out: Examples) -> Examples:
        """Encode the given rows into ``out`` (its first len(rows_dec) rows)."""
        r, d = self.r, self.d
        replay.encode_rows(r["hands"], r["meta"], r["actions"], r["ctx"], r["value"], r["tricks"],
                           d["d_round"], d["d_ply"], d["d_player"], d["d_n"], d["d_actions"],
                           d["d_probs"], d["d_value"], *self.value_weights,
                           np.ascontiguousarray(rows_dec, np.int32),
                           np.ascontiguousarray(rows_view, np.uint8), out.states, out.masks,
                           out.policy, out.value, out.seats, out.tricks)
        return out

    def sample(self, batch: int, rng: np.random.Generator, out: Examples | None = None) -> Examples:
        """``batch`` rows drawn uniformly (with replacement) from the newest ``len(self)``,
        encoded into ``out`` (e.g. pinned staging buffers) or new arrays."""
        size = len(self)
        if size == 0:
            raise ValueError("the window is empty")
        back = rng.integers(1, size + 1, size=batch)
        out = out if out is not None else Examples.empty(batch)
        return self.encode(*self.rows(back), out)
