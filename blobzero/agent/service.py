"""The gRPC face of the agent: ``blobzero.v1.BlobAgent`` plus health checking and reflection.

Each method calls ``AgentApi``; an ``ApiError`` becomes its gRPC status (INVALID_ARGUMENT with
the reason, NOT_FOUND, UNAVAILABLE); anything unexpected is logged and answered INTERNAL, and
the server keeps serving. Every answer is counted in the metrics (method, code, latency).
"""
from __future__ import annotations

import concurrent.futures
import logging
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from blobzero import agent_pb2 as pb
from blobzero import agent_pb2_grpc as pb_grpc
from blobzero.agent.access import Access, client_of_peer
from blobzero.agent.api import AgentApi, ApiError

log = logging.getLogger("blobzero.agent")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BlobAgent"].full_name     # blobzero.v1.BlobAgent


#: the longest error message sent back (a message may quote the request; gRPC puts it in metadata)
MAX_MESSAGE = 500


def call(api: AgentApi, method: str, request, client: str = ""):
    """Run one API method for ``client`` (its address: the owner of the games it starts);
    returns (response or None, code name, message). Shared with HTTP."""
    started = time.perf_counter()
    handler = {"Advise": api.advise, "StartGame": lambda r: api.start_game(r, client), "Act": api.act,
               "GetState": api.get_state, "Hint": api.hint}[method]
    try:
        response, code, message = handler(request), "OK", ""
    except ApiError as exc:
        response, code, message = None, exc.code, exc.message
    except Exception as exc:         # a bug: say so, keep serving
        log.exception("%s failed", method)
        response, code, message = None, "INTERNAL", f"internal error: {type(exc).__name__}: {exc}"
    if api.metrics is not None:
        api.metrics.answered(method, code, time.perf_counter() - started)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    return response, code, message


class Servicer(pb_grpc.BlobAgentServicer):
    def __init__(self, api: AgentApi, access: Access | None = None):
        self.api = api
        self.access = access or Access()

    def _refuse(self, method: str, context, code: str, message: str):
        if self.api.metrics is not None:
            self.api.metrics.answered(method, code, 0.0)
        context.abort(getattr(grpc.StatusCode, code), message)

    def _run(self, method: str, request, context):
        client = client_of_peer(context.peer())
        if not self.access.allow(client):
            self._refuse(method, context, "RESOURCE_EXHAUSTED", "rate limit: too many requests from this client")
        if self.access.token is not None:
            metadata = dict(context.invocation_metadata())
            if not self.access.authorized(metadata.get("authorization")):
                self._refuse(method, context, "UNAUTHENTICATED",
                             "this agent needs the metadata 'authorization: Bearer <token>'")
        response, code, message = call(self.api, method, request, client)
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


def start_grpc(api: AgentApi, host: str, port: int, max_workers: int, access: Access | None = None,
               tls: tuple[bytes, bytes] | None = None) -> tuple[grpc.Server, int]:
    """Start the server (BlobAgent, grpc.health.v1.Health, reflection); returns it and its port.
    ``max_workers`` threads bound the requests answered at once (each waits on its search); more
    concurrent calls are refused RESOURCE_EXHAUSTED instead of queueing without bound.
    ``access``: token and rate limit (health and reflection stay open, for probes and grpcurl).
    ``tls``: (certificate chain PEM, key PEM) for a TLS port; None = plain text."""
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
        bound = server.add_secure_port(f"{host}:{port}", grpc.ssl_server_credentials([(tls[1], tls[0])]))
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    server.start()
    return server, bound
