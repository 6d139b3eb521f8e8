"""``blobzero agent`` in front of hostile clients (issue 20): every row of the issue's table, each
against a real agent process over real sockets, gRPC and (pinned versions) a real tritonserver,
plus the access controls (token, TLS, rate limit, per-client games). Memory and threads are read
from the agent's /proc entry while the abuse goes on; every case is bounded in time.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from blobzero import agent_pb2 as pb
from blobzero import agent_pb2_grpc as pb_grpc
from blobzero.agent.access import Access, RateLimiter, client_of_peer, load_token
from plumbing import config as configuration
from services.triton_local import free_ports
from agent_helpers import agent_behind_triton, start_agent
from test_agent import endgame
from triton_helpers import export_tiny


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("public-model") / "tiny.onnx", seed=5)


@pytest.fixture(scope="module")
def agent(tmp_path_factory, onnx):
    proc = start_agent(tmp_path_factory.mktemp("public-agent"), "--onnx", str(onnx),
                       "--set", "agent.http_timeout_s=2", "--set", "agent.max_games_per_client=3")
    yield proc
    assert proc.stop() == 0, proc.log.read_text()[-2000:]


def proc_status(pid: int) -> dict[str, int]:
    """Threads, VmRSS and VmHWM (peak RSS, kB) of a process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response from a raw socket: (status, headers (lower-case names), body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed without a response (got {data[:200]!r})")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 20.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return send_while_reading(sock, [head.encode("latin-1") + body])


def api_head(port: int, method: str = "Advise", **headers: str) -> str:
    lines = [f"POST /api/{method} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


# -- row 1: Content-Length -1 (and an endless chunked body): the 1 MiB limit holds -------------------

def flood(port: int, head: str, total_mb: int) -> tuple[int, dict, bytes]:
    """Send ``head`` and then up to ``total_mb`` MB of body while the server may answer early;
    returns the response (the server may close the connection once it has answered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode("latin-1"))
        return send_while_reading(sock, [b"[" + b"0," * (1 << 19)] * total_mb)   # a JSON array that never ends


def send_while_reading(sock: socket.socket, chunks) -> tuple[int, dict, bytes]:
    """Send ``chunks`` while another thread reads the response (the server answers early)."""
    result: list = []

    def read() -> None:
        try:
            result.append(read_response(sock))
        except OSError as exc:
            raise AssertionError(f"no response: {exc!r}") from exc
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for chunk in chunks:
            sock.sendall(chunk)
    except OSError:            # the server answered and closed: what the test expects
        pass
    reader.join(sock.gettimeout())
    assert result, "no response"
    return result[0]


def test_row1_negative_content_length_and_huge_bodies_keep_memory_bounded(agent):
    before = proc_status(agent.process.pid)
    for _ in range(3):
        status, _, body = flood(agent.http_port, api_head(agent.http_port, Content_Type="application/json",
                                                          Content_Length="-1"), 60)
        assert status == 400 and json.loads(body)["code"] == "INVALID_ARGUMENT", body
    chunked = api_head(agent.http_port, Content_Type="application/json", Transfer_Encoding="chunked")
    with socket.create_connection(("127.0.0.1", agent.http_port), timeout=20) as sock:
        sock.sendall(chunked.encode())
        status, _, body = send_while_reading(sock, [b"100000\r\n" + b"0" * 0x100000 + b"\r\n"] * 60)
    assert status == 413 and json.loads(body)["message"] == "request body over 1 MiB", body
    status, _, body = flood(agent.http_port, api_head(agent.http_port, Content_Type="application/json",
                                                      Content_Length=str(300 << 20)), 5)
    assert status == 413, body
    after = proc_status(agent.process.pid)
    # 3 x 60 MB + 60 MB + 5 MB were sent; the peak resident memory grew by a few MB at most
    assert after["VmHWM"] - before["VmHWM"] < 40_000, (before, after)


# -- row 2: malformed requests get a JSON 4xx, never a dropped connection or a traceback ---------------

MALFORMED = [
    ("Content-Length: abc", {"Content_Type": "application/json", "Content_Length": "abc"}, b""),
    ("two Content-Lengths", {"Content_Type": "application/json", "Content_Length": "2\r\nContent-Length: 3"}, b"{}"),
    ("JSON null", {"Content_Type": "application/json", "Content_Length": "4"}, b"null"),
    ("a JSON list", {"Content_Type": "application/json", "Content_Length": "2"}, b"[]"),
    ("300,000 [", {"Content_Type": "application/json", "Content_Length": "300000"}, b"[" * 300_000),
    ("deep objects", {"Content_Type": "application/json", "Content_Length": str(5 * 50_000 + 50_000)},
     b'{"a":' * 50_000 + b"}" * 50_000),
    ("not UTF-8", {"Content_Type": "application/json", "Content_Length": "4"}, b"\xff\xfe\xfd\xfc"),
    ("wrong field type", {"Content_Type": "application/json", "Content_Length": "17"}, b'{"players": "x"}\n'),
    ("unknown field", {"Content_Type": "application/json", "Content_Length": "11"}, b'{"nope": 1}'),
]


@pytest.mark.parametrize("name,headers,body", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_row2_malformed_request_is_a_json_4xx(agent, name, headers, body):
    status, reply_headers, reply = raw_request(agent.http_port, api_head(agent.http_port, **headers), body)
    assert 400 <= status < 500, (status, reply)
    assert reply_headers["content-type"].startswith("application/json")
    assert json.loads(reply)["code"] == "INVALID_ARGUMENT", reply


def test_row2_two_hundred_malformed_requests_leave_no_traceback(agent):
    for i in range(200):
        name, headers, body = MALFORMED[i % len(MALFORMED)]
        status, _, _ = raw_request(agent.http_port, api_head(agent.http_port, **headers), body)
        assert 400 <= status < 500, name
    garbage = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
               b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n"]
    for data in garbage:
        with socket.create_connection(("127.0.0.1", agent.http_port), timeout=10) as sock:
            sock.sendall(data)
            status, headers, reply = read_response(sock)
        assert 400 <= status < 500 and json.loads(reply)["code"] == "INVALID_ARGUMENT", data[:40]
        assert headers["server"] == "blobzero-agent"
    assert "Traceback" not in agent.log.read_text()


# -- row 3: slow clients hold no thread, and time out ----------------------------------------------------

def test_row3_three_hundred_slow_bodies_hold_no_threads_and_time_out(agent):
    baseline = proc_status(agent.process.pid)["Threads"]
    socks = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", agent.http_port), timeout=15)
            sock.sendall(api_head(agent.http_port, Content_Type="application/json", Content_Length="1000")
                         .encode() + b"{")
            socks.append(sock)
        time.sleep(0.5)
        held = proc_status(agent.process.pid)["Threads"]
        assert held <= baseline + 4, (baseline, held)
        started = time.monotonic()
        statuses = [read_response(sock)[0] for sock in socks]      # agent.http_timeout_s = 2
        assert set(statuses) == {408}
        assert time.monotonic() - started < 12
    finally:
        for sock in socks:
            sock.close()
    # and the agent still answers
    status, _ = agent.post("StartGame", {"players": 3, "cards": 1, "single_round": True,
                                         "opponents": {"kind": "greedy"}})
    assert status == 200


# -- row 7: browser-side protections --------------------------------------------------------------------

def test_row7_cross_origin_and_plain_text_api_calls_are_refused(agent):
    body = b'{"players": 3, "cards": 1, "single_round": true, "opponents": {"kind": "greedy"}}'
    n = str(len(body))
    cases = {  # what a page on another site can send without a preflight, and its variations
        "text/plain, cross-site": dict(Content_Type="text/plain", Content_Length=n, Origin="http://evil.example",
                                       Sec_Fetch_Site="cross-site"),
        "text/plain, no Origin": dict(Content_Type="text/plain", Content_Length=n),
        "form, no Origin": dict(Content_Type="application/x-www-form-urlencoded", Content_Length=n),
        "JSON from another Origin": dict(Content_Type="application/json", Content_Length=n,
                                         Origin="http://evil.example"),
        "JSON, Sec-Fetch-Site cross-site": dict(Content_Type="application/json", Content_Length=n,
                                                Origin=f"http://127.0.0.1:{agent.http_port}",
                                                Sec_Fetch_Site="cross-site"),
    }
    for name, headers in cases.items():
        status, _, reply = raw_request(agent.http_port, api_head(agent.http_port, "StartGame", **headers), body)
        assert status in (403, 415), (name, status, reply)
    same = dict(Content_Type="application/json", Content_Length=n, Origin=f"http://127.0.0.1:{agent.http_port}",
                Sec_Fetch_Site="same-origin")
    status, _, reply = raw_request(agent.http_port, api_head(agent.http_port, "StartGame", **same), body)
    assert status == 200, reply


def test_row7_page_headers_and_no_metrics_on_the_web_port(agent):
    for path in ("/", "/static/app.js", "/api/info", "/nope"):
        status, headers, _ = raw_request(agent.http_port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
        csp = headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, headers)
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["server"] == "blobzero-agent", headers["server"]
    status, _, body = raw_request(agent.http_port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404 and b"blobzero_agent_requests_total" not in body
    assert "blobzero_agent_requests_total" in agent.metrics()       # on metrics.agent_port


# -- row 8: a huge game_id over gRPC ---------------------------------------------------------------------

def test_row8_a_100kb_game_id_is_invalid_argument(agent):
    with grpc.insecure_channel(agent.target) as channel:
        stub = pb_grpc.BlobAgentStub(channel)
        for call in (lambda: stub.GetState(pb.GetStateRequest(game_id="x" * 100_000), timeout=10),
                     lambda: stub.Act(pb.ActRequest(game_id="0" * 100_000, seat=0, bid=0), timeout=10)):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
            assert len(caught.value.details()) < 1000
        # a long card name is quoted back, shortened
        with pytest.raises(grpc.RpcError) as caught:
            stub.Advise(pb.AdviseRequest(players=3, cards=2, dealer=0, trump="S", seat=1, hand=["Q" * 100_000, "AS"]),
                        timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(caught.value.details()) < 1000


# -- per-client hosted games: nobody evicts another client's games ----------------------------------------

def start_game_from(address: str, port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(address, 0))
    try:
        conn.request("POST", "/api/StartGame", json.dumps({"players": 3, "cards": 1, "single_round": True,
                                                            "opponents": {"kind": "greedy"}}),
                     {"Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 200
        return json.loads(reply.read())["game_id"]
    finally:
        conn.close()


def test_one_client_cannot_evict_another_clients_games(agent):
    other = start_game_from("127.0.0.2", agent.http_port)
    mine = [start_game_from("127.0.0.1", agent.http_port) for _ in range(8)]     # cap: 3 per client
    states = {gid: agent.post("GetState", {"game_id": gid, "seat": 0})[0] for gid in [other, *mine]}
    assert states[other] == 200
    assert [states[g] for g in mine] == [404] * 5 + [200] * 3


# -- rate limit, token and TLS -----------------------------------------------------------------------------

def test_rate_limit_answers_429_and_resource_exhausted(tmp_path, onnx):
    proc = start_agent(tmp_path, "--onnx", str(onnx), "--set", "agent.rate_limit=1", "--set", "agent.rate_burst=4")
    try:
        codes = [proc.post("GetState", {"game_id": "0" * 16})[0] for _ in range(8)]
        assert codes[:4] == [404] * 4 and 429 in codes[4:], codes
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.BlobAgentStub(channel)
            seen = set()
            for _ in range(6):
                try:
                    stub.GetState(pb.GetStateRequest(game_id="0" * 16), timeout=10)
                except grpc.RpcError as exc:
                    seen.add(exc.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in seen
    finally:
        assert proc.stop() == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_token_and_tls_on_grpc_and_the_page(tmp_path, onnx, certificate):
    cert, key = certificate
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    proc = start_agent(tmp_path / "agent", "--onnx", str(onnx), "--set", f"agent.token_file={token_file}",
                       "--set", f"agent.tls_cert={cert}", "--set", f"agent.tls_key={key}",
                       tls_root=cert.read_bytes())
    try:
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(proc.target, credentials) as channel:
            stub = pb_grpc.BlobAgentStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Advise(endgame(search="light"), timeout=30)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as caught:
                stub.Advise(endgame(search="light"), timeout=30, metadata=[("authorization", "Bearer wrong")])
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answer = stub.Advise(endgame(search="light"), timeout=60,
                                 metadata=[("authorization", "Bearer s3cret-token")])
            assert answer.recommended.card == "3S"
        with grpc.insecure_channel(proc.target) as channel:      # plain text is not served
            with pytest.raises(grpc.RpcError):
                pb_grpc.BlobAgentStub(channel).GetState(pb.GetStateRequest(game_id="0" * 16), timeout=5)
        context = ssl.create_default_context(cafile=str(cert))
        body = json.dumps({"game_id": "0" * 16})
        for auth, expected in ((None, 401), ("Bearer nope", 401), ("Bearer s3cret-token", 404)):
            conn = http.client.HTTPSConnection("127.0.0.1", proc.http_port, context=context, timeout=30)
            headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
            conn.request("POST", "/api/GetState", body, headers)
            reply = conn.getresponse()
            assert reply.status == expected, (auth, reply.status, reply.read())
            conn.close()
        conn = http.client.HTTPSConnection("127.0.0.1", proc.http_port, context=context, timeout=30)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
        assert "s3cret-token" not in proc.log.read_text()
    finally:
        assert proc.stop() == 0


def test_access_pieces():
    cfg = configuration.load(None, [], env={})
    assert load_token(cfg, env={}) is None
    assert load_token(cfg, env={"BLOBZERO_AGENT_TOKEN": " abc \n"}) == "abc"
    with pytest.raises(configuration.ConfigError, match="agent.token_file"):
        load_token(configuration.load(None, ["agent.token_file=/nonexistent/token"], env={}), env={})
    with pytest.raises(configuration.ConfigError, match="agent.tls_cert"):
        configuration.load(None, ["agent.tls_cert=/x.pem"], env={})
    with pytest.raises(configuration.ConfigError, match="unknown config key 'agent.token'"):
        configuration.load(None, ["agent.token=abc"], env={})          # never a config key
    access = Access("abc", RateLimiter(0, 1))
    assert access.authorized("Bearer abc") and access.authorized("bearer abc")
    assert not access.authorized("Bearer abd") and not access.authorized(None) and not access.authorized("abc")
    limiter = RateLimiter(rate=1000, burst=2)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False] and limiter.allow("b")
    assert client_of_peer("ipv4:10.1.2.3:5555") == "10.1.2.3" and client_of_peer("ipv6:[::1]:80") == "::1"


# -- rows 4-6: the models behind the agent -----------------------------------------------------------------

def grpc_codes(target: str, requests: list[pb.AdviseRequest], timeout: float) -> list[grpc.StatusCode]:
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.BlobAgentStub(channel)

        def one(request):
            try:
                stub.Advise(request, timeout=timeout)
                return grpc.StatusCode.OK
            except grpc.RpcError as exc:
                return exc.code()
        with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(one, requests))


@pytest.fixture(scope="module")
def agent_without_triton(tmp_path_factory):
    [closed] = free_ports(1)              # nothing listens there: Triton is unreachable
    proc = start_agent(tmp_path_factory.mktemp("no-triton"), "--triton", f"127.0.0.1:{closed}",
                       "--set", "triton.reconnect_timeout_s=3")
    yield proc
    assert proc.stop() == 0, proc.log.read_text()[-2000:]


def test_row4_thirty_model_versions_start_no_threads(agent_without_triton):
    proc = agent_without_triton
    baseline = proc_status(proc.process.pid)["Threads"]
    codes = [grpc_codes(proc.target, [endgame(search="light", model_version=str(v))], 20)[0] for v in range(1, 31)]
    assert set(codes) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT}, codes
    assert proc_status(proc.process.pid)["Threads"] <= baseline + 6


def test_row5_thirty_concurrent_advise_with_triton_unreachable_all_fail_fast(agent_without_triton):
    proc = agent_without_triton
    versions = ["latest"] + [str(v) for v in range(1, 10)]
    requests = [endgame(search=("light", "medium")[i % 2], model_version=versions[i % 10], seed=i)
                for i in range(30)]
    started = time.monotonic()
    codes = grpc_codes(proc.target, requests, 25)
    assert codes == [grpc.StatusCode.UNAVAILABLE] * 30, codes
    assert time.monotonic() - started < 12       # triton.reconnect_timeout_s = 3, once, not per source
    assert proc_status(proc.process.pid)["Threads"] < 80


def test_row6_pinned_version_through_triton_works_or_is_refused_at_once(tmp_path, onnx):
    with agent_behind_triton(tmp_path, onnx) as (_server, proc):
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.BlobAgentStub(channel)
            answer = stub.Advise(endgame(search="light", model_version="1"), timeout=60)
            assert answer.model_version == "1" and answer.recommended.card == "3S"
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                stub.Advise(endgame(search="light", model_version="7"), timeout=30)
            assert time.monotonic() - started < 2
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "servable now: 1" in caught.value.details(), caught.value.details()
            with pytest.raises(grpc.RpcError) as caught:     # a hosted game's model seat, too
                stub.StartGame(pb.StartGameRequest(players=3, cards=1, single_round=True,
                                                   opponents=pb.SeatSpec(kind="model", model_version="7")),
                               timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- the engine: a stalled model source never holds up another's requests ----------------------------

class StallingSource:
    """A model source whose version "9" stalls (a Triton that stopped answering) and whose
    "latest" answers through the real uniform evaluator."""

    def __init__(self, stall_s: float):
        from selfplay_client.evaluator import UniformEvaluator
        self.uniform, self.stall_s = UniformEvaluator(), stall_s
        self.release = threading.Event()
        self.stalled_calls = 0

    def key(self, spec: str) -> str:
        return "9" if spec == "9" else ""

    def evaluate(self, key, states, masks):
        if key == "9":
            self.stalled_calls += 1
            self.release.wait(self.stall_s)
        policy, value = self.uniform.evaluate(states, masks)
        return policy, value, key or "uniform"


def test_a_stalled_source_fails_its_requests_at_its_deadline_and_blocks_no_other():
    from blobcore.rules import Round
    from blobcore.search_config import PRESETS
    from blobzero.agent.engine import Engine, EngineUnavailable

    source = StallingSource(stall_s=30)
    engine = Engine(source, slots=8, deadline_s=3.0)
    try:
        rnd = Round.from_seed(3, 4, 5)
        config = PRESETS["light"].for_evaluation()
        started = time.monotonic()
        stalled = engine.submit(rnd, config, "9", seed=1)
        healthy = [engine.submit(rnd, config, "latest", seed=s) for s in range(4)]
        for future in healthy:                      # answered while "9" stalls
            assert future.result(10).model_version == "uniform"
        assert not stalled.done()
        with pytest.raises(EngineUnavailable, match="has not answered"):
            stalled.result(10)
        assert time.monotonic() - started < 6      # at its deadline (3 s), not the source's 30 s
        with pytest.raises(EngineUnavailable, match="has not answered"):   # refused at once meanwhile
            engine.submit(rnd, config, "9", seed=2)
        time.sleep(0.5)
        assert source.stalled_calls == 1           # nothing more was sent to the stalled source
        source.release.set()                                              # the source answers again
        deadline = time.monotonic() + 10
        while True:
            try:
                assert engine.submit(rnd, config, "9", seed=3).result(10).model_version == "9"
                break
            except EngineUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        threads = [t for t in threading.enumerate() if t.name.startswith("agent-evaluate")]
        assert len(threads) <= 4
    finally:
        source.release.set()
        engine.close()
