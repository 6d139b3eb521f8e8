"""Long-running services: the local Triton launcher and (later) the agent service."""
