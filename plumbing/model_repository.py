"""The model repository on disk: numeric version directories, validated and published atomically.

Layout (identical in both flavours; only ``config.pbtxt`` differs, see plumbing/triton_config.py)::

    <parent>/<repo>/blobnet/config.pbtxt
    <parent>/<repo>/blobnet/<n>/model.onnx   n = 1, 2, ... (Triton ignores non-numeric names)
    <parent>/.<repo>.staging/                publisher's scratch space and lock

The staging directory is a *sibling* of the repository, not inside it: in poll mode Triton
treats every subdirectory of the repository as a model (a ``.staging`` inside it fails to
load and turns the server not-ready), and any write inside ``blobnet/`` triggers a reload.
It must be on the same filesystem as the repository (checked), so mount the repository's
parent, not the repository itself, into a container that publishes.

``publish_version`` stages a complete version outside the model directory, fsyncs it,
validates that the staged file really loads and runs, then ``os.rename``s the whole directory
in: a watcher (Triton in poll mode) sees either no new version or a complete one, never a
partial file. A model that does not load is never renamed in.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from plumbing.fsio import copy_file_synced, fsync_dir
from plumbing.netspec import INPUTS, MASK, MODEL_NAME, ONNX_FILENAME, OUTPUTS, STATE

_LOCK_NAME = "publish.lock"


class ModelRepositoryError(Exception):
    """The repository is missing, empty or malformed."""


class InvalidModelError(ModelRepositoryError):
    """An ONNX file does not load, or does not match the BlobNet wire contract."""


def list_versions(model_dir: str | os.PathLike) -> list[int]:
    """Version numbers present in ``model_dir`` (numeric directories, no leading zero), ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit() and not p.name.startswith("0"))


def validate_onnx(path: str | os.PathLike) -> None:
    """Raise InvalidModelError unless ``path`` loads in ONNX Runtime, has the contract's
    inputs/outputs, and produces finite outputs of the right shapes for a 2-position batch."""
    import onnxruntime as ort  # lazy: `blobzero serve --help` should not pay for it

    path = Path(path)
    if not path.is_file():
        raise InvalidModelError(f"{path}: no such file")
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for parse/graph errors
        raise InvalidModelError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc
    _check_signature(path, {i.name: i for i in session.get_inputs()}, INPUTS, "input")
    _check_signature(path, {o.name: o for o in session.get_outputs()}, OUTPUTS, "output")
    feeds = {STATE: np.zeros((2, INPUTS[STATE]), np.float32), MASK: np.ones((2, INPUTS[MASK]), np.float32)}
    try:
        results = session.run(list(OUTPUTS), feeds)
    except Exception as exc:
        raise InvalidModelError(f"{path}: fails on a test batch ({exc})") from exc
    for (name, width), array in zip(OUTPUTS.items(), results):
        if array.shape != (2, width) or not np.isfinite(array).all():
            raise InvalidModelError(f"{path}: output '{name}' is {array.shape} (finite: "
                                    f"{bool(np.isfinite(array).all())}), expected (2, {width}) finite")


def _check_signature(path: Path, found: dict, expected: dict[str, int], kind: str) -> None:
    if set(found) != set(expected):
        raise InvalidModelError(f"{path}: {kind}s are {sorted(found)}, expected {sorted(expected)}")
    for name, width in expected.items():
        arg = found[name]
        if arg.type != "tensor(float)" or len(arg.shape) != 2 or arg.shape[1] != width:
            raise InvalidModelError(f"{path}: {kind} '{name}' is {arg.type} {arg.shape}, "
                                    f"expected tensor(float) [batch, {width}]")


def check_servable(repo_root: str | os.PathLike, model_name: str = MODEL_NAME) -> list[int]:
    """Versions of ``model_name`` ready to serve; raises ModelRepositoryError with the fix otherwise.

    Validates the newest version's file (the one Triton will load) with ``validate_onnx``.
    """
    repo_root = Path(repo_root)
    hint = ("publish one with plumbing.model_repository.publish_version, or start with "
            "`blobzero serve --init-preset tiny` to export a freshly initialised network as version 1")
    if not repo_root.is_dir():
        raise ModelRepositoryError(f"model repository {repo_root} does not exist; {hint}")
    versions = list_versions(repo_root / model_name)
    if not versions:
        raise ModelRepositoryError(
            f"model repository {repo_root} has no version of '{model_name}' "
            f"(expected {repo_root / model_name}/<n>/{ONNX_FILENAME}); {hint}")
    latest = repo_root / model_name / str(versions[-1]) / ONNX_FILENAME
    try:
        validate_onnx(latest)
    except InvalidModelError as exc:
        raise ModelRepositoryError(f"model repository {repo_root} is malformed: newest version "
                                   f"{versions[-1]} is unusable: {exc}") from exc
    return versions


def staging_dir(repo_root: str | os.PathLike) -> Path:
    """The publisher's scratch directory for ``repo_root``: ``<parent>/.<name>.staging``."""
    repo_root = Path(repo_root).resolve()
    return repo_root.parent / f".{repo_root.name}.staging"


@contextmanager
def _publish_lock(staging: Path) -> Iterator[None]:
    """One publisher at a time per repository (version numbers must not collide)."""
    with open(staging / _LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _clear_stale(staging: Path) -> None:
    """Remove leftovers of publishers that crashed mid-way (we hold the lock, so none is live)."""
    for entry in staging.iterdir():
        if entry.name != _LOCK_NAME:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def publish_version(repo_root: str | os.PathLike, onnx_path: str | os.PathLike, keep_last: int = 3,
                    model_name: str = MODEL_NAME) -> int:
    """Publish ``onnx_path`` as the next version of ``model_name``; returns its number.

    Steps: copy into ``staging_dir(repo_root)`` + fsync; validate the staged copy (a truncated or
    foreign model raises InvalidModelError and nothing changes); ``os.rename`` the staged
    directory to ``<repo_root>/<model_name>/<n>`` + fsync the parent; prune to the newest
    ``keep_last`` versions. Old versions leave by rename too, so a watcher never sees half a
    directory.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    repo_root = Path(repo_root)
    model_dir = repo_root / model_name
    staging = staging_dir(repo_root)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging.mkdir(exist_ok=True)
    if os.stat(staging).st_dev != os.stat(model_dir).st_dev:  # rename would not be atomic
        raise ModelRepositoryError(
            f"{staging} and {model_dir} are on different filesystems, so the final rename would "
            f"not be atomic; mount the repository's parent directory instead of the repository")
    with _publish_lock(staging):
        _clear_stale(staging)
        version = max(list_versions(model_dir), default=0) + 1
        stage = Path(tempfile.mkdtemp(prefix=f"{model_name}-{version}.", dir=staging))
        try:
            copy_file_synced(onnx_path, stage / ONNX_FILENAME)
            fsync_dir(stage)
            validate_onnx(stage / ONNX_FILENAME)
            os.chmod(stage, 0o755)  # mkdtemp creates 0700; the server may run as another user
            os.rename(stage, model_dir / str(version))
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        fsync_dir(model_dir)
        prune(repo_root, keep_last, model_name)
    return version


def prune(repo_root: str | os.PathLike, keep_last: int, model_name: str = MODEL_NAME) -> list[int]:
    """Remove all but the newest ``keep_last`` versions; returns the removed numbers."""
    repo_root = Path(repo_root)
    model_dir, staging = repo_root / model_name, staging_dir(repo_root)
    staging.mkdir(exist_ok=True)
    removed = list_versions(model_dir)[:-keep_last]
    for version in removed:
        trash = Path(tempfile.mkdtemp(prefix=f"trash-{version}.", dir=staging))
        os.rename(model_dir / str(version), trash / "v")  # vanishes atomically from the watcher's view
        shutil.rmtree(trash)
    if removed:
        fsync_dir(model_dir)
    return removed
