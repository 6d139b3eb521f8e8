# cython: language_level=3
"""Beliefs from the bids: the hidden hands of every world are drawn from
``inference_candidates`` uniform consistent deals, weighted by how likely each other seat's
bid was with that hand under a soft expert (blobcore/inference.pyx); one candidate is the
uniform draw. Needs no network rows."""
from blobcore.rules cimport RoundState
from blobcore.inference cimport sample_world
from blobcore.search.core cimport Pool, Slot, Beliefs
from blobcore.search.part cimport part_capsule


cdef int begin_nothing(Pool* P, Slot* s) noexcept nogil:
    s.belief_rows = 0
    return 1


cdef void answer_nothing(Pool* P, Slot* s, const float* policy, const float* beliefs) noexcept nogil:
    s.belief_rows = 0


cdef void bid_world(Pool* P, Slot* s, RoundState* out) noexcept nogil:
    sample_world(&s.game, s.game.current, &s.rng, out, P.p.infer_candidates,
                 P.p.infer_temperature)


cdef void bid_leaf_world(Pool* P, Slot* s, const RoundState* leaf, RoundState* out) noexcept nogil:
    sample_world(leaf, s.game.current, &s.rng, out, P.p.infer_candidates, P.p.infer_temperature)


cdef Beliefs BELIEFS
BELIEFS.begin = begin_nothing
BELIEFS.answer = answer_nothing
BELIEFS.decision_world = bid_world
BELIEFS.leaf_world = bid_leaf_world


def part():
    """These beliefs' functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&BELIEFS, b"blobcore.search.Beliefs")
