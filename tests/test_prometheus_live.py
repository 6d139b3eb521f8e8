"""A real Prometheus scrapes a running embedded stack (issue 6, deliverables 5 and 6).

The stack: the real local tritonserver (``LocalTriton``) serving a freshly exported tiny BlobNet,
and a real ``blobzero selfplay`` process playing against it. Prometheus (Debian's 2.42 binary,
installed by ``make deploy-tools``) runs on loopback with a 1 s scrape interval, loads the
production alert rules, and answers the dashboards' own queries:

* Triton alone: its metrics are scraped, every Triton panel of the dashboards returns data,
  the alert rules evaluate without error, and every Triton name in monitoring/metric_names.txt
  (but the GPU-only one) is really exported;
* with self-play: the dashboard's rounds/min query is positive, every self-play panel returns
  data, and every self-play name in monitoring/metric_names.txt is really exported;
* the trainer and the agent service (`blobzero agent` answering Advise calls) likewise.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from deploy_helpers import (RULES_FILE, LocalPrometheus, dashboard_queries, exported_metric_names,
                            free_port, http_get, load_metric_names, promql_metric_names)
from triton_helpers import export_tiny, make_repository, random_batch, start_server

SELFPLAY_TIMEOUT_S = 45.0


def queries_for(exporter: str) -> list[tuple[str, str]]:
    """Dashboard queries whose metrics all come from ``exporter`` (GPU-only panels excluded)."""
    names = load_metric_names()
    selected = []
    for label, expr in dashboard_queries():
        used = promql_metric_names(expr)
        if used and all(names[n].exporter == exporter and not names[n].gpu_only for n in used):
            selected.append((label, expr))
    return selected


def listed(exporter: str) -> set[str]:
    return {n.name for n in load_metric_names().values() if n.exporter == exporter and not n.gpu_only}


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    repo = make_repository(root, export_tiny(root / "tiny.onnx", seed=0))
    server = start_server(root, repo)
    try:
        yield server
    finally:
        server.stop()


def infer(server, rounds: int, rows: int = 64) -> None:
    client = grpcclient.InferenceServerClient(server.url)
    try:
        for i in range(rounds):
            states, masks = random_batch(rows, seed=i)
            inputs = [grpcclient.InferInput("state", states.shape, "FP32"),
                      grpcclient.InferInput("mask", masks.shape, "FP32")]
            inputs[0].set_data_from_numpy(states)
            inputs[1].set_data_from_numpy(masks)
            client.infer("blobnet", inputs)
    finally:
        client.close()


def triton_job(server) -> dict:
    return {"job_name": "triton",
            "static_configs": [{"targets": [f"127.0.0.1:{server.config.metrics_port}"]}]}


def test_prometheus_scrapes_triton_and_dashboards_and_rules_work(triton):
    with LocalPrometheus([triton_job(triton)], rule_files=[RULES_FILE]) as prometheus:
        infer(triton, 3)
        prometheus.wait_for('sum(nv_inference_count{job="triton"})', lambda r: r and r[0][1] > 0,
                            timeout=20, what="Triton's inference count")
        assert prometheus.query('up{job="triton"}')[0][1] == 1.0

        # Keep requests flowing while the rate windows fill, then run the Triton panels' queries.
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                infer(triton, 2)

        worker = threading.Thread(target=load)
        worker.start()
        try:
            batch = [q for q in queries_for("triton") if "Triton average batch size" in q[0]][0][1]
            prometheus.wait_for(batch, lambda r: r and r[0][1] >= 1, timeout=20, what="average batch size")
            empty = [label for label, expr in queries_for("triton") if not prometheus.query(expr)]
        finally:
            stop.set()
            worker.join()
        assert len(queries_for("triton")) >= 6
        assert not empty, f"Triton dashboard queries with no data: {empty}"

        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == sum(1 for _ in open(RULES_FILE) if _.strip().startswith(("- alert:", "- record:")))
        assert all(rule["health"] in ("ok", "unknown") and not rule.get("lastError") for rule in rules), rules
        firing = {r["name"] for r in rules if r["type"] == "alerting" and r["state"] != "inactive"}
        assert "TritonDown" not in firing

    missing = listed("triton") - exported_metric_names(triton.metrics())
    assert not missing, f"listed in monitoring/metric_names.txt but not exported by Triton: {missing}"


def selfplay_command(config: Path, triton_url: str, metrics_port: int) -> list[str]:
    """How the embedded client is launched (the contract of issue 5)."""
    return [str(Path(sys.prefix) / "bin" / "blobzero"), "selfplay", "--config", str(config),
            "--set", f"triton.url={triton_url}",
            "--set", f"metrics.selfplay_port={metrics_port}",
            "--duration", str(int(SELFPLAY_TIMEOUT_S + 30))]      # stops by itself even if orphaned


def test_prometheus_sees_selfplay_rounds_per_minute(triton, tmp_path):
    metrics_port = free_port()
    config = tmp_path / "blobzero.toml"
    config.write_text(f"""
[network]
preset = "tiny"

[search]
preset = "light"

[selfplay]
games_in_flight = 32
rounds_per_shard = 8
shard_max_seconds = 2.0

[storage]
games_dir = "{tmp_path / 'games'}"
model_repository = "{triton.config.model_repository}"
checkpoint_dir = "{tmp_path / 'checkpoints'}"

[metrics]
host = "127.0.0.1"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOBZERO")}
    log_path = tmp_path / "selfplay.log"
    scrape = [triton_job(triton),
              {"job_name": "selfplay", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}]
    with open(log_path, "wb") as log, LocalPrometheus(scrape, rule_files=[RULES_FILE]) as prometheus:
        client = subprocess.Popen(selfplay_command(config, triton.url, metrics_port), env=env,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            rounds_per_min = [q for q in queries_for("selfplay") if "Self-play rounds/min" in q[0]][0][1]
            assert "* 60" in rounds_per_min
            try:
                result = prometheus.wait_for(rounds_per_min, lambda r: r and r[0][1] > 0,
                                             timeout=SELFPLAY_TIMEOUT_S, what="self-play rounds/min")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nclient exit code {client.poll()}; log:\n"
                                     f"{log_path.read_text(errors='replace')[-3000:]}") from None
            assert result[0][1] > 0
            empty = [label for label, expr in queries_for("selfplay") if not prometheus.query(expr)]
            assert not empty, f"self-play dashboard queries with no data: {empty}"
            status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert status == 200
            missing = listed("selfplay") - exported_metric_names(body.decode())
            assert not missing, f"listed in monitoring/metric_names.txt but not exported by selfplay: {missing}"
        finally:
            if client.poll() is None:
                os.killpg(client.pid, signal.SIGTERM)
                try:
                    client.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(client.pid, signal.SIGKILL)
                    client.wait()


def test_prometheus_scrapes_the_trainer(tmp_path):
    """`blobzero train` on an empty games directory: it publishes version 1, serves its metrics,
    and every training panel and trainer metric name is there (no training step needed)."""
    metrics_port = free_port()
    config = tmp_path / "blobzero.toml"
    config.write_text(f"""
[network]
preset = "tiny"

[triton]
flavour = "local"

[storage]
games_dir = "{tmp_path / 'games'}"
model_repository = "{tmp_path / 'models' / 'repository'}"
checkpoint_dir = "{tmp_path / 'checkpoints'}"

[metrics]
host = "127.0.0.1"
""")
    (tmp_path / "games").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOBZERO")}
    command = [str(Path(sys.prefix) / "bin" / "blobzero"), "train", "--config", str(config),
               "--set", f"metrics.trainer_port={metrics_port}", "--duration", "90"]
    log_path = tmp_path / "trainer.log"
    scrape = [{"job_name": "trainer", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}]
    with open(log_path, "wb") as log, LocalPrometheus(scrape, rule_files=[RULES_FILE]) as prometheus:
        trainer = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            version = [q for q in queries_for("trainer") if "Published version" in q[0]][0][1]
            try:
                prometheus.wait_for(version, lambda r: r and r[0][1] >= 1, timeout=40,
                                    what="published version")
                prometheus.wait_for('count(up{job="trainer"})', lambda r: r, timeout=5, what="trainer up")
                time.sleep(2.5)                                   # two more scrapes for the rates
            except AssertionError as exc:
                raise AssertionError(f"{exc}\ntrainer exit code {trainer.poll()}; log:\n"
                                     f"{log_path.read_text(errors='replace')[-3000:]}") from None
            empty = [label for label, expr in queries_for("trainer") if not prometheus.query(expr)]
            assert not empty, f"training dashboard queries with no data: {empty}"
            status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert status == 200
            missing = listed("trainer") - exported_metric_names(body.decode())
            assert not missing, f"listed in monitoring/metric_names.txt but not exported by the trainer: {missing}"
        finally:
            if trainer.poll() is None:
                os.killpg(trainer.pid, signal.SIGTERM)
                try:
                    trainer.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(trainer.pid, signal.SIGKILL)
                    trainer.wait()


def test_prometheus_scrapes_the_agent(tmp_path):
    """`blobzero agent` answering Advise calls: every panel of the agent dashboard returns data
    and every agent metric name in monitoring/metric_names.txt is exported."""
    import grpc

    from blobzero import agent_pb2 as pb
    from blobzero import agent_pb2_grpc as pb_grpc
    from blobzero.agent.process import start_agent

    onnx = export_tiny(tmp_path / "tiny.onnx", seed=0)
    agent = start_agent(tmp_path / "agent", "--onnx", str(onnx),
                        "--set", f"storage.model_repository={tmp_path / 'none'}")
    request = pb.AdviseRequest(players=3, cards=2, dealer=2, trump="S", seat=0, hand=["AS", "3S"],
                               search="light")
    stop = threading.Event()

    def load() -> None:
        with grpc.insecure_channel(agent.target) as channel:
            stub = pb_grpc.BlobAgentStub(channel)
            while not stop.is_set():
                stub.Advise(request, timeout=30)
                try:
                    stub.Advise(pb.AdviseRequest(players=9), timeout=30)
                except grpc.RpcError:
                    pass
                time.sleep(0.05)

    scrape = [{"job_name": "agent", "static_configs": [{"targets": [f"127.0.0.1:{agent.metrics_port}"]}]}]
    worker = threading.Thread(target=load)
    try:
        with LocalPrometheus(scrape, rule_files=[RULES_FILE]) as prometheus:
            worker.start()
            [requests] = [expr for label, expr in queries_for("agent") if ": Requests/s [A]" in label]
            prometheus.wait_for(requests, lambda r: r and r[0][1] > 0, timeout=30, what="agent requests/s")
            empty = [label for label, expr in queries_for("agent") if not prometheus.query(expr)]
            assert len(queries_for("agent")) >= 9
            assert not empty, f"agent dashboard queries with no data: {empty}"
        missing = listed("agent") - exported_metric_names(agent.metrics())
        assert not missing, f"listed in monitoring/metric_names.txt but not exported by the agent: {missing}"
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(30)
        assert agent.stop() == 0
