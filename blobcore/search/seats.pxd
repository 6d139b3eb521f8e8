# Seats: who decides at a seat — a network's search (agent >= 0, the evaluator index), a
# built-in player (agent < 0, blobcore/builtin.pyx), or a split seat (one agent bids, another
# plays the cards). blobcore/search/seats.pyx reads them from a round spec.
from blobcore.rules cimport PHASE_BID_C
from blobcore.search.core cimport Slot


cdef inline int agent_to_move(const Slot* s) noexcept nogil:
    """The agent deciding now: the seat's bidder while bidding, its card player after."""
    cdef int seat = s.game.current
    return s.agent[seat] if s.game.phase == PHASE_BID_C else s.agent_play[seat]
