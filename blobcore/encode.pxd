from blobcore.rules cimport RoundState

cdef enum:
    OBS_SIZE_C = 256
    ACTIONS_C = 52

cdef void encode_state(const RoundState* s, float* obs, float* mask) noexcept nogil
cdef void encode_view(const RoundState* s, int observer, float* obs, float* mask) noexcept nogil
