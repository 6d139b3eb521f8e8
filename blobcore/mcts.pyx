# cython: language_level=3
"""Determinized PUCT search over many rounds at once, with batched leaf evaluation.

One ``SearchPool`` holds K round slots. ``collect()`` advances every slot's search until it
needs a network evaluation and writes those leaves into one contiguous batch
(``states (n, 256)``, ``masks (n, 52)``, float32 views into preallocated buffers);
``apply(policy, value)`` feeds the answers back. Finished rounds come out of
``pop_finished()`` as records. Everything per node lives in flat C arrays; the tree work
runs without the GIL. docs/search.md explains the algorithm and conventions.

Value convention: a value is a vector over seats of expected *normalised round score*
(score / (10 + C), in [0, 1]). The evaluator returns it ordered from the observer of the
position (relative seat 0 first); the search stores it by absolute seat, and backup credits
each edge with the value of the seat that chose it.

Perspective (``SearchConfig.perspective``): with "mover" every position in the tree is
encoded as its player to move sees it, so the values the searching player's choices are
judged by come from other seats' views (which do not see its cards) until the tree reaches
its next turn. With "searcher" every position is encoded as the *searching* player sees it
(its own hand, public record): all values in the tree are its own estimates, and opponents'
priors are its model of their play. docs/search.md explains why this matters in Blob.
"""
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset, memcpy
from libc.math cimport sqrt, log, pow, cos, exp
from libc.stdint cimport uint64_t, uint32_t, uint16_t, int32_t, int8_t

import numpy as np

from blobcore.rules cimport (RoundState, Round, rs_init, rs_legal, rs_apply, rs_deal_random,
                             rs_score, rs_played_by, popcount64, ctz64, nth_set_bit, PHASE_BID_C,
                             PHASE_DONE_C, DECK_C, MAX_ACTIONS_C)
from blobcore.encode cimport encode_view, OBS_SIZE_C, ACTIONS_C
from blobcore.inference cimport sample_world
from blobcore.determinize cimport determinize_state
from blobcore.greedy cimport greedy_action
from blobcore.expert cimport expert_action
from blobcore.rng cimport RngState, rng_seed, rng_next, rng_below, rng_uniform

from blobcore.search_config import SearchConfig

VALUE_SEATS = 8
AGENT_RANDOM = -1      # round-spec agent: uniformly random legal play
AGENT_GREEDY = -2      # round-spec agent: the greedy baseline (blobcore/greedy.pyx)
AGENT_EXPERT = -3      # round-spec agent: the card-counting expert baseline (blobcore/expert.pyx)
#: Policy-based inference: each observed action's probability is floored at this share of
#: a uniform choice, p' = (1 - f) p + f / legal actions.
cdef double POLICY_FLOOR = 0.02

cdef enum:
    SEATS_C = 8
    MAX_EDGES = 18            # legal actions never exceed C + 1 <= 18
    MAX_DEPTH = 64
    MAX_LEAVES = 8
    MAX_DECISIONS = 60
    CACHE_SIZE = 32           # power of two, per slot, cleared at every decision
    # slot status
    S_EMPTY = 0
    S_RUNNING = 1
    S_FINISHED = 2
    AGENT_RANDOM_C = -1
    AGENT_GREEDY_C = -2
    AGENT_EXPERT_C = -3


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
    float value[8]            # by absolute seat: network value, or exact scores if terminal
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
    float noise[52]
    int32_t visits_acc[52]
    float value_acc[8]        # absolute seats, summed over determinizations
    int searched_decisions
    # --- per-round record of searched decisions ---
    int n_decisions
    int8_t dec_ply[60]
    int8_t dec_player[60]
    uint16_t dec_visits[60][52]
    float dec_value[60][8]
    float dec_q[60][52]       # mean value of each root action for the mover
    float dec_policy[60][52]  # Gumbel root: the improved policy (the training target)
    float w_acc[52]           # summed root-edge values over determinizations
    # --- Gumbel root (search.root = "gumbel"): sequential halving over D x S simulations ---
    float g_logit[52]         # Gumbel sample (self-play) + log prior; legal actions only
    uint64_t g_left           # actions still in the halving
    int g_phases              # phases the budget is split into
    int g_phase_sims          # simulations left in the current phase
    int g_budget              # simulations left for the decision
    int stop_after            # searched decisions after which the round stops (0 = never)
    int start_ply             # actions already in the history when the slot started
    int8_t agent[8]           # per seat, bidding: evaluator index for its searches, or AGENT_RANDOM/GREEDY/EXPERT
    int8_t agent_play[8]      # per seat, card play (the same as ``agent`` unless the spec splits them)
    # --- tree arena (offsets into the pool's node/edge arrays) ---
    int n_nodes
    int n_edges
    int n_pending
    Pending pending[8]
    uint32_t cache_gen
    CacheEntry cache[32]
    # --- policy-based inference (search.policy_inference = K > 0; _policy_inference_start) ---
    int pol_n                 # candidate deals weighed for this decision (0 = draw by sample_world)
    int pol_rows              # their evaluation rows in the current batch (0 = none pending)
    int pol_row0              # first of those rows
    double pol_total          # sum of pol_w
    uint64_t pol_hands[32][8] # each candidate's hands (the searcher's own hand included)
    double pol_logw[32]       # log-likelihood of the other seats' observed actions
    double pol_w[32]          # weights, max-normalised
    int8_t pol_row_cand[1920] # per row: candidate (rows <= 32 candidates x 60 actions)
    int8_t pol_row_action[1920]
    int8_t pol_row_legal[1920]


cdef struct Params:
    int D, S, leaves, skip_forced, add_noise, temperature_moves
    int view_searcher         # 1: encode every position from the searching player's view
    int rollout               # 0 none, AGENT_EXPERT_C / AGENT_GREEDY_C: leaf play-out player
    int rollout_resample      # 1: play each leaf out in a freshly sampled world
    int gumbel                # 1: Gumbel root (sampling without replacement + sequential halving)
    int gumbel_m              # actions considered at the root
    float c_visit, c_scale    # sigma(q) = (c_visit + max N) * c_scale * q
    int infer_candidates      # hidden-hand samples weighed per world (1 = uniform)
    int pol_k                 # policy-based inference: candidate deals per decision (0 = off)
    float pol_temperature     # its likelihood is raised to 1 / pol_temperature
    float rollout_weight, infer_temperature
    float bid_rollout_weight  # lambda when the decision searched is a bid
    float c_puct, alpha, eps, temperature
    int node_cap, edge_cap


cdef struct Counters:
    long simulations, leaves, cache_hits, terminal_leaves, decisions, forced_moves, rounds
    long inference_rows


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

cdef inline uint64_t _hash_obs(const float* obs, const float* mask) noexcept nogil:
    cdef const uint32_t* w = <const uint32_t*>obs
    cdef uint64_t h = <uint64_t>0x243F6A8885A308D3
    cdef int i
    for i in range(OBS_SIZE_C):
        h = (h ^ w[i]) * <uint64_t>0x100000001B3
        h ^= h >> 29
    w = <const uint32_t*>mask
    for i in range(ACTIONS_C):
        h = (h ^ w[i]) * <uint64_t>0x100000001B3
        h ^= h >> 29
    return h if h != 0 else 1


cdef inline CacheEntry* _cache_find(Slot* s, uint64_t key) noexcept nogil:
    cdef CacheEntry* e = &s.cache[key & (CACHE_SIZE - 1)]
    if e.key == key and e.generation == s.cache_gen:
        return e
    return NULL


cdef inline void _cache_put(Slot* s, uint64_t key, const float* policy, const float* value) noexcept nogil:
    cdef CacheEntry* e = &s.cache[key & (CACHE_SIZE - 1)]
    e.key = key
    e.generation = s.cache_gen
    memcpy(e.policy, policy, ACTIONS_C * sizeof(float))
    memcpy(e.value, value, SEATS_C * sizeof(float))


cdef double _normal(RngState* rng) noexcept nogil:
    cdef double u1 = rng_uniform(rng), u2 = rng_uniform(rng)
    if u1 < 1e-300:
        u1 = 1e-300
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)


cdef double _gamma(RngState* rng, double alpha) noexcept nogil:
    """Gamma(alpha, 1) variate (Marsaglia-Tsang; boosted for alpha < 1)."""
    cdef double d, c, x, v, u
    if alpha < 1.0:
        u = rng_uniform(rng)
        return _gamma(rng, alpha + 1.0) * pow(u if u > 1e-300 else 1e-300, 1.0 / alpha)
    d = alpha - 1.0 / 3.0
    c = 1.0 / sqrt(9.0 * d)
    while True:
        x = _normal(rng)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = rng_uniform(rng)
        if log(u if u > 1e-300 else 1e-300) < 0.5 * x * x + d - d * v + d * log(v):
            return d * v


cdef inline void _init_edge(Edge* e, int action, float prior) noexcept nogil:
    """A fresh, unvisited edge to a child not created yet."""
    e.child = -1
    e.n = 0
    e.w = 0
    e.prior = prior
    e.action = action


cdef void _terminal_value(const RoundState* st, float* out) noexcept nogil:
    """Exact normalised scores by absolute seat."""
    cdef int i
    memset(out, 0, SEATS_C * sizeof(float))
    for i in range(st.n_players):
        out[i] = rs_score(st, i) / (10.0 + st.cards)


cdef inline void _to_absolute(const float* rel, int mover, int n, float* out) noexcept nogil:
    cdef int k
    memset(out, 0, SEATS_C * sizeof(float))
    for k in range(n):
        out[(mover + k) % n] = rel[k]


cdef void _advance_forced(RoundState* st) noexcept nogil:
    cdef uint64_t legal
    while st.phase != PHASE_DONE_C:
        legal = rs_legal(st)
        if popcount64(legal) != 1:
            return
        rs_apply(st, ctz64(legal))


cdef inline bint _in(const int* values, int n, int x) noexcept nogil:
    cdef int i
    for i in range(n):
        if values[i] == x:
            return True
    return False


cdef inline int _agent_to_move(const Slot* s) noexcept nogil:
    """The agent deciding now: the seat's bidder while bidding, its card player after."""
    cdef int seat = s.game.current
    return s.agent[seat] if s.game.phase == PHASE_BID_C else s.agent_play[seat]


def _seat_agents(spec, agents, int n_players):
    """(bid agents, play agents) from a spec's per-seat entries: an agent id -3..126, or a pair
    (bid agent, play agent) to seat a split agent."""
    bid, play = [], []
    for a in agents:
        pair = tuple(a) if isinstance(a, (tuple, list)) else (a, a)
        if len(pair) != 2 or not all(-3 <= int(x) < 127 for x in pair):
            bid = None
            break
        bid.append(int(pair[0]))
        play.append(int(pair[1]))
    if bid is None or len(bid) != n_players:
        raise ValueError(f"bad round spec {spec!r}: agents needs one entry per seat, an agent "
                         f"-3..126 or a (bidding, card play) pair of them")
    return bid, play


# ---------------------------------------------------------------------------
# the pool
# ---------------------------------------------------------------------------

def batch_capacity(int n_slots, config):
    """Rows one ``collect()`` may return for a pool of ``n_slots`` rounds: each round's
    leaves (a round adds at most ``leaves_per_game`` rows of search per batch, its root
    evaluation included), plus, with policy-based inference, a share only inference rows may
    use: room for one round's candidate rows (K x the most actions a round has) and two more
    per round (a decision's inference rows come once per D x S simulations, so they rarely
    need more; a round that finds no room starts its decision in the next batch)."""
    cdef int k = config.policy_inference
    return n_slots * config.leaves_per_game + (k * MAX_ACTIONS_C + 2 * n_slots if k > 0 else 0)


cdef class SearchPool:
    """K rounds searched at once; see the module docstring.

    n_slots: rounds in flight (K).
    config: a ``SearchConfig``.
    rounds: iterable of round specs ``(seed, n_players, cards)`` or
        ``(seed, n_players, cards, dealer, trump)`` (dealer/trump -1 = drawn from the seed;
        trump 4 = no trump; then optionally ``agents`` per seat and a ``tag`` echoed in the
        record), or ``(Round, seed[, agents[, tag]])`` to search on from a given state (a round
        of a full game carries its game context into the record). Each
        round's deal and all of its search randomness come from its own seed, so a round
        plays identically whatever else is in the pool.
    stop_after: end each round after this many searched decisions (0 = play it out).
    on_finished: called with each finished round's record as soon as the round ends, before
        the pool asks ``rounds`` for the next spec (so a feeder of full games can deal the
        next round of that game into the freed slot).
    record_builtin: also record the choices of built-in seats (greedy, expert, random) as
        decisions with one visit on the action taken — imitation targets for the trainer
        when built-in players sit in self-play (``selfplay.builtin_seats``).
    Agents per seat (in a spec): an evaluator index 0..126 (that network searches), a built-in
    player code (AGENT_RANDOM, AGENT_GREEDY, AGENT_EXPERT), or a pair (bidding agent, card
    play agent) for a split seat.
    """
    cdef Slot* slots
    cdef Node* nodes
    cdef Edge* edges
    cdef int n_slots
    cdef Params p
    cdef Counters c
    cdef object _rounds
    cdef public object config
    cdef list _finished
    cdef list _specs             # the spec of the round in each slot
    cdef object _states_arr, _masks_arr
    cdef float* states_buf
    cdef float* masks_buf
    cdef object _row_agent_arr
    cdef int* row_agent
    cdef int capacity
    cdef int n_rows
    cdef int n_pol_rows          # rows of the current batch that policy-based inference holds
    cdef long next_round_id
    cdef int stop_after
    cdef int record_builtin
    cdef object _on_finished

    def __cinit__(self):
        self.slots = NULL
        self.nodes = NULL
        self.edges = NULL

    def __init__(self, int n_slots, config, rounds, int stop_after=0, on_finished=None,
                 bint record_builtin=False):
        if n_slots < 1:
            raise ValueError(f"n_slots must be >= 1, got {n_slots}")
        if not isinstance(config, SearchConfig):
            raise TypeError("config must be a blobcore.search_config.SearchConfig")
        self.config = config
        self.n_slots = n_slots
        self.p.D = config.determinizations
        self.p.S = config.simulations
        self.p.leaves = config.leaves_per_game
        self.p.skip_forced = 1 if config.skip_forced else 0
        self.p.add_noise = 1 if config.add_noise else 0
        self.p.temperature_moves = config.temperature_moves
        self.p.c_puct = config.c_puct
        self.p.alpha = config.dirichlet_alpha
        self.p.eps = config.dirichlet_eps
        self.p.temperature = config.temperature
        self.p.view_searcher = 1 if config.perspective == "searcher" else 0
        self.p.rollout = {"none": 0, "expert": AGENT_EXPERT_C, "greedy": AGENT_GREEDY_C}[config.rollout]
        self.p.bid_rollout_weight, self.p.rollout_weight = config.leaf_weights()
        self.p.gumbel = 1 if config.root == "gumbel" else 0
        self.p.gumbel_m = config.gumbel_actions
        self.p.c_visit = config.gumbel_c_visit
        self.p.c_scale = config.gumbel_c_scale
        self.p.rollout_resample = 1 if config.rollout_resample else 0
        self.p.infer_candidates = config.inference_candidates
        self.p.infer_temperature = config.inference_temperature
        self.p.pol_k = config.policy_inference
        self.p.pol_temperature = config.policy_inference_temperature
        self.p.node_cap = self.p.S + 2
        self.p.edge_cap = self.p.node_cap * MAX_EDGES
        self.slots = <Slot*>calloc(n_slots, sizeof(Slot))
        self.nodes = <Node*>malloc(<size_t>n_slots * self.p.node_cap * sizeof(Node))
        self.edges = <Edge*>malloc(<size_t>n_slots * self.p.edge_cap * sizeof(Edge))
        if self.slots == NULL or self.nodes == NULL or self.edges == NULL:
            raise MemoryError(f"cannot allocate a search pool of {n_slots} slots")
        self.capacity = batch_capacity(n_slots, config)
        self._states_arr = np.zeros((self.capacity, OBS_SIZE_C), dtype=np.float32)
        self._masks_arr = np.zeros((self.capacity, ACTIONS_C), dtype=np.float32)
        self._row_agent_arr = np.zeros(self.capacity, dtype=np.intc)
        cdef float[:, ::1] sv = self._states_arr
        cdef float[:, ::1] mv = self._masks_arr
        cdef int[::1] av = self._row_agent_arr
        self.states_buf = &sv[0, 0]
        self.masks_buf = &mv[0, 0]
        self.row_agent = &av[0]
        self._rounds = iter(rounds)
        self._finished = []
        self._specs = [None] * n_slots
        self.n_rows = 0
        self.n_pol_rows = 0
        self.next_round_id = 0
        self.stop_after = stop_after
        self.record_builtin = 1 if record_builtin else 0
        self._on_finished = on_finished

    def __dealloc__(self):
        free(self.slots)
        free(self.nodes)
        free(self.edges)

    # -- Python API ------------------------------------------------------------
    def collect(self):
        """Advance every search to its next leaf evaluation; return ``(states, masks)``
        views of shape (n, 256) and (n, 52). n == 0 means every round is finished."""
        cdef int i, started
        if self.n_rows:
            raise RuntimeError("apply() the previous batch before collecting a new one")
        while True:
            with nogil:
                for i in range(self.n_slots):
                    if self.slots[i].status == S_RUNNING:
                        self._advance(&self.slots[i], i)
            started = 0
            for i in range(self.n_slots):
                if self.slots[i].status == S_FINISHED:
                    record = self._record(i)
                    self.slots[i].status = S_EMPTY
                    if self._on_finished is not None:
                        self._on_finished(record)
                    self._finished.append(record)
                if self.slots[i].status == S_EMPTY and self._start_next(i):
                    started += 1
            if started == 0:
                break
        return self._states_arr[:self.n_rows], self._masks_arr[:self.n_rows]

    def apply(self, policy, value):
        """Feed back the evaluation of the last batch: policy (n, 52), value (n, >= seats)."""
        cdef float[:, ::1] pol = np.ascontiguousarray(policy, dtype=np.float32)
        cdef float[:, ::1] val = np.ascontiguousarray(value, dtype=np.float32)
        cdef int i, n = self.n_rows
        if pol.shape[0] != n or pol.shape[1] != ACTIONS_C:
            raise ValueError(f"policy must have shape ({n}, 52), got {tuple(np.shape(policy))}")
        if val.shape[0] != n or val.shape[1] < 1:
            raise ValueError(f"value must have shape ({n}, seats), got {tuple(np.shape(value))}")
        if n == 0:
            return
        cdef int vw = val.shape[1]
        with nogil:
            for i in range(self.n_slots):
                if self.slots[i].n_pending or self.slots[i].pol_rows:
                    self._resolve(&self.slots[i], i, &pol[0, 0], &val[0, 0], vw)
        self.n_rows = 0
        self.n_pol_rows = 0

    @property
    def row_agents(self):
        """Agent (evaluator index) of each row of the current batch, int (n,)."""
        return self._row_agent_arr[:self.n_rows]

    def pop_finished(self):
        """Records of rounds finished since the last call (list of dicts)."""
        out, self._finished = self._finished, []
        return out

    @property
    def active(self):
        """Rounds still in flight."""
        return sum(1 for i in range(self.n_slots) if self.slots[i].status != S_EMPTY)

    def determinization_root(self, int slot):
        """The determinized state slot ``slot`` is searching right now (a ``Round``), or
        None between determinizations. For tests and debugging."""
        cdef Round r
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"slot {slot} outside 0..{self.n_slots - 1}")
        if self.slots[slot].status != S_RUNNING or self.slots[slot].n_nodes == 0:
            return None
        r = Round.__new__(Round)
        r.st = self.nodes[<size_t>slot * self.p.node_cap].state
        return r

    def game_state(self, int slot):
        """The true state of the round in slot ``slot`` (a ``Round``)."""
        cdef Round r
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"slot {slot} outside 0..{self.n_slots - 1}")
        r = Round.__new__(Round)
        r.st = self.slots[slot].game
        return r

    @property
    def stats(self):
        return {"simulations": self.c.simulations, "leaves": self.c.leaves,
                "cache_hits": self.c.cache_hits, "terminal_leaves": self.c.terminal_leaves,
                "decisions": self.c.decisions, "forced_moves": self.c.forced_moves,
                "rounds": self.c.rounds, "inference_rows": self.c.inference_rows}

    # -- round lifecycle (GIL) ---------------------------------------------------
    cdef int _start_next(self, int i) except -1:
        cdef Slot* s = &self.slots[i]
        cdef Round start
        spec = next(self._rounds, None)
        if spec is None:
            return 0
        if isinstance(spec[0], Round):            # (Round, seed[, agents[, tag]]): from a given state
            start = spec[0]
            agents = tuple(spec[2]) if len(spec) > 2 and spec[2] is not None else (0,) * start.st.n_players
            bid_agents, play_agents = _seat_agents(spec, agents, start.st.n_players)
            memset(s, 0, sizeof(Slot))
            for k in range(start.st.n_players):
                s.agent[k] = bid_agents[k]
                s.agent_play[k] = play_agents[k]
            s.seed = <uint64_t>(int(spec[1]) & 0xFFFFFFFFFFFFFFFF)
            rng_seed(&s.rng, s.seed)
            s.game = start.st
        else:
            seed, n_players, cards = int(spec[0]), int(spec[1]), int(spec[2])
            dealer = int(spec[3]) if len(spec) > 3 else -1
            trump = int(spec[4]) if len(spec) > 4 else -1
            if not 3 <= n_players <= 8 or not 1 <= cards <= DECK_C // n_players:
                raise ValueError(f"bad round spec {spec!r}: need 3..8 players and 1..52//N cards")
            if not -1 <= dealer < n_players or not -1 <= trump <= 4:
                raise ValueError(f"bad round spec {spec!r}: dealer -1..N-1, trump -1..4")
            agents = tuple(spec[5]) if len(spec) > 5 else (0,) * n_players
            bid_agents, play_agents = _seat_agents(spec, agents, n_players)
            memset(s, 0, sizeof(Slot))
            for k in range(n_players):
                s.agent[k] = bid_agents[k]
                s.agent_play[k] = play_agents[k]
            s.seed = <uint64_t>(seed & 0xFFFFFFFFFFFFFFFF)
            rng_seed(&s.rng, s.seed)
            rs_deal_random(&s.game, n_players, cards, dealer, trump, &s.rng)
        s.stop_after = self.stop_after
        s.start_ply = s.game.n_actions
        s.round_id = self.next_round_id
        self.next_round_id += 1
        s.status = S_RUNNING
        self._specs[i] = spec
        return 1

    cdef dict _record(self, int i):
        cdef Slot* s = &self.slots[i]
        cdef RoundState* g = &s.game
        cdef int d, a, n = g.n_players
        decisions = []
        for d in range(s.n_decisions):
            visits = {a: s.dec_visits[d][a] for a in range(ACTIONS_C) if s.dec_visits[d][a]}
            policy = None     # the training target when it is not the visit counts (Gumbel root)
            if self.p.gumbel:
                policy = {a: s.dec_policy[d][a] for a in range(ACTIONS_C) if s.dec_policy[d][a] > 0}
                policy = policy or None          # a built-in seat's one-visit decision has none
            decisions.append({
                "ply": s.dec_ply[d], "player": s.dec_player[d], "visits": visits,
                "q": {a: s.dec_q[d][a] for a in visits},
                "root_value": [s.dec_value[d][a] for a in range(n)],
                "policy": policy,
            })
        self.c.rounds += 1
        spec = self._specs[i]
        tag_index = 3 if isinstance(spec[0], Round) else 6
        game = None
        if g.n_rounds > 0:
            game = {"round_index": g.round_index, "n_rounds": g.n_rounds,
                    "next_cards": g.next_cards,
                    "scores_before": [g.game_scores[p] for p in range(n)]}
        return {
            "seed": int(s.seed), "round_id": s.round_id,
            "tag": spec[tag_index] if len(spec) > tag_index else None,
            "game": game,
            "n_players": n, "cards": g.cards, "dealer": g.dealer,
            "agents": [s.agent[p] for p in range(n)],
            "play_agents": [s.agent_play[p] for p in range(n)],
            "trump": None if g.trump == 4 else g.trump,
            "hands": [[c for c in range(DECK_C) if (g.dealt[p] >> c) & 1] for p in range(n)],
            "actions": [g.actions[a] for a in range(g.n_actions)],
            "start_ply": s.start_ply,
            "decisions": decisions,
            "complete": g.phase == PHASE_DONE_C,
            "scores": [rs_score(g, p) for p in range(n)] if g.phase == PHASE_DONE_C else None,
            "search": self.config.to_dict(),
        }

    # -- the search (nogil) ----------------------------------------------------------
    cdef void _advance(self, Slot* s, int slot) noexcept nogil:
        """Run slot ``s`` until it waits on leaf evaluations or its round ends."""
        cdef uint64_t legal
        cdef CacheEntry* hit
        cdef uint64_t key
        cdef int agent, action
        while s.n_pending == 0 and s.pol_rows == 0 and s.status == S_RUNNING:
            if s.game.phase == PHASE_DONE_C:
                s.status = S_FINISHED
                return
            if not s.in_decision:
                legal = rs_legal(&s.game)
                if popcount64(legal) == 1:           # zero-choice fast path: no search, no example
                    rs_apply(&s.game, ctz64(legal))
                    self.c.forced_moves += 1
                    continue
                agent = _agent_to_move(s)
                if agent < 0:                                    # built-in players: no search
                    if agent == AGENT_RANDOM_C:
                        action = nth_set_bit(legal, rng_below(&s.rng, popcount64(legal)))
                    elif agent == AGENT_GREEDY_C:
                        action = greedy_action(&s.game)
                    else:
                        action = expert_action(&s.game)
                    if self.record_builtin:
                        self._record_builtin(s, action)
                    rs_apply(&s.game, action)
                    continue
                if (self.p.pol_k > 0 and self.n_pol_rows + self.p.pol_k * s.game.n_actions
                        > self.capacity - self.n_slots * self.p.leaves):
                    return               # no room for its inference rows: wait for the next batch
                s.in_decision = 1
                s.root_ready = 0
                s.det_index = 0
                s.sims_started = 0
                s.n_nodes = 0
                s.n_edges = 0
                memset(s.visits_acc, 0, sizeof(s.visits_acc))
                memset(s.w_acc, 0, sizeof(s.w_acc))
                memset(s.value_acc, 0, sizeof(s.value_acc))
                s.cache_gen += 1
                s.pol_n = 0
                if self.p.pol_k > 0:
                    self._policy_inference_start(s)
            if not s.root_ready:
                # The root observation is the same in every determinization: evaluate it once.
                hit = self._encode_lookup(s, &s.game, &key)
                if hit != NULL:
                    self.c.cache_hits += 1
                    self._set_root(s, hit.policy, hit.value)
                    continue
                self._add_pending(s, -1, 0, key)
                return
            self._simulate(s, slot)

    cdef inline int _observer(self, Slot* s, const RoundState* st) noexcept nogil:
        """The seat whose view ``st`` is encoded from (see Perspective in the module doc)."""
        return s.game.current if self.p.view_searcher else st.current

    cdef void _record_builtin(self, Slot* s, int action) noexcept nogil:
        """A built-in seat's move as a decision with one visit on it (an imitation target)."""
        cdef int d = s.n_decisions
        if d >= MAX_DECISIONS:
            return
        s.dec_ply[d] = s.game.n_actions
        s.dec_player[d] = s.game.current
        memset(&s.dec_visits[d][0], 0, ACTIONS_C * sizeof(uint16_t))
        memset(&s.dec_q[d][0], 0, ACTIONS_C * sizeof(float))
        memset(&s.dec_policy[d][0], 0, ACTIONS_C * sizeof(float))
        memset(&s.dec_value[d][0], 0, SEATS_C * sizeof(float))
        s.dec_visits[d][action] = 1
        s.n_decisions += 1

    cdef CacheEntry* _encode_lookup(self, Slot* s, const RoundState* st, uint64_t* key) noexcept nogil:
        """Encode ``st`` into the next free batch row and look it up in the slot's cache.
        On a miss the row stays filled: ``_add_pending`` claims it."""
        cdef float* obs = self.states_buf + <size_t>self.n_rows * OBS_SIZE_C
        cdef float* mask = self.masks_buf + <size_t>self.n_rows * ACTIONS_C
        encode_view(st, self._observer(s, st), obs, mask)
        key[0] = _hash_obs(obs, mask)
        return _cache_find(s, key[0])

    cdef void _add_pending(self, Slot* s, int node, int depth, uint64_t key) noexcept nogil:
        cdef Pending* pd = &s.pending[s.n_pending]
        pd.row = self.n_rows
        self.row_agent[self.n_rows] = _agent_to_move(s)   # the searching seat's network
        pd.node = node
        pd.depth = depth
        pd.key = key
        s.n_pending += 1
        self.n_rows += 1
        self.c.leaves += 1

    cdef void _set_root(self, Slot* s, const float* policy, const float* value_rel) noexcept nogil:
        """Root priors (masked, renormalised) and value for the decision; draws root noise."""
        cdef uint64_t legal = rs_legal(&s.game), bits
        cdef float total = 0.0
        cdef double g, gsum = 0.0
        cdef int a, n_legal = popcount64(legal)
        memset(s.root_prior, 0, sizeof(s.root_prior))
        memset(s.noise, 0, sizeof(s.noise))
        bits = legal
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            s.root_prior[a] = policy[a] if policy[a] > 0 else 0
            total += s.root_prior[a]
        bits = legal
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            s.root_prior[a] = s.root_prior[a] / total if total > 0 else 1.0 / n_legal
        memcpy(s.root_value, value_rel, SEATS_C * sizeof(float))
        if self.p.add_noise and self.p.eps > 0 and not self.p.gumbel:
            bits = legal
            while bits:
                a = ctz64(bits)
                bits &= bits - 1
                g = _gamma(&s.rng, self.p.alpha)
                s.noise[a] = g
                gsum += g
            if gsum > 0:
                for a in range(ACTIONS_C):
                    s.noise[a] /= gsum
        if self.p.gumbel:
            self._gumbel_start(s)
        s.root_ready = 1

    # -- Gumbel root ---------------------------------------------------------------
    cdef void _gumbel_start(self, Slot* s) noexcept nogil:
        """Draw g(a) (self-play only), keep the top m actions by g + log prior, plan the
        sequential halving of the decision's D x S simulations."""
        cdef uint64_t legal = rs_legal(&s.game), bits, left = 0
        cdef int a, k, best, m = self.p.gumbel_m, n_legal = popcount64(legal)
        cdef double u
        cdef float top
        for a in range(ACTIONS_C):
            s.g_logit[a] = -1e30
        bits = legal
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            s.g_logit[a] = log(s.root_prior[a] if s.root_prior[a] > 1e-12 else 1e-12)
            if self.p.add_noise:
                u = rng_uniform(&s.rng)
                s.g_logit[a] += -log(-log(u if u > 1e-300 else 1e-300))
        if m > n_legal:
            m = n_legal
        for k in range(m):                       # top m by g + logits, without replacement
            best = -1
            top = -1e30
            bits = legal & ~left
            while bits:
                a = ctz64(bits)
                bits &= bits - 1
                if best < 0 or s.g_logit[a] > top:
                    best = a
                    top = s.g_logit[a]
            left |= (<uint64_t>1) << best
        s.g_left = left
        s.g_phases = 1
        while (1 << s.g_phases) < m:
            s.g_phases += 1
        s.g_budget = self.p.D * self.p.S
        s.g_phase_sims = 0

    cdef inline int _root_visits(self, Slot* s, int slot, int a) noexcept nogil:
        """Visits of root action ``a`` in this decision so far (all determinizations)."""
        cdef Node* root = &self.nodes[<size_t>slot * self.p.node_cap]
        cdef Edge* ed = &self.edges[<size_t>slot * self.p.edge_cap]
        cdef int e, n = s.visits_acc[a]
        if s.n_nodes > 0:
            for e in range(root.first_edge, root.first_edge + root.n_edges):
                if ed[e].action == a:
                    n += ed[e].n
        return n

    cdef float _root_q(self, Slot* s, int slot, int a, float fallback) noexcept nogil:
        """Mean value of root action ``a`` for the mover so far, or ``fallback`` if unvisited."""
        cdef Node* root = &self.nodes[<size_t>slot * self.p.node_cap]
        cdef Edge* ed = &self.edges[<size_t>slot * self.p.edge_cap]
        cdef int e, n = s.visits_acc[a]
        cdef float w = s.w_acc[a]
        if s.n_nodes > 0:
            for e in range(root.first_edge, root.first_edge + root.n_edges):
                if ed[e].action == a:
                    n += ed[e].n
                    w += ed[e].w
        return w / n if n > 0 else fallback

    cdef float _sigma_scale(self, Slot* s, int slot) noexcept nogil:
        """(c_visit + max_a N(a)) * c_scale: how many logits one unit of value is worth."""
        cdef uint64_t bits = rs_legal(&s.game)
        cdef int a, n, top = 0
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            n = self._root_visits(s, slot, a)
            if n > top:
                top = n
        return (self.p.c_visit + top) * self.p.c_scale

    cdef int _gumbel_finish(self, Slot* s, int slot, float* target) noexcept nogil:
        """The decision's move — argmax over the actions left of g + logit + sigma(q) — and
        the policy target ``target`` (52): softmax over the legal actions of logit +
        sigma(completed q), unvisited actions completed with the root value."""
        cdef uint64_t legal = rs_legal(&s.game), bits
        cdef int a, best = -1
        cdef float scale = self._sigma_scale(s, slot), fallback = s.root_value[0]
        cdef float q, logit, top = -1e30, score, best_score = -1e30, z = 0.0
        memset(target, 0, ACTIONS_C * sizeof(float))
        bits = legal
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            q = self._root_q(s, slot, a, fallback)
            logit = log(s.root_prior[a] if s.root_prior[a] > 1e-12 else 1e-12)
            target[a] = logit + scale * q
            if target[a] > top:
                top = target[a]
            if (s.g_left >> a) & 1:
                score = s.g_logit[a] + scale * q
                if best < 0 or score > best_score:
                    best = a
                    best_score = score
        bits = legal
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            target[a] = exp(target[a] - top)
            z += target[a]
        bits = legal
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            target[a] /= z
        return best

    cdef int _gumbel_select(self, Slot* s, int slot) noexcept nogil:
        """The root action of the next simulation: the least visited action still in the
        halving (ties: the higher g + logit); halves the set when a phase's budget is spent."""
        cdef uint64_t bits
        cdef int a, k, n, best, fewest, n_left = popcount64(s.g_left), keep
        cdef float scale, top, fallback = s.root_value[0]
        cdef float scores[52]
        cdef int order[18]
        if s.g_phase_sims <= 0:
            if s.g_phase_sims == 0 and n_left > 1 and s.g_budget < self.p.D * self.p.S:
                # end of a phase: keep the better half by g + logit + sigma(q)
                scale = self._sigma_scale(s, slot)
                bits = s.g_left
                while bits:
                    a = ctz64(bits)
                    bits &= bits - 1
                    scores[a] = s.g_logit[a] + scale * self._root_q(s, slot, a, fallback)
                keep = (n_left + 1) // 2
                for k in range(keep):
                    best = -1
                    top = -1e30
                    bits = s.g_left
                    while bits:
                        a = ctz64(bits)
                        bits &= bits - 1
                        if not _in(order, k, a) and (best < 0 or scores[a] > top):
                            best = a
                            top = scores[a]
                    order[k] = best
                s.g_left = 0
                for k in range(keep):
                    s.g_left |= (<uint64_t>1) << order[k]
                n_left = keep
                s.g_phases -= 1 if s.g_phases > 1 else 0
            if n_left == 1:
                s.g_phase_sims = s.g_budget
            else:
                k = s.g_budget // (s.g_phases * n_left)
                s.g_phase_sims = (k if k > 1 else 1) * n_left
        best = -1
        fewest = 0
        bits = s.g_left
        while bits:
            a = ctz64(bits)
            bits &= bits - 1
            n = self._root_visits(s, slot, a)
            if best < 0 or n < fewest or (n == fewest and s.g_logit[a] > s.g_logit[best]):
                best = a
                fewest = n
        s.g_phase_sims -= 1
        s.g_budget -= 1
        return best

    cdef int _new_root(self, Slot* s, int slot) noexcept nogil:
        """Sample a determinization and make it node 0 of the slot's arena."""
        cdef Node* nd = &self.nodes[<size_t>slot * self.p.node_cap]
        cdef Edge* ed = &self.edges[<size_t>slot * self.p.edge_cap]
        cdef Node* root = &nd[0]
        cdef uint64_t legal = rs_legal(&s.game)
        cdef int a, k = 0
        cdef float prior
        s.n_nodes = 1
        s.n_edges = 0
        if s.pol_n > 0:
            self._policy_world(s, &root.state)
        else:
            sample_world(&s.game, s.game.current, &s.rng, &root.state, self.p.infer_candidates,
                         self.p.infer_temperature)
        root.first_edge = 0
        root.visits = 0
        root.expanded = 1
        root.terminal = 0
        _to_absolute(s.root_value, s.game.current, s.game.n_players, root.value)
        memset(root.wsum, 0, sizeof(root.wsum))
        while legal:
            a = ctz64(legal)
            legal &= legal - 1
            prior = s.root_prior[a]
            if self.p.add_noise and not self.p.gumbel:
                prior = (1.0 - self.p.eps) * prior + self.p.eps * s.noise[a]
            _init_edge(&ed[k], a, prior)
            k += 1
        root.n_edges = k
        s.n_edges = k
        return 0

    cdef void _simulate(self, Slot* s, int slot) noexcept nogil:
        """Start simulations until the slot has its leaves for this batch (or none needed)."""
        cdef Node* nd = &self.nodes[<size_t>slot * self.p.node_cap]
        cdef Edge* ed = &self.edges[<size_t>slot * self.p.edge_cap]
        cdef int path_node[64]
        cdef int path_edge[64]
        cdef int depth, node, e, best, child, i, mover, blocked, gumbel_action
        cdef Node* cur
        cdef Node* ch
        cdef float q, u, score, best_score, sqrt_n, fpu
        cdef uint64_t key
        cdef CacheEntry* hit
        while s.n_pending < self.p.leaves:
            if s.sims_started == self.p.S:
                if s.n_pending:
                    return
                self._finish_determinization(s, slot)
                if not s.in_decision or s.n_pending:
                    return
                continue
            if s.sims_started == 0 and s.n_nodes == 0:
                self._new_root(s, slot)
            # --- selection: PUCT down to an unexpanded edge or a terminal node ---
            node = 0
            depth = 0
            blocked = 0
            while True:
                cur = &nd[node]
                mover = cur.state.current
                sqrt_n = sqrt(<float>(cur.visits if cur.visits > 0 else 1))
                fpu = cur.value[mover]
                best = cur.first_edge
                best_score = -1e30
                if depth == 0 and self.p.gumbel:
                    gumbel_action = self._gumbel_select(s, slot)
                    for e in range(cur.first_edge, cur.first_edge + cur.n_edges):
                        if ed[e].action == gumbel_action:
                            best = e
                else:
                    for e in range(cur.first_edge, cur.first_edge + cur.n_edges):
                        q = ed[e].w / ed[e].n if ed[e].n > 0 else fpu
                        u = self.p.c_puct * ed[e].prior * sqrt_n / (1.0 + ed[e].n)
                        score = q + u
                        if score > best_score:
                            best_score = score
                            best = e
                path_node[depth] = node
                path_edge[depth] = best
                depth += 1
                cur.visits += 1                      # counted now: virtual loss while pending
                ed[best].n += 1
                child = ed[best].child
                if child < 0:
                    break
                ch = &nd[child]
                if ch.terminal:
                    node = child
                    break
                if not ch.expanded:                  # already waiting in this batch
                    blocked = 1
                    node = child
                    break
                node = child
            if blocked:                              # undo the virtual visits, try next batch
                for i in range(depth):
                    nd[path_node[i]].visits -= 1
                    ed[path_edge[i]].n -= 1
                return
            s.sims_started += 1
            self.c.simulations += 1
            if child >= 0:                           # revisiting a terminal node
                self.c.terminal_leaves += 1
                self._backup(s, slot, path_node, path_edge, depth, child, nd[child].value)
                continue
            # --- expansion: create the child state ---
            child = s.n_nodes
            s.n_nodes += 1
            ch = &nd[child]
            ch.state = nd[path_node[depth - 1]].state
            rs_apply(&ch.state, ed[path_edge[depth - 1]].action)
            if self.p.skip_forced:
                _advance_forced(&ch.state)
            ch.visits = 0
            ch.n_edges = 0
            ch.first_edge = s.n_edges
            memset(ch.wsum, 0, sizeof(ch.wsum))
            ed[path_edge[depth - 1]].child = child
            if ch.state.phase == PHASE_DONE_C:
                ch.terminal = 1
                ch.expanded = 1
                _terminal_value(&ch.state, ch.value)
                self.c.terminal_leaves += 1
                self._backup(s, slot, path_node, path_edge, depth, child, ch.value)
                continue
            ch.terminal = 0
            ch.expanded = 0
            hit = self._encode_lookup(s, &ch.state, &key)
            if hit != NULL:
                self.c.cache_hits += 1
                self._expand(s, slot, child, hit.policy, hit.value)
                self._backup(s, slot, path_node, path_edge, depth, child, ch.value)
                continue
            memcpy(s.pending[s.n_pending].path_node, path_node, depth * sizeof(int))
            memcpy(s.pending[s.n_pending].path_edge, path_edge, depth * sizeof(int))
            self._add_pending(s, child, depth, key)

    cdef void _expand(self, Slot* s, int slot, int node, const float* policy,
                      const float* value_rel) noexcept nogil:
        cdef Node* nd = &self.nodes[<size_t>slot * self.p.node_cap]
        cdef Edge* ed = &self.edges[<size_t>slot * self.p.edge_cap]
        cdef Node* x = &nd[node]
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
            _init_edge(&ed[k], a, (policy[a] if policy[a] > 0 else 0) / total if total > 0
                       else 1.0 / n_legal)
            k += 1
        x.n_edges = k - s.n_edges
        s.n_edges = k
        _to_absolute(value_rel, self._observer(s, &x.state), x.state.n_players, x.value)
        if self.p.rollout and self._leaf_weight(s) > 0:
            self._mix_rollout(s, &x.state, x.value)
        x.expanded = 1

    cdef inline float _leaf_weight(self, const Slot* s) noexcept nogil:
        """lambda for this slot's search: the bid weight while the decision searched is a bid."""
        return self.p.bid_rollout_weight if s.game.phase == PHASE_BID_C else self.p.rollout_weight

    cdef void _mix_rollout(self, Slot* s, const RoundState* leaf, float* value) noexcept nogil:
        """value (by absolute seat) <- (1 - lambda) * value + lambda * the play-out's scores."""
        cdef RoundState w
        cdef float scores[8]
        cdef float lam = self._leaf_weight(s)
        cdef int k
        if self.p.rollout_resample:      # the hidden cards as the searcher might see them here
            sample_world(leaf, s.game.current, &s.rng, &w, self.p.infer_candidates,
                         self.p.infer_temperature)
        else:
            w = leaf[0]
        while w.phase != PHASE_DONE_C:
            rs_apply(&w, expert_action(&w) if self.p.rollout == AGENT_EXPERT_C else greedy_action(&w))
        _terminal_value(&w, scores)
        for k in range(w.n_players):
            value[k] = (1.0 - lam) * value[k] + lam * scores[k]

    cdef void _backup(self, Slot* s, int slot, const int* path_node, const int* path_edge,
                      int depth, int leaf, const float* value_abs) noexcept nogil:
        """Credit ``value_abs`` (by absolute seat) along the path: each edge gets the value
        of the seat that chose it; each node accumulates the whole vector."""
        cdef Node* nd = &self.nodes[<size_t>slot * self.p.node_cap]
        cdef Edge* ed = &self.edges[<size_t>slot * self.p.edge_cap]
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

    cdef void _resolve(self, Slot* s, int slot, const float* policy, const float* value,
                       int vw) noexcept nogil:
        """Apply the evaluations of this slot's pending leaves."""
        cdef int j, k, row
        cdef Pending* pd
        cdef float rel[8]
        cdef Node* nd = &self.nodes[<size_t>slot * self.p.node_cap]
        if s.pol_rows:
            self._policy_inference_finish(s, policy)
        for j in range(s.n_pending):
            pd = &s.pending[j]
            row = pd.row
            memset(rel, 0, sizeof(rel))
            for k in range(min(vw, SEATS_C)):
                rel[k] = value[<size_t>row * vw + k]
            _cache_put(s, pd.key, policy + <size_t>row * ACTIONS_C, rel)
            if pd.node < 0:
                self._set_root(s, policy + <size_t>row * ACTIONS_C, rel)
            else:
                self._expand(s, slot, pd.node, policy + <size_t>row * ACTIONS_C, rel)
                self._backup(s, slot, pd.path_node, pd.path_edge, pd.depth, pd.node,
                             nd[pd.node].value)
        s.n_pending = 0

    # -- policy-based inference (search.policy_inference) ------------------------------
    cdef void _policy_inference_start(self, Slot* s) noexcept nogil:
        """Draw K uniform consistent deals and queue, for each, the other seats' past choices
        as that seat saw them in that deal: one batch row per (deal, choice with more than one
        legal action). ``_policy_inference_finish`` weighs each deal by the likelihood of the
        actions those seats took under the network's policy; the decision's determinizations
        are then drawn from the K deals by weight (``_policy_world``)."""
        cdef RoundState w, r
        cdef int i, j, seat, nl, row, k, viewer = s.game.current, n = s.game.n_players
        cdef uint64_t legal
        for j in range(s.game.n_actions):
            if s.game.action_seat[j] != viewer:
                break
        else:                        # nothing observed yet: the uniform draw is the posterior
            return
        s.pol_row0 = self.n_rows
        s.pol_rows = 0
        for i in range(self.p.pol_k):
            determinize_state(&s.game, viewer, &s.rng, &w)
            for k in range(SEATS_C):
                s.pol_hands[i][k] = w.hands[k]
            s.pol_logw[i] = 0.0
            rs_init(&r, n, s.game.cards, s.game.dealer, s.game.trump, w.dealt)
            r.round_index = s.game.round_index
            r.n_rounds = s.game.n_rounds
            r.next_cards = s.game.next_cards
            memcpy(r.game_scores, s.game.game_scores, sizeof(r.game_scores))
            for j in range(s.game.n_actions):
                seat = s.game.action_seat[j]
                if seat != viewer:
                    legal = rs_legal(&r)
                    nl = popcount64(legal)
                    if nl > 1:
                        row = self.n_rows
                        encode_view(&r, seat, self.states_buf + <size_t>row * OBS_SIZE_C,
                                    self.masks_buf + <size_t>row * ACTIONS_C)
                        self.row_agent[row] = _agent_to_move(s)   # the searcher's network models them
                        s.pol_row_cand[s.pol_rows] = i
                        s.pol_row_action[s.pol_rows] = s.game.actions[j]
                        s.pol_row_legal[s.pol_rows] = nl
                        s.pol_rows += 1
                        self.n_rows += 1
                        self.n_pol_rows += 1
                        self.c.inference_rows += 1
                rs_apply(&r, s.game.actions[j])
        s.pol_n = self.p.pol_k

    cdef void _policy_inference_finish(self, Slot* s, const float* policy) noexcept nogil:
        """Weigh the candidate deals by their rows' answers (``policy`` = the batch's)."""
        cdef int j, i
        cdef double p, top = -1e300
        for j in range(s.pol_rows):
            p = policy[<size_t>(s.pol_row0 + j) * ACTIONS_C + s.pol_row_action[j]]
            # a floor, so that one confident mistake of the network never rules a deal out
            p = (1.0 - POLICY_FLOOR) * (p if p > 0 else 0.0) + POLICY_FLOOR / s.pol_row_legal[j]
            s.pol_logw[s.pol_row_cand[j]] += log(p) / self.p.pol_temperature
        for i in range(s.pol_n):
            if s.pol_logw[i] > top:
                top = s.pol_logw[i]
        s.pol_total = 0.0
        for i in range(s.pol_n):
            s.pol_w[i] = exp(s.pol_logw[i] - top)
            s.pol_total += s.pol_w[i]
        s.pol_rows = 0

    cdef void _policy_world(self, Slot* s, RoundState* out) noexcept nogil:
        """The true state with the hidden hands of one candidate deal, drawn by weight."""
        cdef double u = rng_uniform(&s.rng) * s.pol_total
        cdef int i, k, pick = s.pol_n - 1
        for i in range(s.pol_n):
            u -= s.pol_w[i]
            if u < 0.0:
                pick = i
                break
        out[0] = s.game
        for k in range(s.game.n_players):
            if k != s.game.current:
                out.hands[k] = s.pol_hands[pick][k]
                out.dealt[k] = out.hands[k] | rs_played_by(&s.game, k)

    cdef void _finish_determinization(self, Slot* s, int slot) noexcept nogil:
        cdef Node* root = &self.nodes[<size_t>slot * self.p.node_cap]
        cdef Edge* ed = &self.edges[<size_t>slot * self.p.edge_cap]
        cdef int e, k
        for e in range(root.first_edge, root.first_edge + root.n_edges):
            s.visits_acc[ed[e].action] += ed[e].n
            s.w_acc[ed[e].action] += ed[e].w
        if root.visits > 0:
            for k in range(SEATS_C):
                s.value_acc[k] += root.wsum[k] / root.visits
        s.det_index += 1
        s.sims_started = 0
        s.n_nodes = 0
        s.n_edges = 0
        if s.det_index == self.p.D:
            self._finish_decision(s, slot)

    cdef void _finish_decision(self, Slot* s, int slot) noexcept nogil:
        """Record the policy target, choose the move (temperature), play it."""
        cdef int a, d = s.n_decisions, k, best = -1, chosen
        cdef double total = 0.0, u, w
        cdef int32_t best_n = -1
        cdef float target[52]
        if self.p.gumbel:
            best = self._gumbel_finish(s, slot, target)
        if d < MAX_DECISIONS:
            s.dec_ply[d] = s.game.n_actions
            s.dec_player[d] = s.game.current
            for a in range(ACTIONS_C):
                s.dec_visits[d][a] = <uint16_t>(s.visits_acc[a] if s.visits_acc[a] < 65535 else 65535)
                s.dec_policy[d][a] = target[a] if self.p.gumbel else 0.0
            for k in range(SEATS_C):
                s.dec_value[d][k] = s.value_acc[k] / self.p.D
            for a in range(ACTIONS_C):
                s.dec_q[d][a] = s.w_acc[a] / s.visits_acc[a] if s.visits_acc[a] > 0 else 0
            s.n_decisions += 1
        if not self.p.gumbel:
            for a in range(ACTIONS_C):
                if s.visits_acc[a] > best_n:
                    best_n = s.visits_acc[a]
                    best = a
        chosen = best
        if (not self.p.gumbel and self.p.temperature > 0
                and s.searched_decisions < self.p.temperature_moves):
            for a in range(ACTIONS_C):
                if s.visits_acc[a] > 0:
                    total += pow(<double>s.visits_acc[a], 1.0 / self.p.temperature)
            u = rng_uniform(&s.rng) * total
            for a in range(ACTIONS_C):
                if s.visits_acc[a] > 0:
                    w = pow(<double>s.visits_acc[a], 1.0 / self.p.temperature)
                    if u < w:
                        chosen = a
                        break
                    u -= w
        s.searched_decisions += 1
        s.in_decision = 0
        self.c.decisions += 1
        rs_apply(&s.game, chosen)
        if s.stop_after > 0 and s.searched_decisions >= s.stop_after:
            s.status = S_FINISHED
