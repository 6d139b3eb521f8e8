"""``blobzero bench decision``: what one searched decision costs, per part of the search.

Medium search (3 x 30) at 4 x 5, every seat searching, uniform evaluator (so the figures are
the search's own CPU time, without the network), one variant after another in one process,
each the configured search (the one builder, evaluation variant) with parts swapped by name:

* ``plain``: determinized PUCT, network values only (the search before the strength work);
* ``playouts``: the default with a PUCT root and uniform beliefs: expert play-outs at the
  leaves in freshly sampled deals (lambda = 1);
* ``inference``: the default with a PUCT root: + hidden hands weighted by the bids;
* ``default``: the configured default search (+ the Gumbel root);
* ``world``: the default with a world-value model's value at the leaves instead of play-outs
  (``rollout = "world"``);
* ``blend``: the default with each play-out blended half and half with the world value of a
  second deal (``world_share = 0.5``).

The last two ask a world-value model of the configured size (``trainer.world_hidden`` x
``trainer.world_depth``, untrained: its cost does not depend on its weights) in this process,
on one ONNX Runtime thread: their figures include what a CPU pays for the model, which a GPU
box's Triton takes off the search's cores.

For each: CPU milliseconds per searched decision, network evaluations per round (what the
evaluator is asked; play-outs cost none) and decisions per round. ``docs/strength.md`` quotes
these beside the strength of each variant.
"""
from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

from blobcore.search_config import PLAIN_SETTINGS
from blobzero.bench import search_config
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs
from selfplay_client.world_values import WorldEvaluator

#: Each variant: the parts swapped into the configured search, by name.
VARIANTS = {
    "plain": PLAIN_SETTINGS,
    "playouts": dict(root="puct", beliefs="uniform"),
    "inference": dict(root="puct"),
    "default": {},
    "world": dict(rollout="world"),
    "blend": dict(world_share=0.5),
}


def _world_model(where: Path) -> Path:
    """An untrained world-value model of the configured size, as ONNX in ``where``."""
    import torch

    from plumbing.config import load
    from trainer.world_model import WorldNet, WorldNetConfig, export_onnx
    t = load().trainer
    torch.manual_seed(0)
    export_onnx(WorldNet(WorldNetConfig(hidden=t.world_hidden, depth=t.world_depth)), where / "world.onnx")
    return where / "world.onnx"


def _measure(changes: dict, specs: list[tuple], world_model: Path) -> dict:
    config = search_config(None, for_evaluation=True, preset="medium", **changes)
    evaluator = UniformEvaluator()
    if config.uses_world_values:
        evaluator = WorldEvaluator(evaluator, world_model, threads=1)
    search = PooledSearch(evaluator, config, specs, n_games=64, halves=1)
    started = time.process_time()
    stats = search.run()
    cpu = time.process_time() - started
    decisions = stats.search["decisions"]
    return {"cpu_ms_per_decision": cpu / decisions * 1e3,
            "evaluations_per_round": stats.positions / stats.rounds,
            "decisions_per_round": decisions / stats.rounds}


def run(args) -> dict:
    n_rounds = 40 if args.quick else 200
    repeats = 1 if args.quick else 3
    specs = list(itertools.islice(round_specs(1, 4, 5), n_rounds))
    out = {"table": "4x5", "search": "3x30", "rounds": n_rounds, "repeats": repeats, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        world_model = _world_model(Path(tmp))
        for name, changes in VARIANTS.items():
            runs = [_measure(changes, specs, world_model) for _ in range(repeats)]
            out["variants"][name] = {key: round(statistics.median(r[key] for r in runs), 3)
                                     for key in runs[0]}
    plain = out["variants"]["plain"]["cpu_ms_per_decision"]
    for v in out["variants"].values():
        v["cpu_vs_plain"] = round(v["cpu_ms_per_decision"] / plain, 2)
    return out
