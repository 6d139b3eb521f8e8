"""The gRPC face of the agent: ``blobzero.v1.BlobAgent`` plus health checking and reflection.

Each method calls ``AgentApi``; an ``ApiError`` becomes its gRPC status (INVALID_ARGUMENT with
the reason, NOT_FOUND, UNAVAILABLE); anything unexpected is logged and answered INTERNAL, and
the server keeps serving. Every answer is counted in the metrics (method, code, latency).

Health (grpc.health.v1): SERVING while a model source can answer; NOT_SERVING once the network
(Triton) has not answered for ``down_after_s`` (``watch_models``), so load balancers and
Kubernetes stop sending requests to a replica that could only fail them. The same status is
``AgentApi.serving``, which the page answers as ``GET /readyz`` (200 / 503): the readiness probe
that works with TLS too, where the kubelet's gRPC probe speaks plain text only.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from blobzero import agent_pb2 as pb
from blobzero import agent_pb2_grpc as pb_grpc
from blobzero.agent.access import Access, CertificateFiles, acting_for, client_of_peer
from blobzero.agent.api import MAX_MESSAGE, AgentApi, ApiError, run_method
from blobzero.agent.engine import EngineUnavailable

log = logging.getLogger("blobzero.agent")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BlobAgent"].full_name     # blobzero.v1.BlobAgent


class Servicer(pb_grpc.BlobAgentServicer):
    def __init__(self, api: AgentApi, access: Access | None = None):
        self.api = api
        self.access = access or Access()

    def _refuse(self, method: str, context, code: str, message: str):
        if self.api.metrics is not None:
            self.api.metrics.answered(method, code, 0.0)
        context.abort(getattr(grpc.StatusCode, code), message)

    def _run(self, method: str, request, context):
        metadata = dict(context.invocation_metadata())
        client = self.access.client_key(client_of_peer(context.peer()), metadata.get("x-forwarded-for"))
        if not self.access.allow(client):
            self._refuse(method, context, "RESOURCE_EXHAUSTED", "rate limit: too many requests from this client")
        if self.access.token is not None:
            if not self.access.authorized(metadata.get("authorization")):
                self._refuse(method, context, "UNAUTHENTICATED",
                             "this agent needs the metadata 'authorization: Bearer <token>'")
        response, code, message = run_method(self.api, method, request, client)
        if response is None:
            context.abort(getattr(grpc.StatusCode, code), message)
        return response

    def Advise(self, request, context):
        return self._run("Advise", request, context)

    def StartGame(self, request, context):
        return self._run("StartGame", request, context)

    def Act(self, request, context):
        return self._run("Act", request, context)

    def GetState(self, request, context):
        return self._run("GetState", request, context)

    def Hint(self, request, context):
        return self._run("Hint", request, context)

    def ExportGame(self, request, context):
        return self._run("ExportGame", request, context)

    def ImportGame(self, request, context):
        return self._run("ImportGame", request, context)

    def Review(self, request, context):
        """A stream: one DecisionReview per decision, in game order, as its search finishes."""
        metadata = dict(context.invocation_metadata())
        client = self.access.client_key(client_of_peer(context.peer()), metadata.get("x-forwarded-for"))
        if not self.access.allow(client):
            self._refuse("Review", context, "RESOURCE_EXHAUSTED", "rate limit: too many requests from this client")
        if self.access.token is not None and not self.access.authorized(metadata.get("authorization")):
            self._refuse("Review", context, "UNAUTHENTICATED",
                         "this agent needs the metadata 'authorization: Bearer <token>'")
        started, code, message = time.perf_counter(), "OK", ""
        try:
            with acting_for(client):
                yield from self.api.review(request)
        except ApiError as exc:
            code, message = exc.code, exc.message[:MAX_MESSAGE]
        except Exception as exc:         # a bug: say so, keep serving
            log.exception("Review failed")
            code, message = "INTERNAL", f"internal error: {type(exc).__name__}: {exc}"[:MAX_MESSAGE]
        if self.api.metrics is not None:
            self.api.metrics.answered("Review", code, time.perf_counter() - started)
        if code != "OK":
            context.abort(getattr(grpc.StatusCode, code), message)


def start_grpc(api: AgentApi, host: str, port: int, max_workers: int, access: Access | None = None,
               tls: CertificateFiles | tuple[bytes, bytes] | None = None,
               down_after_s: float = 5.0) -> tuple[grpc.Server, int]:
    """Start the server (BlobAgent, grpc.health.v1.Health, reflection); returns it and its port.
    ``max_workers`` threads bound the requests answered at once (each waits on its search); more
    concurrent calls are refused RESOURCE_EXHAUSTED instead of queueing without bound.
    ``access``: token and rate limit (health and reflection stay open, for probes and grpcurl).
    ``tls``: the certificate files (reloaded when they change: each new connection gets the
    current pair) or a fixed (certificate chain PEM, key PEM); None = plain text.
    ``down_after_s``: the health says NOT_SERVING once no model source answered for this long."""
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="grpc"),
                         maximum_concurrent_rpcs=2 * max_workers,
                         options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 1 << 20),
                                  ("grpc.max_metadata_size", 16 << 10)])
    pb_grpc.add_BlobAgentServicer_to_server(Servicer(api, access), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server)
    if tls is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        bound = server.add_secure_port(f"{host}:{port}", _server_credentials(tls))
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    server.start()
    watch_models(health_servicer, api, down_after_s)
    return server, bound


def _server_credentials(tls: CertificateFiles | tuple[bytes, bytes]) -> grpc.ServerCredentials:
    if not isinstance(tls, CertificateFiles):
        return grpc.ssl_server_credentials([(tls[1], tls[0])])
    served = [tls.generation]

    def config(files: CertificateFiles):
        cert, key = files.pem
        return grpc.ssl_server_certificate_configuration([(key, cert)])

    def fetch():                     # gRPC asks at each new connection; None = unchanged
        tls.reload_if_changed()
        if tls.generation == served[0]:
            return None
        served[0] = tls.generation
        return config(tls)

    return grpc.dynamic_ssl_server_credentials(config(tls), fetch)


def model_source_answers(models) -> bool:
    """Can the agent's network answer now? A Triton source must say which versions it serves;
    the in-process sources always can (uniform priors while no version exists)."""
    servable = getattr(models, "servable", None)
    if servable is None:
        return True
    try:
        servable()
        return True
    except EngineUnavailable:
        return False
    except Exception as exc:          # e.g. the client closed while the agent stops
        log.debug("model source check failed: %s", exc)
        return False


def watch_models(health_servicer, api: AgentApi, down_after_s: float, interval_s: float = 1.0) -> threading.Thread:
    """A daemon thread that keeps the health status (gRPC health and ``api.serving``) in step
    with ``model_source_answers``: NOT_SERVING after ``down_after_s`` without an answer,
    SERVING at the next one."""
    def run() -> None:
        last_answer, serving = time.monotonic(), True
        while True:
            if model_source_answers(api.engine.models):
                last_answer, now_serving = time.monotonic(), True
            else:
                now_serving = time.monotonic() - last_answer < down_after_s
            if now_serving != serving:
                serving = api.serving = now_serving
                status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
                for name in ("", SERVICE_NAME):
                    health_servicer.set(name, status)
                log.warning("health: %s (%s)", "SERVING" if serving else "NOT_SERVING",
                            "the network answers again" if serving else
                            f"no model source answered for {down_after_s:g} s")
            time.sleep(interval_s)

    thread = threading.Thread(target=run, name="agent-health", daemon=True)
    thread.start()
    return thread
