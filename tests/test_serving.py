"""Serving against the real tritonserver from the nvidia-pytriton wheel (no mocks).

Covers: the model repository (publish, validate, prune), both config flavours, the
evaluators, gRPC parity with in-process ORT, dynamic batching in the metrics, hot reload
under load, malformed requests, truncated versions, `blobzero serve` via the CLI, a taken
port, and a smoke run of `blobzero bench serving --quick`.
"""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from plumbing.netspec import MODEL_NAME, NUM_ACTIONS, VALUE_DIM
from selfplay_client.evaluator import Evaluator, OrtEvaluator, UniformEvaluator, check_batch
from selfplay_client.triton_evaluator import TritonEvaluator, TritonRequestError, TritonUnavailableError
from plumbing.model_repository import (InvalidModelError, ModelRepositoryError, check_servable,
                                       list_versions, publish_version, staging_dir, write_local_config)
from plumbing.triton_config import (GENERATED_HEADER, LOCAL_BACKEND, local_config, parse_config,
                                    production_config)
from services.triton_local import LocalTriton, PortInUseError, ServerConfig, free_ports
from triton_helpers import (PROJECT_ROOT, PYTHON, export_tiny, make_repository, metric, random_batch,
                            shm_files, start_server)


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two different tiny exports: v1 and v2 weights."""
    root = tmp_path_factory.mktemp("models")
    return export_tiny(root / "v1.onnx", seed=1), export_tiny(root / "v2.onnx", seed=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory, models):
    """A tritonserver serving version 1 (2 instances), shared by the read-only tests."""
    root = tmp_path_factory.mktemp("server")
    triton = start_server(root, make_repository(root, models[0]), instances=2)
    yield triton
    assert triton.stop() == 0
    assert shm_files(triton.shm_prefix) == []


# -- model repository (filesystem only) ---------------------------------------------------------

def test_publish_numbers_versions_prunes_and_leaves_no_staging(tmp_path, models):
    repo = tmp_path / "models"
    assert [publish_version(repo, models[i % 2], keep_last=2) for i in range(4)] == [1, 2, 3, 4]
    assert list_versions(repo / MODEL_NAME) == [3, 4]
    assert (repo / MODEL_NAME / "4" / "model.onnx").read_bytes() == models[1].read_bytes()
    assert sorted(p.name for p in staging_dir(repo).iterdir()) == ["publish.lock"]
    assert staging_dir(repo).parent == repo.parent  # outside the repository Triton scans
    assert check_servable(repo) == [3, 4]


def test_publish_refuses_a_truncated_model(tmp_path, models):
    repo = make_repository(tmp_path, models[0])
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(models[1].read_bytes()[:20_000])
    with pytest.raises(InvalidModelError):
        publish_version(repo, truncated)
    assert list_versions(repo / MODEL_NAME) == [1]
    assert sorted(p.name for p in staging_dir(repo).iterdir()) == ["publish.lock"]


def test_publish_clears_leftovers_of_a_crashed_publisher(tmp_path, models):
    repo = make_repository(tmp_path, models[0])
    crashed = staging_dir(repo) / "blobnet-2.abc"
    crashed.mkdir()
    (crashed / "model.onnx").write_bytes(b"half")
    assert publish_version(repo, models[1]) == 2
    assert sorted(p.name for p in staging_dir(repo).iterdir()) == ["publish.lock"]


def test_check_servable_explains_empty_and_malformed_repositories(tmp_path, models):
    with pytest.raises(ModelRepositoryError, match="does not exist.*--init-preset"):
        check_servable(tmp_path / "nowhere")
    (tmp_path / "empty" / MODEL_NAME).mkdir(parents=True)
    with pytest.raises(ModelRepositoryError, match="no version of 'blobnet'"):
        check_servable(tmp_path / "empty")
    repo = make_repository(tmp_path, models[0])
    bad = repo / MODEL_NAME / "2"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(models[0].read_bytes()[:1000])
    with pytest.raises(ModelRepositoryError, match="malformed: newest version 2"):
        check_servable(repo)


# -- config flavours ----------------------------------------------------------------------------

def test_flavours_agree_on_everything_a_client_sees():
    prod, local = production_config(), local_config(instances=2, intra_op_threads=1)
    assert prod.backend == "onnxruntime" and local.backend == LOCAL_BACKEND
    assert [g.kind for g in prod.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert [(g.kind, g.count) for g in local.instance_group] == [(mc.ModelInstanceGroup.KIND_CPU, 2)]
    assert prod.max_batch_size >= 1024 and prod.HasField("dynamic_batching")
    for field in ("name", "max_batch_size", "input", "output", "version_policy", "default_model_filename"):
        assert getattr(prod, field) == getattr(local, field), field
    # batching differs only in how executions are formed, which clients cannot observe
    assert local.dynamic_batching.max_queue_delay_microseconds == prod.dynamic_batching.max_queue_delay_microseconds
    assert list(local.dynamic_batching.preferred_batch_size) == [256]
    assert prod.name == MODEL_NAME


def test_write_local_config_refuses_a_foreign_config(tmp_path):
    model_dir = tmp_path / MODEL_NAME
    model_dir.mkdir()
    path = write_local_config(model_dir, 1, 1)
    assert path.read_text().startswith(GENERATED_HEADER)
    assert parse_config(path.read_text()).backend == LOCAL_BACKEND
    shutil.copy(PROJECT_ROOT / "model_repository" / MODEL_NAME / "config.pbtxt", path)
    with pytest.raises(ModelRepositoryError, match="'onnxruntime'"):
        write_local_config(model_dir, 1, 1)


# -- in-process evaluators ----------------------------------------------------------------------

def test_uniform_evaluator_and_batch_checks():
    states, masks = random_batch(6)
    masks[5] = 0
    policy, value = UniformEvaluator().evaluate(states, masks)
    assert isinstance(UniformEvaluator(), Evaluator)
    np.testing.assert_allclose(policy[:5].sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(policy[masks == 0] == 0) and np.all(policy[5] == 0)
    assert value.shape == (6, VALUE_DIM) and np.all(value == 0.5)
    with pytest.raises(ValueError, match="float32"):
        check_batch(states.astype(np.float64), masks)
    with pytest.raises(ValueError, match=r"shape \(n, 256\)"):
        check_batch(states[:, :100], masks)
    with pytest.raises(ValueError, match="rows"):
        check_batch(states, masks[:3])


# -- the real server ----------------------------------------------------------------------------

def test_grpc_inference_equals_in_process_ort(server, models):
    reference = OrtEvaluator(models[0], intra_op_threads=1)
    with TritonEvaluator(server.url) as remote:
        for n in (1, 7, 300):
            states, masks = random_batch(n, seed=n)
            policy, value = remote.evaluate(states, masks)
            expected_policy, expected_value = reference.evaluate(states, masks)
            assert policy.shape == (n, NUM_ACTIONS) and value.shape == (n, VALUE_DIM)
            assert policy.dtype == np.float32 and policy.flags.writeable
            np.testing.assert_allclose(policy, expected_policy, rtol=0, atol=1e-6)
            np.testing.assert_allclose(value, expected_value, rtol=0, atol=1e-6)
        assert remote.last_model_version == 1
        empty_policy, empty_value = remote.evaluate(*random_batch(0))
        assert empty_policy.shape == (0, NUM_ACTIONS) and empty_value.shape == (0, VALUE_DIM)


def test_several_requests_in_flight_resolve_to_their_own_batches(server, models):
    reference = OrtEvaluator(models[0], intra_op_threads=1)
    batches = [random_batch(n, seed=100 + n) for n in (5, 50, 17, 33, 1, 64)]
    with TritonEvaluator(server.url, max_in_flight=3) as remote:
        futures = [remote.submit(s, m) for s, m in batches]
        for (states, masks), future in zip(batches, futures):
            result = future.result(timeout=30)
            np.testing.assert_allclose(result.policy, reference.evaluate(states, masks)[0], atol=1e-6)
            assert result.model_version == 1


def test_version_can_be_pinned_and_an_unknown_model_fails_clearly(server):
    states, masks = random_batch(2)
    with TritonEvaluator(server.url, model_version=1) as pinned:
        assert pinned.submit(states, masks).result(timeout=30).model_version == 1
    with TritonEvaluator(server.url, model_name="no_such_model", reconnect_timeout_s=0.5) as wrong:
        with pytest.raises(TritonUnavailableError, match=r"model 'no_such_model'\) unavailable for 0.5 s.*unknown model"):
            wrong.evaluate(states, masks)


def test_evaluator_reconnects_when_the_server_restarts(tmp_path, models):
    triton = start_server(tmp_path, make_repository(tmp_path, models[0]), instances=1)
    states, masks = random_batch(8)
    try:
        with TritonEvaluator(triton.url, reconnect_timeout_s=60) as remote:
            expected, _ = remote.evaluate(states, masks)
            assert triton.stop() == 0
            pending = remote.submit(states, masks)  # server down: retried with backoff
            time.sleep(0.5)
            assert not pending.done()
            triton = LocalTriton(triton.config).start()  # same ports
            np.testing.assert_array_equal(pending.result(timeout=60).policy, expected)
            assert remote.retries > 0
    finally:
        assert triton.stop() == 0
        assert shm_files(triton.shm_prefix) == []


def test_dynamic_batching_shows_in_metrics(server):
    labels = {"model": MODEL_NAME, "version": "1"}
    before = server.metrics()
    states, masks = random_batch(1)
    with TritonEvaluator(server.url, max_in_flight=32) as remote:
        futures = [remote.submit(states, masks) for _ in range(1500)]
        for future in futures:
            future.result(timeout=60)

    def delta(name: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    deadline = time.monotonic() + 10
    while True:  # statistics may be recorded a moment after the response left
        after = server.metrics()
        if delta("nv_inference_count") >= 1500 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    inferences, executions = delta("nv_inference_count"), delta("nv_inference_exec_count")
    assert inferences == 1500
    assert inferences / executions > 1.0, f"no merged batches: {inferences} inferences in {executions} executions"


def test_malformed_requests_get_clear_errors_and_the_server_keeps_serving(server):
    client = grpcclient.InferenceServerClient(server.url)

    def raw(state, mask):
        inputs = []
        for name, array, dtype in (("state", state, "FP32" if state.dtype == np.float32 else "FP64"),
                                   ("mask", mask, "FP32")):
            tensor = grpcclient.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return client.infer(MODEL_NAME, inputs)

    states, masks = random_batch(4)
    for state, mask, expected in ((states[:, :255].copy(), masks, r"unexpected shape for input 'state'"),
                                  (states.astype(np.float64), masks, r"'state' data-type is 'FP64'.*'FP32'"),
                                  (states, masks[:3], r"batch size does not match")):
        with pytest.raises(InferenceServerException, match=expected) as info:
            raw(state, mask)
        assert "INVALID_ARGUMENT" in str(info.value.status())
    with TritonEvaluator(server.url, check_inputs=False) as unchecked:
        with pytest.raises(TritonRequestError, match=r"rejected a batch of 4.*unexpected shape for input 'state'"):
            unchecked.evaluate(states[:, :200].copy(), masks)
        policy, _ = unchecked.evaluate(states, masks)  # still serving
    assert policy.shape == (4, NUM_ACTIONS)
    assert raw(states, masks).get_response().model_version == "1"


@pytest.fixture
def reload_server(tmp_path, models):
    triton = start_server(tmp_path, make_repository(tmp_path, models[0]), instances=2)
    yield triton
    assert triton.stop() == 0
    assert shm_files(triton.shm_prefix) == []


class LoadGenerator:
    """Keeps ``in_flight`` batches in flight from a thread; records versions and failures."""

    def __init__(self, url: str, in_flight: int = 4, n: int = 16):
        self.evaluator = TritonEvaluator(url, max_in_flight=in_flight, reconnect_timeout_s=5)
        self.batch, self.in_flight = random_batch(n, seed=9), in_flight
        self.answers: list[tuple[float, int]] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        pending = []
        while not self._stop.is_set() or pending:
            while len(pending) < self.in_flight and not self._stop.is_set():
                pending.append(self.evaluator.submit(*self.batch))
            try:
                self.answers.append((time.monotonic(), pending.pop(0).result(timeout=30).model_version))
            except BaseException as exc:  # recorded, asserted on by the test
                self.failures.append(exc)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)
        self.evaluator.close()

    def wait_for_version(self, version: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = [t for t, v in self.answers if v == version]
            if seen:
                return seen[0]
            time.sleep(0.05)
        raise AssertionError(f"version {version} never answered; failures: {self.failures[:3]}")


def test_publishing_version_2_under_load_switches_with_zero_failures(reload_server, models):
    repo = reload_server.config.model_repository
    with LoadGenerator(reload_server.url) as load:
        time.sleep(0.5)
        assert publish_version(repo, models[1], keep_last=1) == 2
        switched = load.wait_for_version(2, timeout=30)
        time.sleep(1.5)
    assert load.failures == []
    versions = [v for _, v in load.answers]
    assert versions[0] == 1 and set(versions) == {1, 2}
    assert all(v == 2 for t, v in load.answers if t > switched + 1.0), "version 1 still answering"
    assert list_versions(repo / MODEL_NAME) == [2]  # pruned to keep_last=1
    states, masks = random_batch(20, seed=4)
    with TritonEvaluator(reload_server.url) as remote:
        policy, value = remote.evaluate(states, masks)
        assert remote.last_model_version == 2
    expected_policy, expected_value = OrtEvaluator(models[1], intra_op_threads=1).evaluate(states, masks)
    np.testing.assert_allclose(policy, expected_policy, atol=1e-6)
    np.testing.assert_allclose(value, expected_value, atol=1e-6)
    # the version directory holds only model.onnx, so nothing triggers a second reload
    assert reload_server.log_path.read_text().count("loading: blobnet:2") == 1
    assert sorted(p.name for p in (repo / MODEL_NAME / "2").iterdir()) == ["model.onnx"]


def test_a_truncated_model_never_replaces_the_good_one(reload_server, models, tmp_path):
    repo = reload_server.config.model_repository
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(models[1].read_bytes()[:30_000])
    with LoadGenerator(reload_server.url) as load:
        # 1) through the publisher: refused before anything reaches the repository
        with pytest.raises(InvalidModelError):
            publish_version(repo, truncated)
        assert list_versions(repo / MODEL_NAME) == [1]
        # 2) a writer bypassing the publisher drops a truncated version 2 in: the server tries it,
        #    fails to load it, and version 1 keeps answering
        rogue = repo / MODEL_NAME / "2"
        rogue.mkdir()
        (rogue / "model.onnx").write_bytes(truncated.read_bytes())
        deadline, states = time.monotonic() + 20, {}
        while states.get(2) != "UNAVAILABLE" and time.monotonic() < deadline:
            time.sleep(0.1)
            states = reload_server.version_states()
        assert states == {1: "READY", 2: "UNAVAILABLE"}
        shutil.rmtree(rogue)
        time.sleep(0.5)
    assert load.failures == []
    assert {v for _, v in load.answers} == {1}


# -- the CLI ------------------------------------------------------------------------------------

def _serve_command(tmp_path: Path, grpc: int, http: int, metrics: int, *extra: str) -> list[str]:
    return [PYTHON, "-m", "blobzero.cli", "serve", "--model-repository", str(tmp_path / "models"),
            "--work-dir", str(tmp_path / "work"), "--grpc-port", str(grpc), "--http-port", str(http),
            "--metrics-port", str(metrics), *extra]


def _read_until(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    """Collect the process's stderr until a line contains ``needle``."""
    seen, deadline = [], time.monotonic() + timeout
    result: dict[str, str] = {}

    def reader():
        for line in proc.stderr:
            seen.append(line)
            if needle in line:
                result["line"] = line
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if "line" not in result:
        raise AssertionError(f"{needle!r} not printed within {timeout} s:\n{''.join(seen)}")
    return "".join(seen)


def test_blobzero_serve_starts_with_init_preset_and_stops_cleanly_on_sigterm(tmp_path):
    grpc, http, metrics = free_ports(3)
    proc = subprocess.Popen(_serve_command(tmp_path, grpc, http, metrics, "--init-preset", "tiny", "--instances", "1"),
                            cwd=PROJECT_ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        startup = _read_until(proc, "ready:", timeout=90)
        assert f"gRPC 127.0.0.1:{grpc}" in startup and f"metrics http://127.0.0.1:{metrics}/metrics" in startup
        assert "as version 1" in startup
        with TritonEvaluator(f"127.0.0.1:{grpc}") as remote:
            policy, _ = remote.evaluate(*random_batch(3))
            assert remote.last_model_version == 1 and policy.shape == (3, NUM_ACTIONS)
        assert shm_files(f"blobzero_{proc.pid}_") != []  # the stub's regions exist while serving
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "tritonserver stopped (exit code 0)" in rest
    assert shm_files(f"blobzero_{proc.pid}_") == []
    with socket.socket() as s:  # the port is free again: no orphaned server
        s.bind(("127.0.0.1", grpc))


def test_a_taken_port_is_a_clear_error(tmp_path, models):
    repo = make_repository(tmp_path, models[0])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        grpc_free, http_free = free_ports(2)
        config = ServerConfig(repo, tmp_path / "work", grpc_port=taken, http_port=http_free, metrics_port=grpc_free)
        with pytest.raises(PortInUseError, match=f"gRPC port {taken} on 127.0.0.1 is already in use"):
            LocalTriton(config).start()
        result = subprocess.run(_serve_command(tmp_path, grpc_free, http_free, taken), cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"metrics port {taken} on 127.0.0.1 is already in use" in result.stderr


def test_serve_on_an_empty_repository_explains_how_to_get_a_version(tmp_path):
    result = subprocess.run(_serve_command(tmp_path, *free_ports(3)), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "--init-preset tiny" in result.stderr


# -- benchmark smoke ----------------------------------------------------------------------------

def test_bench_serving_quick_prints_the_expected_json():
    result = subprocess.run([PYTHON, "-m", "blobzero.cli", "bench", "serving", "--quick"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "serving" and report["model"]["preset"] == "tiny"
    assert report["positions_per_request"] == [1, 64, 256, 1024]
    for size in ("1", "64", "256", "1024"):
        row = report["results"][size]
        for path in ("triton", "in_process"):
            assert set(row[path]) == {"inferences_per_s", "requests", "p50_ms", "p99_ms"}
            assert row[path]["inferences_per_s"] > 0 and row[path]["p99_ms"] >= row[path]["p50_ms"]
        assert row["ratio"] > 0
    assert {"min_positions_per_request", "min_ratio", "met"} <= set(report["target"])
