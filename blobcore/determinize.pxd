from blobcore.rules cimport RoundState
from blobcore.rng cimport RngState

cdef void determinize_state(const RoundState* s, int viewer, RngState* rng,
                            RoundState* out) noexcept nogil
cdef double count_deals_state(const RoundState* s, int viewer) noexcept nogil
