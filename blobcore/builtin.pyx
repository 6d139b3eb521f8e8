# cython: language_level=3
"""The built-in players in C, one table for everything that seats them.

A built-in player is one ``_register`` line below: its name, its C function and a summary.
Everything else finds it from here: the search pool seats it by agent code (-1, -2, ...: the
registration order) and plays it without search, play-outs use it by name
(``search.rollout``), ``blobcore.players`` wraps it for Python callers (the arena's seats,
``blobzero game``, the agent, self-play opponents). Its function reads only the public record
and its own hand of ``s``.
"""
from blobcore.rules cimport RoundState, Round, rs_legal, popcount64, nth_set_bit, PHASE_DONE_C
from blobcore.rng cimport RngState, rng_below, rng_seed
from blobcore.greedy cimport greedy_action
from blobcore.expert cimport expert_action

#: (name, agent code, summary) of every built-in player, in registration order.
ENTRIES = []


cdef int _random_action(const RoundState* s, RngState* rng) noexcept nogil:
    cdef unsigned long long legal = rs_legal(s)
    return nth_set_bit(legal, rng_below(rng, popcount64(legal)))


cdef int _greedy_action(const RoundState* s, RngState* rng) noexcept nogil:
    return greedy_action(s)


cdef int _expert_action(const RoundState* s, RngState* rng) noexcept nogil:
    return expert_action(s)


cdef void _register(str name, BuiltinAction act, str summary):
    global N_BUILTINS
    if N_BUILTINS == MAX_BUILTINS_C:
        raise RuntimeError(f"more than {MAX_BUILTINS_C} built-in players")
    BUILTIN_ACTIONS[N_BUILTINS] = act
    N_BUILTINS += 1
    ENTRIES.append((name, -N_BUILTINS, summary))


N_BUILTINS = 0
_register("random", _random_action, "uniformly random legal action")
_register("greedy", _greedy_action,
          "bids its expected tricks from card strength, plays to win while it needs tricks")
_register("expert", _expert_action,
          "counts cards, bids the trick count with the best expected score, plays to make it")


def lowest_code():
    """The most negative agent code a built-in player has."""
    return -N_BUILTINS


def act(int code, Round rnd, unsigned long long seed):
    """The action built-in player ``code`` takes in ``rnd`` (``seed`` feeds a player that
    draws at random)."""
    cdef RngState rng
    if not -N_BUILTINS <= code <= -1:
        raise ValueError(f"no built-in player has agent code {code}")
    if rnd.st.phase == PHASE_DONE_C:
        raise ValueError("the round is over: there is no action to take")
    rng_seed(&rng, seed)
    return builtin_action(code, &rnd.st, &rng)
