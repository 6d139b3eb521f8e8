"""Where the agent's network comes from: Triton (a URL) or ONNX Runtime in this process.

A ``ModelSource`` turns what a request asks for ("latest", "", "7", "v7") into a key, and
evaluates a batch for a key: ``evaluate(key, states (n,256), masks (n,52)) -> (policy (n,52),
value (n,8), version label)``. The engine sends one batch per key and step.

* ``TritonModels``: one ``TritonEvaluator`` per pinned version ("" = the newest the server has);
  the label is the version Triton says answered. A pinned version must be one Triton serves now
  (its model metadata lists them; the served config loads only the newest): any other is refused
  at once with the list, instead of stalling the request on a version that never loads.
* ``OnnxModels``: the model repository's versions (or the trainer's archive), in directories or
  a bucket (``plumbing.model_repository.ModelVersions``: a bucket's versions are copied once into
  the bounded local cache in the temporary directory), or one fixed ONNX file; "latest" is
  re-resolved per request so a newly published version is used at once. A storage that cannot
  be listed makes the request fail as unavailable (never a silent fallback). With no model at all
  (a fresh clone) it falls back to uniform priors and a neutral value: the search alone, labelled
  ``uniform`` so nobody mistakes it for a trained network.

Both keep at most ``max_models`` evaluators (the least recently used is closed): the threads
and memory behind the agent never grow with the number of versions clients ask for.
"""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from blobzero.agent.engine import EngineUnavailable
from plumbing import config as configuration
from plumbing.model_repository import ModelVersions
from selfplay_client.evaluator import OrtEvaluator, UniformEvaluator

UNIFORM = "uniform"
_VERSION_RE = re.compile(r"^v?(\d{1,9})$")


def parse_version(spec: str) -> int | None:
    """'' / 'latest' -> None; '7' / 'v7' -> 7; anything else raises ValueError."""
    spec = (spec or "").strip().lower()
    if spec in ("", "latest"):
        return None
    match = _VERSION_RE.match(spec)
    if not match or int(match[1]) < 1:
        raise ValueError(f"model_version must be 'latest' or a version number >= 1, got {spec!r}")
    return int(match[1])


class _Lru:
    """At most ``size`` values by key; ``get(key, make)`` makes a missing one and closes the least
    recently used beyond ``size`` (``close(value)``)."""

    def __init__(self, size: int, close=lambda value: None):
        self.size, self._close = size, close
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, make):
        evicted = []
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = self._items[key] = make()
            while len(self._items) > self.size:
                evicted.append(self._items.popitem(last=False)[1])
        for old in evicted:
            self._close(old)
        return value

    def values(self) -> list:
        with self._lock:
            return list(self._items.values())

    def clear(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), OrderedDict()
        for value in items:
            self._close(value)

    def __len__(self) -> int:
        return len(self._items)


class TritonModels:
    """versions_ttl_s: how long the list of versions Triton serves is trusted; priority: the
    Triton priority level of every request (0 = the model's default, self-play's level;
    ``agent.triton_priority`` through plumbing/triton_config.py ``agent_priority``)."""

    def __init__(self, url: str, model_name: str, max_in_flight: int = 4,
                 reconnect_timeout_s: float = 5.0, max_models: int = 4, versions_ttl_s: float = 2.0,
                 priority: int = 0):
        self.url, self.model_name, self.priority = url, model_name, priority
        self.max_in_flight, self.reconnect_timeout_s = max_in_flight, reconnect_timeout_s
        self.versions_ttl_s = versions_ttl_s
        self._evaluators = _Lru(max_models, lambda e: e.close())
        self._lock = threading.Lock()
        self._versions: tuple[float, list[str]] | None = None
        self._client = None

    def describe(self) -> str:
        return f"Triton at {self.url} (model {self.model_name})"

    def servable(self) -> list[str]:
        """The versions Triton serves now (its model metadata), cached for versions_ttl_s;
        EngineUnavailable when it cannot be asked."""
        with self._lock:
            if self._versions is not None and time.monotonic() - self._versions[0] < self.versions_ttl_s:
                return self._versions[1]
            from tritonclient.grpc import InferenceServerClient
            from tritonclient.utils import InferenceServerException

            try:
                if self._client is None:
                    self._client = InferenceServerClient(self.url)
                meta = self._client.get_model_metadata(self.model_name, client_timeout=1.0)
            except InferenceServerException as exc:
                raise EngineUnavailable(f"cannot ask Triton at {self.url} which versions of "
                                        f"{self.model_name!r} it serves: {exc.message()}") from None
            versions = sorted(meta.versions, key=lambda v: int(v) if v.isdigit() else 0)
            self._versions = (time.monotonic(), versions)
            return versions

    def key(self, spec: str) -> str:
        version = parse_version(spec)
        if version is None:
            return ""
        servable = self.servable()
        if str(version) not in servable:
            raise ValueError(f"version {version} is not served by Triton; servable now: "
                             f"{', '.join(servable) or 'none'} (or 'latest')")
        return str(version)

    def _evaluator(self, key: str):
        from selfplay_client.triton_evaluator import TritonEvaluator

        return self._evaluators.get(key, lambda: TritonEvaluator(
            self.url, self.model_name, model_version=key, max_in_flight=self.max_in_flight,
            reconnect_timeout_s=self.reconnect_timeout_s, priority=self.priority))

    def evaluate(self, key: str, states: np.ndarray, masks: np.ndarray):
        result = self._evaluator(key).submit(states, masks).result()
        return result.policy, result.value, str(result.model_version)

    def close(self) -> None:
        self._evaluators.clear()
        if self._client is not None:
            self._client.close()


class OnnxModels:
    """onnx_file: serve this one file (any version request other than latest is refused);
    otherwise the versions of ``cfg.storage.model_repository`` / the trainer's archive."""

    def __init__(self, cfg: configuration.Config, onnx_file: Path | None = None,
                 intra_op_threads: int = 1, max_models: int = 4):
        self.cfg = cfg
        self.models = ModelVersions.from_config(cfg.storage)
        self.onnx_file = Path(onnx_file) if onnx_file else None
        self.intra_op_threads = intra_op_threads
        self._paths: dict[str, Path | None] = {}          # key -> its ONNX file (small: names only)
        self._evaluators = _Lru(max_models)
        self._lock = threading.Lock()
        if self.onnx_file is not None and not self.onnx_file.is_file():
            raise ValueError(f"ONNX file {self.onnx_file} does not exist")

    def describe(self) -> str:
        if self.onnx_file is not None:
            return f"ONNX Runtime in process on {self.onnx_file}"
        return (f"ONNX Runtime in process on the versions in {self.models.describe()} "
                f"(uniform priors while there is none)")

    def key(self, spec: str) -> str:
        version = parse_version(spec)
        if self.onnx_file is not None:
            if version is not None:
                raise ValueError(f"this agent serves one file ({self.onnx_file.name}); "
                                 f"model_version must be 'latest', got {spec!r}")
            return self.onnx_file.stem
        if version is None:
            try:
                version = self.models.latest()
            except OSError as exc:       # a bucket that cannot be listed: not "no model"
                raise EngineUnavailable(f"cannot list the model versions in "
                                        f"{self.models.repository.url}: {exc}") from None
            if version is None:          # no model at all: the search on uniform priors
                return UNIFORM
        try:
            path = self.models.path(version)    # ValueError naming where it was looked for
        except OSError as exc:
            raise EngineUnavailable(f"cannot read model version {version}: {exc}") from None
        name = f"v{version}"
        with self._lock:
            self._paths[name] = path
        return name

    def _evaluator(self, key: str):
        with self._lock:
            path = self._paths.get(key, self.onnx_file)
        return self._evaluators.get(key, lambda: UniformEvaluator() if key == UNIFORM
                                    else OrtEvaluator(path, intra_op_threads=self.intra_op_threads))

    def evaluate(self, key: str, states: np.ndarray, masks: np.ndarray):
        policy, value = self._evaluator(key).evaluate(states, masks)
        return policy, value, key[1:] if re.fullmatch(r"v\d+", key) else key

    def close(self) -> None:
        self._evaluators.clear()
