"""``blobzero mirror``: keep a local directory in step with an object-storage prefix, and push
result files back — for tools that read a directory when the data lives in a bucket.

The strength tracker (``blobzero strength --watch``) reads the trainer's archive of versions
as a directory. Where checkpoints live in a bucket (``storage.url = s3://...``), a mirror beside
it (a sidecar sharing an ``emptyDir`` in Kubernetes, ``blobzero loop`` itself locally) copies
``<checkpoint_dir>/versions`` down and the tracker's ``strength.json`` up, so the tracker can run
on any node: no volume is shared between pods::

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

from plumbing.storage import is_remote, open_store, parse_s3

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
                base, _, name = url.rpartition("/")
                open_store(base).put(name, local.read_bytes())
                self._pushed[local] = mtime
        return len(new)


def _push_pair(text: str) -> tuple[Path, str]:
    local, sep, url = text.partition("=")
    if not sep or not is_remote(url):
        raise argparse.ArgumentTypeError(f"--push takes LOCAL_FILE=s3://bucket/key, got {text!r}")
    parse_s3(url)
    return Path(local), url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="s3://bucket/prefix to copy from")
    parser.add_argument("target", type=Path, help="local directory to copy into")
    parser.add_argument("--push", type=_push_pair, action="append", default=[],
                        metavar="FILE=s3://bucket/key", help="upload FILE whenever it changes (repeatable)")
    parser.add_argument("--watch", action="store_true", help="keep mirroring until SIGTERM")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between syncs (default 5)")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mirror %(levelname)s %(message)s")
    if not is_remote(args.source):
        print(f"blobzero mirror: the source must be s3://bucket/prefix, got {args.source!r}",
              file=sys.stderr)
        return 2
    mirror = Mirror(args.source, args.target, args.push)
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
