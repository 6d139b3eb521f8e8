"""Start a real ``blobzero agent`` process for the agent tests (gRPC, web page, metrics)."""
from __future__ import annotations

from pathlib import Path

from blobzero.agent import process
from triton_helpers import metric


class AgentProcess(process.AgentProcess):
    def metric(self, name: str, **labels: str) -> float:
        return metric(self.metrics(), name, **labels)


def start_agent(work: Path, *args: str, timeout: float = 60.0, tls_root: bytes | None = None) -> AgentProcess:
    """The agent on free ports, without a model repository of its own (``work/no-repository``)."""
    agent = process.start_agent(work, *args, "--set", f"storage.model_repository={work / 'no-repository'}",
                                timeout=timeout, tls_root=tls_root)
    return AgentProcess(**vars(agent))
