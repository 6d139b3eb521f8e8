"""Who may use the agent, and how much: the bearer token, per-client rate limits, TLS material.

Shared by the gRPC service and the web front, so both ask the same questions the same way:

    access = Access.from_config(cfg)       # token from BLOBZERO_AGENT_TOKEN or agent.token_file
    access.authorized("Bearer s3cret")     # True when no token is configured
    access.allow(client)                   # the client's token bucket has a request left

A client is the peer's IP address (``client_of_peer`` reads gRPC's ``ipv4:1.2.3.4:5678``). The
token is never a TOML key: a config file gets committed, copied and printed; a secret should not
be. Everything here is off by default, which is right on loopback and documented for anything
else (docs/agent.md, "Running it in public").
"""
from __future__ import annotations

import hmac
import os
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from plumbing import config as configuration

TOKEN_ENV = "BLOBZERO_AGENT_TOKEN"
#: clients remembered by the rate limiter (the least recently seen are forgotten first)
MAX_CLIENTS = 65_536


def load_token(cfg: configuration.Config, env: dict[str, str] | None = None) -> str | None:
    """The bearer token: $BLOBZERO_AGENT_TOKEN, else the file ``agent.token_file`` (stripped);
    None when neither is set. A named file that is missing or empty is a ConfigError."""
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV, "").strip():
        return env[TOKEN_ENV].strip()
    if not cfg.agent.token_file:
        return None
    path = Path(cfg.agent.token_file)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise configuration.ConfigError(f"config key 'agent.token_file': cannot read {path}: {exc}") from None
    if not token:
        raise configuration.ConfigError(f"config key 'agent.token_file': {path} is empty")
    return token


def client_of_peer(peer: str) -> str:
    """gRPC's peer string (``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5678``) -> the address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer


@dataclass
class RateLimiter:
    """A token bucket per client: ``rate`` requests per second on average, ``burst`` at once.
    rate 0 = no limit. Memory is bounded: at most MAX_CLIENTS buckets are kept."""
    rate: float
    burst: float
    _buckets: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, seen = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - seen) * self.rate)
            ok = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if ok else tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return ok


@dataclass
class Access:
    token: str | None = None
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))

    @classmethod
    def from_config(cls, cfg: configuration.Config, env: dict[str, str] | None = None) -> "Access":
        a = cfg.agent
        return cls(load_token(cfg, env), RateLimiter(a.rate_limit, a.rate_burst))

    def authorized(self, authorization: str | None) -> bool:
        """``authorization``: the header / metadata value ("Bearer <token>")."""
        if self.token is None:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def allow(self, client: str) -> bool:
        return self.limiter.allow(client)


def tls_files(cfg: configuration.Config) -> tuple[bytes, bytes] | None:
    """(certificate chain PEM, private key PEM) from ``agent.tls_cert`` / ``agent.tls_key``,
    or None when TLS is off. A file that cannot be read is a ConfigError."""
    a = cfg.agent
    if not a.tls_cert:
        return None
    out = []
    for key in ("tls_cert", "tls_key"):
        path = Path(getattr(a, key))
        try:
            out.append(path.read_bytes())
        except OSError as exc:
            raise configuration.ConfigError(f"config key 'agent.{key}': cannot read {path}: {exc}") from None
    return out[0], out[1]


def server_ssl_context(cfg: configuration.Config) -> ssl.SSLContext | None:
    """The web page's TLS context (TLS 1.2+), or None when TLS is off."""
    a = cfg.agent
    if not a.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(a.tls_cert, a.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise configuration.ConfigError(f"config keys 'agent.tls_cert' / 'agent.tls_key': {exc}") from None
    return context
