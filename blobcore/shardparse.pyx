# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Parse a game shard's ``RoundRecord`` messages straight from protobuf wire bytes into the
compact window's arrays (``blobcore/replay.pyx`` layouts), without a Python object per record.

The trainer's ingest (``trainer/compact_window.py`` ``pack_shard``) calls ``frame`` and then
``parse`` on a gunzipped shard. Only the fields training needs are read (deal, actions,
decisions' sparse visits and root values, scores, the full-game context); the rest is skipped
by wire type.
This is a fast path, not a second definition of a valid record: any record that is not
plainly well formed — a check of ``_unpack`` failing, a field with an unexpected wire type, a
repeated message field, decisions out of ply order, a non-ASCII string — is only *flagged*,
and the caller then packs the whole shard through protobuf and ``pack_records``, which names
the problem. So both paths give bit-identical arrays for every record the fast path accepts
(tests/test_shardparse.py).
"""
from libc.stdint cimport uint64_t, uint8_t, uint32_t, int8_t, int16_t, int32_t, int64_t
from libc.string cimport memcpy

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil

cdef enum:
    MAX_DEC_C = 18
    MAX_ROUND_ACTIONS_C = 60
    SEATS_C = 8
    NO_TRUMP_C = 4


cdef inline bint _varint(const uint8_t* buf, Py_ssize_t end, Py_ssize_t* pos, uint64_t* out) noexcept nogil:
    cdef uint64_t result = 0
    cdef int shift = 0
    cdef uint8_t b
    while pos[0] < end and shift < 64:
        b = buf[pos[0]]
        pos[0] += 1
        result |= (<uint64_t>(b & 0x7F)) << shift
        if not (b & 0x80):
            out[0] = result
            return True
        shift += 7
    return False


cdef inline bint _skip(const uint8_t* buf, Py_ssize_t end, Py_ssize_t* pos, int wire) noexcept nogil:
    cdef uint64_t v
    if wire == 0:
        return _varint(buf, end, pos, &v)
    if wire == 1:
        pos[0] += 8
    elif wire == 5:
        pos[0] += 4
    elif wire == 2:
        if not _varint(buf, end, pos, &v) or v > <uint64_t>(end - pos[0]):
            return False
        pos[0] += <Py_ssize_t>v
    else:
        return False                 # groups (3, 4) and invalid wire types
    return pos[0] <= end


cdef inline bint _ascii(const uint8_t* buf, Py_ssize_t end, Py_ssize_t* pos) noexcept nogil:
    """A length-delimited string of ASCII bytes (what our writers produce); False otherwise."""
    cdef uint64_t n
    cdef Py_ssize_t i
    if not _varint(buf, end, pos, &n) or n > <uint64_t>(end - pos[0]):
        return False
    for i in range(pos[0], pos[0] + <Py_ssize_t>n):
        if buf[i] >= 0x80:
            return False
    pos[0] += <Py_ssize_t>n
    return True


cdef inline bint _search_ok(const uint8_t* buf, Py_ssize_t end, Py_ssize_t* pos) noexcept nogil:
    """Skip a SearchSettings message, checking its strings (perspective 11, rollout 12, root 17, beliefs 25)
    are ASCII: protobuf rejects a string that is not UTF-8, so a damaged one must be flagged."""
    cdef uint64_t n, key
    cdef Py_ssize_t stop
    if not _varint(buf, end, pos, &n) or n > <uint64_t>(end - pos[0]):
        return False
    stop = pos[0] + <Py_ssize_t>n
    while pos[0] < stop:
        if not _varint(buf, stop, pos, &key):
            return False
        if key >> 3 == 0:
            return False
        if key >> 3 == 11 or key >> 3 == 12 or key >> 3 == 17 or key >> 3 == 25:
            if (key & 7) != 2 or not _ascii(buf, stop, pos):
                return False
        elif not _skip(buf, stop, pos, key & 7):
            return False
    return pos[0] == stop


cdef inline Py_ssize_t _repeated(const uint8_t* buf, Py_ssize_t end, Py_ssize_t* pos, int wire,
                                 uint64_t* out, Py_ssize_t have, Py_ssize_t cap) noexcept nogil:
    """Append a repeated varint field's values (packed or not) to ``out[have:cap]``; returns the
    new count, or -1 when malformed or over ``cap``."""
    cdef uint64_t n, v
    cdef Py_ssize_t stop
    if wire == 0:
        if not _varint(buf, end, pos, &v) or have >= cap:
            return -1
        out[have] = v
        return have + 1
    if wire != 2 or not _varint(buf, end, pos, &n) or n > <uint64_t>(end - pos[0]):
        return -1
    stop = pos[0] + <Py_ssize_t>n
    while pos[0] < stop:
        if have >= cap or not _varint(buf, stop, pos, &v):
            return -1
        out[have] = v
        have += 1
    return have


cdef inline Py_ssize_t _floats(const uint8_t* buf, Py_ssize_t end, Py_ssize_t* pos, int wire,
                               float* out, Py_ssize_t have, Py_ssize_t cap) noexcept nogil:
    """Append a repeated float field's values (packed, or one unpacked fixed32) to
    ``out[have:cap]``, counting the ones past ``cap`` without storing them; returns the new
    count, or -1 when malformed (another wire type, a packed length not a multiple of 4)."""
    cdef uint64_t n
    cdef Py_ssize_t stop
    cdef uint32_t bits
    if wire == 5:
        stop = pos[0] + 4
    elif wire == 2 and _varint(buf, end, pos, &n) and n <= <uint64_t>(end - pos[0]) and n % 4 == 0:
        stop = pos[0] + <Py_ssize_t>n
    else:
        return -1
    if stop > end:
        return -1
    while pos[0] < stop:                   # fixed32: little-endian
        bits = (<uint32_t>buf[pos[0]] | (<uint32_t>buf[pos[0] + 1] << 8)
                | (<uint32_t>buf[pos[0] + 2] << 16) | (<uint32_t>buf[pos[0] + 3] << 24))
        if have < cap:
            memcpy(&out[have], &bits, 4)
        have += 1
        pos[0] += 4
    return have


def frame(const uint8_t[::1] raw, Py_ssize_t start):
    """(starts, ends, decisions) int64 arrays of the records of a gunzipped shard from byte
    ``start`` (after the header): each record's payload span and its number of decisions.
    Raises ValueError when the framing is broken (the caller lets decode_shard say how)."""
    import numpy as np
    cdef const uint8_t* buf = &raw[0] if raw.shape[0] else NULL
    cdef Py_ssize_t end = raw.shape[0], pos = start, rec_end, p
    cdef uint64_t length, key
    cdef int64_t ndec
    starts, ends, decisions = [], [], []
    while pos < end:
        if not _varint(buf, end, &pos, &length) or length > <uint64_t>(end - pos):
            raise ValueError(f"bad record framing at byte {pos}")
        rec_end = pos + <Py_ssize_t>length
        p, ndec = pos, 0
        while p < rec_end:
            if not _varint(buf, rec_end, &p, &key):
                break
            if key >> 3 == 7:
                ndec += 1
            if not _skip(buf, rec_end, &p, key & 7):
                break
        starts.append(pos)
        ends.append(rec_end)
        decisions.append(ndec)
        pos = rec_end
    return (np.array(starts, np.int64), np.array(ends, np.int64), np.array(decisions, np.int64))


def parse(const uint8_t[::1] raw, const int64_t[::1] starts, const int64_t[::1] ends,
          const int64_t[::1] dec_start,
          uint64_t[:, ::1] hands, int8_t[:, ::1] meta, uint8_t[:, ::1] actions,
          int16_t[::1] n_actions, int32_t[:, ::1] scores, int32_t[:, ::1] ctx,
          int32_t[::1] d_round, uint8_t[::1] d_ply, uint8_t[::1] d_player, uint8_t[::1] d_n,
          uint8_t[:, ::1] d_actions, uint32_t[:, ::1] visits, float[:, ::1] d_value,
          uint8_t[::1] n_value, uint8_t[::1] flags):
    """Fill the arrays for every record (decisions of record i at rows dec_start[i]..); sets
    ``flags[i] = 1`` for a record the fast path does not vouch for. Returns how many.
    d_value (D, 8) gets each decision's first 8 root values as recorded, n_value (D,) how many
    it recorded (255 for 255 or more); ``trainer.examples.search_values`` judges them."""
    cdef const uint8_t* buf = &raw[0] if raw.shape[0] else NULL
    cdef Py_ssize_t i, flagged = 0
    with nogil:
        for i in range(starts.shape[0]):
            if not _record(buf, starts[i], ends[i], i, dec_start[i], hands, meta, actions,
                           n_actions, scores, ctx, d_round, d_ply, d_player, d_n, d_actions,
                           visits, d_value, n_value):
                flags[i] = 1
                flagged += 1
    return flagged


cdef bint _record(const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t r, int64_t k0,
                  uint64_t[:, ::1] hands, int8_t[:, ::1] meta, uint8_t[:, ::1] actions,
                  int16_t[::1] n_actions, int32_t[:, ::1] scores, int32_t[:, ::1] ctx,
                  int32_t[::1] d_round, uint8_t[::1] d_ply, uint8_t[::1] d_player, uint8_t[::1] d_n,
                  uint8_t[:, ::1] d_actions, uint32_t[:, ::1] visits, float[:, ::1] d_value,
                  uint8_t[::1] n_value) noexcept nogil:
    cdef uint64_t key, v, n_players = 0, dealer = 0, trump = 0
    cdef uint64_t tmp[64]
    cdef uint64_t acts[MAX_ROUND_ACTIONS_C]
    cdef uint64_t score[SEATS_C]
    cdef uint64_t gscore[SEATS_C]
    cdef uint64_t masks[SEATS_C]
    cdef Py_ssize_t hand_len[SEATS_C]
    cdef Py_ssize_t n_hands = 0, n_act = 0, n_scores = 0, n_gscores = 0, m, nv, nr, j, stop, stop2
    cdef int64_t k = k0
    cdef uint64_t round_index = 0, n_rounds = 0, next_cards = 0, seen_acts, union_mask = 0
    cdef uint32_t ply, player, last_ply = 0
    cdef bint has_game = False, any_dec = False
    cdef uint64_t dec_acts[MAX_DEC_C]
    cdef uint64_t dec_vis[MAX_DEC_C]
    cdef float dec_value[SEATS_C]
    cdef int wire, field, cards, seat, c
    while pos < end:
        if not _varint(buf, end, &pos, &key):
            return False
        field, wire = <int>(key >> 3), <int>(key & 7)
        if field == 0:
            return False
        if field == 1 or field == 3 or field == 4:
            if wire != 0 or not _varint(buf, end, &pos, &v):
                return False
            v = <uint32_t>v
            if field == 1:
                n_players = v
            elif field == 3:
                dealer = v
            else:
                trump = v
        elif field == 5:                                     # Hand { repeated uint32 cards = 1; }
            if wire != 2 or n_hands >= SEATS_C or not _varint(buf, end, &pos, &v) \
                    or v > <uint64_t>(end - pos):
                return False
            stop = pos + <Py_ssize_t>v
            m = 0
            while pos < stop:
                if not _varint(buf, stop, &pos, &key):
                    return False
                if key >> 3 == 0:
                    return False
                if key >> 3 == 1:
                    m = _repeated(buf, stop, &pos, key & 7, tmp, m, 52)
                    if m < 0:
                        return False
                elif not _skip(buf, stop, &pos, key & 7):
                    return False
            if pos != stop:
                return False
            masks[n_hands] = 0
            for j in range(m):
                c = <uint32_t>tmp[j]
                if <uint32_t>tmp[j] >= 52:
                    return False
                masks[n_hands] |= (<uint64_t>1) << c
            hand_len[n_hands] = m
            n_hands += 1
        elif field == 6:
            n_act = _repeated(buf, end, &pos, wire, acts, n_act, MAX_ROUND_ACTIONS_C)
            if n_act < 0:
                return False
        elif field == 7:                                     # Decision
            if wire != 2 or not _varint(buf, end, &pos, &v) or v > <uint64_t>(end - pos):
                return False
            stop = pos + <Py_ssize_t>v
            ply = player = 0
            m = nv = nr = 0
            while pos < stop:
                if not _varint(buf, stop, &pos, &key):
                    return False
                field, wire = <int>(key >> 3), <int>(key & 7)
                if field == 0:
                    return False
                if field == 1 or field == 2:
                    if wire != 0 or not _varint(buf, stop, &pos, &v):
                        return False
                    if field == 1:
                        ply = <uint32_t>v
                    else:
                        player = <uint32_t>v
                elif field == 3:
                    m = _repeated(buf, stop, &pos, wire, dec_acts, m, MAX_DEC_C)
                    if m < 0:
                        return False
                elif field == 4:
                    nv = _repeated(buf, stop, &pos, wire, dec_vis, nv, MAX_DEC_C)
                    if nv < 0:
                        return False
                elif field == 6:                     # root_value: packed, or not
                    nr = _floats(buf, stop, &pos, wire, dec_value, nr, SEATS_C)
                    if nr < 0:
                        return False
                elif not _skip(buf, stop, &pos, wire):
                    return False
            if pos != stop or m == 0 or nv != m or (any_dec and ply <= last_ply):
                return False                 # empty, mismatched, repeated or unsorted plies
            seen_acts = 0
            for j in range(m):
                if <uint32_t>dec_acts[j] >= 52 or seen_acts & ((<uint64_t>1) << <uint32_t>dec_acts[j]):
                    return False
                seen_acts |= (<uint64_t>1) << <uint32_t>dec_acts[j]
            d_round[k] = <int32_t>r
            d_ply[k] = <uint8_t>ply if ply < 256 else 255
            d_player[k] = <uint8_t>player if player < 256 else 255
            d_n[k] = <uint8_t>m
            for j in range(m):
                d_actions[k, j] = <uint8_t>dec_acts[j]
                visits[k, j] = <uint32_t>dec_vis[j]
            for j in range(SEATS_C):
                d_value[k, j] = dec_value[j] if j < nr else 0.0
            n_value[k] = <uint8_t>nr if nr < 255 else 255
            if ply >= 256 or player >= 256:
                return False
            k += 1
            last_ply = ply
            any_dec = True
        elif field == 8:
            n_scores = _repeated(buf, end, &pos, wire, score, n_scores, SEATS_C)
            if n_scores < 0:
                return False
        elif field == 10:
            if wire != 2 or not _search_ok(buf, end, &pos):
                return False
        elif field == 11:
            if wire != 2 or not _ascii(buf, end, &pos):
                return False
        elif field == 14:                                    # RoundGameContext, once
            if wire != 2 or has_game or not _varint(buf, end, &pos, &v) or v > <uint64_t>(end - pos):
                return False
            has_game = True
            stop2 = pos + <Py_ssize_t>v
            while pos < stop2:
                if not _varint(buf, stop2, &pos, &key):
                    return False
                field, wire = <int>(key >> 3), <int>(key & 7)
                if field == 0:
                    return False
                if 1 <= field <= 3:
                    if wire != 0 or not _varint(buf, stop2, &pos, &v):
                        return False
                    if field == 1:
                        round_index = <uint32_t>v
                    elif field == 2:
                        n_rounds = <uint32_t>v
                    else:
                        next_cards = <uint32_t>v
                elif field == 4:
                    n_gscores = _repeated(buf, stop2, &pos, wire, gscore, n_gscores, SEATS_C)
                    if n_gscores < 0:
                        return False
                elif not _skip(buf, stop2, &pos, wire):
                    return False
            if pos != stop2:
                return False
        elif field == 2 and wire == 0:
            if not _varint(buf, end, &pos, &v):      # cards per seat: derived from the hands
                return False
        elif field == 2 or field == 5 or field == 6 or field == 8 or field == 9 or field == 12 \
                or field == 13:
            if (field == 9 or field == 12 or field == 13) and wire == 0:
                if not _varint(buf, end, &pos, &v):
                    return False
            else:
                return False                          # a known field with another wire type
        elif not _skip(buf, end, &pos, wire):
            return False
    if pos != end:
        return False
    # _unpack's checks: structure, then the deal
    if not (3 <= n_players <= SEATS_C and n_hands == <Py_ssize_t>n_players
            and n_scores == <Py_ssize_t>n_players):
        return False
    if k - k0 and d_ply[k - 1] >= n_act:          # plies ascend: the last is the largest
        return False
    for j in range(k0, k):
        if d_player[j] >= n_players:
            return False
    cards = <int>hand_len[0]
    if not (1 <= cards <= 52 // <int>n_players and dealer < n_players and trump <= NO_TRUMP_C):
        return False
    for seat in range(<int>n_players):
        if hand_len[seat] != cards or __builtin_popcountll(masks[seat]) != cards:
            return False
        union_mask |= masks[seat]
    if __builtin_popcountll(union_mask) != <int>n_players * cards:
        return False
    if has_game:
        if not (round_index < n_rounds <= 32767 and next_cards <= 32767
                and n_gscores == <Py_ssize_t>n_players):
            return False
        ctx[r, 0] = <int32_t>round_index
        ctx[r, 1] = <int32_t>n_rounds
        ctx[r, 2] = <int32_t>next_cards
        for seat in range(<int>n_players):
            ctx[r, 3 + seat] = <int32_t><uint32_t>gscore[seat]
    for seat in range(<int>n_players):
        hands[r, seat] = masks[seat]
        scores[r, seat] = <int32_t><uint32_t>score[seat]
    meta[r, 0] = <int8_t>n_players
    meta[r, 1] = <int8_t>cards
    meta[r, 2] = <int8_t>dealer
    meta[r, 3] = <int8_t>trump
    for j in range(n_act):
        actions[r, j] = <uint8_t>acts[j] if <uint32_t>acts[j] < 255 else 255
    n_actions[r] = <int16_t>n_act
    return True

