"""Training examples from game records, re-encoded with the core encoder.

For every searched decision of a round: the observation and legal mask the searching player
saw (``blobcore.encode``; a round of a full game is encoded with its game context), the policy target (the root
rule's: the Gumbel root's improved policy, or the root visit counts with a PUCT root, normalised
over the legal actions) and the value target (the round's final normalised scores, per seat, rotated so
seat 0 is the player to move — the network's value convention), and the tricks each seat
finally took, in the same order (the ``tricks`` value head's target).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blobcore import Round, encode_view_into
from blobcore.rules import NO_TRUMP
from plumbing import records_pb2

VALUE_SEATS = 8
NUM_ACTIONS = 52


class BadRecord(ValueError):
    """A record that does not replay under the rules."""


@dataclass
class Examples:
    """A batch of training examples; n rows each.

    states (n, 256) float32, masks (n, 52) float32, policy (n, 52) float32 (rows sum to 1),
    value (n, 8) float32 (normalised scores from the mover's seat), seats (n, 8) float32
    (1 for seats at the table: the value loss ignores the rest), tricks (n, 8) int8 (final
    tricks taken from the mover's seat; -1 for seats not at the table)."""

    states: np.ndarray
    masks: np.ndarray
    policy: np.ndarray
    value: np.ndarray
    seats: np.ndarray
    tricks: np.ndarray

    def __len__(self) -> int:
        return len(self.states)

    def rows(self, start: int, stop: int) -> "Examples":
        """Rows start..stop-1 as views of these arrays (writing them writes these)."""
        return Examples(*(getattr(self, f)[start:stop] for f in FIELDS))

    @staticmethod
    def empty(n: int = 0) -> "Examples":
        return Examples(np.zeros((n, 256), np.float32), np.zeros((n, 52), np.float32),
                        np.zeros((n, 52), np.float32), np.zeros((n, VALUE_SEATS), np.float32),
                        np.zeros((n, VALUE_SEATS), np.float32),
                        np.full((n, VALUE_SEATS), -1, np.int8))


def value_weights(value_target_search: float) -> tuple[np.float32, np.float32]:
    """(weight of the outcome, weight of the search root value) in a value target, as the
    float32 numbers both ingest paths multiply with (so they agree bit for bit)."""
    alpha = float(value_target_search)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"value_target_search must be in [0, 1], got {value_target_search!r}")
    return np.float32(1.0 - alpha), np.float32(alpha)


def search_values(raw: np.ndarray, counts: np.ndarray, n_players: np.ndarray) -> np.ndarray:
    """The decisions' search root values usable as value targets, in place and returned.

    raw (D, 8) float32: each decision's recorded ``root_value`` by absolute seat (the first
    min(count, 8) entries, the rest 0); counts (D,): how many entries it recorded; n_players
    (D,): players of its round. A row becomes NaN in every column, meaning "no search value:
    train on the outcome", unless it has exactly n_players finite entries that are not all
    zero: older records have none, and a built-in seat's imitation decision records zeros
    (``blobcore/search/pool.pyx`` ``_record_builtin``) — a real search gives all zeros only when it
    expects every seat to miss, where the outcome says much the same."""
    usable = ((counts == n_players) & np.isfinite(raw).all(axis=1) & (raw != 0).any(axis=1))
    raw[~usable] = np.nan
    return raw


def _record_search_values(rec: records_pb2.RoundRecord, decisions: list) -> np.ndarray:
    """``search_values`` of ``decisions`` (Decision messages of ``rec``), (D, 8) float32."""
    raw = np.zeros((len(decisions), VALUE_SEATS), np.float32)
    counts = np.zeros(len(decisions), np.int64)
    for i, d in enumerate(decisions):
        counts[i] = len(d.root_value)
        if counts[i] <= VALUE_SEATS:
            raw[i, :counts[i]] = d.root_value
    return search_values(raw, counts, np.full(len(decisions), rec.n_players, np.int64))


def from_record(rec: records_pb2.RoundRecord, all_views: bool = False,
                value_target_search: float = 0.0) -> Examples:
    """Replay ``rec`` and encode each searched decision; raises BadRecord if it is inconsistent.

    all_views: one example per seat for each decision (the position as that seat sees it;
    the policy target is still the mover's search result) instead of the mover's view only.
    A search with ``perspective = "searcher"`` evaluates positions where someone else is to
    move from the searching player's view, so the network must learn those views too.
    value_target_search: α in [0, 1], the search root value's share of the value target
    (module docstring); 0 = the outcome alone."""
    w_outcome, w_search = value_weights(value_target_search)
    check_structure(rec)
    n_players = rec.n_players
    views = n_players if all_views else 1
    try:
        rnd = Round.from_deal([list(h.cards) for h in rec.hands],
                              None if rec.trump == NO_TRUMP else rec.trump, rec.dealer)
    except (ValueError, OverflowError) as exc:
        raise BadRecord(f"bad deal: {exc}") from None
    if rec.HasField("game"):
        try:
            rnd.set_game_context(rec.game.round_index, rec.game.n_rounds, rec.game.next_cards,
                                 list(rec.game.scores_before))
        except (ValueError, OverflowError) as exc:
            raise BadRecord(f"bad game context: {exc}") from None
    decisions = {d.ply: d for d in rec.decisions}
    out = Examples.empty(len(decisions) * views)
    row = 0
    for ply, action in enumerate(rec.actions):
        decision = decisions.get(ply)
        if decision is not None:
            if decision.player != rnd.current_player:
                raise BadRecord(f"decision at ply {ply} names player {decision.player}, "
                                f"but player {rnd.current_player} is to move")
            visits = np.asarray(decision.visits, np.float32)
            actions = np.asarray(decision.actions, np.int64)
            for k in range(views):            # the mover's own view first
                encode_view_into(rnd, (decision.player + k) % n_players, out.states[row],
                                 out.masks[row])
                if visits.sum() <= 0 or np.any(out.masks[row, actions] < 0.5):
                    raise BadRecord(f"decision at ply {ply} has visits on illegal actions or none")
                out.policy[row, actions] = visits / visits.sum()
                row += 1
        try:
            rnd.apply(int(action))
        except (ValueError, OverflowError) as exc:
            raise BadRecord(f"ply {ply}: {exc}") from None
    if not rnd.is_terminal or row != len(decisions) * views:
        raise BadRecord("record does not describe a complete round")
    if list(rec.scores) != rnd.scores():
        raise BadRecord(f"recorded scores {list(rec.scores)} differ from the replay {rnd.scores()}")
    scores = np.asarray(rnd.normalised_scores(), np.float32)
    tricks = np.asarray(rnd.tricks_won, np.int8)
    plies = sorted(decisions)
    searched = (_record_search_values(rec, [decisions[ply] for ply in plies]) if w_search
                else np.full((len(plies), VALUE_SEATS), np.nan, np.float32))
    row = 0
    for i, ply in enumerate(plies):
        for k in range(views):
            observer = (decisions[ply].player + k) % n_players
            out.value[row, :n_players] = np.roll(scores, -observer)
            if not np.isnan(searched[i, 0]):     # float32: each product rounded, then the sum
                search = np.roll(searched[i, :n_players], -observer)
                out.value[row, :n_players] = (w_outcome * out.value[row, :n_players]
                                              + w_search * search)
            out.seats[row, :n_players] = 1.0
            out.tricks[row, :n_players] = np.roll(tricks, -observer)
            row += 1
    return out


def check_structure(rec: records_pb2.RoundRecord) -> None:
    """Raise BadRecord unless the record's fields fit together (before anything is replayed):
    a writer's bug or a hostile client must cost one record, never the trainer."""
    n = rec.n_players
    if not 3 <= n <= VALUE_SEATS or len(rec.hands) != n or len(rec.scores) != n:
        raise BadRecord(f"n_players {n} with {len(rec.hands)} hands and {len(rec.scores)} scores")
    for d in rec.decisions:
        where = f"decision at ply {d.ply}"
        if d.ply >= len(rec.actions) or d.player >= n:
            raise BadRecord(f"{where} names player {d.player} of a {len(rec.actions)}-move round "
                            f"of {n} players")
        if not d.actions or len(d.visits) != len(d.actions):
            raise BadRecord(f"{where} has {len(d.visits)} visit counts for {len(d.actions)} actions")
        if max(d.actions) >= NUM_ACTIONS or len(set(d.actions)) != len(d.actions):
            raise BadRecord(f"{where} has actions outside 0..{NUM_ACTIONS - 1} or repeated")


def concat(parts: list[Examples]) -> Examples:
    if not parts:
        return Examples.empty()
    return Examples(*(np.concatenate([getattr(p, f) for p in parts])
                      for f in FIELDS))


#: The array fields of ``Examples``, in constructor order.
FIELDS = ("states", "masks", "policy", "value", "seats", "tricks")
