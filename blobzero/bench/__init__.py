"""``blobzero bench <name>``: each benchmark prints exactly one JSON object on stdout.

A benchmark is a module in this package (or elsewhere) exposing
``add_arguments(parser)`` (optional) and ``run(args) -> dict``. ``bench all`` runs
every registered benchmark in order and prints one JSON object per line.
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import os
import time

from blobcore.search_config import NAMED_SEARCHES

#: benchmark name -> module path
BENCHMARKS: dict[str, str] = {
    "core": "blobzero.bench.core",
    "search": "blobzero.bench.search",
    "decision": "blobzero.bench.decision",
    "selfplay": "blobzero.bench.selfplay",
    "serving": "blobzero.bench.serving",
    "agent": "blobzero.bench.agent",
    "priority": "blobzero.bench.priority",
    "train": "blobzero.bench.train",
    "gpu": "blobzero.bench.gpu",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=[*BENCHMARKS, "all"], help="benchmark to run")
    parser.add_argument("--quick", action="store_true", help="smaller workload (smoke run)")
    parser.add_argument("--tables", metavar="NxC,...",
                        help="tables for bench search/selfplay, players x cards per seat "
                             f"(default: {','.join(f'{n}x{c}' for n, c in DEFAULT_TABLES)})")
    parser.add_argument("--search", choices=sorted(NAMED_SEARCHES), default="default",
                        help="the search bench search/selfplay/train/gpu measure: the product's "
                             "(the config's [search], default) or another by name")
    parser.add_argument("--bucket", metavar="s3://BUCKET/PREFIX", default="",
                        help="bench train: measure ingest from this bucket (AWS_* environment; "
                             "default: a loopback S3 server)")


#: The tables ``bench search`` and ``bench selfplay`` measure: the default training table first,
#: then the largest deal for 3, 4, 6 and 8 players.
DEFAULT_TABLES: tuple[tuple[int, int], ...] = ((4, 5), (3, 17), (4, 13), (6, 8), (8, 6))


def tables(args) -> list[tuple[int, int]]:
    """The ``--tables`` option as (players, cards) pairs; raises SystemExit(2) naming a bad one."""
    text = getattr(args, "tables", None)
    if not text:
        return list(DEFAULT_TABLES)
    out = []
    for item in text.split(","):
        n, sep, c = item.strip().lower().partition("x")
        if not (sep and n.isdigit() and c.isdigit() and 3 <= int(n) <= 8
                and 1 <= int(c) <= 52 // int(n)):
            raise SystemExit(f"blobzero bench: bad table {item!r}: use NxC with 3..8 players and "
                             f"1..52//N cards, e.g. 4x5,3x17")
        out.append((int(n), int(c)))
    return out


def search_config(args=None, for_evaluation: bool = False, **settings):
    """The search a benchmark measures, built by the config's one builder: the configured
    ``[search]`` (defaults, or $BLOBZERO_CONFIG) with the named search's settings
    (``--search``, default "default": the product's) and then ``settings`` over it."""
    from plumbing.config import load
    named = NAMED_SEARCHES[getattr(args, "search", None) or "default"]
    return load().search.build(for_evaluation=for_evaluation, **{**named, **settings})


def rounds_for(n_players: int, cards: int, base: int) -> int:
    """Rounds of an n x c table that take about as long as ``base`` rounds of 4 x 5: scaled by
    the actions per round (bids + cards), at least 32."""
    return max(32, round(base * 24 / (n_players + n_players * cards)))


def machine_info() -> dict:
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def run_one(name: str, args: argparse.Namespace) -> dict:
    module = importlib.import_module(BENCHMARKS[name])
    started = time.time()
    result = module.run(args)
    return {"benchmark": name, **result, "machine": machine_info(),
            "wall_seconds": round(time.time() - started, 2)}


def main(args: argparse.Namespace) -> int:
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        print(json.dumps(run_one(name, args)), flush=True)
    return 0
