# The built-in players in C: one table, looked up by code (blobcore/builtin.pyx).
from blobcore.rules cimport RoundState
from blobcore.rng cimport RngState

#: A built-in player: the action it takes in ``s`` (rng for players that draw at random).
ctypedef int (*BuiltinAction)(const RoundState* s, RngState* rng) noexcept nogil

cdef enum:
    MAX_BUILTINS_C = 16

cdef BuiltinAction BUILTIN_ACTIONS[16]
cdef int N_BUILTINS


cdef inline int builtin_action(int code, const RoundState* s, RngState* rng) noexcept nogil:
    """The action of the built-in player with agent code ``code`` (-1, -2, ...)."""
    return BUILTIN_ACTIONS[-code - 1](s, rng)
