"""Start a real ``blobzero agent`` process for the agent tests (gRPC, web page, metrics)."""
from __future__ import annotations

import contextlib
from pathlib import Path

from blobzero.agent import process
from triton_helpers import make_repository, metric, start_server


class AgentProcess(process.AgentProcess):
    def metric(self, name: str, **labels: str) -> float:
        return metric(self.metrics(), name, **labels)


def start_agent(work: Path, *args: str, timeout: float = 60.0, tls_root: bytes | None = None,
                storage: Path | str | None = None) -> AgentProcess:
    """The agent on free ports, without a model repository of its own (``work/no-repository``);
    its run storage (hosted games: ``<storage>/agent/games``) is ``storage`` or ``work/run``."""
    run = storage or work / "run"
    agent = process.start_agent(work, *args, "--set", f"storage.model_repository={work / 'no-repository'}",
                                "--set", f"storage.games_dir={run}/games",
                                timeout=timeout, tls_root=tls_root)
    return AgentProcess(**vars(agent))


@contextlib.contextmanager
def agent_behind_triton(root: Path, onnx: Path, *args: str, tls_root: bytes | None = None):
    """A real tritonserver serving ``onnx`` as version 1, and the agent asking it: yields
    (server, agent); both stopped after (the agent must exit 0). ``tls_root``: the agent's own
    certificate when ``args`` give it TLS."""
    server = start_server(root, make_repository(root, onnx))
    try:
        proc = start_agent(root / "agent", "--triton", server.url, *args, tls_root=tls_root)
        try:
            yield server, proc
        finally:
            assert proc.stop() == 0, proc.log.read_text()[-2000:]
    finally:
        server.stop()
