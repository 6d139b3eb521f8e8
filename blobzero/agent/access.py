"""Who may use the agent, and how much: the bearer token, per-client rate limits, TLS material.

Shared by the gRPC service and the web front, so both ask the same questions the same way:

    access = Access.from_config(cfg)       # token from BLOBZERO_AGENT_TOKEN or agent.token_file
    access.authorized("Bearer s3cret")     # True when no token is configured
    access.allow(client)                   # the client's token bucket has a request left
    with acting_for(client):               # searches made now are charged to this client:
        access.charge(cost)                # None, or why the search is refused (cost limits)

A client is the peer's IP address (``client_of_peer`` reads gRPC's ``ipv4:1.2.3.4:5678``), or,
when the peer is a trusted proxy (an ingress, a load balancer), the address that proxy reports
in X-Forwarded-For (``client_key``). The token is never a TOML key: a config file gets
committed, copied and printed; a secret should not be. Everything here is off by default, which
is right on loopback and documented for anything else (docs/agent.md, "Running it in public";
docs/deploy.md, "The agent behind an ingress").

The cost limits and the trusted proxies are config keys (``agent.cost_per_minute``,
``agent.max_request_cost``, ``agent.trusted_proxies``; in a container the environment's
``BLOBZERO__AGENT__…``, names below).
"""
from __future__ import annotations

import contextlib
import contextvars
import hmac
import ipaddress
import logging
import os
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from plumbing import config as configuration

TOKEN_ENV = "BLOBZERO_AGENT_TOKEN"
#: agent.cost_per_minute from the environment: simulations x determinizations per client per minute
COST_ENV = "BLOBZERO__AGENT__COST_PER_MINUTE"
#: agent.max_request_cost: the most simulations x determinizations one search may cost
MAX_COST_ENV = "BLOBZERO__AGENT__MAX_REQUEST_COST"
#: agent.trusted_proxies: addresses or CIDRs of proxies whose X-Forwarded-For is believed
PROXIES_ENV = "BLOBZERO__AGENT__TRUSTED_PROXIES"
log = logging.getLogger("blobzero.agent")
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


def parse_proxies(text: str) -> tuple:
    """``10.0.0.0/8, 192.168.1.7`` -> networks; a ConfigError names what is not one."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise configuration.ConfigError(f"config key 'agent.trusted_proxies' must be comma-separated "
                                            f"addresses or CIDRs, got {item!r}") from None
    return tuple(networks)


def client_key(peer: str, forwarded_for: str | None, trusted: tuple = ()) -> str:
    """Who a request is from: ``peer`` (an address), unless it is a trusted proxy; then the
    right-most address of X-Forwarded-For that is not itself a trusted proxy (what the
    outermost trusted proxy saw; anything to its left is the client's to forge)."""
    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not trusted or not forwarded_for or not is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


@dataclass
class CostLimiter:
    """Search cost (simulations x determinizations) per client: ``per_minute`` on average, as a
    token bucket holding one minute's worth; ``max_request`` caps one search. 0 = no limit.
    At most MAX_CLIENTS buckets are kept (the least recently seen are forgotten first).

    The buckets live in this process: with N agent replicas the budget is **per client per
    replica**. A client routed to one replica (the Service's ClientIP affinity, the Ingresses'
    cookie and address hash: docs/deploy.md) gets ``per_minute``; one whose requests are spread
    over the replicas gets at most ``N x per_minute``."""
    per_minute: float = 0
    max_request: int = 0
    _buckets: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def charge(self, client: str, cost: int) -> str | None:
        """None when ``client`` may spend ``cost`` now (and it is spent), else why not."""
        if self.max_request and cost > self.max_request:
            return (f"a search of {cost} simulations x determinizations is over this agent's cap "
                    f"of {self.max_request} per request")
        if self.per_minute <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            budget, seen = self._buckets.pop(client, (self.per_minute, now))
            budget = min(self.per_minute, budget + (now - seen) * self.per_minute / 60.0)
            ok = budget >= cost
            self._buckets[client] = (budget - cost if ok else budget, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        if ok:
            return None
        return (f"rate limit: this client searched its {self.per_minute:g} simulations x "
                f"determinizations per minute on this replica; {budget:.0f} left, this search needs {cost}")


_acting_for: contextvars.ContextVar[str | None] = contextvars.ContextVar("blobzero_agent_client", default=None)


@contextlib.contextmanager
def acting_for(client: str):
    """Searches started inside are charged to ``client`` (``Access.charge``)."""
    token = _acting_for.set(client)
    try:
        yield
    finally:
        _acting_for.reset(token)


@dataclass
class Access:
    token: str | None = None
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))
    cost: CostLimiter = field(default_factory=CostLimiter)
    trusted_proxies: tuple = ()

    @classmethod
    def from_config(cls, cfg: configuration.Config, env: dict[str, str] | None = None) -> "Access":
        a = cfg.agent
        env = os.environ if env is None else env
        cost = CostLimiter(a.cost_per_minute, a.max_request_cost)
        return cls(load_token(cfg, env), RateLimiter(a.rate_limit, a.rate_burst), cost,
                   parse_proxies(a.trusted_proxies))

    def client_key(self, peer: str, forwarded_for: str | None) -> str:
        return client_key(peer, forwarded_for, self.trusted_proxies)

    def charge(self, cost: int) -> str | None:
        """Charge one search to the client the current request acts for (``acting_for``);
        None when allowed, else why not. Searches outside a request are not charged."""
        client = _acting_for.get()
        if client is None:
            return None
        return self.cost.charge(client, cost)

    def authorized(self, authorization: str | None) -> bool:
        """``authorization``: the header / metadata value ("Bearer <token>")."""
        if self.token is None:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def allow(self, client: str) -> bool:
        return self.limiter.allow(client)


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


class CertificateFiles:
    """The TLS certificate chain and key files, read again when either changes (a renewed
    Kubernetes Secret, cert-manager, certbot): ``reload_if_changed()`` is cheap (two stats).
    ``generation`` counts the loads; a pair that does not load (a half-written renewal) is
    logged and the previous one kept."""

    def __init__(self, cert: str | Path, key: str | Path):
        self.cert, self.key = Path(cert), Path(key)
        self._lock = threading.Lock()
        self.generation = 0
        self._stamp = None
        self.pem: tuple[bytes, bytes] = (b"", b"")
        if not self.reload_if_changed():
            raise configuration.ConfigError(f"config keys 'agent.tls_cert' / 'agent.tls_key': "
                                            f"cannot load {self.cert} and {self.key}")

    def _stat(self):
        return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in (self.cert.stat(), self.key.stat()))

    def reload_if_changed(self) -> bool:
        with self._lock:
            try:
                stamp = self._stat()
                if stamp == self._stamp:
                    return False
                cert, key = self.cert.read_bytes(), self.key.read_bytes()
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as exc:
                log.warning("TLS certificate %s / key %s not (re)loaded: %s; keeping the previous pair",
                            self.cert, self.key, exc)
                return False
            self._stamp, self.pem = stamp, (cert, key)
            self.generation += 1
            if self.generation > 1:
                log.info("TLS certificate %s reloaded", self.cert)
            return True

    def load_into(self, context: ssl.SSLContext) -> None:
        context.load_cert_chain(self.cert, self.key)
