"""``blobzero bench decision``: what one searched decision costs, per part of the search.

Medium search (3 x 30) at 4 x 5, every seat searching, uniform evaluator (so the figures are
the search's own CPU time, without the network), one variant after another in one process,
each the configured search (the one builder, evaluation variant) with parts swapped by name:

* ``plain``: determinized PUCT, network values only (the search before the strength work);
* ``playouts``: the default with a PUCT root and uniform beliefs: expert play-outs at the
  leaves in freshly sampled deals (lambda = 1);
* ``inference``: the default with a PUCT root: + hidden hands weighted by the bids;
* ``default``: the configured default search (+ the Gumbel root).

For each: CPU milliseconds per searched decision, network evaluations per round (what the
evaluator is asked; play-outs cost none) and decisions per round. ``docs/strength.md`` quotes
these beside the strength of each variant.
"""
from __future__ import annotations

import itertools
import statistics
import time

from blobcore.search_config import PLAIN_SETTINGS
from blobzero.bench import search_config
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs

#: Each variant: the parts swapped into the configured search, by name.
VARIANTS = {
    "plain": PLAIN_SETTINGS,
    "playouts": dict(root="puct", beliefs="uniform"),
    "inference": dict(root="puct"),
    "default": {},
}


def _measure(changes: dict, specs: list[tuple]) -> dict:
    config = search_config(None, for_evaluation=True, preset="medium", **changes)
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
