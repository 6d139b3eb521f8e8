"""The world-value model inside the loop: trained beside BlobNet, published with it.

The trainer (trainer/service.py) feeds every self-play shard it reads to ``add_shard``: the
rounds' labelled leaf worlds (trainer/leaf_worlds.py) go into a window of the newest
``trainer.world_window``. After each BlobNet step one world step is taken (Adam, batch
``trainer.world_batch_size``, mean squared error per seat at the table: trainer/world_model.py)
while the worlds have been trained on fewer than ``trainer.world_sample_reuse`` times on average
(each label is one noisy play-out, a model that sees it too often memorises it: an 8-minute
run's 119 k worlds stored without their play-outs, trained on ~16 times each, ended with a
held-out error above the mean's; with the play-out's ~14 positions a world, 16 is measured best
of 1–16 on 310 k worlds, held-out 0.1248 at 1, 0.1092 at 4, 0.0965 at 16),
and each published BlobNet version N comes with blobworld version N, the world model as it
stood then — so "version N" names both networks, and the arena, the strength tracker and
``make run``'s report can seat any version with its own world value (``[worlds] model =
"version"``). The untrained version 1 has an untrained world model: what training added
includes what the world value learned.

Metrics: ``blobzero_trainer_loss{kind="world"}`` (the training loss, the mean of the last
``LOSS_WINDOW`` steps), ``blobzero_trainer_loss{kind="world_new"}`` (the loss on each shard's
worlds *before* it trains on them: a held-out figure, since every shard is new to the model;
the mean of the last ``LOSS_WINDOW`` shards) — both also in each version's manifest as
``world_loss`` and ``world_new_loss`` — and ``blobzero_trainer_world_window_worlds``.
"""
from __future__ import annotations

import logging
from collections import deque

import numpy as np

from trainer.leaf_worlds import LeafWorldWindow, from_records

log = logging.getLogger("blobzero.train")
LOSS_WINDOW = 200           # world steps (or shards) the reported losses average over
HELD_OUT = 1024             # of each new shard's worlds, those the held-out loss is measured on
WARNINGS = 3                # bad leaf worlds named per shard


class WorldTrainer:
    """The world-value model, its optimiser and its window of labelled worlds."""

    def __init__(self, section, torch, device, seed: int = 0):
        from trainer.world_model import WorldNet, WorldNetConfig
        self.t = section
        self.torch = torch
        self.device = device
        torch.manual_seed(seed + 1)
        self.config = WorldNetConfig(hidden=section.world_hidden, depth=section.world_depth)
        self.net = WorldNet(self.config).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=section.world_learning_rate)
        self.window = LeafWorldWindow(section.world_window)
        self.rng = np.random.default_rng(seed + 1)
        self.losses: deque[float] = deque(maxlen=LOSS_WINDOW)
        self.new_losses: deque[float] = deque(maxlen=LOSS_WINDOW)
        self.steps = 0
        self.worlds_seen = 0
        self.samples_trained = 0

    # -- data ------------------------------------------------------------------------------
    def add_shard(self, blob: bytes, name: str, new: bool = True) -> int:
        """Add the labelled leaf worlds of one shard's records (``blob``: its bytes as stored);
        a bad world costs that world, a shard that does not decode costs nothing here (the
        trainer's own read says why). ``new`` = False: a shard read again after a restart
        (back in the window; not counted as new worlds, not a held-out figure). Returns the
        worlds added."""
        from plumbing.shards import CorruptShard, decode_shard
        try:
            records = decode_shard(blob)
        except CorruptShard:
            return 0
        worlds, bad = from_records(records, games=self.t.world_games)
        if bad:
            more = f"; {len(bad) - WARNINGS} more" if len(bad) > WARNINGS else ""
            log.warning("skipped leaf worlds of %s (%s%s)", name, "; ".join(bad[:WARNINGS]), more)
        if new and len(worlds) and self.steps:
            self._held_out(worlds)
        self.window.add(worlds)
        if new:
            self.worlds_seen += len(worlds)
        return len(worlds)

    def _held_out(self, worlds) -> None:
        """The model's loss on worlds it has not trained on (up to ``HELD_OUT`` of them)."""
        from trainer.world_model import seats_at_table, world_loss
        rows = np.arange(min(len(worlds), HELD_OUT))
        x, y, ok = worlds.encode(rows)
        torch = self.torch
        self.net.eval()
        with torch.no_grad():
            x = torch.from_numpy(x[ok]).to(self.device)
            loss = float(world_loss(self.net(x), torch.from_numpy(y[ok]).to(self.device), seats_at_table(x)))
        if np.isfinite(loss):
            self.new_losses.append(loss)

    # -- learning --------------------------------------------------------------------------
    def step(self) -> float | None:
        """One optimiser step on a batch from the window; its loss, or None when there is
        nothing to learn from yet, every world has been trained on ``world_sample_reuse`` times
        on average (until new ones come), or the loss is not finite (no update then)."""
        from trainer.world_model import seats_at_table, world_loss
        if len(self.window) == 0 or self.samples_trained >= self.t.world_sample_reuse * self.worlds_seen:
            return None
        worlds, target = self.window.sample(self.t.world_batch_size, self.rng)
        if len(worlds) == 0:
            return None
        torch = self.torch
        x = torch.from_numpy(worlds).to(self.device)
        y = torch.from_numpy(target).to(self.device)
        self.net.train()
        loss = world_loss(self.net(x), y, seats_at_table(x))
        if not torch.isfinite(loss):
            return None
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        self.samples_trained += len(worlds)
        value = float(loss.detach())
        self.losses.append(value)
        return value

    @property
    def loss(self) -> float | None:
        """Mean loss of the last ``LOSS_WINDOW`` steps (None before the first)."""
        return float(np.mean(self.losses)) if self.losses else None

    @property
    def new_loss(self) -> float | None:
        """Mean held-out loss on the last ``LOSS_WINDOW`` new shards (None before any)."""
        return float(np.mean(self.new_losses)) if self.new_losses else None

    def finite(self) -> bool:
        return all(bool(self.torch.isfinite(p).all()) for p in self.net.state_dict().values()
                   if p.is_floating_point())

    # -- publishing ------------------------------------------------------------------------
    def export(self, path) -> None:
        """The model as ONNX at ``path`` (on the CPU; a copy when it trains on CUDA)."""
        import copy

        from trainer.world_model import export_onnx
        net = self.net if str(self.device) == "cpu" else copy.deepcopy(self.net).to("cpu")
        export_onnx(net, path)

    # -- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "config": {"hidden": self.config.hidden, "depth": self.config.depth},
                "steps": self.steps, "worlds_seen": self.worlds_seen,
                "samples_trained": self.samples_trained,
                "rng": self.rng.bit_generator.state}

    def load(self, state: dict | None, where: str) -> None:
        """Resume from a checkpoint's ``state()`` (None: a checkpoint from before the world
        value, which starts fresh). A model of another size is refused, naming the keys."""
        if state is None:
            log.info("%s holds no world-value model: it starts untrained", where)
            return
        saved = state.get("config", {})
        if saved != {"hidden": self.config.hidden, "depth": self.config.depth}:
            raise SystemExit(f"blobzero train: checkpoint {where} holds a world-value model of "
                             f"{saved.get('depth')} x {saved.get('hidden')} but trainer.world_depth "
                             f"x trainer.world_hidden is {self.config.depth} x {self.config.hidden}")
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state.get("steps", 0))
        self.worlds_seen = int(state.get("worlds_seen", 0))
        self.samples_trained = int(state.get("samples_trained", 0))
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
