"""The game file (blobzero/gamefile.py, docs/gamefile.md): written by a real hosted game, read
back, checked against its JSON schema, and every impossible history refused by the rules engine
with the first illegal action named."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from blobcore.players import PLAYERS
from blobzero import gamefile
from blobzero.agent.games import GameHost, HostGame, Seat, host_record

SCHEMA = json.loads((Path(gamefile.__file__).with_name("gamefile.schema.json")).read_text())


def expert_move(rnd, seat, seed):
    return PLAYERS["expert"](rnd, None)


def played_game(players=4, cards=3, seed=5, kinds=("greedy", "expert", "random", "greedy")) -> dict:
    host = GameHost(expert_move)
    hosted = host.start(players, cards, [Seat(k) for k in kinds[:players]], seed=seed)
    assert hosted.over
    return json.loads(gamefile.dump(hosted.record()))


def refused(obj: dict) -> str:
    with pytest.raises(gamefile.GameFileError) as caught:
        gamefile.from_dict(obj)
    return str(caught.value)


def test_a_hosted_game_round_trips_and_matches_the_schema():
    obj = played_game()
    jsonschema.validate(obj, SCHEMA)
    record = gamefile.from_dict(obj)
    assert record.over and len(record.rounds) == 8 and record.seed == 5
    again = gamefile.to_dict(record)
    assert again == obj
    # the winners and scores are the replay's
    totals = [sum(r["scores"][s] for r in obj["rounds"]) for s in range(4)]
    assert obj["scores"] == totals and obj["winners"] == [s for s in range(4) if totals[s] == max(totals)]


def test_a_rebuilt_game_deals_the_rest_from_the_seed():
    """A game restored from the first rounds of its file deals the later rounds exactly as the
    original did (the seed stays in step), so a stored game continues with the same cards."""
    obj = played_game(seed=11)
    partial = copy.deepcopy(obj)
    partial["rounds"] = partial["rounds"][:3]
    for key in ("scores", "over", "winners"):
        partial.pop(key)
    record = gamefile.from_dict(partial)
    hosted = host_record("0" * 16, record, [Seat("greedy")] * 4, seed=11)
    assert hosted.game.round_index == 3
    assert [[gamefile.card_name(c) for c in h] for h in hosted.round.dealt_hands] == obj["rounds"][3]["hands"]
    fresh = HostGame(4, 3, 11)
    assert fresh.round.dealt_hands == gamefile.from_dict(obj).rounds[0].hands


def test_a_card_not_in_the_hand_is_refused_naming_the_action():
    obj = played_game()
    bad = copy.deepcopy(obj)
    actions = bad["rounds"][0]["actions"]
    first_card = next(i for i, a in enumerate(actions) if "card" in a)
    seat = actions[first_card]["seat"]
    other = next(c for s, h in enumerate(bad["rounds"][0]["hands"]) if s != seat for c in h)
    actions[first_card]["card"] = other
    message = refused(bad)
    assert message.startswith(f"rounds[0].actions[{first_card}]: seat {seat} plays {other}")
    assert f"{other} is not in player {seat}'s hand" in message


def test_a_revoke_is_refused():
    """3 players x 2 cards, spades trump: seat 1 holds a heart but plays a club on a heart lead."""
    obj = {"format": "blobzero.game", "version": 1, "players": 3, "start_cards": 2, "single_round": True,
           "first_dealer": 2, "seats": [{"kind": "other"}, {"kind": "human"}, {"kind": "other"}],
           "rounds": [{"cards": 2, "dealer": 2, "trump": "S", "hands": [["KH", "2C"], ["3H", "5C"], ["AS", "3S"]],
                       "actions": [{"seat": 0, "bid": 1}, {"seat": 1, "bid": 0}, {"seat": 2, "bid": 2},
                                   {"seat": 0, "card": "KH"}, {"seat": 1, "card": "5C"}]}]}
    jsonschema.validate(obj, SCHEMA)
    assert refused(obj) == ("rounds[0].actions[4]: seat 1 plays 5C: illegal action 29 (5C) for player 1 in "
                            "the play phase: must follow hearts while holding 3H")
    obj["rounds"][0]["actions"][4]["card"] = "3H"       # following suit: accepted, the round is in progress
    record = gamefile.from_dict(obj)
    assert not record.over and len(record.rounds[0].actions) == 5


def test_the_wrong_seat_and_the_hook_bid_are_refused():
    obj = played_game()
    wrong = copy.deepcopy(obj)
    wrong["rounds"][1]["actions"][0]["seat"] = (wrong["rounds"][1]["actions"][0]["seat"] + 1) % 4
    assert refused(wrong).startswith("rounds[1].actions[0]: seat ")
    assert "'s turn (bid phase)" in refused(wrong)
    # the dealer's hook bid: make the dealer bid so the bids add up to the cards
    hook = copy.deepcopy(obj)
    r = hook["rounds"][0]
    others = sum(a["bid"] for a in r["actions"][:3])
    forbidden = r["cards"] - others
    if not 0 <= forbidden <= r["cards"]:         # no hook bid this round: set the others' bids so there is one
        for a in r["actions"][:3]:
            a["bid"] = 0
        forbidden = r["cards"]
    r["actions"][3]["bid"] = forbidden
    message = refused(hook)
    assert "hook rule" in message and message.startswith("rounds[0].actions[")


def test_structural_problems_name_their_place():
    obj = played_game()
    cases = [
        (lambda o: o.update(version=2), "version: this agent reads version 1"),
        (lambda o: o["rounds"][2].update(cards=3), "rounds[2].cards: round 3 of this game deals 1 cards"),
        (lambda o: o["rounds"][1].update(trump="S"), "rounds[1].trump: round 2 of a game has trump H"),
        (lambda o: o["rounds"][1].update(dealer=3), "rounds[1].dealer: the deal rotates"),
        (lambda o: o["rounds"][0]["hands"][1].__setitem__(0, o["rounds"][0]["hands"][0][0]), "dealt twice"),
        (lambda o: o["rounds"][0]["hands"][1].__setitem__(0, "1X"), "rounds[0].hands[1][0]: '1X' is not a card"),
        (lambda o: o["rounds"][3]["actions"].pop(), "rounds[3]: round 4 is not finished"),
        (lambda o: o["rounds"][0].update(scores=[0, 0, 0, 0]), "rounds[0].scores: the file says"),
        (lambda o: o.update(scores=[1, 2, 3, 4]), "scores: the file says [1, 2, 3, 4]"),
        (lambda o: o["seats"][0].update(kind="robot"), "seats[0]: needs a kind"),
    ]
    for change, expected in cases:
        bad = copy.deepcopy(obj)
        change(bad)
        assert expected in refused(bad), expected
    with pytest.raises(gamefile.GameFileError, match="not JSON"):
        gamefile.loads("{nope")
    with pytest.raises(gamefile.GameFileError, match="a game file is a JSON object"):
        gamefile.loads("[]")
