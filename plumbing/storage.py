"""One storage interface for every service: a local directory or an S3-compatible bucket.

A location is a string: a local path (``var/games``), ``file:///abs/path`` or
``s3://bucket/prefix``. ``open_store(location)`` gives a ``Store`` over it, and code says
``store.put(key, data)`` / ``store.get(key)`` / ``store.list(prefix, start_after)`` without
learning where the bytes live (the fsspec idea, with the few operations we need)::

    store = open_store("s3://blobzero/run1/games")
    store.put("client-0/00000012-v000003.shard", data)      # one PUT: whole or nothing

This module is the only place that tells the kinds apart. Everything stored goes through it:
game shards (plumbing/shards.py), the model repository (plumbing/model_repository.py), the
trainer's checkpoints and archive of published versions, and the strength results.
``locations(cfg.storage)`` says where each of them lives.

Guarantees, both kinds:
* ``put`` is crash-safe: a reader sees the old object or the complete new one, never a prefix
  (local: temporary name, fsync, rename, fsync the directory; S3: one ``PutObject`` — an
  object exists only once the server has all its bytes, and botocore sends a checksum).
  ``put_dir`` makes a whole directory appear at once (local: assembled beside the store and
  renamed in; S3: one PUT per object, so a one-object directory appears whole).
* ``list`` returns entries sorted by key, hidden names (``.``-prefixed parts) skipped; with
  ``start_after`` only keys after it (S3 ``StartAfter``: an incremental listing costs
  O(new keys), not O(all keys)).
* ``fetch`` gives a local file for a key (ONNX Runtime loads files): the file itself in a
  directory, a copy in a bounded local cache (``FileCache``) for a bucket.
* failures are ``OSError`` subclasses: ``StorageUnavailable`` when the endpoint cannot be
  reached or answers 5xx (callers retry), ``StorageRefused`` for credentials, a missing bucket
  or a bad request (``check`` turns it into a message naming the config key and the variable).

S3 settings come from the standard AWS environment, read by boto3 itself: ``AWS_ENDPOINT_URL``
(MinIO, Ceph RGW, GCS's S3 interface; unset = AWS), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``). No signing or HTTP is
written here.

A new backend is one ``Store`` subclass (put/get/stat/list/children/delete/check and the
directory operations) and its scheme in ``open_store`` and in the config schema's
``STORAGE_SCHEMES`` (plumbing/config.py).
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from plumbing.fsio import atomic_write_bytes, check_writable, fsync_dir

CREDENTIAL_VARIABLES = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"


class StorageError(OSError):
    """A storage operation failed (the message says which object and why)."""


class StorageUnavailable(StorageError):
    """The storage endpoint cannot be reached or is failing (5xx, timeout): retry later."""


class StorageRefused(StorageError):
    """The storage refused the request: credentials, permissions, a missing bucket."""


@dataclass(frozen=True)
class Entry:
    key: str          # relative to the store's root, '/'-separated
    size: int         # bytes
    mtime: float      # unix seconds (S3: LastModified)


# -- locations (strings) -------------------------------------------------------------------

def is_remote(location: str | os.PathLike) -> bool:
    """True for an object-storage URL (``s3://``), False for a local path or ``file://``."""
    return isinstance(location, str) and urlparse(location).scheme == "s3"


def join(location: str | os.PathLike, *parts: str) -> str:
    """``location`` with ``parts`` appended: a URL stays a URL, a path stays a path."""
    if is_remote(location) or str(location).startswith("file://"):
        base = str(location).rstrip("/")
        return "/".join([base, *(p.strip("/") for p in parts if p)])
    return str(Path(location, *parts))


def parent(location: str | os.PathLike) -> str:
    """The location one level up (``s3://b/run/checkpoints`` -> ``s3://b/run``)."""
    if is_remote(location):
        bucket, prefix = parse_s3(str(location))
        return f"s3://{bucket}/{prefix.rpartition('/')[0]}".rstrip("/")
    return str(local_path(location).parent)


def local_path(location: str | os.PathLike) -> Path:
    """The local path of a local location (``file://`` stripped)."""
    text = str(location)
    if text.startswith("file://"):
        return Path(urlparse(text).path)
    if is_remote(text):
        raise ValueError(f"{text} is not a local path")
    return Path(text)


def as_location(location: str | os.PathLike) -> str | Path:
    """A local location as a ``Path``, an object-storage URL as it is."""
    return str(location) if is_remote(location) else local_path(location)


def parse_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{url!r} is not s3://bucket[/prefix]")
    return parsed.netloc, parsed.path.strip("/")


@dataclass(frozen=True)
class Locations:
    """Where each kind of data of a run lives (``locations(cfg.storage)``)."""
    games: str          # game shards: <client>/<seq>-v<version>.shard (plumbing/shards.py)
    models: str         # the model repository Triton serves: blobnet/<n>/model.onnx
    checkpoints: str    # the trainer's checkpoint (trainer.pt)
    archive: str        # every published version: v<NNNNNN>.onnx + v<NNNNNN>.json manifests
    results: str        # strength.json, report.json, learning_curve.png: beside the checkpoints
    agent_games: str    # the agent's hosted games, <id>.json (blobzero/agent/gamestore.py)
    human_games: str    # finished human games as training shards (blobzero/agent/humangames.py)
    ladder: str         # ladder.json, ladder.png, ladder.prom (blobzero/ladder.py)


def beside_games(games: str | os.PathLike, name: str) -> str:
    """``<parent of the games location>/<name>``: what a run keeps beside its games. A games
    location with no parent (a bare ``games`` directory, or a bucket's root) gives ``name``
    relative to the working directory, or a hidden ``.<name>`` prefix in that bucket (which
    the shard listing skips)."""
    base = str(games).rstrip("/")
    if "/" not in base.split("://", 1)[-1]:
        return join(base, "." + name.replace("/", "-")) if is_remote(base) else join(*name.split("/"))
    return join(base.rsplit("/", 1)[0], name)


def locations(section) -> Locations:
    """The locations of a ``[storage]`` config section (plumbing/config.py StorageSection,
    whose ``storage.url`` already placed games/model_repository/checkpoints under one root)."""
    games = str(section.games_dir)
    return Locations(games=games, models=str(section.model_repository),
                     checkpoints=str(section.checkpoint_dir),
                     archive=join(section.checkpoint_dir, "versions"),
                     results=parent(section.checkpoint_dir),
                     agent_games=beside_games(games, "agent/games"),
                     human_games=beside_games(games, "human_games"),
                     ladder=beside_games(games, "ladder"))


def triton_repository_url(location: str | os.PathLike, endpoint: str | None = None) -> str:
    """Triton's ``--model-repository`` for a location: the absolute path of a directory; for
    ``s3://bucket/prefix`` with a custom endpoint (``AWS_ENDPOINT_URL``)
    ``s3://host:port/bucket/prefix`` over http, or ``s3://https://host:port/bucket/prefix``;
    plain ``s3://bucket/prefix`` for AWS itself."""
    if not is_remote(location):
        return str(local_path(location).resolve())
    bucket, prefix = parse_s3(str(location))
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "") if endpoint is None else endpoint
    path = f"{bucket}/{prefix}".rstrip("/")
    if not endpoint:
        return f"s3://{path}"
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = f"{parsed.hostname}:{port}"
    return f"s3://https://{host}/{path}" if parsed.scheme == "https" else f"s3://{host}/{path}"


# -- the interface ---------------------------------------------------------------------------

class Lock:
    """An exclusive lock held until ``release`` (or the holder's death)."""

    def __init__(self, handle=None):
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()            # closing drops the flock
            self._handle = None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Store:
    """Objects under one root. Keys are relative, '/'-separated, never starting with '/'."""

    url: str
    local: bool

    @property
    def name(self) -> str:
        """The last part of the root (``games`` of ``s3://b/run/games``)."""
        return self.url.rstrip("/").rpartition("/")[2]

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
        raise NotImplementedError

    def stat(self, key: str) -> Entry:
        """Size and modification time of one object; FileNotFoundError when there is none."""
        raise NotImplementedError

    def list(self, prefix: str = "", start_after: str = "") -> list[Entry]:
        """Every object whose key starts with ``prefix`` (and sorts after ``start_after``)."""
        raise NotImplementedError

    def children(self, prefix: str = "") -> list[str]:
        """Names one level below ``prefix`` that hold objects (``a/`` of ``a/b``), sorted."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove an object (no error when it is already gone)."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except FileNotFoundError:
            return False
        return True

    def check(self, config_key: str, write: bool = True) -> None:
        """Prove at start that objects can be written, read and deleted here (``write``; else
        that the location can be read); raise a ConfigError naming ``config_key`` (and the AWS
        variable to fix) otherwise."""
        raise NotImplementedError

    def child(self, sub: str) -> "Store":
        raise NotImplementedError

    def sibling(self, name: str) -> "Store":
        """The store ``name`` beside this one (``<parent>/<name>``)."""
        return open_store(join(parent(self.url), name))

    def put_dir(self, prefix: str, files: dict[str, bytes]) -> None:
        """Objects ``<prefix>/<name>`` that appear together (a model version)."""
        raise NotImplementedError

    def remove_dir(self, prefix: str) -> None:
        """Remove every object under ``<prefix>/``."""
        raise NotImplementedError

    def move(self, key: str, target: "Store", target_key: str) -> None:
        """Move an object, or every object under ``<key>/``, to ``target_key`` in ``target``."""
        raise NotImplementedError

    def touch(self, key: str) -> None:
        """Give an object a new modification time, same bytes (a polling server reloads it)."""
        raise NotImplementedError

    def lock(self, name: str, wait: bool = True) -> Lock | None:
        """Hold the exclusive lock ``name`` (a hidden key such as ``.clients/a.lock``) for as
        long as the returned Lock is not released and this process lives; None when another
        live process holds it and ``wait`` is False. Object storage has no locks: the lock is
        always granted, and uniqueness must come from the configuration (one trainer, client
        ids from pod names)."""
        raise NotImplementedError

    def capacity(self) -> tuple[int, int] | None:
        """(free bytes, total bytes) of the volume under a directory; None for a bucket."""
        return None

    def scratch_dir(self, sub: str) -> Path | None:
        """A local directory on the same filesystem as this store for temporary work (None
        for a bucket: use a local temporary directory)."""
        return None

    def fetch(self, key: str, cache: "FileCache | None" = None) -> Path:
        """A local file holding ``key``: the file itself in a directory, else a copy in
        ``cache`` (FileNotFoundError naming the object when there is none)."""
        raise NotImplementedError

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        """A local file holding ``key`` for the duration of the block (a temporary copy for a
        bucket, removed afterwards)."""
        directory = Path(tempfile.mkdtemp(prefix="blobzero-object-"))
        try:
            yield atomic_write_bytes(directory / key.rpartition("/")[2], self.get(key))
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def get_to_file(self, key: str, path: str | os.PathLike) -> Path:
        """Download one object to a local file (written crash-safely)."""
        return atomic_write_bytes(path, self.get(key))

    def __str__(self) -> str:
        return self.url


class LocalStore(Store):
    """A directory on a local (or shared POSIX) filesystem."""

    local = True

    def __init__(self, root: str | os.PathLike):
        self.root = local_path(root)
        self.url = str(root)

    @property
    def name(self) -> str:
        return self.root.resolve().name

    def path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def put(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.path(key), data)

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise FileNotFoundError(f"{self.path(key)}: no such file") from None

    def stat(self, key: str) -> Entry:
        st = os.stat(self.path(key))
        if not os.path.isfile(self.path(key)):
            raise FileNotFoundError(f"{self.path(key)}: not a file")
        return Entry(key, st.st_size, st.st_mtime)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "", start_after: str = "") -> list[Entry]:
        out = []
        head = prefix.rpartition("/")[0]          # walk only the directory the prefix names
        for directory, dirs, files in os.walk(self.path(head)):
            rel_dir = os.path.relpath(directory, self.root)
            below = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            # descend only where keys can start with the prefix
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and (f"{below}{d}/".startswith(prefix) or prefix.startswith(f"{below}{d}/"))]
            for name in files:
                if name.startswith("."):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
                if not key.startswith(prefix) or (start_after and key <= start_after):
                    continue
                try:
                    st = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue
                out.append(Entry(key, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e.key)

    def children(self, prefix: str = "") -> list[str]:
        directory = self.path(prefix.rstrip("/"))
        try:
            return sorted(e.name for e in os.scandir(directory)
                          if not e.name.startswith(".") and e.is_dir())
        except FileNotFoundError:
            return []

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def check(self, config_key: str, write: bool = True) -> None:
        from plumbing.config import ConfigError
        if not write:
            return                      # a directory not there yet reads as empty
        try:
            check_writable(self.root)
        except OSError as exc:
            raise ConfigError(f"config key '{config_key}': cannot write to {self.root} "
                              f"({exc.strerror or exc})") from None

    def child(self, sub: str) -> "LocalStore":
        return LocalStore(self.path(sub))

    def sibling(self, name: str) -> "LocalStore":
        return LocalStore(self.root.resolve().parent / name)

    def staging(self) -> Path:
        """Where ``put_dir`` assembles a directory: ``<parent>/.<name>.staging``, beside the
        store (not inside: a server polling the store would see it), on its filesystem."""
        root = self.root.resolve()
        return root.parent / f".{root.name}.staging"

    def put_dir(self, prefix: str, files: dict[str, bytes]) -> None:
        target = self.path(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = self.staging()
        staging.mkdir(exist_ok=True)
        if os.stat(staging).st_dev != os.stat(target.parent).st_dev:   # rename would not be atomic
            raise StorageError(f"{staging} and {target.parent} are on different filesystems, so "
                               f"the final rename would not be atomic; mount the parent directory "
                               f"of {self.root} instead of {self.root} itself")
        stage = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=staging))
        try:
            for name, data in files.items():
                atomic_write_bytes(stage / name, data)
            os.chmod(stage, 0o755)      # mkdtemp creates 0700; a server may run as another user
            os.rename(stage, target)    # an existing target (not empty) raises: never half-merged
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        fsync_dir(target.parent)

    def remove_dir(self, prefix: str) -> None:
        target = self.path(prefix)
        if not target.exists():
            return
        staging = self.staging()
        staging.mkdir(exist_ok=True)
        trash = Path(tempfile.mkdtemp(prefix=f"trash-{target.name}.", dir=staging))
        os.rename(target, trash / "d")        # vanishes at once from a watcher's view
        fsync_dir(target.parent)
        shutil.rmtree(trash, ignore_errors=True)

    def move(self, key: str, target: Store, target_key: str) -> None:
        source = self.path(key)
        if isinstance(target, LocalStore):
            destination = target.path(target_key)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, destination)
                fsync_dir(source.parent)
                fsync_dir(destination.parent)
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        _copy_then_delete(self, key, target, target_key)

    def touch(self, key: str) -> None:
        os.utime(self.path(key))

    def lock(self, name: str, wait: bool = True) -> Lock | None:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None                       # held by another live process
            raise
        return Lock(handle)

    def capacity(self) -> tuple[int, int] | None:
        try:
            fs = os.statvfs(self.root)
        except OSError:
            return None
        return fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize

    def scratch_dir(self, sub: str) -> Path:
        return self.path(sub)

    def fetch(self, key: str, cache: "FileCache | None" = None) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        return path

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        yield self.path(key)


def _copy_then_delete(source: Store, key: str, target: Store, target_key: str) -> None:
    """``move`` across stores: every object copied first, then deleted."""
    entries = source.list(key.rstrip("/") + "/")
    if not entries:
        target.put(target_key, source.get(key))
        source.delete(key)
        return
    for entry in entries:
        target.put(target_key + entry.key[len(key):], source.get(entry.key))
    for entry in entries:
        source.delete(entry.key)


_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()


def _s3_client():
    """One boto3 client per AWS environment (endpoint, credentials, region) and process: a
    client takes tens of milliseconds to build, and clients are thread-safe."""
    key = tuple(os.environ.get(v) for v in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                            "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                            "AWS_DEFAULT_REGION", "AWS_PROFILE"))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            import logging

            import boto3
            logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials in ..."
            from botocore.config import Config as BotoConfig
            # connect quickly, retry a little (callers retry longer with their own backoff and logs)
            _CLIENTS[key] = boto3.session.Session().client("s3", config=BotoConfig(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60))
        return _CLIENTS[key]


class S3Store(Store):
    """Objects under ``s3://bucket/prefix`` through boto3 (any S3-compatible server)."""

    local = False

    def __init__(self, url: str, client=None):
        self.bucket, self.prefix = parse_s3(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = client or _s3_client()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def _call(self, what: str, fn, **kwargs):
        """One boto3 call; its errors as StorageUnavailable / StorageRefused / FileNotFoundError."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        try:
            return fn(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("NoSuchKey", "404", "NotFound") and what != "bucket":
                raise FileNotFoundError(f"{self.url}: {what}: no such object") from None
            message = f"{self.url}: {what}: {code or status} {error.get('Message', '')}".rstrip()
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
                raise StorageUnavailable(message) from None
            raise StorageRefused(message, code) from None
        except NoCredentialsError:
            raise StorageRefused(f"{self.url}: {what}: no credentials ({CREDENTIAL_VARIABLES} "
                                 f"unset)", "NoCredentials") from None
        except BotoCoreError as exc:      # endpoint unreachable, timeouts, connection resets
            raise StorageUnavailable(f"{self.url}: {what}: {exc}") from None

    def put(self, key: str, data: bytes) -> None:
        self._call(f"put {key}", self.client.put_object, Bucket=self.bucket, Key=self._key(key),
                   Body=data)

    def get(self, key: str) -> bytes:
        response = self._call(f"get {key}", self.client.get_object, Bucket=self.bucket,
                              Key=self._key(key))
        try:
            return response["Body"].read()
        except Exception as exc:          # connection dropped mid-body
            raise StorageUnavailable(f"{self.url}: get {key}: {exc}") from None

    def stat(self, key: str) -> Entry:
        head = self._call(f"head {key}", self.client.head_object, Bucket=self.bucket,
                          Key=self._key(key))
        return Entry(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def list(self, prefix: str = "", start_after: str = "") -> list[Entry]:
        kwargs = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
        if start_after:
            kwargs["StartAfter"] = self._key(start_after)
        out = []
        while True:
            page = self._call(f"list {prefix or '/'}", self.client.list_objects_v2, **kwargs)
            for item in page.get("Contents", []):
                key = self._rel(item["Key"])
                if any(part.startswith(".") for part in key.split("/")):
                    continue
                out.append(Entry(key, int(item["Size"]), item["LastModified"].timestamp()))
            if not page.get("IsTruncated"):
                return out
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def children(self, prefix: str = "") -> list[str]:
        base = self._key(prefix)
        base = base + "/" if base and not base.endswith("/") else base
        kwargs = {"Bucket": self.bucket, "Prefix": base, "Delimiter": "/"}
        out = []
        while True:
            page = self._call(f"list {prefix or '/'}", self.client.list_objects_v2, **kwargs)
            out += [p["Prefix"][len(base):].rstrip("/") for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return sorted(n for n in out if n and not n.startswith("."))
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self.client.delete_object, Bucket=self.bucket,
                   Key=self._key(key))

    def check(self, config_key: str, write: bool = True) -> None:
        from plumbing.config import ConfigError
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS S3 (AWS_ENDPOINT_URL unset)"
        try:
            self._call("bucket", self.client.head_bucket, Bucket=self.bucket)
            if write:
                probe = f".write-check-{os.getpid()}"
                self.put(probe, b"ok\n")
                self.delete(probe)
        except StorageRefused as exc:
            code = exc.args[1] if len(exc.args) > 1 else ""
            if code in ("404", "NoSuchBucket", "NotFound"):
                why = f"bucket '{self.bucket}' does not exist at {endpoint}; create it first"
            elif code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                          "NoCredentials", "InvalidToken", "ExpiredToken"):
                why = (f"the endpoint {endpoint} refused the credentials for bucket "
                       f"'{self.bucket}' ({code}); check {CREDENTIAL_VARIABLES}")
            else:
                why = str(exc.args[0])
            raise ConfigError(f"config key '{config_key}' ({self.url}): {why}") from None
        except StorageUnavailable as exc:
            raise ConfigError(f"config key '{config_key}' ({self.url}): cannot reach the storage "
                              f"endpoint {endpoint} (AWS_ENDPOINT_URL): {exc}") from None

    def child(self, sub: str) -> "S3Store":
        return S3Store(join(self.url, sub), client=self.client)

    def sibling(self, name: str) -> "S3Store":
        return S3Store(join(parent(self.url), name), client=self.client)

    def put_dir(self, prefix: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.put(f"{prefix}/{name}", data)

    def remove_dir(self, prefix: str) -> None:
        for entry in self.list(prefix.rstrip("/") + "/"):
            self.delete(entry.key)

    def move(self, key: str, target: Store, target_key: str) -> None:
        _copy_then_delete(self, key, target, target_key)

    def touch(self, key: str) -> None:
        self.put(key, self.get(key))

    def lock(self, name: str, wait: bool = True) -> Lock:
        return Lock()

    def fetch(self, key: str, cache: "FileCache | None" = None) -> Path:
        return (cache or FileCache.default()).fetch(self, key)


def open_store(location: str | os.PathLike) -> Store:
    """A Store over ``location`` (local path, ``file://`` or ``s3://``)."""
    text = str(location)
    scheme = urlparse(text).scheme if "://" in text else ""
    if scheme == "s3":
        return S3Store(text)
    if scheme in ("", "file"):
        return LocalStore(location)
    raise ValueError(f"{text}: unknown storage scheme {scheme!r} (a local path, file:///path "
                     f"or s3://bucket/prefix)")


# -- local copies of objects -----------------------------------------------------------------

class FileCache:
    """Local copies of objects, for readers that need a file (ONNX Runtime loads a model from
    a path): ``fetch(store, key)`` downloads an object once and returns its file.

    * a copy is named by the object's URL, size and modification time, so an object replaced
      under the same key is fetched again, never served stale;
    * crash-safe: written under a hidden temporary name, fsynced, renamed (a kill leaves no
      partial copy; leftover temporaries older than an hour are removed);
    * bounded: after each download the least recently used copies are removed while the
      cache holds more than ``max_bytes`` (the newest copy always stays).

    The default lives in the system's temporary directory (``TMPDIR``; a container's writable
    ``/tmp`` even with a read-only root filesystem): ``<tmp>/blobzero-cache-<uid>``, 2 GB."""

    DEFAULT_BYTES = 2 * 10**9

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_BYTES):
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    @classmethod
    def default(cls) -> "FileCache":
        return cls(Path(tempfile.gettempdir()) / f"blobzero-cache-{os.getuid()}")

    def _name(self, store: Store, entry: Entry) -> str:
        digest = hashlib.sha256(f"{store.url}/{entry.key}|{entry.size}|{entry.mtime}".encode())
        return f"{digest.hexdigest()[:24]}-{entry.key.rpartition('/')[2]}"

    def fetch(self, store: Store, key: str) -> Path:
        entry = store.stat(key)                 # FileNotFoundError names the object
        path = self.directory / self._name(store, entry)
        try:
            if path.stat().st_size == entry.size:
                os.utime(path)                  # recently used: evicted last
                return path
        except FileNotFoundError:
            pass
        data = store.get(key)
        if len(data) != entry.size:             # replaced between the stat and the get
            entry = Entry(key, len(data), time.time())
            path = self.directory / self._name(store, entry)
        atomic_write_bytes(path, data)
        self.evict(keep=path)
        return path

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used copies beyond ``max_bytes`` and stale temporaries."""
        files, removed = [], []
        try:
            scan = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for item in scan:
            try:
                st = item.stat()
            except FileNotFoundError:
                continue
            if item.name.startswith("."):
                if time.time() - st.st_mtime > 3600:        # a killed download's temporary
                    Path(item.path).unlink(missing_ok=True)
                continue
            files.append((st.st_mtime, st.st_size, Path(item.path)))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
            total -= size
        return removed

