"""``blobzero bench agent``: the agent service under 1, 16 and 256 concurrent gRPC clients.

A real ``blobzero agent`` process (its network: a freshly initialised BlobNet exported to ONNX,
in-process ONNX Runtime, one thread; ``--quick``: the tiny preset) is called by C client threads,
each sending ``Advise`` requests back to back on positions of 4-player, 5-card rounds (bids and
plays, one seat's knowledge only). Per (clients, search preset): p50/p99 latency per request (ms,
client side), requests/s, and from the server's own metrics the positions per network batch and
the batches per search step (1.0: every step sent one batch for all clients in flight).
"""
from __future__ import annotations

import concurrent.futures
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

CLIENTS = (1, 16, 256)
PRESETS = ("light", "medium")


def positions(n: int, seed: int = 0) -> list:
    """``n`` AdviseRequests: random legal play from random deals, each seen by its mover."""
    import random

    from blobcore.rules import Round, card_name
    from blobzero import agent_pb2 as pb

    rng = random.Random(seed)
    out = []
    while len(out) < n:
        rnd = Round.from_seed(rng.randrange(1 << 30), 4, 5)
        for _ in range(rng.randrange(24)):
            rnd.apply(rng.choice(rnd.legal_actions()))
        if rnd.is_terminal or len(rnd.legal_actions()) < 2:
            continue
        seat = rnd.current_player
        history = [pb.Action(seat=s, bid=a) if i < 4 else pb.Action(seat=s, card=card_name(a))
                   for i, (s, a) in enumerate(rnd.history)]
        out.append(pb.AdviseRequest(players=4, cards=5, dealer=rnd.dealer, trump="none" if rnd.trump is None
                                    else "SHCD"[rnd.trump], seat=seat, hand=[card_name(c) for c in rnd.hand(seat)],
                                    history=history, seed=len(out)))
    return out


def _server_counters(text: str) -> dict[str, float]:
    wanted = {"blobzero_agent_batch_size_count", "blobzero_agent_batch_size_sum",
              "blobzero_agent_search_steps_total"}
    out = dict.fromkeys(wanted, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                out[sample.name] += sample.value
    return out


def measure(agent, stub, requests: list, clients: int, preset: str, per_client: int) -> dict:
    """``clients`` threads, each sending ``per_client`` requests back to back."""
    for r in requests:
        r.search = preset
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(k: int) -> None:
        mine = []
        barrier.wait()
        for i in range(per_client):
            request = requests[(k * per_client + i) % len(requests)]
            t0 = time.perf_counter()
            stub.Advise(request, timeout=600)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    before = _server_counters(agent.metrics())
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    after = _server_counters(agent.metrics())
    delta = {k: after[k] - before[k] for k in after}
    ms = np.asarray(latencies) * 1e3
    batches = delta["blobzero_agent_batch_size_count"]
    return {"clients": clients, "search": preset, "requests": len(latencies),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "requests_per_s": round(len(latencies) / wall, 1),
            "positions_per_batch": round(delta["blobzero_agent_batch_size_sum"] / batches, 1) if batches else 0.0,
            "batches_per_step": round(batches / delta["blobzero_agent_search_steps_total"], 3)
            if delta["blobzero_agent_search_steps_total"] else 0.0}


def run(args) -> dict:
    import grpc

    from blobzero import agent_pb2_grpc as pb_grpc
    from blobzero.agent.process import start_agent
    from trainer.export import export_fresh

    quick = getattr(args, "quick", False)
    network = "tiny" if quick else "small"
    per_client = {1: 8, 16: 3, 256: 1} if quick else {1: 40, 16: 12, 256: 3}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        onnx = export_fresh(network, Path(tmp) / f"{network}.onnx", seed=0)
        agent = start_agent(Path(tmp) / "agent", "--onnx", str(onnx),
                            "--set", f"storage.model_repository={Path(tmp) / 'none'}")
        try:
            requests = positions(256 * 3)
            with grpc.insecure_channel(agent.target) as channel:
                stub = pb_grpc.BlobAgentStub(channel)
                for preset in PRESETS:                      # warm-up: ORT session, the pools
                    measure(agent, stub, requests[:8], 4, preset, 2)
                for preset in PRESETS:
                    for clients in CLIENTS:
                        results.append(measure(agent, stub, requests, clients, preset, per_client[clients]))
        finally:
            agent.stop()
    return {
        "results": results,
        "workload": "Advise on positions of 4-player 5-card rounds (bids and plays); each client "
                    "sends its next request when the previous one is answered",
        "server": f"blobzero agent, one process; network: freshly initialised '{network}' BlobNet, "
                  "ONNX Runtime in process, 1 thread (agent.ort_threads)",
        "clients_and_server": "same machine",
        "quick": quick,
    }
