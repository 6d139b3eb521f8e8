"""``blobzero bench search``: speed of the pooled determinized search.

Per table (``--tables``, default 4x5, 3x17, 4x13, 6x8, 8x6), uniform evaluator, the product's
search at Medium size (3 x 30; ``--search plain`` for the plain search), K = 256 rounds in
flight:

* simulations/s per core: search only (collect/apply time), one pool, one thread;
* rounds/min of complete self-play (double-buffered runner) and leaf evaluations per round;
* leaves per batch.

For the first table also the search overhead vs network: search time per leaf against
in-process ONNX Runtime time per leaf for the full-size BlobNet at the batch size the pool
produces (target < 5%).
"""
from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from selfplay_client.evaluator import OrtEvaluator, UniformEvaluator
from blobzero.bench import rounds_for, search_config, tables
from selfplay_client.runner import PooledSearch, round_specs

TARGETS = {"simulations_per_s_per_core": 100_000, "search_overhead_vs_network": 0.05}


def _search_only(specs: list[tuple], k: int, config) -> dict:
    search = PooledSearch(UniformEvaluator(), config, specs, n_games=k, halves=1)
    stats = search.run()
    return {"simulations_per_s": stats.search["simulations"] / stats.search_s,
            "search_us_per_leaf": stats.search_s / stats.positions * 1e6,
            "positions_per_batch": stats.positions_per_batch}


def _selfplay(specs: list[tuple], k: int, config) -> dict:
    search = PooledSearch(UniformEvaluator(), config, specs, n_games=k, halves=2)
    stats = search.run()
    return {"rounds_per_min": stats.rounds / stats.wall_s * 60,
            "evaluations_per_round": stats.positions / stats.rounds,
            "decisions_per_round": stats.search["decisions"] / stats.rounds}


def _table(n_players: int, cards: int, base_rounds: int, k: int, repeats: int, config) -> dict:
    """Median figures of ``repeats`` runs on one table."""
    n_rounds = rounds_for(n_players, cards, base_rounds)
    specs = list(itertools.islice(round_specs(1, n_players, cards), n_rounds))
    search = [_search_only(specs, k, config) for _ in range(repeats)]
    play = [_selfplay(specs, k, config) for _ in range(repeats)]
    return {
        "table": f"{n_players}x{cards}",
        "simulations_per_s_per_core": round(statistics.median(s["simulations_per_s"] for s in search)),
        "search_us_per_leaf": round(statistics.median(s["search_us_per_leaf"] for s in search), 3),
        "positions_per_batch": round(statistics.median(s["positions_per_batch"] for s in search), 1),
        "selfplay_rounds_per_min_uniform": round(statistics.median(p["rounds_per_min"] for p in play)),
        "evaluations_per_round": round(statistics.median(p["evaluations_per_round"] for p in play), 1),
        "decisions_per_round": round(statistics.median(p["decisions_per_round"] for p in play), 1),
        "rounds": n_rounds,
    }


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
    base_rounds = 256 if quick else 2048
    repeats = 1 if quick else 3
    config = search_config(args, preset="medium")
    per_table = [_table(n, c, base_rounds, k, repeats, config) for n, c in tables(args)]
    first = per_table[0]
    net = _network_us_per_leaf(int(round(first["positions_per_batch"])), 5 if quick else 20)
    overhead = first["search_us_per_leaf"] / net["us_per_leaf"]
    return {
        "simulations_per_s_per_core": first["simulations_per_s_per_core"],
        "selfplay_rounds_per_min_uniform": first["selfplay_rounds_per_min_uniform"],
        "positions_per_batch": first["positions_per_batch"],
        "search_us_per_leaf": first["search_us_per_leaf"],
        "network_us_per_leaf_full_ort_1thread": round(net["us_per_leaf"], 2),
        "search_overhead_vs_network": round(overhead, 4),
        "tables": per_table,
        "search": getattr(args, "search", None) or "default",
        "workload": f"{config.describe()}, K={k} rounds in flight, uniform evaluator; headline "
                    f"figures and the network overhead for {first['table']}",
        "repeats": repeats,
        "statistic": "median",
        "targets": TARGETS,
        "meets_targets": first["simulations_per_s_per_core"] >= TARGETS["simulations_per_s_per_core"]
        and overhead < TARGETS["search_overhead_vs_network"],
    }
