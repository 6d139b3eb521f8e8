"""Labelled leaf worlds from self-play: what the world-value model learns from inside the loop.

Self-play's search values its leaves by play-outs: in a world drawn for the searcher's view
(one complete deal), every seat plays ``expert`` to the end of the round. With
``selfplay.leaf_worlds`` = K each round's record keeps a uniform sample of K of those play-outs
(``RoundRecord.leaf_worlds``: the decision's ply, the tree's path from it, the play-out's moves,
the world's deal, the play-out's normalised scores). The leaf itself is a labelled whole deal in
exactly the distribution the search asks the world value about (its own leaves, off-policy moves
included), and so is every later position of the play-out (what ``expert`` makes of the deal
from there): one play-out labels ~10 positions, as in ``explored_worlds``. Each label is one
play-out, whose expectation is what the model learns (trainer/world_model.py): the model that
replaces the play-outs is taught by them (docs/search.md, "World values"). A batch row is the
leaf with chance ``AT_LEAF``, else a position drawn uniformly from the play-out after it.

Stored compactly here (the deal as 8 bit masks, the actions to the leaf, the table and game
context, the scores: ≈200 bytes a world) and encoded per batch in C
(``blobcore.replay.encode_worlds``: replay to the leaf, ``encode_world`` for its mover).

With ``games`` (``trainer.world_games``) each round's own deal is a labelled world too: the true
deal, the moves self-play made in it, its final normalised scores, a batch row at any of its
positions with equal chance. These labels need no play-out and no ``expert`` (the pure
profile's only source) and value a deal under the searcher's own play (as PerfectDou's critic
does: the whole deal seen, the game's own outcome as the target).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from blobcore import replay
from blobcore.encode import WORLD_SIZE
from plumbing import records_pb2

SEATS = 8
MAX_ACTIONS = replay.MAX_ROUND_ACTIONS
AT_LEAF = 0.5       # share of batch rows at the leaf itself (the rest: later play-out positions)
CTX = replay.CONTEXT_COLUMNS


@dataclass
class LeafWorlds:
    """W labelled worlds. hands (W, 8) uint64 dealt cards by seat; meta (W, 4) int8 n_players,
    cards, dealer, trump; ctx (W, 11) int32 game context (blobcore/replay.pyx); actions (W, 60)
    uint8 from the deal to the leaf and on to the end of the play-out, n_actions (W,) uint8 of
    them, leaf_n (W,) uint8 of them up to the leaf (= n_actions for a world stored without its
    play-out); scores (W, 8) float32 the play-out's normalised scores by absolute seat;
    at_leaf (W,) float32 the chance a batch row is at the leaf (``AT_LEAF`` for a play-out's
    world; 1 / n_actions for a round's own deal, whose "leaf" is the deal itself)."""
    hands: np.ndarray
    meta: np.ndarray
    ctx: np.ndarray
    actions: np.ndarray
    n_actions: np.ndarray
    leaf_n: np.ndarray
    scores: np.ndarray
    at_leaf: np.ndarray

    @classmethod
    def empty(cls, n: int = 0) -> "LeafWorlds":
        return cls(np.zeros((n, SEATS), np.uint64), np.zeros((n, 4), np.int8),
                   np.zeros((n, CTX), np.int32), np.zeros((n, MAX_ACTIONS), np.uint8),
                   np.zeros(n, np.uint8), np.zeros(n, np.uint8), np.zeros((n, SEATS), np.float32),
                   np.full(n, AT_LEAF, np.float32))

    def __len__(self) -> int:
        return len(self.hands)

    def take(self, index: np.ndarray) -> "LeafWorlds":
        return LeafWorlds(*(getattr(self, f.name)[index] for f in fields(self)))

    def encode(self, rows: np.ndarray | None = None, upto: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(worlds (B, 620) float32, targets (B, 8) float32 by seat from the mover there,
        ok (B,) bool) of ``rows`` (default: all) after ``upto`` of their actions (default: at
        the leaf), replayed and encoded in C."""
        rows = np.arange(len(self), dtype=np.int32) if rows is None else np.ascontiguousarray(rows, np.int32)
        upto = self.leaf_n[rows] if upto is None else upto
        worlds = np.empty((len(rows), WORLD_SIZE), np.float32)
        target = np.empty((len(rows), SEATS), np.float32)
        ok = np.empty(len(rows), np.uint8)
        replay.encode_worlds(self.hands, self.meta, self.ctx, self.actions, self.scores, rows,
                             np.ascontiguousarray(upto, np.uint8), worlds, target, ok)
        return worlds, target, ok.astype(bool)

    def cut_points(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per row, how many actions to replay: the leaf with chance ``at_leaf`` (``AT_LEAF``
        for a play-out's world), else a position drawn uniformly from the play-out after it
        (before its last move)."""
        leaf = self.leaf_n[rows].astype(np.int64)
        later = self.n_actions[rows].astype(np.int64) - 1 - leaf      # play-out positions after the leaf
        pick = leaf + 1 + np.floor(rng.random(len(rows)) * np.maximum(later, 0)).astype(np.int64)
        at_leaf = (rng.random(len(rows)) < self.at_leaf[rows]) | (later <= 0)
        return np.where(at_leaf, leaf, pick).astype(np.uint8)


def _bad(n: int, cards: int, dealt, scores, ply: int, n_round_actions: int, path: bytes,
         leaf: int) -> str | None:
    """Why a leaf world cannot be a label (None when it can); the replay checks the moves."""
    if len(dealt) != n or len(scores) != n:
        return f"{len(dealt)} hands and {len(scores)} scores for {n} players"
    union = 0
    for mask in dealt:
        if mask >= 1 << 52 or mask.bit_count() != cards or union & mask:
            return "its deal is not one of N disjoint hands of the round's size"
        union |= mask
    if not all(np.isfinite(scores)) or not all(0.0 <= x <= 1.0 for x in scores):
        return "its scores are not normalised scores in [0, 1]"
    if ply > n_round_actions or ply + len(path) > MAX_ACTIONS or leaf > len(path):
        return (f"ply {ply} and a path of {len(path)} (the leaf {leaf} in) do not fit the "
                f"round's {n_round_actions} actions")
    return None


def _game_world(rec: records_pb2.RoundRecord) -> tuple[list[int], list[float], bytes]:
    """A round's own deal as a world: (its hands as bit masks, its normalised final scores, all
    of its moves); what does not fit (a card past 51, a move past 255) fails the checks."""
    dealt = [sum(1 << c if c < 52 else 1 << 60 for c in set(hand.cards)) for hand in rec.hands]
    scores = [s / (10.0 + rec.cards) for s in rec.scores]
    return dealt, scores, bytes(min(a, 255) for a in rec.actions)


def from_records(records: list[records_pb2.RoundRecord], games: bool = False
                 ) -> tuple[LeafWorlds, list[str]]:
    """The usable leaf worlds of ``records`` (checked: a deal of disjoint hands of the round's
    size, scores in [0, 1], legal moves to a leaf where the round is not over) and one reason
    per unusable one (``"record <i>: <why>"``); a bad world costs that world only. With
    ``games`` each record's own deal and play is one more world (trainer.world_games)."""
    total = sum(len(r.leaf_worlds) + games for r in records)
    out = LeafWorlds.empty(total)
    reasons: list[str] = []
    k = 0
    for i, rec in enumerate(records):
        if not rec.leaf_worlds and not games:
            continue
        n, cards = rec.n_players, rec.cards
        if not 3 <= n <= SEATS or rec.dealer >= n or rec.trump > 4:
            reasons.append(f"record {i}: a table of {n} players, dealer {rec.dealer}, trump {rec.trump}")
            continue
        context = None
        if rec.HasField("game") and len(rec.game.scores_before) == n:
            g = rec.game
            context = [g.round_index, g.n_rounds, g.next_cards, *g.scores_before]
        # (what, dealt, scores, ply, path, leaf, share at the leaf)
        entries = [(f"leaf world at ply {w.ply}", list(w.dealt), list(w.scores), w.ply, w.path,
                    w.leaf if w.HasField("leaf") else len(w.path), AT_LEAF) for w in rec.leaf_worlds]
        if games:
            dealt, scores, moves = _game_world(rec)
            if len(moves) != n * (cards + 1):
                reasons.append(f"record {i}: its own deal: {len(moves)} moves, not a whole round's "
                               f"{n * (cards + 1)}")
            else:
                entries.append(("its own deal", dealt, scores, 0, moves, 0, 1.0 / len(moves)))
        for what, dealt, scores, ply, path, leaf, share in entries:
            why = _bad(n, cards, dealt, scores, ply, len(rec.actions), path, leaf)
            if why is not None:
                reasons.append(f"record {i}: {what}: {why}")
                continue
            acts = [a if a < 255 else 255 for a in rec.actions[:ply]] + list(path)
            out.hands[k, :n] = dealt
            out.meta[k] = (n, cards, rec.dealer, rec.trump)
            if context is not None:
                out.ctx[k, :len(context)] = np.clip(context, -2**31, 2**31 - 1)
            out.actions[k, :len(acts)] = acts
            out.n_actions[k] = len(acts)
            out.leaf_n[k] = ply + leaf
            out.scores[k, :n] = scores
            out.at_leaf[k] = share
            k += 1
    out = out.take(np.arange(k))
    if k:           # the moves: replayed in C; a world whose moves are illegal is dropped
        last = np.where(out.n_actions > out.leaf_n, out.n_actions - 1, out.leaf_n)
        _, _, ok = out.encode(upto=last)          # through the play-out (the leaf on the way)
        if not ok.all():
            reasons.append(f"{int((~ok).sum())} leaf worlds whose moves do not replay legally "
                           f"to a leaf before the end of the round")
            out = out.take(np.flatnonzero(ok))
    return out, reasons


class LeafWorldWindow:
    """A ring of the newest ``capacity`` labelled worlds; batches are drawn uniformly (with
    replacement) and encoded in C."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.store = LeafWorlds.empty(self.capacity)
        self.total = 0                  # worlds ever added

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self.store, f.name).nbytes for f in fields(self.store))

    def add(self, worlds: LeafWorlds) -> None:
        added = len(worlds)
        if added == 0:
            return
        keep = min(added, self.capacity)             # of more than fit, the newest
        if keep < added:
            worlds = worlds.take(np.arange(added - keep, added))
        slots = (self.total + added - keep + np.arange(keep)) % self.capacity
        for f in fields(self.store):
            getattr(self.store, f.name)[slots] = getattr(worlds, f.name)
        self.total += added

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(worlds (batch, 620), targets (batch, 8)) drawn uniformly from what is held."""
        size = len(self)
        if size == 0:
            raise ValueError("the leaf-world window is empty")
        rows = rng.integers(0, size, size=batch)
        worlds, target, ok = self.store.encode(rows, self.store.cut_points(rows, rng))
        return worlds[ok], target[ok]
