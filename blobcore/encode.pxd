from blobcore.rules cimport RoundState

cdef enum:
    OBS_SIZE_C = 256
    ACTIONS_C = 52
    WORLD_SIZE_C = 620          # a whole deal: the mover's observation + 7 x 52 other hands

cdef void encode_state(const RoundState* s, float* obs, float* mask) noexcept nogil
cdef void encode_view(const RoundState* s, int observer, float* obs, float* mask) noexcept nogil
cdef void encode_world(const RoundState* s, float* out) noexcept nogil
