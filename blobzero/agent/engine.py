"""The batching searcher behind ``blobzero agent``: concurrent requests, one network batch per step.

Self-play's shape, fed by requests instead of a round generator: every search setting (model
version x ``SearchConfig``) has one ``SearchPool`` whose round iterator is a queue (``_Feed``):
the pool pulls a new request whenever a slot is free, at every step. One thread runs the steps:

    collect() every pool -> one batch per model (all pools' leaves + the root priors of new
    requests) -> evaluate -> apply() the slices back -> finished searches answer their callers

so N concurrent requests cost one network call per search step, not N (``tests/test_agent.py``
checks it on 64 clients through the metrics). The evaluations of different models run at once on
a small bounded thread pool, each with a deadline (``agent.model_deadline_s``): a model source
that stalls fails its own requests and never holds up another model's. A request's answer depends only on the position,
the settings and its seed: slots are private (docs/search.md, reproducibility).
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from blobcore.encode import encode
from blobcore.search.pool import SearchPool
from blobcore.rules import Round
from blobcore.search_config import SearchConfig
from plumbing.netspec import WORLD_DIM

log = logging.getLogger("blobzero.agent")


class EngineUnavailable(RuntimeError):
    """The network could not answer (Triton down, a broken model): the request may be retried."""


@dataclass(frozen=True)
class Advice:
    """One searched decision. Values are normalised round scores (score / (10 + C)) of the
    asking seat; ``prior`` and ``visits`` are per legal action (dicts keyed by action id)."""
    action: int
    prior: dict[int, float]
    visits: dict[int, int]
    q: dict[int, float]
    root_value: float
    model_version: str
    forced: bool


@dataclass(eq=False)
class _Job:
    rnd: Round
    seed: int
    config: SearchConfig
    model: str
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    obs: np.ndarray | None = None        # root observation (256,) for the network prior
    mask: np.ndarray | None = None
    prior: np.ndarray | None = None      # (52,) once evaluated
    value0: float | None = None          # network value of the mover (relative seat 0)
    record: dict | None = None           # the pool's record once the search finished
    version: str = ""


class _Feed:
    """The round iterator of one pool: hands queued jobs out as ``(Round, seed, agents, tag)``
    specs whose tag (copied into the record) is the job. Raising StopIteration when empty is fine:
    the pool asks again at its next step (a class iterator is not exhausted by it)."""

    def __init__(self):
        self.queue: collections.deque[_Job] = collections.deque()
        self.active: set[_Job] = set()

    def __iter__(self):
        return self

    def __next__(self):
        if not self.queue:
            raise StopIteration
        job = self.queue.popleft()
        self.active.add(job)
        return (job.rnd, job.seed, None, job)


@dataclass(eq=False)
class _Batch:
    """One network evaluation in flight: its future and the targets its rows go back to."""
    future: concurrent.futures.Future
    items: list                        # [(target, states, masks)]: a _Job or a (pool, feed)
    positions: int
    started: float
    deadline: float


class Engine:
    """Searches positions for many callers at once.

    models: ``ModelSource`` (evaluators per model version; blobzero/agent/models.py).
    slots: rounds one pool searches at once (more requests wait for a free slot).
    metrics: ``AgentMetrics`` or None.
    worlds: the world values for searches that value leaves by them (``search.rollout =
        "world"``; ``selfplay_client.world_values.configured_world_values``), or None.
    beliefs: the belief model (``blobzero.learned_beliefs.BeliefModel``) for searches that draw hidden
        hands from learned beliefs (``search.beliefs = "learned"``), or None.
    deadline_s: the most one evaluation may take. Each model's batch is evaluated on a small
        thread pool of its own, concurrently with the other models': a stalled source fails its
        own requests after ``deadline_s`` (and fails new ones at once until it answers again),
        never holding up another model's requests.
    """

    def __init__(self, models, slots: int = 256, metrics=None, max_pools: int = 16,
                 deadline_s: float = 10.0, evaluation_threads: int = 4, worlds=None, beliefs=None):
        self.models = models
        self.worlds = worlds
        self.beliefs = beliefs
        self.slots = slots
        self.metrics = metrics
        self.max_pools = max_pools
        self.deadline_s = deadline_s
        self._cond = threading.Condition()
        self._pools: dict[tuple[str, SearchConfig], tuple[SearchPool, _Feed]] = {}
        self._new: list[_Job] = []           # submitted, root prior not evaluated yet
        self._inflight: dict[str, _Batch] = {}       # model -> its evaluation in flight
        self._stalled: dict[str, float] = {}         # model -> since when its late evaluation runs
        self._executor = concurrent.futures.ThreadPoolExecutor(evaluation_threads,
                                                               thread_name_prefix="agent-evaluate")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="agent-engine", daemon=True)
        self._thread.start()

    # -- callers ---------------------------------------------------------------------------
    def submit(self, rnd: Round, config: SearchConfig, model: str = "latest",
               seed: int = 0) -> concurrent.futures.Future:
        """Search the decision of the player to move in ``rnd``; a Future of ``Advice``."""
        legal = rnd.legal_actions()
        if not legal:
            raise ValueError("the round is over: there is no decision to search")
        if config.uses_world_values and self.worlds is None:
            raise ValueError('this agent has no world-value model for search.rollout = "world" or '
                             'search.world_share (set worlds.model: an .onnx file or "triton")')
        if config.beliefs == "learned" and self.beliefs is None:
            raise ValueError('this agent has no belief model for search.beliefs = "learned" '
                             '(set beliefs.model: a .pt file from `blobzero beliefs all`)')
        key = self.models.key(model)       # raises ValueError for an unknown version
        job = _Job(rnd.copy(), seed & 0xFFFFFFFFFFFFFFFF, config, key)
        job.obs, mask = encode(job.rnd)
        job.mask = np.asarray(mask, np.float32)
        with self._cond:
            if self._stopping:
                raise EngineUnavailable("the agent is shutting down")
            if key in self._stalled:
                raise EngineUnavailable(self._stalled_message(key))
            self._new.append(job)
            if len(legal) > 1:              # a forced move needs the prior and value only
                self._pool(key, config)[1].queue.append(job)
            self._cond.notify()
        return job.future

    def advise(self, rnd: Round, config: SearchConfig, model: str = "latest", seed: int = 0,
               timeout: float | None = None) -> Advice:
        return self.submit(rnd, config, model, seed).result(timeout)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=10)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _stalled_message(self, model: str) -> str:
        return (f"the network (model {model or 'latest'}) has not answered for "
                f"{time.monotonic() - self._stalled[model]:.0f} s (agent.model_deadline_s = {self.deadline_s:g})")

    # -- the step loop (one thread) ---------------------------------------------------------
    def _pool(self, key: str, config: SearchConfig) -> tuple[SearchPool, _Feed]:
        entry = self._pools.get((key, config))
        if entry is None:
            if len(self._pools) >= self.max_pools:
                for k, (_, feed) in list(self._pools.items()):
                    if not feed.queue and not feed.active and k[0] not in self._inflight:
                        del self._pools[k]
            feed = _Feed()
            entry = (SearchPool(self.slots, config, feed, stop_after=1), feed)
            self._pools[(key, config)] = entry
        return entry

    def _launchable(self) -> bool:
        """Work for a model with no evaluation in flight or stalled (call under the lock)."""
        busy = self._inflight.keys() | self._stalled.keys()
        if any(job.model not in busy for job in self._new):
            return True
        return any((feed.queue or feed.active) and key[0] not in busy
                   for key, (_, feed) in self._pools.items())

    def _wake(self, _future=None) -> None:
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        break
                    now = time.monotonic()
                    done = [m for m, b in self._inflight.items() if b.future.done()]
                    late = [m for m, b in self._inflight.items() if not b.future.done() and now >= b.deadline]
                    if done or late or self._launchable():
                        break
                    deadlines = [b.deadline for b in self._inflight.values()]
                    self._cond.wait(min(deadlines) - now if deadlines else None)
                if self._stopping:
                    break
                finished = [(m, self._inflight.pop(m)) for m in done]
                expired = [(m, self._inflight.pop(m)) for m in late]
            try:
                for model, batch in finished:
                    self._finish(model, batch)
                for model, batch in expired:
                    self._expire(model, batch)
                with self._cond:          # after both: a failed model's pools are gone by now
                    busy = self._inflight.keys() | self._stalled.keys()
                    pools = [(k, v) for k, v in self._pools.items() if k[0] not in busy]
                    new = [j for j in self._new if j.model not in busy]
                    self._new = [j for j in self._new if j.model in busy]
                self._launch(pools, new)
            except Exception as exc:         # never let one bad step stop the service
                log.exception("agent search step failed")
                self._fail_all(EngineUnavailable(f"search step failed: {exc}"))
        self._fail_all(EngineUnavailable("the agent is shutting down"))

    def _launch(self, pools, new: list[_Job]) -> None:
        """Every pool of a model with no evaluation in flight advances to its next leaves (new
        requests are pulled in here); one evaluation per model starts on the thread pool."""
        parts: dict[str, list] = collections.defaultdict(list)   # model -> [(target, states, masks)]
        worlds: dict[str, list] = collections.defaultdict(list)  # model -> each item's worlds or None
        learned: set[str] = set()                                # models whose batch needs beliefs
        for (model, _config), (pool, feed) in pools:
            states, masks = pool.collect()     # pulls queued jobs (deque: safe beside submit())
            self._collect_finished(pool, feed)
            if len(states):
                parts[model].append(((pool, feed), states, masks))
                worlds[model].append(pool.worlds)
                if pool.config.beliefs == "learned":
                    learned.add(model)
        for job in new:
            parts[job.model].append((job, job.obs[None, :], job.mask[None, :]))
            worlds[job.model].append(None)
        for model, items in parts.items():
            states = np.concatenate([s for _, s, _ in items]) if len(items) > 1 else items[0][1]
            masks = np.concatenate([m for _, _, m in items]) if len(items) > 1 else items[0][2]
            rows = None
            if any(w is not None for w in worlds[model]):   # some pool values leaves by world values
                rows = np.concatenate([w if w is not None else np.zeros((len(s), WORLD_DIM), np.float32)
                                       for w, (_, s, _) in zip(worlds[model], items)])
            now = time.monotonic()
            future = self._executor.submit(self._evaluate, model, np.ascontiguousarray(states),
                                           np.ascontiguousarray(masks), rows, model in learned)
            with self._cond:
                self._inflight[model] = _Batch(future, items, len(states), now, now + self.deadline_s)
            future.add_done_callback(self._wake)

    def _evaluate(self, model: str, states, masks, worlds, beliefs: bool):
        """The model's (policy, value, version), the world values of ``worlds`` (or None) and,
        when ``beliefs``, the belief model's answer for ``states`` (or None)."""
        policy, value, version = self.models.evaluate(model, states, masks)
        return (policy, value, version, None if worlds is None else self.worlds.world_values(worlds),
                self.beliefs.beliefs(states) if beliefs else None)

    def _finish(self, model: str, batch: _Batch) -> None:
        """3. an evaluation answered: its slices go back to the pools and new requests."""
        try:
            policy, value, version, world, beliefs = batch.future.result()
        except Exception as exc:
            log.warning("evaluation of %d positions (model %s) failed: %s", batch.positions, model, exc)
            error = EngineUnavailable(f"the network (model {model or 'latest'}) did not answer: {exc}")
            self._fail_model(model, [t for t, _, _ in batch.items], error)
            return
        if self.metrics is not None:
            self.metrics.observe_batch(batch.positions, time.monotonic() - batch.started)
        row = 0
        for target, s, _ in batch.items:
            n = len(s)
            if isinstance(target, _Job):
                target.prior = policy[row].copy()
                target.value0 = float(value[row, 0])
                target.version = version
                self._maybe_done(target)
            else:
                pool, feed = target
                pool.apply(policy[row:row + n], value[row:row + n],
                           None if beliefs is None else beliefs[row:row + n],
                           None if world is None else world[row:row + n])
                for job in feed.active:
                    job.version = version
            row += n
        if self.metrics is not None:
            self.metrics.steps.inc()

    def _expire(self, model: str, batch: _Batch) -> None:
        """An evaluation passed its deadline: its requests fail now, and so do new ones for this
        model until the late evaluation returns (one thread per stalled model, never more)."""
        log.warning("evaluation of %d positions (model %s) passed agent.model_deadline_s = %g s",
                    batch.positions, model or "latest", self.deadline_s)
        with self._cond:
            self._stalled[model] = batch.started
        self._fail_model(model, [t for t, _, _ in batch.items], EngineUnavailable(self._stalled_message(model)))

        def recovered(_future) -> None:
            with self._cond:
                self._stalled.pop(model, None)
                self._cond.notify()
        batch.future.add_done_callback(recovered)

    def _collect_finished(self, pool: SearchPool, feed: _Feed) -> None:
        for record in pool.pop_finished():
            job = record["tag"]
            feed.active.discard(job)
            job.record = record
            self._maybe_done(job)

    def _maybe_done(self, job: _Job) -> None:
        if job.prior is None or job.future.done():
            return
        legal = job.rnd.legal_actions()
        prior = {a: float(job.prior[a]) for a in legal}
        if len(legal) == 1:
            advice = Advice(legal[0], prior, {legal[0]: 0}, {legal[0]: job.value0}, job.value0,
                            job.version, True)
        elif job.record is None:
            return
        else:
            decision = job.record["decisions"][0]
            seat = job.rnd.current_player
            visits = {a: int(decision["visits"].get(a, 0)) for a in legal}
            q = {a: float(decision["q"].get(a, 0.0)) for a in legal}
            advice = Advice(job.record["actions"][job.record["start_ply"]], prior, visits, q,
                            float(decision["root_value"][seat]), job.version, False)
        job.future.set_result(advice)

    def _fail_model(self, model: str, targets: list, error: Exception) -> None:
        """The network failed (or passed its deadline) mid-step: the pools of ``model`` hold
        unanswered leaves, so they are dropped with their jobs, and the requests for ``model``
        that came in meanwhile fail too (they would only ask the same source again); all are
        answered with ``error``. Other models carry on."""
        for target in targets:
            if isinstance(target, _Job):
                _fail(target, error)
        with self._cond:
            for key in [k for k in self._pools if k[0] == model]:
                _, feed = self._pools.pop(key)
                for job in [*feed.active, *feed.queue]:
                    _fail(job, error)
            waiting = [j for j in self._new if j.model == model]
            self._new = [j for j in self._new if j.model != model]
        for job in waiting:
            _fail(job, error)

    def _fail_all(self, error: Exception) -> None:
        with self._cond:
            for _, feed in self._pools.values():
                for job in [*feed.active, *feed.queue]:
                    _fail(job, error)
            self._pools.clear()
            for job in self._new:
                _fail(job, error)
            self._new = []


def _fail(job: _Job, error: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(error)
