"""``blobzero bench serving``: BlobNet through the local Triton vs in-process ONNX Runtime.

For 1, 64, 256 and 1024 positions per request it reports inferences/s (positions/s) and
per-request latency p50/p99 (ms) for both paths, and the Triton / in-process throughput ratio.
Both paths evaluate the same exported file (full-size BlobNet; ``--quick`` uses the tiny
preset and short rounds, as a smoke run). The two are measured in alternating short rounds;
throughput is the median round, and the ratio is the median of the per-pair ratios, so slow
drifts of background load on a shared machine hit both sides alike.

* in-process: ``OrtEvaluator`` (ORT's default threads = all cores), one call at a time.
* Triton: ``TritonEvaluator`` over gRPC against ``LocalTriton`` (python backend, one ORT thread
  per instance), ``in_flight`` requests kept outstanding, as a self-play worker would.
  Latency is submit-to-result under that load.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from plumbing.netspec import NUM_ACTIONS, STATE_DIM

SIZES = (1, 64, 256, 1024)
TARGET_MIN_SIZE, TARGET_RATIO = 256, 0.85  #: at >= 256 positions/request, Triton >= 85% of in-process


def random_batch(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Plausible inputs: 0/1 features and a mask with at least one legal action per row."""
    states = (rng.random((n, STATE_DIM)) < 0.2).astype(np.float32)
    masks = (rng.random((n, NUM_ACTIONS)) < 0.3).astype(np.float32)
    masks[:, 0] = 1.0
    return states, masks


def _summary(positions: int, seconds: float, latencies: list[float]) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {"inferences_per_s": round(positions / seconds, 1), "requests": len(latencies),
            "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def measure_in_process(evaluator, states, masks, seconds: float) -> tuple[int, float, list[float]]:
    latencies, start = [], time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        evaluator.evaluate(states, masks)
        latencies.append(time.perf_counter() - now)
    return len(latencies) * len(states), time.perf_counter() - start, latencies


def measure_triton(evaluator, states, masks, seconds: float, in_flight: int) -> tuple[int, float, list[float]]:
    latencies, pending, start = [], [], time.perf_counter()
    while time.perf_counter() - start < seconds or pending:
        while len(pending) < in_flight and time.perf_counter() - start < seconds:
            pending.append((time.perf_counter(), evaluator.submit(states, masks)))
        sent, future = pending.pop(0)
        future.result()
        latencies.append(time.perf_counter() - sent)
    return len(latencies) * len(states), time.perf_counter() - start, latencies


def _rates(rounds: list[tuple[int, float, list[float]]]) -> np.ndarray:
    return np.array([positions / seconds for positions, seconds, _ in rounds])


def _median_round(rounds: list[tuple[int, float, list[float]]]) -> dict:
    """Throughput of the median round; latency percentiles over every request of every round."""
    positions, seconds, _ = rounds[int(np.argsort(_rates(rounds))[len(rounds) // 2])]
    return _summary(positions, seconds, [lat for _, _, lats in rounds for lat in lats])


def run(args: argparse.Namespace) -> dict:
    from selfplay_client.evaluator import OrtEvaluator
    from selfplay_client.triton_evaluator import TritonEvaluator
    from plumbing.model_repository import publish_version
    from services.triton_local import LocalTriton, ServerConfig
    from trainer.export import export_fresh

    quick = bool(getattr(args, "quick", False))
    preset_name = "tiny" if quick else "full"
    rounds, round_s = (2, 0.15) if quick else (9, 0.6)
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        onnx_path = export_fresh(preset_name, Path(tmp) / "export" / "model.onnx", seed=0)
        repo = Path(tmp) / "models"
        publish_version(repo, onnx_path)
        config = ServerConfig.with_free_ports(repo, Path(tmp) / "triton")
        in_flight = 2 * config.instances
        local = OrtEvaluator(onnx_path)
        with LocalTriton(config) as server, TritonEvaluator(server.url, max_in_flight=in_flight) as remote:
            for size in SIZES:
                states, masks = random_batch(size, rng)
                local.evaluate(states, masks), remote.evaluate(states, masks)  # warm-up
                local_rounds, remote_rounds = [], []
                for _ in range(rounds):  # alternate so background load drifts hit both paths
                    local_rounds.append(measure_in_process(local, states, masks, round_s))
                    remote_rounds.append(measure_triton(remote, states, masks, round_s, in_flight))
                # ratio = median over adjacent (in-process, Triton) round pairs: a load spike on the
                # shared machine then skews one pair, not the comparison
                ratio = float(np.median(_rates(remote_rounds) / _rates(local_rounds)))
                results[str(size)] = {"triton": _median_round(remote_rounds),
                                      "in_process": _median_round(local_rounds), "ratio": round(ratio, 3)}
    return {
        "model": {"preset": preset_name, **_model_size(preset_name)},
        "positions_per_request": list(SIZES),
        "results": results,
        "setup": {"triton": f"tritonserver 2.51 (pytriton wheel), python backend blobnet_ort, "
                            f"{config.instances} instance(s) x {config.intra_op_threads} ORT thread, "
                            f"gRPC unary aio, {in_flight} requests in flight",
                  "in_process": f"onnxruntime {_ort_version()} CPU, default threads ({os.cpu_count()} cores), "
                                f"1 call at a time",
                  "rounds": rounds, "round_seconds": round_s},
        "target": {"min_positions_per_request": TARGET_MIN_SIZE, "min_ratio": TARGET_RATIO,
                   "met": all(r["ratio"] >= TARGET_RATIO for s, r in results.items() if int(s) >= TARGET_MIN_SIZE)},
    }


def _model_size(preset_name: str) -> dict:
    from trainer.blobnet import preset

    cfg = preset(preset_name)
    return {"parameters": cfg.parameters, "mflop_per_position": round(cfg.flops_per_position / 1e6, 3)}


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
