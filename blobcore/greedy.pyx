# cython: language_level=3
"""The built-in greedy baseline player, in C so the arena can seat it inside the search pool.

Bidding: bid the expected number of tricks from card strength (trumps and high cards), the
legal bid closest to it. Playing: while it still needs tricks, win the trick (with the
cheapest winning card when last to play, the strongest otherwise); once its bid is made,
shed the highest card that still loses; if every card wins, play the lowest.
"""
from libc.math cimport nearbyint
from libc.stdint cimport uint64_t

from blobcore.rules cimport (RoundState, Round, rs_legal, rs_apply, rs_trick_winner, ctz64,
                             card_suit, card_rank, PHASE_BID_C)


cdef inline double _strength(int card, int trump) noexcept nogil:
    """Rough chance that ``card`` wins a trick."""
    cdef int rank = card_rank(card)
    if card_suit(card) == trump:
        return 0.45 + 0.05 * rank
    return (rank - 8) * 0.22 if rank > 8 else 0.0     # ten 0, J .22, Q .44, K .66, A .88


cdef inline int _power(int card, int trump) noexcept nogil:
    return card_rank(card) + (13 if card_suit(card) == trump else 0)


cdef int greedy_action(const RoundState* s) noexcept nogil:
    cdef int me = s.current, card, best = -1, want, b, d, best_d = 1000
    cdef uint64_t legal = rs_legal(s), bits
    cdef double total = 0.0
    cdef RoundState trial
    cdef int need, last, wins, best_win = -1, best_lose = -1, lowest = -1
    if s.phase == PHASE_BID_C:
        bits = s.hands[me]
        while bits:
            total += _strength(ctz64(bits), s.trump)
            bits &= bits - 1
        want = <int>nearbyint(total)                 # round half to even, as Python's round()
        bits = legal
        while bits:
            b = ctz64(bits)
            bits &= bits - 1
            d = b - want if b >= want else want - b
            if d < best_d:                           # ascending order: ties keep the lower bid
                best_d = d
                best = b
        return best
    need = s.bids[me] - s.tricks_won[me]
    last = s.n_in_trick == s.n_players - 1
    bits = legal
    while bits:
        card = ctz64(bits)
        bits &= bits - 1
        trial = s[0]
        rs_apply(&trial, card)
        if trial.n_in_trick == 0:                    # the card completed the trick
            wins = trial.tricks_won[me] > s.tricks_won[me]
        else:
            wins = rs_trick_winner(&trial) == me
        if wins:
            if best_win < 0 or (_power(card, s.trump) < _power(best_win, s.trump) if last
                                else _power(card, s.trump) > _power(best_win, s.trump)):
                best_win = card
        elif best_lose < 0 or _power(card, s.trump) > _power(best_lose, s.trump):
            best_lose = card
        if lowest < 0 or _power(card, s.trump) < _power(lowest, s.trump):
            lowest = card
    if need > 0 and best_win >= 0:
        return best_win
    if best_lose >= 0:
        return best_lose
    return lowest


def greedy(Round rnd):
    """The greedy player's action for the player to move in ``rnd``."""
    if rnd.st.current < 0:
        raise ValueError("the round is over: nobody is to move")
    return greedy_action(&rnd.st)
