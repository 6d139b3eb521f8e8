"""Expose a service's Prometheus registry over HTTP (shared by self-play and trainer)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


def serve(registry: CollectorRegistry, host: str, port: int):
    """Serve ``/metrics`` on host:port in a daemon thread; port 0 = off. Returns the server."""
    if port == 0:
        return None
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
