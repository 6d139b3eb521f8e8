"""Round records: the search's record dicts <-> the ``RoundRecord`` protobuf (proto/)."""
from __future__ import annotations

import time

from blobcore.rules import NO_TRUMP
from plumbing import records_pb2


POLICY_SCALE = 10_000   # a Gumbel policy target of p is stored as round(p * POLICY_SCALE) "visits"


def to_proto(record: dict, client_id: str, model_version: int | None = None,
             timestamp_ms: int | None = None) -> records_pb2.RoundRecord:
    """Convert a finished-round dict from ``SearchPool.pop_finished`` (complete rounds only)."""
    if not record.get("complete", True) or record.get("scores") is None:
        raise ValueError("only complete rounds are recorded")
    msg = records_pb2.RoundRecord(
        n_players=record["n_players"], cards=record["cards"], dealer=record["dealer"],
        trump=NO_TRUMP if record["trump"] is None else record["trump"],
        actions=record["actions"], scores=record["scores"],
        model_version=int(model_version if model_version is not None
                          else (record.get("model_version") or 0)),
        client_id=client_id, seed=record["seed"] & 0xFFFFFFFFFFFFFFFF,
        timestamp_ms=int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    for hand in record["hands"]:
        msg.hands.add(cards=hand)
    for decision in record["decisions"]:
        # The stored counts are the policy target: the root visits, or the Gumbel root's
        # improved policy as counts out of POLICY_SCALE (the trainer normalises either).
        policy = decision.get("policy")
        target = ({a: int(round(p * POLICY_SCALE)) for a, p in policy.items()} if policy
                  else decision["visits"])
        actions = sorted(a for a, n in target.items() if n > 0)
        msg.decisions.add(
            ply=decision["ply"], player=decision["player"], actions=actions,
            visits=[target[a] for a in actions],
            q=[decision["q"].get(a, 0.0) for a in actions],
            root_value=decision["root_value"])
    for key, value in record["search"].items():
        setattr(msg.search, key, value)
    for world in record.get("leaf_worlds") or ():
        msg.leaf_worlds.add(ply=world["ply"], path=bytes(world["path"]), dealt=world["dealt"],
                            scores=world["scores"], leaf=world["leaf"])
    game = record.get("game")
    if game is not None:
        msg.game.round_index = game["round_index"]
        msg.game.n_rounds = game["n_rounds"]
        msg.game.next_cards = game["next_cards"]
        msg.game.scores_before.extend(game["scores_before"])
        msg.game.game_id = int(game.get("game_id", 0)) & 0xFFFFFFFFFFFFFFFF
    return msg


def positions(msg: records_pb2.RoundRecord) -> int:
    """Training positions (searched decisions) in a record."""
    return len(msg.decisions)
