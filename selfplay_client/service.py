"""``blobzero selfplay``: the self-play client service.

K rounds in flight through the pooled search, one gRPC request per batch of leaves to
Triton, finished rounds written to shared storage as shards. New model versions are picked
up without restarting (requests ask for the latest version; every round is tagged with the
version that answered). SIGTERM/Ctrl-C: rounds in flight are dropped, complete rounds are
flushed, exit 0. Triton down, its model unhealthy, or answering NaN: retry with backoff and a
log line, then carry on. The client id defaults to the host name and is held by a lock in the
games directory (plumbing/shards.py ``ClientClaim``), so a restarted client continues its
shard sequence numbers. Start-up problems (a bad config, a taken metrics port, a games
directory that cannot be written) print one line naming the config key and exit 2.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import logging
import signal
import sys
import threading
import time

from blobcore.players import builtin_player
from plumbing import config as configuration
from plumbing.records import to_proto
from plumbing.shards import ClientClaim, ClientIdInUse, ShardWriter
from plumbing.storage import open_store
from selfplay_client.metrics import SelfplayMetrics
from selfplay_client import tables
from selfplay_client.runner import PooledSearch

log = logging.getLogger("blobzero.selfplay")
DRAIN_S = 60.0      # at stop, how long finished shards keep retrying an unreachable bucket


class Stopped(Exception):
    """Raised into the search when a stop was requested while waiting for the server."""


class StorageFailed(Exception):
    """A shard could not be written (already logged and counted)."""


class ResilientEvaluator:
    """Wraps ``TritonEvaluator.submit``: records metrics, and when the server stays
    unavailable (down, restarting, its model's backend process unhealthy), a request times
    out, or an answer holds NaN/inf (refused: a search on it would record garbage), logs it,
    counts ``blobzero_selfplay_errors_total{kind}`` and retries the same batch with backoff
    until it succeeds or a stop is requested. Contract and request errors are not retried:
    they are bugs, and retrying would hide them. The pause between attempts doubles up to
    ``backoff_max_s`` only (each attempt already waits out ``triton.reconnect_timeout_s``), so
    self-play resumes within a few seconds of Triton's return however long the outage was."""

    def __init__(self, evaluator, metrics: SelfplayMetrics, stop: threading.Event,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 2.0):
        self.evaluator = evaluator
        self.metrics = metrics
        self.stop = stop
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s

    def submit(self, states, masks) -> concurrent.futures.Future:
        from selfplay_client.triton_evaluator import (TritonContractError, TritonEvaluatorError,
                                                      TritonNonFiniteError, TritonRequestError,
                                                      TritonUnavailableError)
        outer: concurrent.futures.Future = concurrent.futures.Future()
        n = len(states)
        states, masks = states.copy(), masks.copy()   # retries outlive the pool's buffers

        def attempt(delay: float) -> None:
            if outer.done():                    # cancelled by the search on its way out
                return
            if self.stop.is_set():
                _settle(outer.set_exception, Stopped())
                return
            started = time.perf_counter()
            try:
                inner = self.evaluator.submit(states, masks)
            except Exception as exc:            # e.g. closed meanwhile: never a stray traceback
                _settle(outer.set_exception, Stopped() if self.stop.is_set() else exc)
                return

            def done(future: concurrent.futures.Future) -> None:
                if outer.done():
                    return
                if future.cancelled():          # the evaluator was closed under this request
                    _settle(outer.set_exception, Stopped())
                    return
                exc = future.exception()
                if exc is None:
                    result = future.result()
                    self.metrics.requests.inc()
                    self.metrics.leaf_evaluations.inc(n)
                    self.metrics.positions_per_request.observe(n)
                    self.metrics.latency.observe(time.perf_counter() - started)
                    self.metrics.model_version.set(result.model_version)
                    _settle(outer.set_result, result)
                    return
                retryable = isinstance(exc, (TritonUnavailableError, TritonEvaluatorError)) and \
                    not isinstance(exc, (TritonContractError, TritonRequestError))
                if not retryable or self.stop.is_set():
                    _settle(outer.set_exception, Stopped() if self.stop.is_set() else exc)
                    return
                kind = ("unavailable" if isinstance(exc, TritonUnavailableError) else
                        "nonfinite" if isinstance(exc, TritonNonFiniteError) else "timeout")
                self.metrics.errors.labels(kind).inc()
                log.warning("Triton at %s: %s; retrying this batch of %d in %.0f s",
                            self.evaluator.url, exc, n, delay)
                timer = threading.Timer(delay, attempt, (min(delay * 2, self.backoff_max_s),))
                timer.daemon = True
                timer.start()
            inner.add_done_callback(done)

        attempt(self.backoff_initial_s)
        return outer


def _settle(setter, value) -> None:
    """Resolve a future unless the search cancelled it meanwhile (a race, not an error)."""
    try:
        setter(value)
    except concurrent.futures.InvalidStateError:
        pass


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
    try:
        return run(cfg, rounds=args.rounds, duration=args.duration, progress=args.progress)
    except configuration.ConfigError as exc:
        print(f"blobzero selfplay: {exc}", file=sys.stderr)
        return 2


def claim_storage(cfg: configuration.Config) -> ClientClaim:
    """Check that the games location takes shards and claim this client's id there; raises
    ConfigError naming the key (a read-only volume must not cost minutes of rounds first)."""
    games = open_store(cfg.storage.games_dir)
    games.check("storage.games_dir")           # a directory or a bucket (names the variable to fix)
    try:
        return ClientClaim(games, cfg.selfplay.client_id)
    except ClientIdInUse as exc:
        raise configuration.ConfigError(f"config key 'selfplay.client_id': {exc}; give each "
                                        f"client its own id (or leave it empty)") from None


def run(cfg: configuration.Config, rounds: int = 0, duration: float = 0, progress: str = "auto") -> int:
    from selfplay_client.triton_evaluator import TritonEvaluator

    if cfg.selfplay_search().beliefs == "learned":
        # the belief model lives in the trainer's torch code and is not served by Triton yet
        raise configuration.ConfigError(
            'config key \'search.beliefs\' "learned" is not served to self-play yet (the arena, '
            'blobzero game, the strength tracker and the agent read beliefs.model in process); '
            'self-play with "bids" and measure the learned beliefs with --set on those commands')
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    claim = claim_storage(cfg)
    client_id = claim.id
    metrics = SelfplayMetrics()
    try:
        metrics.serve(cfg.metrics.host, cfg.metrics.selfplay_port)
    except configuration.ConfigError:
        claim.release()
        raise
    writer = ShardWriter(cfg.storage.games_dir, client_id, cfg.selfplay.rounds_per_shard)
    writer.on_upload_error = metrics.errors.labels("storage").inc   # each upload kept for a retry
    seed = cfg.selfplay.seed if cfg.selfplay.seed >= 0 else time.time_ns() & 0xFFFFFFFF
    search_config = cfg.selfplay_search()
    log.info("client %s (shards from seq %d): %s, %d rounds in flight, search %dx%d, Triton %s, "
             "games to %s, metrics on %s:%d", client_id, writer.seq, cfg.table.describe(),
             cfg.selfplay.games_in_flight,
             search_config.determinizations, search_config.simulations, cfg.triton.url,
             writer.root, cfg.metrics.host, cfg.metrics.selfplay_port)
    triton = TritonEvaluator(cfg.triton.url, model_name=cfg.triton.model_name,
                             max_in_flight=cfg.triton.max_in_flight,
                             reconnect_timeout_s=cfg.triton.reconnect_timeout_s)
    evaluator = ResilientEvaluator(triton, metrics, stop)
    if search_config.uses_world_values:       # world values at the leaves: worlds.model says whence
        from selfplay_client.world_values import selfplay_world_values, with_world_values
        evaluator = with_world_values(evaluator, selfplay_world_values(cfg))
    sp = cfg.selfplay
    opponent = builtin_player(sp.opponent).code if sp.opponent_share > 0 else 0
    if opponent:
        log.info("opponent pool: %s in %.0f%% of the seats%s", sp.opponent, 100 * sp.opponent_share,
                 ", its moves trained on as imitation targets" if sp.imitate else "")
    specs = tables.feed(seed, cfg.table, opponent, sp.opponent_share)
    search = PooledSearch(evaluator, search_config, specs, n_games=sp.games_in_flight,
                          record_builtin=bool(opponent) and sp.imitate)
    bar = _progress_bar(progress, rounds)
    started = time.monotonic()
    done = 0

    def store(write) -> None:
        """Run a writer call; a full or read-only volume is logged once, counted, and ends the
        run with exit 1 (no traceback; the rounds it could not write are lost)."""
        try:
            if write():
                metrics.shards.inc()
        except OSError as exc:
            metrics.errors.labels("storage").inc()
            log.error("cannot write a shard to %s (%s); dropping %d finished rounds", writer.root,
                      exc.strerror or exc, writer.discard())
            raise StorageFailed(str(exc)) from None

    def flush() -> None:
        store(writer.flush)

    def on_record(record: dict) -> None:
        nonlocal done
        store(lambda: writer.add(to_proto(record, client_id)))
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
    except StorageFailed:
        code = 1
    except Exception as exc:  # a real failure: keep the finished rounds, then report it
        log.error("self-play stopped: %s", exc)
        code = 1
    finally:
        try:
            flush()
            if writer.pending and writer.drain(DRAIN_S):   # a bucket's endpoint was down
                metrics.errors.labels("storage").inc()
                code = 1
        except StorageFailed:
            code = 1
        if bar is not None:
            bar.close()
        triton.close()
        claim.release()
    elapsed = time.monotonic() - started
    log.info("done: %d rounds in %.0f s (%.0f rounds/min), %d shards, last model version %s",
             done, elapsed, done / max(elapsed, 1e-9) * 60, writer.shards_written, search.model_version)
    return code


def _progress_bar(mode: str, total: int):
    if mode == "off" or (mode == "auto" and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=total or None, desc="self-play", unit="round", file=sys.stderr)
