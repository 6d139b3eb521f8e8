"""Fault injection, kept in the suite (issue 10): no single bad input or dead process stops training.

Every fault is the real thing against real processes: records and shards written as a buggy or
hostile client would, `blobzero train` / `blobzero selfplay` / `blobzero serve` as subprocesses,
the real tritonserver with its python-backend stub killed by PID (`kill -9`), a broken version
directory, a model that answers NaN, a taken metrics port, a read-only games volume (as an
unprivileged user when the tests run as root, since root ignores permissions), a trainer killed
in the middle of a publish, a self-play client killed with unflushed rounds.
docs/architecture.md ("Failures, one by one") quotes the figures these tests print.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from blobcore.search_config import PLAIN
from helpers import wait_until
from plumbing import records_pb2
from plumbing.config import load
from plumbing.fsio import atomic_write_bytes
from plumbing.model_repository import (InvalidModelError, list_versions, publish_version, rejected_dir,
                                       staging_dir, validate_onnx)
from plumbing.netspec import MASK, MODEL_NAME, POLICY, STATE, VALUE, VALUE_DIM
from plumbing.records import to_proto
from plumbing.shards import QUARANTINE, ShardReader, encode_shard, sanitize_client_id, shard_key
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs
from selfplay_client.triton_evaluator import TritonEvaluator, TritonNonFiniteError
from services.triton_local import _children, _url_status, free_ports
from trainer.examples import from_record
from triton_helpers import PROJECT_ROOT, PYTHON, export_tiny, make_repository, metric, random_batch, start_server

ENV = {k: v for k, v in os.environ.items() if not k.startswith("BLOBZERO")}
ROUNDS_PER_SHARD = 8


# -- helpers ------------------------------------------------------------------------------------

def settings(root: Path, **extra) -> list[str]:
    """``--set`` arguments for a fast service: tiny network, light search, storage under ``root``.
    ``extra`` keys are ``section__key``."""
    values = {
        "network.preset": "tiny", "search.preset": "light",
        "selfplay.games_in_flight": 32, "selfplay.rounds_per_shard": ROUNDS_PER_SHARD,
        "selfplay.shard_max_seconds": 2.0, "triton.reconnect_timeout_s": 2.0,
        "storage.games_dir": root / "games", "storage.model_repository": root / "models",
        "storage.checkpoint_dir": root / "checkpoints",
        "metrics.selfplay_port": 0, "metrics.trainer_port": 0,
        "trainer.min_positions": 100, "trainer.window_min": 100, "trainer.batch_size": 32,
        "trainer.steps_per_publish": 1000, "trainer.checkpoint_every": 10,
    }
    values.update({k.replace("__", "."): v for k, v in extra.items()})
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def cli(command: str, args: list[str], prefix: tuple[str, ...] = ()) -> list[str]:
    return [*prefix, PYTHON, "-m", "blobzero.cli", command, *args]


def spawn(command: str, args: list[str], log: Path, env: dict | None = None,
          prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cli(command, args, prefix), cwd=PROJECT_ROOT, env=env or ENV,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def run_cli(command: str, args: list[str], timeout: float = 120, env: dict | None = None,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(cli(command, args, prefix), cwd=PROJECT_ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def report(what: str, **figures) -> None:
    """The figures docs/architecture.md quotes (visible with ``pytest -s``)."""
    print(f"\n[fault figures] {what}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


@contextlib.contextmanager
def read_only(directory: Path):
    """Yields a command prefix under which ``directory`` is read-only. Not root: mode 0555.
    Root ignores modes, so then a read-only bind mount in a private mount namespace (a real
    read-only filesystem, EROFS, as on a read-only volume); skipped where that is not allowed."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield ()
        finally:
            directory.chmod(0o755)
        return
    unshare = ("unshare", "--mount", "--propagation", "private")
    probe = subprocess.run([*unshare, "mount", "--bind", str(directory), str(directory)], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"root without mount namespaces cannot make a directory read-only: {probe.stderr!r}")
    yield (*unshare, "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"',
           str(directory))


def exported(module: torch.nn.Module, path: Path) -> Path:
    """``module`` exported with BlobNet's wire contract (names, dynamic batch axis)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # the TorchScript exporter, as trainer/export.py
        torch.onnx.export(module.eval(), (torch.zeros(2, 256), torch.ones(2, 52)), str(path),
                          input_names=[STATE, MASK], output_names=[POLICY, VALUE],
                          dynamic_axes={n: {0: "batch"} for n in (STATE, MASK, POLICY, VALUE)},
                          opset_version=17, dynamo=False)
    return path


class Broken(torch.nn.Module):
    """Finite and in range on an all-zeros input (all the old validation tried), broken on
    real positions: ``kind`` nan (values NaN), range (values > 1) or policy (not a distribution)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, state, mask):
        activity = state.sum(dim=1, keepdim=True)          # 0 on zeros, several on real positions
        policy = torch.softmax(mask * 0 + (mask - 1) * 1e4, dim=1)
        value = 0.5 + 0 * activity
        if self.kind == "nan":
            value = torch.sqrt(0.25 - activity)
        elif self.kind == "range":
            value = 0.5 + activity
        else:
            policy = policy * (1 + activity)
        return policy, value * torch.ones(1, VALUE_DIM)


@pytest.fixture(scope="module")
def records():
    search = PooledSearch(UniformEvaluator(), PLAIN.sized("light"), itertools.islice(round_specs(11), 12), n_games=12)
    search.run()
    return [to_proto(r, "fixture", model_version=1) for r in search.finished()]


def mutated(record, change) -> records_pb2.RoundRecord:
    copy = records_pb2.RoundRecord()
    copy.CopyFrom(record)
    change(copy)
    return copy


def write_shard(games: Path, client: str, records: list) -> str:
    """A shard of ``client`` written where self-play puts it; returns its key."""
    atomic_write_bytes(games / shard_key(1, client, 0), encode_shard(records))
    return shard_key(1, client, 0)


def malformed(records) -> list:
    """The records that crash-looped the trainer: more visit counts than actions, an action
    >= 52, n_players that is not the number of hands, a played action over 32 bits."""
    return [mutated(records[0], lambda r: r.decisions[0].visits.append(7)),
            mutated(records[1], lambda r: r.decisions[0].actions.__setitem__(0, 60)),
            mutated(records[2], lambda r: setattr(r, "n_players", 5)),
            mutated(records[3], lambda r: r.actions.__setitem__(0, 2**32 - 1))]


# -- 1. malformed records; 10. the data-lag gauge --------------------------------------------------

def test_malformed_records_cost_one_record_not_the_trainer(tmp_path, records):
    games = tmp_path / "games"
    games.mkdir()
    good, bad = records[4:], malformed(records)
    write_shard(games, "good", good)
    mixed = write_shard(games, "mixed", records[:4] + bad)        # 4 usable, 4 malformed
    empty = write_shard(games, "empty", [records_pb2.RoundRecord()] * 2000)
    assert (games / empty).stat().st_size < 100                  # the 51-byte file of the report
    port = free_ports(1)[0]
    log = tmp_path / "trainer.log"
    trainer = spawn("train", settings(tmp_path, metrics__trainer_port=port) + ["--duration", "120"], log)
    try:
        quarantined = games / QUARANTINE / (empty + ".reason")
        wait_until(quarantined.exists, 60, "the shard of empty records to be quarantined", [(trainer, log)])
        wait_until(lambda: metric(scrape(port), "blobzero_trainer_data_lag_seconds") > 0, 30,
                   "the trainer's metrics", [(trainer, log)])
        lag = metric(scrape(port), "blobzero_trainer_data_lag_seconds")
        time.sleep(2.5)
        text = scrape(port)
        # no new shard: the lag keeps growing (it used to freeze at its value on ingest)
        assert metric(text, "blobzero_trainer_data_lag_seconds") >= lag + 2
        assert 0 < metric(text, "blobzero_trainer_games_volume_free_bytes") <= \
            metric(text, "blobzero_trainer_games_volume_size_bytes")
        assert trainer.poll() is None
    finally:
        code = stop(trainer)
    out = log.read_text()
    assert code == 0, out[-3000:]
    assert "Traceback" not in out
    skipped = [line for line in out.splitlines() if "skipped" in line and "records of" in line]
    assert len(skipped) == 2, skipped                      # one summary line per bad shard
    assert sum(empty in line for line in out.splitlines()) == 1, out   # quarantined: still one line
    assert "skipped 4 of 8 records of " + mixed in out
    assert "skipped 2000 of 2000 records of " + empty in out and "1997 more" in out
    assert "none of its 2000 records is usable" in quarantined.read_text()
    assert (games / mixed).exists()                        # its good half is used, it stays
    state = torch.load(tmp_path / "checkpoints" / "trainer.pt", map_location="cpu", weights_only=False)
    all_views = load(None, [a for a in settings(tmp_path) if a != "--set"], env={}).search.perspective == "searcher"
    usable = sum(len(from_record(r, all_views=all_views)) for r in good + records[:4])
    assert state["progress"]["positions_seen"] == usable
    assert state["progress"]["rounds_seen"] == len(good) + 4
    report("malformed records", records_lost=len(bad), bad_shard_warning_lines=len(skipped),
           exit_code=code)


# -- 7. a read-only games volume ------------------------------------------------------------------

def test_a_read_only_games_volume(tmp_path, records):
    games = tmp_path / "games"
    games.mkdir()
    write_shard(games, "bad", malformed(records))
    (games / "garbage").mkdir()
    (games / shard_key(1, "garbage", 0)).write_bytes(b"not a shard at all")
    with read_only(games) as prefix:
        # self-play checks at start (it used to play, then die at its first flush)
        started = time.monotonic()
        result = run_cli("selfplay", settings(tmp_path, triton__url="127.0.0.1:9"), timeout=60, prefix=prefix)
        assert result.returncode == 2, result.stderr
        assert "config key 'storage.games_dir': cannot write to" in result.stderr
        assert "Traceback" not in result.stderr
        refused_s = time.monotonic() - started
        # the trainer cannot quarantine: it skips the bad shards in place, says so, keeps going
        log = tmp_path / "trainer.log"
        trainer = spawn("train", settings(tmp_path) + ["--duration", "4"], log, prefix=prefix)
        code = trainer.wait(120)
        out = log.read_text()
        assert code == 0, out[-3000:]
        assert "Traceback" not in out
        assert out.count("so it is skipped in place") == 2
        assert sorted(str(p.relative_to(games)) for p in games.rglob("*") if p.is_file()) == sorted(
            [shard_key(1, "bad", 0), shard_key(1, "garbage", 0)])
    report("read-only games volume", selfplay_refused_after_s=round(refused_s, 1), trainer_exit=code)


def test_client_ids_are_claimed_by_one_live_writer_at_a_time(tmp_path):
    from plumbing.shards import ClientClaim, ClientIdInUse
    host = sanitize_client_id(socket.gethostname())
    first, second = ClientClaim(tmp_path), ClientClaim(tmp_path)
    assert (first.id, second.id) == (host, f"{host}-2")
    first.release()
    assert ClientClaim(tmp_path).id == host                 # freed: the next start takes it back
    fixed = ClientClaim(tmp_path, "fixed")
    with pytest.raises(ClientIdInUse, match="'fixed' is in use"):
        ClientClaim(tmp_path, "fixed")
    fixed.release()


# -- 6. a taken metrics port ----------------------------------------------------------------------

@pytest.mark.parametrize("command,key", [(["selfplay"], "metrics.selfplay_port"),
                                         (["train"], "metrics.trainer_port"),
                                         (["strength", "--watch"], "metrics.strength_port")])
def test_a_taken_metrics_port_names_the_port_and_the_key(tmp_path, command, key):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli(command[0], command[1:] + settings(tmp_path, triton__url="127.0.0.1:9",
                                                            **{key.replace(".", "__"): port}))
    assert result.returncode == 2, result.stderr
    assert f"config key '{key}': metrics port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr


# -- 8. kill -9 during a publish ------------------------------------------------------------------

def test_kill_9_during_publish_leaks_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(ENV, TMPDIR=str(tmp))
    staging = tmp_path / "checkpoints" / ".staging"
    log = tmp_path / "trainer.log"
    trainer = spawn("train", settings(tmp_path) + ["--init-only"], log, env=env)
    caught = False
    deadline = time.monotonic() + 120
    while trainer.poll() is None and time.monotonic() < deadline:
        if staging.is_dir() and any(staging.glob("blobnet-export-*")):
            trainer.kill()                                   # kill -9 in the middle of the export
            caught = True
            break
        time.sleep(0.005)
    trainer.wait()
    assert not list(tmp.glob("blobnet-*")), "an export went to TMPDIR"   # (torch keeps a cache dir there)
    if caught:
        assert any(staging.iterdir())                        # what the kill left behind
        assert list_versions(tmp_path / "models" / MODEL_NAME) == []
    started = time.monotonic()
    result = run_cli("train", settings(tmp_path) + ["--init-only"], env=env)
    assert result.returncode == 0, result.stderr
    assert not staging.exists() or not any(staging.iterdir())
    assert not list(tmp.glob("blobnet-*"))
    assert list_versions(tmp_path / "models" / MODEL_NAME) == [1]
    report("kill -9 during publish", killed_mid_export=caught,
           restart_to_version_1_s=round(time.monotonic() - started, 1))


def test_a_restart_right_after_a_publish_does_not_publish_that_step_again(tmp_path, records):
    games = tmp_path / "games"
    games.mkdir()
    write_shard(games, "fixture", records)
    args = settings(tmp_path, trainer__steps_per_publish=2, trainer__checkpoint_every=1000)
    versions = lambda: list_versions(tmp_path / "models" / MODEL_NAME)      # noqa: E731
    result = run_cli("train", args + ["--init-only"])                     # v1 and a checkpoint at step 0
    assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "checkpoints" / "trainer.pt"
    at_step_0 = checkpoint.read_bytes()
    result = run_cli("train", args + ["--steps", "2"])
    assert result.returncode == 0, result.stderr
    assert versions() == [1, 2]
    checkpoint.write_bytes(at_step_0)      # as if killed after publishing v2, before its checkpoint
    result = run_cli("train", args + ["--steps", "4"])
    assert result.returncode == 0, result.stderr
    assert versions() == [1, 2, 3]         # step 2 stays v2; step 4 is v3
    assert "step 2 is already published as version 2" in result.stdout + result.stderr


# -- 5. non-finite weights are never checkpointed or published -----------------------------------

def test_non_finite_weights_and_losses_never_reach_a_checkpoint(tmp_path, records):
    from trainer.compact_window import pack_records
    from trainer.service import CHECKPOINT, Trainer
    cfg = load(None, [a for a in settings(tmp_path) if a != "--set"], env={})
    trainer = Trainer(cfg)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert trainer.run(init_only=True) == 0
    finally:                                                  # run() installs its own
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    checkpoint = tmp_path / "checkpoints" / CHECKPOINT
    saved = checkpoint.read_bytes()
    trainer.window.add(pack_records(records, trainer.all_views)[0])
    good = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    with torch.no_grad():
        next(trainer.net.parameters()).fill_(float("nan"))
    assert trainer._train_step() is False                     # NaN loss: no update, counted
    assert trainer.progress.step == 0
    assert trainer._weights_finite() is False                 # rolled back, not saved
    assert trainer._weights_finite() is True
    for key, value in trainer.net.state_dict().items():
        assert torch.equal(value, good[key]), key
    assert checkpoint.read_bytes() == saved
    assert trainer._train_step() is True and trainer.progress.step == 1
    nonfinite = {s.labels["kind"]: s.value for s in trainer.metrics.nonfinite.collect()[0].samples
                 if s.name.endswith("_total")}
    assert nonfinite == {"loss": 1.0, "weights": 1.0}
    # a checkpoint with NaN weights from an older trainer: refused with a clear message
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    for value in state["net"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))
    torch.save(state, checkpoint)
    result = run_cli("train", settings(tmp_path) + ["--init-only"])
    assert result.returncode == 1 and "holds non-finite weights" in result.stderr
    assert "Traceback" not in result.stderr


# -- 4. validation on real positions --------------------------------------------------------------

@pytest.mark.parametrize("kind,message", [
    ("nan", "output 'value' is NaN or inf for"),
    ("range", "outside \\[0, 1\\]"),
    ("policy", "policy rows sum to"),
])
def test_validation_catches_models_that_are_fine_on_zeros_only(tmp_path, kind, message):
    model = exported(Broken(kind), tmp_path / f"{kind}.onnx")
    import onnxruntime as ort
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    zeros = session.run(None, {STATE: np.zeros((2, 256), np.float32), MASK: np.ones((2, 52), np.float32)})
    assert all(np.isfinite(a).all() for a in zeros)           # what the old validation saw
    with pytest.raises(InvalidModelError, match=message):
        validate_onnx(model)
    repo = make_repository(tmp_path, export_tiny(tmp_path / "good.onnx", seed=1))
    with pytest.raises(InvalidModelError):
        publish_version(repo, model)
    assert list_versions(repo / MODEL_NAME) == [1]


@pytest.mark.slow
def test_selfplay_resumes_within_seconds_of_tritons_return_after_a_long_outage(tmp_path):
    """The retry pause is bounded (2 s), so a long outage does not leave self-play asleep for
    tens of seconds after Triton is back (issue 20: 19.6 s after a 61 s outage)."""
    import threading

    from selfplay_client.metrics import SelfplayMetrics
    from selfplay_client.service import ResilientEvaluator
    from services.triton_local import LocalTriton

    repo = make_repository(tmp_path, export_tiny(tmp_path / "v1.onnx", seed=1))
    server = start_server(tmp_path, repo, instances=1, exit_timeout_s=2)
    stop_event = threading.Event()
    with TritonEvaluator(server.url, reconnect_timeout_s=1.0) as triton:
        resilient = ResilientEvaluator(triton, SelfplayMetrics(), stop_event)
        assert resilient.submit(*random_batch(4)).result(30).policy.shape == (4, 52)
        server.stop()
        pending = resilient.submit(*random_batch(4))
        time.sleep(20)                                   # the outage; retries back off meanwhile
        assert not pending.done()
        server = LocalTriton(server.config).start()      # the same ports: Triton is back
        back = time.monotonic()
        try:
            assert pending.result(30).policy.shape == (4, 52)
            resumed_s = time.monotonic() - back
        finally:
            stop_event.set()
            server.stop()
    assert resumed_s < 4, resumed_s
    report("20 s Triton outage", resumed_after_return_s=round(resumed_s, 1))


# -- the serving drill: one server, one self-play client, faults one after another -----------------

class Drill:
    def __init__(self, root: Path, server, models):
        self.root, self.server, self.models = root, server, models
        self.repo = server.config.model_repository
        self.port = free_ports(1)[0]
        self.args = settings(root, triton__url=server.url, metrics__selfplay_port=self.port)
        self.log = root / "selfplay.log"
        self.client = spawn("selfplay", self.args + ["--progress", "off"], self.log)

    def metric(self, name: str, **labels) -> float:
        return metric(scrape(self.port), name, **labels)

    def watched(self):
        return [(self.client, self.log)]

    def wait_requests(self, more: int, timeout: float, what: str) -> float:
        """Seconds until the client has ``more`` answered requests than now."""
        start, t0 = self.metric("blobzero_selfplay_requests_total"), time.monotonic()
        wait_until(lambda: self.metric("blobzero_selfplay_requests_total") >= start + more,
                   timeout, what, self.watched())
        return time.monotonic() - t0


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    root = tmp_path_factory.mktemp("drill")
    models = [export_tiny(root / f"v{i}.onnx", seed=i) for i in (1, 2)]
    # one unreaped stub is enough for a restart here (the default waits for four)
    server = start_server(root, make_repository(root, models[0]), instances=1, exit_timeout_s=2,
                          zombie_limit=1, zombie_grace_s=3.0)
    drill = Drill(root, server, models)
    try:
        drill.wait_requests(20, 90, "self-play to start")
        yield drill
    finally:
        stop(drill.client)
        server.stop()


def live_stubs(server) -> list[int]:
    return [pid for pid, comm, state in _children(server.process.pid)
            if comm.startswith("triton_python") and state != "Z"]


@pytest.mark.slow
def test_a_killed_backend_stub_is_healed_and_selfplay_carries_on(drill):
    [stub] = live_stubs(drill.server)
    killed = time.monotonic()
    os.kill(stub, signal.SIGKILL)
    wait_until(lambda: drill.server.heals == 1, 20, "the watchdog to reload the model", drill.watched())
    # answered requests resume (in flight at the kill: at most triton.max_in_flight)
    recovered = drill.wait_requests(8, 60, "self-play to continue after the stub died")
    recovery_s = time.monotonic() - killed
    assert live_stubs(drill.server) and stub not in live_stubs(drill.server)
    # reaped: by the old instance's unload when the server does it, else by a restart
    wait_until(lambda: not drill.server.dead_stubs(), 30, "the killed stub to be reaped", drill.watched())
    assert drill.server.restarts <= 1 and drill.server.poll() is None
    drill.wait_requests(8, 60, "self-play to continue after the stub was reaped")
    assert drill.client.poll() is None
    assert "Traceback" not in drill.log.read_text()
    with TritonEvaluator(drill.server.url) as client:
        policy, _ = client.evaluate(*random_batch(3))
        assert policy.shape == (3, 52)
    report("killed python-backend stub", seconds_to_recover=round(recovery_s, 1),
           heals=drill.server.heals, requests_wait_s=round(recovered, 1),
           unavailable_errors=drill.metric("blobzero_selfplay_errors_total", kind="unavailable"))


@pytest.mark.slow
def test_a_crashed_server_is_relaunched_and_selfplay_carries_on(drill):
    """tritonserver dying on its own (an abort in the backend was seen once in a long run) is
    relaunched on the same ports; the loop never sees an exit, the client only retries."""
    restarts, old = drill.server.restarts, drill.server.process
    killed = time.monotonic()
    os.kill(old.pid, signal.SIGKILL)
    wait_until(lambda: drill.server.restarts == restarts + 1 and drill.server.process is not old
               and drill.server._http_status(f"/v2/models/{MODEL_NAME}/ready") == 200,
               60, "the watchdog to relaunch the server", drill.watched())
    assert drill.server.poll() is None
    recovered = drill.wait_requests(8, 60, "self-play to continue after the relaunch")
    assert drill.client.poll() is None and not drill.server.dead_stubs()
    assert "Traceback" not in drill.log.read_text()
    report("tritonserver killed", seconds_to_recover=round(time.monotonic() - killed, 1),
           requests_wait_s=round(recovered, 1),
           unavailable_errors=drill.metric("blobzero_selfplay_errors_total", kind="unavailable"))


@pytest.mark.slow
def test_a_broken_version_directory_costs_no_readiness_that_matters(drill, caplog):
    model_dir = drill.repo / MODEL_NAME
    # a good version first, so that the one before it is unloaded on purpose (UNAVAILABLE too)
    newest = publish_version(drill.repo, drill.models[1], keep_last=5)
    drill.server.wait_for_version(newest)
    wait_until(lambda: drill.server.version_states().get(newest - 1) == "UNAVAILABLE", 30,
               "poll mode to unload the version before", drill.watched())
    broken = model_dir / str(newest + 1)
    errors = drill.metric("blobzero_selfplay_errors_total")
    broken.mkdir()
    wait_until(lambda: drill.server.version_states().get(newest + 1) == "UNAVAILABLE", 30,
               "Triton to fail loading the broken version", drill.watched())
    # the failure is told apart from the versions poll mode unloaded on purpose
    assert list(drill.server.failed_loads()) == [newest + 1]
    wait_until(lambda: "server readiness is false while blobnet serves" in caplog.text, 30,
               "the watchdog to explain the readiness flag")
    warning = next(r.getMessage() for r in caplog.records if "server readiness is false" in r.getMessage())
    assert f"version(s) {newest + 1}: " in warning and "'UNAVAILABLE'" not in warning   # no list of states
    broken.rmdir()
    # the model serves throughout, and self-play with it; only the server-wide flag is stuck
    assert _url_status(f"{drill.server.http_url}/v2/models/{MODEL_NAME}/ready") == 200
    assert _url_status(f"{drill.server.http_url}/v2/health/ready") == 400
    drill.wait_requests(8, 30, "self-play to keep playing")
    assert drill.metric("blobzero_selfplay_errors_total") == errors     # not one request failed
    # `blobzero serve` restarts on a repository whose newest version directory is broken: the
    # broken one is moved aside and the newest good one serves (it used to refuse to start)
    broken.mkdir()
    grpc, http, metrics_port = free_ports(3)
    log = drill.root / "serve.log"
    started = time.monotonic()
    serve = spawn("serve", ["--model-repository", str(drill.repo), "--work-dir", str(drill.root / "serve"),
                            "--grpc-port", str(grpc), "--http-port", str(http),
                            "--metrics-port", str(metrics_port), "--instances", "1"], log)
    try:
        wait_until(lambda: "ready:" in log.read_text(), 90, "blobzero serve to start", [(serve, log)])
        ready_s = time.monotonic() - started
        assert _url_status(f"http://127.0.0.1:{http}/v2/models/{MODEL_NAME}/ready") == 200
        assert f"moved unusable version {newest + 1} out of the repository" in log.read_text()
        assert not broken.exists() and any(rejected_dir(drill.repo).iterdir())
    finally:
        assert stop(serve) == 0
    report("broken version directory", model_ready_throughout=True,
           serve_restart_to_ready_s=round(ready_s, 1))


@pytest.mark.slow
def test_a_model_answering_nan_is_refused_and_counted(drill):
    nan_model = exported(Broken("nan"), drill.root / "nan.onnx")
    model_dir = drill.repo / MODEL_NAME
    with pytest.raises(InvalidModelError, match="NaN"):          # the publisher refuses it ...
        publish_version(drill.repo, nan_model)
    # ... so a writer bypassing the publisher drops it in, and Triton serves it
    rogue = max(list_versions(model_dir)) + 1
    stage = staging_dir(drill.repo) / "rogue"
    stage.mkdir()
    shutil.copy(nan_model, stage / "model.onnx")
    os.rename(stage, model_dir / str(rogue))
    drill.server.wait_for_version(rogue)
    with TritonEvaluator(drill.server.url) as client:
        wait_until(lambda: client.submit(*random_batch(4)).exception(timeout=10) is not None, 20,
                   "the NaN version to answer")
        with pytest.raises(TritonNonFiniteError, match=f"version {rogue} .* NaN/inf for 4 of 4"):
            client.evaluate(*random_batch(4))
    wait_until(lambda: drill.metric("blobzero_selfplay_errors_total", kind="nonfinite") >= 2, 60,
               "self-play to count refused answers", drill.watched())
    assert drill.client.poll() is None
    assert not [s for s in ShardReader(drill.root / "games").list() if s.version == rogue]
    # a good version replaces it and self-play carries on with it
    good = publish_version(drill.repo, drill.models[1], keep_last=5)
    started = time.monotonic()
    wait_until(lambda: drill.metric("blobzero_selfplay_model_version") == good, 60,
               "self-play to use the good version", drill.watched())
    drill.wait_requests(8, 30, "self-play to continue")
    assert "answered NaN/inf" in drill.log.read_text() and "Traceback" not in drill.log.read_text()
    report("model answering NaN", refused=drill.metric("blobzero_selfplay_errors_total", kind="nonfinite"),
           rounds_of_the_nan_version=0, seconds_to_continue_after_a_good_publish=round(time.monotonic() - started, 1))


@pytest.mark.slow
def test_kill_9_of_selfplay_loses_only_unflushed_rounds_and_the_id_stays(drill):
    games = ShardReader(drill.root / "games")
    client_id, first_seq = re.search(r"client (\S+) \(shards from seq (\d+)\)", drill.log.read_text()).groups()
    assert client_id == sanitize_client_id(socket.gethostname()) and first_seq == "0"
    finished = drill.metric("blobzero_selfplay_rounds_total")
    drill.client.kill()                                       # kill -9
    drill.client.wait()
    mine = [s for s in games.list() if s.client == client_id]
    written = sum(len(games.read(s.path)) for s in mine)
    # rounds finished but never flushed: at least this many (more may finish after the scrape,
    # and a flush after it can make this negative), never more than one shard's worth
    lost = max(0, finished - written)
    assert finished - written <= ROUNDS_PER_SHARD - 1
    # the restarted client takes its id back and continues its sequence numbers
    log = drill.root / "selfplay-restarted.log"
    drill.client, drill.log = spawn("selfplay", drill.args + ["--progress", "off"], log), log
    started = time.monotonic()
    wait_until(lambda: re.search(r"client (\S+) \(shards from seq (\d+)\)", log.read_text()), 60,
               "the restarted client to start", drill.watched())
    again, seq = re.search(r"client (\S+) \(shards from seq (\d+)\)", log.read_text()).groups()
    assert again == client_id and int(seq) == max(s.seq for s in mine) + 1
    wait_until(lambda: any(s.client == client_id and s.seq >= int(seq) for s in games.list()), 60,
               "a shard of the restarted client", drill.watched())
    restart_s = time.monotonic() - started
    # a second live client on the same host gets its own id, never the same file names
    second = run_cli("selfplay", [*settings(drill.root, triton__url=drill.server.url), "--rounds", "1",
                                  "--progress", "off"])
    assert second.returncode == 0, second.stderr
    assert f"client {client_id}-2 (shards from seq 0)" in second.stderr
    assert stop(drill.client) == 0
    assert "Traceback" not in log.read_text()
    report("kill -9 of self-play", finished_rounds=int(finished), rounds_lost=int(lost),
           bound=ROUNDS_PER_SHARD - 1, restart_to_first_shard_s=round(restart_s, 1))
