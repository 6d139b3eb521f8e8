"""The world-value model: what a whole deal is worth to every seat.

The search plays in sampled worlds: each determinization and each play-out world is one
complete deal consistent with what the searcher knows. ``search.rollout = "world"``
(blobcore/search/leaf_world.pyx) values a new leaf by asking this model about the leaf's world
instead of playing it out with a built-in player: one batched network call where a play-out is
20-odd moves on the CPU, and an expectation where a play-out is one noisy sample.

Input:  the whole-deal encoding (``blobcore.encode.encode_world_of``, 620 floats): the mover's
        observation (docs/observation.md) then the hands of relative seats 1..7.
Output: (B, 8) every relative seat's expected normalised round score (score / (10 + C), in
        [0, 1]; seat 0 = the mover, as BlobNet's value head), a sigmoid per seat; seats not at
        the table are 0 in the targets and ignored by the loss.
Targets: the round's final normalised scores, from the records' true deals (every position of
        a finished round is a labelled world: the players' own continuation is one play-out of
        that deal). ``WorldData`` keeps what rebuilds them.

Served in process by ONNX Runtime (``selfplay_client.world_values.WorldEvaluator``) or by Triton as the
model ``blobworld`` (``export_onnx``; docs/search.md, "World values").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from blobcore.encode import OBS_SIZE, WORLD_SIZE
from blobcore.rules import Round
from plumbing.netspec import WORLD, WORLD_DIM, WORLD_VALUE
from trainer import mlp

SEATS = 8
#: the tensors' names in the ONNX graph and in Triton's model config (plumbing/netspec.py)
INPUT, OUTPUT = WORLD, WORLD_VALUE


@dataclass(frozen=True)
class WorldNetConfig:
    """hidden: width of each hidden layer; depth: hidden layers (ReLU MLP)."""
    hidden: int = 256
    depth: int = 2


class WorldNet(nn.Module):
    """world (B, 620) -> (B, 8) expected normalised scores by relative seat."""

    def __init__(self, config: WorldNetConfig = WorldNetConfig()):
        super().__init__()
        self.config = config
        self.trunk, width = mlp.trunk(WORLD_SIZE, config.hidden, config.depth)
        self.head = nn.Linear(width, SEATS)

    def forward(self, world: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (world.dim() != 2 or world.shape[1] != WORLD_SIZE):
            raise ValueError(f"world must have shape (B, {WORLD_SIZE}), got {tuple(world.shape)}")
        return torch.sigmoid(self.head(self.trunk(world)))


def seats_at_table(world: torch.Tensor) -> torch.Tensor:
    """(B, 8) 1.0 for the relative seats at the table (the observation's ``seats`` slot)."""
    return world[:, 212:220]


def world_loss(pred: torch.Tensor, target: torch.Tensor, seats: torch.Tensor) -> torch.Tensor:
    """Mean squared error per seat at the table."""
    return (((pred - target) ** 2) * seats).sum() / seats.sum().clamp(min=1)


# -- data ------------------------------------------------------------------------------------------

@dataclass
class WorldData(mlp.ArrayTable):
    """Labelled worlds. world (P, 620) float32; target (P, 8) float32 (final normalised scores
    by relative seat from the mover); trick (P,) int8 (0 = bidding); round (P,) int32 index of
    the record they came from."""
    world: np.ndarray
    target: np.ndarray
    trick: np.ndarray
    round: np.ndarray


def worlds_from_records(records: list[dict]) -> WorldData:
    """Every position of every record (``PooledSearch`` record dicts with the true deal) as a
    whole deal seen from its mover, labelled with the round's final scores."""
    from blobcore.encode import encode_world_of
    if not records:
        raise ValueError("no records")
    worlds, targets, tricks, rounds = [], [], [], []
    for ri, rec in enumerate(records):
        if rec.get("start_ply", 0) != 0:
            raise ValueError("only rounds recorded from the deal are supported")
        rnd = Round.from_deal(rec["hands"], rec["trump"], rec["dealer"])
        movers, start = [], len(worlds)
        for action in rec["actions"]:
            movers.append(rnd.current_player)
            worlds.append(encode_world_of(rnd))
            tricks.append(0 if rnd.phase == 0 else rnd.tricks_done + 1)
            rounds.append(ri)
            rnd.apply(int(action))
        if not rnd.is_terminal:
            raise ValueError(f"record {ri} (seed {rec.get('seed')}) does not finish its round")
        final = np.asarray(rnd.normalised_scores(), np.float32)
        n = len(final)
        for mover in movers:
            t = np.zeros(SEATS, np.float32)
            t[:n] = np.roll(final, -mover)
            targets.append(t)
        assert len(targets) == len(worlds) == start + len(movers)
    return WorldData(np.array(worlds, np.float32), np.array(targets, np.float32),
                     np.array(tricks, np.int8), np.array(rounds, np.int32))


def explored_worlds(n_rounds: int, seed: int, n_players: int = 4, cards: int = 5,
                    epsilon: float = 0.1, tail: int = 3, player: str = "expert") -> WorldData:
    """Labelled worlds with the search's leaves in mind. A search's leaves end in a few moves
    that ``player`` would not make (every legal action is tried at the root and near it), so
    labels from ``player``'s own games alone leave those histories unseen (a bid it never
    makes is worth whatever the model guesses). Per round (seeds ``seed, seed + 1, ...``): a
    ply k is drawn uniformly; before it ``player`` plays with probability 1 - ``epsilon`` and a
    uniformly random legal action otherwise, the last d plies before k (d uniform in
    0..``tail``) always random; from k on ``player`` plays every seat to the end, exactly what a
    play-out from the leaf does, and positions k.. are labelled with the final scores."""
    import random

    from blobcore.encode import encode_world_of
    from blobcore.players import builtin_player
    act = builtin_player(player)
    rng = random.Random(seed)
    worlds, targets, tricks, rounds = [], [], [], []
    plies = n_players + n_players * cards
    for ri in range(n_rounds):
        rnd = Round.from_seed(seed + ri, n_players, cards)
        k = rng.randrange(plies)
        d = rng.randint(0, tail)
        movers = []
        for ply in range(plies):
            legal = rnd.legal_actions()
            if ply < k and (ply >= k - d or rng.random() < epsilon):
                action = rng.choice(legal)
            else:
                action = act(rnd, rng)
            if ply >= k:
                movers.append(rnd.current_player)
                worlds.append(encode_world_of(rnd))
                tricks.append(0 if rnd.phase == 0 else rnd.tricks_done + 1)
                rounds.append(ri)
            rnd.apply(action)
        final = np.asarray(rnd.normalised_scores(), np.float32)
        for mover in movers:
            t = np.zeros(SEATS, np.float32)
            t[:n_players] = np.roll(final, -mover)
            targets.append(t)
    return WorldData(np.array(worlds, np.float32), np.array(targets, np.float32),
                     np.array(tricks, np.int8), np.array(rounds, np.int32))


# -- training --------------------------------------------------------------------------------------

def train(data: WorldData, config: WorldNetConfig = WorldNetConfig(), epochs: int = 5,
          batch: int = 512, lr: float = 2e-3, weight_decay: float = 1e-5, seed: int = 0,
          valid: WorldData | None = None, log=None) -> tuple[WorldNet, list[dict]]:
    """Train a WorldNet by Adam with a cosine learning rate; returns it and one dict per epoch
    (train loss, and the validation loss when ``valid`` is given)."""
    if len(data) == 0:
        raise ValueError("no training positions")
    torch.manual_seed(seed)
    net = WorldNet(config)
    world = torch.from_numpy(np.asarray(data.world, np.float32))
    target = torch.from_numpy(np.asarray(data.target, np.float32))

    def batch_loss(idx, gen):
        x = world[idx]
        return world_loss(net(x), target[idx], seats_at_table(x))

    history = mlp.fit(net, len(data), batch_loss, epochs, batch, lr, weight_decay, seed,
                      valid=None if valid is None else lambda: {"valid_mse": round(evaluate_mse(net, valid), 5)},
                      log=log, loss_name="mse")
    return net, history


def predict(net: WorldNet, world: np.ndarray, batch: int = 8192) -> np.ndarray:
    """(P, 8) float32 predictions for ``world`` (P, 620)."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(world), batch):
            out.append(net(torch.from_numpy(np.asarray(world[i:i + batch], np.float32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, SEATS), np.float32)


def evaluate_mse(net: WorldNet, data: WorldData) -> float:
    """Mean squared error per seat at the table over ``data``."""
    pred = predict(net, data.world)
    seats = data.world[:, 212:220]
    return float((((pred - data.target) ** 2) * seats).sum() / max(seats.sum(), 1))


def save_model(net: WorldNet, path, meta: dict | None = None) -> None:
    mlp.save(net, path, meta)


def load_model(path) -> tuple[WorldNet, dict]:
    return mlp.load(path, lambda config: WorldNet(WorldNetConfig(**config)))


def export_onnx(net: WorldNet, path) -> None:
    """The model as ONNX with a dynamic batch: input ``world`` (B, 620) float32, output
    ``world_value`` (B, 8) float32 — what ONNX Runtime and Triton's ``blobworld`` serve."""
    net.eval()
    dummy = torch.zeros(2, WORLD_SIZE)
    torch.onnx.export(net, (dummy,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                      dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=17,
                      dynamo=False)


assert OBS_SIZE == 256 and WORLD_SIZE == OBS_SIZE + 7 * 52 == WORLD_DIM
