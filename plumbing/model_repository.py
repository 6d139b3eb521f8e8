"""The model repository: numeric version directories, validated and published atomically,
in a directory or a bucket alike (through plumbing/storage.py).

Layout (identical in both flavours; only ``config.pbtxt`` differs, see plumbing/triton_config.py)::

    <parent>/<repo>/blobnet/config.pbtxt
    <parent>/<repo>/blobnet/<n>/model.onnx   n = 1, 2, ... (Triton ignores non-numeric names)
    <parent>/.<repo>.staging/                publisher's scratch space and lock (a directory)
    <parent>/.<repo>.rejected/               versions set aside as unusable

The staging directory is a *sibling* of the repository, not inside it: in poll mode Triton
treats every subdirectory of the repository as a model (a ``.staging`` inside it fails to
load and turns the server not-ready), and any write inside ``blobnet/`` triggers a reload.
It must be on the same filesystem as the repository (checked), so mount the repository's
parent, not the repository itself, into a container that publishes.

``publish_version`` validates that the file really loads and runs, then makes the version
appear whole (``Store.put_dir``: a directory is assembled in staging, fsynced and renamed in;
in a bucket the version is one object, one PUT): a watcher (Triton in poll mode) sees either
no new version or a complete one, never a partial file. A model that does not load is never
published. Readers that need a file (ONNX Runtime) get one through ``ModelVersions``.
"""
from __future__ import annotations

import functools
import os
import shutil
import time
from pathlib import Path

import numpy as np

from plumbing import triton_config
from plumbing.netspec import (CONTRACTS, INPUTS, MASK, MODEL_NAME, ONNX_FILENAME, OUTPUTS, STATE,
                              WORLD, WORLD_MODEL_NAME, WORLD_VALUE)
from plumbing.storage import FileCache, LocalStore, Store, join, open_store

_LOCK_NAME = "publish.lock"


class ModelRepositoryError(Exception):
    """The repository is missing, empty or malformed."""


class InvalidModelError(ModelRepositoryError):
    """An ONNX file does not load, or does not match the BlobNet wire contract."""


def _store(location: Store | str | os.PathLike) -> Store:
    return location if isinstance(location, Store) else open_store(location)


def list_versions(model_dir: Store | str | os.PathLike) -> list[int]:
    """Version numbers present in ``model_dir`` (numeric directories, no leading zero), ascending."""
    return sorted(int(n) for n in _store(model_dir).children("")
                  if n.isdigit() and not n.startswith("0"))


#: Real positions a model must answer sensibly before it is published (see validation_positions).
VALIDATION_POSITIONS = 96
#: Slack for float32 rounding in the output checks (a softmax sums to 1 within ~1e-6).
_TOLERANCE = 1e-3


def _random_positions(seed: int):
    """Endless (row, Round) pairs: rounds of 3..8 players and 1..max cards from ``seed``, played
    by uniformly random legal moves to a random depth (every trump, seat and phase appears)."""
    from blobcore import Round, max_cards  # lazy: only validation needs the core

    rng = np.random.default_rng(seed)
    while True:
        n_players = int(rng.integers(3, 9))
        rnd = Round.from_seed(int(rng.integers(1 << 31)), n_players,
                              int(rng.integers(1, max_cards(n_players) + 1)))
        for _ in range(int(rng.integers(n_players * (rnd.cards + 1)))):
            legal = rnd.legal_actions()
            rnd.apply(legal[int(rng.integers(len(legal)))])
        yield rng, rnd


@functools.lru_cache(maxsize=1)
def validation_positions(n: int = VALIDATION_POSITIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` real positions, encoded by the game core exactly as self-play encodes them:
    (states (n,256), masks (n,52), players at the table (n,)). Deterministic: rounds of 3..8
    players and 1..max cards from fixed seeds, played by uniformly random legal moves to a
    random depth, so bids and card play, every trump and seat appear. Some positions are
    encoded from another seat's view (a searcher-perspective search asks for those)."""
    from blobcore import encode

    states = np.zeros((n, INPUTS[STATE]), np.float32)
    masks = np.zeros((n, INPUTS[MASK]), np.float32)
    players = np.zeros(n, np.int64)
    row = 0
    for rng, rnd in _random_positions(20_241_130):
        if row == n:
            break
        n_players = rnd.n_players
        observer = (None if row % 3 else
                    (rnd.current_player + int(rng.integers(1, n_players))) % n_players)
        state, mask = encode(rnd, observer)
        if mask.sum() < 1:
            continue
        states[row], masks[row], players[row] = state, mask, n_players
        row += 1
    return states, masks, players


@functools.lru_cache(maxsize=1)
def validation_worlds(n: int = VALIDATION_POSITIONS) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real whole deals (``blobcore.encode.encode_world_of``) in the manner of
    ``validation_positions``: (worlds (n, 620), players at the table (n,))."""
    from blobcore.encode import encode_world_of

    worlds, players = [], []
    for _, rnd in _random_positions(20_261_207):
        if len(worlds) == n:
            break
        if not rnd.is_terminal:
            worlds.append(encode_world_of(rnd))
            players.append(rnd.n_players)
    return np.array(worlds, np.float32), np.array(players, np.int64)


def _load_session(path: Path):
    import onnxruntime as ort  # lazy: `blobzero serve --help` should not pay for it

    if not path.is_file():
        raise InvalidModelError(f"{path}: no such file")
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for parse/graph errors
        raise InvalidModelError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc


def _seated_values_problem(value: np.ndarray, players: np.ndarray) -> str | None:
    seated = np.arange(value.shape[1])[None, :] < players[:, None]
    if ((value < -_TOLERANCE) | (value > 1 + _TOLERANCE))[seated].any():
        return (f"values of seated players span {value[seated].min():.4g}.."
                f"{value[seated].max():.4g}, outside [0, 1]")
    return None


def _run_checked(path: Path, session, feeds: dict, outputs: dict[str, int], n: int) -> list[np.ndarray]:
    """The outputs of one validation batch, each (n, width) and finite, or InvalidModelError."""
    try:
        results = session.run(list(outputs), feeds)
    except Exception as exc:
        raise InvalidModelError(f"{path}: fails on a test batch ({exc})") from exc
    for (name, width), array in zip(outputs.items(), results):
        if array.shape != (n, width):
            raise InvalidModelError(f"{path}: output '{name}' is {array.shape}, expected ({n}, {width})")
        bad = int(np.count_nonzero(~np.isfinite(array).all(axis=1)))
        if bad:
            raise InvalidModelError(f"{path}: output '{name}' is NaN or inf for {bad} of {n} real "
                                    f"positions")
    return results


def validate_onnx(path: str | os.PathLike, model_name: str = MODEL_NAME) -> None:
    """Raise InvalidModelError unless ``path`` loads in ONNX Runtime, has the contract's
    inputs/outputs (``model_name``'s, plumbing/netspec.py's CONTRACTS), and answers real
    positions (``validation_positions``; whole deals, ``validation_worlds``, for the world-value
    model) sensibly: outputs of the right shapes, all finite, each policy row a distribution
    over the legal actions, and the values of the seats at the table in [0, 1]. A model that is
    fine on an all-zeros input but NaN on real positions is caught here, before any client
    plays with it."""
    if model_name not in CONTRACTS:
        raise ValueError(f"unknown model {model_name!r}; a repository serves {', '.join(CONTRACTS)}")
    if model_name == WORLD_MODEL_NAME:
        path = Path(path)
        session = _load_session(path)
        inputs, outputs = CONTRACTS[model_name]
        _check_signature(path, {i.name: i for i in session.get_inputs()}, inputs, "input")
        _check_signature(path, {o.name: o for o in session.get_outputs()}, outputs, "output")
        worlds, players = validation_worlds()
        (value,) = _run_checked(path, session, {WORLD: worlds}, outputs, len(worlds))
        problem = _seated_values_problem(value, players)
        if problem:
            raise InvalidModelError(f"{path}: output '{WORLD_VALUE}' on {len(worlds)} real deals: {problem}")
        return
    _validate_blobnet(Path(path))


def _validate_blobnet(path: Path) -> None:
    session = _load_session(path)
    _check_signature(path, {i.name: i for i in session.get_inputs()}, INPUTS, "input")
    _check_signature(path, {o.name: o for o in session.get_outputs()}, OUTPUTS, "output")
    states, masks, players = validation_positions()
    n = len(states)
    policy, value = _run_checked(path, session, {STATE: states, MASK: masks}, OUTPUTS, n)
    problems = []
    if (policy < -_TOLERANCE).any():
        problems.append("policy has negative entries")
    illegal = np.abs(policy * (masks < 0.5)).sum(axis=1)
    if (illegal > _TOLERANCE).any():
        problems.append(f"policy puts up to {illegal.max():.3g} on illegal actions")
    sums = policy.sum(axis=1)
    if (np.abs(sums - 1) > _TOLERANCE).any():
        problems.append(f"policy rows sum to {sums.min():.4g}..{sums.max():.4g}, not 1")
    problem = _seated_values_problem(value, players)
    if problem:
        problems.append(problem)
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
    repo = _store(repo_root)
    hint = ("publish one with plumbing.model_repository.publish_version, or start with "
            "`blobzero serve --init-preset tiny` to export a freshly initialised network as version 1 "
            "(the trainer publishes version 1 at start: blobzero train --init-only)")
    if isinstance(repo, LocalStore) and not repo.root.is_dir():
        raise ModelRepositoryError(f"model repository {repo_root} does not exist; {hint}")
    model = repo.child(model_name)
    versions = list_versions(model)
    if not versions:
        raise ModelRepositoryError(
            f"model repository {repo_root} has no version of '{model_name}' "
            f"(expected {join(repo_root, model_name)}/<n>/{ONNX_FILENAME}); {hint}")
    try:
        with model.local_file(f"{versions[-1]}/{ONNX_FILENAME}") as path:
            validate_onnx(path, model_name)
    except (InvalidModelError, FileNotFoundError) as exc:
        raise ModelRepositoryError(f"model repository {repo_root} is malformed: newest version "
                                   f"{versions[-1]} is unusable: {exc}") from exc
    return versions


def staging_dir(repo_root: str | os.PathLike) -> Path:
    """The publisher's scratch directory of a repository directory: ``<parent>/.<name>.staging``."""
    return LocalStore(repo_root).staging()


def check_repository(repo_root: str | os.PathLike, config_key: str) -> None:
    """At start: the repository and its staging space beside it take writes (ConfigError
    naming ``config_key`` otherwise)."""
    repo = _store(repo_root)
    repo.check(config_key)
    repo.sibling(f".{repo.name}.staging").check(config_key)


def publish_version(repo_root: str | os.PathLike, onnx_path: str | os.PathLike, keep_last: int = 3,
                    model_name: str = MODEL_NAME, version: int | None = None) -> int:
    """Publish ``onnx_path`` as the next version of ``model_name`` (or as ``version``, which
    must be newer than every stored one: the trainer publishes blobworld N beside blobnet N);
    returns its number.

    Steps: validate the file (a truncated or foreign model raises InvalidModelError and nothing
    changes); make ``<repo_root>/<model_name>/<n>/model.onnx`` appear whole (``Store.put_dir``);
    prune to the newest ``keep_last`` versions (``Store.remove_dir``: a version vanishes whole).
    One publisher at a time per repository (the lock in its staging space; a bucket has one
    publisher, the trainer, by construction).
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    validate_onnx(onnx_path, model_name)      # before anything is written
    data = Path(onnx_path).read_bytes()
    repo = _store(repo_root)
    staging = repo.sibling(f".{repo.name}.staging")
    with staging.lock(_LOCK_NAME):
        _clear_stale(staging)
        newest = max(list_versions(repo.child(model_name)), default=0)
        if version is not None and version <= newest:
            raise ValueError(f"cannot publish {model_name} version {version}: version {newest} "
                             f"is already there")
        version = newest + 1 if version is None else version
        repo.put_dir(f"{model_name}/{version}", {ONNX_FILENAME: data})
        prune(repo, keep_last, model_name)
    return version


def _clear_stale(staging: Store) -> None:
    """Remove leftovers of publishers that crashed mid-way (we hold the lock, so none is live)."""
    scratch = staging.scratch_dir("")
    if scratch is None:
        return
    for entry in scratch.iterdir():
        if entry.name != _LOCK_NAME:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def prune(repo_root: Store | str | os.PathLike, keep_last: int, model_name: str = MODEL_NAME) -> list[int]:
    """Remove all but the newest ``keep_last`` versions; returns the removed numbers."""
    repo = _store(repo_root)
    removed = list_versions(repo.child(model_name))[:-keep_last]
    for version in removed:
        repo.remove_dir(f"{model_name}/{version}")
    return removed


def rejected_dir(repo_root: str | os.PathLike) -> Path:
    """Where unusable versions of a repository directory are moved: ``<parent>/.<repo>.rejected``
    (outside what Triton scans, on the same filesystem so the move is a rename)."""
    repo = LocalStore(repo_root)
    return repo.sibling(f".{repo.name}.rejected").root


def set_aside_unusable(repo_root: str | os.PathLike, model_name: str = MODEL_NAME) -> list[tuple[int, str]]:
    """Move the newest versions that fail ``validate_onnx`` (an empty or half-written directory
    left by a writer that bypassed ``publish_version``, a truncated file) out of the repository
    to ``.<repo>.rejected`` beside it, newest first, until the newest one left is usable or none
    is left; returns ``[(version, why), ...]``. With poll mode and ``latest: 1``, Triton would
    otherwise try only the broken newest version and never serve the good one below it."""
    repo = _store(repo_root)
    model = repo.child(model_name)
    rejected = repo.sibling(f".{repo.name}.rejected")
    moved = []
    for version in reversed(list_versions(model)):
        key = f"{version}/{ONNX_FILENAME}"
        try:
            with model.local_file(key) as path:
                validate_onnx(path)
            break
        except (InvalidModelError, FileNotFoundError) as exc:
            why = str(exc) if isinstance(exc, InvalidModelError) else f"{model.url}/{key}: no such file"
            model.move(str(version), rejected, f"{model_name}-{version}-{time.time_ns()}")
            moved.append((version, why))
    return moved


def version_mtime(model_dir: str | os.PathLike, version: int) -> float:
    """When ``version`` was published (unix seconds)."""
    entries = _store(model_dir).list(f"{version}/")
    return max((e.mtime for e in entries), default=time.time())


# -- config.pbtxt (its two flavours: plumbing/triton_config.py) -------------------------------

def _config_text(model: Store) -> str | None:
    try:
        return model.get("config.pbtxt").decode()
    except FileNotFoundError:
        return None


def check_not_foreign(model_dir: str | os.PathLike) -> None:
    """Raise ModelRepositoryError if ``model_dir`` has a config.pbtxt we did not generate."""
    model = _store(model_dir)
    current = _config_text(model)
    if current is None or current.startswith(triton_config.GENERATED_HEADER):
        return
    source = join(model.url, "config.pbtxt")
    try:
        backend = triton_config.parse_config(current, source).backend or "(unset)"
    except triton_config.ModelConfigError as exc:
        raise ModelRepositoryError(str(exc)) from exc
    raise ModelRepositoryError(
        f"{source} is not the generated local flavour (backend {backend!r}); the local "
        f"tritonserver only runs the python-based backend '{triton_config.LOCAL_BACKEND}'. Move "
        f"the file away: the local config is generated from {triton_config.PRODUCTION_CONFIG} on "
        f"start.")


def write_config(model_dir: str | os.PathLike, text: str) -> bool:
    """Write ``<model>/config.pbtxt`` unless it already holds ``text`` (a rewrite makes a
    polling server reload the model); returns whether it wrote."""
    model = _store(model_dir)
    if _config_text(model) == text:
        return False
    model.put("config.pbtxt", text.encode())
    return True


def write_local_config(model_dir: str | os.PathLike, instances: int = 1, intra_op_threads: int = 1,
                       model_name: str = MODEL_NAME):
    """Write the local flavour's config into ``model_dir`` unless it is already identical;
    returns where it is (a Path in a directory). Refuses to overwrite a config it did not
    generate (e.g. a copied production config, whose ``onnxruntime`` backend the wheel's
    server does not have): that is the user's file."""
    check_not_foreign(model_dir)
    write_config(model_dir, triton_config.render(triton_config.local_config(instances, intra_op_threads,
                                                                            model_name)))
    model = _store(model_dir)
    return model.path("config.pbtxt") if isinstance(model, LocalStore) else join(model.url, "config.pbtxt")


#: Old name of ``write_config``.
put_config_if_changed = write_config


def prepare_config(repo_root: str | os.PathLike, flavour: str, gpu_instances: int = 1,
                   accelerator: str = "none", model_name: str = MODEL_NAME) -> None:
    """The trainer's preparation of ``<repo>/<model>/config.pbtxt``: the production config of
    the [triton] settings (rewritten only when its meaning changes), or (local flavour) the
    generated local config unless one is there — the local server may have generated one with
    more instances, and rewriting it would make a polling server reload for nothing."""
    model = _store(repo_root).child(model_name)
    if flavour == "local":
        check_not_foreign(model)
        if _config_text(model) is None:
            write_config(model, triton_config.render(triton_config.local_config()))
        return
    text = triton_config.production_text(gpu_instances, accelerator)
    current = _config_text(model)
    if current is None or not triton_config.same_config(current, text):
        model.put("config.pbtxt", text.encode())


#: Old name of ``prepare_config``.
prepare_remote_config = prepare_config


# -- model versions as local files, for the readers (arena, game, strength, agent) -----------

class ModelVersions:
    """Model versions a command reads: the repository Triton serves (``<repo>/blobnet/<n>/``)
    and the trainer's archive of every published version (``v<NNNNNN>.onnx``), each a directory
    or a bucket. ``path(n)`` gives a local file ONNX Runtime can load: the file itself in a
    directory, a copy in the bounded local ``FileCache`` from a bucket."""

    def __init__(self, repository: str | os.PathLike, archive: str | os.PathLike,
                 cache: FileCache | None = None, model_name: str = MODEL_NAME):
        self.repository = _store(join(repository, model_name))
        self.archive = _store(archive)
        # the trainer archives blobworld N beside blobnet N as v<N>.world.onnx
        self.archive_suffix = ".world.onnx" if model_name == WORLD_MODEL_NAME else ".onnx"
        self.cache = cache or FileCache.default()

    @classmethod
    def from_config(cls, section, model_name: str = MODEL_NAME) -> "ModelVersions":
        """From a ``[storage]`` config section (plumbing/config.py StorageSection)."""
        from plumbing.storage import locations
        where = locations(section)
        return cls(where.models, where.archive, FileCache.default(), model_name)

    def describe(self) -> str:
        return f"{self.repository.url} (archive {self.archive.url})"

    def served(self) -> list[int]:
        """The versions in the repository, ascending (StorageError when it cannot be listed)."""
        return list_versions(self.repository)

    def latest(self) -> int | None:
        versions = self.served()
        return versions[-1] if versions else None

    def path(self, version: int) -> Path:
        """A local ONNX file of ``version`` (from the archive, else the repository); ValueError
        naming both places when neither has it, StorageError when they cannot be read. The
        archive first: the repository keeps only the newest ``trainer.keep_versions``, so a
        reader that loads the file again minutes later (the strength tracker, once per
        opponent) would find a version the trainer has pruned meanwhile."""
        for store, key in ((self.archive, archive_key(version, self.archive_suffix)),
                           (self.repository, f"{version}/{ONNX_FILENAME}")):
            try:
                return store.fetch(key, self.cache)
            except FileNotFoundError:
                continue
        raise ValueError(f"model version {version} is neither in {self.repository.url} nor "
                         f"archived in {self.archive.url}")


def archive_key(version: int, suffix: str = ".onnx") -> str:
    """The key of a version in the trainer's archive: ``v<NNNNNN>.onnx`` (manifest ``.json``)."""
    return f"v{version:06d}{suffix}"
