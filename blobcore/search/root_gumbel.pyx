# cython: language_level=3
"""Gumbel root (Gumbel AlphaZero, Danihelka et al. 2022): up to ``gumbel_actions`` root
actions drawn without replacement by Gumbel noise + log prior (no noise in evaluation),
sequential halving over the decision's D x S simulations, the move the best of
g + logit + sigma(q), the policy target softmax(logit + sigma(completed q)). Dirichlet noise
and temperature are not used. sigma(q) = (c_visit + max visits) * c_scale * q."""
from libc.math cimport log, exp
from libc.string cimport memset
from libc.stdint cimport uint64_t

from blobcore.rules cimport rs_legal, popcount64, ctz64
from blobcore.rng cimport rng_uniform
from blobcore.encode cimport ACTIONS_C
from blobcore.search.core cimport Pool, Slot, RootRule
from blobcore.search.tree cimport root_visits, root_q
from blobcore.search.part cimport part_capsule


cdef inline bint _in(const int* values, int n, int x) noexcept nogil:
    cdef int i
    for i in range(n):
        if values[i] == x:
            return True
    return False


cdef void _start(Pool* P, Slot* s) noexcept nogil:
    """Draw g(a) (self-play only), keep the top m actions by g + log prior, plan the
    sequential halving of the decision's D x S simulations."""
    cdef uint64_t legal = rs_legal(&s.game), bits, left = 0
    cdef int a, k, best, m = P.p.gumbel_m, n_legal = popcount64(legal)
    cdef double u
    cdef float top
    memset(s.noise, 0, sizeof(s.noise))
    for a in range(ACTIONS_C):
        s.g_logit[a] = -1e30
    bits = legal
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        s.g_logit[a] = log(s.root_prior[a] if s.root_prior[a] > 1e-12 else 1e-12)
        if P.p.add_noise:
            u = rng_uniform(&s.rng)
            s.g_logit[a] += -log(-log(u if u > 1e-300 else 1e-300))
    if m > n_legal:
        m = n_legal
    for k in range(m):                       # top m by g + logits, without replacement
        best = -1
        top = -1e30
        bits = legal & ~left
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            if best < 0 or s.g_logit[a] > top:
                best = a
                top = s.g_logit[a]
        left |= (<uint64_t>1) << best
    s.g_left = left
    s.g_phases = 1
    while (1 << s.g_phases) < m:
        s.g_phases += 1
    s.g_budget = P.p.D * P.p.S
    s.g_phase_sims = 0


cdef float _edge_prior(Pool* P, Slot* s, int a) noexcept nogil:
    return s.root_prior[a]


cdef float _sigma_scale(Pool* P, Slot* s, int slot) noexcept nogil:
    """(c_visit + max_a N(a)) * c_scale: how many logits one unit of value is worth."""
    cdef uint64_t bits = rs_legal(&s.game)
    cdef int a, n, top = 0
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        n = root_visits(P, s, slot, a)
        if n > top:
            top = n
    return (P.p.c_visit + top) * P.p.c_scale


cdef int _select(Pool* P, Slot* s, int slot) noexcept nogil:
    """The root action of the next simulation: the least visited action still in the
    halving (ties: the higher g + logit); halves the set when a phase's budget is spent."""
    cdef uint64_t bits
    cdef int a, k, n, best, fewest, n_left = popcount64(s.g_left), keep
    cdef float scale, top, fallback = s.root_value[0]
    cdef float scores[52]
    cdef int order[18]
    if s.g_phase_sims <= 0:
        if s.g_phase_sims == 0 and n_left > 1 and s.g_budget < P.p.D * P.p.S:
            # end of a phase: keep the better half by g + logit + sigma(q)
            scale = _sigma_scale(P, s, slot)
            bits = s.g_left
            while bits:
                a = ctz64(bits)
                bits &= bits - 1
                scores[a] = s.g_logit[a] + scale * root_q(P, s, slot, a, fallback)
            keep = (n_left + 1) // 2
            for k in range(keep):
                best = -1
                top = -1e30
                bits = s.g_left
                while bits:
                    a = ctz64(bits)
                    bits &= bits - 1
                    if not _in(order, k, a) and (best < 0 or scores[a] > top):
                        best = a
                        top = scores[a]
                order[k] = best
            s.g_left = 0
            for k in range(keep):
                s.g_left |= (<uint64_t>1) << order[k]
            n_left = keep
            s.g_phases -= 1 if s.g_phases > 1 else 0
        if n_left == 1:
            s.g_phase_sims = s.g_budget
        else:
            k = s.g_budget // (s.g_phases * n_left)
            s.g_phase_sims = (k if k > 1 else 1) * n_left
    best = -1
    fewest = 0
    bits = s.g_left
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        n = root_visits(P, s, slot, a)
        if best < 0 or n < fewest or (n == fewest and s.g_logit[a] > s.g_logit[best]):
            best = a
            fewest = n
    s.g_phase_sims -= 1
    s.g_budget -= 1
    return best


cdef int _finish(Pool* P, Slot* s, int slot, int* move, float* target) noexcept nogil:
    """The decision's move — argmax over the actions left of g + logit + sigma(q) — and
    the policy target ``target`` (52): softmax over the legal actions of logit +
    sigma(completed q), unvisited actions completed with the root value."""
    cdef uint64_t legal = rs_legal(&s.game), bits
    cdef int a, best = -1
    cdef float scale = _sigma_scale(P, s, slot), fallback = s.root_value[0]
    cdef float q, logit, top = -1e30, score, best_score = -1e30, z = 0.0
    memset(target, 0, ACTIONS_C * sizeof(float))
    bits = legal
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        q = root_q(P, s, slot, a, fallback)
        logit = log(s.root_prior[a] if s.root_prior[a] > 1e-12 else 1e-12)
        target[a] = logit + scale * q
        if target[a] > top:
            top = target[a]
        if (s.g_left >> a) & 1:
            score = s.g_logit[a] + scale * q
            if best < 0 or score > best_score:
                best = a
                best_score = score
    bits = legal
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        target[a] = exp(target[a] - top)
        z += target[a]
    bits = legal
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        target[a] /= z
    move[0] = best
    return 1


cdef RootRule RULE
RULE.start = _start
RULE.edge_prior = _edge_prior
RULE.select = _select
RULE.finish = _finish


def part():
    """This root rule's functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&RULE, b"blobcore.search.RootRule")
