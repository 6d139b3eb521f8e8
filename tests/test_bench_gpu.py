"""`blobzero bench gpu` and `bench train`: everything they compute that does not need a GPU runs
here for real (the shared-evaluator self-play with real processes and shared memory, torch and
ONNX Runtime throughput on the CPU, accuracy checks, the trainer's step, ingest and memory)."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from blobzero.bench import gpu, train
from blobzero.bench.shared_evaluator import selfplay_rate


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the bench measures instead")
def test_bench_gpu_without_cuda_says_so_and_exits_0():
    result = subprocess.run([sys.executable, "-m", "blobzero.cli", "bench", "gpu", "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.strip().splitlines()              # exactly one JSON object
    out = json.loads(line)
    assert out["benchmark"] == "gpu" and out["cuda"] is False and "no CUDA device" in out["note"]
    assert out["onnxruntime_gpu_providers"] == gpu.gpu_providers()


def test_positions_are_real_encoded_states():
    states, masks = gpu.positions(64)
    assert states.shape == (64, 256) and masks.shape == (64, 52)
    assert (masks.sum(1) >= 1).all() and set(np.unique(masks)) <= {0.0, 1.0}
    tiled_states, _ = gpu.tiled(states, masks, 150)
    assert tiled_states.shape == (150, 256) and (tiled_states[64] == states[0]).all()


@pytest.mark.parametrize("precision, numpy_io", [("fp32", False), ("bf16", True)])
def test_torch_throughput_on_the_cpu(precision, numpy_io):
    from trainer.blobnet import ServingNet, build
    states, masks = gpu.positions(32)
    net = ServingNet(build("tiny", seed=0)).eval()
    assert gpu.torch_throughput(net, "cpu", 64, precision, False, numpy_io, states, masks, repeats=2) > 0
    with pytest.raises(ValueError, match="CUDA graphs"):
        gpu.torch_throughput(net, "cpu", 64, precision, True, numpy_io, states, masks)


def test_onnx_runtime_throughput_and_accuracy_check():
    from trainer.export import export_fresh
    states, masks = gpu.positions(128)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_fresh("tiny", Path(tmp) / "tiny.onnx", seed=0)
        cpu = gpu.ort_session(path, "CPUExecutionProvider")
        assert gpu.ort_throughput(cpu, 256, states, masks, repeats=2) > 0
        same = gpu.ort_accuracy(cpu, gpu.ort_session(path, "CPUExecutionProvider"), states, masks)
        assert same["within_limits"] and same["max_abs_diff_policy"] == 0.0
        # a "provider" that is off by more than the limits fails the check
        other = gpu.ort_session(export_fresh("tiny", Path(tmp) / "other.onnx", seed=1), "CPUExecutionProvider")
        assert not gpu.ort_accuracy(other, cpu, states, masks)["within_limits"]


def test_shared_evaluator_selfplay_with_real_processes():
    """Two search processes, one evaluator process (on the CPU here), shared memory between
    them: rounds finish, and the evaluator merges the clients' requests."""
    out = selfplay_rate(2, "tiny", "cpu", games=32, warmup_s=3, measure_s=6)
    assert out["processes"] == 2 and out["rounds_per_min"] > 0 and out["evaluations_per_s"] > 0
    assert 1 <= out["evaluator_batch_mean"] <= 64          # a request is <= 16 rows; merged: more
    assert 0 < out["evaluator_busy_fraction"] < 1


def test_bench_train_parts():
    records = train.make_records(8)
    window = train.filled_window(records, 5_000)
    assert len(window) == 5_000
    assert train.sampler_rate(window, 256, 0.2)["samples_per_cpu_s"] > 0
    step = train.train_rate(window, "tiny", "cpu", 32, steps=2, warmup=1)
    assert step["samples_per_s"] > 0 and step["device"] == "cpu (float32)"
    ingest = train.ingest_rate(records, shards=2, rounds_per_shard=4)
    assert ingest["rounds_per_s"] > 0 and ingest["bytes_per_round_on_disk"] > 50
    memory = train.window_memory(records)
    assert memory["bytes_per_position_all_views"] < 100 and memory["ten_million_positions_gb"] < 4


def test_bench_gpu_sizes_self_play_like_the_gpu_profile():
    from plumbing.config import load
    cfg = load(Path(__file__).resolve().parents[1] / "config" / "gpu.toml", env={})
    assert gpu.GAMES_IN_FLIGHT == cfg.selfplay.games_in_flight and gpu.PRESET == cfg.network.preset
