# cython: language_level=3
"""Blob rules engine (docs/rules.md), exact and C-speed.

The state of a round is one plain C struct (``RoundState``, see rules.pxd): copying
it is a memcpy, and every step function runs without the GIL so the search can
drive thousands of rounds from C. ``Round`` is the thin Python face over it.

Conventions
-----------
* card index = suit * 13 + rank; suits S, H, C, D = 0..3; ranks 2..A = 0..12.
* trump 0..3 is a suit, 4 (``NO_TRUMP``) means no trump; Python uses ``None`` for it.
* action index: while bidding, ``b`` = "bid b"; while playing, the card index.
"""
from libc.string cimport memset, memcpy
from libc.stdint cimport uint64_t

import numpy as np

from blobcore.rng cimport RngState, rng_seed, rng_next, rng_below

DECK_SIZE = DECK_C
MAX_PLAYERS = MAX_PLAYERS_C
MIN_PLAYERS = MIN_PLAYERS_C
NUM_SUITS = SUITS_C
NUM_RANKS = RANKS_C
NO_TRUMP = NO_TRUMP_C
PHASE_BID = PHASE_BID_C
PHASE_PLAY = PHASE_PLAY_C
PHASE_DONE = PHASE_DONE_C
PHASE_NAMES = ("bid", "play", "done")

SUIT_LETTERS = "SHCD"
SUIT_NAMES = ("spades", "hearts", "clubs", "diamonds")
RANK_LETTERS = "23456789TJQKA"


# ---------------------------------------------------------------------------
# Card helpers (Python)
# ---------------------------------------------------------------------------

def card_name(int card):
    """'AS' for the ace of spades (index 12); raises ValueError outside 0..51."""
    if card < 0 or card >= DECK_C:
        raise ValueError(f"card index {card} is outside 0..51")
    return RANK_LETTERS[card % 13] + SUIT_LETTERS[card // 13]


def card_index(card):
    """Accept an index 0..51 or a name like 'QH' / 'Th' and return the index."""
    if isinstance(card, (int, np.integer)):
        idx = int(card)
        if not 0 <= idx < DECK_C:
            raise ValueError(f"card index {idx} is outside 0..51")
        return idx
    if isinstance(card, str) and len(card) == 2:
        rank = RANK_LETTERS.find(card[0].upper())
        suit = SUIT_LETTERS.find(card[1].upper())
        if rank >= 0 and suit >= 0:
            return suit * 13 + rank
    raise ValueError(f"not a card: {card!r} (use an index 0..51 or a name like 'AS', 'TD')")


def max_cards(int n_players):
    """Most cards each of ``n_players`` seats can be dealt from one deck."""
    _check_players(n_players)
    return DECK_C // n_players


def trump_for_round(int round_index):
    """Trump of the round at ``round_index`` in a game: S, H, C, D, no trump, repeating.

    Returns 0..3 for a suit, None for no trump."""
    t = round_index % 5
    return None if t == NO_TRUMP_C else t


def game_schedule(int n_players, int start_cards):
    """Cards per seat of every round of a full game: C, C-1, ..., 2, N x 1, 2, ..., C."""
    _check_players(n_players)
    if not 1 <= start_cards <= DECK_C // n_players:
        raise ValueError(f"start_cards must be 1..{DECK_C // n_players} for {n_players} players, "
                         f"got {start_cards}")
    return list(range(start_cards, 1, -1)) + [1] * n_players + list(range(2, start_cards + 1))


def _check_players(int n):
    if not MIN_PLAYERS_C <= n <= MAX_PLAYERS_C:
        raise ValueError(f"Blob is for {MIN_PLAYERS_C}..{MAX_PLAYERS_C} players, got {n}")


def _parse_trump(trump):
    if trump is None:
        return NO_TRUMP_C
    if isinstance(trump, str):
        if trump.lower() in ("none", "nt", "no trump", "notrump"):
            return NO_TRUMP_C
        if len(trump) == 1 and trump.upper() in SUIT_LETTERS:
            return SUIT_LETTERS.index(trump.upper())
    elif isinstance(trump, (int, np.integer)) and 0 <= trump <= NO_TRUMP_C:
        return int(trump)
    raise ValueError(f"trump must be a suit 0..3 / 'S','H','C','D', or None for no trump; got {trump!r}")


cdef list _bits_to_list(uint64_t bits):
    cdef list out = []
    while bits:
        out.append(ctz64(bits))
        bits &= bits - 1
    return out


# ---------------------------------------------------------------------------
# nogil core
# ---------------------------------------------------------------------------

cdef void rs_init(RoundState* s, int n_players, int cards, int dealer, int trump,
                  const uint64_t* hands) noexcept nogil:
    cdef int i
    memset(s, 0, sizeof(RoundState))
    s.n_players = n_players
    s.cards = cards
    s.dealer = dealer
    s.trump = trump
    s.phase = PHASE_BID_C
    s.current = (dealer + 1) % n_players
    s.leader = s.current
    s.led_suit = -1
    for i in range(MAX_PLAYERS_C):
        s.bids[i] = -1
        s.trick_card[i] = -1
        if i < n_players:
            s.dealt[i] = hands[i]
            s.hands[i] = hands[i]
    for i in range(MAX_CARDS_C):
        s.trick_winner[i] = -1


cdef void rs_deal_random(RoundState* s, int n_players, int cards, int dealer, int trump,
                         RngState* rng) noexcept nogil:
    """Deal uniformly; a negative ``dealer``/``trump`` is drawn at random too (trump 0..4)."""
    cdef int deck[52]
    cdef uint64_t hands[8]
    cdef int i, j, tmp, n = n_players * cards
    for i in range(DECK_C):
        deck[i] = i
    for i in range(n):  # partial Fisher-Yates: the first n slots are a uniform sample
        j = i + rng_below(rng, DECK_C - i)
        tmp = deck[i]; deck[i] = deck[j]; deck[j] = tmp
    memset(hands, 0, sizeof(hands))
    for i in range(n):
        hands[i // cards] |= (<uint64_t>1) << deck[i]
    if dealer < 0:
        dealer = rng_below(rng, n_players)
    if trump < 0:
        trump = rng_below(rng, 5)
    rs_init(s, n_players, cards, dealer, trump, hands)


cdef int rs_forbidden_bid(const RoundState* s) noexcept nogil:
    """The bid the dealer may not make now (hook rule), or -1 when nothing is forbidden."""
    cdef int i, total = 0, f
    if s.phase != PHASE_BID_C or s.current != s.dealer:
        return -1
    for i in range(s.n_players):
        if s.bids[i] > 0:
            total += s.bids[i]
    f = s.cards - total
    return f if 0 <= f <= s.cards else -1


cdef uint64_t rs_legal(const RoundState* s) noexcept nogil:
    """Legal actions as a 52-bit mask (bit a = action a legal)."""
    cdef uint64_t hand, follow, bids
    cdef int f
    if s.phase == PHASE_PLAY_C:
        hand = s.hands[s.current]
        if s.n_in_trick > 0:
            follow = hand & suit_mask(s.led_suit)
            if follow:
                return follow
        return hand
    if s.phase == PHASE_BID_C:
        bids = ((<uint64_t>1) << (s.cards + 1)) - 1
        f = rs_forbidden_bid(s)
        if f >= 0:
            bids &= ~((<uint64_t>1) << f)
        return bids
    return 0


cdef int rs_check(const RoundState* s, int action) noexcept nogil:
    """OK if ``action`` is legal for the player to move, else an ERR_* code."""
    cdef uint64_t bit
    if s.phase == PHASE_DONE_C:
        return ERR_DONE
    if action < 0 or action >= DECK_C:
        return ERR_RANGE
    if s.phase == PHASE_BID_C:
        if action > s.cards:
            return ERR_BID_RANGE
        if action == rs_forbidden_bid(s):
            return ERR_HOOK
        return OK
    bit = (<uint64_t>1) << action
    if not (s.hands[s.current] & bit):
        return ERR_NOT_IN_HAND
    if (s.n_in_trick > 0 and card_suit(action) != s.led_suit
            and (s.hands[s.current] & suit_mask(s.led_suit))):
        return ERR_MUST_FOLLOW
    return OK


cdef int rs_trick_winner(const RoundState* s) noexcept nogil:
    """Seat currently winning the trick in progress (-1 if it is empty).

    Highest trump wins; without trumps, the highest card of the led suit."""
    cdef int k, seat, card, suit, key, best_key = -1000, best = -1
    for k in range(s.n_in_trick):
        seat = (s.leader + k) % s.n_players
        card = s.trick_card[seat]
        suit = card_suit(card)
        if suit == s.trump:
            key = 100 + card_rank(card)
        elif suit == s.led_suit:
            key = card_rank(card)
        else:
            key = -1
        if key > best_key:
            best_key = key
            best = seat
    return best


cdef void rs_apply(RoundState* s, int action) noexcept nogil:
    """Apply a legal action (call rs_check first when the action is untrusted)."""
    cdef int seat = s.current, n = s.n_players, suit, w, i
    s.actions[s.n_actions] = action
    s.action_seat[s.n_actions] = seat
    s.n_actions += 1
    if s.phase == PHASE_BID_C:
        s.bids[seat] = action
        s.n_bids += 1
        if s.n_bids == n:
            s.phase = PHASE_PLAY_C
            s.current = (s.dealer + 1) % n   # left of the dealer leads the first trick
            s.leader = s.current
        else:
            s.current = (seat + 1) % n
        return
    suit = card_suit(action)
    s.hands[seat] &= ~((<uint64_t>1) << action)
    s.played |= (<uint64_t>1) << action
    s.trick_card[seat] = action
    if s.n_in_trick == 0:
        s.led_suit = suit
        s.leader = seat
    elif suit != s.led_suit:
        s.void_suits[seat] |= 1 << s.led_suit
    s.n_in_trick += 1
    if s.n_in_trick < n:
        s.current = (seat + 1) % n
        return
    w = rs_trick_winner(s)
    s.tricks_won[w] += 1
    s.trick_winner[s.tricks_done] = w
    s.tricks_done += 1
    for i in range(MAX_PLAYERS_C):
        s.trick_card[i] = -1
    s.n_in_trick = 0
    s.led_suit = -1
    s.leader = w
    if s.tricks_done == s.cards:
        s.phase = PHASE_DONE_C
        s.current = -1
    else:
        s.current = w


cdef int rs_score(const RoundState* s, int seat) noexcept nogil:
    """Round score of ``seat``: 10 + bid when the bid was made exactly, else 0."""
    if s.bids[seat] >= 0 and s.tricks_won[seat] == s.bids[seat]:
        return 10 + s.bids[seat]
    return 0


cdef uint64_t rs_played_by(const RoundState* s, int seat) noexcept nogil:
    return s.dealt[seat] & ~s.hands[seat]


cdef int rs_random_playout(RoundState* s, RngState* rng) noexcept nogil:
    """Play uniformly random legal actions to the end; returns the number of actions taken."""
    cdef uint64_t legal
    cdef int steps = 0
    while s.phase != PHASE_DONE_C:
        legal = rs_legal(s)
        rs_apply(s, nth_set_bit(legal, rng_below(rng, popcount64(legal))))
        steps += 1
    return steps


# ---------------------------------------------------------------------------
# Python face
# ---------------------------------------------------------------------------

cdef class Rng:
    """Seeded SplitMix64 source; pass one to ``Round.from_seed``/``determinize`` for reproducibility."""

    def __init__(self, seed=0):
        rng_seed(&self.s, <uint64_t>(int(seed) & 0xFFFFFFFFFFFFFFFF))

    def next_u64(self):
        return rng_next(&self.s)

    def below(self, int n):
        if n <= 0:
            raise ValueError("n must be positive")
        return rng_below(&self.s, n)


cdef class Round:
    """A Blob round. Build one with ``Round.from_deal`` or ``Round.from_seed``.

    The player to move is ``current_player``; ``legal_actions()`` / ``legal_mask()`` list
    what they may do; ``apply(action)`` advances, raising ValueError (state unchanged)
    on an illegal action.
    """

    def __init__(self):
        raise TypeError("use Round.from_deal(...) or Round.from_seed(...)")

    @staticmethod
    def from_deal(hands, trump, int dealer):
        """A round from an explicit deal.

        hands: one sequence of cards per seat (indices 0..51 or names like 'AS'); every
            seat gets the same number of cards C, 1 <= C <= 52 // N.
        trump: 0..3 or 'S','H','C','D'; None for no trump.
        dealer: seat 0..N-1 of the dealer (bids last; the seat to its left leads).
        """
        cdef uint64_t masks[8]
        cdef Round r
        n = len(hands)
        _check_players(n)
        sizes = {len(h) for h in hands}
        if len(sizes) != 1:
            raise ValueError(f"every seat must be dealt the same number of cards, got sizes "
                             f"{[len(h) for h in hands]}")
        cards = sizes.pop()
        if not 1 <= cards <= DECK_C // n:
            raise ValueError(f"cards per seat must be 1..{DECK_C // n} for {n} players, got {cards}")
        if not 0 <= dealer < n:
            raise ValueError(f"dealer must be a seat 0..{n - 1}, got {dealer}")
        t = _parse_trump(trump)
        seen = {}
        memset(masks, 0, sizeof(masks))
        for seat, hand in enumerate(hands):
            for c in hand:
                idx = card_index(c)
                if idx in seen:
                    raise ValueError(f"card {card_name(idx)} dealt twice (seats {seen[idx]} and {seat})")
                seen[idx] = seat
                masks[seat] |= (<uint64_t>1) << idx
        r = Round.__new__(Round)
        rs_init(&r.st, n, cards, dealer, t, masks)
        return r

    @staticmethod
    def from_seed(seed, int n_players=4, int cards=5, dealer=None, trump="random"):
        """A uniformly random deal from ``seed`` (an int or an ``Rng``).

        dealer: seat, or None for a random seat. trump: a suit, None for no trump, or
        "random" for a uniform choice among the four suits and no trump."""
        cdef Round r
        cdef Rng rng
        _check_players(n_players)
        if not 1 <= cards <= DECK_C // n_players:
            raise ValueError(f"cards per seat must be 1..{DECK_C // n_players} for {n_players} "
                             f"players, got {cards}")
        if dealer is not None and not 0 <= dealer < n_players:
            raise ValueError(f"dealer must be a seat 0..{n_players - 1}, got {dealer}")
        t = -1 if (isinstance(trump, str) and trump == "random") else _parse_trump(trump)
        rng = seed if isinstance(seed, Rng) else Rng(seed)
        r = Round.__new__(Round)
        rs_deal_random(&r.st, n_players, cards, -1 if dealer is None else dealer, t, &rng.s)
        return r

    # -- copying -------------------------------------------------------------
    def copy(self):
        """An independent copy (a plain struct copy)."""
        cdef Round r = Round.__new__(Round)
        r.st = self.st
        return r

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_round_from_bytes, (self.to_bytes(),))

    def to_bytes(self):
        """The raw RoundState bytes (same machine/layout only; records use the proto format)."""
        return (<char*>&self.st)[:sizeof(RoundState)]

    def __eq__(self, other):
        if not isinstance(other, Round):
            return NotImplemented
        return self.to_bytes() == (<Round>other).to_bytes()

    def __hash__(self):
        return hash(self.to_bytes())

    # -- table ---------------------------------------------------------------
    @property
    def n_players(self):
        return self.st.n_players

    @property
    def cards(self):
        """Cards dealt to each seat (C)."""
        return self.st.cards

    @property
    def dealer(self):
        return self.st.dealer

    @property
    def trump(self):
        """0..3 for S, H, C, D; None for no trump."""
        return None if self.st.trump == NO_TRUMP_C else self.st.trump

    @property
    def phase(self):
        """PHASE_BID (0), PHASE_PLAY (1) or PHASE_DONE (2)."""
        return self.st.phase

    @property
    def phase_name(self):
        return PHASE_NAMES[self.st.phase]

    @property
    def current_player(self):
        """Seat to act, or -1 when the round is over."""
        return self.st.current

    @property
    def is_terminal(self):
        return self.st.phase == PHASE_DONE_C

    # -- public history ------------------------------------------------------
    @property
    def bids(self):
        """Bid of every seat; None where the seat has not bid yet."""
        return [None if self.st.bids[i] < 0 else self.st.bids[i] for i in range(self.st.n_players)]

    @property
    def tricks_won(self):
        return [self.st.tricks_won[i] for i in range(self.st.n_players)]

    @property
    def trick_winners(self):
        """Winner of every completed trick, in order."""
        return [self.st.trick_winner[i] for i in range(self.st.tricks_done)]

    @property
    def tricks_done(self):
        return self.st.tricks_done

    @property
    def leader(self):
        """Seat that led (or will lead) the current trick."""
        return self.st.leader

    @property
    def led_suit(self):
        return None if self.st.led_suit < 0 else self.st.led_suit

    @property
    def current_trick(self):
        """(seat, card) pairs of the trick in progress, in play order."""
        cdef int k, seat
        out = []
        for k in range(self.st.n_in_trick):
            seat = (self.st.leader + k) % self.st.n_players
            out.append((seat, self.st.trick_card[seat]))
        return out

    @property
    def current_trick_winner(self):
        """Seat winning the trick in progress so far (None if empty)."""
        w = rs_trick_winner(&self.st)
        return None if w < 0 else w

    @property
    def played_cards(self):
        return _bits_to_list(self.st.played)

    @property
    def void_suits(self):
        """For every seat, the set of suits it has shown out of (public knowledge)."""
        return [{s for s in range(SUITS_C) if self.st.void_suits[i] >> s & 1}
                for i in range(self.st.n_players)]

    @property
    def history(self):
        """Every action so far as (seat, action) pairs."""
        return [(self.st.action_seat[i], self.st.actions[i]) for i in range(self.st.n_actions)]

    @property
    def forbidden_bid(self):
        """The dealer's forbidden bid while the dealer is to bid (hook rule), else None."""
        f = rs_forbidden_bid(&self.st)
        return None if f < 0 else f

    # -- hidden information (the full state) ---------------------------------
    @property
    def hands(self):
        """Cards each seat still holds (full information: not for a player's view)."""
        return [_bits_to_list(self.st.hands[i]) for i in range(self.st.n_players)]

    @property
    def dealt_hands(self):
        return [_bits_to_list(self.st.dealt[i]) for i in range(self.st.n_players)]

    def hand(self, int seat):
        self._check_seat(seat)
        return _bits_to_list(self.st.hands[seat])

    def played_by(self, int seat):
        """Cards ``seat`` has played this round."""
        self._check_seat(seat)
        return _bits_to_list(rs_played_by(&self.st, seat))

    # -- actions -------------------------------------------------------------
    def legal_mask(self, out=None):
        """52-wide mask of legal actions (uint8 unless ``out`` is given)."""
        cdef uint64_t legal = rs_legal(&self.st)
        if out is None:
            out = np.zeros(DECK_C, dtype=np.uint8)
        else:
            out[:] = 0
        while legal:
            out[ctz64(legal)] = 1
            legal &= legal - 1
        return out

    def legal_actions(self):
        """Legal action indices in increasing order."""
        return _bits_to_list(rs_legal(&self.st))

    def is_legal(self, int action):
        return rs_check(&self.st, action) == OK

    cdef int _raise_if_illegal(self, int action) except -1:
        cdef int code = rs_check(&self.st, action)
        if code == OK:
            return 0
        seat = self.st.current
        if self.st.phase == PHASE_BID_C or code == ERR_RANGE:
            label = f"{action} (bid {action})" if self.st.phase == PHASE_BID_C else f"{action}"
        else:
            label = f"{action} ({card_name(action)})"
        if code == ERR_DONE:
            why = "the round is over"
        elif code == ERR_RANGE:
            why = "actions are indices 0..51"
        elif code == ERR_BID_RANGE:
            why = f"bids are 0..{self.st.cards} with {self.st.cards} cards dealt"
        elif code == ERR_HOOK:
            why = (f"the dealer may not bid {action}: the total of bids would equal the "
                   f"{self.st.cards} tricks (hook rule)")
        elif code == ERR_NOT_IN_HAND:
            why = f"{card_name(action)} is not in player {seat}'s hand"
        else:
            why = (f"must follow {SUIT_NAMES[self.st.led_suit]} while holding "
                   + " ".join(card_name(c) for c in _bits_to_list(
                       self.st.hands[seat] & suit_mask(self.st.led_suit))))
        who = "nobody is to act" if seat < 0 else f"player {seat}"
        raise ValueError(f"illegal action {label} for {who} in the {PHASE_NAMES[self.st.phase]} "
                         f"phase: {why}")

    def apply(self, action):
        """Take ``action`` (an index, or a card name while playing) for the player to move.

        Raises ValueError naming the action, the player and the reason when it is
        illegal; the state is then unchanged."""
        if isinstance(action, str):
            action = card_index(action)
        cdef int a = action
        self._raise_if_illegal(a)
        rs_apply(&self.st, a)
        return self

    def play_random(self, rng):
        """Finish the round with uniformly random legal actions; returns actions taken."""
        cdef Rng r = rng if isinstance(rng, Rng) else Rng(rng)
        return rs_random_playout(&self.st, &r.s)

    # -- results -------------------------------------------------------------
    def scores(self):
        """Round score of every seat (10 + bid when made exactly, else 0)."""
        if self.st.phase != PHASE_DONE_C:
            raise ValueError(f"the round is not over yet ({PHASE_NAMES[self.st.phase]} phase)")
        return [rs_score(&self.st, i) for i in range(self.st.n_players)]

    def normalised_scores(self):
        """Scores divided by (10 + cards dealt): in [0, 1]; the network's value scale."""
        return [s / (10.0 + self.st.cards) for s in self.scores()]

    # -- full-game context ---------------------------------------------------
    def set_game_context(self, int round_index, int n_rounds, int next_cards, game_scores):
        """Attach the game this round belongs to (encoded for the network).

        round_index: 0-based; n_rounds: rounds in the game; next_cards: cards per seat in
        the next round (0 if this is the last); game_scores: cumulative scores before it."""
        if not (0 <= round_index < n_rounds):
            raise ValueError(f"round_index {round_index} outside 0..{n_rounds - 1}")
        if len(game_scores) != self.st.n_players:
            raise ValueError(f"need {self.st.n_players} game scores, got {len(game_scores)}")
        if n_rounds > 64 or not 0 <= next_cards <= MAX_CARDS_C:
            raise ValueError(f"a game has at most 64 rounds and 0..{MAX_CARDS_C} cards next round, "
                             f"got {n_rounds} rounds, next {next_cards}")
        self.st.round_index = round_index
        self.st.n_rounds = n_rounds
        self.st.next_cards = next_cards
        for i, v in enumerate(game_scores):
            self.st.game_scores[i] = v

    @property
    def game_context(self):
        if self.st.n_rounds == 0:
            return None
        return {"round_index": self.st.round_index, "n_rounds": self.st.n_rounds,
                "next_cards": self.st.next_cards,
                "game_scores": [self.st.game_scores[i] for i in range(self.st.n_players)]}

    def _check_seat(self, int seat):
        if not 0 <= seat < self.st.n_players:
            raise ValueError(f"seat must be 0..{self.st.n_players - 1}, got {seat}")

    def __repr__(self):
        return (f"Round(players={self.st.n_players}, cards={self.st.cards}, dealer={self.st.dealer}, "
                f"trump={'none' if self.st.trump == NO_TRUMP_C else SUIT_LETTERS[self.st.trump]}, "
                f"phase={PHASE_NAMES[self.st.phase]}, to_move={self.st.current})")


def _round_from_bytes(bytes data):
    cdef Round r = Round.__new__(Round)
    if len(data) != sizeof(RoundState):
        raise ValueError(f"RoundState must be {sizeof(RoundState)} bytes, got {len(data)}")
    memcpy(&r.st, <const char*>data, sizeof(RoundState))
    return r
