"""Learned beliefs: where the hidden cards are, predicted from one seat's observation.

Shapes (B = positions):
    obs (B, 256) float32, one seat's view (``blobcore.encode`` / ``encode_view``: its own hand and
        the public record, seats rotated so that the observer is relative seat 0)
    -> logits (B, 52, 8): for every card, one logit per holder class
         class 0 = nobody: the card was not dealt (only when N x C < 52)
         class r = relative seat r = 1..N-1 (the r-th seat after the observer in turn order)
    feasible (B, 52, 8) bool, read from ``obs`` alone (``feasible_classes``): the card is unseen
        (not in the observer's hand, not played) and the holder may hold it (a seat at the table
        with cards left that has not shown out of the card's suit; nobody only when cards were
        left undealt). Infeasible logits are ``ILLEGAL_LOGIT``; rows of seen cards are all illegal.

Suits are symmetric up to trump: the net reads the observation with its suits renamed so that
trump is suit 0 (the other suits keep their order; no trump: unchanged) and its outputs are
renamed back, and training draws a random renaming of the non-trump suits for every example
(all four in no trump), so one hand teaches six.

The logits are a residual on a counting prior: log(cards the holder still has to take), i.e.
hand size for a seat and the undealt remainder for nobody. An untrained net therefore starts at
the uniform marginals of a deal without voids, and training learns how the bids and the play
move them. Loss: cross-entropy over the feasible classes on unseen cards only, in nats per
unseen card (``belief_loss``).

Data (``positions_from_records``): every ply of a record's round, encoded as the seat to move
sees it, labelled from the record's true deal: for each unseen card, the class that holds it at
that moment. The labels are free: every self-play record stores the deal.

A deal from the marginals (``DealSampler``): the distribution over complete assignments of the
unseen cards that is proportional to the product of the per-card probabilities, conditioned on
every holder taking exactly its count (hand sizes; voids are zero probabilities). Sampled and
marginalised exactly by dynamic programming over the holders' remaining counts (at 4 x 5, at most
6^3 = 216 states per card). ``world_from_holders`` turns one draw into a ``Round`` at the same
position and replays the public history in it, which checks the draw against the record.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from blobcore.rules import Round
from trainer import mlp

OBS_DIM = 256
CARDS = 52
#: holder classes: 0 = nobody (undealt), 1..7 = relative seats after the observer
CLASSES = 8
ILLEGAL_LOGIT = -1.0e9
# Observation slots read here (docs/observation.md; blobcore/encode.pyx SLOTS).
OBS_HAND, OBS_PLAYED, OBS_HAND_SIZE, OBS_VOIDS, OBS_SEATS = 0, 52, 172, 180, 212
OBS_PHASE, OBS_CARDS, OBS_PLAYERS, OBS_TRICKS_DONE = 233, 237, 238, 239
MAX_CARDS, MAX_PLAYERS = 17, 8
#: most DP states (product over seats of hand size + 1) a DealSampler accepts
MAX_SAMPLER_STATES = 200_000

# Suit renamings: PERMS[k][s] is the new name of suit s. For each, where every observation slot
# of the renamed view comes from (OBS_SRC) and where each card goes (CARD_DST).
PERMS = list(itertools.permutations(range(4)))
_SUIT_SLOTS = [(0, 52, 13), (52, 52, 13)]                       # hand, played: 4 suits x 13 ranks
_SUIT_SLOTS += [(104 + 5 * r, 4, 1) for r in range(MAX_PLAYERS)]  # trick: per seat, suit one-hot
_SUIT_SLOTS += [(152, 4, 1), (228, 4, 1)]                      # led suit, trump (no-trump slot stays)
_SUIT_SLOTS += [(180 + 4 * r, 4, 1) for r in range(MAX_PLAYERS)]  # voids per seat


def _perm_tables() -> tuple[torch.Tensor, torch.Tensor]:
    src = np.tile(np.arange(OBS_DIM), (len(PERMS), 1))
    dst = np.zeros((len(PERMS), CARDS), np.int64)
    for k, perm in enumerate(PERMS):
        for start, width, block in _SUIT_SLOTS:
            for suit in range(4):
                for j in range(block):
                    src[k, start + perm[suit] * block + j] = start + suit * block + j
        for c in range(CARDS):
            dst[k, c] = perm[c // 13] * 13 + c % 13
    return torch.from_numpy(src), torch.from_numpy(dst)


OBS_SRC, CARD_DST = _perm_tables()
#: per trump (0..3, 4 = no trump): the renamings that send trump to suit 0 (all in no trump)
_TRUMP_PERMS = [torch.tensor([k for k, p in enumerate(PERMS) if t == 4 or p[t] == 0]) for t in range(5)]


def suit_perms(obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) index into PERMS per row: the canonical renaming (trump -> 0, the others in order;
    no trump: none), or with ``generator`` a uniformly random one among those sending trump to 0."""
    trump = torch.argmax(obs[:, 228:233], dim=1)
    out = torch.empty(len(obs), dtype=torch.long)
    for t in range(5):
        rows = trump == t
        n = int(rows.sum())
        if n == 0:
            continue
        choices = _TRUMP_PERMS[t]
        if generator is None:
            out[rows] = int(choices[0])        # the first in lexicographic order keeps the others' order
        else:
            out[rows] = choices[torch.randint(len(choices), (n,), generator=generator)]
    return out



def _check_obs(obs: torch.Tensor) -> None:
    if obs.ndim != 2 or obs.shape[1] != OBS_DIM:
        raise ValueError(f"obs must have shape (B, {OBS_DIM}), got {tuple(obs.shape)}")
    if not obs.is_floating_point():
        raise ValueError(f"obs must be floating point, got {obs.dtype}")


# -- what the observation allows ------------------------------------------------------------------

def holder_counts(obs: torch.Tensor) -> torch.Tensor:
    """(B, 8) int64: cards each holder class still has to take from the unseen cards: hand size
    per relative seat 1..N-1 (0 for seats not at the table) and, in class 0, the undealt rest."""
    _check_obs(obs)
    cards = torch.round(obs[:, OBS_CARDS] * MAX_CARDS)
    seats = obs[:, OBS_SEATS:OBS_SEATS + MAX_PLAYERS] > 0.5
    sizes = torch.round(obs[:, OBS_HAND_SIZE:OBS_HAND_SIZE + MAX_PLAYERS] * cards[:, None]).long()
    sizes = sizes * seats.long()
    seen = (obs[:, OBS_HAND:OBS_HAND + CARDS] > 0.5) | (obs[:, OBS_PLAYED:OBS_PLAYED + CARDS] > 0.5)
    unseen = CARDS - seen.long().sum(1)
    counts = sizes.clone()
    counts[:, 0] = unseen - sizes[:, 1:].sum(1)
    return counts


def feasible_classes(obs: torch.Tensor) -> torch.Tensor:
    """(B, 52, 8) bool: which class may hold each card, from the observation alone (module doc)."""
    _check_obs(obs)
    b = obs.shape[0]
    seen = (obs[:, OBS_HAND:OBS_HAND + CARDS] > 0.5) | (obs[:, OBS_PLAYED:OBS_PLAYED + CARDS] > 0.5)
    counts = holder_counts(obs)
    voids = obs[:, OBS_VOIDS:OBS_VOIDS + 4 * MAX_PLAYERS].reshape(b, MAX_PLAYERS, 4) > 0.5
    suit_of = torch.arange(CARDS, device=obs.device) // 13
    void_card = voids[:, :, suit_of].permute(0, 2, 1)          # (B, 52, 8): holder void in card's suit
    ok = (counts > 0)[:, None, :] & ~void_card
    players = torch.round(obs[:, OBS_PLAYERS] * MAX_PLAYERS)
    cards = torch.round(obs[:, OBS_CARDS] * MAX_CARDS)
    ok[:, :, 0] = (players * cards < CARDS)[:, None] & (counts[:, 0] > 0)[:, None]
    return ok & ~seen[:, :, None]


def trick_of(obs: np.ndarray) -> np.ndarray:
    """(B,) int: 0 while bidding, else the trick being played (1..C)."""
    obs = np.asarray(obs)
    bidding = obs[:, OBS_PHASE] > 0.5
    done = np.rint(obs[:, OBS_TRICKS_DONE] * np.rint(obs[:, OBS_CARDS] * MAX_CARDS)).astype(np.int64)
    return np.where(bidding, 0, done + 1)


# -- the network ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BeliefNetConfig:
    """hidden: width of each hidden layer; depth: hidden layers (ReLU MLP)."""
    hidden: int = 256
    depth: int = 2


class BeliefNet(nn.Module):
    """obs (B, 256) -> masked logits (B, 52, 8), a residual on log(cards left to take)."""

    def __init__(self, config: BeliefNetConfig = BeliefNetConfig()):
        super().__init__()
        self.config = config
        self.trunk, width = mlp.trunk(OBS_DIM, config.hidden, config.depth)
        self.head = nn.Linear(width, CARDS * CLASSES)
        nn.init.zeros_(self.head.weight)       # start exactly at the counting prior
        nn.init.zeros_(self.head.bias)

    def forward(self, obs: torch.Tensor, perms: torch.Tensor | None = None) -> torch.Tensor:
        """perms: (B,) renamings (``suit_perms``); None = the canonical one."""
        _check_obs(obs)
        feasible = feasible_classes(obs)
        prior = torch.log(holder_counts(obs).clamp(min=1).float())[:, None, :]
        perms = suit_perms(obs) if perms is None else perms
        renamed = torch.gather(obs, 1, OBS_SRC[perms])
        out = self.head(self.trunk(renamed)).reshape(-1, CARDS, CLASSES)
        out = torch.gather(out, 1, CARD_DST[perms][:, :, None].expand(-1, -1, CLASSES))
        logits = out + prior
        return torch.where(feasible, logits, torch.full_like(logits, ILLEGAL_LOGIT))


def belief_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean nats per unseen card. labels (B, 52) int64: the true class, -1 for seen cards."""
    if logits.shape[:2] != labels.shape or logits.shape[2] != CLASSES:
        raise ValueError(f"logits (B, 52, 8) and labels (B, 52) disagree: {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    unseen = labels >= 0
    logp = F.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return -(picked * unseen).sum() / unseen.sum().clamp(min=1)


def predict(net: BeliefNet, obs: np.ndarray, batch: int = 4096) -> np.ndarray:
    """(B, 52, 8) float32 probabilities (0 where infeasible) for ``obs`` (B, 256)."""
    obs = np.asarray(obs, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[1] != OBS_DIM:
        raise ValueError(f"obs must have shape (B, {OBS_DIM}), got {obs.shape}")
    out = np.empty((len(obs), CARDS, CLASSES), np.float32)
    net.eval()
    with torch.no_grad():
        for i in range(0, len(obs), batch):
            x = torch.from_numpy(obs[i:i + batch])
            p = torch.softmax(net(x), dim=-1) * feasible_classes(x)
            out[i:i + batch] = p.numpy()
    return out


# -- data from records ----------------------------------------------------------------------------

@dataclass
class BeliefData(mlp.ArrayTable):
    """Positions with labels. obs (P, 256) float32; labels (P, 52) int8 (class, -1 = seen);
    trick (P,) int8 (0 = bidding); round (P,) int32 index into ``deals``; ply (P,) int16 (actions
    taken before the position); viewer (P,) int8 (the seat whose view it is).
    deals: hands (R, N, C) int8, dealer (R,), trump (R,) (-1 = no trump), actions (R, A) int8
    (-1 padded), seed (R,) int64 — enough to rebuild every position as a ``Round``."""
    obs: np.ndarray
    labels: np.ndarray
    trick: np.ndarray
    round: np.ndarray
    ply: np.ndarray
    viewer: np.ndarray
    hands: np.ndarray
    dealer: np.ndarray
    trump: np.ndarray
    actions: np.ndarray
    seed: np.ndarray

    def position(self, i: int) -> Round:
        """Position ``i`` as a ``Round`` with the true deal (for samplers that need the state)."""
        r = int(self.round[i])
        trump = int(self.trump[r])
        rnd = Round.from_deal(self.hands[r].tolist(), None if trump < 0 else trump, int(self.dealer[r]))
        for a in self.actions[r, :int(self.ply[i])]:
            rnd.apply(int(a))
        return rnd


def labels_for(rnd: Round, viewer: int) -> np.ndarray:
    """(52,) int8: for every card ``viewer`` cannot see, its holder class now; -1 for seen ones."""
    n = rnd.n_players
    labels = np.full(CARDS, -1, np.int8)
    seen = set(rnd.hand(viewer)) | set(rnd.played_cards)
    for c in range(CARDS):
        if c not in seen:
            labels[c] = 0
    for seat, hand in enumerate(rnd.hands):
        if seat != viewer:
            labels[hand] = (seat - viewer) % n
    return labels


def positions_from_records(records: list[dict], seats=None, decisions_only: bool = False) -> BeliefData:
    """Every position of every record (a ``PooledSearch`` record dict: ``hands``, ``dealer``,
    ``trump``, ``actions``, ``start_ply``), as the seat to move sees it, with its labels.

    seats: only positions where one of these seats is to move (None = every seat).
    decisions_only: only the record's recorded decisions (its searched, or with
        ``record_builtin`` its built-in, choices with more than one legal action)."""
    from blobcore import encode
    if not records:
        raise ValueError("no records")
    n, c = records[0]["n_players"], records[0]["cards"]
    width = max(len(r["actions"]) for r in records)
    hands = np.zeros((len(records), n, c), np.int8)
    actions = np.full((len(records), width), -1, np.int8)
    dealer = np.zeros(len(records), np.int8)
    trump = np.zeros(len(records), np.int8)
    seed = np.zeros(len(records), np.int64)
    obs, labels, tricks, rounds, plies, viewers = [], [], [], [], [], []
    for ri, rec in enumerate(records):
        if (rec["n_players"], rec["cards"]) != (n, c):
            raise ValueError(f"records mix tables: {n}x{c} and {rec['n_players']}x{rec['cards']}")
        if rec.get("start_ply", 0) != 0 or rec.get("game"):
            raise ValueError("only single rounds dealt from the start (not a game's rounds) are supported")
        hands[ri] = np.array(rec["hands"], np.int8)
        actions[ri, :len(rec["actions"])] = rec["actions"]
        dealer[ri] = rec["dealer"]
        trump[ri] = -1 if rec["trump"] is None else rec["trump"]
        seed[ri] = rec["seed"]
        wanted = {d["ply"] for d in rec["decisions"]} if decisions_only else None
        rnd = Round.from_deal(rec["hands"], rec["trump"], rec["dealer"])
        for ply, action in enumerate(rec["actions"]):
            v = rnd.current_player
            if (seats is None or v in seats) and (wanted is None or ply in wanted):
                o, _ = encode(rnd, v)
                obs.append(o)
                labels.append(labels_for(rnd, v))
                tricks.append(0 if rnd.phase == 0 else rnd.tricks_done + 1)
                rounds.append(ri)
                plies.append(ply)
                viewers.append(v)
            rnd.apply(action)
    return BeliefData(np.array(obs, np.float32), np.array(labels, np.int8), np.array(tricks, np.int8),
                      np.array(rounds, np.int32), np.array(plies, np.int16), np.array(viewers, np.int8),
                      hands, dealer, trump, actions, seed)


# -- training -------------------------------------------------------------------------------------

def train(data: BeliefData, config: BeliefNetConfig = BeliefNetConfig(), epochs: int = 5,
          batch: int = 512, lr: float = 2e-3, weight_decay: float = 1e-5, seed: int = 0,
          valid: BeliefData | None = None, log=None, augment: bool = True) -> tuple[BeliefNet, list[dict]]:
    """Train a BeliefNet by Adam with a cosine learning rate; returns it and one dict per epoch
    (train loss, and the validation loss when ``valid`` is given). augment: a random renaming
    of the non-trump suits per example (module doc)."""
    if len(data) == 0:
        raise ValueError("no training positions")
    torch.manual_seed(seed)
    net = BeliefNet(config)
    obs = torch.from_numpy(np.asarray(data.obs, np.float32))
    labels = torch.from_numpy(data.labels.astype(np.int64))

    def batch_loss(idx, gen):
        x = obs[idx]
        return belief_loss(net(x, suit_perms(x, gen) if augment else None), labels[idx])

    history = mlp.fit(net, len(data), batch_loss, epochs, batch, lr, weight_decay, seed,
                      valid=None if valid is None else lambda: {"valid_loss": round(evaluate_loss(net, valid), 5)},
                      log=log)
    return net, history


def evaluate_loss(net: BeliefNet, data: BeliefData, batch: int = 4096) -> float:
    """Mean nats per unseen card over ``data``."""
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            labels = torch.from_numpy(data.labels[i:i + batch].astype(np.int64))
            n = int((labels >= 0).sum())
            total += float(belief_loss(net(torch.from_numpy(data.obs[i:i + batch])), labels)) * n
            count += n
    return total / max(count, 1)


def save_model(net: BeliefNet, path, meta: dict | None = None) -> None:
    mlp.save(net, path, meta)


def load_model(path) -> tuple[BeliefNet, dict]:
    return mlp.load(path, lambda config: BeliefNet(BeliefNetConfig(**config)))


# -- deals from the marginals ---------------------------------------------------------------------

class DealSampler:
    """Complete assignments of the unseen cards to holders, P(deal) proportional to the product
    of ``probs[card, holder]`` given that every holder takes exactly ``counts[holder]`` cards.

    probs: (52, 8) non-negative, 0 where a holder cannot take the card (voids, seen cards).
    counts: (8,) ints, cards each class takes (``holder_counts``); their sum is the unseen count.
    Exact, by dynamic programming over the seats' remaining counts (``MAX_SAMPLER_STATES``)."""

    def __init__(self, probs: np.ndarray, counts: np.ndarray):
        probs = np.asarray(probs, np.float64)
        counts = np.asarray(counts, np.int64)
        if probs.shape != (CARDS, CLASSES) or counts.shape != (CLASSES,):
            raise ValueError(f"probs must be (52, 8) and counts (8,), got {probs.shape} and {counts.shape}")
        if not np.isfinite(probs).all() or (probs < 0).any() or (counts < 0).any():
            raise ValueError("probs must be finite and non-negative, counts non-negative")
        self.cards = np.flatnonzero(probs.sum(1) > 0)
        if len(self.cards) != counts.sum():
            raise ValueError(f"{len(self.cards)} cards have a possible holder but the counts "
                             f"take {counts.sum()}")
        self.seats = [r for r in range(1, CLASSES) if counts[r] > 0]
        self.counts = counts
        self.shape = tuple(int(counts[r]) + 1 for r in self.seats)
        states = int(np.prod(self.shape)) if self.shape else 1
        if states > MAX_SAMPLER_STATES:
            raise ValueError(f"{states} count states exceed MAX_SAMPLER_STATES={MAX_SAMPLER_STATES}")
        # card-by-class probabilities in card order, only the classes the DP tracks (0 + seats)
        self.p = probs[self.cards][:, [0] + self.seats]
        self.p[:, 0] *= counts[0] > 0
        u = len(self.cards)
        self.w = np.zeros((u + 1,) + self.shape)
        self.w[(u,) + (0,) * len(self.seats)] = 1.0
        for i in range(u - 1, -1, -1):
            total = sum(self._terms(i))
            top = total.max()
            if not top > 0:
                raise ValueError("no deal gives every holder its count with these probabilities")
            self.w[i] = total / top           # the scale does not change the conditionals
        if not self.w[(0,) + self.start] > 0:
            raise ValueError("no deal gives every holder its count with these probabilities")

    @property
    def start(self) -> tuple:
        return tuple(int(self.counts[r]) for r in self.seats)

    def _terms(self, i: int) -> list[np.ndarray]:
        """Per DP class k, over states n (counts still needed before card i): p[i, k] times the
        completions of cards i+1.. after giving card i to k."""
        nxt = self.w[i + 1]
        out = [self.p[i, 0] * nxt]
        for axis in range(len(self.seats)):
            t = np.zeros_like(nxt)
            dst = [slice(None)] * len(self.seats)
            src = [slice(None)] * len(self.seats)
            dst[axis], src[axis] = slice(1, None), slice(None, -1)
            t[tuple(dst)] = self.p[i, axis + 1] * nxt[tuple(src)]
            out.append(t)
        return out

    def _class_of(self) -> np.ndarray:
        return np.array([0] + self.seats, np.int8)

    def sample(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """(k, 52) int8: the holder class of every card in each of ``k`` draws (-1 = seen)."""
        d = len(self.seats)
        out = np.full((k, CARDS), -1, np.int8)
        state = np.tile(np.array(self.start, np.int64), (k, 1))
        cls = self._class_of()
        rows = np.arange(k)
        for i, card in enumerate(self.cards):
            nxt = self.w[i + 1]
            weights = np.empty((k, d + 1))
            weights[:, 0] = self.p[i, 0] * nxt[tuple(state.T)]
            for axis in range(d):
                moved = state.copy()
                moved[:, axis] -= 1
                ok = moved[:, axis] >= 0
                moved[~ok, axis] = 0
                weights[:, axis + 1] = np.where(ok, self.p[i, axis + 1] * nxt[tuple(moved.T)], 0.0)
            cum = np.cumsum(weights, axis=1)
            pick = (rng.random(k) * cum[:, -1] >= cum[:, :-1].T).sum(0) if d else np.zeros(k, np.int64)
            out[:, card] = cls[pick]
            take = pick > 0
            state[rows[take], pick[take] - 1] -= 1
        return out

    def marginals(self) -> np.ndarray:
        """(52, 8): the exact probability that each class holds each card under this sampler."""
        out = np.zeros((CARDS, CLASSES))
        d = len(self.seats)
        f = np.zeros(self.shape)
        f[self.start] = 1.0
        cls = self._class_of()
        for i, card in enumerate(self.cards):
            terms = self._terms(i)
            total = sum(terms)
            ratio = np.divide(f, total, out=np.zeros_like(f), where=total > 0)
            nf = np.zeros_like(f)
            for k, t in enumerate(terms):
                flow = ratio * t
                out[card, cls[k]] += flow.sum()
                if k == 0:
                    nf += flow
                else:
                    dst = [slice(None)] * d
                    src = [slice(None)] * d
                    dst[k - 1], src[k - 1] = slice(None, -1), slice(1, None)
                    nf[tuple(dst)] += flow[tuple(src)]
            f = nf
        return out


def world_from_holders(rnd: Round, viewer: int, holders: np.ndarray) -> Round:
    """``rnd`` with the other seats' hidden cards as ``holders`` says ((52,) class per card, as
    ``DealSampler.sample`` gives): the deal is rebuilt and the public history replayed in it, so
    a draw that could not have produced the record (a wrong hand size, a card in a suit its
    holder showed out of, a seen card given away) raises ValueError."""
    holders = np.asarray(holders)
    if holders.shape != (CARDS,):
        raise ValueError(f"holders must have shape (52,), got {holders.shape}")
    n = rnd.n_players
    seen = set(rnd.hand(viewer)) | set(rnd.played_cards)
    given = {int(c) for c in np.flatnonzero(holders >= 0)}
    if given & seen or (set(range(CARDS)) - seen) - given:
        raise ValueError("holders must name a class for exactly the cards the viewer cannot see")
    dealt = []
    for seat in range(n):
        cards = list(rnd.played_by(seat))
        if seat == viewer:
            cards += list(rnd.hand(viewer))
        else:
            cards += [int(c) for c in np.flatnonzero(holders == (seat - viewer) % n)]
        dealt.append(cards)
    world = Round.from_deal(dealt, rnd.trump, rnd.dealer)
    for _, action in rnd.history:
        world.apply(action)
    return world
