"""The agent behind an ingress (issue 28), with the real ``blobzero agent`` process: search-cost
limits per client (and a cap per search) keyed on the address a trusted proxy reports, TLS
certificates reloaded when their files change, gRPC health NOT_SERVING while the network
(a real tritonserver) cannot answer, and the Kubernetes probes of the agent-public component
answered by a real agent with TLS, made the way the kubelet makes them."""
from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import time
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from blobzero import agent_pb2 as pb
from blobzero import agent_pb2_grpc as pb_grpc
from blobzero.agent.access import (COST_ENV, MAX_COST_ENV, PROXIES_ENV, CostLimiter, client_key,
                                   parse_proxies)
from blobzero.arena import arena_search
from plumbing import config as configuration
from agent_helpers import agent_behind_triton, start_agent
from deploy_helpers import ROOT, explain, run, tool
from test_agent import endgame
from triton_helpers import export_tiny

LIGHT = arena_search(configuration.load(None, [], env={}), "light").for_evaluation()
LIGHT_COST = LIGHT.simulations * LIGHT.determinizations


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("ingress-model") / "tiny.onnx", seed=7)


def make_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def served_certificate(port: int, alpn: str | None = None) -> bytes:
    """The DER certificate a TLS port presents to a new connection (no verification)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols([alpn])
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def advise_code(stub, request, client: str | None) -> tuple[grpc.StatusCode, str]:
    metadata = [("x-forwarded-for", client)] if client else []
    try:
        stub.Advise(request, timeout=60, metadata=metadata)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def test_search_cost_is_limited_per_client_behind_a_trusted_proxy(tmp_path, onnx, monkeypatch):
    monkeypatch.setenv(COST_ENV, str(int(3.5 * LIGHT_COST)))
    monkeypatch.setenv(MAX_COST_ENV, "1000")
    monkeypatch.setenv(PROXIES_ENV, "127.0.0.1/32")          # the test is the proxy
    proc = start_agent(tmp_path, "--onnx", str(onnx))
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.BlobAgentStub(channel)
            huge = endgame(search="light", simulations=800, determinizations=64)      # 51,200
            code, details = advise_code(stub, huge, "203.0.113.5")
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "cap of 1000" in details
            codes = [advise_code(stub, endgame(search="light", seed=i), "203.0.113.5")[0] for i in range(4)]
            assert codes == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED], codes
            # another user behind the same proxy has a budget of its own
            assert advise_code(stub, endgame(search="light"), "203.0.113.6")[0] == grpc.StatusCode.OK
            # a forged hop to the left of what the proxy saw changes nothing
            forged = "198.51.100.1, 203.0.113.5"
            assert advise_code(stub, endgame(search="light"), forged)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        status, body = proc.post("Advise", {"players": 3, "cards": 2, "dealer": 2, "trump": "S", "seat": 2,
                                            "hand": ["AS", "3S"], "search": "light", "simulations": 800,
                                            "determinizations": 64,
                                            "history": [{"seat": 0, "bid": 1}, {"seat": 1, "bid": 1},
                                                        {"seat": 2, "bid": 1}, {"seat": 0, "card": "KH"},
                                                        {"seat": 1, "card": "5S"}]})
        assert status == 429 and body["code"] == "RESOURCE_EXHAUSTED", body
        assert proc.metric("blobzero_agent_requests_total", method="Advise", code="RESOURCE_EXHAUSTED") >= 3
    finally:
        assert proc.stop() == 0, proc.log.read_text()[-2000:]


def test_the_search_budget_is_per_client_per_replica_as_documented(tmp_path, onnx, monkeypatch):
    """Two real agent replicas with the same agent.cost_per_minute each keep their own budget per
    client: a client whose requests are spread over both searches up to replicas x
    cost_per_minute a minute, the ceiling docs/deploy.md states (routing each client to one
    replica, as the manifests do, keeps it to cost_per_minute). The page keys on the client a
    trusted proxy reports as gRPC does."""
    per_minute = int(3.5 * LIGHT_COST)
    monkeypatch.setenv(COST_ENV, str(per_minute))
    monkeypatch.setenv(PROXIES_ENV, "127.0.0.1/32")          # the test is the proxy
    replicas = [start_agent(tmp_path / f"replica-{i}", "--onnx", str(onnx)) for i in range(2)]
    try:
        admitted = 0
        for proc in replicas:
            with grpc.insecure_channel(proc.target) as channel:
                stub = pb_grpc.BlobAgentStub(channel)
                answers = [advise_code(stub, endgame(search="light", seed=i), "203.0.113.7") for i in range(4)]
            assert [code for code, _ in answers] == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
            assert "on this replica" in answers[-1][1]
            admitted += 3 * LIGHT_COST
        assert admitted <= len(replicas) * per_minute < admitted + len(replicas) * LIGHT_COST
        light = {"players": 3, "cards": 2, "dealer": 2, "trump": "S", "seat": 2, "hand": ["AS", "3S"],
                 "search": "light", "history": [{"seat": 0, "bid": 1}, {"seat": 1, "bid": 1}, {"seat": 2, "bid": 1},
                                                {"seat": 0, "card": "KH"}, {"seat": 1, "card": "5S"}]}
        status, body = replicas[0].post("Advise", light, headers={"X-Forwarded-For": "203.0.113.7"})
        assert status == 429 and "on this replica" in body["message"], body
        assert replicas[0].post("Advise", light, headers={"X-Forwarded-For": "203.0.113.8"})[0] == 200
    finally:
        for proc in replicas:
            assert proc.stop() == 0, proc.log.read_text()[-2000:]


def test_cost_limit_and_client_key_pieces():
    trusted = parse_proxies("10.0.0.0/8, 192.168.1.7")
    assert client_key("10.1.1.1", "203.0.113.9, 10.2.2.2", trusted) == "203.0.113.9"
    assert client_key("8.8.8.8", "203.0.113.9", trusted) == "8.8.8.8"           # not a proxy we trust
    assert client_key("10.1.1.1", None, trusted) == "10.1.1.1"
    assert client_key("10.1.1.1", "203.0.113.9", ()) == "10.1.1.1"            # nothing trusted
    with pytest.raises(configuration.ConfigError, match='agent.trusted_proxies'):
        parse_proxies("10.0.0.0/8, nonsense")
    limiter = CostLimiter(per_minute=100, max_request=60)
    assert "cap" in limiter.charge("a", 61)
    assert limiter.charge("a", 60) is None and limiter.charge("a", 30) is None
    assert "rate limit" in limiter.charge("a", 30) and limiter.charge("b", 60) is None


def test_tls_certificates_are_reloaded_when_their_files_change(tmp_path, onnx):
    """Kubernetes renews a Secret by pointing a symlink at a new directory: the agent keeps
    running and new connections on both ports get the new certificate."""
    first = make_certificate(tmp_path / "a", "blobzero-first")
    second = make_certificate(tmp_path / "b", "blobzero-second")
    live = tmp_path / "live"
    live.symlink_to(tmp_path / "a")
    proc = start_agent(tmp_path / "agent", "--onnx", str(onnx), "--set", f"agent.tls_cert={live / 'tls.crt'}",
                       "--set", f"agent.tls_key={live / 'tls.key'}", tls_root=first[0].read_bytes())
    try:
        assert served_certificate(proc.http_port) == der(first[0])
        assert served_certificate(proc.grpc_port, alpn="h2") == der(first[0])
        swap = tmp_path / "live.new"
        swap.symlink_to(tmp_path / "b")
        os.replace(swap, live)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and served_certificate(proc.http_port) != der(second[0]):
            time.sleep(0.5)
        assert served_certificate(proc.http_port) == der(second[0])
        assert served_certificate(proc.grpc_port, alpn="h2") == der(second[0])
        with grpc.secure_channel(proc.target, grpc.ssl_channel_credentials(second[0].read_bytes())) as channel:
            answer = pb_grpc.BlobAgentStub(channel).Advise(endgame(search="light"), timeout=60)
            assert answer.recommended.card == "3S"
        assert proc.process.poll() is None and "TLS certificate" in proc.log.read_text()
    finally:
        assert proc.stop() == 0, proc.log.read_text()[-2000:]


def health(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_is_not_serving_while_triton_cannot_answer(tmp_path, onnx):
    """gRPC health and the base manifest's readiness probe (/readyz over plain HTTP, made as the
    kubelet makes it) both turn NOT_SERVING / 503 once Triton stops answering; liveness stays."""
    [agent] = [d for d in render_with(tmp_path / "base") if d["kind"] == "Deployment"
               and d["metadata"]["name"] == "blobzero-agent"]
    [container] = agent["spec"]["template"]["spec"]["containers"]
    with agent_behind_triton(tmp_path, onnx, "--set", "triton.reconnect_timeout_s=2") as (server, proc):
        ports = {"http": proc.http_port, "grpc": proc.grpc_port, "metrics": proc.metrics_port}
        for service in ("", "blobzero.v1.BlobAgent"):
            assert health(proc.target, service) == health_pb2.HealthCheckResponse.SERVING
        assert kubelet_http_probe(container["readinessProbe"], ports) == 200
        server.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and health(proc.target, "blobzero.v1.BlobAgent") == \
                health_pb2.HealthCheckResponse.SERVING:
            time.sleep(0.5)
        for service in ("", "blobzero.v1.BlobAgent"):
            assert health(proc.target, service) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert "NOT_SERVING" in proc.log.read_text()
        assert kubelet_http_probe(container["readinessProbe"], ports) == 503       # out of the Service
        assert kubelet_http_probe(container["livenessProbe"], ports) == 200        # not restarted


def render_with(tmp_path: Path, *components: str) -> list[dict]:
    """k8s/overlays/objectstore plus ``components``, rendered by the real kubectl."""
    overlay = tmp_path / "overlay"
    overlay.mkdir(parents=True)
    k8s = Path(os.path.relpath(ROOT / "k8s", overlay))
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [str(k8s / "overlays" / "objectstore")],
        "components": [str(k8s / "components" / c) for c in components]}))
    result = run([tool("kubectl"), "kustomize", str(overlay)])
    assert result.returncode == 0, explain(result)
    (tmp_path / "rendered.yaml").write_text(result.stdout)
    for version in ("1.29.0", "1.37.0"):
        valid = run([tool("kubernetes-validate"), "--strict", "-k", version, str(tmp_path / "rendered.yaml")])
        assert valid.returncode == 0 and "ERROR" not in valid.stdout + valid.stderr, explain(valid)
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def kubelet_http_probe(probe: dict, ports: dict[str, int]) -> int:
    """An httpGet probe as the kubelet makes it (HTTPS without verifying the certificate);
    the status, or 0 when the connection fails."""
    get = probe["httpGet"]
    port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
    if get.get("scheme", "HTTP") == "HTTPS":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=probe.get("timeoutSeconds", 1), context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=probe.get("timeoutSeconds", 1))
    try:
        conn.request("GET", get["path"])
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def test_the_public_agent_answers_its_probes_over_tls(tmp_path, onnx):
    """Rendered agent-public + agent-ingress on the cluster default: the probes a real TLS agent
    behind a real tritonserver answers (the plain-HTTP liveness probe of before fails: the
    restart loop), readiness following Triton over TLS (503 once it stops answering, liveness
    still 200), an Ingress per protocol with TLS, and a LoadBalancer example."""
    docs = render_with(tmp_path / "ingress", "agent-public", "agent-ingress")
    agent = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "blobzero-agent")
    [container] = agent["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[PROXIES_ENV] and float(env[COST_ENV]) > 0 and int(env[MAX_COST_ENV]) > 0
    assert agent["spec"]["replicas"] >= 2
    ingresses = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Ingress"}
    assert {i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"]
            for i in ingresses.values()} == {"HTTPS", "GRPCS"}
    assert all(i["spec"]["tls"][0]["secretName"] for i in ingresses.values())
    # each client to one replica, so a client's budget is agent.cost_per_minute (per replica)
    annotations = {name: i["metadata"]["annotations"] for name, i in ingresses.items()}
    assert annotations["blobzero-agent-web"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["blobzero-agent-grpc"]["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$remote_addr"
    [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "blobzero-agent"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    lb = render_with(tmp_path / "lb", "agent-public", "agent-loadbalancer")
    [public] = [d for d in lb if d["kind"] == "Service" and d["spec"].get("type") == "LoadBalancer"]
    assert public["spec"]["externalTrafficPolicy"] == "Local" and public["spec"]["sessionAffinity"] == "ClientIP"

    cert, key = make_certificate(tmp_path / "tls", "blobzero-probe")
    assert {container[p]["httpGet"].get("scheme") for p in ("livenessProbe", "readinessProbe")} == {"HTTPS"}
    with agent_behind_triton(tmp_path / "run", onnx, "--set", f"agent.tls_cert={cert}", "--set",
                             f"agent.tls_key={key}", "--set", "triton.reconnect_timeout_s=2",
                             tls_root=cert.read_bytes()) as (server, proc):
        ports = {"http": proc.http_port, "grpc": proc.grpc_port, "metrics": proc.metrics_port}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert kubelet_http_probe(container[probe], ports) == 200, (probe, container[probe])
        for probe in ("livenessProbe", "readinessProbe"):
            plain = {"httpGet": {**container[probe]["httpGet"], "scheme": "HTTP"}}
            assert kubelet_http_probe(plain, ports) != 200          # what restarted the pod before
        server.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and kubelet_http_probe(container["readinessProbe"], ports) == 200:
            time.sleep(0.5)
        assert kubelet_http_probe(container["readinessProbe"], ports) == 503
        assert kubelet_http_probe(container["livenessProbe"], ports) == 200
