"""Offline checks of issue 20's deployment fixes, with the real validators (kubectl kustomize,
docker-compose, promtool): GPU-taint tolerations, node-scoped time-slicing, the Prometheus
lifecycle API off, Grafana's password from a secret, namespaced alert selectors, the agent's
token and TLS wired from secrets (compose override, Kubernetes component)."""
from __future__ import annotations

import os
import re

import pytest
import yaml

from deploy_helpers import ROOT, RULES_FILE, explain, run, tool
from test_deploy_files import COMPOSE, compose_config, objects, pod_spec

K8S = ROOT / "k8s"
TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def kustomize_docs(path) -> list[dict]:
    result = run([tool("kubectl"), "kustomize", str(path)])
    assert result.returncode == 0, explain(result)
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {**objects(docs, "Deployment"), **objects(docs, "CronJob"), **objects(docs, "Job")}


@pytest.mark.parametrize("overlay", ["gpu", "gpu-shared"])
def test_every_pod_tolerates_the_gpu_taint_on_gpu_overlays(overlay):
    """On a single tainted GPU node (one GPU box) nothing may stay Pending."""
    pods = workloads(kustomize_docs(K8S / "overlays" / overlay))
    assert {"blobzero-selfplay", "blobzero-agent", "blobzero-arena", "blobzero-triton"} <= set(pods)
    for name, obj in pods.items():
        assert TAINT in pod_spec(obj).get("tolerations", []), name


def test_time_slicing_is_node_scoped():
    sharing = yaml.safe_load((K8S / "overlays" / "gpu-shared" / "time-slicing.yaml").read_text())
    [key] = sharing["data"]
    commands = (K8S / "overlays" / "gpu-shared" / "time-slicing.yaml").read_text() + \
        (ROOT / "docs" / "deploy.md").read_text()
    patches = re.findall(r"kubectl patch clusterpolicies[^\n]*\n[^\n]*", commands)
    assert patches and all('"default"' not in p for p in patches), patches      # no cluster-wide default
    assert f"nvidia.com/device-plugin.config={key}" in commands                 # the node is labelled
    pods = workloads(kustomize_docs(K8S / "overlays" / "gpu-shared"))
    for name in ("blobzero-triton", "blobzero-trainer"):
        assert pod_spec(pods[name])["nodeSelector"] == {"nvidia.com/device-plugin.config": key}


def test_compose_prometheus_has_no_lifecycle_api_and_grafana_no_default_password():
    model = compose_config(COMPOSE)
    assert not any("lifecycle" in arg for arg in model["services"]["prometheus"]["command"])
    grafana = model["services"]["grafana"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert [s["source"] if isinstance(s, dict) else s for s in grafana["secrets"]] == ["grafana_admin_password"]
    assert model["secrets"]["grafana_admin_password"]["file"].endswith("secrets/grafana_admin_password")
    raw = (ROOT / "docker-compose.yml").read_text()
    assert ":-admin}" not in raw
    assert "/secrets/" in (ROOT / ".gitignore").read_text().split()


def test_compose_public_override_wires_token_and_tls_from_secrets():
    model = compose_config(COMPOSE, ROOT / "docker-compose.public.yml")
    agent = model["services"]["agent"]
    env = agent["environment"]
    assert env["BLOBZERO__AGENT__TOKEN_FILE"] == "/run/secrets/agent_token"
    assert (env["BLOBZERO__AGENT__TLS_CERT"], env["BLOBZERO__AGENT__TLS_KEY"]) == \
        ("/run/secrets/agent_tls_cert", "/run/secrets/agent_tls_key")
    assert float(env["BLOBZERO__AGENT__RATE_LIMIT"]) > 0
    assert "BLOBZERO_AGENT_TOKEN" not in env                         # never a value in a file
    assert {s["source"] if isinstance(s, dict) else s for s in agent["secrets"]} == \
        {"agent_token", "agent_tls_cert", "agent_tls_key"}
    # the base publishes on loopback; AGENT_BIND opens it
    base = compose_config(COMPOSE)["services"]["agent"]["ports"]
    assert {p.get("host_ip") for p in base} == {"127.0.0.1"}


def test_kubernetes_agent_token_and_tls_come_from_a_secret(tmp_path):
    base = workloads(kustomize_docs(K8S / "base"))["blobzero-agent"]
    [container] = pod_spec(base)["containers"]
    [token] = [e for e in container["env"] if e["name"] == "BLOBZERO_AGENT_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "blobzero-agent-auth", "key": "token", "optional": True}
    overlay = tmp_path / "public"
    overlay.mkdir()
    rel = os.path.relpath(K8S, overlay)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {rel}/overlays/gpu\ncomponents:\n  - {rel}/components/agent-public\n")
    agent = workloads(kustomize_docs(overlay))["blobzero-agent"]
    spec = pod_spec(agent)
    [container] = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    [volume] = [v for v in spec["volumes"] if v["name"] == "agent-auth"]
    assert volume["secret"]["secretName"] == "blobzero-agent-auth"
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "agent-auth"]
    assert env["BLOBZERO__AGENT__TLS_CERT"] == f"{mount['mountPath']}/tls.crt"
    assert env["BLOBZERO__AGENT__TLS_KEY"] == f"{mount['mountPath']}/tls.key"
    assert float(env["BLOBZERO__AGENT__RATE_LIMIT"]) > 0
    policy = (K8S / "base" / "network-policies.yaml").read_text()
    assert "To narrow it" in policy and "ipBlock" in policy


def test_cluster_alert_rules_select_the_namespace_and_pass_promtool(tmp_path):
    rule = yaml.safe_load((ROOT / "monitoring" / "k8s" / "prometheusrule.yaml").read_text())
    groups = rule["spec"]["groups"]
    selectors = [m for g in groups for r in g["rules"] for m in re.findall(r"\{[^}]*\}", r["expr"])
                 if "job=" in m]
    assert selectors and all('namespace="blobzero"' in m for m in selectors), selectors
    path = tmp_path / "k8s-rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, explain(result)


def test_agent_and_strength_tracker_have_alerts():
    alerts = {r.get("alert") for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]}
    assert {"AgentDown", "AgentErrorsHigh", "StrengthTrackerDown", "StrengthNotMeasured"} <= alerts
