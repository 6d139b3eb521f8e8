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

#: benchmark name -> module path
BENCHMARKS: dict[str, str] = {
    "core": "blobzero.bench.core",
    "search": "blobzero.bench.search",
    "selfplay": "blobzero.bench.selfplay",
    "serving": "blobzero.bench.serving",
    "train": "blobzero.bench.train",
    "gpu": "blobzero.bench.gpu",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=[*BENCHMARKS, "all"], help="benchmark to run")
    parser.add_argument("--quick", action="store_true", help="smaller workload (smoke run)")


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
