"""The evaluator protocol the search calls, and two in-process implementations.

    evaluate(states (n, 256) float32, masks (n, 52) float32)
        -> (policy (n, 52) float32, value (n, 8) float32)

``policy`` rows are distributions over the legal actions of ``masks`` (0 on illegal ones);
``value`` rows are per-seat expected normalised round scores in [0, 1], seat 0 = player to
move. Returned arrays are fresh, C-contiguous and writable (the search may add noise in place).
Implementations: ``UniformEvaluator`` (no network), ``OrtEvaluator`` (ONNX Runtime in this
process) and ``selfplay_client.triton_evaluator.TritonEvaluator`` (the Triton server).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from plumbing.netspec import MASK, NUM_ACTIONS, POLICY, STATE, STATE_DIM, VALUE, VALUE_DIM


@runtime_checkable
class Evaluator(Protocol):
    def evaluate(self, states: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,256) float32, (n,52) float32 -> policy (n,52) float32, value (n,8) float32."""
        ...


def check_batch(states: np.ndarray, masks: np.ndarray) -> int:
    """Validate a batch against the protocol; returns n. Raises ValueError saying what is wrong."""
    for name, array, width in ((STATE, states, STATE_DIM), (MASK, masks, NUM_ACTIONS)):
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.dtype != np.float32:
            raise ValueError(f"{name} must be float32, got {array.dtype}")
        if array.ndim != 2 or array.shape[1] != width:
            raise ValueError(f"{name} must have shape (n, {width}), got {array.shape}")
    if states.shape[0] != masks.shape[0]:
        raise ValueError(f"states has {states.shape[0]} rows but masks has {masks.shape[0]}")
    return states.shape[0]


def empty_result(n: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, NUM_ACTIONS), np.float32), np.zeros((n, VALUE_DIM), np.float32)


class UniformEvaluator:
    """No network: policy uniform over the legal actions, every seat's value = ``value``.

    The default value 0.5 is the midpoint of the normalised score range [0, 1]: an uninformed
    guess that neither rewards nor punishes reaching a terminal state early (0 would make the
    search pessimistic about every unfinished line). Rows with no legal action get all zeros.
    """

    def __init__(self, value: float = 0.5):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"value must lie in [0, 1], got {value}")
        self.value = float(value)

    def evaluate(self, states: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = check_batch(states, masks)
        legal = (masks > 0.5).astype(np.float32)
        counts = legal.sum(axis=1, keepdims=True)
        policy = np.divide(legal, counts, out=np.zeros_like(legal), where=counts > 0)
        return policy, np.full((n, VALUE_DIM), self.value, np.float32)


class OrtEvaluator:
    """BlobNet's exported ONNX graph in ONNX Runtime, in this process.

    intra_op_threads: ORT threads for one call (None = ORT's default, one per core).
    """

    def __init__(self, onnx_path: str | os.PathLike, intra_op_threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self.path = Path(onnx_path)
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def evaluate(self, states: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = check_batch(states, masks)
        if n == 0:
            return empty_result()
        policy, value = self.session.run([POLICY, VALUE], {STATE: states, MASK: masks})
        return policy, value
