# Small, fast, seedable random numbers for nogil code (SplitMix64).
# Deterministic across platforms: the same seed gives the same games everywhere.
from libc.stdint cimport uint64_t

cdef struct RngState:
    uint64_t state


cdef inline void rng_seed(RngState* r, uint64_t seed) noexcept nogil:
    r.state = seed ^ <uint64_t>0x5DEECE66D2545F49


cdef inline uint64_t rng_next(RngState* r) noexcept nogil:
    cdef uint64_t z
    r.state += <uint64_t>0x9E3779B97F4A7C15
    z = r.state
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline int rng_below(RngState* r, int n) noexcept nogil:
    """Uniform integer in [0, n) for 0 < n < 2**31 (Lemire's multiply-shift; bias < n / 2**32)."""
    return <int>(((rng_next(r) >> 32) * <uint64_t>n) >> 32)


cdef inline double rng_uniform(RngState* r) noexcept nogil:
    """Uniform double in [0, 1) with 53 random bits."""
    return <double>(rng_next(r) >> 11) * (1.0 / 9007199254740992.0)
