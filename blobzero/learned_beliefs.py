"""Learned beliefs in a search (``search.beliefs = "learned"``): the belief model in process
(``BeliefModel``), ``BeliefEvaluator``, which answers it beside another evaluator's policy and
value, and ``configured_belief_model``, the one place ``beliefs.model`` is read. The model and
its training are trainer/belief_model.py; the offline study is ``blobzero beliefs``."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def configured_belief_model(cfg) -> Path | None:
    """The belief model file the config names (``beliefs.model``) when its search draws hidden
    hands from learned beliefs (``search.beliefs = "learned"``); else None."""
    if cfg.search.beliefs != "learned":
        return None
    path = Path(cfg.beliefs.model)
    if not path.is_file():
        raise FileNotFoundError(f"no belief model at {path} (beliefs.model; make one with "
                                f"`blobzero beliefs all`)")
    return path


class BeliefModel:
    """A BeliefNet in process (torch, CPU, ``threads``): ``beliefs(states)`` answers the belief
    output (n, 52, 8) for observations (n, 256)."""

    def __init__(self, model_path, threads: int = 1):
        import torch
        from trainer.belief_model import load_model
        torch.set_num_threads(threads)
        self.path = Path(model_path)
        self.net, self.meta = load_model(self.path)

    def beliefs(self, states) -> np.ndarray:
        from trainer.belief_model import predict
        return predict(self.net, np.asarray(states, np.float32))


class BeliefEvaluator:
    """An evaluator that also answers the belief output (``SearchPool.apply``'s ``beliefs``,
    (n, 52, 8)) from a BeliefNet, beside ``inner``'s policy and value — what
    ``search.beliefs = "learned"`` needs. In process, on the CPU (``BeliefModel``)."""

    def __init__(self, inner, model_path, threads: int = 1):
        self.inner = inner
        self.model = model_path if isinstance(model_path, BeliefModel) else BeliefModel(model_path, threads)

    def evaluate(self, states, masks):
        policy, value = self.inner.evaluate(states, masks)[:2]
        return policy, value, self.model.beliefs(states)
