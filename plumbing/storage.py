"""One storage interface for every service: a local directory or an S3-compatible bucket.

A location is a string: a local path (``var/games``), ``file:///abs/path`` or
``s3://bucket/prefix``. ``open_store(location)`` gives a ``Store`` over it, and code says
``store.put(key, data)`` / ``store.get(key)`` / ``store.list(prefix, start_after)`` without
learning where the bytes live (the fsspec idea, with the few operations we need)::

    store = open_store("s3://blobzero/run1/games")
    store.put("client-0/00000012-v000003.shard", data)      # one PUT: whole or nothing

Guarantees, both kinds:
* ``put`` is crash-safe: a reader sees the old object or the complete new one, never a prefix
  (local: temporary name, fsync, rename, fsync the directory; S3: one ``PutObject`` — an
  object exists only once the server has all its bytes, and botocore sends a checksum).
* ``list`` returns entries sorted by key, hidden names (``.``-prefixed parts) skipped; with
  ``start_after`` only keys after it (S3 ``StartAfter``: an incremental listing costs
  O(new keys), not O(all keys)).
* failures are ``OSError`` subclasses: ``StorageUnavailable`` when the endpoint cannot be
  reached or answers 5xx (callers retry), ``StorageRefused`` for credentials, a missing bucket
  or a bad request (``check`` turns it into a message naming the config key and the variable).

S3 settings come from the standard AWS environment, read by boto3 itself: ``AWS_ENDPOINT_URL``
(MinIO, Ceph RGW, GCS's S3 interface; unset = AWS), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``). No signing or HTTP is
written here.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from plumbing.fsio import atomic_write_bytes, check_writable

SCHEMES = ("", "file", "s3")
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


def is_remote(location: str | os.PathLike) -> bool:
    """True for an object-storage URL (``s3://``), False for a local path or ``file://``."""
    return isinstance(location, str) and urlparse(location).scheme == "s3"


def join(location: str | os.PathLike, *parts: str) -> str:
    """``location`` with ``parts`` appended: a URL stays a URL, a path stays a path."""
    if is_remote(location) or str(location).startswith("file://"):
        base = str(location).rstrip("/")
        return "/".join([base, *(p.strip("/") for p in parts if p)])
    return str(Path(location, *parts))


def local_path(location: str | os.PathLike) -> Path:
    """The local path of a local location (``file://`` stripped)."""
    text = str(location)
    if text.startswith("file://"):
        return Path(urlparse(text).path)
    if is_remote(text):
        raise ValueError(f"{text} is not a local path")
    return Path(text)


def parse_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{url!r} is not s3://bucket[/prefix]")
    return parsed.netloc, parsed.path.strip("/")


def validate_location(location: str, key: str) -> str | None:
    """None when ``location`` is usable, else why not (for the config schema)."""
    scheme = urlparse(location).scheme if "://" in location else ""
    if scheme not in SCHEMES:
        return f"must be a local path, file:///path or s3://bucket/prefix, got scheme {scheme!r}"
    if scheme == "s3":
        bucket, _ = parse_s3(location) if urlparse(location).netloc else ("", "")
        if not bucket:
            return f"must name a bucket (s3://bucket/prefix), got {location!r}"
    return None


class Store:
    """Objects under one root. Keys are relative, '/'-separated, never starting with '/'."""

    url: str

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
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
            self.get(key)
        except FileNotFoundError:
            return False
        return True

    def check(self, config_key: str) -> None:
        """Prove at start that objects can be written, read and deleted here; raise a
        ConfigError naming ``config_key`` (and the AWS variable to fix) otherwise."""
        raise NotImplementedError

    def child(self, sub: str) -> "Store":
        raise NotImplementedError

    def get_to_file(self, key: str, path: str | os.PathLike) -> Path:
        """Download one object to a local file (written crash-safely)."""
        return atomic_write_bytes(path, self.get(key))


class LocalStore(Store):
    """A directory on a local (or shared POSIX) filesystem."""

    local = True

    def __init__(self, root: str | os.PathLike):
        self.root = local_path(root)
        self.url = str(root)

    def path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def put(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.path(key), data)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "", start_after: str = "") -> list[Entry]:
        out = []
        base = self.root
        for directory, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel_dir = os.path.relpath(directory, base)
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

    def check(self, config_key: str) -> None:
        from plumbing.config import ConfigError
        try:
            check_writable(self.root)
        except OSError as exc:
            raise ConfigError(f"config key '{config_key}': cannot write to {self.root} "
                              f"({exc.strerror or exc})") from None

    def child(self, sub: str) -> "LocalStore":
        return LocalStore(self.path(sub))

    def rmtree(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)


def _s3_client():
    import logging

    import boto3
    logging.getLogger("botocore").setLevel(logging.WARNING)   # "Found credentials in ..." per client
    from botocore.config import Config as BotoConfig
    # connect quickly, retry a little (callers retry longer with their own backoff and logs)
    return boto3.session.Session().client("s3", config=BotoConfig(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60))


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

    def exists(self, key: str) -> bool:
        try:
            self._call(f"head {key}", self.client.head_object, Bucket=self.bucket,
                       Key=self._key(key))
        except FileNotFoundError:
            return False
        return True

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

    def check(self, config_key: str) -> None:
        from plumbing.config import ConfigError
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS S3 (AWS_ENDPOINT_URL unset)"
        try:
            self._call("bucket", self.client.head_bucket, Bucket=self.bucket)
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

    def rmtree(self, prefix: str) -> None:
        for entry in self.list(prefix.rstrip("/") + "/"):
            self.delete(entry.key)


def open_store(location: str | os.PathLike) -> Store:
    """A Store over ``location`` (local path, ``file://`` or ``s3://``)."""
    if is_remote(location):
        return S3Store(str(location))
    return LocalStore(location)


def triton_repository_url(url: str, endpoint: str | None = None) -> str:
    """Triton's spelling of an ``s3://bucket/prefix`` repository: with a custom endpoint
    (``AWS_ENDPOINT_URL``) ``s3://host:port/bucket/prefix`` over http, or
    ``s3://https://host:port/bucket/prefix``; plain ``s3://bucket/prefix`` for AWS itself."""
    bucket, prefix = parse_s3(url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "") if endpoint is None else endpoint
    path = f"{bucket}/{prefix}".rstrip("/")
    if not endpoint:
        return f"s3://{path}"
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = f"{parsed.hostname}:{port}"
    return f"s3://https://{host}/{path}" if parsed.scheme == "https" else f"s3://{host}/{path}"


def scratch_dir(prefix: str) -> Path:
    """A fresh local temporary directory (exports, downloads: never the data itself)."""
    return Path(tempfile.mkdtemp(prefix=prefix))
