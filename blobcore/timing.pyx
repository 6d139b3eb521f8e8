# cython: language_level=3
"""Timing kernels for ``blobzero bench core``: tight nogil loops over the core's C API,
so the figures measure the engine, not the Python around it. Each returns a checksum
that depends on all the work, which keeps the compiler from optimising it away."""
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t

from blobcore.rules cimport (RoundState, Round, rs_deal_random, rs_random_playout, rs_score)
from blobcore.encode cimport encode_state, OBS_SIZE_C, ACTIONS_C
from blobcore.determinize cimport determinize_state
from blobcore.rng cimport RngState, rng_seed


cdef RoundState* _gather(list rounds) except NULL:
    cdef RoundState* arr = <RoundState*>malloc(len(rounds) * sizeof(RoundState))
    cdef Round r
    if arr == NULL:
        raise MemoryError()
    for i, r in enumerate(rounds):
        arr[i] = r.st
    return arr


def random_rounds(long n_rounds, int n_players, int cards, uint64_t seed):
    """Deal and play ``n_rounds`` complete rounds with uniformly random legal actions."""
    cdef RoundState s
    cdef RngState rng
    cdef long i
    cdef uint64_t check = 0
    rng_seed(&rng, seed)
    with nogil:
        for i in range(n_rounds):
            rs_deal_random(&s, n_players, cards, -1, -1, &rng)
            check += rs_random_playout(&s, &rng) + rs_score(&s, 0)
    return check


def copy_states(long n, list rounds):
    """Copy RoundState structs ``n`` times between two arrays."""
    cdef int k = len(rounds)
    cdef RoundState* src = _gather(rounds)
    cdef RoundState* dst = _gather(rounds)
    cdef long i
    cdef uint64_t check = 0
    with nogil:
        for i in range(n):
            dst[i % k] = src[(i * 7) % k]
            check += dst[i % k].n_actions
            src[(i * 3) % k].n_actions ^= 1     # the copies must really happen each time
    free(src)
    free(dst)
    return check


def encode_states(long n, list rounds):
    """Encode ``n`` states (cycling through ``rounds``) into one 256 + 52 buffer."""
    cdef int k = len(rounds)
    cdef RoundState* arr = _gather(rounds)
    cdef float obs[OBS_SIZE_C]
    cdef float mask[ACTIONS_C]
    cdef long i
    cdef double check = 0.0
    with nogil:
        for i in range(n):
            encode_state(&arr[i % k], obs, mask)
            check += obs[(i * 13) % OBS_SIZE_C] + mask[i % ACTIONS_C]
    free(arr)
    return check


def determinize_states(long n, list rounds, uint64_t seed):
    """Sample ``n`` determinizations for the player to move (cycling through ``rounds``)."""
    cdef int k = len(rounds)
    cdef RoundState* arr = _gather(rounds)
    cdef RoundState out
    cdef RngState rng
    cdef long i
    cdef uint64_t check = 0
    rng_seed(&rng, seed)
    with nogil:
        for i in range(n):
            determinize_state(&arr[i % k], arr[i % k].current, &rng, &out)
            check += out.hands[(i + 1) % out.n_players] & 0xFFFF
    free(arr)
    return check
