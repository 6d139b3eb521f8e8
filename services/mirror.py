"""``blobzero mirror``: keep a local directory in step with a storage location (a bucket prefix
or a directory), and push result files back.

No part of BlobZero needs it any more: the strength tracker, the arena, ``blobzero game`` and
the agent read model versions through plumbing/storage.py (``--set storage.url=s3://…``), and
``blobzero loop`` carries no mirror. It is kept, as a general tool, for the deployment files
that still run it as a sidecar (k8s/components/object-storage, docker-compose.objectstore.yml)
until they run those commands on the bucket directly; then it can go. As they use it::

    blobzero mirror --watch s3://blobzero/run/checkpoints/versions /var/lib/blobzero/checkpoints/versions \\
        --push /var/lib/blobzero/strength/strength.json=s3://blobzero/run/strength/strength.json

Each object is copied once, crash-safely (an ONNX file before its manifest, so a reader that
sees a manifest finds its model); a pushed file is uploaded again whenever it changes.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from plumbing.storage import open_store, parent

log = logging.getLogger("blobzero.mirror")


class Mirror:
    def __init__(self, source: str, target: str | Path, push: list[tuple[Path, str]] = ()):
        self.store = open_store(source)
        self.target = Path(target)
        self.push = [(Path(local), url) for local, url in push]
        self.copied: set[str] = set()
        self._pushed: dict[Path, float] = {}

    def sync(self) -> int:
        """Copy the objects not copied yet and push changed files; returns how many objects
        were copied. Storage errors propagate (OSError): the caller retries."""
        new = [e.key for e in self.store.list() if e.key not in self.copied]
        for key in sorted(new, key=lambda k: (not k.endswith(".onnx"), k)):
            self.store.get_to_file(key, self.target / key)
            self.copied.add(key)
        for local, url in self.push:
            try:
                mtime = local.stat().st_mtime
            except FileNotFoundError:
                continue
            if self._pushed.get(local) != mtime:
                open_store(parent(url)).put(url.rpartition("/")[2], local.read_bytes())
                self._pushed[local] = mtime
        return len(new)


def _push_pair(text: str) -> tuple[Path, str]:
    local, sep, url = text.partition("=")
    if not sep or not local or "/" not in url.strip("/"):
        raise argparse.ArgumentTypeError(f"--push takes LOCAL_FILE=s3://bucket/key (or a path), "
                                         f"got {text!r}")
    try:
        open_store(parent(url))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--push {text!r}: {exc}") from None
    return Path(local), url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="s3://bucket/prefix (or a directory) to copy from")
    parser.add_argument("target", type=Path, help="local directory to copy into")
    parser.add_argument("--push", type=_push_pair, action="append", default=[],
                        metavar="FILE=s3://bucket/key", help="upload FILE whenever it changes (repeatable)")
    parser.add_argument("--watch", action="store_true", help="keep mirroring until SIGTERM")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between syncs (default 5)")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mirror %(levelname)s %(message)s")
    try:
        mirror = Mirror(args.source, args.target, args.push)
    except ValueError as exc:           # an unknown scheme
        print(f"blobzero mirror: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while True:
        try:
            copied = mirror.sync()
            if copied:
                log.info("copied %d objects from %s to %s", copied, args.source, args.target)
        except OSError as exc:
            if not args.watch:
                print(f"blobzero mirror: {exc}", file=sys.stderr)
                return 1
            log.warning("%s; retrying", exc)
        if not args.watch or stop.wait(args.interval):
            return 0
