"""``blobzero bench selfplay``: end-to-end self-play through the real local Triton.

The product's search at Medium size (3 x 30; ``--search plain`` for the plain search), the
full-size BlobNet (random weights: speed does not depend on
them), client and server on this machine, one server for every table (``--tables``, default
4x5, 3x17, 4x13, 6x8, 8x6). Reports for the first table rounds/min, leaf evaluations/s,
positions per request and where the time goes (client search vs waiting, Triton queue and
compute per request, Triton's average batch); for every table rounds/min and leaf
evaluations per round.
"""
from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

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


def _measure(server, evaluator, n_players: int, cards: int, rounds: int, games: int, config) -> dict:
    from selfplay_client.runner import PooledSearch, round_specs

    specs = itertools.islice(round_specs(5, n_players, cards), rounds)
    search = PooledSearch(evaluator, config, specs, n_games=games)
    before = server.metrics()
    started = time.perf_counter()
    stats = search.run()
    wall = time.perf_counter() - started
    after = server.metrics()
    delta = {name: _counter(after, name) - _counter(before, name) for name in (
        "nv_inference_request_success", "nv_inference_count", "nv_inference_exec_count",
        "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
        "nv_inference_request_duration_us")}
    return {"stats": stats, "wall": wall, "delta": delta}


def run(args) -> dict:
    from blobzero.bench import rounds_for, search_config, tables
    from selfplay_client.triton_evaluator import TritonEvaluator
    from plumbing.model_repository import publish_version
    from services.triton_local import LocalTriton, ServerConfig
    from trainer.export import export_fresh

    quick = getattr(args, "quick", False)
    preset = "tiny" if quick else "full"
    games = 512
    warmup_rounds = 64 if quick else 512
    rounds = 128 if quick else 1536
    table_list = tables(args)
    search = search_config(args, preset="medium")
    with tempfile.TemporaryDirectory(prefix="bench-selfplay-") as tmp:
        tmp = Path(tmp)
        onnx = export_fresh(preset, tmp / "model.onnx", seed=0)
        publish_version(tmp / "repo", onnx)
        config = ServerConfig.with_free_ports(tmp / "repo", tmp / "triton", instances=2)
        with LocalTriton(config) as server, TritonEvaluator(server.url, max_in_flight=4) as evaluator:
            _measure(server, evaluator, *table_list[0], warmup_rounds, games, search)
            runs = [(n, c, _measure(server, evaluator, n, c, rounds_for(n, c, rounds), games, search))
                    for n, c in table_list]
    per_table = [{"table": f"{n}x{c}", "rounds_per_min": round(m["stats"].rounds / m["wall"] * 60, 1),
                  "evaluations_per_round": round(m["stats"].positions / m["stats"].rounds, 1),
                  "leaf_evaluations_per_s": round(m["stats"].positions / m["wall"]),
                  "positions_per_request": round(m["stats"].positions_per_batch, 1),
                  "rounds": m["stats"].rounds} for n, c, m in runs]
    n, c, first = runs[0]
    stats, wall, delta = first["stats"], first["wall"], first["delta"]
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
        "tables": per_table,
        "search": getattr(args, "search", None) or "default",
        "workload": f"{search.describe()}, {preset} BlobNet, {games} rounds in flight, 2 Triton instances "
                    f"x 1 ORT thread, 4 requests in flight; headline figures for {n}x{c}",
        "target_rounds_per_min": TARGET_ROUNDS_PER_MIN,
        "meets_target": rounds_per_min >= TARGET_ROUNDS_PER_MIN if not quick else None,
    }
