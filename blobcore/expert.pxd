from blobcore.rules cimport RoundState

cdef int expert_action(const RoundState* s) noexcept nogil
cdef double expert_bid_likelihood(const RoundState* world, int seat, double temperature) noexcept nogil
