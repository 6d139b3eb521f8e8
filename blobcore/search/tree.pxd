# The tree: nodes and edges in one arena per slot, expansion, PUCT selection and backup.
# Everything is inline: the driver (pool.pyx) and the root rules compile it in.
from libc.string cimport memset, memcpy
from libc.math cimport sqrt
from libc.stdint cimport uint64_t

from blobcore.rules cimport (RoundState, rs_legal, rs_apply, rs_score, popcount64, ctz64,
                             PHASE_DONE_C)
from blobcore.search.core cimport Pool, Slot, Node, Edge, SEATS_C


cdef inline Node* slot_nodes(Pool* P, int slot) noexcept nogil:
    return &P.nodes[<size_t>slot * P.p.node_cap]


cdef inline Edge* slot_edges(Pool* P, int slot) noexcept nogil:
    return &P.edges[<size_t>slot * P.p.edge_cap]


cdef inline void init_edge(Edge* e, int action, float prior) noexcept nogil:
    """A fresh, unvisited edge to a child not created yet."""
    e.child = -1
    e.n = 0
    e.w = 0
    e.prior = prior
    e.action = action


cdef inline void terminal_value(const RoundState* st, float* out) noexcept nogil:
    """Exact normalised scores by absolute seat."""
    cdef int i
    memset(out, 0, SEATS_C * sizeof(float))
    for i in range(st.n_players):
        out[i] = rs_score(st, i) / (10.0 + st.cards)


cdef inline void to_absolute(const float* rel, int mover, int n, float* out) noexcept nogil:
    """A value ordered from ``mover`` (relative seat 0 first) -> by absolute seat."""
    cdef int k
    memset(out, 0, SEATS_C * sizeof(float))
    for k in range(n):
        out[(mover + k) % n] = rel[k]


cdef inline void advance_forced(RoundState* st) noexcept nogil:
    """Play moves with a single legal action (no node, no evaluation)."""
    cdef uint64_t legal
    while st.phase != PHASE_DONE_C:
        legal = rs_legal(st)
        if popcount64(legal) != 1:
            return
        rs_apply(st, ctz64(legal))


cdef inline void set_edges(Slot* s, Edge* ed, Node* x, const float* policy) noexcept nogil:
    """Create ``x``'s edges, one per legal action, priors = ``policy`` masked and renormalised
    (uniform when it gives the legal actions no mass)."""
    cdef uint64_t legal = rs_legal(&x.state), bits
    cdef int a, k = s.n_edges, n_legal = popcount64(legal)
    cdef float total = 0.0
    bits = legal
    while bits:
        a = ctz64(bits)
        bits &= bits - 1
        total += policy[a] if policy[a] > 0 else 0
    x.first_edge = k
    while legal:
        a = ctz64(legal)
        legal &= legal - 1
        init_edge(&ed[k], a, (policy[a] if policy[a] > 0 else 0) / total if total > 0
                  else 1.0 / n_legal)
        k += 1
    x.n_edges = k - s.n_edges
    s.n_edges = k


cdef inline int puct_select(const Node* cur, const Edge* ed, float c_puct) noexcept nogil:
    """The edge of ``cur`` with the best q + U (unvisited edges valued at the node's value for
    its mover: first-play urgency)."""
    cdef int e, best = cur.first_edge
    cdef float q, u, score, best_score = -1e30
    cdef float sqrt_n = sqrt(<float>(cur.visits if cur.visits > 0 else 1))
    cdef float fpu = cur.value[cur.state.current]
    for e in range(cur.first_edge, cur.first_edge + cur.n_edges):
        q = ed[e].w / ed[e].n if ed[e].n > 0 else fpu
        u = c_puct * ed[e].prior * sqrt_n / (1.0 + ed[e].n)
        score = q + u
        if score > best_score:
            best_score = score
            best = e
    return best


cdef inline void backup(Node* nd, Edge* ed, const int* path_node, const int* path_edge,
                        int depth, int leaf, const float* value_abs) noexcept nogil:
    """Credit ``value_abs`` (by absolute seat) along the path: each edge gets the value of
    the seat that chose it; each node accumulates the whole vector."""
    cdef int i, k
    cdef Node* x
    for i in range(depth):
        x = &nd[path_node[i]]
        ed[path_edge[i]].w += value_abs[x.state.current]
        for k in range(SEATS_C):
            x.wsum[k] += value_abs[k]
    x = &nd[leaf]
    x.visits += 1
    for k in range(SEATS_C):
        x.wsum[k] += value_abs[k]


cdef inline int root_visits(Pool* P, Slot* s, int slot, int a) noexcept nogil:
    """Visits of root action ``a`` in this decision so far (all determinizations)."""
    cdef Node* root = slot_nodes(P, slot)
    cdef Edge* ed = slot_edges(P, slot)
    cdef int e, n = s.visits_acc[a]
    if s.n_nodes > 0:
        for e in range(root.first_edge, root.first_edge + root.n_edges):
            if ed[e].action == a:
                n += ed[e].n
    return n


cdef inline float root_q(Pool* P, Slot* s, int slot, int a, float fallback) noexcept nogil:
    """Mean value of root action ``a`` for the mover so far, or ``fallback`` if unvisited."""
    cdef Node* root = slot_nodes(P, slot)
    cdef Edge* ed = slot_edges(P, slot)
    cdef int e, n = s.visits_acc[a]
    cdef float w = s.w_acc[a]
    if s.n_nodes > 0:
        for e in range(root.first_edge, root.first_edge + root.n_edges):
            if ed[e].action == a:
                n += ed[e].n
                w += ed[e].w
    return w / n if n > 0 else fallback
