"""The agent's web front: the play page (plain HTML/CSS/JS in ``web/``) and the same API as JSON.

    GET  /                 the page          GET /static/<file>   its script and style
    GET  /api/info         presets, seat kinds, the model behind the agent
    POST /api/<Method>     Advise, StartGame, Act, GetState, Hint, ExportGame, ImportGame, Review:
                           the proto request as JSON (field names as in agent.proto) -> the proto
                           response as JSON (Review: a ReviewResponse, {"decisions": [...], ...});
                           an error is {"code": "INVALID_ARGUMENT", "message": ...} with a 4xx/5xx
    GET  /healthz          "ok": the process answers (liveness; metrics: only on metrics.agent_port)
    GET  /readyz           200 while a model source can answer, else 503 (readiness: the gRPC
                           health status, over the page's TLS when it has one)

Served by aiohttp's server (a maintained HTTP implementation, not ``http.server``) on its own
event loop thread. What a hostile client meets, in order:

* the HTTP parser: a malformed request line, header or ``Content-Length`` (``-1``, ``abc``) is a
  400 JSON answer and one log line (``_Protocol.handle_error``), never a traceback;
* per-client rate limit (429), bearer token when configured (401), the API's ``Origin`` check
  (403: a browser on another site cannot drive it) and ``Content-Type: application/json`` (415:
  what a cross-site form or ``text/plain`` fetch cannot send without a CORS preflight);
* the body: at most 1 MiB however it is framed (413), sent within ``agent.http_timeout_s``
  (408), a JSON object (400; deep nesting too);
* at most ``agent.http_workers`` calls run at once on a thread pool, as many more wait, the rest
  get 503: the number of threads never depends on the number of clients.

Every answer carries a Content-Security-Policy (scripts and styles only from this origin, no
framing), ``X-Frame-Options: DENY``, ``nosniff`` and a ``Server`` header without versions.

JSON is converted with protobuf's own ``json_format`` against the generated messages, so the page
speaks exactly the gRPC service's schema.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from pathlib import Path

from aiohttp import web
from google.protobuf import json_format
from prometheus_client import Gauge

from blobcore.search_config import LEVELS, PRESET_SETTINGS, SIZES
from blobzero.agent.access import Access
from blobzero.agent.api import METHODS, AgentApi, run_method
from blobzero.agent.games import KINDS
from blobzero.ladder import stored_ratings

log = logging.getLogger("blobzero.agent")
WEB_DIR = Path(__file__).resolve().parent / "web"
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
REQUESTS = {name: request for name, (_, request) in METHODS.items()}
HTTP_STATUS = {"OK": 200, "INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "NOT_FOUND": 404,
               "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "INTERNAL": 500}
MAX_BODY = 1 << 20
SERVER_NAME = "blobzero-agent"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Server": SERVER_NAME,
}


def to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _json(status: int, payload: dict, **headers: str) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json",
                        headers={**SECURITY_HEADERS, **headers})


def _error(status: int, code: str, message: str, close: bool = False, **headers: str) -> web.Response:
    """close: end the connection after answering (a body left unread is never parsed as a request)."""
    response = _json(status, {"code": code, "message": message}, **headers)
    if close:
        response.force_close()
    return response


class _Protocol(web.RequestHandler):
    """aiohttp's connection handler, answering what its parser rejects (a bad Content-Length, a
    malformed request line or header, a header over the size limits) with a JSON 400 and one log
    line instead of a plain-text page and a traceback."""

    def handle_error(self, request, status: int = 500, exc=None, message=None):
        log.info("http: bad request from %s: %s", getattr(request, "remote", "?"),
                 f"{type(exc).__name__}: {exc}"[:200] if exc is not None else message)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        response = _error(status if 400 <= status < 600 else 500,
                          "INVALID_ARGUMENT" if status < 500 else "INTERNAL",
                          "malformed HTTP request" if status < 500 else "internal error")
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class WebFront:
    """The page and the JSON API on ``host:port`` (TLS when ``ssl_context``), served on a thread
    of its own; ``start()`` raises OSError if the port is taken, ``shutdown()`` stops it."""

    def __init__(self, api: AgentApi, host: str, port: int, info: dict, access: Access | None = None,
                 ssl_context=None):
        a = api.cfg.agent
        self.api, self.host, self.port, self.info = api, host, port, info
        self.access = access or Access()
        self.ssl_context = ssl_context
        self.timeout_s = a.http_timeout_s
        self.allowed_origins = {o.strip().rstrip("/") for o in a.allowed_origins.split(",") if o.strip()}
        self.workers = a.http_workers
        self._pool = concurrent.futures.ThreadPoolExecutor(a.http_workers, thread_name_prefix="agent-http")
        self._waiting = 0                  # API calls running or queued (event loop thread only)
        self._loop = asyncio.new_event_loop()
        self._runner: web.ServerRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "WebFront":
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._thread = threading.Thread(target=self._loop.run_forever, name="agent-http", daemon=True)
        self._thread.start()
        try:
            future.result(30)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._pool.shutdown(wait=False)
            raise
        return self

    async def _start(self) -> None:
        server = _Server(self._handle, access_log=None, keepalive_timeout=self.timeout_s,
                         max_line_size=8190, max_field_size=8190)
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context,
                           shutdown_timeout=1.0, reuse_address=True)
        await site.start()

    def shutdown(self) -> None:
        if self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- requests ---------------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if request.method == "POST":
            if not path.startswith("/api/"):
                return _error(404, "NOT_FOUND", "no such page")
            return await self._api(request, path[len("/api/"):])
        if request.method not in ("GET", "HEAD"):
            return _error(405, "INVALID_ARGUMENT", f"method {request.method[:16]} is not allowed",
                          Allow="GET, HEAD, POST")
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/info":
            return _json(200, self.info)
        if path == "/healthz":
            return web.Response(body=b"ok\n", content_type="text/plain", headers=SECURITY_HEADERS)
        if path == "/readyz":
            if self.api.serving:
                return web.Response(body=b"ready\n", content_type="text/plain", headers=SECURITY_HEADERS)
            return web.Response(status=503, body=b"not ready: no model source answers (the network, "
                                b"e.g. Triton, is unreachable)\n", content_type="text/plain",
                                headers=SECURITY_HEADERS)
        return _error(404, "NOT_FOUND", "no such page (metrics are served on metrics.agent_port)"
                      if path == "/metrics" else "no such page")

    @staticmethod
    def _static(name: str) -> web.Response:
        if name not in STATIC:
            return _error(404, "NOT_FOUND", "no such file")
        content_type, _, charset = STATIC[name].partition("; charset=")
        return web.Response(body=(WEB_DIR / name).read_bytes(), content_type=content_type, charset=charset,
                            headers=SECURITY_HEADERS)

    def _origin_ok(self, request: web.BaseRequest) -> bool:
        """Same origin (scheme://Host of this request) or one of agent.allowed_origins; a
        request without Origin (curl, a script) passes, a browser's cross-site one does not."""
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            origin = request.headers.get("Origin", "")
            return origin.rstrip("/") in self.allowed_origins
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        own = f"{'https' if self.ssl_context else 'http'}://{request.host}"
        return origin.rstrip("/") in self.allowed_origins or origin.rstrip("/") == own

    async def _api(self, request: web.BaseRequest, method: str) -> web.Response:
        if method not in REQUESTS:
            return _error(404, "NOT_FOUND", "no such API method")
        # behind a trusted proxy (agent.trusted_proxies) the client is the one it reports
        client = self.access.client_key(request.remote or "?", request.headers.get("X-Forwarded-For"))
        if not self.access.allow(client):
            return _error(429, "RESOURCE_EXHAUSTED", "rate limit: too many requests from this client",
                          **{"Retry-After": "1"})
        if not self.access.authorized(request.headers.get("Authorization")):
            return _error(401, "UNAUTHENTICATED", "this agent needs 'Authorization: Bearer <token>'",
                          **{"WWW-Authenticate": "Bearer"})
        if not self._origin_ok(request):
            return _error(403, "PERMISSION_DENIED", "cross-origin API requests are refused "
                          "(agent.allowed_origins lists the origins allowed)")
        if request.content_type != "application/json":
            return _error(415, "INVALID_ARGUMENT", "the API takes Content-Type: application/json")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, "INVALID_ARGUMENT", "request body over 1 MiB", close=True)
        try:
            raw = await asyncio.wait_for(request.read(), self.timeout_s)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "INVALID_ARGUMENT", "request body over 1 MiB", close=True)
        except asyncio.TimeoutError:
            return _error(408, "INVALID_ARGUMENT", f"request body not received within {self.timeout_s:g} s",
                          close=True)
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError(f"the body must be a JSON object, got {type(body).__name__}")
            message = json_format.ParseDict(body, REQUESTS[method]())
        except RecursionError:
            return _error(400, "INVALID_ARGUMENT", f"bad JSON for {method}: nested too deeply")
        except (ValueError, TypeError, json_format.ParseError) as exc:
            return _error(400, "INVALID_ARGUMENT", f"bad JSON for {method}: {str(exc)[:300]}")
        if self._waiting >= 2 * self.workers:
            return _error(503, "UNAVAILABLE", "the agent is busy: try again shortly", **{"Retry-After": "1"})
        self._waiting += 1
        try:
            response, code, text = await asyncio.get_running_loop().run_in_executor(
                self._pool, run_method, self.api, method, message, client)
        finally:
            self._waiting -= 1
        if response is None:
            return _error(HTTP_STATUS.get(code, 500), code, text)
        return _json(200, to_json(response))


def start_http(api: AgentApi, host: str, port: int, model: str, access: Access | None = None,
               ssl_context=None) -> WebFront:
    """Serve the page and the JSON API in a thread of its own; raises OSError if the port is taken.
    The ladder's ratings in the run's storage (``blobzero ladder``), read once here, name each
    level on the page and are served as the gauge ``blobzero_ladder_rating`` on the metrics port."""
    ratings = stored_ratings(api.cfg)
    info = {"model": model, "search_presets": list(LEVELS),
            "levels": {name: {"determinizations": SIZES[name][0], "simulations": SIZES[name][1],
                              **PRESET_SETTINGS.get(name, {})} for name in LEVELS},
            "default_search": api.cfg.agent.search_preset, "seat_kinds": [k for k in KINDS if k != "human"],
            "token_required": bool(access and access.token),
            "ratings": {name: r for name, r in ratings.items() if name in KINDS or name.startswith("level:")}}
    if ratings and api.metrics is not None:
        gauge = Gauge("blobzero_ladder_rating", "Bradley-Terry rating (Elo scale, random = 0) and its 95% "
                      "interval, from blobzero ladder", ["entrant", "bound"], registry=api.metrics.registry)
        for name, r in ratings.items():
            for bound, key in (("mid", "rating"), ("low", "low"), ("high", "high")):
                gauge.labels(name, bound).set(r[key])
    return WebFront(api, host, port, info, access, ssl_context).start()
