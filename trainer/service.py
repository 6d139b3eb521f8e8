"""``blobzero train``: the trainer service.

Watches the game shards, keeps a sliding window of recent positions, trains BlobNet
(policy cross-entropy against the search's visit distribution over legal actions, plus a
per-seat value loss), publishes a new model version every ``steps_per_publish`` steps and
checkpoints so a kill at any moment resumes with nothing lost. It is the only writer of
the model repository. docs/architecture.md describes the failure cases: a malformed record
costs that record (a shard with no usable record is quarantined), a step with a non-finite
loss is skipped, non-finite weights are never checkpointed or published (they are rolled
back to the last checkpoint), exports are staged under ``<checkpoint_dir>/.staging`` (cleared
at start, so a kill mid-publish leaks nothing), and start-up problems print one line naming
the config key and exit 2.

With ``trainer.human_share`` = s > 0 it also ingests the games people played on the agent's
page (``blobzero/agent/humangames.py``: one shard per finished game under ``<parent of
storage.games_dir>/human_games/human-<day>/``, the human seats' moves as one-visit decisions)
through the same shard reader, found incrementally by ``trainer/human_index.py`` (a scan costs
O(days kept + new games), and of a backlog only the newest games the human window holds are
read), into a window of their own (``HumanGamesFeed``), and draws round(s × batch) rows of every
batch from it — imitation targets, since a human decision's policy target is the move taken.
Until there is a human game it trains on self-play alone (and says so once).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plumbing import config as configuration
from plumbing.archive import retain as retain_archive
from plumbing.fsio import check_writable
from plumbing.netspec import MODEL_NAME
from plumbing.shards import LEGACY_NAME_RE, ShardReader, legacy_to_key
from plumbing.storage import StorageError, join, locations, open_store
from trainer.compact_window import CompactWindow, pack_shard
from trainer.device import TrainDevice
from trainer.human_index import HumanGamesIndex
from trainer.metrics import TrainerMetrics
from trainer.retention import RetentionPolicy
from trainer.shard_index import ShardIndex
from trainer.window import window_capacity

log = logging.getLogger("blobzero.train")
CHECKPOINT = "trainer.pt"
STAGING = ".staging"            # under checkpoint_dir: ONNX exports on their way to publishing
RECORD_WARNINGS = 3             # bad records named per shard; the rest are counted
RETENTION_EVERY_S = 60.0        # retention also runs this often while no checkpoint is due
SMALL_GPU_BATCH = 1024          # below this a CUDA trainer warns: the GPU would mostly idle
HUMAN_WINDOW_MAX = 100_000      # human-game positions held at most (fewer when trainer.window_max is)
HUMAN_SCAN_EVERY_S = 10.0       # human games are looked for this often (a listing per open day)


@dataclass
class Progress:
    """Everything besides the weights that a resume needs (saved in the checkpoint)."""
    step: int = 0
    version: int = 0                   # newest version this trainer published
    positions_seen: int = 0            # positions ingested in total
    rounds_seen: int = 0               # self-play rounds (records) ingested in total
    samples_trained: int = 0           # batch rows consumed by optimiser steps
    # What is ingested, bounded however long the run (trainer/retention.py): per client id
    # the highest shard sequence number ingested (a client writes its shards in sequence) ...
    cursors: dict[str, int] = field(default_factory=dict)
    # ... and the newest ingested shards covering window_max positions: [name, positions],
    # oldest first (what a restart reloads into the window; retention never deletes them)
    window_shards: list[list] = field(default_factory=list)
    # the same for the human games (trainer.human_share > 0), kept apart: human positions
    # neither grow the self-play window nor count toward sample_reuse. Their cursors are per
    # day, moved only over settled keys, and ``human_recent`` names the games read above them
    # (trainer/human_index.py)
    human_positions_seen: int = 0
    human_cursors: dict[str, int] = field(default_factory=dict)
    human_window_shards: list[list] = field(default_factory=list)
    human_recent: list[str] = field(default_factory=list)

    def note_ingested(self, client: str, seq: int, name: str, positions: int, window_max: int,
                      human: bool = False) -> None:
        shards = self.human_window_shards if human else self.window_shards
        if not human:                       # the human games' cursors: HumanGamesIndex.settle
            self.cursors[client] = max(self.cursors.get(client, -1), seq)
        if positions:
            shards.append([name, positions])
        # drop the oldest entries the newest ones no longer need to cover window_max
        covered = sum(p for _, p in shards)
        while shards and covered - shards[0][1] >= window_max:
            covered -= shards.pop(0)[1]

    def is_ingested(self, client: str, seq: int) -> bool:
        return seq <= self.cursors.get(client, -1)


class HumanGamesFeed:
    """The games people played on the agent's page, as the trainer reads them: the shard reader
    the self-play games use, on ``storage.locations(cfg.storage).human_games`` (where the agent
    writes them, blobzero/agent/humangames.py), its own incremental index
    (trainer/human_index.py) and a window of their own (HUMAN_WINDOW_MAX positions at most).
    The trainer never deletes them: the agent's retention bounds them."""

    def __init__(self, cfg: configuration.Config, all_views: bool, stop: threading.Event):
        from plumbing.storage import locations
        self.location = locations(cfg.storage).human_games
        self.reader = ShardReader(self.location)
        self.reader.stop = stop
        self.index = HumanGamesIndex(self.reader)
        self.window_max = min(cfg.trainer.window_max, HUMAN_WINDOW_MAX)
        self.window = CompactWindow(self.window_max, views_min=3 if all_views else 1,
                                    value_target_search=cfg.trainer.value_target_search)
        self.last_scan = -float("inf")          # monotonic seconds
        self.reported = False                   # "no human games yet" said once


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--steps", type=int, default=0, help="stop after this many steps in total")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    parser.add_argument("--init-only", action="store_true",
                        help="prepare the model repository (config + version 1) and exit")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s train %(levelname)s %(message)s")
    cfg = configuration.from_args_or_exit(args, "train")
    try:
        return Trainer(cfg).run(steps=args.steps, duration=args.duration, init_only=args.init_only)
    except configuration.ConfigError as exc:
        print(f"blobzero train: {exc}", file=sys.stderr)
        return 2


class Trainer:
    def __init__(self, cfg: configuration.Config):
        import torch

        from trainer.blobnet import build

        self.cfg = cfg
        self.t = cfg.trainer
        torch.set_num_threads(self.t.threads)
        torch.manual_seed(self.t.seed)
        self.torch = torch
        self.device = TrainDevice(torch, self.t.device)      # ConfigError: cuda without CUDA
        if self.device.cuda and self.t.batch_size < SMALL_GPU_BATCH:
            log.warning("trainer.batch_size %d is small for a GPU (it idles between steps); the GPU "
                        "profile config/gpu.toml trains with 4096 and a learning rate scaled up "
                        "with its square root", self.t.batch_size)
        # each location is a directory or an s3:// URL, read and written through plumbing/storage.py
        where = locations(cfg.storage)
        self.repo = where.models
        self.model_dir = join(self.repo, MODEL_NAME)
        self.checkpoints = open_store(where.checkpoints)
        self.archive = where.archive           # every published ONNX, for rollbacks and the tracker
        # exports are staged on a local disk: beside the checkpoints when they are on one, else
        # in a private temporary directory
        self.staging = (self.checkpoints.scratch_dir(STAGING)
                        or Path(tempfile.gettempdir()) / f"blobzero-trainer-{os.getpid()}{STAGING}")
        self.net = build(cfg.network.preset, seed=self.t.seed,
                         value_head=cfg.network.value_head).to(self.device.device)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.t.learning_rate,
                                           weight_decay=self.t.weight_decay)
        self.progress = Progress()
        # a searcher-perspective search asks for every seat's view of a position (examples.py)
        self.all_views = cfg.search.perspective == "searcher"
        self.window = CompactWindow(self.t.window_max, views_min=3 if self.all_views else 1,
                                    value_target_search=self.t.value_target_search)
        self.reader = ShardReader(where.games)
        self.metrics = TrainerMetrics()
        self.rng = np.random.default_rng(self.t.seed)
        self.stop = threading.Event()
        self.index = ShardIndex(self.reader)       # what is stored, learned incrementally
        self.reader.stop = self.stop               # a bucket read retries until this is set
        # the human games mixed in (trainer.human_share > 0), else None
        self.human = HumanGamesFeed(cfg, self.all_views, self.stop) if self.t.human_share > 0 else None
        # the world-value model, learned from self-play's labelled leaf worlds (trainer.world_value)
        self.world = self._new_world_trainer() if self._learns_worlds() else None
        self.retention = RetentionPolicy(cfg.storage.retain_hours, cfg.storage.retain_gb)
        self._scanned = False                      # the first scan meets shards of earlier runs
        self._last_retention = time.monotonic()
        self.clock = time.time                     # unix seconds (a test drives simulated time)
        self._skipped_steps = 0
        self._started = time.time()
        self._refilling = False                    # re-reading shards ingested before a restart

    def _learns_worlds(self) -> bool:
        """trainer.world_value, when there are labelled worlds: the rounds' own deals
        (trainer.world_games), or self-play's labelled leaves (selfplay.leaf_worlds > 0 with
        play-outs or world values at its leaves; the same config file drives both). Without
        either no world model is trained or published, and it says so."""
        if not self.t.world_value:
            return False
        search = self.cfg.selfplay_search()
        labelled = search.leaf_samples > 0 and (search.plays_out or search.rollout == "world")
        if not (labelled or self.t.world_games):
            log.info("trainer.world_value: self-play keeps no labelled worlds (leaf value %r, "
                     "selfplay.leaf_worlds %d) and trainer.world_games is off: no world-value "
                     "model is trained or published", search.rollout, self.cfg.selfplay.leaf_worlds)
            return False
        return True

    def _new_world_trainer(self):
        from trainer.world_training import WorldTrainer
        return WorldTrainer(self.t, self.torch, self.device.device, seed=self.t.seed)

    # -- lifecycle -------------------------------------------------------------------------
    def run(self, steps: int = 0, duration: float = 0, init_only: bool = False) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        self._check_storage()
        self._clear_staging()
        if not init_only:          # a taken port fails now, before any work
            self.metrics.serve(self.cfg.metrics.host, self.cfg.metrics.trainer_port)
        resumed = self._load_checkpoint()
        if not self._versions():
            self._publish("initial weights")
            self._save_checkpoint()
        if init_only:
            log.info("model repository %s ready (versions %s)", self.repo, self._versions())
            return 0
        self._report_published()
        if resumed:
            self._refill_window()
        log.info("training %s (%d parameters) on %s, batch %d, from %s; publishing every %d "
                 "steps to %s; window of up to %d positions in %.0f MB", self.cfg.network.preset,
                 sum(p.numel() for p in self.net.parameters()), self.device.describe(),
                 self.t.batch_size, self.reader.root, self.t.steps_per_publish, self.model_dir,
                 self.t.window_max, self.window.nbytes / 1e6)
        if self.human is not None:
            log.info("mixing in human games from %s: %d of each batch of %d (trainer.human_share "
                     "%g) once there are some; a window of up to %d human positions",
                     self.human.location, self._human_rows(), self.t.batch_size,
                     self.t.human_share, self.human.window_max)
        started = time.monotonic()
        last_scan = 0.0
        while not self.stop.is_set():
            if steps and self.progress.step >= steps:
                break
            if duration and time.monotonic() - started >= duration:
                break
            if time.monotonic() - last_scan > 1.0:
                try:
                    self._ingest_new()
                except StorageError as exc:          # the bucket's endpoint is down: wait
                    log.warning("cannot list new game shards (%s); retrying", exc)
                    self.stop.wait(5.0)
                last_scan = time.monotonic()
                if self.human is not None and time.monotonic() - self.human.last_scan > HUMAN_SCAN_EVERY_S:
                    self._ingest_human()
                if time.monotonic() - self._last_retention > RETENTION_EVERY_S:
                    self._retain_when_due()
            if not self._may_train():
                self.stop.wait(0.25)
                continue
            if not self._train_step():
                self._weights_finite()          # the weights may be the cause: roll them back
                continue
            if self.progress.step % self.t.steps_per_publish == 0:
                if self._weights_finite():
                    if not self._published_already(self.progress.step):
                        self._publish_safely(f"step {self.progress.step}")
                    self._save_checkpoint()
            elif self.progress.step % self.t.checkpoint_every == 0:
                if self._weights_finite():
                    self._save_checkpoint()
        if self._weights_finite():
            self._save_checkpoint()
        log.info("stopped at step %d, version %d, %d positions ingested",
                 self.progress.step, self.progress.version, self.progress.positions_seen)
        return 0

    def _report_published(self) -> None:
        """After a restart, report the newest served version and when it was published, so
        "trainer not publishing" alerts measure real silence, not process age."""
        from plumbing.model_repository import version_mtime
        versions = self._versions()
        if versions:
            self.metrics.published_version.set(versions[-1])
            self.metrics.last_publish.set(version_mtime(self.model_dir, versions[-1]))

    def _versions(self) -> list[int]:
        from plumbing.model_repository import list_versions
        return list_versions(self.model_dir)

    def _check_storage(self) -> None:
        """Fail at start, naming the key, when a location the trainer writes cannot be written
        (the games location is only read: a read-only games volume is fine)."""
        from plumbing.model_repository import check_repository
        self.checkpoints.check("storage.checkpoint_dir")
        try:
            check_writable(self.staging)
        except OSError as exc:
            raise configuration.ConfigError(f"config key 'storage.checkpoint_dir': cannot write to "
                                            f"{self.staging} ({exc.strerror or exc})") from None
        check_repository(self.repo, "storage.model_repository")
        self.reader.store.check("storage.games_dir", write=False)
        if self.human is not None:            # read only; a directory not there yet reads as empty
            self.human.reader.store.check("storage.games_dir (its human_games/ beside it, "
                                          "trainer.human_share)", write=False)
        try:
            self._prepare_repository()
        except OSError as exc:
            raise configuration.ConfigError(f"config key 'storage.model_repository': cannot "
                                            f"prepare {self.model_dir} ({exc.strerror or exc})") from None

    def _clear_staging(self) -> None:
        """Remove exports a killed trainer left half-way through a publish."""
        if self.staging.is_dir() and any(self.staging.iterdir()):
            log.info("removing leftovers of an interrupted publish in %s", self.staging)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _prepare_repository(self) -> None:
        """Write blobnet/config.pbtxt of the configured flavour (the trainer owns the repo)."""
        from plumbing.model_repository import prepare_config
        prepare_config(self.repo, self.cfg.triton.flavour, self.cfg.triton.gpu_instances,
                       self.cfg.triton.accelerator)

    # -- data ------------------------------------------------------------------------------
    def _ingest_new(self) -> None:
        """Ingest the shards that appeared since the last scan (oldest first). The scan's
        cost beyond one directory listing is O(new shards) (trainer/shard_index.py)."""
        for shard in self.index.scan():
            if not self._scanned and self.progress.is_ingested(shard.client, shard.seq):
                continue                           # ingested before a restart
            examples, rounds = self._read_shard(shard.path(self.reader.root))
            self.progress.rounds_seen += rounds
            positions = examples.positions if examples is not None else 0
            self.progress.note_ingested(shard.client, shard.seq, shard.name, positions,
                                        self.t.window_max)
            if examples is None:
                continue
            self.window.add(examples)
            self.progress.positions_seen += positions
            self.metrics.positions.inc(positions)
        self._scanned = True
        self.window.capacity = window_capacity(self.progress.positions_seen, self.t.window_min,
                                               self.t.window_max, self.t.window_growth)
        self.metrics.window.set(len(self.window))
        # from the newest shard on disk, ingested or not, every scan: the lag grows as soon as
        # self-play stops writing, even while the trainer still has a backlog to ingest
        newest = self.index.newest_mtime
        self.metrics.data_lag.set(max(0.0, self.clock() - (newest or self._started)))
        self.metrics.games_bytes.set(self.index.bytes)
        self._report_volume()

    def _ingest_human(self) -> None:
        """Ingest the human games that appeared since the last look (trainer.human_share > 0),
        and report how many human positions the window holds (a gauge; a log line when it
        grows). Bounded: the scan lists O(days + new games) (trainer/human_index.py), and of
        more new games than the window holds only the newest that fill it are read (the rest
        are passed over). With none yet it says so, once; a storage error is logged and tried
        again."""
        human = self.human
        human.last_scan = time.monotonic()
        progress = self.progress
        try:
            shards = human.index.scan(progress.human_cursors, progress.human_recent)
        except StorageError as exc:
            log.warning("cannot list the human games in %s (%s); training on, trying again in "
                        "%.0f s", human.location, exc, HUMAN_SCAN_EVERY_S)
            return
        parts, positions = [], 0
        for shard in reversed(shards):             # newest first, until the window is full
            if positions >= human.window_max:
                break
            examples, _ = self._read_shard(shard.path(human.reader.root), source=human)
            if examples is not None:
                parts.append((shard, examples))
                positions += examples.positions
        for shard, examples in reversed(parts):   # into the window oldest first
            progress.note_ingested(shard.client, shard.seq, shard.name, examples.positions,
                                   human.window_max, human=True)
            human.window.add(examples)
        progress.human_positions_seen += positions
        human.index.settle(progress.human_cursors, progress.human_recent, shards)
        self.metrics.human_window.set(len(human.window))
        passed = len(shards) - len(parts)
        if parts:
            log.info("ingested %d human games (%d positions%s): %d human positions in the window; "
                     "%d of each batch of %d are drawn from them (trainer.human_share %g)",
                     len(parts), positions, f"; {passed} older or unusable games passed over"
                     if passed else "", len(human.window), self._human_rows(),
                     self.t.batch_size, self.t.human_share)
        elif not len(human.window) and not human.reported:
            log.info("no human games in %s yet: training on self-play games alone until some "
                     "arrive (trainer.human_share %g; the agent writes them with "
                     "agent.record_human_games)", human.location, self.t.human_share)
        human.reported = True

    def _retain_when_due(self) -> None:
        """Checkpoint (so the saved state covers what is deleted) and apply retention, when
        anything is due for deletion; called every RETENTION_EVERY_S even while idle."""
        self._last_retention = time.monotonic()
        if self._deletions() and self._weights_finite():
            self._save_checkpoint()

    def _deletions(self) -> list:
        from trainer import retention
        needed = {name for name, _ in self.progress.window_shards}
        return retention.select(self.index.present, self.index.bytes, self.progress.cursors,
                                needed, self.clock(), self.retention)

    def _retain(self) -> int:
        """Delete the shards retention selects, from the state just checkpointed; returns how
        many. A volume that refuses (read-only) is logged and left alone. Nothing happens
        before the first scan (the index does not know the directory yet)."""
        if not self._scanned:
            return 0
        doomed = self._deletions()
        deleted = 0
        for shard in doomed:
            try:
                shard.path(self.reader.root).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("retention cannot delete %s (%s); storage.retain_* not applied",
                            shard.name, exc.strerror or exc)
                break
            self.index.forget(shard.name)
            deleted += 1
        if deleted:
            self.metrics.shards_deleted.inc(deleted)
            self.metrics.games_bytes.set(self.index.bytes)
            log.info("retention deleted %d ingested shards (%d left, %.2f GB)", deleted,
                     len(self.index.present), self.index.bytes / 1e9)
        self.progress.cursors = {c: q for c, q in self.progress.cursors.items()
                                 if c in {s.client for s in self.index.present.values()}}
        return deleted

    def _report_volume(self) -> None:
        for store, free_gauge, size_gauge in (
                (self.reader.store, self.metrics.games_free, self.metrics.games_size),
                (self.checkpoints, self.metrics.checkpoints_free, self.metrics.checkpoints_size)):
            capacity = store.capacity()
            if capacity is not None:               # a bucket has no volume to fill
                free_gauge.set(capacity[0])
                size_gauge.set(capacity[1])

    def _quarantine(self, path, reason: str, source=None) -> None:
        source = source or self
        source.reader.quarantine(path, reason)
        source.index.forget(path.name)

    def _read_shard(self, path, quarantine: bool = True, source=None):
        """(checked compact rounds or None, number of usable records) of one shard of
        ``source`` (what has a ``reader`` and an ``index``: the self-play games, or
        ``self.human``). A record that does not replay costs that record only, whatever it
        raises; a shard with no usable record is quarantined (``quarantine``). One log line per
        shard, naming a few bad records."""
        from plumbing.shards import CorruptShard
        source = source or self
        blob = source.reader.read_bytes(path)
        if blob is None:
            return None, 0
        try:       # parsed in C straight from the wire bytes (blobcore/shardparse.pyx)
            packed, bad, n_records = pack_shard(blob, all_views=self.all_views)
        except CorruptShard as exc:
            self._quarantine(path, str(exc), source)
            return None, 0
        if not n_records:
            return None, 0
        if self.world is not None and source is self:
            self.world.add_shard(blob, path.name, new=not self._refilling)
        if bad:
            more = f"; {len(bad) - RECORD_WARNINGS} more" if len(bad) > RECORD_WARNINGS else ""
            summary = f"skipped {len(bad)} of {n_records} records of {path.name}"
            if not packed.rounds and quarantine:      # the quarantine's line is the shard's one line
                self._quarantine(path, f"{summary}: none of its {n_records} records is usable; "
                                       + "; ".join(bad[:RECORD_WARNINGS]) + more, source)
            else:
                log.warning("%s (%s%s)", summary, "; ".join(bad[:RECORD_WARNINGS]), more)
        return (packed, packed.rounds) if packed.rounds else (None, 0)

    def _refill_window(self) -> None:
        """After a restart, reload the newest already-ingested shards into the window (and the
        human games' into theirs)."""
        self.reader.migrate()           # a checkpoint of the old naming names the renamed keys
        capacity = window_capacity(self.progress.positions_seen, self.t.window_min,
                                   self.t.window_max, self.t.window_growth)
        self._refilling = True
        try:
            self._refill(self, self.window, self.progress.window_shards, capacity)
        finally:
            self._refilling = False
        self.window.capacity = capacity
        log.info("resumed at step %d: %d positions back in the window", self.progress.step,
                 len(self.window))
        if self.human is not None and self.progress.human_window_shards:
            self._refill(self.human, self.human.window, self.progress.human_window_shards,
                         self.human.window_max)
            self.metrics.human_window.set(len(self.human.window))
            log.info("%d human positions back in the human-game window", len(self.human.window))

    def _refill(self, source, window: CompactWindow, shards: list[list], capacity: int) -> None:
        """Add the newest of ``shards`` ([name, positions], oldest first) of ``source`` covering
        ``capacity`` positions to ``window``, oldest first."""
        parts, total = [], 0
        for name, _ in reversed(shards):
            if total >= capacity:
                break
            path = source.reader.root / name
            if not path.exists():
                continue
            examples, _ = self._read_shard(path, quarantine=False, source=source)
            if examples is not None:
                parts.append(examples)
                total += examples.positions
        for examples in reversed(parts):
            window.add(examples)

    def _may_train(self) -> bool:
        if len(self.window) < min(self.t.min_positions, self.t.window_min):
            return False
        # Do not re-use each position more than sample_reuse times on average (overfitting).
        return self.progress.samples_trained < self.t.sample_reuse * self.progress.positions_seen

    # -- learning --------------------------------------------------------------------------
    def _train_step(self) -> bool:
        """One optimiser step; False (and no update) when the loss or gradient is not finite."""
        from trainer import step
        batch, n_human = self._sample_batch()
        learning_rate = self._set_learning_rate()
        policy_loss, value_loss, trick_loss, total = step.forward(
            self.net, self.device, batch, self.t.value_loss_weight, self.t.trick_loss_weight)
        self.metrics.loss.labels("policy").set(policy_loss.item())
        self.metrics.loss.labels("value").set(value_loss.item())
        self.metrics.loss.labels("tricks").set(trick_loss.item())
        self.metrics.loss.labels("total").set(total.item())
        # consumed either way (no retry loop); self-play rows only: sample_reuse bounds the
        # reuse of self-play positions, and human rows do not make self-play train faster
        self.progress.samples_trained += len(batch) - n_human
        if not step.apply(self.net, self.optimizer, total):
            self.metrics.nonfinite.labels("loss").inc()
            self._skipped_steps += 1
            if self._skipped_steps % 100 == 1:      # the first, then every 100th
                log.warning("step %d skipped: the loss or its gradient is not finite (total %s); "
                            "%d steps skipped so far", self.progress.step + 1, total.item(),
                            self._skipped_steps)
            return False
        self.progress.step += 1
        self.metrics.steps.inc()
        world = self._world_step()
        if self.progress.step % 50 == 0:
            log.info("step %d: policy %.4f value %.5f tricks %.4f lr %.3g window %d%s",
                     self.progress.step, policy_loss.item(), value_loss.item(), trick_loss.item(),
                     learning_rate, len(self.window), world)
        return True

    def _world_step(self) -> str:
        """One step of the world-value model (trainer.world_value) once there are labelled
        worlds; its part of the step's log line."""
        if self.world is None:
            return ""
        if self.world.step() is None:
            return f"; world window {len(self.world.window)}"
        self.metrics.loss.labels("world").set(self.world.loss)
        self.metrics.world_window.set(len(self.world.window))
        new = self.world.new_loss
        if new is not None:
            self.metrics.loss.labels("world_new").set(new)
        return (f"; world {self.world.loss:.5f}" + (f" new {new:.5f}" if new is not None else "")
                + f" ({len(self.world.window)} worlds)")

    def _human_rows(self) -> int:
        """Rows of a batch drawn from human games when there are some: round(human_share × batch)
        (at most half the batch: human_share <= 0.5)."""
        return round(self.t.human_share * self.t.batch_size)

    def _sample_batch(self) -> tuple:
        """(the next training batch, how many of its rows are human positions: its last ones).
        Without human games (trainer.human_share 0, or none ingested yet) it is the self-play
        window's sample as ever; with them, ``_human_rows()`` rows come from the human-game
        window and the rest from the self-play window, each drawn uniformly with replacement."""
        size = self.t.batch_size
        out = self.device.buffers(size)
        n_human = self._human_rows() if self.human is not None and len(self.human.window) else 0
        if not n_human:
            return self.window.sample(size, self.rng, out=out), 0
        self.window.sample(size - n_human, self.rng, out=out)        # fills the first rows
        self.human.window.sample(n_human, self.rng, out=out.rows(size - n_human, size))
        return out, n_human

    def _set_learning_rate(self) -> float:
        """Give the optimiser the scheduled learning rate of the coming step (from the global
        step count, so a resumed trainer continues the schedule; a checkpoint's saved rate is
        overwritten) and report it; returns it."""
        learning_rate = self.t.learning_rate_at(self.progress.step)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.metrics.learning_rate.set(learning_rate)
        return learning_rate

    def _weights_finite(self) -> bool:
        """True when every weight is finite; otherwise roll the weights and optimiser back to
        the last checkpoint (which is finite: nothing else is ever saved), count it, say so."""
        torch = self.torch
        if self._finite(self.net.state_dict()) and (self.world is None or self.world.finite()):
            return True
        self.metrics.nonfinite.labels("weights").inc()
        log.error("weights turned non-finite by step %d: not checkpointed or published; rolled "
                  "back to the last checkpoint (trainer.learning_rate %g too high?)",
                  self.progress.step, self.t.learning_rate)
        if self.checkpoints.exists(CHECKPOINT):
            state = torch.load(io.BytesIO(self.checkpoints.get(CHECKPOINT)), map_location="cpu",
                               weights_only=False)
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.world is not None and state.get("world") is not None:
                self.world.load(state["world"], CHECKPOINT)
        else:                                     # nothing saved yet: fresh weights
            from trainer.blobnet import build
            self.net.load_state_dict(build(self.cfg.network.preset, seed=self.t.seed,
                                           value_head=self.cfg.network.value_head).state_dict())
            self.optimizer.state.clear()
            if self.world is not None:
                window = self.world.window         # the labelled worlds stay
                self.world = self._new_world_trainer()
                self.world.window = window
        return False

    def _finite(self, state_dict: dict) -> bool:
        return all(bool(self.torch.isfinite(t).all()) for t in state_dict.values()
                   if t.is_floating_point())

    def _published_already(self, step: int) -> bool:
        """Whether the newest served version was published at ``step``: a trainer killed between
        a publish and its checkpoint resumes from an earlier step and reaches this one again;
        publishing it twice would serve one step under two version numbers."""
        versions = self._versions()
        try:   # the archive lives in the checkpoint store (a directory or a bucket)
            meta = json.loads(self.checkpoints.get(f"versions/v{versions[-1]:06d}.json"))
        except (IndexError, OSError, ValueError, StorageError):
            return False
        if meta.get("step") != step:
            return False
        self.progress.version = versions[-1]
        log.info("step %d is already published as version %d (before a restart): not publishing it again",
                 step, versions[-1])
        return True

    def _publish_safely(self, why: str) -> int | None:
        """``_publish``, but a model that fails validation is logged and skipped (the served
        version stays; training goes on) instead of stopping the trainer."""
        from plumbing.model_repository import InvalidModelError
        try:
            return self._publish(why)
        except InvalidModelError as exc:
            log.error("not publishing at %s: %s", why, exc)
            return None
        except StorageError as exc:                 # the bucket is unreachable: publish later
            log.error("cannot publish at %s: %s; the served version stays", why, exc)
            return None

    def _cpu_net(self):
        """The network on the CPU for export (a copy when it trains on CUDA)."""
        if not self.device.cuda:
            return self.net
        import copy
        return copy.deepcopy(self.net).to("cpu").eval()     # CUDA only

    def _publish(self, why: str) -> int:
        from plumbing.model_repository import publish_version
        from trainer.export import export_onnx
        self.staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="blobnet-export-", dir=self.staging) as tmp:
            onnx_path = export_onnx(self._cpu_net(), Path(tmp) / "model.onnx")
            world_path = None
            if self.world is not None:    # exported first: a failure publishes neither
                world_path = Path(tmp) / "world.onnx"
                self.world.export(world_path)
            version = publish_version(self.repo, onnx_path, keep_last=self.t.keep_versions)
            # crash-safe either way (temporary name + fsync + rename, or one PUT)
            self.checkpoints.put(f"versions/v{version:06d}.onnx", Path(onnx_path).read_bytes())
            if world_path is not None:
                self._publish_world(world_path, version)
            # what this version was trained on: the x axes of the learning curve
            self.checkpoints.put(f"versions/v{version:06d}.json", json.dumps({
                "version": version, "step": self.progress.step, "rounds_seen": self.progress.rounds_seen,
                "positions_seen": self.progress.positions_seen, "published_unix": time.time(),
                **self._world_manifest()}).encode())
        retain_archive(self.checkpoints, self.cfg.storage)     # storage.archive_keep / archive_every
        self.progress.version = version
        self.metrics.published_version.set(version)
        self.metrics.last_publish.set(time.time())
        log.info("published version %d (%s)", version, why)
        return version

    def _publish_world(self, path: Path, version: int) -> None:
        """blobworld ``version`` beside blobnet's (and archived as ``v<N>.world.onnx``); with
        the first, blobworld's Triton config of the configured flavour (the committed production
        config, or the local one). A world model that fails validation is logged and skipped:
        blobnet's version stands."""
        from plumbing import triton_config
        from plumbing.model_repository import (InvalidModelError, list_versions, publish_version,
                                               write_config, write_local_config)
        from plumbing.netspec import WORLD_MODEL_NAME
        try:
            publish_version(self.repo, path, keep_last=self.t.keep_versions,
                            model_name=WORLD_MODEL_NAME, version=version)
        except (InvalidModelError, ValueError) as exc:
            log.error("not publishing blobworld version %d: %s", version, exc)
            return
        self.checkpoints.put(f"versions/v{version:06d}.world.onnx", path.read_bytes())
        where = join(self.repo, WORLD_MODEL_NAME)
        if len(list_versions(where)) == 1:
            if self.cfg.triton.flavour == "local":
                write_local_config(where, model_name=WORLD_MODEL_NAME)
            else:
                write_config(where, triton_config.committed_config_path(WORLD_MODEL_NAME).read_text())

    def _world_manifest(self) -> dict:
        """The world model's figures for a version's manifest (the learning curve's)."""
        if self.world is None:
            return {}
        return {"world_loss": self.world.loss, "world_new_loss": self.world.new_loss,
                "world_steps": self.world.steps,
                "worlds_seen": self.world.worlds_seen}

    # -- checkpoints -----------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        buffer = io.BytesIO()
        self.torch.save({"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "progress": self.progress.__dict__, "network": self.cfg.network.preset,
                         "value_head": self.cfg.network.value_head,
                         "rng": self.rng.bit_generator.state,
                         "world": self.world.state() if self.world is not None else None}, buffer)
        try:
            self.checkpoints.put(CHECKPOINT, buffer.getvalue())
        except StorageError as exc:     # no retention either: it must follow a saved state
            log.error("cannot save the checkpoint (%s); trying again at the next one", exc)
            return
        self._retain()                  # from exactly the state now on disk

    def _load_checkpoint(self) -> bool:
        path = join(self.cfg.storage.checkpoint_dir, CHECKPOINT)
        if not self.checkpoints.exists(CHECKPOINT):
            return False
        try:
            state = self.torch.load(io.BytesIO(self.checkpoints.get(CHECKPOINT)), map_location="cpu",
                                    weights_only=False)
        except Exception as exc:  # an unreadable checkpoint must not be silently replaced
            raise SystemExit(f"blobzero train: checkpoint {path} is unreadable ({exc}); move it "
                             f"away to start fresh") from None
        if state.get("network") != self.cfg.network.preset:
            raise SystemExit(f"blobzero train: checkpoint {path} holds a '{state.get('network')}' "
                             f"network but network.preset is '{self.cfg.network.preset}'")
        if state.get("value_head", "scalar") != self.cfg.network.value_head:
            raise SystemExit(f"blobzero train: checkpoint {path} holds a network with the "
                             f"'{state.get('value_head', 'scalar')}' value head but "
                             f"network.value_head is '{self.cfg.network.value_head}'")
        if not self._finite(state["net"]):
            raise SystemExit(f"blobzero train: checkpoint {path} holds non-finite weights (a "
                             f"trainer older than this check saved them); move it away to start "
                             f"fresh (published versions are archived in {self.archive})")
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = _progress_from(state["progress"], self.t.window_max)
        self.rng.bit_generator.state = state["rng"]
        if self.world is not None:
            self.world.load(state.get("world"), path)
        return True


def _progress_from(saved: dict, window_max: int) -> Progress:
    """A checkpoint's progress. Shard names of the old naming (``games-v…-<client>-<seq>.shard``,
    renamed in the games location by plumbing/shards.py ``migrate_legacy``) become their keys;
    one from a trainer before cursors (a list of every ingested shard name, ``ingested``) is
    converted: cursors from the names, the window from the newest."""
    saved = dict(saved)
    names = saved.pop("ingested", None)
    progress = Progress(**saved)
    progress.window_shards = [[legacy_to_key(name) or name, positions]
                              for name, positions in progress.window_shards]
    for name in names or []:
        match = LEGACY_NAME_RE.match(name)
        if match:
            progress.note_ingested(match["client"], int(match["seq"]), legacy_to_key(name), 1,
                                   window_max)
    return progress
