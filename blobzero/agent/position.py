"""A position as one seat knows it -> a ``Round`` the search can start from.

The asking seat knows the table (players, cards dealt, dealer, trump), its own hand and the
public history; it never knows the other seats' cards. The search needs a full deal to start
from, but it resamples every hidden card per determinization from the mover's view
(``blobcore.determinize``: public record + the mover's hand), so any deal consistent with the
public history gives the same search. This module builds one:

* each other seat's dealt hand = the cards it played + unseen cards (not in the asker's hand,
  not played), assigned so that no seat holds a suit it has shown out of;
* the history is replayed through the rules engine (``Round.apply``), which rejects an illegal
  bid or play with its reason; a seat "showing out" is learnt from that same replay (a play the
  engine refuses only because the filler gave the seat a card of the led suit), so no rule is
  re-implemented here.

Every problem raises ``PositionError`` naming it (a card seen twice, a hand of the wrong size,
an illegal action at ply k, the wrong seat to act, sizes out of range).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from blobcore.rules import Round, card_index, card_name, max_cards

SUITS = "SHCD"
#: a seat showing out of suits: learnt from the replay, at most players x 4 of them
_MAX_REPAIRS = 8 * 4 + 1


class PositionError(ValueError):
    """The request does not describe a legal position; the message says why."""


@dataclass(frozen=True)
class Play:
    """One public action: ``seat`` bid ``bid`` (card None) or played ``card`` (index 0..51)."""
    seat: int
    bid: int | None = None
    card: int | None = None


@dataclass(frozen=True)
class SeatKnowledge:
    """What one seat knows. Cards are indices 0..51; trump 0..3 or None (no trump)."""
    players: int
    cards: int
    dealer: int
    trump: int | None
    seat: int
    hand: tuple[int, ...]
    history: tuple[Play, ...] = ()
    game: dict | None = None     # round_index, rounds_in_game, next_cards, scores (optional)


def parse_card(text: str, what: str) -> int:
    """A card name ('AS', 'td', '10H') or index string -> index; PositionError naming ``what``."""
    name = text.strip()
    if name[:2] == "10":
        name = "T" + name[2:]
    try:
        return card_index(int(name) if name.isdigit() else name)
    except ValueError:
        raise PositionError(f"{what}: {text!r} is not a card (use names like 'AS', 'TD', '7H')") from None


def parse_trump(text: str) -> int | None:
    t = text.strip().upper()
    if t in ("", "NONE", "NT", "NO TRUMP", "NOTRUMP"):
        return None
    if len(t) == 1 and t in SUITS:
        return SUITS.index(t)
    raise PositionError(f"trump: {text!r} is not a suit (S, H, C, D) or 'none'")


def check_table(players: int, cards: int, dealer: int | None = None) -> None:
    if not 3 <= players <= 8:
        raise PositionError(f"players must be 3..8, got {players}")
    top = max_cards(players)
    if not 1 <= cards <= top:
        raise PositionError(f"cards must be 1..{top} for {players} players, got {cards}")
    if dealer is not None and not 0 <= dealer < players:
        raise PositionError(f"dealer must be a seat 0..{players - 1}, got {dealer}")


def build_round(k: SeatKnowledge, seed: int = 0) -> Round:
    """The round ``k`` describes, with the other seats' unseen cards filled in consistently.

    The asking seat must be the seat to act. Raises PositionError."""
    check_table(k.players, k.cards, k.dealer)
    if not 0 <= k.seat < k.players:
        raise PositionError(f"seat must be 0..{k.players - 1}, got {k.seat}")
    for i, play in enumerate(k.history):
        if not 0 <= play.seat < k.players:
            raise PositionError(f"history[{i}]: seat {play.seat} is not at a {k.players}-player table")
    played = _played_by_seat(k)
    hand = list(k.hand)
    if len(set(hand)) != len(hand):
        dup = next(c for c in hand if hand.count(c) > 1)
        raise PositionError(f"hand: card {card_name(dup)} is listed twice")
    own_played = played[k.seat]
    for c in hand:
        for seat, cards in enumerate(played):
            if c in cards:
                raise PositionError(f"card {card_name(c)} is seen twice: in the hand and played by seat "
                                    f"{seat} at history[{cards[c]}]")
    expected = k.cards - len(own_played)
    if len(hand) != expected:
        raise PositionError(f"hand: seat {k.seat} must hold {expected} cards ({k.cards} dealt, "
                            f"{len(own_played)} played), got {len(hand)}")
    voids: set[tuple[int, int]] = set()
    rng = random.Random(seed)
    for _ in range(_MAX_REPAIRS):
        dealt = _deal(k, hand, played, voids, rng)
        try:
            rnd = Round.from_deal(dealt, k.trump, k.dealer)
        except ValueError as exc:     # a safety net: the checks above should catch it first
            raise PositionError(f"the position is inconsistent: {exc}") from None
        if k.game:
            _set_context(rnd, k)
        learnt = _replay(rnd, k, voids)
        if learnt is None:
            break
        voids.add(learnt)
    else:       # cannot happen: every repair learns a new (seat, suit) pair
        raise PositionError("history: could not find a deal consistent with it")
    if rnd.is_terminal:
        raise PositionError("history: the round is over; there is no decision to advise")
    if rnd.current_player != k.seat:
        raise PositionError(f"seat {k.seat} asks, but seat {rnd.current_player} is to act "
                            f"({rnd.phase_name} phase, after {len(k.history)} actions)")
    return rnd


def _played_by_seat(k: SeatKnowledge) -> list[dict[int, int]]:
    """card -> history index for every seat; a card played twice is an error."""
    played: list[dict[int, int]] = [{} for _ in range(k.players)]
    first: dict[int, int] = {}
    for i, play in enumerate(k.history):
        if play.card is None:
            continue
        if play.card in first:
            raise PositionError(f"card {card_name(play.card)} is seen twice: played at history[{first[play.card]}] "
                                f"and at history[{i}]")
        first[play.card] = i
        played[play.seat][play.card] = i
    for seat, cards in enumerate(played):
        if len(cards) > k.cards:
            raise PositionError(f"history: seat {seat} plays {len(cards)} cards but was dealt {k.cards}")
    return played


def _deal(k: SeatKnowledge, hand: list[int], played: list[dict[int, int]],
          voids: set[tuple[int, int]], rng: random.Random) -> list[list[int]]:
    """A deal: the asker's hand + its played cards; every other seat its played cards plus
    unseen cards, none of a suit it is known to be void in (bipartite matching)."""
    known = set(hand).union(*(p.keys() for p in played))
    unseen = [c for c in range(52) if c not in known]
    rng.shuffle(unseen)
    slots = []          # one per unseen card a seat still holds
    for seat in range(k.players):
        if seat != k.seat:
            slots += [seat] * (k.cards - len(played[seat]))
    owner: dict[int, int] = {}          # card -> slot index

    def fits(slot: int, card: int) -> bool:
        return (slots[slot], card // 13) not in voids

    def augment(slot: int, seen: set[int]) -> bool:
        for card in unseen:
            if card in seen or not fits(slot, card):
                continue
            seen.add(card)
            if card not in owner or augment(owner[card], seen):
                owner[card] = slot
                return True
        return False

    for slot in range(len(slots)):
        if not augment(slot, set()):
            seat = slots[slot]
            shown = "".join(SUITS[s] for (p, s) in sorted(voids) if p == seat)
            raise PositionError(f"history: seat {seat} has shown out of {shown or 'no suit'} but "
                                f"the unseen cards cannot fill its hand: the history is inconsistent")
    dealt = [list(played[seat].keys()) for seat in range(k.players)]
    dealt[k.seat] += hand
    for card, slot in owner.items():
        dealt[slots[slot]].append(card)
    return dealt


def _replay(rnd: Round, k: SeatKnowledge, voids: set[tuple[int, int]]) -> tuple[int, int] | None:
    """Apply the history. Returns a (seat, suit) the seat must be void in when the engine refused
    a play only because the filled-in hand held the led suit (then the deal is redone);
    None when every action applied. An illegal action raises PositionError."""
    for i, play in enumerate(k.history):
        if rnd.is_terminal:
            raise PositionError(f"history[{i}]: the round is already over")
        if play.seat != rnd.current_player:
            raise PositionError(f"history[{i}]: seat {play.seat} acts, but it is seat "
                                f"{rnd.current_player}'s turn ({rnd.phase_name} phase)")
        if play.card is None:
            if rnd.phase_name != "bid":
                raise PositionError(f"history[{i}]: seat {play.seat} bids, but bidding is over")
            action = play.bid
        else:
            if rnd.phase_name != "play":
                raise PositionError(f"history[{i}]: seat {play.seat} plays {card_name(play.card)}, but "
                                    f"seats are still bidding")
            action = play.card
        if play.card is not None and play.seat != k.seat and not rnd.is_legal(action):
            led = rnd.led_suit
            if led is not None and action // 13 != led and (play.seat, led) not in voids:
                return (play.seat, led)     # learnt: it showed out; if already known, a real error
        try:
            rnd.apply(action)
        except ValueError as exc:
            raise PositionError(f"history[{i}]: {exc}") from None
    return None


def _set_context(rnd: Round, k: SeatKnowledge) -> None:
    g = k.game
    scores = list(g.get("scores") or [0] * k.players)
    try:
        rnd.set_game_context(int(g["round_index"]), int(g["rounds_in_game"]),
                             int(g.get("next_cards", 0)), scores)
    except (KeyError, ValueError) as exc:
        raise PositionError(f"game: {exc}") from None
