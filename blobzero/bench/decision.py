"""``blobzero bench decision``: what one searched decision costs, per part of the search.

Medium search (3 x 30) at 4 x 5, every seat searching, uniform evaluator (so the figures are
the search's own CPU time, without the network), one variant after another in one process:

* ``plain``: determinized PUCT, network values only (the search before the strength work);
* ``playouts``: + expert play-outs at the leaves in freshly sampled deals (lambda = 1);
* ``inference``: + hidden hands weighted by the bids (8 candidates);
* ``default``: + the Gumbel root — the configured default search.

For each: CPU milliseconds per searched decision, network evaluations per round (what the
evaluator is asked; play-outs cost none) and decisions per round. ``docs/strength.md`` quotes
these beside the strength of each variant.
"""
from __future__ import annotations

import dataclasses
import itertools
import statistics
import time

from blobcore.search_config import MEDIUM
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs

VARIANTS = {
    "plain": {},
    "playouts": dict(rollout="expert", rollout_weight=1.0),
    "inference": dict(rollout="expert", rollout_weight=1.0, inference_candidates=8,
                      inference_temperature=1.0),
    "default": dict(rollout="expert", rollout_weight=1.0, inference_candidates=8,
                    inference_temperature=1.0, root="gumbel"),
}


def _measure(changes: dict, specs: list[tuple]) -> dict:
    config = dataclasses.replace(MEDIUM, **changes).for_evaluation()
    search = PooledSearch(UniformEvaluator(), config, specs, n_games=64, halves=1)
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
    for name, changes in VARIANTS.items():
        runs = [_measure(changes, specs) for _ in range(repeats)]
        out["variants"][name] = {key: round(statistics.median(r[key] for r in runs), 3)
                                 for key in runs[0]}
    plain = out["variants"]["plain"]["cpu_ms_per_decision"]
    for v in out["variants"].values():
        v["cpu_vs_plain"] = round(v["cpu_ms_per_decision"] / plain, 2)
    return out
