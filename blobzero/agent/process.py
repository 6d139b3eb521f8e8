"""``blobzero agent`` as a child process on free ports: for the benchmark and the tests.

    agent = start_agent(work_dir, "--onnx", "model.onnx")   # returns once gRPC health says SERVING
    agent.target, agent.page, agent.metrics(), agent.post("GetState", {...})
    agent.stop()                                             # SIGTERM; the exit code
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.triton_local import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class AgentProcess:
    process: subprocess.Popen
    log: Path
    grpc_port: int
    http_port: int
    metrics_port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def page(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def metrics(self) -> str:
        """The Prometheus text of its metrics port."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def post(self, method: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        """A JSON API call (with extra ``headers``): (HTTP status, parsed body)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/api/{method}",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_agent(work: Path, *args: str, timeout: float = 60.0, tls_root: bytes | None = None) -> AgentProcess:
    """``blobzero agent ARGS`` on free ports (its log in ``work/agent.log``), returned once its
    gRPC health check says SERVING; RuntimeError with the log's tail if it exits or stalls.
    tls_root: the CA certificate (PEM) to check the agent's TLS port with, when it serves TLS."""
    work.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port, metrics_port = free_ports(3)
    log = work / "agent.log"
    command = [sys.executable, "-m", "blobzero.cli", "agent", *args, "--grpc-port", str(grpc_port),
               "--http-port", str(http_port), "--set", f"metrics.agent_port={metrics_port}"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    agent = AgentProcess(process, log, grpc_port, http_port, metrics_port)
    deadline = time.monotonic() + timeout
    channel = (grpc.secure_channel(agent.target, grpc.ssl_channel_credentials(tls_root)) if tls_root
               else grpc.insecure_channel(agent.target))
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"blobzero agent exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service="blobzero.v1.BlobAgent"), timeout=1)
                if status.status == health_pb2.HealthCheckResponse.SERVING:
                    return agent
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                agent.stop()
                raise RuntimeError(f"blobzero agent not serving after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
