# cython: language_level=3
"""Learned beliefs: a belief model (trainer/belief_model.py) reads the searcher's view at each
decision — one batch row, answered beside the policy as (52, 8) holder probabilities per card:
class 0 = nobody (the card was not dealt), class r = the r-th seat after the searcher — and the
hidden hands of every world are drawn by sampling-importance-resampling: ``inference_candidates``
uniform consistent deals (blobcore/determinize.pyx: hand sizes, voids and the public record are
respected exactly), each weighted by the product over the hidden cards of the model's
probability of the holder that deal gives it; one is kept in proportion to its weight. The
play-outs' worlds are drawn the same way from the leaf, with the decision's probabilities (the
cards played since are no longer hidden). The model reads the bids itself, so no bid likelihood
is multiplied in. Until the row is answered — or with an evaluator that gives no beliefs, which
``SearchPool.apply`` refuses — the draws are the bid model's (belief_bids.pyx)."""
from libc.math cimport log, exp
from libc.string cimport memcpy
from libc.stdint cimport uint64_t

from blobcore.rules cimport RoundState, ctz64
from blobcore.rng cimport rng_uniform
from blobcore.encode cimport encode_view, OBS_SIZE_C, ACTIONS_C
from blobcore.determinize cimport determinize_state
from blobcore.search.core cimport Pool, Slot, Beliefs, SEATS_C
from blobcore.search.seats cimport agent_to_move
from blobcore.search.belief_bids cimport bid_world, bid_leaf_world
from blobcore.search.part cimport part_capsule

cdef enum:
    CLASSES_C = 8
    MAX_CANDIDATES_C = 64
#: a holder the model gives no mass still keeps this much, so one overconfident card never
#: rules a whole deal out
cdef double P_FLOOR = 1e-4


cdef int _begin(Pool* P, Slot* s) noexcept nogil:
    """Queue the searcher's view as one row; 0 when this batch has no room for it."""
    cdef int row
    if P.n_belief_rows + 1 > P.capacity - P.n_slots * P.p.leaves:
        return 0
    s.learned_ready = 0
    row = P.n_rows
    encode_view(&s.game, s.game.current, P.states_buf + <size_t>row * OBS_SIZE_C,
                P.masks_buf + <size_t>row * ACTIONS_C)
    P.row_agent[row] = agent_to_move(s)
    s.belief_row0 = row
    s.belief_rows = 1
    P.n_rows += 1
    P.n_belief_rows += 1
    P.c.inference_rows += 1
    return 1


cdef void _answer(Pool* P, Slot* s, const float* policy, const float* beliefs) noexcept nogil:
    if beliefs != NULL:
        memcpy(&s.belief_p[0][0], beliefs + <size_t>s.belief_row0 * ACTIONS_C * CLASSES_C,
               ACTIONS_C * CLASSES_C * sizeof(float))
        s.learned_ready = 1
    s.belief_rows = 0


cdef double _log_weight(const Slot* s, const RoundState* w, int viewer, uint64_t hidden) noexcept nogil:
    """log of the product over ``hidden`` cards of P(the holder ``w`` gives the card)."""
    cdef double total = 0.0, p
    cdef int card, k, cls, n = w.n_players
    while hidden:
        card = ctz64(hidden)
        hidden &= hidden - 1
        cls = 0
        for k in range(n):
            if k != viewer and (w.hands[k] >> card) & 1:
                cls = (k - viewer + n) % n
                break
        p = s.belief_p[card][cls]
        total += log(p if p > P_FLOOR else P_FLOOR)
    return total


cdef void _draw(Pool* P, Slot* s, const RoundState* from_state, RoundState* out) noexcept nogil:
    """One of K uniform consistent deals of ``from_state`` for the searcher, kept in proportion
    to its learned weight (a streaming reservoir of size one over log-weights)."""
    cdef RoundState cand[2]
    cdef int viewer = s.game.current, i, keep = 0, k = P.p.infer_candidates
    cdef uint64_t seen = from_state.hands[viewer] | from_state.played, hidden
    cdef double logw, top = -1e300, total = 0.0, w
    if k > MAX_CANDIDATES_C:
        k = MAX_CANDIDATES_C
    hidden = ~seen & ((<uint64_t>1 << 52) - 1)
    for i in range(k):
        determinize_state(from_state, viewer, &s.rng, &cand[1 - keep])
        logw = _log_weight(s, &cand[1 - keep], viewer, hidden)
        # weights relative to the largest so far; rescale the running total when it grows
        if logw > top:
            total = total * exp(top - logw) if i > 0 else 0.0
            top = logw
        w = exp(logw - top)
        total += w
        if i == 0 or (total > 0.0 and rng_uniform(&s.rng) * total < w):
            keep = 1 - keep
    memcpy(out, &cand[keep], sizeof(RoundState))


cdef void _world(Pool* P, Slot* s, RoundState* out) noexcept nogil:
    if not s.learned_ready:
        bid_world(P, s, out)
        return
    _draw(P, s, &s.game, out)


cdef void _leaf_world(Pool* P, Slot* s, const RoundState* leaf, RoundState* out) noexcept nogil:
    if not s.learned_ready:
        bid_leaf_world(P, s, leaf, out)
        return
    _draw(P, s, leaf, out)


cdef Beliefs BELIEFS
BELIEFS.begin = _begin
BELIEFS.answer = _answer
BELIEFS.decision_world = _world
BELIEFS.leaf_world = _leaf_world
BELIEFS.needs_beliefs = 1


def part():
    """These beliefs' functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&BELIEFS, b"blobcore.search.Beliefs")
