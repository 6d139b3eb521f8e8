"""A real S3 API server on loopback for the object-storage tests (moto's ``ThreadedMotoServer``,
started by the tests themselves): real HTTP, real boto3 signing and parsing, nothing mocked.

The server runs in a thread of the test process; its buckets live in the process, so a test can
stop the server (the endpoint is down: connections refused) and start it again on the same port
with every object still there."""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

logging.getLogger("werkzeug").setLevel(logging.ERROR)     # one line per request otherwise
KEY_ID, SECRET = "blobzero-test", "blobzero-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """One S3 endpoint on 127.0.0.1; ``env`` holds the AWS variables a client needs."""

    def __init__(self):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": KEY_ID,
                    "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
                    "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> "S3Server":
        for _ in range(50):         # after a stop the port may linger briefly
            try:
                self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
                self.server.start()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"cannot bind the S3 server to port {self.port}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET, region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def s3_environment(server: S3Server):
    """The AWS variables of ``server`` in os.environ (children inherit them), restored after."""
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def publish_as_the_trainer(url: str, version: int, directory) -> None:
    """What the trainer leaves in a run at ``url`` (a bucket) for ``version``: a fresh tiny
    network published to ``<url>/model_repository`` and archived with its manifest in
    ``<url>/checkpoints/versions`` (``directory``: where the ONNX file is exported first)."""
    from pathlib import Path

    from plumbing.model_repository import publish_version
    from plumbing.storage import open_store
    from trainer.export import export_fresh
    onnx = export_fresh("tiny", Path(directory) / f"v{version}.onnx", seed=version)
    assert publish_version(f"{url}/model_repository", onnx) == version
    archive = open_store(f"{url}/checkpoints/versions")
    archive.put(f"v{version:06d}.onnx", onnx.read_bytes())
    archive.put(f"v{version:06d}.json", json.dumps(
        {"version": version, "step": 10 * version, "rounds_seen": 64 * version,
         "positions_seen": 600 * version, "published_unix": 1000.0 + 60 * version}).encode())
