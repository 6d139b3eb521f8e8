from blobcore.rules cimport RoundState
from blobcore.rng cimport RngState

cdef void sample_world(const RoundState* s, int viewer, RngState* rng, RoundState* out,
                       int candidates, double temperature) noexcept nogil
