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
import functools
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from plumbing.fsio import copy_file_synced, fsync_dir
from plumbing.netspec import INPUTS, MASK, MODEL_NAME, ONNX_FILENAME, OUTPUTS, STATE
from plumbing.storage import is_remote, join, open_store

_LOCK_NAME = "publish.lock"


class ModelRepositoryError(Exception):
    """The repository is missing, empty or malformed."""


class InvalidModelError(ModelRepositoryError):
    """An ONNX file does not load, or does not match the BlobNet wire contract."""


def list_versions(model_dir: str | os.PathLike) -> list[int]:
    """Version numbers present in ``model_dir`` (numeric directories, no leading zero), ascending."""
    if is_remote(model_dir):
        return sorted(int(n) for n in open_store(model_dir).children("")
                      if n.isdigit() and not n.startswith("0"))
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit() and not p.name.startswith("0"))


#: Real positions a model must answer sensibly before it is published (see validation_positions).
VALIDATION_POSITIONS = 96
#: Slack for float32 rounding in the output checks (a softmax sums to 1 within ~1e-6).
_TOLERANCE = 1e-3


@functools.lru_cache(maxsize=1)
def validation_positions(n: int = VALIDATION_POSITIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` real positions, encoded by the game core exactly as self-play encodes them:
    (states (n,256), masks (n,52), players at the table (n,)). Deterministic: rounds of 3..8
    players and 1..max cards from fixed seeds, played by uniformly random legal moves to a
    random depth, so bids and card play, every trump and seat appear. Some positions are
    encoded from another seat's view (a searcher-perspective search asks for those)."""
    from blobcore import Round, encode, max_cards  # lazy: only validation needs the core

    rng = np.random.default_rng(20_241_130)
    states = np.zeros((n, INPUTS[STATE]), np.float32)
    masks = np.zeros((n, INPUTS[MASK]), np.float32)
    players = np.zeros(n, np.int64)
    row = 0
    while row < n:
        n_players = int(rng.integers(3, 9))
        rnd = Round.from_seed(int(rng.integers(1 << 31)), n_players,
                              int(rng.integers(1, max_cards(n_players) + 1)))
        for _ in range(int(rng.integers(n_players * (rnd.cards + 1)))):
            legal = rnd.legal_actions()
            rnd.apply(legal[int(rng.integers(len(legal)))])
        observer = (None if row % 3 else
                    (rnd.current_player + int(rng.integers(1, n_players))) % n_players)
        state, mask = encode(rnd, observer)
        if mask.sum() < 1:
            continue
        states[row], masks[row], players[row] = state, mask, n_players
        row += 1
    return states, masks, players


def validate_onnx(path: str | os.PathLike) -> None:
    """Raise InvalidModelError unless ``path`` loads in ONNX Runtime, has the contract's
    inputs/outputs, and answers real positions (``validation_positions``) sensibly: outputs of
    the right shapes, all finite, each policy row a distribution over the legal actions, and
    the values of the seats at the table in [0, 1]. A model that is fine on an all-zeros input
    but NaN on real positions is caught here, before any client plays with it."""
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
    states, masks, players = validation_positions()
    n = len(states)
    try:
        results = session.run(list(OUTPUTS), {STATE: states, MASK: masks})
    except Exception as exc:
        raise InvalidModelError(f"{path}: fails on a test batch ({exc})") from exc
    for (name, width), array in zip(OUTPUTS.items(), results):
        if array.shape != (n, width):
            raise InvalidModelError(f"{path}: output '{name}' is {array.shape}, expected ({n}, {width})")
        bad = int(np.count_nonzero(~np.isfinite(array).all(axis=1)))
        if bad:
            raise InvalidModelError(f"{path}: output '{name}' is NaN or inf for {bad} of {n} real "
                                    f"positions")
    policy, value = results
    problems = []
    if (policy < -_TOLERANCE).any():
        problems.append("policy has negative entries")
    illegal = np.abs(policy * (masks < 0.5)).sum(axis=1)
    if (illegal > _TOLERANCE).any():
        problems.append(f"policy puts up to {illegal.max():.3g} on illegal actions")
    sums = policy.sum(axis=1)
    if (np.abs(sums - 1) > _TOLERANCE).any():
        problems.append(f"policy rows sum to {sums.min():.4g}..{sums.max():.4g}, not 1")
    seated = np.arange(value.shape[1])[None, :] < players[:, None]
    if ((value < -_TOLERANCE) | (value > 1 + _TOLERANCE))[seated].any():
        problems.append(f"values of seated players span {value[seated].min():.4g}.."
                        f"{value[seated].max():.4g}, outside [0, 1]")
    if problems:
        raise InvalidModelError(f"{path}: on {n} real positions " + "; ".join(problems))


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
    if is_remote(repo_root):
        return _check_servable_remote(str(repo_root), model_name)
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
    if is_remote(repo_root):
        return _publish_remote(str(repo_root), onnx_path, keep_last, model_name)
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


def rejected_dir(repo_root: str | os.PathLike) -> Path:
    """Where unusable versions are moved: ``<parent>/.<repo>.rejected`` (outside what Triton
    scans, on the same filesystem so the move is a rename)."""
    repo_root = Path(repo_root).resolve()
    return repo_root.parent / f".{repo_root.name}.rejected"


def set_aside_unusable(repo_root: str | os.PathLike, model_name: str = MODEL_NAME) -> list[tuple[int, str]]:
    """Move the newest versions that fail ``validate_onnx`` (an empty or half-written directory
    left by a writer that bypassed ``publish_version``, a truncated file) out of the repository,
    newest first, until the newest one left is usable or none is left; returns
    ``[(version, why), ...]``. With poll mode and ``latest: 1``, Triton would otherwise try only
    the broken newest version and never serve the good one below it."""
    if is_remote(repo_root):
        return _set_aside_remote(str(repo_root), model_name)
    model_dir = Path(repo_root) / model_name
    moved = []
    for version in reversed(list_versions(model_dir)):
        try:
            validate_onnx(model_dir / str(version) / ONNX_FILENAME)
            break
        except InvalidModelError as exc:
            target = rejected_dir(repo_root)
            target.mkdir(exist_ok=True)
            os.rename(model_dir / str(version), target / f"{model_name}-{version}-{time.time_ns()}")
            fsync_dir(model_dir)
            moved.append((version, str(exc)))
    return moved


# -- the repository in a bucket (storage.model_repository = s3://...; plumbing/storage.py) ----
# A version is one object, ``<repo>/blobnet/<n>/model.onnx``, written with one PUT after the
# file was validated locally: Triton (poll mode on the s3:// repository) sees no new version or
# a complete one. Old versions leave by deleting that object. The trainer is the one publisher.

def version_mtime(model_dir: str | os.PathLike, version: int) -> float:
    """When ``version`` was published (unix seconds)."""
    if is_remote(model_dir):
        entries = open_store(model_dir).list(f"{version}/")
        return max((e.mtime for e in entries), default=time.time())
    return (Path(model_dir) / str(version)).stat().st_mtime


def _download(store, key: str) -> Path:
    """One object into a private temporary file (the caller removes its directory)."""
    directory = Path(tempfile.mkdtemp(prefix="blobzero-model-"))
    return store.get_to_file(key, directory / ONNX_FILENAME)


def _publish_remote(repo_url: str, onnx_path: str | os.PathLike, keep_last: int,
                    model_name: str) -> int:
    validate_onnx(onnx_path)                  # before anything is written
    store = open_store(join(repo_url, model_name))
    version = max(list_versions(store.url), default=0) + 1
    store.put(f"{version}/{ONNX_FILENAME}", Path(onnx_path).read_bytes())
    for old in list_versions(store.url)[:-keep_last]:
        store.rmtree(str(old))
    return version


def _check_servable_remote(repo_url: str, model_name: str) -> list[int]:
    model_url = join(repo_url, model_name)
    versions = list_versions(model_url)
    if not versions:
        raise ModelRepositoryError(
            f"model repository {repo_url} has no version of '{model_name}' (expected "
            f"{model_url}/<n>/{ONNX_FILENAME}); the trainer publishes version 1 at start "
            f"(blobzero train --init-only)")
    path = _download(open_store(model_url), f"{versions[-1]}/{ONNX_FILENAME}")
    try:
        validate_onnx(path)
    except InvalidModelError as exc:
        raise ModelRepositoryError(f"model repository {repo_url} is malformed: newest version "
                                   f"{versions[-1]} is unusable: {exc}") from exc
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    return versions


def _set_aside_remote(repo_url: str, model_name: str) -> list[tuple[int, str]]:
    """Remote ``set_aside_unusable``: an unusable newest version is copied under the sibling
    prefix ``.<repo>.rejected/`` (outside what Triton scans) and removed."""
    store = open_store(join(repo_url, model_name))
    base, _, name = repo_url.rstrip("/").rpartition("/")
    rejected = open_store(f"{base}/.{name}.rejected")
    moved = []
    for version in reversed(list_versions(store.url)):
        key = f"{version}/{ONNX_FILENAME}"
        try:
            path = _download(store, key)
        except FileNotFoundError:
            path = None
        try:
            if path is None:
                raise InvalidModelError(f"{store.url}/{key}: no such object")
            validate_onnx(path)
            break
        except InvalidModelError as exc:
            if path is not None:
                rejected.put(f"{model_name}-{version}-{time.time_ns()}/{ONNX_FILENAME}",
                             path.read_bytes())
            store.rmtree(str(version))
            moved.append((version, str(exc)))
        finally:
            if path is not None:
                shutil.rmtree(path.parent, ignore_errors=True)
    return moved


def put_config_if_changed(model_url: str, text: str) -> bool:
    """Write ``<model>/config.pbtxt`` unless it already holds ``text`` (a rewrite makes a
    polling server reload the model); returns whether it wrote."""
    store = open_store(model_url)
    try:
        if store.get("config.pbtxt").decode() == text:
            return False
    except FileNotFoundError:
        pass
    store.put("config.pbtxt", text.encode())
    return True


def prepare_remote_config(repo_url: str, flavour: str, gpu_instances: int = 1,
                          accelerator: str = "none", model_name: str = MODEL_NAME) -> None:
    """The trainer's ``_prepare_repository`` for a bucket: the production config of the
    [triton] settings, or (local flavour) the generated local config unless one is there."""
    from plumbing import triton_config
    model_url = join(repo_url, model_name)
    if flavour == "local":
        store = open_store(model_url)
        try:
            current = store.get("config.pbtxt").decode()
        except FileNotFoundError:
            store.put("config.pbtxt", triton_config.render(triton_config.local_config()).encode())
            return
        if not current.startswith(triton_config.GENERATED_HEADER):
            raise ModelRepositoryError(f"{model_url}/config.pbtxt is not the generated local "
                                       f"flavour; remove it (the local server generates it)")
        return
    text = triton_config.production_text(gpu_instances, accelerator)
    try:
        same = triton_config.same_config(open_store(model_url).get("config.pbtxt").decode(), text)
    except FileNotFoundError:
        same = False
    if not same:
        open_store(model_url).put("config.pbtxt", text.encode())
