# cython: language_level=3
"""Leaf value: a world value (``search.rollout = "world"``). Each new leaf's world — drawn
afresh by the beliefs for the searcher's information there (``rollout_resample``; else the
determinization the tree was built in), exactly the world a play-out would be played in — is
encoded whole (``blobcore.encode.encode_world``: the mover's view plus every other hand) beside
its observation, and a world-value model (trainer/world_model.py, served like BlobNet) answers
every seat's expected normalised round score in that deal. The leaf's value is (1 - lambda) x
the network's + lambda x the world value (lambda as for a play-out: ``bid_rollout_weight``
while the decision searched is a bid, else ``rollout_weight``). One batched network call per
leaf stands in for a play-out's 20-odd moves of a built-in player (docs/search.md, "World
values"). It plays no play-out, so with ``leaf_samples`` (self-play) the pool plays the few leaf
worlds its reservoir keeps out with ``expert`` to label them (blobcore/search/labels.pxd): the
world value keeps learning while it is the one in use."""
from blobcore.rules cimport RoundState, PHASE_BID_C
from blobcore.search.core cimport Pool, Slot, LeafValue
from blobcore.search.tree cimport to_absolute
from blobcore.search.part cimport part_capsule


cdef void _evaluate(Pool* P, Slot* s, const RoundState* leaf, float* value) noexcept nogil:
    cdef float world[8]
    cdef float lam = P.p.bid_rollout_weight if s.game.phase == PHASE_BID_C else P.p.rollout_weight
    cdef int k
    if lam <= 0 or P.leaf_world == NULL:
        return
    to_absolute(P.leaf_world, leaf.current, leaf.n_players, world)
    for k in range(leaf.n_players):
        value[k] = (1.0 - lam) * value[k] + lam * world[k]


cdef LeafValue LEAF
LEAF.evaluate = _evaluate
LEAF.needs_world = 1


def part():
    """This leaf value's functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&LEAF, b"blobcore.search.LeafValue")
