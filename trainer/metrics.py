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
        self.learning_rate = Gauge("blobzero_trainer_learning_rate",
                                   "Learning rate of the latest optimiser step (trainer.learning_rate "
                                   "on its schedule: trainer.learning_rate_half_life)", registry=r)
        self.positions = Counter("blobzero_trainer_positions",
                                 "Positions ingested from game shards", registry=r)
        self.window = Gauge("blobzero_trainer_window_positions", "Positions in the sampling window",
                            registry=r)
        self.world_window = Gauge("blobzero_trainer_world_window_worlds",
                                  "Labelled leaf worlds in the world-value model's window "
                                  "(trainer.world_value; selfplay.leaf_worlds a round)", registry=r)
        self.human_window = Gauge("blobzero_trainer_human_window_positions",
                                  "Human-game positions in their sampling window (trainer.human_share "
                                  "> 0; 0 otherwise or while there are none)", registry=r)
        self.data_lag = Gauge("blobzero_trainer_data_lag_seconds",
                              "Age of the newest game shard on disk, ingested or not (s; since "
                              "start while there is none); updated every scan, so it grows as "
                              "soon as self-play stops writing",
                              registry=r)
        self.published_version = Gauge("blobzero_trainer_published_version",
                                       "Newest model version published", registry=r)
        self.last_publish = Gauge("blobzero_trainer_last_publish_timestamp_seconds",
                                  "Unix time of the latest publish", registry=r)
        self.nonfinite = Counter("blobzero_trainer_nonfinite",
                                 "Non-finite results caught before they spread, by kind: loss (the "
                                 "step was skipped) or weights (rolled back to the last checkpoint)",
                                 ["kind"], registry=r)
        self.games_free = Gauge("blobzero_trainer_games_volume_free_bytes",
                                "Bytes available to unprivileged writers on the games volume",
                                registry=r)
        self.games_size = Gauge("blobzero_trainer_games_volume_size_bytes",
                                "Size of the games volume (bytes)", registry=r)
        self.checkpoints_free = Gauge("blobzero_trainer_checkpoints_volume_free_bytes",
                                      "Bytes available to unprivileged writers on the checkpoints "
                                      "volume (the checkpoint and the archive of versions)", registry=r)
        self.checkpoints_size = Gauge("blobzero_trainer_checkpoints_volume_size_bytes",
                                      "Size of the checkpoints volume (bytes)", registry=r)
        self.games_bytes = Gauge("blobzero_trainer_games_bytes",
                                 "Bytes of the game shards in the games directory", registry=r)
        self.shards_deleted = Counter("blobzero_trainer_shards_deleted",
                                      "Ingested game shards deleted by retention "
                                      "(storage.retain_hours, storage.retain_gb)", registry=r)
        for kind in ("policy", "value", "tricks", "total", "world", "world_new"):
            self.loss.labels(kind)
        for kind in ("loss", "weights"):
            self.nonfinite.labels(kind)

    def serve(self, host: str, port: int):
        """Expose /metrics on host:port (port 0 = off)."""
        return serve(self.registry, host, port, "metrics.trainer_port")
