from blobcore.rules cimport RoundState

cdef int expert_action(const RoundState* s) noexcept nogil
