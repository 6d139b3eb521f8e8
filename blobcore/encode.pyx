# cython: language_level=3
"""Observation encoder: one seat's view -> 256 float32 + 52-wide legal mask.

This is exactly what BlobNet sees; every slot is documented in docs/observation.md and
named by the offsets below. Seats are rotated so that the observer (by default the player
to move; the search also asks for the searching player's view of positions where someone
else is to move) is relative seat 0, then the seats that follow in turn order. Counts are
normalised by the cards dealt at the deal (C), never by the current hand size, so a fact
encodes the same way all round. Only public information and the observer's own hand are read.
"""
from libc.string cimport memset
from libc.stdint cimport uint64_t

import numpy as np

from blobcore.rules cimport (RoundState, Round, rs_legal, rs_forbidden_bid, ctz64, popcount64,
                             card_suit, card_rank, MAX_PLAYERS_C, MAX_CARDS_C, NO_TRUMP_C,
                             PHASE_BID_C, PHASE_PLAY_C, PHASE_DONE_C)

OBS_SIZE = OBS_SIZE_C
NUM_ACTIONS = ACTIONS_C
#: floats in a whole-deal encoding (``encode_world``): what a world-value model reads
WORLD_SIZE = WORLD_SIZE_C

# Slot offsets (see docs/observation.md for the meaning and scale of each).
cdef enum:
    HAND = 0           # 52  own hand
    PLAYED = 52        # 52  every card played this round, current trick included
    TRICK = 104        # 40  current trick: per relative seat, suit one-hot (4) + (rank+1)/13
    LEADER = 144       # 8   relative seat that led the current trick (or is to lead it)
    LED_SUIT = 152     # 4   suit led in the current trick
    BIDS = 156         # 8   (bid+1)/(C+1) per relative seat, 0 = not bid yet
    TRICKS_WON = 164   # 8   tricks won / C
    HAND_SIZE = 172    # 8   cards still held / C
    VOIDS = 180        # 32  4*seat + suit: seat has shown out of suit
    SEATS = 212        # 8   relative seat is at the table
    DEALER = 220       # 8   relative seat of the dealer
    TRUMP = 228        # 5   S H C D, no trump
    PHASE = 233        # 2   bidding, playing
    FORBIDDEN = 235    # 2   [dealer's forbidden bid exists, forbidden bid / C]
    CARDS = 237        # 1   C / 17
    PLAYERS = 238      # 1   N / 8
    TRICKS_DONE = 239  # 1   completed tricks / C
    BID_TOTAL = 240    # 1   sum of bids made / C
    IN_GAME = 241      # 1   1 when the round is part of a full game
    ROUND_POS = 242    # 1   round index / rounds in game
    ROUNDS_LEFT = 243  # 1   rounds after this one / rounds in game
    GAME_SCORES = 244  # 8   cumulative score per relative seat / (10 * rounds in game)
    NEXT_CARDS = 252   # 1   cards per seat next round / 17
    SCORE_GAP = 253    # 1   (my cumulative score - best other) / (10 * rounds in game)
    TO_LEAD = 254      # 1   1 when I lead the current trick
    STILL_TO_PLAY = 255 # 1   seats that play after me in this trick / N

#: slot name -> (offset, width), for documentation, tests and debugging tools
SLOTS = {
    'hand': (0, 52),
    'played': (52, 52),
    'trick': (104, 40),
    'leader': (144, 8),
    'led_suit': (152, 4),
    'bids': (156, 8),
    'tricks_won': (164, 8),
    'hand_size': (172, 8),
    'voids': (180, 32),
    'seats': (212, 8),
    'dealer': (220, 8),
    'trump': (228, 5),
    'phase': (233, 2),
    'forbidden': (235, 2),
    'cards': (237, 1),
    'players': (238, 1),
    'tricks_done': (239, 1),
    'bid_total': (240, 1),
    'in_game': (241, 1),
    'round_pos': (242, 1),
    'rounds_left': (243, 1),
    'game_scores': (244, 8),
    'next_cards': (252, 1),
    'score_gap': (253, 1),
    'to_lead': (254, 1),
    'still_to_play': (255, 1),
}


cdef void encode_state(const RoundState* s, float* obs, float* mask) noexcept nogil:
    """Write the player-to-move's observation (256 floats) and legal mask (52 floats)."""
    encode_view(s, s.current, obs, mask)


cdef void encode_view(const RoundState* s, int observer, float* obs, float* mask) noexcept nogil:
    """Write seat ``observer``'s observation (256 floats): its own hand and the public record,
    seats relative to it. The mask is always the legal actions of the player to move (what
    the policy head ranks); only public facts tell the network who that is."""
    cdef int n = s.n_players, me = observer, rel, seat, card, suit, k, f, total, best
    cdef float inv_c = 1.0 / s.cards
    cdef float score_scale
    cdef uint64_t bits
    memset(obs, 0, OBS_SIZE_C * sizeof(float))
    memset(mask, 0, ACTIONS_C * sizeof(float))
    if me < 0:   # terminal: no mover; encode from seat 0's view with an empty mask
        me = 0
    bits = s.hands[me]
    while bits:
        obs[HAND + ctz64(bits)] = 1.0
        bits &= bits - 1
    bits = s.played
    while bits:
        obs[PLAYED + ctz64(bits)] = 1.0
        bits &= bits - 1
    total = 0
    for rel in range(n):
        seat = (me + rel) % n
        card = s.trick_card[seat]
        if card >= 0:
            obs[TRICK + 5 * rel + card_suit(card)] = 1.0
            obs[TRICK + 5 * rel + 4] = (card_rank(card) + 1) / 13.0
        if s.bids[seat] >= 0:
            obs[BIDS + rel] = (s.bids[seat] + 1.0) / (s.cards + 1.0)
            total += s.bids[seat]
        obs[TRICKS_WON + rel] = s.tricks_won[seat] * inv_c
        obs[HAND_SIZE + rel] = popcount64(s.hands[seat]) * inv_c
        for suit in range(4):
            if s.void_suits[seat] >> suit & 1:
                obs[VOIDS + 4 * rel + suit] = 1.0
        obs[SEATS + rel] = 1.0
    if s.n_in_trick > 0:
        obs[LEADER + (s.leader - me + n) % n] = 1.0
        obs[LED_SUIT + s.led_suit] = 1.0
    elif s.phase == PHASE_PLAY_C:        # an empty trick: the seat to lead it
        obs[LEADER + (s.current - me + n) % n] = 1.0
    obs[DEALER + (s.dealer - me + n) % n] = 1.0
    obs[TRUMP + s.trump] = 1.0
    if s.phase == PHASE_BID_C:
        obs[PHASE] = 1.0
        f = rs_forbidden_bid(s)
        if f >= 0:
            obs[FORBIDDEN] = 1.0
            obs[FORBIDDEN + 1] = f * inv_c
    elif s.phase == PHASE_PLAY_C:
        obs[PHASE + 1] = 1.0
        if s.n_in_trick == 0:
            obs[TO_LEAD] = 1.0
        obs[STILL_TO_PLAY] = (n - 1 - s.n_in_trick) / <float>n
    obs[CARDS] = s.cards / <float>MAX_CARDS_C
    obs[PLAYERS] = n / <float>MAX_PLAYERS_C
    obs[TRICKS_DONE] = s.tricks_done * inv_c
    obs[BID_TOTAL] = total * inv_c
    if s.n_rounds > 0:
        score_scale = 1.0 / (10.0 * s.n_rounds)
        obs[IN_GAME] = 1.0
        obs[ROUND_POS] = s.round_index / <float>s.n_rounds
        obs[ROUNDS_LEFT] = (s.n_rounds - s.round_index - 1) / <float>s.n_rounds
        best = -1
        for rel in range(n):
            seat = (me + rel) % n
            obs[GAME_SCORES + rel] = s.game_scores[seat] * score_scale
            if rel > 0 and s.game_scores[seat] > best:
                best = s.game_scores[seat]
        obs[NEXT_CARDS] = s.next_cards / <float>MAX_CARDS_C
        obs[SCORE_GAP] = (s.game_scores[me] - best) * score_scale
    if s.phase != PHASE_DONE_C:
        bits = rs_legal(s)
        while bits:
            mask[ctz64(bits)] = 1.0
            bits &= bits - 1


cdef void encode_world(const RoundState* s, float* out) noexcept nogil:
    """A whole deal as its player to move would see it if every hand were face up: that
    seat's observation (256 floats, ``encode_view``) followed by the hands of relative seats
    1..7 (52 floats each, seat r = the r-th after the mover in turn order; zeros for seats
    not at the table): 620 floats. What a world-value model reads (docs/observation.md,
    "Whole deals"); only the search's sampled worlds are encoded this way, never the true
    state of a decision, so no hidden card reaches a player's choice."""
    cdef float mask[52]
    cdef int n = s.n_players, me = s.current, rel
    cdef uint64_t bits
    if me < 0:
        me = 0
    encode_view(s, me, out, mask)
    memset(out + OBS_SIZE_C, 0, (WORLD_SIZE_C - OBS_SIZE_C) * sizeof(float))
    for rel in range(1, n):
        bits = s.hands[(me + rel) % n]
        while bits:
            out[OBS_SIZE_C + 52 * (rel - 1) + ctz64(bits)] = 1.0
            bits &= bits - 1


def encode_world_of(Round rnd):
    """Return the whole-deal encoding of ``rnd`` for its player to move: float32 (620,)."""
    out = np.empty(WORLD_SIZE_C, dtype=np.float32)
    cdef float[::1] view = out
    encode_world(&rnd.st, &view[0])
    return out


def encode_into(Round rnd, float[::1] obs, float[::1] mask):
    """Encode ``rnd`` for its player to move into caller-owned buffers (no allocation).

    obs: float32 (256,), mask: float32 (52,), both C-contiguous."""
    if obs.shape[0] != OBS_SIZE_C or mask.shape[0] != ACTIONS_C:
        raise ValueError(f"need obs of shape (256,) and mask of shape (52,), got "
                         f"({obs.shape[0]},) and ({mask.shape[0]},)")
    encode_state(&rnd.st, &obs[0], &mask[0])


def encode_view_into(Round rnd, int observer, float[::1] obs, float[::1] mask):
    """Encode ``rnd`` as seat ``observer`` sees it into caller-owned buffers; the mask is the
    legal actions of the player to move. obs: float32 (256,), mask: float32 (52,)."""
    if obs.shape[0] != OBS_SIZE_C or mask.shape[0] != ACTIONS_C:
        raise ValueError(f"need obs of shape (256,) and mask of shape (52,), got "
                         f"({obs.shape[0]},) and ({mask.shape[0]},)")
    if not 0 <= observer < rnd.st.n_players:
        raise ValueError(f"observer {observer} is not a seat of this {rnd.st.n_players}-player round")
    encode_view(&rnd.st, observer, &obs[0], &mask[0])


def encode(Round rnd, observer=None):
    """Return ``(obs float32 (256,), mask float32 (52,))`` for the player to move, or as seat
    ``observer`` sees the position."""
    obs = np.empty(OBS_SIZE_C, dtype=np.float32)
    mask = np.empty(ACTIONS_C, dtype=np.float32)
    if observer is None:
        encode_into(rnd, obs, mask)
    else:
        encode_view_into(rnd, observer, obs, mask)
    return obs, mask
