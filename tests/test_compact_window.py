"""The compact window: the same training rows as from_record, bit for bit, at a fraction of the
memory; malformed records cost only themselves; the ring keeps the newest rows."""
import itertools

import numpy as np
import pytest

from blobcore import Round, encode_view_into
from blobcore.search_config import PLAIN
from plumbing.records import to_proto
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs
from trainer.compact_window import CompactWindow, pack_records
from trainer.examples import FIELDS, Examples, concat, from_record

#: (players, (fewest, most) cards): every table size, small and the biggest deals
TABLES = [(3, (1, 17)), (4, (1, 13)), (5, (5, 10)), (6, (1, 8)), (7, (4, 7)), (8, (1, 6))]


@pytest.fixture(scope="module")
def records():
    out = []
    for i, (n, cards) in enumerate(TABLES):
        specs = itertools.islice(round_specs(100 + 17 * i, n, cards), 6)
        search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), specs, n_games=6)
        search.run()
        out += [to_proto(r, "t", model_version=1) for r in search.finished()]
    return out


def with_context(rec, seed: int):
    """A copy of ``rec`` played as round k of a full game (random but valid context)."""
    rng = np.random.default_rng(seed)
    copy = type(rec)()
    copy.CopyFrom(rec)
    n_rounds = int(rng.integers(2, 30))
    copy.game.round_index = int(rng.integers(0, n_rounds))
    copy.game.n_rounds = n_rounds
    copy.game.next_cards = int(rng.integers(0, 18))
    copy.game.scores_before.extend(int(x) for x in rng.integers(0, 200, rec.n_players))
    copy.game.game_id = seed
    return copy


def reference_rows(rec, value_target_search: float = 0.0) -> Examples:
    """from_record's rows (all views), with the record's game context applied to the Round
    before encoding (what from_record does once records carry the context)."""
    ex = from_record(rec, all_views=True, value_target_search=value_target_search)
    if not rec.HasField("game"):
        return ex
    g = rec.game
    rnd = Round.from_deal([list(h.cards) for h in rec.hands], None if rec.trump == 4 else rec.trump,
                          rec.dealer)
    rnd.set_game_context(g.round_index, g.n_rounds, g.next_cards, list(g.scores_before))
    decisions = {d.ply: d for d in rec.decisions}
    row = 0
    for ply, action in enumerate(rec.actions):
        if ply in decisions:
            for k in range(rec.n_players):
                encode_view_into(rnd, (decisions[ply].player + k) % rec.n_players, ex.states[row],
                                 ex.masks[row])
                row += 1
        rnd.apply(action)
    return ex


def all_rows(window: CompactWindow, n: int) -> Examples:
    """Every one of the newest ``n`` rows, oldest first."""
    out = Examples.empty(n)
    return window.encode(*window.rows(np.arange(n, 0, -1)), out)


def assert_same(a: Examples, b: Examples):
    assert len(a) == len(b)
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f


def test_compact_rows_equal_from_record_bit_for_bit(records):
    recs = records + [with_context(r, i) for i, r in enumerate(records[::3])]
    assert {r.n_players for r in recs} == set(range(3, 9))
    assert max(len(r.hands[0].cards) for r in recs) >= 13
    packed, bad = pack_records(recs, all_views=True)
    assert bad == []
    expected = concat([reference_rows(r) for r in recs])
    assert packed.positions == len(expected) > 1000
    window = CompactWindow(len(expected), views_min=3)
    window.add(packed)
    assert len(window) == len(expected)
    assert_same(all_rows(window, len(expected)), expected)
    # the in-game copies really encode a context (IN_GAME slot 241)
    assert all_rows(window, len(expected)).states[:, 241].max() == 1.0


def test_mover_only_rows_equal_from_record(records):
    packed, bad = pack_records(records[:12], all_views=False)
    expected = concat([from_record(r) for r in records[:12]])
    window = CompactWindow(10_000)
    window.add(packed)
    assert not bad and len(window) == len(expected)
    assert_same(all_rows(window, len(expected)), expected)


def corrupt(rec, how: str):
    bad = type(rec)()
    bad.CopyFrom(rec)
    if how == "scores":
        bad.scores[0] += 1
    elif how == "action":
        bad.actions[-1] = 51 if bad.actions[-1] != 51 else 50
    elif how == "player":
        bad.decisions[0].player = (bad.decisions[0].player + 1) % bad.n_players
    elif how == "visits":
        bad.decisions[-1].actions[0] = 51 if bad.decisions[-1].actions[0] != 51 else 50
    elif how == "zero visits":
        for i in range(len(bad.decisions[0].visits)):
            bad.decisions[0].visits[i] = 0
    elif how == "short":
        del bad.actions[-1]
    elif how == "duplicate card":
        bad.hands[1].cards[0] = bad.hands[0].cards[0]
    elif how == "card 99":
        bad.hands[0].cards[0] = 99
    elif how == "structure":
        del bad.hands[0]
    elif how == "empty":
        bad.Clear()
    elif how == "context":
        bad.game.n_rounds = 3
        bad.game.round_index = 5
    elif how == "overflow":
        bad.actions[3] = 2**32 - 1
    return bad


HOW = ["scores", "action", "player", "visits", "zero visits", "short", "duplicate card", "card 99",
       "structure", "empty", "context", "overflow"]


def test_malformed_records_cost_only_themselves(records):
    good = records[:10]
    mixed = []
    for i, rec in enumerate(good):
        mixed.append(rec)
        mixed.append(corrupt(rec, HOW[i % len(HOW)]))
    mixed += [corrupt(records[10 + k], how) for k, how in enumerate(HOW[10:])]
    packed, bad = pack_records(mixed, all_views=True)
    assert packed.rounds == len(good)
    assert len(bad) == len(mixed) - len(good)
    # the reason is from_record's for every record it rejects
    assert any("scores" in b for b in bad) and any("is to move" in b for b in bad)
    assert any("illegal actions" in b for b in bad) and any("game context" in b for b in bad)
    window = CompactWindow(100_000, views_min=3)
    window.add(packed)
    assert_same(all_rows(window, len(window)), concat([from_record(r, all_views=True) for r in good]))


def test_huge_visit_totals_match_numpy(records):
    rec = type(records[0])()
    rec.CopyFrom(records[0])
    for i in range(len(rec.decisions[0].visits)):
        rec.decisions[0].visits[i] = 3_000_000_007 + 12_345 * i
    packed, bad = pack_records([rec], all_views=False)
    window = CompactWindow(1000)
    window.add(packed)
    assert not bad
    assert_same(all_rows(window, len(window)), from_record(rec))


def test_ring_keeps_the_newest_rows_and_samples_only_the_capacity(records):
    packed, _ = pack_records(records, all_views=True)
    expected = concat([from_record(r, all_views=True) for r in records])
    window = CompactWindow(300, views_min=3)
    for lo in range(0, len(records), 5):            # several adds wrap every ring
        part, _ = pack_records(records[lo:lo + 5], all_views=True)
        window.add(part)
    assert len(window) == 300
    assert_same(all_rows(window, 300), Examples(*(getattr(expected, f)[-300:] for f in FIELDS)))
    window.capacity = 10
    sample = window.sample(400, np.random.default_rng(0))
    newest = {expected.states[-k].tobytes() + expected.value[-k].tobytes() for k in range(1, 11)}
    assert {s.tobytes() + v.tobytes() for s, v in zip(sample.states, sample.value)} == newest
    assert packed.positions > 300


def test_round_ring_bounds_liveness():
    """With fewer round slots than rounds added, rows whose round was overwritten are never
    sampled: the window reports only rows whose round is still stored."""
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), itertools.islice(round_specs(5, 4, 1), 1500),
                          n_games=256)
    search.run()
    recs = [to_proto(r, "t") for r in search.finished()]
    packed, bad = pack_records(recs, all_views=True)
    assert not bad
    window = CompactWindow(20_000, views_min=4)
    assert window.round_cap < len(recs)
    window.add(packed)
    live = len(window)
    assert 0 < live < packed.positions
    expected = concat([from_record(r, all_views=True) for r in recs])
    assert_same(all_rows(window, live), Examples(*(getattr(expected, f)[-live:] for f in FIELDS)))


def test_memory_per_position_is_small():
    window = CompactWindow(1_000_000, views_min=3)
    assert window.bytes_per_position < 80          # vs ~1,500 bytes as encoded float32 rows
    assert CompactWindow(1_000_000, views_min=1).bytes_per_position < 200


# -- value targets mixing the outcome and the search's root value (issue 18) -------------------

def without_root_values(rec, zeroed: bool = False):
    """A copy of ``rec`` whose decisions have no root value (an older record), or all zeros (a
    built-in seat's imitation decision, blobcore/search/pool.pyx _record_builtin), at every other ply."""
    copy = type(rec)()
    copy.CopyFrom(rec)
    for d in copy.decisions[::2]:
        del d.root_value[:]
        if zeroed:
            d.root_value.extend([0.0] * copy.n_players)
    return copy


@pytest.mark.parametrize("alpha", [0.5, 0.3, 1.0])
def test_mixed_value_targets_equal_from_record_bit_for_bit(records, alpha):
    recs = (records + [with_context(r, i) for i, r in enumerate(records[::4])]
            + [without_root_values(r, zeroed=i % 2 == 1) for i, r in enumerate(records[1::5])])
    packed, bad = pack_records(recs, all_views=True)
    assert not bad and np.isfinite(packed.d_value[:, 0]).mean() > 0.8
    expected = concat([reference_rows(r, alpha) for r in recs])
    window = CompactWindow(len(expected), views_min=3, value_target_search=alpha)
    window.add(packed)
    assert_same(all_rows(window, len(expected)), expected)
    outcome = concat([reference_rows(r) for r in recs])
    assert not np.array_equal(expected.value, outcome.value)          # the mix changes targets
    assert_same(Examples(*(getattr(expected, f) for f in FIELDS[:3]), outcome.value,
                         expected.seats, expected.tricks), outcome)   # ... and nothing else
    mover = concat([from_record(r, value_target_search=alpha) for r in recs])
    window = CompactWindow(len(mover), value_target_search=alpha)
    window.add(pack_records(recs, all_views=False)[0])
    assert_same(all_rows(window, len(mover)), mover)


def outcome_targets(rec, all_views: bool) -> np.ndarray:
    """Today's value targets of ``rec``, computed here: final normalised scores rotated so the
    observer is seat 0 (seats past N: 0)."""
    n = rec.n_players
    scores = np.array(rec.scores, np.float32) / np.float32(10 + len(rec.hands[0].cards))
    rows = []
    for d in sorted(rec.decisions, key=lambda d: d.ply):
        for k in range(n if all_views else 1):
            row = np.zeros(8, np.float32)
            row[:n] = np.roll(scores, -((d.player + k) % n))
            rows.append(row)
    return np.array(rows, np.float32)


def test_alpha_zero_is_the_outcome_and_a_decision_without_root_value_keeps_it(records):
    rec = next(r for r in records[5:] if all(any(d.root_value) for d in r.decisions))
    n = rec.n_players
    today = outcome_targets(rec, all_views=True)
    assert from_record(rec, all_views=True).value.tobytes() == today.tobytes()
    assert from_record(rec, all_views=True, value_target_search=0.0).value.tobytes() == today.tobytes()
    for zeroed in (False, True):
        partial = without_root_values(rec, zeroed)
        mixed = from_record(partial, all_views=True, value_target_search=0.5).value
        packed, _ = pack_records([partial], all_views=True)
        window = CompactWindow(len(mixed), views_min=3, value_target_search=0.5)
        window.add(packed)
        assert all_rows(window, len(mixed)).value.tobytes() == mixed.tobytes()
        kept = np.zeros(len(mixed), bool)     # the rows of every other decision (from the first)
        for i in range(0, len(rec.decisions), 2):
            kept[i * n:(i + 1) * n] = True
        assert mixed[kept].tobytes() == today[kept].tobytes()
        assert not np.array_equal(mixed[~kept], today[~kept])
        assert np.isnan(packed.d_value[::2]).all() and np.isfinite(packed.d_value[1::2]).all()


def test_a_mixed_target_by_hand(records):
    """α = 0.5, a decision seen by the seat after the mover: each target is the mean of that
    seat's outcome and the search's value, seats counted from the observer (root_value is by
    absolute seat: blobcore/search/pool.pyx keeps value_acc by absolute seat)."""
    rec = next(r for r in records if r.n_players == 4)
    d = sorted(rec.decisions, key=lambda d: d.ply)[2]
    assert len(d.root_value) == 4 and any(d.root_value)
    ex = from_record(rec, all_views=True, value_target_search=0.5)
    row = ex.value[2 * 4 + 1]                        # decision 2, view 1: seat mover + 1
    observer = (d.player + 1) % 4
    cards = len(rec.hands[0].cards)
    for i in range(4):
        seat = (observer + i) % 4
        assert row[i] == pytest.approx(0.5 * rec.scores[seat] / (10 + cards)
                                       + 0.5 * d.root_value[seat], rel=1e-6)
    assert not row[4:].any()
    assert ex.tricks.tobytes() == from_record(rec, all_views=True).tricks.tobytes()
    with pytest.raises(ValueError, match="value_target_search"):
        from_record(rec, value_target_search=1.5)
