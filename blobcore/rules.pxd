# Blob rules engine: one plain C struct per round, nogil functions over it.
# Cards are indices suit*13 + rank (suits S H C D, ranks 2..A); a hand is a 52-bit mask.
from libc.stdint cimport uint64_t, uint8_t, int8_t, int16_t, int32_t
from blobcore.rng cimport RngState

cdef enum:
    MAX_PLAYERS_C = 8
    MIN_PLAYERS_C = 3
    DECK_C = 52
    SUITS_C = 4
    RANKS_C = 13
    MAX_CARDS_C = 17          # floor(52 / 3)
    MAX_ACTIONS_C = 60        # N bids + N*C cards <= 8 + 52
    NO_TRUMP_C = 4
    PHASE_BID_C = 0
    PHASE_PLAY_C = 1
    PHASE_DONE_C = 2

# Why an action is illegal (0 = legal). Messages live in rules.pyx.
cdef enum:
    OK = 0
    ERR_DONE = 1
    ERR_RANGE = 2
    ERR_BID_RANGE = 3
    ERR_HOOK = 4
    ERR_NOT_IN_HAND = 5
    ERR_MUST_FOLLOW = 6

cdef struct RoundState:
    # --- the deal ---------------------------------------------------------
    uint64_t dealt[8]          # each seat's hand as dealt (bit c = card c)
    uint64_t hands[8]          # cards each seat still holds
    uint64_t played            # every card played so far, current trick included
    int8_t n_players           # N, 3..8
    int8_t cards               # C, cards dealt to each seat
    int8_t dealer              # seat of the dealer
    int8_t trump               # 0..3 = S H C D, 4 = no trump
    # --- progress ---------------------------------------------------------
    int8_t phase               # PHASE_BID_C, PHASE_PLAY_C, PHASE_DONE_C
    int8_t current             # seat to act (-1 when done)
    int8_t n_bids              # bids made so far
    int8_t bids[8]             # -1 = not yet bid
    int8_t tricks_won[8]
    int8_t leader              # seat that led the current trick
    int8_t led_suit            # suit led in the current trick, -1 if none yet
    int8_t n_in_trick          # cards in the current trick
    int8_t trick_card[8]       # card played by each seat in the current trick, -1 = none
    int8_t tricks_done         # completed tricks
    int8_t trick_winner[17]    # winner of each completed trick, -1 = not played yet
    uint8_t void_suits[8]      # bit s: seat showed out of suit s (public knowledge)
    int8_t n_actions
    int8_t actions[60]         # every action in order (bids 0..C, then cards)
    int8_t action_seat[60]     # who took each action
    # --- full-game context (zeros for a standalone round) -------------------
    int16_t round_index        # 0-based index in the game schedule
    int16_t n_rounds           # rounds in the game, 0 = standalone round
    int16_t next_cards         # cards per seat in the next round, 0 if none
    int32_t game_scores[8]     # cumulative scores before this round


cdef extern from *:
    int popcount64 "__builtin_popcountll"(unsigned long long) nogil
    int ctz64 "__builtin_ctzll"(unsigned long long) nogil


cdef inline int card_suit(int card) noexcept nogil:
    return card // 13


cdef inline int card_rank(int card) noexcept nogil:
    return card % 13


cdef inline uint64_t suit_mask(int suit) noexcept nogil:
    return (<uint64_t>0x1FFF) << (13 * suit)


cdef inline int nth_set_bit(uint64_t bits, int n) noexcept nogil:
    """Index of the n-th (0-based) set bit of ``bits``; requires n < popcount(bits)."""
    while n > 0:
        bits &= bits - 1
        n -= 1
    return ctz64(bits)


cdef void rs_init(RoundState* s, int n_players, int cards, int dealer, int trump,
                  const uint64_t* hands) noexcept nogil
cdef void rs_deal_random(RoundState* s, int n_players, int cards, int dealer, int trump,
                         RngState* rng) noexcept nogil
cdef uint64_t rs_legal(const RoundState* s) noexcept nogil
cdef int rs_check(const RoundState* s, int action) noexcept nogil
cdef void rs_apply(RoundState* s, int action) noexcept nogil
cdef int rs_forbidden_bid(const RoundState* s) noexcept nogil
cdef int rs_trick_winner(const RoundState* s) noexcept nogil
cdef int rs_score(const RoundState* s, int seat) noexcept nogil
cdef uint64_t rs_played_by(const RoundState* s, int seat) noexcept nogil
cdef int rs_random_playout(RoundState* s, RngState* rng) noexcept nogil


cdef class Rng:
    """Seeded random source shared by dealing, playouts and determinization."""
    cdef RngState s


cdef class Round:
    """One Blob round (deal, bidding, tricks) wrapping a RoundState struct."""
    cdef RoundState st
    cdef int _raise_if_illegal(self, int action) except -1
