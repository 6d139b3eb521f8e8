"""Training examples from game records, re-encoded with the core encoder.

For every searched decision of a round: the observation and legal mask the searching player
saw (``blobcore.encode``), the policy target (root visit counts normalised over the legal
actions) and the value target (the round's final normalised scores, per seat, rotated so
seat 0 is the player to move — the network's value convention).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blobcore import Round, encode_into
from blobcore.rules import NO_TRUMP
from plumbing import records_pb2

VALUE_SEATS = 8


class BadRecord(ValueError):
    """A record that does not replay under the rules."""


@dataclass
class Examples:
    """A batch of training examples; n rows each.

    states (n, 256) float32, masks (n, 52) float32, policy (n, 52) float32 (rows sum to 1),
    value (n, 8) float32 (normalised scores from the mover's seat), seats (n, 8) float32
    (1 for seats at the table: the value loss ignores the rest)."""

    states: np.ndarray
    masks: np.ndarray
    policy: np.ndarray
    value: np.ndarray
    seats: np.ndarray

    def __len__(self) -> int:
        return len(self.states)

    @staticmethod
    def empty(n: int = 0) -> "Examples":
        return Examples(np.zeros((n, 256), np.float32), np.zeros((n, 52), np.float32),
                        np.zeros((n, 52), np.float32), np.zeros((n, VALUE_SEATS), np.float32),
                        np.zeros((n, VALUE_SEATS), np.float32))


def from_record(rec: records_pb2.RoundRecord) -> Examples:
    """Replay ``rec`` and encode each searched decision; raises BadRecord if it is inconsistent."""
    n_players = rec.n_players
    try:
        rnd = Round.from_deal([list(h.cards) for h in rec.hands],
                              None if rec.trump == NO_TRUMP else rec.trump, rec.dealer)
    except ValueError as exc:
        raise BadRecord(f"bad deal: {exc}") from None
    decisions = {d.ply: d for d in rec.decisions}
    out = Examples.empty(len(decisions))
    row = 0
    for ply, action in enumerate(rec.actions):
        decision = decisions.get(ply)
        if decision is not None:
            if decision.player != rnd.current_player:
                raise BadRecord(f"decision at ply {ply} names player {decision.player}, "
                                f"but player {rnd.current_player} is to move")
            encode_into(rnd, out.states[row], out.masks[row])
            visits = np.asarray(decision.visits, np.float32)
            actions = np.asarray(decision.actions, np.int64)
            if visits.sum() <= 0 or np.any(out.masks[row, actions] < 0.5):
                raise BadRecord(f"decision at ply {ply} has visits on illegal actions or none")
            out.policy[row, actions] = visits / visits.sum()
            row += 1
        try:
            rnd.apply(int(action))
        except ValueError as exc:
            raise BadRecord(f"ply {ply}: {exc}") from None
    if not rnd.is_terminal or row != len(decisions):
        raise BadRecord("record does not describe a complete round")
    if list(rec.scores) != rnd.scores():
        raise BadRecord(f"recorded scores {list(rec.scores)} differ from the replay {rnd.scores()}")
    scores = np.asarray(rnd.normalised_scores(), np.float32)
    row = 0
    for ply in sorted(decisions):
        mover = decisions[ply].player
        out.value[row, :n_players] = np.roll(scores, -mover)
        out.seats[row, :n_players] = 1.0
        row += 1
    return out


def concat(parts: list[Examples]) -> Examples:
    if not parts:
        return Examples.empty()
    return Examples(*(np.concatenate([getattr(p, f) for p in parts])
                      for f in ("states", "masks", "policy", "value", "seats")))
