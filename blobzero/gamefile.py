"""The game file: a complete game of Blob as versioned JSON (docs/gamefile.md, schema
``blobzero/gamefile.schema.json``).

    {"format": "blobzero.game", "version": 1, "players": 4, "start_cards": 5, "single_round": false,
     "first_dealer": 0, "seed": 7, "seats": [{"kind": "human"}, {"kind": "model", "search": "medium"}, ...],
     "rounds": [{"cards": 5, "dealer": 0, "trump": "S", "hands": [["AS", ...], ...],
                 "actions": [{"seat": 1, "bid": 2}, ..., {"seat": 1, "card": "AS"}, ...],
                 "bids": [...], "tricks": [...], "scores": [...]}, ...],
     "scores": [...], "over": false, "winners": []}

``load(text)`` checks a file and replays every round through the one rules engine
(``blobcore.rules.Round``): a card not in the hand, a revoke, the wrong seat, an illegal bid (the
dealer's hook bid too) is refused with the first illegal action named, e.g.
``rounds[2].actions[7]: seat 1 plays 3S: illegal action 3 (3S) for player 1 in the play phase:
must follow hearts while holding 2H``. No rule is written here. ``dump(record)`` writes one.

A ``GameRecord`` is what a file holds: the table, the seats, and per round the dealt hands and
every action; scores, bids, tricks and winners are derived by replaying (a file may state them:
they must then agree). Every round but the last is complete; the last may be in progress.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from blobcore.rules import Round, card_index, card_name, game_schedule, max_cards, trump_for_round

FORMAT = "blobzero.game"
VERSION = 1
SUITS = "SHCD"
SEAT_KINDS = ("human", "model", "random", "greedy", "expert", "other")
MAX_BYTES = 1 << 20


class GameFileError(ValueError):
    """The file is not a valid game; the message names the first problem (a JSON path)."""


@dataclass
class RoundRecord:
    """One round: ``hands`` as dealt (card indices per seat), ``actions`` [(seat, action)] in
    order (a bid or a card index), ``trump`` 0..3 or None."""
    cards: int
    dealer: int
    trump: int | None
    hands: list[list[int]]
    actions: list[tuple[int, int]] = field(default_factory=list)

    def replay(self, upto: int | None = None, context: tuple | None = None) -> Round:
        """The round after its first ``upto`` actions (all when None). context:
        (round_index, rounds_in_game, next_cards, scores) for the encoder."""
        rnd = Round.from_deal(self.hands, self.trump, self.dealer)
        if context is not None:
            rnd.set_game_context(*context)
        for _, action in self.actions[:upto]:
            rnd.apply(action)
        return rnd


@dataclass
class GameRecord:
    players: int
    start_cards: int
    single_round: bool
    first_dealer: int
    seats: list[dict]                      # {"kind", "search"?, "model_version"?, "name"?}
    rounds: list[RoundRecord]
    seed: int | None = None

    @property
    def schedule(self) -> list[int]:
        return [self.start_cards] if self.single_round else game_schedule(self.players, self.start_cards)

    def context(self, index: int, scores: list[int]) -> tuple | None:
        """The encoder's game context of round ``index`` (None for a single round)."""
        if self.single_round:
            return None
        schedule = self.schedule
        return (index, len(schedule), schedule[index + 1] if index + 1 < len(schedule) else 0, scores)

    def results(self) -> list[Round]:
        """Every round replayed (with its game context), in order."""
        out, scores = [], [0] * self.players
        for i, r in enumerate(self.rounds):
            rnd = r.replay(context=self.context(i, scores))
            if rnd.is_terminal:
                scores = [a + b for a, b in zip(scores, rnd.scores())]
            out.append(rnd)
        return out

    @property
    def over(self) -> bool:
        return len(self.rounds) == len(self.schedule) and bool(self.rounds) and self.results()[-1].is_terminal

    def positions(self, seat: int):
        """Every decision of ``seat``: (round_index, ply, Round before it, action taken)."""
        scores = [0] * self.players
        for i, r in enumerate(self.rounds):
            rnd = r.replay(upto=0, context=self.context(i, scores))
            for ply, (who, action) in enumerate(r.actions):
                if who == seat:
                    yield i, ply, rnd.copy(), action
                rnd.apply(action)
            if rnd.is_terminal:
                scores = [a + b for a, b in zip(scores, rnd.scores())]


# -- writing -----------------------------------------------------------------------------------

def _action_json(rnd_phase_bid: bool, seat: int, action: int) -> dict:
    return {"seat": seat, "bid": action} if rnd_phase_bid else {"seat": seat, "card": card_name(action)}


def to_dict(record: GameRecord, **extra) -> dict:
    """The file's JSON object; ``extra`` keys (e.g. ``game_id``) are added at the top level."""
    rounds, totals = [], [0] * record.players
    for r, rnd in zip(record.rounds, record.results()):
        item = {"cards": r.cards, "dealer": r.dealer, "trump": "none" if r.trump is None else SUITS[r.trump],
                "hands": [[card_name(c) for c in h] for h in r.hands],
                "actions": [_action_json(i < record.players, s, a) for i, (s, a) in enumerate(r.actions)]}
        if rnd.is_terminal:
            scores = rnd.scores()
            item.update(bids=list(rnd.bids), tricks=list(rnd.tricks_won), scores=scores)
            totals = [a + b for a, b in zip(totals, scores)]
        rounds.append(item)
    over = len(record.rounds) == len(record.schedule) and bool(rounds) and "scores" in rounds[-1]
    best = max(totals)
    out = {"format": FORMAT, "version": VERSION, "players": record.players, "start_cards": record.start_cards,
           "single_round": record.single_round, "first_dealer": record.first_dealer,
           "seed": record.seed, "seats": [dict(s) for s in record.seats], "rounds": rounds,
           "scores": totals, "over": over, "winners": [s for s, v in enumerate(totals) if v == best] if over else []}
    out.update(extra)
    return out


def dump(record: GameRecord, **extra) -> str:
    return json.dumps(to_dict(record, **extra), indent=1) + "\n"


# -- reading -----------------------------------------------------------------------------------

def _fail(path: str, why: str):
    raise GameFileError(f"{path}: {why}")


def _int(obj: dict, key: str, path: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        _fail(f"{path}.{key}" if path else key, f"must be an integer {lo}..{hi}, got {value!r}")
    return value


def _card(text, path: str) -> int:
    if not isinstance(text, str):
        _fail(path, f"a card is a name like 'AS' or 'TD', got {text!r}")
    name = "T" + text[2:] if text[:2] == "10" else text
    try:
        return card_index(name)
    except ValueError:
        _fail(path, f"{text!r} is not a card (use names like 'AS', 'TD', '7H')")


def _trump(text, path: str) -> int | None:
    if not isinstance(text, str) or text.upper() not in ("S", "H", "C", "D", "NONE"):
        _fail(path, f"trump is 'S', 'H', 'C', 'D' or 'none', got {text!r}")
    return None if text.upper() == "NONE" else SUITS.index(text.upper())


def loads(text: str | bytes) -> GameRecord:
    """Parse and check a game file (its JSON text); GameFileError names the first problem."""
    if len(text) > MAX_BYTES:
        raise GameFileError(f"a game file is at most {MAX_BYTES} bytes, got {len(text)}")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise GameFileError(f"not JSON: {str(exc)[:200]}") from None
    return from_dict(obj)


def from_dict(obj) -> GameRecord:
    """Check a parsed game file; replays it through the rules engine."""
    if not isinstance(obj, dict):
        _fail("(top)", f"a game file is a JSON object, got {type(obj).__name__}")
    if obj.get("format") != FORMAT:
        _fail("format", f"must be {FORMAT!r}, got {obj.get('format')!r}")
    if obj.get("version") != VERSION:
        _fail("version", f"this agent reads version {VERSION}, got {obj.get('version')!r}")
    players = _int(obj, "players", "", 3, 8)
    start = _int(obj, "start_cards", "", 1, max_cards(players))
    single = obj.get("single_round", False)
    if not isinstance(single, bool):
        _fail("single_round", f"must be true or false, got {single!r}")
    first_dealer = _int(obj, "first_dealer", "", 0, players - 1) if "first_dealer" in obj else 0
    seed = obj.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 64):
        _fail("seed", f"must be null or an integer 0..2^64-1, got {seed!r}")
    seats = obj.get("seats")
    if not isinstance(seats, list) or len(seats) != players:
        _fail("seats", f"need one seat object per player ({players})")
    clean_seats = []
    for i, s in enumerate(seats):
        if not isinstance(s, dict) or s.get("kind") not in SEAT_KINDS:
            _fail(f"seats[{i}]", f"needs a kind, one of {', '.join(SEAT_KINDS)}")
        clean_seats.append({k: s[k] for k in ("kind", "search", "model_version", "name")
                            if isinstance(s.get(k), str) and s.get(k)})
    rounds = obj.get("rounds")
    schedule = [start] if single else game_schedule(players, start)
    if not isinstance(rounds, list) or len(rounds) > len(schedule):
        _fail("rounds", f"a list of at most {len(schedule)} rounds (the schedule {schedule})")
    record = GameRecord(players, start, single, first_dealer, clean_seats, [], seed)
    totals = [0] * players
    for i, r in enumerate(rounds):
        path = f"rounds[{i}]"
        if not isinstance(r, dict):
            _fail(path, "a round is a JSON object")
        cards = _int(r, "cards", path, 1, max_cards(players))
        if cards != schedule[i]:
            _fail(f"{path}.cards", f"round {i + 1} of this game deals {schedule[i]} cards, the file says {cards}")
        dealer = _int(r, "dealer", path, 0, players - 1)
        trump = _trump(r.get("trump"), f"{path}.trump")
        if not single:
            if dealer != (first_dealer + i) % players:
                _fail(f"{path}.dealer", f"the deal rotates: round {i + 1} is dealt by seat "
                                        f"{(first_dealer + i) % players}, the file says {dealer}")
            if trump != trump_for_round(i):
                want = trump_for_round(i)
                _fail(f"{path}.trump", f"round {i + 1} of a game has trump "
                                       f"{'none' if want is None else SUITS[want]}, the file says {r.get('trump')}")
        hands = r.get("hands")
        if not isinstance(hands, list) or len(hands) != players:
            _fail(f"{path}.hands", f"need the dealt hand of every seat ({players})")
        dealt = []
        for s, hand in enumerate(hands):
            if not isinstance(hand, list) or len(hand) != cards:
                _fail(f"{path}.hands[{s}]", f"seat {s} must be dealt {cards} cards")
            dealt.append([_card(c, f"{path}.hands[{s}][{k}]") for k, c in enumerate(hand)])
        try:
            rnd = Round.from_deal(dealt, trump, dealer)
        except ValueError as exc:
            _fail(f"{path}.hands", str(exc))
        actions = r.get("actions", [])
        if not isinstance(actions, list):
            _fail(f"{path}.actions", "a list of {seat, bid} / {seat, card}")
        moves = []
        for k, a in enumerate(actions):
            where = f"{path}.actions[{k}]"
            if not isinstance(a, dict) or ("bid" in a) == ("card" in a):
                _fail(where, "an action is {\"seat\": s, \"bid\": b} or {\"seat\": s, \"card\": \"AS\"}")
            seat = _int(a, "seat", where, 0, players - 1)
            if rnd.is_terminal:
                _fail(where, "the round is already over")
            if seat != rnd.current_player:
                _fail(where, f"seat {seat} acts, but it is seat {rnd.current_player}'s turn ({rnd.phase_name} phase)")
            if "bid" in a:
                if rnd.phase_name != "bid":
                    _fail(where, f"seat {seat} bids, but bidding is over")
                action = _int(a, "bid", where, 0, 52)
                what = f"bids {action}"
            else:
                if rnd.phase_name != "play":
                    _fail(where, f"seat {seat} plays {a['card']}, but seats are still bidding")
                action = _card(a["card"], f"{where}.card")
                what = f"plays {card_name(action)}"
            try:
                rnd.apply(action)          # the rules engine decides; its reason is the message
            except ValueError as exc:
                _fail(where, f"seat {seat} {what}: {exc}")
            moves.append((seat, action))
        if not rnd.is_terminal and i + 1 < len(rounds):
            _fail(path, f"round {i + 1} is not finished ({len(moves)} actions) but round {i + 2} follows")
        if rnd.is_terminal:
            for key, value in (("bids", list(rnd.bids)), ("tricks", list(rnd.tricks_won)), ("scores", rnd.scores())):
                if key in r and r[key] != value:
                    _fail(f"{path}.{key}", f"the file says {r[key]} but the play gives {value}")
            totals = [a + b for a, b in zip(totals, rnd.scores())]
        record.rounds.append(RoundRecord(cards, dealer, trump, dealt, moves))
    if "scores" in obj and obj["scores"] != totals:
        _fail("scores", f"the file says {obj['scores']} but the rounds add up to {totals}")
    if obj.get("over") and not record.over:
        _fail("over", "the file says the game is over but rounds are missing or unfinished")
    return record
