"""``blobzero bench search``: speed of the pooled determinized search.

* simulations/s per core: search only (collect/apply time), uniform evaluator, Medium
  search (3 x 30), 4 players, 5 cards, K = 256 rounds in flight, one pool, one thread.
* rounds/min of complete self-play with the uniform evaluator (double-buffered runner).
* leaves per batch.
* search overhead vs network: search time per leaf against in-process ONNX Runtime time per
  leaf for the full-size BlobNet at the batch size the pool produces (target < 5%).
"""
from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from blobcore.search_config import MEDIUM
from selfplay_client.evaluator import OrtEvaluator, UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs

TARGETS = {"simulations_per_s_per_core": 100_000, "search_overhead_vs_network": 0.05}


def _search_only(n_rounds: int, k: int) -> dict:
    search = PooledSearch(UniformEvaluator(), MEDIUM, itertools.islice(round_specs(1), n_rounds),
                          n_games=k, halves=1)
    stats = search.run()
    return {"simulations_per_s": stats.search["simulations"] / stats.search_s,
            "search_us_per_leaf": stats.search_s / stats.positions * 1e6,
            "positions_per_batch": stats.positions_per_batch}


def _selfplay_rounds_per_min(n_rounds: int, k: int) -> float:
    search = PooledSearch(UniformEvaluator(), MEDIUM, itertools.islice(round_specs(2), n_rounds),
                          n_games=k, halves=2)
    stats = search.run()
    return stats.rounds / stats.wall_s * 60


def _network_us_per_leaf(batch: int, repeats: int) -> dict:
    from trainer.export import export_fresh

    with tempfile.TemporaryDirectory() as tmp:
        path = export_fresh("full", Path(tmp) / "full.onnx", seed=0)
        evaluator = OrtEvaluator(path, intra_op_threads=1)
        rng = np.random.default_rng(0)
        states = rng.random((batch, 256), dtype=np.float32)
        masks = (rng.random((batch, 52)) < 0.2).astype(np.float32)
        masks[:, 0] = 1
        evaluator.evaluate(states, masks)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            evaluator.evaluate(states, masks)
            times.append(time.perf_counter() - t0)
    return {"batch": batch, "us_per_leaf": statistics.median(times) / batch * 1e6}


def run(args) -> dict:
    quick = getattr(args, "quick", False)
    k = 256
    n_rounds = 256 if quick else 2048
    repeats = 1 if quick else 3
    search = [_search_only(n_rounds, k) for _ in range(repeats)]
    sims = statistics.median(s["simulations_per_s"] for s in search)
    search_us = statistics.median(s["search_us_per_leaf"] for s in search)
    batch = statistics.median(s["positions_per_batch"] for s in search)
    rounds_min = statistics.median(_selfplay_rounds_per_min(n_rounds, k) for _ in range(repeats))
    net = _network_us_per_leaf(int(round(batch)), 5 if quick else 20)
    overhead = search_us / net["us_per_leaf"]
    return {
        "simulations_per_s_per_core": round(sims),
        "selfplay_rounds_per_min_uniform": round(rounds_min),
        "positions_per_batch": round(batch, 1),
        "search_us_per_leaf": round(search_us, 3),
        "network_us_per_leaf_full_ort_1thread": round(net["us_per_leaf"], 2),
        "search_overhead_vs_network": round(overhead, 4),
        "workload": "Medium 3x30, 4 players, 5 cards, K=256 rounds in flight, uniform evaluator",
        "rounds": n_rounds,
        "repeats": repeats,
        "statistic": "median",
        "targets": TARGETS,
        "meets_targets": sims >= TARGETS["simulations_per_s_per_core"]
        and overhead < TARGETS["search_overhead_vs_network"],
    }
