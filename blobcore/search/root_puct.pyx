# cython: language_level=3
"""PUCT root: the root selects like every other node (AlphaZero). In self-play Dirichlet
noise is mixed into its priors; the policy target is the visit counts; the move is the most
visited action, or drawn with visits ** (1 / temperature) for the first
``temperature_moves`` searched decisions of a round."""
from libc.math cimport pow
from libc.string cimport memset
from libc.stdint cimport uint64_t

from blobcore.rules cimport rs_legal, popcount64, ctz64
from blobcore.rng cimport rng_uniform
from blobcore.search.core cimport Pool, Slot, RootRule
from blobcore.search.noise cimport gamma_variate
from blobcore.search.part cimport part_capsule
from blobcore.encode cimport ACTIONS_C


cdef void _start(Pool* P, Slot* s) noexcept nogil:
    """Dirichlet(alpha) noise over the legal actions (self-play only)."""
    cdef uint64_t bits = rs_legal(&s.game)
    cdef double g, gsum = 0.0
    cdef int a
    memset(s.noise, 0, sizeof(s.noise))
    if not (P.p.add_noise and P.p.eps > 0):
        return
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        g = gamma_variate(&s.rng, P.p.alpha)
        s.noise[a] = g
        gsum += g
    if gsum > 0:
        for a in range(ACTIONS_C):
            s.noise[a] /= gsum


cdef float _edge_prior(Pool* P, Slot* s, int a) noexcept nogil:
    if P.p.add_noise:
        return (1.0 - P.p.eps) * s.root_prior[a] + P.p.eps * s.noise[a]
    return s.root_prior[a]


cdef int _select(Pool* P, Slot* s, int slot) noexcept nogil:
    return -1


cdef int _finish(Pool* P, Slot* s, int slot, int* move, float* target) noexcept nogil:
    cdef int a, best = -1, chosen
    cdef int best_n = -1
    cdef double total = 0.0, u, w
    for a in range(ACTIONS_C):
        if s.visits_acc[a] > best_n:
            best_n = s.visits_acc[a]
            best = a
    chosen = best
    if P.p.temperature > 0 and s.searched_decisions < P.p.temperature_moves:
        for a in range(ACTIONS_C):
            if s.visits_acc[a] > 0:
                total += pow(<double>s.visits_acc[a], 1.0 / P.p.temperature)
        u = rng_uniform(&s.rng) * total
        for a in range(ACTIONS_C):
            if s.visits_acc[a] > 0:
                w = pow(<double>s.visits_acc[a], 1.0 / P.p.temperature)
                if u < w:
                    chosen = a
                    break
                u -= w
    move[0] = chosen
    return 0


cdef RootRule RULE
RULE.start = _start
RULE.edge_prior = _edge_prior
RULE.select = _select
RULE.finish = _finish


def part():
    """This root rule's functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&RULE, b"blobcore.search.RootRule")
