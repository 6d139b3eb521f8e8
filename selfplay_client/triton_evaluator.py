"""``TritonEvaluator``: the evaluator protocol over Triton gRPC, several batches in flight.

One request carries a whole batch of search leaves (hundreds of positions): per-request cost
(~0.3-0.5 ms of CPU across client, server and stub) dominates the model at small batches.
Calls are unary ``tritonclient.grpc.aio`` calls made on an event loop in a background thread,
at most ``max_in_flight`` on the wire; streaming is not used (it crashed tritonserver 2.51
here and was never faster).

    with TritonEvaluator("127.0.0.1:8001") as ev:
        future = ev.submit(states, masks)   # returns at once; the caller may reuse its buffers
        ...                                 # prepare the next batch of leaves meanwhile
        result = future.result()            # Evaluation(policy (n,52), value (n,8), model_version)
        policy, value = ev.evaluate(states, masks)   # blocking form (the Evaluator protocol)

Failures: while the server is unreachable, (re)loading the model, or its model's backend
process is unhealthy (a python-backend stub that died: the server heals it by reloading the
model, services/triton_local.py), a request is retried with exponential backoff for up to
``reconnect_timeout_s`` (a restarted server is picked up again transparently). A request the
server rejects (shape, dtype, unknown input) raises ``TritonRequestError`` with the server's
explanation and is not retried; a model whose declared tensors differ from the contract
raises ``TritonContractError`` before any request; an answer holding NaN or inf raises
``TritonNonFiniteError`` (never handed to the search).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc import aio as grpc_aio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from plumbing.netspec import (CONTRACTS, MASK, MODEL_NAME, STATE, WORLD,
                              WORLD_MODEL_NAME, WORLD_VALUE)
from selfplay_client.evaluator import check_batch, empty_result


#: gRPC's own reconnect back-off grows to 120 s by default: after a long outage the channel would
#: sleep through Triton's return (issue 20: self-play resumed 19.6 s late). Capped at 1 s here.
RECONNECT_BACKOFF_MS = 1000


def channel_args() -> list[tuple[str, int]]:
    """tritonclient's default channel options (message sizes, keepalive) plus a bounded
    reconnect back-off."""
    from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions

    keepalive = KeepAliveOptions()
    return [("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
            ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS)]


class TritonEvaluatorError(RuntimeError):
    """Base class of the evaluator's errors."""


class TritonRequestError(TritonEvaluatorError):
    """The server rejected a request (e.g. wrong shape or dtype); retrying would not help."""


class TritonContractError(TritonEvaluatorError):
    """The served model's tensors, or a response, do not match its wire contract
    (plumbing/netspec.py: BlobNet's, or the world-value model's)."""


class TritonUnavailableError(TritonEvaluatorError):
    """The server stayed unreachable (or the model unready) for longer than the reconnect budget."""


class TritonNonFiniteError(TritonEvaluatorError):
    """The model answered NaN or inf: a broken version that got past validation. The answer is
    refused; a newer version (or a rollback) fixes it, so callers may retry."""


@dataclass(frozen=True)
class Evaluation:
    """One answered batch: policy (n,52) float32, value (n,8) float32, and the model version used."""

    policy: np.ndarray
    value: np.ndarray
    model_version: int


#: Errors that a server restart or a model (re)load produces; worth retrying after a pause.
_TRANSIENT_STATUS = ("StatusCode.UNAVAILABLE",)
_TRANSIENT_MESSAGES = ("unknown model", "is not ready", "is not found", "failed to connect",
                       "connection refused", "socket closed",
                       "not healthy")   # a python-backend stub died; the model is being reloaded


def _is_transient(exc: InferenceServerException) -> bool:
    status = str(exc.status() or "")
    message = str(exc.message() or "").lower()
    return status in _TRANSIENT_STATUS or any(m in message for m in _TRANSIENT_MESSAGES)


class TritonEvaluator:
    """Evaluator backed by a Triton server (``url`` = ``host:port`` of its gRPC endpoint).

    model_version:       "" = the newest loaded version; or a specific version number
    max_in_flight:       requests on the wire at once (more are queued client-side)
    request_timeout_s:   deadline of one gRPC call (s)
    reconnect_timeout_s: how long one request keeps retrying while the server is unavailable (s)
    check_inputs:        validate shapes/dtypes client-side before sending (cheap; keep on)
    priority:            Triton priority level of every request (0 = the model's default level,
                         self-play's; the agent sends a lower one: plumbing/triton_config.py)
    """

    def __init__(self, url: str, model_name: str = MODEL_NAME, model_version: str | int = "",
                 max_in_flight: int = 4, request_timeout_s: float = 30.0,
                 reconnect_timeout_s: float = 60.0, backoff_initial_s: float = 0.05,
                 backoff_max_s: float = 2.0, check_inputs: bool = True, priority: int = 0):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.url, self.model_name, self.model_version = url, model_name, str(model_version)
        self._contract = CONTRACTS[MODEL_NAME if model_name not in CONTRACTS else model_name]
        self._contract_name = "world-value" if model_name == WORLD_MODEL_NAME else "BlobNet"
        self.max_in_flight = max_in_flight
        self.request_timeout_s, self.reconnect_timeout_s = request_timeout_s, reconnect_timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.check_inputs = check_inputs
        if priority < 0:
            raise ValueError(f"priority must be >= 0 (0 = the model's default level), got {priority}")
        self.priority = priority
        self.last_model_version: int | None = None  #: version that answered the latest evaluate()
        self.retries = 0                             #: transient failures retried so far
        self._contract_checked = False
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="triton-evaluator", daemon=True)
        self._thread.start()
        self._client, self._slots = self._run(self._open())

    # -- public API ----------------------------------------------------------------------------
    def submit(self, states: np.ndarray, masks: np.ndarray) -> concurrent.futures.Future:
        """Send one batch; returns a Future of ``Evaluation``. Inputs are copied before returning."""
        if self._closed:
            raise TritonEvaluatorError("evaluator is closed")
        n = check_batch(states, masks) if self.check_inputs else len(states)
        if n == 0:
            done: concurrent.futures.Future = concurrent.futures.Future()
            done.set_result(Evaluation(*empty_result(), model_version=self.last_model_version or 0))
            return done
        inputs = []
        for name, array in ((STATE, states), (MASK, masks)):
            tensor = InferInput(name, list(array.shape), _triton_dtype(array))
            tensor.set_data_from_numpy(np.ascontiguousarray(array))  # serialises (copies) now
            inputs.append(tensor)
        return asyncio.run_coroutine_threadsafe(self._infer(inputs, n), self._loop)

    def evaluate(self, states: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blocking form: (policy (n,52), value (n,8)); sets ``last_model_version``."""
        result = self.submit(states, masks).result()
        if len(states):
            self.last_model_version = result.model_version
        return result.policy, result.value

    async def evaluate_async(self, states: np.ndarray, masks: np.ndarray) -> Evaluation:
        """Awaitable form for callers running their own asyncio loop."""
        return await asyncio.wrap_future(self.submit(states, masks))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the model answers its readiness check (raises TritonUnavailableError)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._run(self._client.is_model_ready(self.model_name, self.model_version)):
                    return
            except InferenceServerException:
                pass
            if time.monotonic() > deadline:
                raise TritonUnavailableError(f"model {self.model_name!r} at {self.url} not ready after {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        """Cancel what is still pending (its futures raise CancelledError), close the channel."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> "TritonEvaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals (run on the evaluator's event loop) ------------------------------------------
    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _shutdown(self) -> None:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._client.close()

    async def _open(self):
        return (grpc_aio.InferenceServerClient(self.url, channel_args=channel_args()),
                asyncio.Semaphore(self.max_in_flight))

    async def _with_retries(self, call):
        """Await ``call()``; on transient errors back off exponentially within the reconnect budget."""
        deadline = time.monotonic() + self.reconnect_timeout_s
        delay = self.backoff_initial_s
        while True:
            try:
                return await call()
            except InferenceServerException as exc:
                if not _is_transient(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise TritonUnavailableError(
                        f"Triton at {self.url} (model {self.model_name!r}) unavailable for "
                        f"{self.reconnect_timeout_s:g} s; last error: {exc.message()}") from exc
                self.retries += 1
                self._contract_checked = False  # the restarted server may serve another model
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)

    async def _check_contract(self) -> None:
        meta = await self._client.get_model_metadata(self.model_name, self.model_version)
        inputs, outputs = self._contract
        problems = []
        for kind, declared, expected in (("input", meta.inputs, inputs), ("output", meta.outputs, outputs)):
            found = {t.name: (t.datatype, list(t.shape)) for t in declared}
            for name, width in expected.items():
                if found.get(name) != ("FP32", [-1, width]):
                    problems.append(f"{kind} '{name}': server has {found.get(name, 'nothing')}, "
                                    f"client expects ('FP32', [-1, {width}])")
        if problems:
            raise TritonContractError(f"model {self.model_name!r} v{meta.versions} at {self.url} does not "
                                      f"match the {self._contract_name} contract: " + "; ".join(problems))
        self._contract_checked = True

    async def _infer(self, inputs: list[InferInput], n: int) -> Evaluation:
        (policy, value), version = await self._infer_outputs(inputs, n)
        return Evaluation(policy, value, version)

    async def _infer_outputs(self, inputs: list[InferInput], n: int) -> tuple[list[np.ndarray], int]:
        """The contract's outputs for one request of ``n`` rows (copies, checked: shapes, finite)
        and the model version that answered."""
        outputs = self._contract[1]
        async with self._slots:
            try:
                if not self._contract_checked:
                    await self._with_retries(self._check_contract)
                result = await self._with_retries(lambda: self._client.infer(
                    self.model_name, inputs, model_version=self.model_version, priority=self.priority,
                    outputs=[InferRequestedOutput(name) for name in outputs],
                    client_timeout=self.request_timeout_s))
            except InferenceServerException as exc:
                if "DEADLINE_EXCEEDED" in str(exc.status()):
                    raise TritonEvaluatorError(f"Triton at {self.url} did not answer a batch of {n} "
                                               f"within {self.request_timeout_s} s") from exc
                raise TritonRequestError(f"Triton at {self.url} rejected a batch of {n} for model "
                                         f"{self.model_name!r} ({exc.status()}): {exc.message()}") from exc
        arrays = [result.as_numpy(name) for name in outputs]
        for (name, width), array in zip(outputs.items(), arrays):
            if array is None or array.dtype != np.float32 or array.shape != (n, width):
                got = None if array is None else (array.dtype, array.shape)
                raise TritonContractError(f"response output '{name}' is {got}, expected float32 {(n, width)}")
        version = int(result.get_response().model_version)
        finite = np.ones(n, bool)
        for array in arrays:
            finite &= np.isfinite(array).all(axis=1)
        bad = n - int(np.count_nonzero(finite))
        if bad:
            raise TritonNonFiniteError(f"model {self.model_name!r} version {version} at {self.url} "
                                       f"answered NaN/inf for {bad} of {n} positions; refused")
        # as_numpy views the response bytes read-only; the search may write (e.g. root noise)
        return [array.copy() for array in arrays], version


def _triton_dtype(array: np.ndarray) -> str:
    """Triton datatype name for ``array`` (so an unchecked wrong dtype reaches the server as such)."""
    return np_to_triton_dtype(array.dtype) or str(array.dtype)


class TritonWorldValues(TritonEvaluator):
    """The world-value model (``blobworld``) served by Triton beside BlobNet: ``world_values``
    answers (n, 8) for whole deals (n, 620) — what ``selfplay_client.world_values.WorldEvaluator`` asks for
    a search with ``search.rollout = "world"``. Contract, retries and refusals as BlobNet's."""

    def __init__(self, url: str, model_name: str = WORLD_MODEL_NAME, **kwargs):
        super().__init__(url, model_name, **kwargs)
        self._contract = CONTRACTS[WORLD_MODEL_NAME]
        self._contract_name = "world-value"

    def world_values(self, worlds: np.ndarray) -> np.ndarray:
        width = self._contract[0][WORLD]
        if worlds.ndim != 2 or worlds.shape[1] != width or worlds.dtype != np.float32:
            raise ValueError(f"worlds must be float32 of shape (n, {width}), got {worlds.dtype} {worlds.shape}")
        if len(worlds) == 0:
            return np.zeros((0, self._contract[1][WORLD_VALUE]), np.float32)
        tensor = InferInput(WORLD, list(worlds.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(worlds))
        (values,), version = self._run(self._infer_outputs([tensor], len(worlds)))
        self.last_model_version = version
        return values
