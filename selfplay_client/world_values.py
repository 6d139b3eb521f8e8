"""World values for a search that values its leaves by them (``search.rollout = "world"``;
docs/search.md, "World values at the leaves"): the world-value model in process
(``OrtWorldValues``) or served by Triton (``selfplay_client.triton_evaluator.TritonWorldValues``),
and ``WorldEvaluator``, which answers them beside another evaluator's policy and value.
``configured_world_values`` is the one place the config (``worlds.model``) is read."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from plumbing.netspec import WORLD, WORLD_DIM, WORLD_VALUE


class OrtWorldValues:
    """The world-value model's ONNX graph in ONNX Runtime, in this process. A graph without
    the ``world`` input (620 wide) and the ``world_value`` output, or one that answers NaN, is
    refused with the reason."""

    def __init__(self, model_path, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no world-value model at {self.path} (make one with "
                                    f"`blobzero worlds all`)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if WORLD not in inputs or inputs[WORLD][-1] != WORLD_DIM or WORLD_VALUE not in outputs:
            raise ValueError(f"{self.path} is not a world-value model: it needs an input "
                             f"{WORLD!r} (batch, {WORLD_DIM}) and an output {WORLD_VALUE!r}; it has "
                             f"inputs {inputs} and outputs {outputs}")
        self._input, self._output = WORLD, WORLD_VALUE

    def world_values(self, worlds: np.ndarray) -> np.ndarray:
        """(n, 8) float32 world values of ``worlds`` (n, 620)."""
        worlds = np.ascontiguousarray(worlds, np.float32)
        if worlds.ndim != 2 or worlds.shape[1] != WORLD_DIM:
            raise ValueError(f"worlds must have shape (n, {WORLD_DIM}), got {worlds.shape}")
        if len(worlds) == 0:
            return np.zeros((0, 8), np.float32)
        (out,) = self.session.run([self._output], {self._input: worlds})
        if not np.isfinite(out).all():
            raise ValueError(f"{self.path} answered NaN or infinite world values")
        return out


class WorldEvaluator:
    """An evaluator that also answers world values (``SearchPool.apply``'s ``world``, (n, 8)
    relative to each world's mover) beside ``inner``'s policy and value: what
    ``search.rollout = "world"`` needs. ``values``: an ONNX file (``OrtWorldValues``, in this
    process) or anything with ``world_values(worlds)``, e.g. the model served by Triton
    (``selfplay_client.triton_evaluator.TritonWorldValues``)."""

    answers_worlds = True

    def __init__(self, inner, values, threads: int = 1):
        self.inner = inner
        self.values = values if hasattr(values, "world_values") else OrtWorldValues(values, threads)

    def world_values(self, worlds: np.ndarray) -> np.ndarray:
        return self.values.world_values(worlds)

    def evaluate(self, states, masks, worlds=None):
        """``inner``'s answer (through its ``submit`` when it has one, as self-play's resilient
        Triton evaluator does) with the world values of ``worlds`` beside it; the model version
        that answered is kept (records are tagged with it)."""
        from selfplay_client.runner import _unpack
        submit = getattr(self.inner, "submit", None)
        answer = submit(states, masks).result() if submit is not None else self.inner.evaluate(states, masks)
        policy, value, version, beliefs, _ = _unpack(answer)
        world = None if worlds is None else self.values.world_values(worlds)
        return SimpleNamespace(policy=policy, value=value, model_version=version, beliefs=beliefs,
                               world=world)


class VersionWorldValues:
    """``worlds.model = "version"``: the world-value model the trainer published with each
    network version (blobworld N beside blobnet N, archived as ``v<N>.world.onnx``;
    trainer/world_training.py). The arena, the strength tracker and the loop's report seat
    version N with blobworld N (``for_agent``), and the search with no network (``uniform``)
    with version 1's, the untrained one: nothing learned. Asked directly (``world_values``,
    e.g. by ``blobzero game`` or the agent in process), it answers with the newest version,
    looked up at most every ``REFRESH_S`` seconds (not a listing per batch)."""

    REFRESH_S = 30.0

    def __init__(self, versions, threads: int = 1):
        self.versions = versions            # plumbing.model_repository.ModelVersions of blobworld
        self.threads = threads
        self._loaded: dict[int, OrtWorldValues] = {}
        self._newest: int | None = None
        self._looked = float("-inf")        # time.monotonic() of the last lookup

    def version(self, n: int) -> OrtWorldValues:
        """blobworld version ``n`` in process; ValueError naming where it looked."""
        if n not in self._loaded:
            try:
                path = self.versions.path(n)
            except ValueError as exc:
                raise ValueError(f"worlds.model = \"version\" needs the world-value model of "
                                 f"version {n} (trainer.world_value publishes one with each "
                                 f"version): {exc}") from None
            self._loaded[n] = OrtWorldValues(path, self.threads)
        return self._loaded[n]

    def for_agent(self, agent) -> OrtWorldValues:
        """The world values an arena agent (``blobzero.arena.Agent``) searches with."""
        if agent.uniform:
            return self.version(1)
        if agent.version is None:
            raise ValueError(f"worlds.model = \"version\" seats each model version with its own "
                             f"world-value model, but {agent.name} ({agent.onnx}) is no version: "
                             f"name it v<N>")
        return self.version(agent.version)

    def world_values(self, worlds: np.ndarray) -> np.ndarray:
        import time
        if self._newest is None or time.monotonic() - self._looked > self.REFRESH_S:
            self._newest, self._looked = self.versions.latest(), time.monotonic()
        if self._newest is None:
            raise ValueError(f"worlds.model = \"version\": no world-value model in "
                             f"{self.versions.describe()}")
        if len(self._loaded) > 4:           # an agent running for weeks: keep the few newest
            for old in sorted(self._loaded)[:-4]:
                del self._loaded[old]
        return self.version(self._newest).world_values(worlds)


def configured_world_values(cfg, threads: int = 1):
    """The world-value source the config names (``worlds.model``) when one of its searches values
    leaves by world values (``search.rollout`` or ``selfplay.rollout`` = "world", or play-outs
    blended with them: ``search.world_share``); else None.
    ``"version"`` is ``VersionWorldValues`` here; self-play asks Triton's newest blobworld
    instead (``selfplay_world_values``)."""
    if not cfg.uses_world_values():
        return None
    if cfg.worlds.model == "triton":
        from selfplay_client.triton_evaluator import TritonWorldValues
        return TritonWorldValues(cfg.triton.url)
    if cfg.worlds.model == "version":
        from plumbing.model_repository import ModelVersions
        from plumbing.netspec import WORLD_MODEL_NAME
        return VersionWorldValues(ModelVersions.from_config(cfg.storage, WORLD_MODEL_NAME), threads)
    return OrtWorldValues(cfg.worlds.model, threads)


def selfplay_world_values(cfg):
    """Self-play's world values: Triton's blobworld when ``worlds.model`` is "triton" or
    "version" (the newest version, beside the newest blobnet), else the configured file."""
    if cfg.worlds.model == "version":
        from selfplay_client.triton_evaluator import TritonWorldValues
        return TritonWorldValues(cfg.triton.url)
    return configured_world_values(cfg)


def with_world_values(evaluator, values):
    """``evaluator`` answering world values from ``values`` too (unchanged when None)."""
    return evaluator if values is None else WorldEvaluator(evaluator, values)
