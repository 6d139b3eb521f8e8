"""Alerts that reach someone (issue 28): the Alertmanager example checked by the real amtool,
every alert routed by severity (`amtool config routes test`), the cluster's copy equal to the
example, absent() on every "down" alert, and a live run: the real Prometheus evaluating our
alert rules sends them to the real Alertmanager, which delivers each to the receiver its
severity names (webhooks on loopback standing in for PagerDuty and Slack)."""
from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from deploy_helpers import (ROOT, RULES_FILE, LocalPrometheus, explain, free_port, http_get, run,
                            tool)

ALERTMANAGER_CONFIG = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"
STACK_VALUES = ROOT / "k8s" / "kube-prometheus-stack-values.yaml"
ISSUE_28_ALERTS = {"StrengthRegression", "AgentLatencyHigh", "VolumeFilling", "UploadBacklog"}


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def test_the_alertmanager_example_passes_amtool_and_is_what_the_cluster_runs():
    result = run([tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0 and "SUCCESS" in result.stdout, explain(result)
    example = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    values = yaml.safe_load(STACK_VALUES.read_text())["alertmanager"]
    assert values["config"] == example
    assert values["alertmanagerSpec"]["secrets"] == ["blobzero-alertmanager"]
    for receiver in example["receivers"]:
        for configs in receiver.values():
            for config in configs if isinstance(configs, list) else []:
                secret = config.get("routing_key_file") or config.get("api_url_file")
                assert secret.startswith("/etc/alertmanager/secrets/blobzero-alertmanager/"), receiver


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_reaches_the_receiver_of_its_severity(rule):
    severity = rule["labels"]["severity"]
    assert severity in ("critical", "warning")
    result = run([tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
                  f"alertname={rule['alert']}", f"severity={severity}", "job=x"])
    assert result.returncode == 0, explain(result)
    assert result.stdout.strip() == {"critical": "on-call", "warning": "team-chat"}[severity]


def test_every_down_alert_also_fires_when_its_target_is_absent():
    down = [rule for rule in alerts() if rule["alert"].endswith("Down")]
    assert len(down) >= 5
    for rule in down:
        assert "absent(up{" in rule["expr"], rule["alert"]
    assert ISSUE_28_ALERTS <= {rule["alert"] for rule in alerts()}


class Receiver:
    """A webhook receiver on loopback recording the alert names Alertmanager posts to it."""

    def __init__(self):
        self.received: list[str] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.extend(a["labels"]["alertname"] for a in body["alerts"] if a["status"] == "firing")
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_our_alerts_travel_from_prometheus_through_alertmanager_to_the_right_receiver(tmp_path):
    """Live: the agent's target refuses connections and there is no strength tracker at all;
    our rules (their `for:` cut to 0 so the test takes seconds) fire AgentDown (critical) and
    StrengthTrackerDown (warning, through absent()); the example's routes deliver each to its
    receiver and inhibit nothing else."""
    on_call, team_chat = Receiver(), Receiver()
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    config["receivers"] = [{"name": "null"},
                           {"name": "on-call", "webhook_configs": [{"url": on_call.url}]},
                           {"name": "team-chat", "webhook_configs": [{"url": team_chat.url}]}]
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    check = run([tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml")])
    assert check.returncode == 0, explain(check)
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    port, cluster_port = free_port(), free_port()
    log = open(tmp_path / "alertmanager.log", "wb")
    alertmanager = subprocess.Popen(
        [tool("alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
         f"--cluster.listen-address=127.0.0.1:{cluster_port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while http_get(f"http://127.0.0.1:{port}/-/ready", timeout=1)[0] != 200:
            assert alertmanager.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "alertmanager.log").read_text()
            time.sleep(0.2)
        closed = free_port()
        scrape = [{"job_name": "agent", "static_configs": [{"targets": [f"127.0.0.1:{closed}"]}]}]
        with LocalPrometheus(scrape, rule_files=[tmp_path / "rules.yml"], alertmanagers=[f"127.0.0.1:{port}"]):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                    "AgentDown" in on_call.received and "StrengthTrackerDown" in team_chat.received):
                time.sleep(0.5)
        assert "AgentDown" in on_call.received and "AgentDown" not in team_chat.received, \
            (on_call.received, team_chat.received)
        assert "StrengthTrackerDown" in team_chat.received and "StrengthTrackerDown" not in on_call.received
    finally:
        alertmanager.terminate()
        alertmanager.wait(10)
        log.close()
        on_call.server.shutdown()
        team_chat.server.shutdown()
