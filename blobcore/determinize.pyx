# cython: language_level=3
"""Determinization: sample the hidden cards uniformly among deals consistent with one
player's information.

What the viewer knows: their own hand, every card played (and by whom), each seat's
remaining hand size, and the suits each seat has shown out of (failed to follow,
including in the trick in progress). Because following suit is compulsory, a deal is
either consistent with this public record or impossible, so under a uniformly random
deal the posterior is *uniform over consistent deals*. We sample it exactly:

1. Unseen cards U = deck - own hand - played cards; some of them were never dealt
   (the undealt rest of the deck is an unconstrained "pile").
2. Seats with no known void (and the pile) accept any card: once the constrained seats
   are filled, the remainder is dealt by a uniform shuffle, and the number of ways to
   do that does not depend on *which* cards remain, only on how many.
3. Constrained seats are filled one at a time by suit *counts*. For seat j choosing
   counts x (x_k cards of suit k, only allowed suits, sum = hand size), the number of
   completions is prod_k binom(r_k, x_k) * W_{j+1}(r - x), where r are the unseen
   counts per suit left and W counts the ways to fill the remaining constrained seats
   (memoised recursion over (j, r)). We draw x with exactly that weight, then the
   concrete cards of each suit uniformly.

Every consistent deal is therefore produced with the same probability
1 / (#consistent deals): no rejection, no failure. docs/determinization.md says more.
"""
from libc.string cimport memset
from libc.stdint cimport uint64_t, uint32_t

from blobcore.rules cimport (RoundState, Round, Rng, rs_played_by, popcount64, ctz64,
                             nth_set_bit, suit_mask, MAX_PLAYERS_C, DECK_C, PHASE_DONE_C)
from blobcore.rng cimport RngState, rng_below, rng_uniform

cdef double BINOM[53][53]
cdef int _i, _j
for _i in range(53):
    BINOM[_i][0] = 1.0
    for _j in range(1, 53):
        BINOM[_i][_j] = 0.0 if _i == 0 else BINOM[_i - 1][_j - 1] + BINOM[_i - 1][_j]

cdef enum:
    MEMO_SIZE = 4096            # power of two; a full table only costs speed, never correctness
    MAX_COMPOSITIONS = 1140     # compositions of 17 cards into 4 suits: binom(20, 3)

cdef struct Problem:
    int m                       # constrained seats
    int seat[8]                 # their seats
    int need[8]                 # their remaining hand sizes
    int allowed[8]              # bit k: suit k allowed
    uint32_t memo_key[4096]     # 0 = empty, else key + 1
    double memo_val[4096]


cdef inline uint32_t _key(int j, const int* r) noexcept nogil:
    return ((<uint32_t>j) << 16) | ((<uint32_t>r[0]) << 12) | ((<uint32_t>r[1]) << 8) \
        | ((<uint32_t>r[2]) << 4) | (<uint32_t>r[3])


cdef int _compositions(const Problem* p, int j, const int* r, int* xs) noexcept nogil:
    """Write every count vector x (4 ints each) for constrained seat j into xs; return how many."""
    cdef int h = p.need[j], a = p.allowed[j], n = 0
    cdef int x0, x1, x2, x3, m0, m1, m2
    m0 = min(r[0], h) if a & 1 else 0
    for x0 in range(m0 + 1):
        m1 = min(r[1], h - x0) if a & 2 else 0
        for x1 in range(m1 + 1):
            m2 = min(r[2], h - x0 - x1) if a & 4 else 0
            for x2 in range(m2 + 1):
                x3 = h - x0 - x1 - x2
                if x3 > r[3] or (x3 > 0 and not (a & 8)):
                    continue
                xs[4 * n] = x0; xs[4 * n + 1] = x1; xs[4 * n + 2] = x2; xs[4 * n + 3] = x3
                n += 1
    return n


cdef double _ways(Problem* p, int j, int* r) noexcept nogil:
    """Number of ways to fill constrained seats j..m-1 from unseen suit counts r."""
    cdef uint32_t key, slot
    cdef int xs[4 * MAX_COMPOSITIONS]
    cdef int n, i, k, rest[4]
    cdef double total = 0.0, w
    if j == p.m:
        return 1.0
    key = _key(j, r) + 1
    slot = (key * <uint32_t>2654435761) & (MEMO_SIZE - 1)
    for i in range(16):   # short linear probe
        if p.memo_key[slot] == key:
            return p.memo_val[slot]
        if p.memo_key[slot] == 0:
            break
        slot = (slot + 1) & (MEMO_SIZE - 1)
    n = _compositions(p, j, r, xs)
    for i in range(n):
        w = 1.0
        for k in range(4):
            w *= BINOM[r[k]][xs[4 * i + k]]
            rest[k] = r[k] - xs[4 * i + k]
        total += w * _ways(p, j + 1, rest)
    if p.memo_key[slot] == 0:
        p.memo_key[slot] = key
        p.memo_val[slot] = total
    return total


cdef void _setup(const RoundState* s, int viewer, Problem* p, int* r, uint64_t* unseen) noexcept nogil:
    cdef int seat, k
    cdef uint64_t full = ((<uint64_t>1) << DECK_C) - 1
    unseen[0] = full & ~(s.hands[viewer] | s.played)
    for k in range(4):
        r[k] = popcount64(unseen[0] & suit_mask(k))
    p.m = 0
    for seat in range(s.n_players):
        if seat == viewer or s.hands[seat] == 0 or s.void_suits[seat] == 0:
            continue
        p.seat[p.m] = seat
        p.need[p.m] = popcount64(s.hands[seat])
        p.allowed[p.m] = (~s.void_suits[seat]) & 0xF
        p.m += 1
    if p.m > 0:   # the memo is only read for constrained seats; skip clearing it otherwise
        memset(p.memo_key, 0, sizeof(p.memo_key))


cdef double count_deals_state(const RoundState* s, int viewer) noexcept nogil:
    """Number of hidden deals consistent with ``viewer``'s information (as a double).

    Counts assignments of unseen cards to the other seats' hands; which unseen cards
    stayed undealt is not distinguished (it is not part of any hand)."""
    cdef Problem p
    cdef int r[4], seat, left, h
    cdef uint64_t unseen
    cdef double ways
    _setup(s, viewer, &p, r, &unseen)
    ways = _ways(&p, 0, r)
    # The unconstrained seats draw, in turn, from whatever the constrained ones left.
    left = popcount64(unseen)
    for seat in range(p.m):
        left -= p.need[seat]
    for seat in range(s.n_players):
        if seat == viewer or s.hands[seat] == 0 or s.void_suits[seat] != 0:
            continue
        h = popcount64(s.hands[seat])
        ways *= BINOM[left][h]
        left -= h
    return ways


cdef void determinize_state(const RoundState* s, int viewer, RngState* rng,
                            RoundState* out) noexcept nogil:
    """Copy ``s`` into ``out`` with every other seat's hidden hand resampled uniformly
    among the deals consistent with ``viewer``'s information."""
    cdef Problem p
    cdef int r[4], xs[4 * MAX_COMPOSITIONS], rest[4]
    cdef double weights[MAX_COMPOSITIONS]
    cdef double total, u, w
    cdef int j, i, k, n, chosen, seat, take, pool_n, h, t, tmp
    cdef int pool[52]
    cdef uint64_t unseen, suit_left, hand
    out[0] = s[0]
    if s.phase == PHASE_DONE_C:
        return
    _setup(s, viewer, &p, r, &unseen)
    for j in range(p.m):
        n = _compositions(&p, j, r, xs)
        total = 0.0
        for i in range(n):
            w = 1.0
            for k in range(4):
                w *= BINOM[r[k]][xs[4 * i + k]]
                rest[k] = r[k] - xs[4 * i + k]
            w *= _ways(&p, j + 1, rest)
            weights[i] = w
            total += w
        u = rng_uniform(rng) * total
        chosen = n - 1
        for i in range(n):
            u -= weights[i]
            if u < 0.0 and weights[i] > 0.0:
                chosen = i
                break
        while weights[chosen] <= 0.0 and chosen > 0:   # guard against rounding at the tail
            chosen -= 1
        hand = 0
        for k in range(4):
            take = xs[4 * chosen + k]
            suit_left = unseen & suit_mask(k)
            for t in range(take):
                i = nth_set_bit(suit_left, rng_below(rng, r[k] - t))
                suit_left &= ~((<uint64_t>1) << i)
                hand |= (<uint64_t>1) << i
            r[k] -= take
        unseen &= ~hand
        seat = p.seat[j]
        out.hands[seat] = hand
        out.dealt[seat] = hand | rs_played_by(s, seat)
    # Everything left goes to the unconstrained seats by a uniform partial shuffle.
    pool_n = 0
    while unseen:
        pool[pool_n] = ctz64(unseen)
        pool_n += 1
        unseen &= unseen - 1
    i = 0
    for seat in range(s.n_players):
        if seat == viewer or s.hands[seat] == 0 or s.void_suits[seat] != 0:
            continue
        h = popcount64(s.hands[seat])
        hand = 0
        for t in range(h):
            k = i + rng_below(rng, pool_n - i)
            tmp = pool[i]; pool[i] = pool[k]; pool[k] = tmp
            hand |= (<uint64_t>1) << pool[i]
            i += 1
        out.hands[seat] = hand
        out.dealt[seat] = hand | rs_played_by(s, seat)


def _viewer_of(Round rnd, viewer):
    if viewer is None:
        viewer = rnd.st.current
        if viewer < 0:
            raise ValueError("the round is over: pass the viewer seat explicitly")
    if not 0 <= viewer < rnd.st.n_players:
        raise ValueError(f"viewer must be a seat 0..{rnd.st.n_players - 1}, got {viewer}")
    return viewer


def determinize(Round rnd, viewer=None, rng=None):
    """A copy of ``rnd`` whose hidden hands (all seats but ``viewer``, default: the player
    to move) are resampled uniformly among deals consistent with what ``viewer`` knows.

    rng: an ``Rng`` (advanced in place), an int seed, or None for seed 0."""
    cdef int v = _viewer_of(rnd, viewer)
    cdef Rng r = rng if isinstance(rng, Rng) else Rng(0 if rng is None else rng)
    cdef Round out = Round.__new__(Round)
    with nogil:
        determinize_state(&rnd.st, v, &r.s, &out.st)
    return out


def count_consistent_deals(Round rnd, viewer=None):
    """How many assignments of the unseen cards to the other seats' hands are consistent
    with ``viewer``'s information (exact for counts below 2**53)."""
    cdef int v = _viewer_of(rnd, viewer)
    return int(round(count_deals_state(&rnd.st, v)))
