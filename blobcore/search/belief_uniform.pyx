# cython: language_level=3
"""Uniform beliefs: every deal of the hidden cards consistent with the public record (cards
played, suits shown out of) is equally likely, in the decision's determinizations and in the
play-outs' worlds alike (blobcore/determinize.pyx). The bids are ignored."""
from blobcore.rules cimport RoundState
from blobcore.determinize cimport determinize_state
from blobcore.search.core cimport Pool, Slot, Beliefs
from blobcore.search.belief_bids cimport begin_nothing, answer_nothing
from blobcore.search.part cimport part_capsule


cdef void _world(Pool* P, Slot* s, RoundState* out) noexcept nogil:
    determinize_state(&s.game, s.game.current, &s.rng, out)


cdef void _leaf_world(Pool* P, Slot* s, const RoundState* leaf, RoundState* out) noexcept nogil:
    determinize_state(leaf, s.game.current, &s.rng, out)


cdef Beliefs BELIEFS
BELIEFS.begin = begin_nothing
BELIEFS.answer = answer_nothing
BELIEFS.decision_world = _world
BELIEFS.leaf_world = _leaf_world


def part():
    """These beliefs' functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&BELIEFS, b"blobcore.search.Beliefs")
