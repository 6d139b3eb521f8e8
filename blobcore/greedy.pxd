from blobcore.rules cimport RoundState

cdef int greedy_action(const RoundState* s) noexcept nogil
