# cython: language_level=3
"""The search driver: determinized tree search over many rounds at once, with batched leaf
evaluation, made of named parts (docs/search.md, "The search as parts").

One ``SearchPool`` holds K round slots. ``collect()`` advances every slot's search until it
needs a network evaluation and writes those leaves into one contiguous batch
(``states (n, 256)``, ``masks (n, 52)``, float32 views into preallocated buffers);
``apply(policy, value)`` feeds the answers back. Finished rounds come out of
``pop_finished()`` as records. Everything per node lives in flat C arrays; the tree work
runs without the GIL.

The driver owns the round lifecycle, the batch, the evaluation cache and the tree walk
(blobcore/search/tree.pxd). What varies is a part, chosen by name in the ``SearchConfig``
(blobcore/search/parts.py) and called through its C interface (blobcore/search/core.pxd):
the root rule (how the root spends the simulations and picks the move), the leaf value (what
a new leaf is worth), the beliefs (where the hidden cards are) and the seats (who decides:
a network's search, a built-in player, or a split of the two).

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
from libc.stdint cimport uint64_t, uint32_t, uint16_t

import numpy as np

from blobcore.rules cimport (RoundState, Round, rs_legal, rs_apply, rs_deal_random, rs_score,
                             popcount64, ctz64, PHASE_DONE_C, DECK_C)
from blobcore.encode cimport encode_view, encode_world, OBS_SIZE_C, ACTIONS_C, WORLD_SIZE_C
from blobcore.rng cimport rng_seed
from blobcore.builtin cimport builtin_action
from blobcore.search.core cimport (Pool, Slot, Node, Edge, Pending, CacheEntry, RootRule, LeafSample,
                                   LeafValue, Beliefs, SEATS_C, MAX_EDGES, MAX_DECISIONS,
                                   CACHE_SIZE, S_EMPTY, S_RUNNING, S_FINISHED)
from blobcore.search.tree cimport (slot_nodes, slot_edges, init_edge, terminal_value,
                                   to_absolute, advance_forced, set_edges, puct_select, backup)
from blobcore.search.seats cimport agent_to_move
from blobcore.search.part cimport part_table
from blobcore.search.labels cimport label_world

from blobcore.search_config import SearchConfig, batch_capacity
from blobcore.search.parts import load_parts
from blobcore.search.seats import seat_agents

#: Seats a value vector has (the network's value head is padded to this).
VALUE_SEATS = 8


# ---------------------------------------------------------------------------
# the evaluation cache (per slot, cleared at every decision)
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


cdef inline uint64_t _hash_world(uint64_t h, const float* world) noexcept nogil:
    """``h`` with the other hands of a whole-deal encoding mixed in (the same observation in
    another world is another leaf for a world value)."""
    cdef const uint32_t* w = <const uint32_t*>(world + OBS_SIZE_C)
    cdef int i
    for i in range(WORLD_SIZE_C - OBS_SIZE_C):
        h = (h ^ w[i]) * <uint64_t>0x100000001B3
        h ^= h >> 29
    return h if h != 0 else 1


cdef inline CacheEntry* _cache_find(Slot* s, uint64_t key) noexcept nogil:
    cdef CacheEntry* e = &s.cache[key & (CACHE_SIZE - 1)]
    if e.key == key and e.generation == s.cache_gen:
        return e
    return NULL


cdef inline void _cache_put(Slot* s, uint64_t key, const float* policy, const float* value,
                            const float* world) noexcept nogil:
    cdef CacheEntry* e = &s.cache[key & (CACHE_SIZE - 1)]
    e.key = key
    e.generation = s.cache_gen
    memcpy(e.policy, policy, ACTIONS_C * sizeof(float))
    memcpy(e.value, value, SEATS_C * sizeof(float))
    memcpy(e.world, world, SEATS_C * sizeof(float))


# ---------------------------------------------------------------------------
# the pool
# ---------------------------------------------------------------------------

cdef class SearchPool:
    """K rounds searched at once; see the module docstring.

    n_slots: rounds in flight (K).
    config: a ``SearchConfig``; its part names pick the root rule, leaf value and beliefs.
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
        when built-in players sit in self-play (``selfplay.opponent``).
    Agents per seat (in a spec): an evaluator index 0..126 (that network searches), a built-in
    player's code (< 0, ``blobcore.players``), or a pair (bidding agent, card play agent) for
    a split seat.
    """
    cdef Pool P
    cdef object _rounds
    cdef public object config
    cdef list _finished
    cdef list _specs             # the spec of the round in each slot
    cdef object _states_arr, _masks_arr, _row_agent_arr, _worlds_arr
    cdef object _parts           # the part modules' capsules, kept alive with the pool
    cdef long next_round_id
    cdef int stop_after
    cdef int record_builtin
    cdef object _on_finished

    def __cinit__(self):
        self.P.slots = NULL
        self.P.nodes = NULL
        self.P.edges = NULL

    def __init__(self, int n_slots, config, rounds, int stop_after=0, on_finished=None,
                 bint record_builtin=False):
        if n_slots < 1:
            raise ValueError(f"n_slots must be >= 1, got {n_slots}")
        if not isinstance(config, SearchConfig):
            raise TypeError("config must be a blobcore.search_config.SearchConfig")
        self.config = config
        self._set_params(config)
        self._parts = load_parts(config)
        where = self._parts.where
        self.P.root = (<RootRule*>part_table(self._parts.root, b"blobcore.search.RootRule",
                                             where["root"]))[0]
        self.P.leaf = (<LeafValue*>part_table(self._parts.leaf, b"blobcore.search.LeafValue",
                                              where["leaf"]))[0]
        self.P.beliefs = (<Beliefs*>part_table(self._parts.beliefs, b"blobcore.search.Beliefs",
                                               where["beliefs"]))[0]
        self.P.p.wants_world = 1 if self.P.leaf.needs_world or self.P.p.world_share > 0 else 0
        self.P.n_slots = n_slots
        self.P.slots = <Slot*>calloc(n_slots, sizeof(Slot))
        self.P.nodes = <Node*>malloc(<size_t>n_slots * self.P.p.node_cap * sizeof(Node))
        self.P.edges = <Edge*>malloc(<size_t>n_slots * self.P.p.edge_cap * sizeof(Edge))
        if self.P.slots == NULL or self.P.nodes == NULL or self.P.edges == NULL:
            raise MemoryError(f"cannot allocate a search pool of {n_slots} slots")
        self.P.capacity = batch_capacity(n_slots, config)
        self._states_arr = np.zeros((self.P.capacity, OBS_SIZE_C), dtype=np.float32)
        self._masks_arr = np.zeros((self.P.capacity, ACTIONS_C), dtype=np.float32)
        self._row_agent_arr = np.zeros(self.P.capacity, dtype=np.intc)
        cdef float[:, ::1] sv = self._states_arr
        cdef float[:, ::1] mv = self._masks_arr
        cdef int[::1] av = self._row_agent_arr
        self.P.states_buf = &sv[0, 0]
        self.P.masks_buf = &mv[0, 0]
        self.P.row_agent = &av[0]
        cdef float[:, ::1] wv
        self._worlds_arr = None
        self.P.worlds_buf = NULL
        self.P.leaf_world = NULL
        if self.P.p.wants_world:
            self._worlds_arr = np.zeros((self.P.capacity, WORLD_SIZE_C), dtype=np.float32)
            wv = self._worlds_arr
            self.P.worlds_buf = &wv[0, 0]
        self._rounds = iter(rounds)
        self._finished = []
        self._specs = [None] * n_slots
        self.P.n_rows = 0
        self.P.n_belief_rows = 0
        self.next_round_id = 0
        self.stop_after = stop_after
        self.record_builtin = 1 if record_builtin else 0
        self._on_finished = on_finished

    cdef void _set_params(self, config):
        from blobcore.players import builtin_player
        from blobcore.search.parts import LEAF_VALUES
        self.P.p.D = config.determinizations
        self.P.p.S = config.simulations
        self.P.p.leaves = config.leaves_per_game
        self.P.p.skip_forced = 1 if config.skip_forced else 0
        self.P.p.add_noise = 1 if config.add_noise else 0
        self.P.p.temperature_moves = config.temperature_moves
        self.P.p.c_puct = config.c_puct
        self.P.p.alpha = config.dirichlet_alpha
        self.P.p.eps = config.dirichlet_eps
        self.P.p.temperature = config.temperature
        self.P.p.view_searcher = 1 if config.perspective == "searcher" else 0
        # a play-out's player (any other leaf value is its own part and plays nobody)
        self.P.p.rollout = 0 if config.rollout in LEAF_VALUES else builtin_player(config.rollout).code
        self.P.p.bid_rollout_weight, self.P.p.rollout_weight = config.leaf_weights()
        self.P.p.gumbel_m = config.gumbel_actions
        self.P.p.c_visit = config.gumbel_c_visit
        self.P.p.c_scale = config.gumbel_c_scale
        self.P.p.rollout_resample = 1 if config.rollout_resample else 0
        # world values: the world leaf value's own, or blended into the play-outs (world_share)
        self.P.p.world_share = config.world_share if self.P.p.rollout != 0 else 0
        # labelled leaf worlds: the play-outs' own, or (world values, which play none) worlds
        # played out by expert for the purpose; the network's values alone label nothing
        self.P.p.label_player = (self.P.p.rollout if self.P.p.rollout != 0 else
                                 builtin_player("expert").code if config.rollout == "world" else 0)
        self.P.p.leaf_samples = config.leaf_samples if self.P.p.label_player != 0 else 0
        self.P.p.infer_candidates = config.inference_candidates
        self.P.p.infer_temperature = config.inference_temperature
        self.P.p.pol_k = config.policy_inference
        self.P.p.pol_temperature = config.policy_inference_temperature
        self.P.p.node_cap = self.P.p.S + 2
        self.P.p.edge_cap = self.P.p.node_cap * MAX_EDGES

    def __dealloc__(self):
        free(self.P.slots)
        free(self.P.nodes)
        free(self.P.edges)

    # -- Python API ------------------------------------------------------------
    def collect(self):
        """Advance every search to its next leaf evaluation; return ``(states, masks)``
        views of shape (n, 256) and (n, 52). n == 0 means every round is finished."""
        cdef int i, started
        if self.P.n_rows:
            raise RuntimeError("apply() the previous batch before collecting a new one")
        while True:
            with nogil:
                for i in range(self.P.n_slots):
                    if self.P.slots[i].status == S_RUNNING:
                        self._advance(&self.P.slots[i], i)
            started = 0
            for i in range(self.P.n_slots):
                if self.P.slots[i].status == S_FINISHED:
                    record = self._record(i)
                    self.P.slots[i].status = S_EMPTY
                    if self._on_finished is not None:
                        self._on_finished(record)
                    self._finished.append(record)
                if self.P.slots[i].status == S_EMPTY and self._start_next(i):
                    started += 1
            if started == 0:
                break
        return self._states_arr[:self.P.n_rows], self._masks_arr[:self.P.n_rows]

    @property
    def worlds(self):
        """With a leaf value that needs worlds (``search.rollout = "world"``): the whole-deal
        encoding of each row's leaf world, float32 (n, 620) (rows that are no leaf hold
        zeros or an old world, and their answers are not read); else None."""
        if self._worlds_arr is None:
            return None
        return self._worlds_arr[:self.P.n_rows]

    def apply(self, policy, value, beliefs=None, world=None):
        """Feed back the evaluation of the last batch: policy (n, 52), value (n, >= seats), and
        for beliefs that ask the network (``search.beliefs = "learned"``) beliefs (n, 52, 8),
        for a leaf value that needs worlds (``search.rollout = "world"``) world (n, >= seats):
        each row's world value, relative to the mover of its world, as ``value`` is."""
        cdef float[:, ::1] pol = np.ascontiguousarray(policy, dtype=np.float32)
        cdef float[:, ::1] val = np.ascontiguousarray(value, dtype=np.float32)
        cdef float[:, :, ::1] bel
        cdef float[:, ::1] wld
        cdef const float* bel_ptr = NULL
        cdef const float* world_ptr = NULL
        cdef int ww = 0
        cdef int i, n = self.P.n_rows
        if pol.shape[0] != n or pol.shape[1] != ACTIONS_C:
            raise ValueError(f"policy must have shape ({n}, 52), got {tuple(np.shape(policy))}")
        if val.shape[0] != n or val.shape[1] < 1:
            raise ValueError(f"value must have shape ({n}, seats), got {tuple(np.shape(value))}")
        if beliefs is not None:
            bel = np.ascontiguousarray(beliefs, dtype=np.float32)
            if bel.shape[0] != n or bel.shape[1] != ACTIONS_C or bel.shape[2] != SEATS_C:
                raise ValueError(f"beliefs must have shape ({n}, 52, 8), got {tuple(np.shape(beliefs))}")
            if n:
                bel_ptr = &bel[0, 0, 0]
        elif self.P.beliefs.needs_beliefs and self.P.n_belief_rows:
            raise ValueError(f"{self._parts.where['beliefs']} needs an evaluator that answers beliefs "
                             f"(blobzero.learned_beliefs.BeliefEvaluator)")
        if world is not None and self.P.p.wants_world:
            wld = np.ascontiguousarray(world, dtype=np.float32)
            if wld.shape[0] != n or wld.shape[1] < 1:
                raise ValueError(f"world must have shape ({n}, seats), got {tuple(np.shape(world))}")
            if not np.isfinite(world).all():
                raise ValueError("the world values hold NaN or infinite entries: the world-value "
                                 "model answered garbage (check its export and its inputs)")
            ww = wld.shape[1]
            if n:
                world_ptr = &wld[0, 0]
        elif self.P.p.wants_world and n:
            what = (self._parts.where['leaf'] if self.P.leaf.needs_world
                    else f"search.world_share = {self.config.world_share:g}")
            raise ValueError(f"{what} needs an evaluator that answers world "
                             f"values (selfplay_client.world_values.WorldEvaluator)")
        if n == 0:
            return
        cdef int vw = val.shape[1]
        with nogil:
            for i in range(self.P.n_slots):
                if self.P.slots[i].n_pending or self.P.slots[i].belief_rows:
                    self._resolve(&self.P.slots[i], i, &pol[0, 0], &val[0, 0], vw, bel_ptr,
                                  world_ptr, ww)
        self.P.n_rows = 0
        self.P.n_belief_rows = 0

    @property
    def row_agents(self):
        """Agent (evaluator index) of each row of the current batch, int (n,)."""
        return self._row_agent_arr[:self.P.n_rows]

    def pop_finished(self):
        """Records of rounds finished since the last call (list of dicts)."""
        out, self._finished = self._finished, []
        return out

    @property
    def active(self):
        """Rounds still in flight."""
        return sum(1 for i in range(self.P.n_slots) if self.P.slots[i].status != S_EMPTY)

    def determinization_root(self, int slot):
        """The determinized state slot ``slot`` is searching right now (a ``Round``), or
        None between determinizations. For tests and debugging."""
        cdef Round r
        if not 0 <= slot < self.P.n_slots:
            raise IndexError(f"slot {slot} outside 0..{self.P.n_slots - 1}")
        if self.P.slots[slot].status != S_RUNNING or self.P.slots[slot].n_nodes == 0:
            return None
        r = Round.__new__(Round)
        r.st = slot_nodes(&self.P, slot)[0].state
        return r

    def game_state(self, int slot):
        """The true state of the round in slot ``slot`` (a ``Round``)."""
        cdef Round r
        if not 0 <= slot < self.P.n_slots:
            raise IndexError(f"slot {slot} outside 0..{self.P.n_slots - 1}")
        r = Round.__new__(Round)
        r.st = self.P.slots[slot].game
        return r

    @property
    def stats(self):
        cdef Pool* P = &self.P
        return {"simulations": P.c.simulations, "leaves": P.c.leaves,
                "cache_hits": P.c.cache_hits, "terminal_leaves": P.c.terminal_leaves,
                "decisions": P.c.decisions, "forced_moves": P.c.forced_moves,
                "rounds": P.c.rounds, "inference_rows": P.c.inference_rows}

    # -- round lifecycle (GIL) ---------------------------------------------------
    cdef int _start_next(self, int i) except -1:
        cdef Slot* s = &self.P.slots[i]
        cdef Round start
        spec = next(self._rounds, None)
        if spec is None:
            return 0
        if isinstance(spec[0], Round):            # (Round, seed[, agents[, tag]]): from a given state
            start = spec[0]
            agents = tuple(spec[2]) if len(spec) > 2 and spec[2] is not None else (0,) * start.st.n_players
            bid_agents, play_agents = seat_agents(spec, agents, start.st.n_players)
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
            bid_agents, play_agents = seat_agents(spec, agents, n_players)
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
        cdef Slot* s = &self.P.slots[i]
        cdef RoundState* g = &s.game
        cdef int d, a, n = g.n_players
        decisions = []
        for d in range(s.n_decisions):
            visits = {a: s.dec_visits[d][a] for a in range(ACTIONS_C) if s.dec_visits[d][a]}
            # the training target when the root rule gives one (the Gumbel root's improved
            # policy); None = the visit counts (and for a built-in seat's one-visit decision)
            policy = {a: s.dec_policy[d][a] for a in range(ACTIONS_C) if s.dec_policy[d][a] > 0}
            decisions.append({
                "ply": s.dec_ply[d], "player": s.dec_player[d], "visits": visits,
                "q": {a: s.dec_q[d][a] for a in visits},
                "root_value": [s.dec_value[d][a] for a in range(n)],
                "policy": policy or None,
            })
        self.P.c.rounds += 1
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
            "leaf_worlds": self._leaf_worlds(s),
        }

    cdef list _leaf_worlds(self, Slot* s):
        """The round's labelled leaf worlds (``search.leaf_samples``), oldest decision first:
        per world ``ply`` (the decision it was searched for), ``path`` (its actions after
        ``ply`` to the end of the round: the tree's path, then the play-out), ``leaf`` (how many
        of them lead to the leaf), ``dealt`` (each seat's dealt cards, bit masks) and
        ``scores`` (the play-out's normalised scores by absolute seat)."""
        cdef LeafSample* x
        cdef int j, a, n = s.game.n_players
        out = []
        for j in range(s.n_leaf_samples):
            x = &s.leaf_samples[j]
            out.append({"ply": x.ply, "path": [x.actions[a] for a in range(x.ply, x.n_actions)],
                        "leaf": x.leaf_n - x.ply,
                        "dealt": [int(x.dealt[a]) for a in range(n)],
                        "scores": [x.scores[a] for a in range(n)]})
        out.sort(key=lambda w: w["ply"])
        return out

    # -- the search (nogil) ----------------------------------------------------------
    cdef void _advance(self, Slot* s, int slot) noexcept nogil:
        """Run slot ``s`` until it waits on evaluations or its round ends."""
        cdef Pool* P = &self.P
        cdef uint64_t legal
        cdef CacheEntry* hit
        cdef uint64_t key
        cdef int agent, action
        while s.n_pending == 0 and s.belief_rows == 0 and s.status == S_RUNNING:
            if s.game.phase == PHASE_DONE_C:
                s.status = S_FINISHED
                return
            if not s.in_decision:
                legal = rs_legal(&s.game)
                if popcount64(legal) == 1:           # zero-choice fast path: no search, no example
                    rs_apply(&s.game, ctz64(legal))
                    P.c.forced_moves += 1
                    continue
                agent = agent_to_move(s)
                if agent < 0:                        # a built-in seat: its move, no search
                    action = builtin_action(agent, &s.game, &s.rng)
                    if self.record_builtin:
                        self._record_builtin(s, action)
                    rs_apply(&s.game, action)
                    continue
                if not P.beliefs.begin(P, s):
                    return               # no room for the beliefs' rows: the next batch
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
            if not s.root_ready:
                # The root observation is the same in every determinization: evaluate it once.
                hit = self._encode_lookup(s, &s.game, &key, 0)
                if hit != NULL:
                    P.c.cache_hits += 1
                    self._set_root(s, hit.policy, hit.value)
                    continue
                self._add_pending(s, -1, 0, key)
                return
            self._simulate(s, slot)

    cdef inline int _observer(self, Slot* s, const RoundState* st) noexcept nogil:
        """The seat whose view ``st`` is encoded from (see Perspective in the module doc)."""
        return s.game.current if self.P.p.view_searcher else st.current

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

    cdef CacheEntry* _encode_lookup(self, Slot* s, const RoundState* st, uint64_t* key,
                                    int leaf) noexcept nogil:
        """Encode ``st`` into the next free batch row and look it up in the slot's cache.
        On a miss the row stays filled: ``_add_pending`` claims it. For a ``leaf`` when the
        leaf value needs worlds, the leaf's world (drawn afresh by the beliefs with
        ``rollout_resample``, else the tree's) is encoded into the row's world too, and is
        part of the key."""
        cdef float* obs = self.P.states_buf + <size_t>self.P.n_rows * OBS_SIZE_C
        cdef float* mask = self.P.masks_buf + <size_t>self.P.n_rows * ACTIONS_C
        cdef float* world
        cdef RoundState w
        encode_view(st, self._observer(s, st), obs, mask)
        key[0] = _hash_obs(obs, mask)
        if leaf and self.P.p.wants_world:
            world = self.P.worlds_buf + <size_t>self.P.n_rows * WORLD_SIZE_C
            if self.P.p.rollout_resample:
                self.P.beliefs.leaf_world(&self.P, s, st, &w)
            else:
                w = st[0]
            encode_world(&w, world)
            if self.P.leaf.needs_world:            # (play-outs keep their own)
                label_world(&self.P, s, &w)        # search.leaf_samples: some leaves' worlds labelled
            key[0] = _hash_world(key[0], world)
        return _cache_find(s, key[0])

    cdef void _add_pending(self, Slot* s, int node, int depth, uint64_t key) noexcept nogil:
        cdef Pending* pd = &s.pending[s.n_pending]
        pd.row = self.P.n_rows
        self.P.row_agent[self.P.n_rows] = agent_to_move(s)   # the searching seat's network
        pd.node = node
        pd.depth = depth
        pd.key = key
        s.n_pending += 1
        self.P.n_rows += 1
        self.P.c.leaves += 1

    cdef void _set_root(self, Slot* s, const float* policy, const float* value_rel) noexcept nogil:
        """Root priors (masked, renormalised) and value for the decision; the root rule
        starts (noise, its plan for the simulations)."""
        cdef uint64_t legal = rs_legal(&s.game), bits
        cdef float total = 0.0
        cdef int a, n_legal = popcount64(legal)
        memset(s.root_prior, 0, sizeof(s.root_prior))
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
        self.P.root.start(&self.P, s)
        s.root_ready = 1

    cdef void _new_root(self, Slot* s, int slot) noexcept nogil:
        """A determinization from the beliefs, as node 0 of the slot's arena."""
        cdef Node* root = slot_nodes(&self.P, slot)
        cdef Edge* ed = slot_edges(&self.P, slot)
        cdef uint64_t legal = rs_legal(&s.game)
        cdef int a, k = 0
        s.n_nodes = 1
        s.n_edges = 0
        self.P.beliefs.decision_world(&self.P, s, &root.state)
        root.first_edge = 0
        root.visits = 0
        root.expanded = 1
        root.terminal = 0
        to_absolute(s.root_value, s.game.current, s.game.n_players, root.value)
        memset(root.wsum, 0, sizeof(root.wsum))
        while legal:
            a = ctz64(legal)
            legal &= legal - 1
            init_edge(&ed[k], a, self.P.root.edge_prior(&self.P, s, a))
            k += 1
        root.n_edges = k
        s.n_edges = k

    cdef void _simulate(self, Slot* s, int slot) noexcept nogil:
        """Start simulations until the slot has its leaves for this batch (or none needed)."""
        cdef Pool* P = &self.P
        cdef Node* nd = slot_nodes(P, slot)
        cdef Edge* ed = slot_edges(P, slot)
        cdef int path_node[64]
        cdef int path_edge[64]
        cdef int depth, node, e, best, child, i, blocked, root_action
        cdef Node* cur
        cdef Node* ch
        cdef uint64_t key
        cdef CacheEntry* hit
        while s.n_pending < P.p.leaves:
            if s.sims_started == P.p.S:
                if s.n_pending:
                    return
                self._finish_determinization(s, slot)
                if not s.in_decision or s.n_pending:
                    return
                continue
            if s.sims_started == 0 and s.n_nodes == 0:
                self._new_root(s, slot)
            # --- selection: the root rule at the root, PUCT below, down to an unexpanded
            # edge or a terminal node ---
            node = 0
            depth = 0
            blocked = 0
            while True:
                cur = &nd[node]
                best = -1
                if depth == 0:
                    root_action = P.root.select(P, s, slot)
                    if root_action >= 0:
                        best = cur.first_edge
                        for e in range(cur.first_edge, cur.first_edge + cur.n_edges):
                            if ed[e].action == root_action:
                                best = e
                if best < 0:
                    best = puct_select(cur, ed, P.p.c_puct)
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
            P.c.simulations += 1
            if child >= 0:                           # revisiting a terminal node
                P.c.terminal_leaves += 1
                backup(nd, ed, path_node, path_edge, depth, child, nd[child].value)
                continue
            # --- expansion: create the child state ---
            child = s.n_nodes
            s.n_nodes += 1
            ch = &nd[child]
            ch.state = nd[path_node[depth - 1]].state
            rs_apply(&ch.state, ed[path_edge[depth - 1]].action)
            if P.p.skip_forced:
                advance_forced(&ch.state)
            ch.visits = 0
            ch.n_edges = 0
            ch.first_edge = s.n_edges
            memset(ch.wsum, 0, sizeof(ch.wsum))
            ed[path_edge[depth - 1]].child = child
            if ch.state.phase == PHASE_DONE_C:
                ch.terminal = 1
                ch.expanded = 1
                terminal_value(&ch.state, ch.value)
                P.c.terminal_leaves += 1
                backup(nd, ed, path_node, path_edge, depth, child, ch.value)
                continue
            ch.terminal = 0
            ch.expanded = 0
            hit = self._encode_lookup(s, &ch.state, &key, 1)
            if hit != NULL:
                P.c.cache_hits += 1
                P.leaf_world = hit.world if P.p.wants_world else NULL
                self._expand(s, slot, child, hit.policy, hit.value)
                P.leaf_world = NULL
                backup(nd, ed, path_node, path_edge, depth, child, ch.value)
                continue
            memcpy(s.pending[s.n_pending].path_node, path_node, depth * sizeof(int))
            memcpy(s.pending[s.n_pending].path_edge, path_edge, depth * sizeof(int))
            self._add_pending(s, child, depth, key)

    cdef void _expand(self, Slot* s, int slot, int node, const float* policy,
                      const float* value_rel) noexcept nogil:
        """Edges and priors from the network's answer; the leaf value part values it."""
        cdef Node* x = &slot_nodes(&self.P, slot)[node]
        set_edges(s, slot_edges(&self.P, slot), x, policy)
        to_absolute(value_rel, self._observer(s, &x.state), x.state.n_players, x.value)
        self.P.leaf.evaluate(&self.P, s, &x.state, x.value)
        x.expanded = 1

    cdef void _resolve(self, Slot* s, int slot, const float* policy, const float* value,
                       int vw, const float* beliefs, const float* world, int ww) noexcept nogil:
        """Apply the evaluations of this slot's rows: its beliefs', then its leaves'."""
        cdef int j, k, row
        cdef Pending* pd
        cdef float rel[8]
        cdef float wrel[8]
        cdef Node* nd = slot_nodes(&self.P, slot)
        if s.belief_rows:
            self.P.beliefs.answer(&self.P, s, policy, beliefs)
        for j in range(s.n_pending):
            pd = &s.pending[j]
            row = pd.row
            memset(rel, 0, sizeof(rel))
            for k in range(min(vw, SEATS_C)):
                rel[k] = value[<size_t>row * vw + k]
            memset(wrel, 0, sizeof(wrel))
            if world != NULL:
                for k in range(min(ww, SEATS_C)):
                    wrel[k] = world[<size_t>row * ww + k]
            _cache_put(s, pd.key, policy + <size_t>row * ACTIONS_C, rel, wrel)
            if pd.node < 0:
                self._set_root(s, policy + <size_t>row * ACTIONS_C, rel)
            else:
                self.P.leaf_world = wrel if world != NULL else NULL
                self._expand(s, slot, pd.node, policy + <size_t>row * ACTIONS_C, rel)
                self.P.leaf_world = NULL
                backup(nd, slot_edges(&self.P, slot), pd.path_node, pd.path_edge, pd.depth,
                       pd.node, nd[pd.node].value)
        s.n_pending = 0

    cdef void _finish_determinization(self, Slot* s, int slot) noexcept nogil:
        cdef Node* root = slot_nodes(&self.P, slot)
        cdef Edge* ed = slot_edges(&self.P, slot)
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
        if s.det_index == self.P.p.D:
            self._finish_decision(s, slot)

    cdef void _finish_decision(self, Slot* s, int slot) noexcept nogil:
        """The root rule picks the move and the policy target; record the decision, play it."""
        cdef int a, d = s.n_decisions, k, move = -1, has_target
        cdef float target[52]
        has_target = self.P.root.finish(&self.P, s, slot, &move, target)
        if d < MAX_DECISIONS:
            s.dec_ply[d] = s.game.n_actions
            s.dec_player[d] = s.game.current
            for a in range(ACTIONS_C):
                s.dec_visits[d][a] = <uint16_t>(s.visits_acc[a] if s.visits_acc[a] < 65535 else 65535)
                s.dec_policy[d][a] = target[a] if has_target else 0.0
            for k in range(SEATS_C):
                s.dec_value[d][k] = s.value_acc[k] / self.P.p.D
            for a in range(ACTIONS_C):
                s.dec_q[d][a] = s.w_acc[a] / s.visits_acc[a] if s.visits_acc[a] > 0 else 0
            s.n_decisions += 1
        s.searched_decisions += 1
        s.in_decision = 0
        self.P.c.decisions += 1
        rs_apply(&s.game, move)
        if s.stop_after > 0 and s.searched_decisions >= s.stop_after:
            s.status = S_FINISHED
