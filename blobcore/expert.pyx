# cython: language_level=3
"""The built-in expert baseline: a card-counting, rule-based player, in C so the arena (and
the search pool) can seat it like the greedy player. docs/players.md describes it.

It reads only public information plus its own hand: the cards played so far
(``RoundState.played``), the trick in progress, bids, tricks won, trump, the dealer and the
suits each seat has shown out of (``void_suits``). Everything else is estimated:

* **Unseen cards** are the 52 less its hand less the played cards. Only N*C cards were dealt,
  so an unseen card of suit s lies in opponent j's hand with chance
  ``held_j / (unseen - cards held by opponents void in s)`` (0 when j is void in s); the
  rest of the unseen cards are in the undealt part of the deck.
* **Holding up**: a card winning a trick keeps it unless a seat still to play beats it,
  with a higher card of the suit or, void in the suit, with a trump. Each seat's chance is
  weighted by how keen it is to win tricks (it still needs some, has made its bid, or can no
  longer make it) and, for the high cards, by its bid (a high bid suggests high cards).
* **Bidding**: every card gets a chance of taking a trick: as if led against everybody in
  the round of its suit given by the higher cards it holds (opponents' higher cards count
  only as far as its own top cards do not draw them first), side cards discounted in short
  rounds unless it leads first (their suit must be led), spare trumps raised to their
  ruffing chances from short side suits. The chance of making bid b plays the b likeliest
  cards to win and the others to lose (they still win with chance p ** 2 for a zero bid:
  ducking works); the legal bid with the largest ``P(make b) * (10 + b)`` is chosen.
* **Playing** to make the bid exactly: the rules below give a choice, and a one-step
  look-ahead overrides it when another card makes the bid more likely: P(this trick) times
  P(the rest of the hand takes exactly what is still needed, played to do so). Rules: while
  it needs tricks, take with the cheapest card likely to hold (when last, the cheapest card
  that wins; void, the lowest winning trump), else throw its least useful card (never a
  trump first); once the bid is made, play the highest card that cannot win, discard the
  most dangerous card when void (never trumping), lead the card least likely to win. When
  the bid can no longer be made, it spoils: lets a seat that has made its bid win the trick
  and takes the trick from a seat that still needs it.

Deterministic, allocation-free, nogil: ``expert_action`` is called inside the search pool.
"""
from libc.math cimport pow, exp
from libc.stdint cimport uint64_t

from blobcore.rules cimport (RoundState, Round, rs_init, rs_apply, rs_legal, rs_trick_winner,
                             popcount64, ctz64, card_suit, card_rank, suit_mask, PHASE_BID_C,
                             PHASE_PLAY_C, NO_TRUMP_C, MAX_CARDS_C)

# --- tunables, set by arena matches against greedy over 3..8 players (docs/players.md) ------
cdef double W_MADE = 0.3        # keenness to win a trick of a seat that has made its bid
cdef double W_BUST = 0.6        # ... of a seat that can no longer make its bid
cdef double W_BID = 0.85        # ... of a seat yet to bid (bid time)
cdef double W_BID0 = 0.85       # ... of a seat that bid zero (bid time)
cdef double W_BIDX = 1.0        # ... of a seat that bid for tricks (bid time)
cdef double LONG_W = 0.15       # keenness falls by this share in the longest hands (bid time)
cdef double HIGH_BID = 1.0      # how much a seat's bid shifts its chance of holding high cards
cdef double RUFF_WILL = 1.0     # chance that a void opponent holding trumps ruffs
cdef double RUFF_VOID = 0.8     # ruffing chances of a spare trump: void side suit (bid time)
cdef double RUFF_SINGLE = 0.65  # ... singleton side suit
cdef double RUFF_DOUBLE = 0.3   # ... doubleton side suit
cdef double FORCE_SCALE = 0.25  # a top card has at most C * this unseen cards above it
cdef double LEAD0 = 0.3         # side cards of a seat that does not lead first: C = 1 factor
cdef double LEAD1 = 0.05        # ... growing by this times (C - 1)^2, up to 1
cdef double DUCK_POW = 2.0      # a card playing to lose still wins with chance p ** this
cdef double DUCK_C = 6          # ... the exponent fading towards 1 beyond this many cards
cdef double DUCK_POW1 = 1.0     # ... for the spare cards of a bid above zero
cdef double LONG_D = 0.2        # ... less this in the longest hands
cdef double DUCK_PLAY = 2.0     # ... for the rest of the hand in the play look-ahead
cdef double TAKE_MIN = 0.35     # rules: with tricks to spare, play for one this likely to hold
cdef double TAKE_TOL = 0.08     # rules: near-best holding chances count as equal (then cheapest)


cdef struct View:
    int me
    int n
    int trump
    uint64_t hand
    uint64_t unseen           # neither in this hand nor played
    int held[8]               # cards each seat still holds (a public count)
    int voids[8]              # suits each seat has shown out of
    double pc[8][4]           # P(seat j holds one given unseen card of suit t)
    double will[8]            # how keen seat j is to win a trick
    int force_h               # see _forcing
    double hi[8]              # weight on seat j holding the high cards, from its bid


cdef inline uint64_t _above(int card) noexcept nogil:
    """Cards of ``card``'s suit ranked above it."""
    return suit_mask(card_suit(card)) & ~(((<uint64_t>2) << card) - 1)


cdef inline int _power(int card, int trump) noexcept nogil:
    return card_rank(card) + (13 if card_suit(card) == trump else 0)


cdef inline double _none_of(double p, int k) noexcept nogil:
    """(1 - p) ** k: the chance that none of k cards, each held with chance p, is held."""
    if k <= 0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return pow(1.0 - p, k)


cdef double _at_most(int n, double p, int k) noexcept nogil:
    """P(Binomial(n, p) <= k)."""
    cdef double term, total
    cdef int i
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p >= 1.0:
        return 0.0
    term = pow(1.0 - p, n)
    total = term
    for i in range(1, k + 1):
        term *= (n - i + 1) / <double>i * p / (1.0 - p)
        total += term
    return total if total < 1.0 else 1.0


cdef void _view(const RoundState* s, View* v) noexcept nogil:
    cdef int j, t, need, left, denom
    cdef double fair
    cdef uint64_t full = ((<uint64_t>1) << 52) - 1
    v.me = s.current
    v.n = s.n_players
    v.trump = s.trump
    v.hand = s.hands[v.me]
    v.force_h = <int>(s.cards * FORCE_SCALE)
    v.unseen = full & ~v.hand & ~s.played
    left = s.cards - s.tricks_done
    for j in range(v.n):
        v.held[j] = left - (1 if s.trick_card[j] >= 0 else 0)
        v.voids[j] = s.void_suits[j]
        if s.bids[j] < 0:
            v.will[j] = W_BID * (1.0 - LONG_W * _long(s.cards))
        elif s.phase != PHASE_PLAY_C:                # bid, not yet playing
            v.will[j] = (W_BID0 if s.bids[j] == 0 else W_BIDX) * (1.0 - LONG_W * _long(s.cards))
        else:
            need = s.bids[j] - s.tricks_won[j]
            if need == 0:
                v.will[j] = W_MADE
            elif need < 0 or need > left:
                v.will[j] = W_BUST
            else:
                v.will[j] = 1.0
    for j in range(v.n):
        v.hi[j] = 1.0
        if s.bids[j] >= 0:
            fair = s.cards / <double>v.n
            v.hi[j] = 1.0 + HIGH_BID * (s.bids[j] - fair) / (fair + 1.0)
            if v.hi[j] < 0.25:
                v.hi[j] = 0.25
            elif v.hi[j] > 3.0:
                v.hi[j] = 3.0
    for t in range(4):
        denom = popcount64(v.unseen)
        for j in range(v.n):
            if j != v.me and (v.voids[j] >> t) & 1:
                denom -= v.held[j]
        for j in range(v.n):
            if j == v.me or (v.voids[j] >> t) & 1 or denom <= 0 or v.held[j] <= 0:
                v.pc[j][t] = 0.0
            else:
                v.pc[j][t] = v.held[j] / <double>denom if v.held[j] < denom else 1.0


cdef double _p_void(const View* v, int j, int suit, int n_cards, int k) noexcept nogil:
    """Chance that seat j has no card of ``suit`` left after k rounds of it (n_cards unseen)."""
    if (v.voids[j] >> suit) & 1:
        return 1.0
    return _at_most(n_cards, v.pc[j][suit], k)


cdef int _forcing(const View* v, int card) noexcept nogil:
    """How many of this hand's higher cards of ``card``'s suit are near the top (at most
    C * FORCE_SCALE unseen cards above them): played first, they draw out opponents' higher
    cards."""
    cdef uint64_t bits = v.hand & _above(card)
    cdef int n = 0, c
    while bits:
        c = ctz64(bits)
        bits &= bits - 1
        if popcount64(v.unseen & _above(c)) <= v.force_h:
            n += 1
    return n


cdef double _p_beats(const View* v, int j, int card, int led, int k) noexcept nogil:
    """Chance that seat j, to play after ``card`` (winning a trick led in ``led``), can beat
    it; k = rounds of the card's suit assumed already played (0 during play)."""
    cdef int t = card_suit(card), T = v.trump, h, n_low, n_led
    cdef double a, vd, tr
    cdef double p_hi = v.pc[j][t] * v.hi[j]
    if p_hi > 1.0:
        p_hi = 1.0
    h = popcount64(v.unseen & _above(card))
    if t == T and led != T:                           # a ruff: overruffed only when void in led
        n_led = popcount64(v.unseen & suit_mask(led))
        return (1.0 - _none_of(p_hi, h)) * _p_void(v, j, led, n_led, k)
    # j still holds a higher card in round k + 1 when it held more than k of them (it sheds
    # one card of the suit per round, the higher ones first)
    a = 1.0 - _at_most(h, p_hi, _forcing(v, card) if k > 0 else 0)
    if t == T:
        return a
    if T == NO_TRUMP_C:
        return a
    n_low = popcount64(v.unseen & suit_mask(t)) - h
    vd = _p_void(v, j, t, n_low, k)
    tr = 1.0 - _none_of(v.pc[j][T], popcount64(v.unseen & suit_mask(T)))
    return a + (1.0 - a) * vd * tr * RUFF_WILL


cdef double _p_hold(const View* v, int card, int led, int k, int first, int n_after) noexcept nogil:
    """Chance that ``card``, winning now, still wins after the n_after seats from ``first``."""
    cdef double prod = 1.0, b
    cdef int i, j
    for i in range(n_after):
        j = (first + i) % v.n
        b = v.will[j] * _p_beats(v, j, card, led, k)
        prod *= 1.0 - (b if b < 1.0 else 1.0)
    return prod


cdef double _danger(const View* v, int card) noexcept nogil:
    """Chance that ``card`` takes a trick later: led against everybody, after the higher
    cards of its suit in this hand."""
    return _p_hold(v, card, card_suit(card), popcount64(v.hand & _above(card)), v.me + 1, v.n - 1)


# --- bidding ------------------------------------------------------------------------------

cdef int _card_chances(const RoundState* s, const View* v, double* p) noexcept nogil:
    """Chance that each card of the hand (ascending order) takes a trick; returns the count."""
    cdef int cards_[MAX_CARDS_C]
    cdef int n_cards = 0, i, k, t, card, short_len, T = v.trump
    cdef double chances = 0.0, f_c, tmp
    cdef uint64_t bits = v.hand
    cdef double lead_f = 1.0
    if s.phase == PHASE_BID_C and (s.dealer + 1) % v.n != v.me:
        lead_f = LEAD0 + LEAD1 * (s.cards - 1) * (s.cards - 1)
        if lead_f > 1.0:
            lead_f = 1.0
    while bits:
        card = ctz64(bits)
        bits &= bits - 1
        k = popcount64(v.hand & _above(card))        # played in the (k+1)-th round of its suit
        cards_[n_cards] = card
        p[n_cards] = _p_hold(v, card, card_suit(card), k, v.me + 1, v.n - 1)
        if card_suit(card) != T:                     # its suit must be led while it is held
            p[n_cards] *= lead_f
        n_cards += 1
    # spare trumps: ruffing chances from short side suits (none with one card each)
    if T != NO_TRUMP_C and s.cards > 1:
        f_c = (s.cards - 1) / 3.0
        if f_c > 1.0:
            f_c = 1.0
        for t in range(4):
            if t == T:
                continue
            short_len = popcount64(v.hand & suit_mask(t))
            if short_len == 0:
                chances += RUFF_VOID
            elif short_len == 1:
                chances += RUFF_SINGLE
            elif short_len == 2:
                chances += RUFF_DOUBLE
        chances *= f_c
        for i in range(n_cards):                     # ascending: lowest trumps ruff first
            if card_suit(cards_[i]) != T or chances <= 0.0:
                continue
            tmp = (chances if chances < 1.0 else 1.0) * _ruff_hold(v, cards_[i])
            if tmp > p[i]:
                p[i] = tmp
            chances -= 1.0
    return n_cards


cdef void _poisson_binomial(const double* p, int n, double* dist) noexcept nogil:
    """dist[0..n]: distribution of the number of successes of independent events p[0..n-1]."""
    cdef int i, b
    for b in range(n + 1):
        dist[b] = 0.0
    dist[0] = 1.0
    for i in range(n):
        for b in range(i + 1, 0, -1):
            dist[b] = dist[b] * (1.0 - p[i]) + dist[b - 1] * p[i]
        dist[0] *= 1.0 - p[i]


cdef double _p_exact(const double* p, int n, int b, int skip, double gamma) noexcept nogil:
    """Chance that the cards p[0..n-1] (less index ``skip``) take exactly b tricks when played
    to do so: the b likeliest cards try to win (chance p), the others try to lose and still
    win with chance p ** gamma."""
    cdef double q[MAX_CARDS_C]
    cdef double dist[MAX_CARDS_C + 1]
    cdef int chosen[MAX_CARDS_C]
    cdef int i, r, m = 0, top
    if b < 0:
        return 0.0
    for i in range(n):
        if i != skip:
            q[m] = p[i]
            chosen[m] = 0
            m += 1
    if b > m:
        return 0.0
    for r in range(b):
        top = -1
        for i in range(m):
            if not chosen[i] and (top < 0 or q[i] > q[top]):
                top = i
        chosen[top] = 1
    for i in range(m):
        if not chosen[i]:
            q[i] = pow(q[i], gamma)
    _poisson_binomial(q, m, dist)
    return dist[b]


cdef inline double _long(int cards) noexcept nogil:
    """0 up to 5 cards a seat, rising to 1 at 17."""
    if cards <= 5:
        return 0.0
    return (cards - 5) / 12.0


cdef inline double _duck_pow(double g, int cards) noexcept nogil:
    """Long hands duck less well: the exponent fades towards 1 beyond DUCK_C cards."""
    if cards <= DUCK_C:
        return g
    return 1.0 + (g - 1.0) * DUCK_C / cards


cdef inline double _dist(int b, double x) noexcept nogil:
    return b - x if b > x else x - b


cdef inline double _p_make_bid(const double* p, int n, int b, int cards) noexcept nogil:
    """Chance of taking exactly ``b`` of the tricks when bidding ``b``: the b likeliest cards
    play to win, the rest duck (a zero bid ducks everything, with its own duck exponent)."""
    return _p_exact(p, n, b, -1, _duck_pow(DUCK_POW, cards) if b == 0
                    else DUCK_POW1 - LONG_D * _long(cards))


cdef int _bid(const RoundState* s, const View* v) noexcept nogil:
    cdef double p[MAX_CARDS_C]
    cdef double value, best_value = -1.0
    cdef int b, best = -1, n_cards = _card_chances(s, v, p)
    cdef uint64_t legal = rs_legal(s)
    cdef double expect = 0.0
    for b in range(n_cards):
        expect += p[b]
    for b in range(n_cards + 1):
        if not (legal >> b) & 1:
            continue
        value = _p_make_bid(p, n_cards, b, s.cards) * (10 + b)
        if value > best_value + 1e-12 or (value > best_value - 1e-12 and
                                          _dist(b, expect) < _dist(best, expect)):
            best_value = value       # ties (all hopeless, say): the bid nearest the expectation
            best = b
    if best < 0:
        best = ctz64(legal)
    return best


cdef double _ruff_hold(const View* v, int trump_card) noexcept nogil:
    """Chance that ``trump_card``, ruffing a side suit, is not overruffed (averaged over the
    side suits)."""
    cdef int t, m = 0
    cdef double total = 0.0
    for t in range(4):
        if t == v.trump:
            continue
        total += _p_hold(v, trump_card, t, 0, v.me + 1, v.n - 1)
        m += 1
    return total / m if m else 0.0


# --- playing ------------------------------------------------------------------------------

cdef inline int _key(int card, int led, int trump) noexcept nogil:
    cdef int suit = card_suit(card)
    if suit == trump:
        return 100 + card_rank(card)
    if suit == led:
        return card_rank(card)
    return -1


cdef int _play(const RoundState* s, View* v) noexcept nogil:
    cdef uint64_t legal = rs_legal(s), bits
    cdef int me = v.me, T = v.trump
    cdef int need = s.bids[me] - s.tricks_won[me], left = s.cards - s.tricks_done
    cdef int leading = s.n_in_trick == 0
    cdef int n_after = v.n - s.n_in_trick - 1
    cdef int led, win_key = -1, card, i, m, n_legal = 0, pick, best
    cdef int cards_[MAX_CARDS_C]
    cdef double hold[MAX_CARDS_C]
    cdef double danger[MAX_CARDS_C]
    cdef int beats[MAX_CARDS_C]
    cdef double make[MAX_CARDS_C]
    cdef double rest[MAX_CARDS_C]
    cdef int where[MAX_CARDS_C]
    cdef double best_hold = 0.0
    if leading:
        led = -1
    else:
        led = s.led_suit
        win_key = _key(s.trick_card[rs_trick_winner(s)], led, T)
    bits = legal
    while bits:
        card = ctz64(bits)
        bits &= bits - 1
        cards_[n_legal] = card
        if leading:
            beats[n_legal] = 1
            hold[n_legal] = _p_hold(v, card, card_suit(card), 0, me + 1, n_after)
        else:
            beats[n_legal] = _key(card, led, T) > win_key
            hold[n_legal] = _p_hold(v, card, led, 0, me + 1, n_after) if beats[n_legal] else 0.0
        danger[n_legal] = _danger(v, card)
        if hold[n_legal] > best_hold:
            best_hold = hold[n_legal]
        n_legal += 1
    pick = _heuristic(cards_, hold, danger, beats, n_legal, need, left, leading, n_after,
                      best_hold, T)
    if need < 0 or need > left:                      # the bid is lost
        if leading:
            return cards_[pick]
        return cards_[_spoil(s, hold, danger, beats, n_legal, pick)]
    # one step of look-ahead: P(bid made) = P(this trick) x P(the rest of the hand takes exactly
    # what is left to take), the rest played to do so (see _p_exact)
    best = pick
    m = 0
    bits = v.hand
    while bits:
        card = ctz64(bits)
        bits &= bits - 1
        rest[m] = _danger(v, card)
        for i in range(n_legal):
            if cards_[i] == card:
                where[i] = m
        m += 1
    for i in range(n_legal):
        make[i] = (hold[i] * _p_exact(rest, m, need - 1, where[i], DUCK_PLAY)
                   + (1.0 - hold[i]) * _p_exact(rest, m, need, where[i], DUCK_PLAY))
    for i in range(n_legal):
        if make[i] > make[best] + 1e-12:
            best = i
    return cards_[best]


cdef int _spoil(const RoundState* s, const double* hold, const double* danger, const int* beats,
                int n_legal, int pick) noexcept nogil:
    """Its own bid is lost (following): make the others miss theirs. Let a seat that has
    made its bid win the trick; take it from a seat that still needs tricks."""
    cdef int w, need_w, i, best = -1
    w = rs_trick_winner(s)
    need_w = s.bids[w] - s.tricks_won[w]
    if need_w > 0:                                   # take it away: the likeliest to hold
        for i in range(n_legal):
            if beats[i] and (best < 0 or hold[i] > hold[best]):
                best = i
    elif need_w == 0:                                # leave it to them: a card that cannot win
        for i in range(n_legal):
            if not beats[i] and (best < 0 or danger[i] > danger[best]):
                best = i
    return best if best >= 0 else pick


cdef int _heuristic(const int* cards_, const double* hold, const double* danger, const int* beats,
                    int n_legal, int need, int left, int leading, int n_after, double best_hold,
                    int T) noexcept nogil:
    """The rule-based choice (an index into cards_)."""
    cdef int i, pick = -1
    cdef double lo, tol
    if need > 0:
        if best_hold > 0.0 and (need >= left or best_hold >= TAKE_MIN or n_after == 0):
            tol = 1e-9 if n_after == 0 else TAKE_TOL
            return _cheapest_at_least(cards_, hold, n_legal, best_hold - tol, T)
        # no good chance now: keep the strength, play the least useful card
        for i in range(n_legal):
            if pick < 0 or _less_useful(cards_[i], danger[i], cards_[pick], danger[pick], T):
                pick = i
        return pick
    # duck: the bid is made (or cannot be made any more)
    for i in range(n_legal):                         # a card that cannot win: the most dangerous
        if not leading and not beats[i]:
            if pick < 0 or danger[i] > danger[pick] or (
                    danger[i] == danger[pick] and _power(cards_[i], T) > _power(cards_[pick], T)):
                pick = i
    if pick >= 0:
        return pick
    if not leading and n_after == 0:                 # it wins whatever: shed the most dangerous
        for i in range(n_legal):
            if pick < 0 or danger[i] > danger[pick]:
                pick = i
        return pick
    lo = 2.0
    for i in range(n_legal):
        if hold[i] < lo:
            lo = hold[i]
    for i in range(n_legal):                         # least likely to win; then most dangerous
        if hold[i] <= lo + 0.02:
            if pick < 0 or danger[i] > danger[pick]:
                pick = i
    return pick


cdef int _cheapest_at_least(const int* cards_, const double* hold, int n, double floor,
                            int trump) noexcept nogil:
    cdef int i, pick = -1
    for i in range(n):
        if hold[i] > 0.0 and hold[i] >= floor:
            if pick < 0 or _power(cards_[i], trump) < _power(cards_[pick], trump):
                pick = i
    return pick


cdef inline int _less_useful(int a, double da, int b, double db, int trump) noexcept nogil:
    """Order for throwing away a card while still needing tricks: keep trumps, then strength."""
    cdef int ta = card_suit(a) == trump, tb = card_suit(b) == trump
    if ta != tb:
        return tb
    if da != db:
        return da < db
    return _power(a, trump) < _power(b, trump)


cdef int expert_action(const RoundState* s) noexcept nogil:
    cdef View v
    _view(s, &v)
    if s.phase == PHASE_BID_C:
        return _bid(s, &v)
    return _play(s, &v)


cdef double expert_bid_likelihood(const RoundState* world, int seat, double temperature) noexcept nogil:
    """How likely ``seat``, holding its hand of ``world`` (a full deal: ``dealt`` is read),
    was to bid what it bid, under a soft expert: P(bid b) is proportional to
    exp(E[score | b] / temperature) over the bids that were legal to it, E[score | b] the
    expert's ``P(make b) * (10 + b)`` (points) with the bids before it on the table. 1.0 when
    the seat has not bid. Used to weight sampled hidden hands (blobcore/inference.pyx)."""
    cdef RoundState s
    cdef View v
    cdef double p[MAX_CARDS_C]
    cdef double value[MAX_CARDS_C + 1]
    cdef double top = -1.0, total = 0.0
    cdef int i, b, n, observed = world.bids[seat]
    cdef uint64_t legal
    if observed < 0 or temperature <= 0.0:
        return 1.0
    rs_init(&s, world.n_players, world.cards, world.dealer, world.trump, world.dealt)
    i = 0
    while s.phase == PHASE_BID_C and s.current != seat and i < world.n_actions:
        rs_apply(&s, world.actions[i])
        i += 1
    if s.phase != PHASE_BID_C or s.current != seat:
        return 1.0
    _view(&s, &v)
    n = _card_chances(&s, &v, p)
    legal = rs_legal(&s)
    for b in range(n + 1):
        if (legal >> b) & 1:
            value[b] = _p_make_bid(p, n, b, s.cards) * (10 + b)
            if value[b] > top:
                top = value[b]
    if not (legal >> observed) & 1:
        return 1.0
    for b in range(n + 1):
        if (legal >> b) & 1:
            total += exp((value[b] - top) / temperature)
    return exp((value[observed] - top) / temperature) / total


def expert_bid_probability(Round deal, int seat, double temperature=2.0):
    """``expert_bid_likelihood`` for a ``Round`` whose hands are all known (a deal or a
    determinized copy): the soft expert's chance of the bid ``seat`` made."""
    if not 0 <= seat < deal.st.n_players:
        raise ValueError(f"seat must be 0..{deal.st.n_players - 1}, got {seat}")
    return expert_bid_likelihood(&deal.st, seat, temperature)


def expert(Round rnd):
    """The expert player's action for the player to move in ``rnd``."""
    if rnd.st.current < 0:
        raise ValueError("the round is over: nobody is to move")
    return expert_action(&rnd.st)


cdef int _mover_card_chances(Round rnd, double* p) except -1:
    """Fill ``p`` with the player to move's per-card chances of taking a trick (as bidding
    sees them); returns how many cards it holds. Raises when nobody is to move."""
    cdef View v
    if rnd.st.current < 0:
        raise ValueError("the round is over: nobody is to move")
    _view(&rnd.st, &v)
    return _card_chances(&rnd.st, &v, p)


def expert_trick_distribution(Round rnd):
    """The expert's estimate, for the player to move, of the distribution of the tricks its
    hand takes (list indexed by trick count), as used for bidding."""
    cdef double p[MAX_CARDS_C]
    cdef double dist[MAX_CARDS_C + 1]
    cdef int n = _mover_card_chances(rnd, p)
    _poisson_binomial(p, n, dist)
    return [dist[b] for b in range(n + 1)]


def expert_bid_chances(Round rnd):
    """The expert's estimate, for the player to move, of the chance of making each bid
    0..C when playing to it (list indexed by bid), as used for bidding."""
    cdef double p[MAX_CARDS_C]
    cdef int n = _mover_card_chances(rnd, p)
    return [_p_make_bid(p, n, b, rnd.st.cards) for b in range(n + 1)]
