# cython: language_level=3
"""Policy-based beliefs (Rebstock et al. 2019) with the searcher's own network: at each
decision ``policy_inference`` = K uniform consistent deals are drawn and, for each, every
earlier choice of another seat that had more than one legal action becomes one batch row (that
seat's view in that deal). The deal's weight is the product of p'(action taken) ** (1 /
``policy_inference_temperature``), p' the network's policy floored at POLICY_FLOOR of a
uniform choice; the decision's D determinizations are drawn from the K deals by weight.
Play-outs draw their worlds from the bids (blobcore/search/belief_bids.pyx). Costs K x (the
other seats' choices so far) evaluations per decision."""
from libc.math cimport log, exp
from libc.string cimport memcpy
from libc.stdint cimport uint64_t

from blobcore.rules cimport (RoundState, rs_init, rs_legal, rs_apply, rs_played_by,
                             popcount64)
from blobcore.rng cimport rng_uniform
from blobcore.encode cimport encode_view, OBS_SIZE_C, ACTIONS_C
from blobcore.determinize cimport determinize_state
from blobcore.search.core cimport Pool, Slot, Beliefs, SEATS_C
from blobcore.search.seats cimport agent_to_move
from blobcore.search.belief_bids cimport bid_world, bid_leaf_world
from blobcore.search.part cimport part_capsule

#: Each observed action's probability is floored at this share of a uniform choice,
#: p' = (1 - f) p + f / legal actions, so that one confident mistake of the network never
#: rules a deal out.
cdef double POLICY_FLOOR = 0.02


cdef int _begin(Pool* P, Slot* s) noexcept nogil:
    """Queue the candidate deals' rows; 0 (nothing queued) when this batch has no room."""
    cdef RoundState w, r
    cdef int i, j, seat, nl, row, k, viewer = s.game.current, n = s.game.n_players
    cdef uint64_t legal
    if P.n_belief_rows + P.p.pol_k * s.game.n_actions > P.capacity - P.n_slots * P.p.leaves:
        return 0                 # no room for its rows: the decision waits for the next batch
    s.pol_n = 0
    s.belief_rows = 0
    for j in range(s.game.n_actions):
        if s.game.action_seat[j] != viewer:
            break
    else:                        # nothing observed yet: the uniform draw is the posterior
        return 1
    s.belief_row0 = P.n_rows
    for i in range(P.p.pol_k):
        determinize_state(&s.game, viewer, &s.rng, &w)
        for k in range(SEATS_C):
            s.pol_hands[i][k] = w.hands[k]
        s.pol_logw[i] = 0.0
        rs_init(&r, n, s.game.cards, s.game.dealer, s.game.trump, w.dealt)
        r.round_index = s.game.round_index
        r.n_rounds = s.game.n_rounds
        r.next_cards = s.game.next_cards
        memcpy(r.game_scores, s.game.game_scores, sizeof(r.game_scores))
        for j in range(s.game.n_actions):
            seat = s.game.action_seat[j]
            if seat != viewer:
                legal = rs_legal(&r)
                nl = popcount64(legal)
                if nl > 1:
                    row = P.n_rows
                    encode_view(&r, seat, P.states_buf + <size_t>row * OBS_SIZE_C,
                                P.masks_buf + <size_t>row * ACTIONS_C)
                    P.row_agent[row] = agent_to_move(s)   # the searcher's network models them
                    s.pol_row_cand[s.belief_rows] = i
                    s.pol_row_action[s.belief_rows] = s.game.actions[j]
                    s.pol_row_legal[s.belief_rows] = nl
                    s.belief_rows += 1
                    P.n_rows += 1
                    P.n_belief_rows += 1
                    P.c.inference_rows += 1
            rs_apply(&r, s.game.actions[j])
    s.pol_n = P.p.pol_k
    return 1


cdef void _answer(Pool* P, Slot* s, const float* policy, const float* beliefs) noexcept nogil:
    """Weigh the candidate deals by their rows' answers (``policy`` = the batch's)."""
    cdef int j, i
    cdef double p, top = -1e300
    for j in range(s.belief_rows):
        p = policy[<size_t>(s.belief_row0 + j) * ACTIONS_C + s.pol_row_action[j]]
        p = (1.0 - POLICY_FLOOR) * (p if p > 0 else 0.0) + POLICY_FLOOR / s.pol_row_legal[j]
        s.pol_logw[s.pol_row_cand[j]] += log(p) / P.p.pol_temperature
    for i in range(s.pol_n):
        if s.pol_logw[i] > top:
            top = s.pol_logw[i]
    s.pol_total = 0.0
    for i in range(s.pol_n):
        s.pol_w[i] = exp(s.pol_logw[i] - top)
        s.pol_total += s.pol_w[i]
    s.belief_rows = 0


cdef void _world(Pool* P, Slot* s, RoundState* out) noexcept nogil:
    """The true state with the hidden hands of one candidate deal, drawn by weight (the bid
    model's draw while nothing of the other seats was observed)."""
    cdef double u
    cdef int i, k, pick
    if s.pol_n == 0:
        bid_world(P, s, out)
        return
    u = rng_uniform(&s.rng) * s.pol_total
    pick = s.pol_n - 1
    for i in range(s.pol_n):
        u -= s.pol_w[i]
        if u < 0.0:
            pick = i
            break
    out[0] = s.game
    for k in range(s.game.n_players):
        if k != s.game.current:
            out.hands[k] = s.pol_hands[pick][k]
            out.dealt[k] = out.hands[k] | rs_played_by(&s.game, k)


cdef Beliefs BELIEFS
BELIEFS.begin = _begin
BELIEFS.answer = _answer
BELIEFS.decision_world = _world
BELIEFS.leaf_world = bid_leaf_world


def part():
    """These beliefs' functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&BELIEFS, b"blobcore.search.Beliefs")
