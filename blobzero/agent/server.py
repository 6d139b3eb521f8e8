"""``blobzero agent``: the trained agent as a service (docs/agent.md).

    blobzero agent                         # ONNX Runtime in process on storage.model_repository
    blobzero agent --triton HOST:8001      # the network behind Triton
    blobzero agent --local-triton          # start the local tritonserver on the repository, use it
    blobzero agent --onnx model.onnx --model latest

Serves ``blobzero.v1.BlobAgent`` (plus grpc.health.v1 and reflection) on ``agent.grpc_port``,
the play page and the JSON API on ``agent.http_port`` and Prometheus metrics on
``metrics.agent_port``. SIGTERM / Ctrl-C stop it cleanly (requests in flight get 5 s).
TLS certificate files are read again when they change (a renewed Secret): new connections on
both ports get the new pair, open ones keep theirs. Each search is charged to the client it is
made for (access.CostLimiter: simulations x determinizations per minute, a cap per request).
"""
from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
import threading
from pathlib import Path

from plumbing import config as configuration

log = logging.getLogger("blobzero.agent")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--triton", metavar="HOST:PORT", help="use the Triton server at this gRPC address "
                        "(default: agent.triton_url; empty = ONNX Runtime in this process)")
    source.add_argument("--local-triton", action="store_true",
                        help="start the local tritonserver on storage.model_repository and use it")
    source.add_argument("--onnx", metavar="FILE", help="run this ONNX file in process (default: agent.onnx_file, "
                        "else the versions in storage.model_repository)")
    parser.add_argument("--model", help="version a request without one gets: latest or N (default: agent.model)")
    parser.add_argument("--host", help="bind address of the gRPC and web ports (default: agent.host)")
    parser.add_argument("--grpc-port", type=int, help="default: agent.grpc_port")
    parser.add_argument("--http-port", type=int, help="default: agent.http_port (0 = no web page)")


def _config(args: argparse.Namespace) -> configuration.Config:
    overrides = list(args.overrides)
    for flag, key in (("triton", "triton_url"), ("onnx", "onnx_file"), ("model", "model"),
                      ("host", "host"), ("grpc_port", "grpc_port"), ("http_port", "http_port")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"agent.{key}={value}")
    return configuration.load(args.config, overrides)


def build_models(cfg: configuration.Config, local_triton: bool):
    """(model source, the local tritonserver or None)."""
    from blobzero.agent.models import OnnxModels

    if local_triton:
        from services.triton_local import LocalTriton, ServerConfig

        server = LocalTriton(ServerConfig(cfg.storage.model_repository, Path("var/agent-triton"),
                                          grpc_port=cfg.triton.grpc_port, http_port=cfg.triton.http_port,
                                          metrics_port=cfg.triton.metrics_port)).start()
        return _triton_models(cfg, server.url), server
    if cfg.agent.triton_url:
        return _triton_models(cfg, cfg.agent.triton_url), None
    return OnnxModels(cfg, Path(cfg.agent.onnx_file) if cfg.agent.onnx_file else None,
                      cfg.agent.ort_threads, cfg.agent.max_models), None


def _triton_models(cfg: configuration.Config, url: str):
    """The agent's network on the Triton at ``url``, its requests at ``agent.triton_priority``."""
    from blobzero.agent.models import TritonModels
    from plumbing.triton_config import agent_priority

    return TritonModels(url, cfg.triton.model_name, cfg.triton.max_in_flight, cfg.triton.reconnect_timeout_s,
                        cfg.agent.max_models, priority=agent_priority(cfg.agent.triton_priority))


#: how often the TLS files are checked for a renewal (gRPC also checks at each new connection)
CERT_CHECK_S = 10.0


def metered_api_class():
    """AgentApi whose every search is first charged to the requesting client (Access.charge):
    over the client's budget or the per-request cap it is refused RESOURCE_EXHAUSTED."""
    from blobzero.agent.api import AgentApi, ApiError

    class MeteredApi(AgentApi):
        access = None

        def _search(self, rnd, config, model, seed):
            refusal = self.access.charge(config.simulations * config.determinizations) if self.access else None
            if refusal:
                raise ApiError("RESOURCE_EXHAUSTED", refusal)
            return super()._search(rnd, config, model, seed)

    return MeteredApi


def watch_certificates(files, context, stop: threading.Event) -> threading.Thread:
    """Reload the web page's TLS context whenever ``files`` change (checked every CERT_CHECK_S)."""
    def run() -> None:
        seen = files.generation
        while not stop.wait(CERT_CHECK_S):
            files.reload_if_changed()
            if files.generation != seen:
                seen = files.generation
                try:
                    files.load_into(context)
                except (OSError, ssl.SSLError) as exc:
                    log.warning("web page TLS context not reloaded: %s", exc)

    thread = threading.Thread(target=run, name="agent-certificates", daemon=True)
    thread.start()
    return thread


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from blobzero.agent.engine import Engine
    from blobzero.agent.metrics import AgentMetrics
    from blobzero.agent.service import start_grpc
    from blobzero.agent.web import start_http

    from blobzero.agent.access import Access, CertificateFiles, server_ssl_context

    try:
        cfg = _config(args)
        access = Access.from_config(cfg)
        tls = CertificateFiles(cfg.agent.tls_cert, cfg.agent.tls_key) if cfg.agent.tls_cert else None
        ssl_context = server_ssl_context(cfg)
        models, triton = build_models(cfg, args.local_triton)
        from blobzero.learned_beliefs import BeliefModel, configured_belief_model
        from selfplay_client.world_values import configured_world_values
        worlds = configured_world_values(cfg)     # None unless search.rollout = "world"
        belief_file = configured_belief_model(cfg)  # None unless search.beliefs = "learned"
        beliefs = None if belief_file is None else BeliefModel(belief_file)
    except (configuration.ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"blobzero agent: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:       # the local tritonserver could not start
        print(f"blobzero agent: cannot start the network: {exc}", file=sys.stderr)
        return 2
    a = cfg.agent
    metrics = AgentMetrics()
    engine = Engine(models, slots=a.slots, metrics=metrics, deadline_s=a.model_deadline_s,
                    evaluation_threads=a.max_models + 1, worlds=worlds, beliefs=beliefs)
    api = metered_api_class()(cfg, engine, metrics)
    api.access = access
    grpc_server = http_server = None
    try:
        metrics.serve(cfg.metrics.host, cfg.metrics.agent_port)
        grpc_server, grpc_port = start_grpc(api, a.host, a.grpc_port, a.workers, access, tls,
                                            down_after_s=cfg.triton.reconnect_timeout_s)
        if a.http_port:
            http_server = start_http(api, a.host, a.http_port, models.describe(), access, ssl_context)
    except (configuration.ConfigError, OSError, RuntimeError) as exc:
        print(f"blobzero agent: {exc} (agent.grpc_port / agent.http_port / metrics.agent_port)",
              file=sys.stderr)
        engine.close()
        if grpc_server is not None:
            grpc_server.stop(0)
        if triton is not None:
            triton.stop()
        return 2
    page = f"{'https' if tls else 'http'}://{a.host}:{a.http_port}/" if a.http_port else "off"
    log.info("agent ready: gRPC %s:%d (blobzero.v1.BlobAgent, health, reflection) | page %s | "
             "metrics :%d | network: %s | default model %s, search %s", a.host, grpc_port, page,
             cfg.metrics.agent_port, models.describe(), a.model, a.search_preset)
    log.info("access: token %s | TLS %s | rate limit %s | search cost %s | %d hosted games per client | "
             "trusted proxies %s", "required" if access.token else "off",
             "on (reloaded when the files change)" if tls else "off",
             f"{a.rate_limit:g}/s per client (burst {a.rate_burst})" if a.rate_limit else "off",
             f"{access.cost.per_minute:g}/min per client on this replica (N replicas: up to N x that), "
             f"{access.cost.max_request or 'no'} cap per search"
             if access.cost.per_minute or access.cost.max_request else "no limit",
             a.max_games_per_client, ", ".join(map(str, access.trusted_proxies)) or "none")
    if a.host not in ("127.0.0.1", "localhost", "::1") and (access.token is None or not tls):
        log.warning("agent.host %s is reachable from other machines without %s: see docs/agent.md, "
                    "'Running it in public'", a.host, " and ".join(
                        w for w, off in (("a token", access.token is None), ("TLS", not tls)) if off))
    stop = threading.Event()
    if tls is not None and ssl_context is not None and http_server is not None:
        watch_certificates(tls, ssl_context, stop)
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping: requests in flight get 5 s")
        grpc_server.stop(5).wait()
        if http_server is not None:
            http_server.shutdown()
        engine.close()
        models.close()
        if triton is not None:
            triton.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info("agent stopped")
    return 0
