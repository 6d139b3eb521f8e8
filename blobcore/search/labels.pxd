# Labelled leaf worlds (``search.leaf_samples``): each slot keeps a reservoir of K of its round's
# play-outs — the world each was played in, its moves to the end and what it scored — for the
# world-value model (trainer/leaf_worlds.py). The play-out leaf value keeps the play-outs it plays
# anyway (leaf_playout.pyx); the world leaf value plays none, so the worlds it keeps are played
# out here by ``Params.label_player`` (pool.pyx). Inline: both compile it in.
from libc.string cimport memcpy
from blobcore.rules cimport RoundState, rs_apply, PHASE_DONE_C
from blobcore.rng cimport rng_below
from blobcore.builtin cimport builtin_action
from blobcore.search.core cimport Pool, Slot, LeafSample
from blobcore.search.tree cimport terminal_value


cdef inline int reservoir_slot(Pool* P, Slot* s) noexcept nogil:
    """Where the round's next play-out goes in the slot's reservoir of K: its index, or -1 when
    it is not kept (after n play-outs each is kept with chance K / n)."""
    cdef int j
    s.leaf_seen += 1
    if s.n_leaf_samples < P.p.leaf_samples:
        s.n_leaf_samples += 1
        return s.n_leaf_samples - 1
    j = rng_below(&s.rng, s.leaf_seen)
    return j if j < P.p.leaf_samples else -1


cdef inline void keep_sample(Slot* s, int j, const RoundState* done, int leaf_n,
                             const float* scores) noexcept nogil:
    """Store a play-out (``done``: its world at the end of the round, the leaf ``leaf_n``
    actions in; its normalised ``scores`` by seat) in reservoir place ``j``."""
    cdef LeafSample* out = &s.leaf_samples[j]
    memcpy(out.dealt, done.dealt, sizeof(out.dealt))
    memcpy(out.actions, done.actions, sizeof(out.actions))
    out.n_actions = done.n_actions
    out.leaf_n = leaf_n
    out.ply = s.game.n_actions
    memcpy(out.scores, scores, sizeof(out.scores))


cdef inline void label_world(Pool* P, Slot* s, const RoundState* world) noexcept nogil:
    """A leaf valued without a play-out (world values): if the reservoir keeps it, play
    ``world`` out with ``P.p.label_player`` to label it (K play-outs a round at most, not one a
    leaf)."""
    cdef int j
    cdef RoundState w
    cdef float scores[8]
    if P.p.leaf_samples <= 0 or world.phase == PHASE_DONE_C:
        return
    j = reservoir_slot(P, s)
    if j < 0:
        return
    w = world[0]
    while w.phase != PHASE_DONE_C:
        rs_apply(&w, builtin_action(P.p.label_player, &w, &s.rng))
    terminal_value(&w, scores)
    keep_sample(s, j, &w, world.n_actions, scores)
