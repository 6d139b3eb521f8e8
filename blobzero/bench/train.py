"""``blobzero bench train``: how fast the trainer learns and ingests, and what its window costs.

* **training samples/s**: real optimiser steps (the trainer's own ``trainer.step``: compact
  window sample -> staging buffers -> forward/backward -> clip -> AdamW) for BlobNet ``full``
  (and ``small``) on the CPU, and on CUDA (bf16 autocast, pinned staging) where torch sees it.
* **sampler samples/s**: the compact window alone (replay + encode in C), the part of a step
  that stays on the CPU.
* **ingest**: shards/s, rounds/s and positions/s through the trainer's ingest path (read and
  gunzip the shard file, parse the records in C from the wire bytes, check every record by
  replaying it, pack, add to the window), from a local directory and from a bucket
  (``ingest_bucket``: S3 listing + GET; ``--bucket``, else a loopback S3 server).
  A GPU box making 265k rounds/min needs ~4,400 rounds/s.
* **window memory**: bytes per position of the compact window (at 3 and 4 players' views), what
  10 M positions take, against the old float32 rows.

Workload: Medium-search self-play records (uniform evaluator), 4 players, 5 cards, every
seat's view (``search.perspective = "searcher"``).
"""
from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_GPU_SAMPLES_PER_S = 100_000
TEN_MILLION = 10_000_000
#: bytes of one row in the old float32 window (states, masks, policy, value, seats, tricks)
OLD_ROW_BYTES = (256 + 52 + 52 + 8 + 8) * 4 + 8


def make_records(n_rounds: int, seed: int = 3, search=None) -> list:
    """``n_rounds`` self-play records of ``search`` (default: the product's, Medium size) on a
    uniform evaluator, as protobuf."""
    from blobzero.bench import search_config
    from plumbing.records import to_proto
    from selfplay_client.evaluator import UniformEvaluator
    from selfplay_client.runner import PooledSearch, round_specs
    runner = PooledSearch(UniformEvaluator(), search or search_config(preset="medium"),
                          itertools.islice(round_specs(seed), n_rounds), n_games=min(256, n_rounds))
    runner.run()
    return [to_proto(r, "bench", model_version=1) for r in runner.finished()]


def ingest_rate(records: list, shards: int, rounds_per_shard: int = 64) -> dict:
    """Write ``shards`` real shard files, then time the trainer's ingest of each."""
    from plumbing.shards import ShardReader, ShardWriter
    with tempfile.TemporaryDirectory() as tmp:
        writer = ShardWriter(tmp, "bench", rounds_per_shard)
        for rec in itertools.islice(itertools.cycle(records), shards * rounds_per_shard):
            writer.add(rec)
        writer.flush()
        reader = ShardReader(tmp)
        figures = _timed_ingest(reader, [s.path for s in reader.list()], rounds_per_shard)
        shard_bytes = sum(s.path.stat().st_size for s in reader.list())
    return {**figures, "bytes_per_round_on_disk": round(shard_bytes / (shards * rounds_per_shard), 1)}


def _timed_ingest(reader, paths: list, rounds_per_shard: int) -> dict:
    """Time the trainer's ingest of ``paths`` (bytes -> C parse -> check -> window)."""
    from trainer.compact_window import CompactWindow, pack_shard
    window = CompactWindow(2_000_000, views_min=3)
    rounds = positions = 0
    started, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        packed, bad, _ = pack_shard(reader.read_bytes(path), all_views=True)
        assert not bad, bad[:3]
        window.add(packed)
        rounds += packed.rounds
        positions += packed.positions
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"shards_per_s": round(len(paths) / seconds, 1), "rounds_per_s": round(rounds / seconds),
            "positions_per_s": round(positions / seconds),
            "rounds_per_cpu_s": round(rounds / cpu_seconds), "shards": len(paths),
            "rounds_per_shard": rounds_per_shard}


def ingest_rate_bucket(records: list, shards: int, rounds_per_shard: int = 64, url: str = "") -> dict:
    """``ingest_rate`` through object storage: shards uploaded as objects to ``url``
    (``s3://bucket/prefix``; endpoint and credentials from the AWS environment), then the
    trainer's bucket path timed: incremental listing (``ShardIndex``), GET, parse, pack.
    Without ``url`` a loopback S3 server (moto, in this process) stands in for the bucket, so
    the figure is the client's cost plus a local server's, not a network's."""
    import os

    from plumbing.shards import ShardReader, ShardWriter
    from plumbing.storage import open_store
    from trainer.shard_index import ShardIndex
    server, saved = None, {}
    if not url:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            return {"skipped": "no --bucket given and moto (the loopback S3 server) is not installed"}
        import logging
        import socket
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        open_store("s3://bench/x").client.create_bucket(Bucket="bench")
        url = "s3://bench/ingest"
    try:
        store = open_store(f"{url.rstrip('/')}/bench-{time.time_ns()}")
        writer = ShardWriter(store, "bench", rounds_per_shard)
        for rec in itertools.islice(itertools.cycle(records), shards * rounds_per_shard):
            writer.add(rec)
        writer.flush()
        reader = ShardReader(store)
        started, cpu = time.perf_counter(), time.process_time()
        listed = [shard.path(reader.root) for shard in ShardIndex(reader).scan()]
        figures = _timed_ingest(reader, listed, rounds_per_shard)
        listing_s, listing_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        for entry in store.list():
            store.delete(entry.key)
    finally:
        if server is not None:
            server.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    # the listing counts too: rates over listing + reading + parsing
    rounds = shards * rounds_per_shard
    figures.update(shards_per_s=round(shards / listing_s, 1), rounds_per_s=round(rounds / listing_s),
                   rounds_per_cpu_s=round(rounds / listing_cpu_s))
    figures.pop("positions_per_s")
    return {**figures,
            "bucket": "loopback S3 server (moto) in this process" if server is not None else url}


def filled_window(records: list, positions: int):
    from trainer.compact_window import CompactWindow, pack_records
    packed, _ = pack_records(records, all_views=True)
    window = CompactWindow(positions, views_min=3)
    while window.rows_total < positions:
        window.add(packed)
    return window


def sampler_rate(window, batch: int, seconds: float) -> dict:
    """Rows/s the window samples and encodes (per wall second and per CPU second)."""
    from trainer.examples import Examples
    rng = np.random.default_rng(0)
    out = Examples.empty(batch)
    n, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        window.sample(batch, rng, out=out)
        n += batch
    return {"samples_per_s": round(n / (time.perf_counter() - started)),
            "samples_per_cpu_s": round(n / (time.process_time() - cpu)), "batch": batch}


def train_rate(window, preset: str, device_setting: str, batch: int, steps: int,
               warmup: int = 3) -> dict:
    """Samples/s of ``steps`` real optimiser steps (after ``warmup``), each ending in a
    host sync (``.item()``, as the trainer's loss metrics do)."""
    import torch

    from trainer import step
    from trainer.blobnet import build
    from trainer.device import TrainDevice
    device = TrainDevice(torch, device_setting)
    net = build(preset, seed=0).to(device.device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        started, cpu = time.perf_counter(), time.process_time()
        batch_arrays = window.sample(batch, rng, out=device.buffers(batch))
        *_, total = step.forward(net, device, batch_arrays, 1.0, 1.0)
        step.apply(net, optimizer, total)
        total.item()
        if i >= warmup:
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu)
    per_step = statistics.median(times)
    return {"preset": preset, "device": device.describe(), "batch": batch,
            "samples_per_s": round(batch / per_step), "ms_per_step": round(per_step * 1e3, 2),
            "cpu_ms_per_step": round(statistics.median(cpu_times) * 1e3, 2),
            "torch_threads": torch.get_num_threads(),
            "steps": steps, "statistic": "median step"}


def window_memory(records: list) -> dict:
    from trainer.compact_window import CompactWindow
    filled = filled_window(records, 200_000)
    ten_m = CompactWindow(TEN_MILLION, views_min=3)
    return {"bytes_per_position_all_views": round(filled.bytes_per_position, 1),
            "bytes_per_position_mover_only": round(CompactWindow(TEN_MILLION).bytes_per_position, 1),
            "ten_million_positions_gb": round(ten_m.nbytes / 1e9, 3),
            "old_float32_bytes_per_position": OLD_ROW_BYTES,
            "old_ten_million_positions_gb": round(OLD_ROW_BYTES * TEN_MILLION / 1e9, 2)}


def run(args) -> dict:
    import torch
    quick = getattr(args, "quick", False)
    torch.set_num_threads(1)           # trainer.threads of the laptop profile (CPU figures)
    from blobzero.bench import search_config
    records = make_records(64 if quick else 256, search=search_config(args, preset="medium"))
    window = filled_window(records, 100_000 if quick else 500_000)
    result = {
        "window": window_memory(records),
        "sampler": sampler_rate(window, 1024, 0.5 if quick else 3.0),
        "ingest": ingest_rate(records, 8 if quick else 64),
        "ingest_bucket": ingest_rate_bucket(records, 8 if quick else 64,
                                            url=getattr(args, "bucket", "") or ""),
        "train_cpu": [train_rate(window, "full", "cpu", 256, 3 if quick else 15),
                      train_rate(window, "small", "cpu", 256, 3 if quick else 15)],
        "workload": "Medium-search records (uniform evaluator), 4 players, 5 cards, all views",
    }
    if torch.cuda.is_available():
        result["train_cuda"] = [train_rate(window, "full", "cuda", b, 10 if quick else 50)
                                for b in (1024, 4096, 16384)]
        best = max(r["samples_per_s"] for r in result["train_cuda"])
        result["target"] = {"gpu_full_samples_per_s": TARGET_GPU_SAMPLES_PER_S,
                            "met": best >= TARGET_GPU_SAMPLES_PER_S}
    else:
        result["train_cuda"] = None
        result["cuda"] = "not available: torch sees no CUDA device, CPU figures only"
    return result
