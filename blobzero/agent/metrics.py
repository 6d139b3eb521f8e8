"""Prometheus metrics of ``blobzero agent`` (names are a contract with monitoring/metric_names.txt).

Served on their own port (``metrics.agent_port``) only: the web port faces users, the metrics
port faces Prometheus (docs/agent.md, "Running it in public").
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from plumbing.metrics_http import serve

#: gRPC status codes the agent answers with (pre-created so dashboards see zeros)
CODES = ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE", "INTERNAL", "UNAUTHENTICATED",
         "RESOURCE_EXHAUSTED")
METHODS = ("Advise", "StartGame", "Act", "GetState", "Hint")


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("blobzero_agent_requests", "Requests answered, by method and status code",
                                ["method", "code"], registry=r)
        self.errors = Counter("blobzero_agent_errors", "Requests answered with an error, by method and code",
                              ["method", "code"], registry=r)
        self.latency = Histogram(
            "blobzero_agent_request_latency_seconds", "Time from request to answer (s), by method",
            ["method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.batch_size = Histogram(
            "blobzero_agent_batch_size", "Positions in one network batch (all concurrent searches)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096), registry=r)
        self.inference_latency = Histogram(
            "blobzero_agent_inference_latency_seconds", "Time the network took for one batch (s)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.steps = Counter("blobzero_agent_search_steps", "Search steps (collect, evaluate, apply)",
                             registry=r)
        self.games = Gauge("blobzero_agent_hosted_games", "Hosted games held in memory", registry=r)
        for method in METHODS:
            self.latency.labels(method)
            for code in CODES:
                self.requests.labels(method, code)
                if code != "OK":
                    self.errors.labels(method, code)

    def observe_batch(self, positions: int, seconds: float) -> None:
        self.batch_size.observe(positions)
        self.inference_latency.observe(seconds)

    def answered(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        if code != "OK":
            self.errors.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)

    def serve(self, host: str, port: int):
        return serve(self.registry, host, port, "metrics.agent_port")
