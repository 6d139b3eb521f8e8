"""The agent's web front: the play page (plain HTML/CSS/JS in ``web/``) and the same API as JSON.

    GET  /                 the page          GET /static/<file>   its script and style
    GET  /api/info         presets, seat kinds, the model behind the agent
    POST /api/<Method>     Advise, StartGame, Act, GetState, Hint: the proto request as JSON
                           (field names as in agent.proto) -> the proto response as JSON;
                           an error is {"code": "INVALID_ARGUMENT", "message": ...} with 400/404/503
    GET  /metrics          Prometheus metrics;  GET /healthz  "ok"

JSON is converted with protobuf's own ``json_format`` against the generated messages, so the page
speaks exactly the gRPC service's schema.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.protobuf import json_format
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from blobzero import agent_pb2 as pb
from blobzero.agent.api import AgentApi
from blobzero.agent.games import KINDS
from blobzero.agent.service import call

log = logging.getLogger("blobzero.agent")
WEB_DIR = Path(__file__).resolve().parent / "web"
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
REQUESTS = {"Advise": pb.AdviseRequest, "StartGame": pb.StartGameRequest, "Act": pb.ActRequest,
            "GetState": pb.GetStateRequest, "Hint": pb.HintRequest}
HTTP_STATUS = {"OK": 200, "INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "UNAVAILABLE": 503, "INTERNAL": 500}
MAX_BODY = 1 << 20


def to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def make_handler(api: AgentApi, info: dict):
    class Handler(BaseHTTPRequestHandler):
        server_version = "blobzero-agent"

        def log_message(self, fmt, *args):       # quiet: the metrics count requests
            log.debug("http %s", fmt % args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                return self._static("index.html")
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if path == "/api/info":
                return self._json(200, info)
            if path == "/metrics":
                registry = api.metrics.registry if api.metrics is not None else None
                return self._send(200, generate_latest(registry) if registry else b"", CONTENT_TYPE_LATEST)
            if path == "/healthz":
                return self._send(200, b"ok\n", "text/plain")
            self._json(404, {"code": "NOT_FOUND", "message": f"no page {path}"})

        def _static(self, name: str) -> None:
            if name not in STATIC:
                return self._json(404, {"code": "NOT_FOUND", "message": f"no file {name}"})
            self._send(200, (WEB_DIR / name).read_bytes(), STATIC[name])

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            method = path[len("/api/"):] if path.startswith("/api/") else ""
            if method not in REQUESTS:
                return self._json(404, {"code": "NOT_FOUND", "message": f"no API method {path}"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._json(413, {"code": "INVALID_ARGUMENT", "message": "request body over 1 MiB"})
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                request = json_format.ParseDict(body, REQUESTS[method]())
            except (ValueError, json_format.ParseError) as exc:
                return self._json(400, {"code": "INVALID_ARGUMENT", "message": f"bad JSON for {method}: {exc}"})
            response, code, message = call(api, method, request)
            if response is None:
                return self._json(HTTP_STATUS.get(code, 500), {"code": code, "message": message})
            self._json(200, to_json(response))

    return Handler


def start_http(api: AgentApi, host: str, port: int, model: str) -> ThreadingHTTPServer:
    """Serve the page and the JSON API in a daemon thread; raises OSError if the port is taken."""
    info = {"model": model, "search_presets": ["light", "medium", "heavy"],
            "default_search": api.cfg.agent.search_preset, "seat_kinds": [k for k in KINDS if k != "human"]}
    server = ThreadingHTTPServer((host, port), make_handler(api, info))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="agent-http", daemon=True).start()
    return server
