"""``blobzero bench priority``: does the agent's inference starve self-play on a shared Triton?

One real local tritonserver (the model config every deployment serves: two priority levels,
requests without one at the higher) and two loads on it, in two processes as in a deployment:

* **self-play**: batches of ``SELFPLAY_BATCH`` positions, ``2 x instances`` in flight, back to
  back (what a self-play client sends; no priority, so the model's default level 1);
* **agent**: ``AGENT_IN_FLIGHT`` concurrent batches of ``AGENT_BATCH`` positions (many concurrent
  Advise searches, each step one small batch), at the priority ``agent.triton_priority`` gives:
  ``equal`` (level 1, first come first served with self-play) or ``low`` (level 2, the default).

Three conditions, measured in alternating short rounds so drifts of background load on a shared
machine hit each alike: self-play alone, with the agent at equal priority, with the agent at low
priority. Per condition: self-play positions/s (median round) and its share of running alone (the
median over rounds of the ratio to the same round's self-play alone), the agent's positions/s,
and per-request latency p50/p99 of both.
"""
from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from blobzero.bench.serving import measure_triton, random_batch

SELFPLAY_BATCH = 256          #: positions per self-play request (the local preferred batch)
AGENT_BATCH, AGENT_IN_FLIGHT = 32, 16
CONDITIONS = ("alone", "agent_equal", "agent_low")


def _agent_load(url: str, conn) -> None:
    """Child process: on ("run", priority, seconds) keep AGENT_IN_FLIGHT requests of AGENT_BATCH
    positions in flight at that Triton priority, answer (positions, seconds, latencies)."""
    from selfplay_client.triton_evaluator import TritonEvaluator

    states, masks = random_batch(AGENT_BATCH, np.random.default_rng(1))
    evaluators: dict[int, TritonEvaluator] = {}
    try:
        while (command := conn.recv())[0] == "run":
            _, priority, seconds = command
            if priority not in evaluators:
                evaluators[priority] = TritonEvaluator(url, max_in_flight=AGENT_IN_FLIGHT, priority=priority)
                evaluators[priority].evaluate(states, masks)            # warm: channel, contract check
            conn.send("started")
            conn.send(measure_triton(evaluators[priority], states, masks, seconds, AGENT_IN_FLIGHT))
    finally:
        for evaluator in evaluators.values():
            evaluator.close()


def _latency(latencies: list[float]) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def run(args) -> dict:
    from plumbing.config import load
    from plumbing.model_repository import publish_version
    from plumbing.triton_config import agent_priority
    from services.triton_local import LocalTriton, ServerConfig
    from selfplay_client.triton_evaluator import TritonEvaluator
    from trainer.export import export_fresh

    quick = bool(getattr(args, "quick", False))
    network = "tiny" if quick else load().network.preset
    rounds, round_s = (2, 1.0) if quick else (6, 3.0)
    priorities = {"agent_equal": agent_priority("equal"), "agent_low": agent_priority("low")}
    states, masks = random_batch(SELFPLAY_BATCH, np.random.default_rng(0))
    samples: dict[str, list] = {c: [] for c in CONDITIONS}
    agent_samples: dict[str, list] = {c: [] for c in priorities}
    with tempfile.TemporaryDirectory(prefix="bench-priority-") as tmp:
        repo = Path(tmp) / "models"
        publish_version(repo, export_fresh(network, Path(tmp) / "export" / "model.onnx", seed=0))
        config = ServerConfig.with_free_ports(repo, Path(tmp) / "triton")
        in_flight = 2 * config.instances
        context = multiprocessing.get_context("spawn")
        with LocalTriton(config) as server, TritonEvaluator(server.url, max_in_flight=in_flight) as selfplay:
            parent, child = context.Pipe()
            agent = context.Process(target=_agent_load, args=(server.url, child), daemon=True)
            agent.start()
            try:
                selfplay.evaluate(states, masks)                                       # warm-up
                for _ in range(rounds):
                    for condition in CONDITIONS:
                        if condition in priorities:
                            parent.send(("run", priorities[condition], round_s))
                            if parent.recv() != "started":
                                raise RuntimeError("the agent load did not start")
                        samples[condition].append(measure_triton(selfplay, states, masks, round_s, in_flight))
                        if condition in priorities:
                            agent_samples[condition].append(parent.recv())
                parent.send(("stop",))
            finally:
                agent.join(30)
                if agent.is_alive():
                    agent.terminate()
    return _report(samples, agent_samples, network, config, in_flight, rounds, round_s, quick)


def _rate(sample) -> float:
    positions, seconds, _ = sample
    return positions / seconds


def _report(samples, agent_samples, network, config, in_flight, rounds, round_s, quick) -> dict:
    alone = np.array([_rate(s) for s in samples["alone"]])
    results = {}
    for condition in CONDITIONS:
        rates = np.array([_rate(s) for s in samples[condition]])
        # the share: median over rounds of this condition's rate / self-play alone's in the same
        # round, so a load spike on the shared machine skews one round, not the comparison
        row = {"selfplay_positions_per_s": round(float(np.median(rates))),
               "selfplay_share_of_alone": round(float(np.median(rates / alone)), 3),
               "selfplay": _latency([lat for _, _, lats in samples[condition] for lat in lats])}
        if condition in agent_samples:
            row["agent_positions_per_s"] = round(float(np.median([_rate(s) for s in agent_samples[condition]])))
            row["agent"] = _latency([lat for _, _, lats in agent_samples[condition] for lat in lats])
        results[condition] = row
    return {
        "results": results,
        "loads": {"selfplay": f"{SELFPLAY_BATCH} positions a request, {in_flight} in flight, no priority "
                              f"(the model's default level 1)",
                  "agent": f"{AGENT_BATCH} positions a request, {AGENT_IN_FLIGHT} in flight, another "
                           f"process; agent_equal: level 1, agent_low: level 2 (agent.triton_priority)"},
        "server": f"tritonserver 2.51 (pytriton wheel), python backend blobnet_ort, {config.instances} "
                  f"instance(s) x {config.intra_op_threads} ORT thread, dynamic batching with two "
                  f"priority levels; network: freshly initialised '{network}' BlobNet",
        "rounds": rounds, "round_seconds": round_s, "statistic": "median round; share: median of per-round ratios; latency over all requests",
        "quick": quick,
    }
