"""``blobzero selfplay``: the self-play client service.

K rounds in flight through the pooled search, one gRPC request per batch of leaves to
Triton, finished rounds written to shared storage as shards. New model versions are picked
up without restarting (requests ask for the latest version; every round is tagged with the
version that answered). SIGTERM/Ctrl-C: rounds in flight are dropped, complete rounds are
flushed, exit 0. Triton down: retry with backoff and a log line, then carry on.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import signal
import socket
import sys
import threading
import time

from plumbing import config as configuration
from plumbing.records import to_proto
from plumbing.shards import ShardWriter
from selfplay_client.metrics import SelfplayMetrics
from selfplay_client.runner import PooledSearch, round_specs

log = logging.getLogger("blobzero.selfplay")


class Stopped(Exception):
    """Raised into the search when a stop was requested while waiting for the server."""


class ResilientEvaluator:
    """Wraps ``TritonEvaluator.submit``: records metrics, and when the server stays
    unavailable (or a request times out) logs it and retries the same batch with backoff
    until it succeeds or a stop is requested. Contract and request errors are not retried:
    they are bugs, and retrying would hide them."""

    def __init__(self, evaluator, metrics: SelfplayMetrics, stop: threading.Event,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 30.0):
        self.evaluator = evaluator
        self.metrics = metrics
        self.stop = stop
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s

    def submit(self, states, masks) -> concurrent.futures.Future:
        from selfplay_client.triton_evaluator import (TritonContractError, TritonEvaluatorError,
                                                      TritonRequestError, TritonUnavailableError)
        outer: concurrent.futures.Future = concurrent.futures.Future()
        n = len(states)
        states, masks = states.copy(), masks.copy()   # retries outlive the pool's buffers

        def attempt(delay: float) -> None:
            if self.stop.is_set():
                outer.set_exception(Stopped())
                return
            started = time.perf_counter()
            inner = self.evaluator.submit(states, masks)

            def done(future: concurrent.futures.Future) -> None:
                exc = future.exception()
                if exc is None:
                    result = future.result()
                    self.metrics.requests.inc()
                    self.metrics.leaf_evaluations.inc(n)
                    self.metrics.positions_per_request.observe(n)
                    self.metrics.latency.observe(time.perf_counter() - started)
                    self.metrics.model_version.set(result.model_version)
                    outer.set_result(result)
                    return
                retryable = isinstance(exc, (TritonUnavailableError, TritonEvaluatorError)) and \
                    not isinstance(exc, (TritonContractError, TritonRequestError))
                if not retryable or self.stop.is_set():
                    outer.set_exception(Stopped() if self.stop.is_set() else exc)
                    return
                kind = "unavailable" if isinstance(exc, TritonUnavailableError) else "timeout"
                self.metrics.errors.labels(kind).inc()
                log.warning("Triton at %s: %s; retrying this batch of %d in %.0f s",
                            self.evaluator.url, exc, n, delay)
                timer = threading.Timer(delay, attempt, (min(delay * 2, self.backoff_max_s),))
                timer.daemon = True
                timer.start()
            inner.add_done_callback(done)

        attempt(self.backoff_initial_s)
        return outer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--rounds", type=int, default=0,
                        help="stop after this many rounds (default 0: run until SIGTERM)")
    parser.add_argument("--duration", type=float, default=0,
                        help="stop after this many seconds (default 0: no limit)")
    parser.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                        help="progress bar (auto: when stderr is a terminal)")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s selfplay %(levelname)s %(message)s")
    cfg = configuration.from_args_or_exit(args, "selfplay")
    return run(cfg, rounds=args.rounds, duration=args.duration, progress=args.progress)


def run(cfg: configuration.Config, rounds: int = 0, duration: float = 0, progress: str = "auto") -> int:
    from selfplay_client.triton_evaluator import TritonEvaluator

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    client_id = cfg.selfplay.client_id or f"{socket.gethostname()}-{os.getpid()}"
    metrics = SelfplayMetrics()
    metrics.serve(cfg.metrics.host, cfg.metrics.selfplay_port)
    writer = ShardWriter(cfg.storage.games_dir, client_id, cfg.selfplay.rounds_per_shard)
    seed = cfg.selfplay.seed if cfg.selfplay.seed >= 0 else time.time_ns() & 0xFFFFFFFF
    search_config = cfg.search.build()
    log.info("client %s: %d rounds in flight, search %dx%d, Triton %s, games to %s, metrics on %s:%d",
             client_id, cfg.selfplay.games_in_flight, search_config.determinizations,
             search_config.simulations, cfg.triton.url, writer.root, cfg.metrics.host,
             cfg.metrics.selfplay_port)
    triton = TritonEvaluator(cfg.triton.url, model_name=cfg.triton.model_name,
                             max_in_flight=cfg.triton.max_in_flight,
                             reconnect_timeout_s=cfg.triton.reconnect_timeout_s)
    evaluator = ResilientEvaluator(triton, metrics, stop)
    cards = (cfg.table.cards_min, cfg.table.cards_max)
    specs = round_specs(seed, cfg.table.players, cards if cards[0] != cards[1] else cards[0])
    search = PooledSearch(evaluator, search_config, specs, n_games=cfg.selfplay.games_in_flight)
    bar = _progress_bar(progress, rounds)
    started = time.monotonic()
    done = 0

    def flush() -> None:
        if writer.flush():
            metrics.shards.inc()

    def on_record(record: dict) -> None:
        nonlocal done
        if writer.add(to_proto(record, client_id)):
            metrics.shards.inc()
        done += 1
        metrics.rounds.inc()
        metrics.decisions.inc(len(record["decisions"]))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(version=search.model_version, shards=writer.shards_written)

    def should_stop() -> bool:
        # Called after every answered batch: the one place a slow trickle of rounds is flushed.
        if writer.age() > cfg.selfplay.shard_max_seconds:
            flush()
        return (stop.is_set() or (rounds and done >= rounds)
                or (duration and time.monotonic() - started >= duration))

    code = 0
    try:
        search.run(on_record, should_stop)
    except Stopped:
        pass
    except Exception as exc:  # a real failure: keep the finished rounds, then report it
        log.error("self-play stopped: %s", exc)
        code = 1
    finally:
        flush()
        if bar is not None:
            bar.close()
        triton.close()
    elapsed = time.monotonic() - started
    log.info("done: %d rounds in %.0f s (%.0f rounds/min), %d shards, last model version %s",
             done, elapsed, done / max(elapsed, 1e-9) * 60, writer.shards_written, search.model_version)
    return code


def _progress_bar(mode: str, total: int):
    if mode == "off" or (mode == "auto" and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=total or None, desc="self-play", unit="round", file=sys.stderr)
