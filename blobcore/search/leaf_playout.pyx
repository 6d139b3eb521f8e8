# cython: language_level=3
"""Leaf value: a play-out by a built-in player (``search.rollout`` names it). From the leaf,
in a world the beliefs draw for the searcher's information there (``rollout_resample``; else
in the determinization the tree was built in), every seat plays that player to the end of the
round; the leaf's value is (1 - lambda) x the network's + lambda x the play-out's normalised
scores (AlphaGo's mixing; lambda = ``bid_rollout_weight`` while the decision searched is a
bid, else ``rollout_weight``). With ``world_share`` = mu > 0 the play-out's scores are
blended with a world-value model's value of the leaf's world (the pool draws and encodes that
world separately, as for the world leaf value): (1 - mu) x play-out + mu x world value, two
deals averaged and one of them valued without the play-out's noise.

With ``leaf_samples`` = K > 0 (self-play's ``selfplay.leaf_worlds``) the slot also keeps a
uniform sample (a reservoir) of K of the round's play-outs: the world each was played in, its
moves to the end and what it scored (blobcore/search/labels.pxd). They go into the round's
record, and the trainer learns the world value from them (trainer/leaf_worlds.py): the
play-outs of self-play teach the model that replaces them."""
from blobcore.rules cimport RoundState, rs_apply, PHASE_BID_C, PHASE_DONE_C
from blobcore.builtin cimport builtin_action
from blobcore.search.core cimport Pool, Slot, LeafValue
from blobcore.search.labels cimport reservoir_slot, keep_sample
from blobcore.search.tree cimport terminal_value, to_absolute
from blobcore.search.part cimport part_capsule


cdef void _evaluate(Pool* P, Slot* s, const RoundState* leaf, float* value) noexcept nogil:
    cdef RoundState w
    cdef float scores[8]
    cdef float world[8]
    cdef int leaf_n, j
    cdef float lam = P.p.bid_rollout_weight if s.game.phase == PHASE_BID_C else P.p.rollout_weight
    cdef int k
    if lam <= 0:
        return
    if P.p.rollout_resample:      # the hidden cards as the searcher might see them here
        P.beliefs.leaf_world(P, s, leaf, &w)
    else:
        w = leaf[0]
    leaf_n = w.n_actions
    while w.phase != PHASE_DONE_C:
        rs_apply(&w, builtin_action(P.p.rollout, &w, &s.rng))
    terminal_value(&w, scores)
    if P.p.leaf_samples > 0 and leaf_n < w.n_actions:      # a play-out, not a finished round
        j = reservoir_slot(P, s)
        if j >= 0:
            keep_sample(s, j, &w, leaf_n, scores)
    if P.p.world_share > 0 and P.leaf_world != NULL:
        to_absolute(P.leaf_world, leaf.current, leaf.n_players, world)
        for k in range(w.n_players):
            scores[k] = (1.0 - P.p.world_share) * scores[k] + P.p.world_share * world[k]
    for k in range(w.n_players):
        value[k] = (1.0 - lam) * value[k] + lam * scores[k]


cdef LeafValue LEAF
LEAF.evaluate = _evaluate


def part():
    """This leaf value's functions, for the pool (blobcore/search/parts.py)."""
    return part_capsule(&LEAF, b"blobcore.search.LeafValue")
