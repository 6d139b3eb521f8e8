"""Prometheus metrics of the trainer (names are a contract with monitoring/)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from plumbing.metrics_http import serve


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.steps = Counter("blobzero_trainer_steps", "Optimiser steps", registry=r)
        self.loss = Gauge("blobzero_trainer_loss", "Latest training loss by kind", ["kind"], registry=r)
        self.positions = Counter("blobzero_trainer_positions",
                                 "Positions ingested from game shards", registry=r)
        self.window = Gauge("blobzero_trainer_window_positions", "Positions in the sampling window",
                            registry=r)
        self.data_lag = Gauge("blobzero_trainer_data_lag_seconds",
                              "Age of the newest game shard ingested when it was ingested (s)",
                              registry=r)
        self.published_version = Gauge("blobzero_trainer_published_version",
                                       "Newest model version published", registry=r)
        self.last_publish = Gauge("blobzero_trainer_last_publish_timestamp_seconds",
                                  "Unix time of the latest publish", registry=r)
        for kind in ("policy", "value", "total"):
            self.loss.labels(kind)

    def serve(self, host: str, port: int):
        """Expose /metrics on host:port (port 0 = off)."""
        return serve(self.registry, host, port)
