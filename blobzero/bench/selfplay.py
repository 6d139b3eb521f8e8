"""``blobzero bench selfplay``: end-to-end self-play through the real local Triton.

Medium search (3 x 30), 4 players, 5 cards, the full-size BlobNet (random weights: speed
does not depend on them), client and server on this machine. Reports rounds/min, leaf
evaluations/s, positions per request and where the time goes (client search vs waiting,
Triton queue and compute per request, Triton's average batch).
"""
from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

from blobcore.search_config import MEDIUM

TARGET_ROUNDS_PER_MIN = 300


def _counter(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in a Prometheus text page."""
    from prometheus_client.parser import text_string_to_metric_families
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, name + "_total"):  # the parser appends _total to counters
                total += sample.value
    return total


def run(args) -> dict:
    from selfplay_client.runner import PooledSearch, round_specs
    from selfplay_client.triton_evaluator import TritonEvaluator
    from plumbing.model_repository import publish_version
    from services.triton_local import LocalTriton, ServerConfig
    from trainer.export import export_fresh

    quick = getattr(args, "quick", False)
    preset = "tiny" if quick else "full"
    games = 512
    warmup_rounds = 64 if quick else 512
    rounds = 128 if quick else 1536
    with tempfile.TemporaryDirectory(prefix="bench-selfplay-") as tmp:
        tmp = Path(tmp)
        onnx = export_fresh(preset, tmp / "model.onnx", seed=0)
        publish_version(tmp / "repo", onnx)
        config = ServerConfig.with_free_ports(tmp / "repo", tmp / "triton", instances=2)
        with LocalTriton(config) as server, TritonEvaluator(server.url, max_in_flight=4) as evaluator:
            specs = round_specs(5, 4, 5)
            warm = PooledSearch(evaluator, MEDIUM, itertools.islice(specs, warmup_rounds), n_games=games)
            warm.run()
            before = server.metrics()
            search = PooledSearch(evaluator, MEDIUM, itertools.islice(specs, rounds), n_games=games)
            started = time.perf_counter()
            stats = search.run()
            wall = time.perf_counter() - started
            after = server.metrics()
    delta = {name: _counter(after, name) - _counter(before, name) for name in (
        "nv_inference_request_success", "nv_inference_count", "nv_inference_exec_count",
        "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
        "nv_inference_request_duration_us")}
    requests = max(delta["nv_inference_request_success"], 1)
    rounds_per_min = stats.rounds / wall * 60
    return {
        "rounds_per_min": round(rounds_per_min, 1),
        "leaf_evaluations_per_s": round(stats.positions / wall),
        "positions_per_request": round(stats.positions_per_batch, 1),
        "triton_average_batch": round(delta["nv_inference_count"] / max(delta["nv_inference_exec_count"], 1), 1),
        "time": {
            "wall_s": round(wall, 2),
            "client_search_s": round(stats.search_s, 2),
            "client_waiting_for_network_s": round(stats.wait_s, 2),
            "triton_queue_ms_per_request": round(delta["nv_inference_queue_duration_us"] / requests / 1e3, 2),
            "triton_compute_ms_per_request": round(delta["nv_inference_compute_infer_duration_us"] / requests / 1e3, 2),
            "triton_request_ms": round(delta["nv_inference_request_duration_us"] / requests / 1e3, 2),
        },
        "rounds": stats.rounds,
        "workload": f"Medium 3x30, 4 players, 5 cards, {preset} BlobNet, {games} rounds in flight, "
                    f"2 Triton instances x 1 ORT thread, 4 requests in flight",
        "target_rounds_per_min": TARGET_ROUNDS_PER_MIN,
        "meets_target": rounds_per_min >= TARGET_ROUNDS_PER_MIN if not quick else None,
    }
