# cython: language_level=3
"""Compact training positions: replay-check whole rounds and encode sampled positions, in C.

The trainer's window (``trainer/compact_window.py``) stores each round once (the deal as one
52-bit mask per seat, the action list, dealer, trump, the full-game context and the final
value/trick targets) and each searched decision as a few bytes (ply, mover, up to
``MAX_DECISION_ACTIONS`` sparse policy entries). A training batch is produced here by replaying
each sampled round to its ply with ``rs_init``/``rs_apply`` and encoding the observer's view
with ``encode_view``, straight into caller-owned (B, 256)/(B, 52)/(B, 8) arrays: no Python
object per row, no GIL. ~60 ``rs_apply`` at most per row, so a row costs well under a
microsecond.

Array layouts (R rounds, D decisions, B rows; every array C-contiguous):
    hands    uint64 (R, 8)   each seat's dealt cards as a bit mask (bit c = card c)
    meta     int8   (R, 4)   n_players, cards per seat, dealer, trump (4 = no trump)
    actions  uint8  (R, 60)  every action in order (values >= 52 are illegal)
    ctx      int32  (R, 11)  round_index, n_rounds (0 = standalone round), next_cards,
                             cumulative game scores before the round by seat (8)
    value    float32 (R, 8)  final normalised scores by absolute seat
    tricks   int8   (R, 8)   final tricks taken by absolute seat
    d_round  int32  (D,)     row of the decision's round in the round arrays
    d_ply, d_player, d_n  uint8 (D,)   ply, seat that decided, sparse policy entries used
    d_actions uint8 (D, 18), d_probs float32 (D, 18)  sparse policy target
    d_value  float32 (D, 8)  search root value by absolute seat (normalised scores); NaN in
                             every column when the decision has none (examples.search_values)
"""
from libc.stdint cimport uint64_t, uint8_t, uint32_t, int8_t, int16_t, int32_t, int64_t
from libc.math cimport isnan
from libc.string cimport memset

from blobcore.rules cimport (RoundState, rs_init, rs_apply, rs_check, rs_legal, rs_score,
                             OK, PHASE_DONE_C, MAX_PLAYERS_C)
from blobcore.encode cimport encode_view, encode_world, OBS_SIZE_C, ACTIONS_C, WORLD_SIZE_C

cdef enum:
    MAX_DEC_C = 18          # legal actions at any decision: bids 0..17, or at most 17 cards
    MAX_ROUND_ACTIONS_C = 60
    CTX_C = 11

#: Most sparse policy entries one decision can have (bids 0..C with C <= 17, or <= 17 cards).
MAX_DECISION_ACTIONS = MAX_DEC_C
#: Actions a round can have (N bids + N*C cards <= 8 + 52).
MAX_ROUND_ACTIONS = MAX_ROUND_ACTIONS_C
#: Columns of the game-context array (see the module docstring).
CONTEXT_COLUMNS = CTX_C

# check_rounds status codes (one per round)
cdef enum:
    CHECK_OK_C = 0
    CHECK_PLAYER_C = 1      # a decision names another seat than the one to move
    CHECK_VISITS_C = 2      # visits on illegal actions, or none at all
    CHECK_ACTION_C = 3      # an illegal action (or one after the end of the round)
    CHECK_INCOMPLETE_C = 4  # the actions do not finish the round
    CHECK_SCORES_C = 5      # recorded scores differ from the replay's

CHECK_OK, CHECK_PLAYER, CHECK_VISITS, CHECK_ACTION, CHECK_INCOMPLETE, CHECK_SCORES = range(6)

#: Visit totals below this are exact in float32 (every partial sum an exact integer), so the
#: policy target computed here equals numpy's ``visits / visits.sum()`` bit for bit.
cdef uint64_t EXACT_TOTAL_C = 1 << 24
EXACT_TOTAL = EXACT_TOTAL_C


cdef inline void _set_context(RoundState* s, const int32_t* ctx) noexcept nogil:
    cdef int i
    if ctx[1] > 0:
        s.round_index = ctx[0]
        s.n_rounds = ctx[1]
        s.next_cards = ctx[2]
        for i in range(MAX_PLAYERS_C):
            s.game_scores[i] = ctx[3 + i]


def check_rounds(const uint64_t[:, ::1] hands, const int8_t[:, ::1] meta,
                 const uint8_t[:, ::1] actions, const int16_t[::1] n_actions,
                 const int32_t[:, ::1] scores, const int64_t[::1] dec_start,
                 const uint8_t[::1] d_ply, const uint8_t[::1] d_player, const uint8_t[::1] d_n,
                 const uint8_t[:, ::1] d_actions, const uint32_t[:, ::1] d_visits,
                 float[:, ::1] d_probs, uint8_t[::1] d_exact,
                 float[:, ::1] value, int8_t[:, ::1] tricks, int32_t[::1] status):
    """Replay R rounds and check them as ``trainer.examples.from_record`` does.

    Round r's decisions are rows dec_start[r]..dec_start[r+1]-1 of the d_* arrays, sorted by
    ply (one per ply); n_actions (R,) int16 and scores (R, 8) int32 are the recorded action
    counts and scores. Rounds whose status is non-zero on entry are skipped (the caller
    rejected them); writes status (R,) (CHECK_* codes), the policy targets
    d_probs (D, 18) float32 with d_exact (D,) = 0 where a visit total >= EXACT_TOTAL needs numpy
    instead, and value (R, 8) float32 / tricks (R, 8) int8 (seats past N: 0 and -1)."""
    cdef Py_ssize_t n_rounds = hands.shape[0], r, k, end
    cdef int ply, j, a, seat, n, code
    cdef uint64_t legal, total
    cdef RoundState s
    with nogil:
        for r in range(n_rounds):
            if status[r] != CHECK_OK_C:      # already rejected by the caller: not replayable
                continue
            code = CHECK_OK_C
            n = meta[r, 0]
            rs_init(&s, n, meta[r, 1], meta[r, 2], meta[r, 3], &hands[r, 0])
            k = dec_start[r]
            end = dec_start[r + 1]
            for ply in range(n_actions[r]):
                if k < end and d_ply[k] == ply:
                    if d_player[k] != s.current:
                        code = CHECK_PLAYER_C
                        break
                    legal = rs_legal(&s)
                    total = 0
                    for j in range(d_n[k]):
                        a = d_actions[k, j]
                        if a >= 52 or not (legal >> a) & 1:
                            code = CHECK_VISITS_C
                            break
                        total += d_visits[k, j]
                    if code != CHECK_OK_C or total == 0:
                        code = CHECK_VISITS_C
                        break
                    d_exact[k] = total < EXACT_TOTAL_C
                    for j in range(MAX_DEC_C):
                        d_probs[k, j] = (<float>d_visits[k, j]) / (<float>total) if j < d_n[k] else 0.0
                    k += 1
                a = actions[r, ply]
                if rs_check(&s, a) != OK:
                    code = CHECK_ACTION_C
                    break
                rs_apply(&s, a)
            if code == CHECK_OK_C and (s.phase != PHASE_DONE_C or k != end):
                code = CHECK_INCOMPLETE_C
            if code == CHECK_OK_C:
                for seat in range(MAX_PLAYERS_C):
                    if seat < n:
                        if rs_score(&s, seat) != scores[r, seat]:
                            code = CHECK_SCORES_C
                        value[r, seat] = <float>(rs_score(&s, seat) / (10.0 + meta[r, 1]))
                        tricks[r, seat] = s.tricks_won[seat]
                    else:
                        value[r, seat] = 0.0
                        tricks[r, seat] = -1
            status[r] = code


def encode_rows(const uint64_t[:, ::1] hands, const int8_t[:, ::1] meta,
                const uint8_t[:, ::1] actions, const int32_t[:, ::1] ctx,
                const float[:, ::1] value, const int8_t[:, ::1] tricks,
                const int32_t[::1] d_round, const uint8_t[::1] d_ply, const uint8_t[::1] d_player,
                const uint8_t[::1] d_n, const uint8_t[:, ::1] d_actions, const float[:, ::1] d_probs,
                const float[:, ::1] d_value, float w_outcome, float w_search,
                const int32_t[::1] rows_dec, const uint8_t[::1] rows_view,
                float[:, ::1] states, float[:, ::1] masks, float[:, ::1] policy,
                float[:, ::1] value_out, float[:, ::1] seats, int8_t[:, ::1] tricks_out):
    """Write B training rows: row b is decision rows_dec[b] seen by seat
    (mover + rows_view[b]) % N — exactly the row ``from_record(rec, all_views=True,
    value_target_search=α)`` makes for that decision and view, given
    (w_outcome, w_search) = ``trainer.examples.value_weights(α)``: the value target is
    w_outcome × outcome + w_search × d_value (float32 arithmetic, in that order) where the
    decision has a search value and w_search != 0, else the outcome. Outputs (B, 256), (B, 52),
    (B, 52) float32, (B, 8) float32 value and seats, (B, 8) int8 tricks, rotated so the
    observer is seat 0."""
    cdef Py_ssize_t n_rows = rows_dec.shape[0], b
    cdef int dec, r, n, ply, observer, i, j, seat
    cdef bint mix
    cdef float outcome, searched
    cdef RoundState s
    if d_value.shape[0] != d_round.shape[0] or d_value.shape[1] != MAX_PLAYERS_C:
        raise ValueError("d_value must be (D, 8): one row per decision")
    if not (states.shape[0] >= n_rows and masks.shape[0] >= n_rows and policy.shape[0] >= n_rows
            and value_out.shape[0] >= n_rows and seats.shape[0] >= n_rows
            and tricks_out.shape[0] >= n_rows and rows_view.shape[0] == n_rows):
        raise ValueError("every output needs at least as many rows as rows_dec")
    if not (states.shape[1] == OBS_SIZE_C and masks.shape[1] == ACTIONS_C
            and policy.shape[1] == ACTIONS_C and value_out.shape[1] == MAX_PLAYERS_C
            and seats.shape[1] == MAX_PLAYERS_C and tricks_out.shape[1] == MAX_PLAYERS_C):
        raise ValueError("outputs must be (B, 256), (B, 52), (B, 52), (B, 8), (B, 8), (B, 8)")
    with nogil:
        for b in range(n_rows):
            dec = rows_dec[b]
            r = d_round[dec]
            n = meta[r, 0]
            rs_init(&s, n, meta[r, 1], meta[r, 2], meta[r, 3], &hands[r, 0])
            _set_context(&s, &ctx[r, 0])
            for ply in range(d_ply[dec]):
                rs_apply(&s, actions[r, ply])
            observer = (d_player[dec] + rows_view[b]) % n
            encode_view(&s, observer, &states[b, 0], &masks[b, 0])
            memset(&policy[b, 0], 0, ACTIONS_C * sizeof(float))
            for j in range(d_n[dec]):
                policy[b, d_actions[dec, j]] = d_probs[dec, j]
            mix = w_search != 0 and not isnan(d_value[dec, 0])
            for i in range(MAX_PLAYERS_C):
                if i < n:
                    seat = (observer + i) % n
                    if mix:         # round each product, then the sum: numpy's order
                        outcome = w_outcome * value[r, seat]
                        searched = w_search * d_value[dec, seat]
                        value_out[b, i] = outcome + searched
                    else:
                        value_out[b, i] = value[r, seat]
                    seats[b, i] = 1.0
                    tricks_out[b, i] = tricks[r, seat]
                else:
                    value_out[b, i] = 0.0
                    seats[b, i] = 0.0
                    tricks_out[b, i] = -1


def encode_worlds(const uint64_t[:, ::1] hands, const int8_t[:, ::1] meta,
                  const int32_t[:, ::1] ctx, const uint8_t[:, ::1] actions,
                  const float[:, ::1] scores, const int32_t[::1] rows,
                  const uint8_t[::1] upto, float[:, ::1] worlds, float[:, ::1] target,
                  uint8_t[::1] ok):
    """Labelled leaf worlds (trainer/leaf_worlds.py) -> world-value training rows, in C.

    Sample i: dealt hands (8,) as bit masks, meta (n_players, cards, dealer, trump), game
    context (11,), the world's actions from the deal (to the leaf, then the play-out's), the
    play-out's normalised scores (8,) by absolute seat. Row b is sample rows[b] after its first
    upto[b] actions: the deal replayed that far and encoded whole for the mover there
    (``encode_world``, (B, 620)), the scores rotated so the mover is seat 0 (target (B, 8),
    zeros past N). ok[b] = 0 (and the row's outputs zero) when an action is illegal or the
    round is over there: such a row labels nothing."""
    cdef Py_ssize_t n_rows = rows.shape[0], b
    cdef int r, n, a, i, mover
    cdef bint good
    cdef RoundState s
    if not (worlds.shape[0] >= n_rows and target.shape[0] >= n_rows and ok.shape[0] >= n_rows
            and upto.shape[0] == n_rows):
        raise ValueError("upto and every output need as many rows as rows")
    if worlds.shape[1] != WORLD_SIZE_C or target.shape[1] != MAX_PLAYERS_C:
        raise ValueError(f"outputs must be (B, {WORLD_SIZE_C}) and (B, {MAX_PLAYERS_C})")
    if not (meta.shape[0] == hands.shape[0] == ctx.shape[0] == actions.shape[0]
            == scores.shape[0]):
        raise ValueError("the sample arrays must have one row per sample")
    with nogil:
        for b in range(n_rows):
            r = rows[b]
            n = meta[r, 0]
            good = 3 <= n <= MAX_PLAYERS_C and upto[b] <= MAX_ROUND_ACTIONS_C
            if good:
                rs_init(&s, n, meta[r, 1], meta[r, 2], meta[r, 3], &hands[r, 0])
                _set_context(&s, &ctx[r, 0])
                for a in range(upto[b]):
                    if s.phase == PHASE_DONE_C or rs_check(&s, actions[r, a]) != OK:
                        good = False
                        break
                    rs_apply(&s, actions[r, a])
                good = good and s.phase != PHASE_DONE_C
            ok[b] = good
            if not good:
                memset(&worlds[b, 0], 0, WORLD_SIZE_C * sizeof(float))
                memset(&target[b, 0], 0, MAX_PLAYERS_C * sizeof(float))
                continue
            encode_world(&s, &worlds[b, 0])
            mover = s.current
            for i in range(MAX_PLAYERS_C):
                target[b, i] = scores[r, (mover + i) % n] if i < n else 0.0
