"""Prometheus metrics of the self-play client (names are a contract with monitoring/)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from plumbing.metrics_http import serve

ERROR_KINDS = ("unavailable", "timeout", "nonfinite", "storage")


class SelfplayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rounds = Counter("blobzero_selfplay_rounds", "Rounds played to the end", registry=r)
        self.decisions = Counter("blobzero_selfplay_decisions", "Searched decisions", registry=r)
        self.leaf_evaluations = Counter("blobzero_selfplay_leaf_evaluations",
                                        "Positions sent to the network", registry=r)
        self.requests = Counter("blobzero_selfplay_requests", "Inference requests answered", registry=r)
        self.positions_per_request = Histogram(
            "blobzero_selfplay_positions_per_request", "Positions in one inference request",
            buckets=(1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096), registry=r)
        self.latency = Histogram(
            "blobzero_selfplay_inference_latency_seconds", "Inference request latency (s)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r)
        self.model_version = Gauge("blobzero_selfplay_model_version",
                                   "Model version that answered the latest request", registry=r)
        self.errors = Counter("blobzero_selfplay_errors", "Errors by kind", ["kind"], registry=r)
        self.shards = Counter("blobzero_selfplay_shards_written", "Game shards written", registry=r)
        # unavailable: Triton down, restarting or its model unhealthy (retried); timeout: no answer
        # in time (retried); nonfinite: an answer with NaN/inf (refused, retried); storage: a
        # shard could not be written
        for kind in ERROR_KINDS:
            self.errors.labels(kind)

    def serve(self, host: str, port: int):
        """Expose /metrics on host:port (port 0 = off)."""
        return serve(self.registry, host, port, "metrics.selfplay_port")
