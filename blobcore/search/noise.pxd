# Random variates for root noise (nogil, from the slot's own generator).
from libc.math cimport sqrt, log, pow, cos

from blobcore.rng cimport RngState, rng_uniform


cdef inline double normal_variate(RngState* rng) noexcept nogil:
    """N(0, 1) (Box-Muller)."""
    cdef double u1 = rng_uniform(rng), u2 = rng_uniform(rng)
    if u1 < 1e-300:
        u1 = 1e-300
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)


cdef inline double gamma_variate(RngState* rng, double alpha) noexcept nogil:
    """Gamma(alpha, 1) variate (Marsaglia-Tsang; boosted for alpha < 1)."""
    cdef double d, c, x, v, u
    if alpha < 1.0:
        u = rng_uniform(rng)
        return gamma_variate(rng, alpha + 1.0) * pow(u if u > 1e-300 else 1e-300, 1.0 / alpha)
    d = alpha - 1.0 / 3.0
    c = 1.0 / sqrt(9.0 * d)
    while True:
        x = normal_variate(rng)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = rng_uniform(rng)
        if log(u if u > 1e-300 else 1e-300) < 0.5 * x * x + d - d * v + d * log(v):
            return d * v
