# The search's shared C types: the tree's nodes and edges, a round slot, the settings, and
# the interfaces of the parts (root rule, leaf value, beliefs). Every part module cimports
# this file; blobcore/search/pool.pyx is the driver that owns the memory. No Python objects
# live in any of these structs. docs/search.md ("The search as parts") explains the pieces.
from libc.stdint cimport uint64_t, uint32_t, uint16_t, int32_t, int8_t

from blobcore.rules cimport RoundState
from blobcore.rng cimport RngState

cdef enum:
    SEATS_C = 8
    MAX_EDGES = 18            # legal actions never exceed C + 1 <= 18
    MAX_DEPTH = 64
    MAX_LEAVES = 8
    MAX_DECISIONS = 60
    CACHE_SIZE = 32           # power of two, per slot, cleared at every decision
    MAX_POLICY_DEALS = 32     # policy-based inference: candidate deals per decision
    MAX_LEAF_SAMPLES = 64     # labelled leaf worlds kept per round (search.leaf_samples)
    # slot status
    S_EMPTY = 0
    S_RUNNING = 1
    S_FINISHED = 2


cdef struct Edge:
    int32_t child             # node index in the slot's arena, -1 = not created yet
    int32_t n                 # visits (a pending visit counts: virtual loss)
    float w                   # summed value for the seat that chooses this edge
    float prior
    int32_t action


cdef struct Node:
    RoundState state
    int32_t first_edge
    int32_t n_edges
    int32_t visits
    int8_t expanded           # priors and value known
    int8_t terminal
    float value[8]            # by absolute seat: leaf value, or exact scores if terminal
    float wsum[8]             # summed backed-up values by absolute seat


cdef struct Pending:
    int32_t row               # batch row holding this leaf's observation
    int32_t node              # node to expand; -1 = the decision's root evaluation
    int32_t depth
    int path_node[64]
    int path_edge[64]
    uint64_t key


cdef struct CacheEntry:
    uint64_t key              # 0 = empty
    uint32_t generation
    float policy[52]
    float value[8]            # relative to the player to move, as the evaluator returns it
    float world[8]            # the world value of the leaf's world, relative to its mover


cdef struct LeafSample:
    # One world a play-out valued at a leaf, and what it scored: a labelled whole deal for the
    # world-value model (trainer/leaf_worlds.py). ``actions[:n_actions]`` is the whole round in
    # that world: the round's actions up to ``ply`` (the decision searched), the tree's path to
    # the leaf (up to ``leaf_n``), then the play-out's moves to the end.
    uint64_t dealt[8]         # the world's deal: each seat's cards as dealt
    int8_t actions[60]
    int8_t n_actions
    int8_t ply
    int8_t leaf_n
    float scores[8]           # the play-out's normalised scores by absolute seat


cdef struct Slot:
    int status
    RoundState game
    RngState rng
    uint64_t seed
    long round_id
    # --- the decision being searched ---
    int in_decision
    int root_ready
    int det_index
    int sims_started          # simulations begun in the current determinization
    float root_prior[52]
    float root_value[8]       # relative to the mover
    float noise[52]           # PUCT root: Dirichlet noise mixed into the priors
    int32_t visits_acc[52]
    float w_acc[52]           # summed root-edge values over determinizations
    float value_acc[8]        # absolute seats, summed over determinizations
    int searched_decisions
    # --- per-round record of searched decisions ---
    int n_decisions
    int8_t dec_ply[60]
    int8_t dec_player[60]
    uint16_t dec_visits[60][52]
    float dec_value[60][8]
    float dec_q[60][52]       # mean value of each root action for the mover
    float dec_policy[60][52]  # the policy target when it is not the visit counts (Gumbel root)
    # --- Gumbel root (blobcore/search/root_gumbel.pyx) ---
    float g_logit[52]         # Gumbel sample (self-play) + log prior; legal actions only
    uint64_t g_left           # actions still in the halving
    int g_phases              # phases the budget is split into
    int g_phase_sims          # simulations left in the current phase
    int g_budget              # simulations left for the decision
    int stop_after            # searched decisions after which the round stops (0 = never)
    int start_ply             # actions already in the history when the slot started
    # --- seats (blobcore/search/seats.pxd) ---
    int8_t agent[8]           # per seat, bidding: evaluator index for its searches, or a built-in code < 0
    int8_t agent_play[8]      # per seat, card play (the same as ``agent`` unless the spec splits them)
    # --- tree arena (offsets into the pool's node/edge arrays) ---
    int n_nodes
    int n_edges
    int n_pending
    Pending pending[8]
    uint32_t cache_gen
    CacheEntry cache[32]
    # --- policy-based beliefs (blobcore/search/belief_policy.pyx) ---
    int belief_rows           # rows the beliefs wait on in the current batch (0 = none)
    int belief_row0           # first of those rows
    int pol_n                 # candidate deals weighed for this decision (0 = none)
    double pol_total          # sum of pol_w
    uint64_t pol_hands[32][8] # each candidate's hands (the searcher's own hand included)
    double pol_logw[32]       # log-likelihood of the other seats' observed actions
    double pol_w[32]          # weights, max-normalised
    int8_t pol_row_cand[1920] # per row: candidate (rows <= 32 candidates x 60 actions)
    int8_t pol_row_action[1920]
    int8_t pol_row_legal[1920]
    # --- learned beliefs (blobcore/search/belief_learned.pyx) ---
    int learned_ready         # 1: belief_p holds the decision's learned belief
    float belief_p[52][8]     # per card, P(holder class): 0 = nobody, r = r-th seat after the searcher
    # --- labelled leaf worlds (search.leaf_samples; blobcore/search/leaf_playout.pyx) ---
    int leaf_seen             # play-outs of this round so far (the reservoir's count)
    int n_leaf_samples
    LeafSample leaf_samples[64]   # a uniform sample of the round's play-outs (reservoir)


cdef struct Params:
    int D, S, leaves, skip_forced, add_noise, temperature_moves
    int view_searcher         # 1: encode every position from the searching player's view
    int rollout               # built-in code (< 0) of the play-out player; 0 = none
    int rollout_resample      # 1: play each leaf out in a freshly sampled world
    int wants_world           # 1: each leaf's world is encoded and valued by the world-value model
    float world_share         # share of a play-out's score taken from that world value instead
    int leaf_samples          # play-outs kept per round as labelled worlds (0 = none)
    int label_player          # built-in code of the player whose play-outs label them
    int gumbel_m              # Gumbel root: actions considered
    float c_visit, c_scale    # Gumbel root: sigma(q) = (c_visit + max N) * c_scale * q
    int infer_candidates      # bid-model beliefs: hidden-hand samples weighed per world (1 = uniform)
    int pol_k                 # policy-based beliefs: candidate deals per decision (0 = off)
    float pol_temperature     # its likelihood is raised to 1 / pol_temperature
    float rollout_weight, infer_temperature
    float bid_rollout_weight  # lambda when the decision searched is a bid
    float c_puct, alpha, eps, temperature
    int node_cap, edge_cap


cdef struct Counters:
    long simulations, leaves, cache_hits, terminal_leaves, decisions, forced_moves, rounds
    long inference_rows


cdef struct Pool


# --- the parts' interfaces --------------------------------------------------------------
# Each part module fills one of these structs and hands it out as a PyCapsule from
# ``part()``; the pool copies it at construction (blobcore/search/parts.py names them).
# ``part()``; the pool copies it at construction (blobcore/search_config.py names them).

cdef struct RootRule:
    # the decision's root priors and value are known: draw noise, plan the root's budget
    void (*start)(Pool* P, Slot* s) noexcept nogil
    # the prior of root edge ``a`` in a new determinization
    float (*edge_prior)(Pool* P, Slot* s, int a) noexcept nogil
    # the root action of the next simulation, or -1 to select by PUCT like any node
    int (*select)(Pool* P, Slot* s, int slot) noexcept nogil
    # after D determinizations: the move to play (temperature included) and the policy
    # target (52 floats) when it is not the visit counts; returns 1 if ``target`` was written
    int (*finish)(Pool* P, Slot* s, int slot, int* move, float* target) noexcept nogil

cdef struct LeafValue:
    # ``value`` (by absolute seat) holds the network's value of ``leaf``; make it the leaf's
    # (``P.leaf_world``: the world value of the leaf's world when ``needs_world``, else NULL)
    void (*evaluate)(Pool* P, Slot* s, const RoundState* leaf, float* value) noexcept nogil
    # 1: every leaf's world is encoded beside its observation (``SearchPool.worlds``) and the
    # evaluator must answer a world value for it (``SearchPool.apply``'s ``world``)
    int needs_world

cdef struct Beliefs:
    # a decision starts: queue evaluation rows in the batch if the beliefs need the network
    # (returns 0 when there is no room in this batch: the decision waits for the next)
    int (*begin)(Pool* P, Slot* s) noexcept nogil
    # the rows' answers (``policy``: the batch's, (rows, 52); ``beliefs``: the batch's
    # (rows, 52, 8) belief output, NULL when the evaluator gives none)
    void (*answer)(Pool* P, Slot* s, const float* policy, const float* beliefs) noexcept nogil
    # a determinization of the true state for the searcher
    void (*decision_world)(Pool* P, Slot* s, RoundState* out) noexcept nogil
    # a world for a play-out from ``leaf``, as the searcher might see it there
    void (*leaf_world)(Pool* P, Slot* s, const RoundState* leaf, RoundState* out) noexcept nogil
    # 1: the evaluator must answer the belief output too (SearchPool.apply's ``beliefs``)
    int needs_beliefs


# What the parts see of a SearchPool: its settings, counters, parts, memory and batch.
cdef struct Pool:
    Params p
    Counters c
    Slot* slots
    Node* nodes               # n_slots x node_cap, one arena per slot
    Edge* edges               # n_slots x edge_cap
    int n_slots
    int capacity              # rows of the batch buffers
    int n_rows                # rows of the current batch
    int n_belief_rows         # of those, rows the beliefs hold
    float* states_buf         # (capacity, 256)
    float* masks_buf          # (capacity, 52)
    float* worlds_buf         # (capacity, 620) when the leaf value needs worlds, else NULL
    const float* leaf_world   # while a leaf is valued: its world value (8, relative), or NULL
    int* row_agent            # (capacity,) evaluator index of each row
    RootRule root
    LeafValue leaf
    Beliefs beliefs
