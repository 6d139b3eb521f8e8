# cython: language_level=3
"""Leaf value: the network's value of the leaf position, as it is (``search.rollout = "none"``)."""
from blobcore.rules cimport RoundState
from blobcore.search.core cimport Pool, Slot, LeafValue
from blobcore.search.part cimport part_capsule


cdef void _evaluate(Pool* P, Slot* s, const RoundState* leaf, float* value) noexcept nogil:
    pass


cdef LeafValue LEAF
LEAF.evaluate = _evaluate


def part():
    """This leaf value's functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&LEAF, b"blobcore.search.LeafValue")
