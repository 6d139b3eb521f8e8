from blobcore.rules cimport RoundState
from blobcore.search.core cimport Pool, Slot

cdef int begin_nothing(Pool* P, Slot* s) noexcept nogil
cdef void answer_nothing(Pool* P, Slot* s, const float* policy, const float* beliefs) noexcept nogil
cdef void bid_world(Pool* P, Slot* s, RoundState* out) noexcept nogil
cdef void bid_leaf_world(Pool* P, Slot* s, const RoundState* leaf, RoundState* out) noexcept nogil
