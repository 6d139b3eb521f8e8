"""Expose a service's Prometheus registry over HTTP (shared by self-play and trainer)."""
from __future__ import annotations

import errno

from prometheus_client import CollectorRegistry, start_http_server

from plumbing.config import ConfigError


def serve(registry: CollectorRegistry, host: str, port: int, key: str = "metrics port"):
    """Serve ``/metrics`` on host:port in a daemon thread; port 0 = off. Returns the server.

    A port that is taken (or an address that cannot be bound) raises ConfigError naming the
    config ``key`` that chose it, instead of a bare ``OSError``."""
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        why = ("is already in use (another instance running?)" if exc.errno == errno.EADDRINUSE
               else f"cannot be bound ({exc.strerror or exc})")
        raise ConfigError(f"config key '{key}': metrics port {port} on {host} {why}; choose "
                          f"another port, or 0 to turn the metrics endpoint off") from None
    return server
