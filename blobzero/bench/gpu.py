"""``blobzero bench gpu``: sizing a GPU box (docs/deploy.md, "How many self-play replicas per GPU").

On a machine where torch sees CUDA it measures, for the ``full`` BlobNet:

* **network throughput** per batch size and precision in torch: float32 eager, bf16 autocast
  eager, bf16 with a CUDA graph; device-resident inputs, and with numpy in/out (what a serving
  process pays to copy each batch in and the results out);
* **ONNX Runtime** throughput with each GPU provider it has (CUDA; TensorRT FP16 when present),
  plus the accuracy of each provider against float32 on the CPU on real encoded positions — the
  check the TensorRT FP16 switch (``triton.accelerator``) needs (docs/serving.md);
* **trainer** samples/s (the trainer's own step, bf16, pinned staging; ``bench train``);
* **self-play** rounds/min with N search processes sharing one evaluator process on the GPU
  (``shared_evaluator``: the shape Triton's dynamic batcher gives), for several N.

Without CUDA it says so in its JSON (``"cuda": false``) and exits 0.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

PRESET = "full"
GAMES_IN_FLIGHT = 2048          # per self-play process, as in config/gpu.toml
BATCHES = (256, 1024, 4096, 16384, 65536)
#: Accuracy a lower-precision provider must keep against float32 to be served (max abs diff).
ACCURACY_LIMITS = {"policy": 0.02, "value": 0.02}


def positions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real encoded positions (states (n,256), masks (n,52)) from random play, 3-8 players."""
    import random

    from blobcore import Round, encode
    rng = random.Random(seed)
    states = np.empty((n, 256), np.float32)
    masks = np.empty((n, 52), np.float32)
    for i in range(n):
        players = rng.randint(3, 8)
        rnd = Round.from_seed(rng.getrandbits(63), players, rng.randint(1, 52 // players))
        for _ in range(rng.randrange(players + players * rnd.cards - 1)):
            rnd.apply(rng.choice(rnd.legal_actions()))
        states[i], masks[i] = encode(rnd)
    return states, masks


def tiled(states: np.ndarray, masks: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    reps = -(-batch // len(states))
    return (np.ascontiguousarray(np.tile(states, (reps, 1))[:batch]),
            np.ascontiguousarray(np.tile(masks, (reps, 1))[:batch]))


def _rate(fn, batch: int, repeats: int, sync) -> float:
    """Evaluations/s of ``fn`` (median of ``repeats`` timed calls after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def torch_throughput(net, device: str, batch: int, precision: str, graph: bool, numpy_io: bool,
                     states: np.ndarray, masks: np.ndarray, repeats: int = 10) -> float:
    """Evaluations/s of ``ServingNet`` ``net`` on ``device`` at ``batch`` rows.

    precision: "fp32" or "bf16" (autocast); graph: replay a captured CUDA graph (CUDA only);
    numpy_io: inputs copied from numpy and outputs back to numpy on every call."""
    import torch
    cuda = device == "cuda"
    s_host, m_host = (torch.from_numpy(a) for a in tiled(states, masks, batch))
    if cuda:                                                   # CUDA only
        s_host, m_host = s_host.pin_memory(), m_host.pin_memory()
    s_dev, m_dev = s_host.to(device), m_host.to(device)
    # no autocast weight cache under graph capture (the cast must be part of the graph)
    autocast = torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16,
                              enabled=precision == "bf16", cache_enabled=not graph)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def forward():
        with torch.no_grad(), autocast:
            return net(s_dev, m_dev)

    if graph:
        if not cuda:
            raise ValueError("CUDA graphs need device cuda")
        stream = torch.cuda.Stream()                           # CUDA only: capture once, replay
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                forward()
        torch.cuda.current_stream().wait_stream(stream)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph):
            static_out = forward()
        run = cuda_graph.replay
    else:
        static_out = None
        run = forward

    def call():
        if numpy_io:
            s_dev.copy_(s_host, non_blocking=True)
            m_dev.copy_(m_host, non_blocking=True)
        out = run()
        out = static_out if out is None else out
        if numpy_io:
            return out[0].float().cpu().numpy(), out[1].float().cpu().numpy()
        return out

    return _rate(call, batch, repeats, sync)


def ort_session(onnx_path: Path, provider: str):
    import onnxruntime as ort
    options = {"TensorrtExecutionProvider": {"trt_fp16_enable": True},
               "CUDAExecutionProvider": {}}.get(provider)
    providers = [(provider, options)] if options is not None else [provider]
    if provider != "CPUExecutionProvider":
        providers.append("CPUExecutionProvider")
    return ort.InferenceSession(str(onnx_path), providers=providers)


def ort_throughput(session, batch: int, states: np.ndarray, masks: np.ndarray, repeats: int = 10) -> float:
    from plumbing.netspec import MASK, POLICY, STATE, VALUE
    feeds = dict(zip((STATE, MASK), tiled(states, masks, batch)))
    return _rate(lambda: session.run([POLICY, VALUE], feeds), batch, repeats, lambda: None)


def ort_accuracy(session, reference, states: np.ndarray, masks: np.ndarray) -> dict:
    """Max abs difference of ``session``'s outputs from ``reference``'s (float32, CPU) on the
    given positions, and whether it is within ACCURACY_LIMITS."""
    from plumbing.netspec import MASK, POLICY, STATE, VALUE
    feeds = {STATE: states, MASK: masks}
    got = session.run([POLICY, VALUE], feeds)
    want = reference.run([POLICY, VALUE], feeds)
    diff = {name: float(np.abs(g - w).max()) for name, g, w in zip(("policy", "value"), got, want)}
    return {**{f"max_abs_diff_{k}": round(v, 6) for k, v in diff.items()},
            "within_limits": all(diff[k] <= ACCURACY_LIMITS[k] for k in diff), "limits": ACCURACY_LIMITS}


def gpu_providers() -> list[str]:
    import onnxruntime as ort
    return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
            if p in ort.get_available_providers()]


def onnx_section(states, masks, batches, repeats: int) -> dict:
    """ONNX Runtime on each GPU provider present: throughput and accuracy vs the CPU."""
    from trainer.export import export_fresh
    providers = gpu_providers()
    if not providers:
        import onnxruntime as ort
        return {"providers": [], "note": f"onnxruntime {ort.__version__} has no GPU provider here "
                                         "(the onnxruntime-gpu wheel has them; Triton's image does)"}
    out = {"providers": providers}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_fresh(PRESET, Path(tmp) / "full.onnx", seed=0)
        reference = ort_session(path, "CPUExecutionProvider")
        for provider in providers:
            session = ort_session(path, provider)
            out[provider] = {"evaluations_per_s": {b: round(ort_throughput(session, b, states, masks, repeats))
                                                   for b in batches},
                             "accuracy_vs_cpu_fp32": ort_accuracy(session, reference, states[:2048],
                                                                  masks[:2048])}
    return out


def network_section(states, masks, batches, repeats: int) -> dict:
    import torch

    from trainer.blobnet import ServingNet, build
    net = ServingNet(build(PRESET, seed=0)).to("cuda").eval()
    variants = {"fp32_eager": ("fp32", False), "bf16_eager": ("bf16", False), "bf16_cuda_graph": ("bf16", True)}
    out = {}
    for name, (precision, graph) in variants.items():
        for numpy_io in (False, True):
            key = name + ("_numpy_io" if numpy_io else "")
            rates = {}
            for b in batches:
                try:
                    rates[b] = round(torch_throughput(net, "cuda", b, precision, graph, numpy_io,
                                                      states, masks, repeats))
                except torch.cuda.OutOfMemoryError:
                    rates[b] = None
                    torch.cuda.empty_cache()
            out[key] = rates
    return out


def run(args) -> dict:
    import torch
    quick = getattr(args, "quick", False)
    result = {"cuda": torch.cuda.is_available(), "preset": PRESET}
    if not result["cuda"]:
        result["note"] = ("torch sees no CUDA device: nothing measured. Run this on the GPU box "
                          "(docs/deploy.md, 'How many self-play replicas per GPU').")
        result["onnxruntime_gpu_providers"] = gpu_providers()
        return result
    from blobzero.bench.shared_evaluator import selfplay_rate
    from blobzero.bench.train import filled_window, make_records, train_rate
    result["device"] = torch.cuda.get_device_name(0)
    batches = BATCHES[:3] if quick else BATCHES
    repeats = 3 if quick else 10
    states, masks = positions(512 if quick else 4096)
    result["network_evaluations_per_s"] = network_section(states, masks, batches, repeats)
    result["onnxruntime"] = onnx_section(states, masks, batches, repeats)
    from blobzero.bench import search_config
    search = search_config(args, preset="medium")
    result["search"] = search.describe()
    records = make_records(64 if quick else 256, search=search)
    window = filled_window(records, 100_000 if quick else 1_000_000)
    result["trainer"] = [train_rate(window, PRESET, "cuda", b, 5 if quick else 30) for b in (4096, 16384)]
    cores = os.cpu_count() or 2
    counts = [1, 2] if quick else sorted({n for n in (1, 2, 4, 8, 12, 16, cores - 2) if 1 <= n <= cores - 1})
    # 2,048 rounds in flight per process, as config/gpu.toml: ~1,024 positions per request
    result["selfplay_shared_gpu_evaluator"] = [
        selfplay_rate(n, PRESET, "cuda", games=512 if quick else GAMES_IN_FLIGHT,
                      warmup_s=5 if quick else 20, measure_s=10 if quick else 30, search=search)
        for n in counts]
    best = max(result["selfplay_shared_gpu_evaluator"], key=lambda r: r["rounds_per_min"])
    result["recommended_selfplay_replicas"] = best["processes"]
    return result
