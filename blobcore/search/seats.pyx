# cython: language_level=3
"""Seats of a round spec: per seat an agent (an evaluator index 0..126 whose network searches
there, or a built-in player's code < 0 from blobcore/builtin.pyx), or a pair (bidding agent,
card-play agent) for a split seat."""
from blobcore import builtin

#: Evaluator indices a seat may name (the slot stores an int8).
MAX_EVALUATOR = 126


def seat_agents(spec, agents, int n_players):
    """(bid agents, play agents) from a spec's per-seat entries; ValueError naming the spec
    when an entry is neither an evaluator index nor a built-in code nor a pair of them."""
    lowest = builtin.lowest_code()
    bid, play = [], []
    for a in agents:
        pair = tuple(a) if isinstance(a, (tuple, list)) else (a, a)
        if len(pair) != 2 or not all(lowest <= int(x) <= MAX_EVALUATOR for x in pair):
            bid = None
            break
        bid.append(int(pair[0]))
        play.append(int(pair[1]))
    if bid is None or len(bid) != n_players:
        raise ValueError(f"bad round spec {spec!r}: agents needs one entry per seat, an agent "
                         f"{lowest}..{MAX_EVALUATOR} or a (bidding, card play) pair of them")
    return bid, play
