"""What the side models (the belief model, the world-value model) share: a ReLU MLP trunk,
Adam with a cosine learning rate over shuffled minibatches, and a checkpoint of config, weights
and metadata. BlobNet has its own trainer (trainer/service.py); these models are small and
trained in one go from arrays."""
from __future__ import annotations

import math
from dataclasses import asdict, fields
from typing import Callable

import numpy as np
import torch
from torch import nn


class ArrayTable:
    """Mixin for a dataclass of equal-length arrays, one row per example (its first field sets
    the length), kept as one compressed ``.npz`` file."""

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))

    def save(self, path) -> None:
        np.savez_compressed(path, **asdict(self))

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})


def trunk(width: int, hidden: int, depth: int) -> tuple[nn.Sequential, int]:
    """``depth`` Linear+ReLU layers of ``hidden`` units from ``width`` inputs; (layers, out width)."""
    if hidden < 1 or depth < 1:
        raise ValueError(f"hidden and depth must be >= 1, got hidden={hidden}, depth={depth}")
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers), width


def fit(net: nn.Module, n: int, batch_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
        epochs: int, batch: int, lr: float, weight_decay: float, seed: int,
        valid: Callable[[], dict] | None = None, log=None, loss_name: str = "loss") -> list[dict]:
    """Adam with a cosine schedule over ``epochs`` passes of ``n`` examples in shuffled batches;
    ``batch_loss(indices, generator)`` is one batch's mean loss. Returns one dict per epoch:
    ``train_<loss_name>`` and whatever ``valid()`` adds."""
    if n == 0:
        raise ValueError("no training examples")
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * math.ceil(n / batch)))
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            loss = batch_loss(idx, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        row = {"epoch": epoch + 1, f"train_{loss_name}": round(total / count, 5)}
        if valid is not None:
            row.update(valid())
        history.append(row)
        if log is not None:
            log(row)
    return history


def save(net: nn.Module, path, meta: dict | None = None) -> None:
    """``net.config`` (a dataclass), its weights and ``meta`` in one torch file."""
    torch.save({"config": asdict(net.config), "state": net.state_dict(), "meta": meta or {}}, path)


def load(path, make: Callable[[dict], nn.Module]) -> tuple[nn.Module, dict]:
    """The model ``save`` wrote, built by ``make(config dict)``, in eval mode; and its meta."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    net = make(blob["config"])
    net.load_state_dict(blob["state"])
    net.eval()
    return net, blob["meta"]
