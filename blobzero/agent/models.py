"""Where the agent's network comes from: Triton (a URL) or ONNX Runtime in this process.

A ``ModelSource`` turns what a request asks for ("latest", "", "7", "v7") into a key, and
evaluates a batch for a key: ``evaluate(key, states (n,256), masks (n,52)) -> (policy (n,52),
value (n,8), version label)``. The engine sends one batch per key and step.

* ``TritonModels``: one ``TritonEvaluator`` per pinned version ("" = the newest the server has);
  the label is the version Triton says answered.
* ``OnnxModels``: the model repository's versions (or the trainer's archive) resolved like the
  arena resolves them (``blobzero.arena.resolve_agent``), or one fixed ONNX file; "latest" is
  re-resolved per request so a newly published version is used at once. With no model at all
  (a fresh clone) it falls back to uniform priors and a neutral value: the search alone, labelled
  ``uniform`` so nobody mistakes it for a trained network.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from blobzero.arena import resolve_agent
from plumbing import config as configuration
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


class TritonModels:
    def __init__(self, url: str, model_name: str, max_in_flight: int = 4,
                 reconnect_timeout_s: float = 5.0):
        self.url, self.model_name = url, model_name
        self.max_in_flight, self.reconnect_timeout_s = max_in_flight, reconnect_timeout_s
        self._evaluators: dict[str, object] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"Triton at {self.url} (model {self.model_name})"

    def key(self, spec: str) -> str:
        version = parse_version(spec)
        return "" if version is None else str(version)

    def _evaluator(self, key: str):
        from selfplay_client.triton_evaluator import TritonEvaluator

        with self._lock:
            if key not in self._evaluators:
                self._evaluators[key] = TritonEvaluator(
                    self.url, self.model_name, model_version=key, max_in_flight=self.max_in_flight,
                    reconnect_timeout_s=self.reconnect_timeout_s)
            return self._evaluators[key]

    def evaluate(self, key: str, states: np.ndarray, masks: np.ndarray):
        result = self._evaluator(key).submit(states, masks).result()
        return result.policy, result.value, str(result.model_version)

    def close(self) -> None:
        for evaluator in self._evaluators.values():
            evaluator.close()


class OnnxModels:
    """onnx_file: serve this one file (any version request other than latest is refused);
    otherwise the versions of ``cfg.storage.model_repository`` / the trainer's archive."""

    def __init__(self, cfg: configuration.Config, onnx_file: Path | None = None,
                 intra_op_threads: int = 1):
        self.cfg = cfg
        self.onnx_file = Path(onnx_file) if onnx_file else None
        self.intra_op_threads = intra_op_threads
        self._evaluators: dict[str, tuple[object, Path | None]] = {}
        self._lock = threading.Lock()
        if self.onnx_file is not None and not self.onnx_file.is_file():
            raise ValueError(f"ONNX file {self.onnx_file} does not exist")

    def describe(self) -> str:
        if self.onnx_file is not None:
            return f"ONNX Runtime in process on {self.onnx_file}"
        return (f"ONNX Runtime in process on the versions in {self.cfg.storage.model_repository} "
                f"(uniform priors while there is none)")

    def key(self, spec: str) -> str:
        version = parse_version(spec)
        if self.onnx_file is not None:
            if version is not None:
                raise ValueError(f"this agent serves one file ({self.onnx_file.name}); "
                                 f"model_version must be 'latest', got {spec!r}")
            return self.onnx_file.stem
        try:
            agent = resolve_agent("latest" if version is None else f"v{version}", self.cfg)
        except ValueError as exc:
            if version is None:          # no model at all: the search on uniform priors
                return UNIFORM
            raise ValueError(str(exc)) from None
        with self._lock:
            if agent.name not in self._evaluators:
                self._evaluators[agent.name] = (None, agent.onnx)
        return agent.name

    def _evaluator(self, key: str):
        with self._lock:
            evaluator, path = self._evaluators.get(key, (None, self.onnx_file))
            if evaluator is None:
                evaluator = (UniformEvaluator() if key == UNIFORM
                             else OrtEvaluator(path, intra_op_threads=self.intra_op_threads))
                self._evaluators[key] = (evaluator, path)
            return evaluator

    def evaluate(self, key: str, states: np.ndarray, masks: np.ndarray):
        policy, value = self._evaluator(key).evaluate(states, masks)
        return policy, value, key[1:] if re.fullmatch(r"v\d+", key) else key

    def close(self) -> None:
        self._evaluators.clear()
