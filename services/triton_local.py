"""``blobzero serve``: the real tritonserver from the nvidia-pytriton wheel, on loopback.

``LocalTriton`` is the reusable piece (tests, benchmarks and the self-play loop use it)::

    with LocalTriton(ServerConfig.with_free_ports("var/model_repository", "var/triton")) as server:
        evaluator = TritonEvaluator(server.url)

On start it checks the ports and the repository (clear errors), writes the local flavour's
config, provisions the backend directory (services/triton_dist.py), launches the binary in
its own session with a per-server shared-memory prefix, and waits until the model is ready.
``stop()`` sends SIGTERM (Triton drains in-flight requests and unloads the model, whose stubs
then remove their shared memory), escalates to SIGKILL of the whole process group after
``exit_timeout_s``, and finally deletes any ``/dev/shm`` file left under that prefix.

Model control is *poll* mode: the server notices new version directories by itself, so a
publisher only needs the shared filesystem (docs/serving.md explains the choice).

Self-healing (docs/architecture.md, "Failures, one by one"):
* start-up: newest versions that do not validate (an empty or half-written directory left by
  a writer that bypassed the publisher) are moved out of the repository, so the newest good
  version serves instead of nothing;
* a watchdog thread checks every ``watchdog_s``: a python-backend stub process that died
  (``kill -9``, OOM) leaves the server and model "ready" while every request fails with
  "Stub process ... is not healthy" until the model reloads; the watchdog sees the dead stub
  (a zombie child of the server) and makes poll mode reload the served version by touching
  its model file. Unloading the old instance usually reaps the dead stub; one still a zombie
  ``zombie_grace_s`` later counts, and ``zombie_limit`` of them make the watchdog restart the
  server, which reaps them all. It also says once, in the log, when the server-wide readiness flag is false
  while the model serves (a version failed to load; the flag stays false until a newer one
  loads, so probes ask ``/v2/models/blobnet/ready``);
* a server that exits on its own (an abort inside the python backend after a stub died was
  seen once in a 68-minute run) is relaunched on the same ports, ``restarts`` times an hour at most;
  ``poll()`` reports an exit only when no relaunch is coming. Clients ride the gap out with
  their usual retries.
"""
from __future__ import annotations

import argparse
import atexit
import errno
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from plumbing.netspec import MODEL_NAME, ONNX_FILENAME, WORLD_MODEL_NAME
from services import triton_dist
from plumbing.model_repository import (ModelRepositoryError, check_not_foreign, check_servable,
                                       list_versions, publish_version, set_aside_unusable,
                                       write_local_config)
from plumbing.storage import as_location, join, open_store, triton_repository_url

log = logging.getLogger("blobzero.serve")

HOST = "127.0.0.1"  #: loopback only: the local server is for this machine's clients
SHM_DIR = Path("/dev/shm")


def default_instances() -> int:
    """Model instances (one ORT thread each): one per core, at most 2 (client needs CPU too)."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one local tritonserver.

    model_repository: directory (or ``s3://`` URL) holding ``blobnet/<n>/model.onnx`` (the generated local config
                      is written to ``blobnet/config.pbtxt``)
    work_dir:         backend directory and ``tritonserver.log`` live here
    *_port:           TCP ports on 127.0.0.1
    instances:        model instances (stub processes), each running ORT with
    intra_op_threads: ORT intra-op threads per instance
    poll_secs:        how often Triton rescans the repository for new versions (s)
    startup_timeout_s / exit_timeout_s: bounds on start and graceful stop (s)
    shm_bytes:        initial shared-memory region per instance (python backend tensors pass here)
    watchdog_s:       period of the self-healing checks (s; 0 = off)
    restarts:         relaunches per hour the watchdog may make of a server that exited on its
                      own (a crash) or that holds ``zombie_limit`` dead stubs (0 = never)
    zombie_limit:     dead stubs the server has not reaped ``zombie_grace_s`` after their heal
                      that make the watchdog restart it (the restart reaps them)
    """

    model_repository: Path | str
    work_dir: Path
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    instances: int = field(default_factory=lambda: default_instances())
    intra_op_threads: int = 1
    poll_secs: int = 1
    startup_timeout_s: float = 60.0
    exit_timeout_s: int = 10
    shm_bytes: int = 16 << 20
    log_verbose: int = 0
    watchdog_s: float = 1.0
    restarts: int = 5
    zombie_limit: int = 4
    zombie_grace_s: float = 10.0

    def __post_init__(self):
        if self.restarts < 0 or self.zombie_limit < 1 or self.zombie_grace_s < 0:
            raise ValueError("ServerConfig: restarts must be >= 0, zombie_limit >= 1, zombie_grace_s >= 0")
        # a directory as a Path, an s3:// URL as it is (plumbing/storage.py)
        object.__setattr__(self, "model_repository", as_location(self.model_repository))
        object.__setattr__(self, "work_dir", Path(self.work_dir))

    @classmethod
    def with_free_ports(cls, model_repository, work_dir, **kwargs) -> "ServerConfig":
        grpc, http, metrics = free_ports(3)
        return cls(model_repository, work_dir, grpc_port=grpc, http_port=http, metrics_port=metrics, **kwargs)

    @property
    def ports(self) -> dict[str, int]:
        return {"gRPC": self.grpc_port, "HTTP": self.http_port, "metrics": self.metrics_port}


def repository_argument(model_repository) -> str:
    """``--model-repository`` for a directory (absolute) or a bucket (Triton's s3:// form)."""
    return triton_repository_url(model_repository)


class ServeError(RuntimeError):
    """The local server cannot start or stopped unexpectedly (message says why)."""


class PortInUseError(ServeError):
    pass


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def check_ports(config: ServerConfig) -> None:
    """Raise PortInUseError naming the first port something already listens on."""
    if len(set(config.ports.values())) != len(config.ports):
        raise PortInUseError(f"the gRPC, HTTP and metrics ports must differ, got {config.ports}")
    for role, port in config.ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is fine
            try:
                s.bind((HOST, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUseError(
                        f"{role} port {port} on {HOST} is already in use (another tritonserver?); "
                        f"stop it or choose another port with --{role.lower()}-port") from None
                raise


class LocalTriton:
    """One local tritonserver process. Context manager: ``start()`` on enter, ``stop()`` on exit."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.process: subprocess.Popen | None = None
        self.shm_prefix = f"blobzero_{os.getpid()}_{secrets.token_hex(4)}_"
        self.log_path = Path(config.work_dir) / "tritonserver.log"
        self.heals = 0                      #: model reloads the watchdog triggered
        self.restarts = 0                   #: server relaunches the watchdog made
        self._restart_times: list[float] = []   # monotonic times of the relaunches
        self._gave_up = False
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self._lifecycle = threading.RLock()  # a relaunch and stop() never interleave

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """gRPC address for tritonclient (``host:port``)."""
        return f"{HOST}:{self.config.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.config.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.config.metrics_port}/metrics"

    # -- lifecycle ---------------------------------------------------------------------------
    def command(self, backends: Path) -> list[str]:
        c = self.config
        return [
            str(triton_dist.locate().binary),
            f"--model-repository={repository_argument(c.model_repository)}",
            f"--backend-directory={backends}",
            "--model-control-mode=poll", f"--repository-poll-secs={c.poll_secs}",
            "--disable-auto-complete-config",  # our config is complete; never guess
            f"--grpc-address={HOST}", f"--grpc-port={c.grpc_port}",
            f"--http-address={HOST}", f"--http-port={c.http_port}",
            f"--metrics-address={HOST}", f"--metrics-port={c.metrics_port}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={c.exit_timeout_s}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            f"--backend-config=python,shm-default-byte-size={c.shm_bytes}",
            f"--backend-config=python,shm-growth-byte-size={c.shm_bytes}",
            f"--log-verbose={c.log_verbose}",
        ]

    def start(self) -> "LocalTriton":
        """Launch and wait until model ``blobnet`` is ready; raises ServeError/ModelRepositoryError."""
        if self.process is not None:
            raise ServeError("this LocalTriton is already started")
        c = self.config
        check_ports(c)
        for version, why in set_aside_unusable(c.model_repository):
            log.warning("moved unusable version %d out of the repository (%s)", version, why)
        versions = check_servable(c.model_repository)
        write_local_config(join(c.model_repository, MODEL_NAME), c.instances, c.intra_op_threads)
        # the world-value model, where one is published beside BlobNet (blobzero worlds publish)
        world = join(c.model_repository, WORLD_MODEL_NAME)
        if list_versions(world):
            check_servable(c.model_repository, WORLD_MODEL_NAME)
            write_local_config(world, c.instances, c.intra_op_threads, WORLD_MODEL_NAME)
        self._watchdog_stop.clear()
        self._launch()
        atexit.register(self.stop)
        try:
            self._wait_ready(c.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        log.debug("tritonserver pid %d ready with versions %s", self.process.pid, versions)
        if c.watchdog_s > 0:
            self._watchdog = threading.Thread(target=self._watch, name="triton-watchdog", daemon=True)
            self._watchdog.start()
        return self

    def _launch(self) -> None:
        """Start the tritonserver process (its own session; output appended to the log)."""
        backends = triton_dist.provision_backends(self.config.work_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.command(backends), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                env=triton_dist.server_environment(),
                start_new_session=True,  # Ctrl-C in a terminal reaches us only; we stop the server
            )

    # -- self-healing ----------------------------------------------------------------------
    def _will_relaunch(self) -> bool:
        """True while the watchdog runs and has relaunches left this hour."""
        recent = [t for t in self._restart_times if time.monotonic() - t < 3600.0]
        return (self._watchdog is not None and self._watchdog.is_alive() and not self._gave_up
                and not self._watchdog_stop.is_set() and len(recent) < self.config.restarts)

    def _relaunch(self, why: str) -> bool:
        """Stop what is left of the server and start it again on the same ports; False when
        it could not be started (or a stop was asked for meanwhile)."""
        with self._lifecycle:
            if self._watchdog_stop.is_set():
                return False
            old = self.process
            self.restarts += 1
            self._restart_times.append(time.monotonic())
            log.error("%s: restarting tritonserver (restart %d; at most %d an hour); last log lines:\n%s",
                      why, self.restarts, self.config.restarts, self.log_tail(8))
            if old.poll() is None:
                old.send_signal(signal.SIGTERM)
                try:
                    old.wait(self.config.exit_timeout_s + 5)
                except subprocess.TimeoutExpired:
                    pass
            self._kill_group(old.pid)
            old.wait()
            self._remove_shm()
            for attempt in range(3):     # the ports can take a moment to be free again
                self._launch()
                try:
                    self._wait_ready(self.config.startup_timeout_s)
                except ServeError as exc:
                    self._kill_group(self.process.pid)
                    self.process.wait()
                    if self._watchdog_stop.is_set():
                        return False
                    log.error("tritonserver did not come back (attempt %d of 3): %s", attempt + 1, exc)
                    time.sleep(2.0)
                    continue
                log.warning("tritonserver is back (pid %d) and serves %s", self.process.pid, MODEL_NAME)
                return True
            self._gave_up = True      # poll() now reports the exit
            return False

    def dead_stubs(self) -> list[int]:
        """PIDs of python-backend stub processes of this server that died (zombie children:
        the server does not reap a stub until the model instance unloads)."""
        if self.process is None:
            return []
        return [pid for pid, comm, state in _children(self.process.pid)
                if comm.startswith("triton_python") and state == "Z"]

    def reload_served_version(self, why: str) -> int | None:
        """Make poll mode reload the newest version (a new modification time on its model
        file: ``Store.touch``, the same bytes rewritten in a bucket); returns it."""
        store = open_store(join(self.config.model_repository, MODEL_NAME))
        versions = list_versions(store)
        if not versions:
            return None
        key = f"{versions[-1]}/{ONNX_FILENAME}"
        try:
            store.touch(key)
        except OSError as exc:
            log.error("%s, but cannot touch %s/%s to reload it: %s", why, store.url, key, exc)
            return None
        self.heals += 1
        log.warning("%s: reloading %s version %d (poll mode picks it up within %d s)",
                    why, MODEL_NAME, versions[-1], self.config.poll_secs)
        return versions[-1]

    def _watch(self) -> None:
        pending: set[int] = set()     # dead stubs seen once (a normal unload reaps within ms)
        handled: dict[int, float] = {}   # dead stub -> when its heal was asked for
        explained = split_before = False
        tick = 0
        while not self._watchdog_stop.wait(self.config.watchdog_s):
            code = self.process.poll()
            if code is not None:
                if not self._will_relaunch() or not self._relaunch(f"tritonserver exited with code {code}"):
                    return
                pending, handled = set(), {}
                continue
            all_dead = self.dead_stubs()
            dead = set(all_dead) - set(handled)
            confirmed = dead & pending
            if confirmed:
                self.reload_served_version(f"model backend process(es) {sorted(confirmed)} died")
                handled.update(dict.fromkeys(confirmed, time.monotonic()))
            pending = dead - confirmed
            now = time.monotonic()
            unreaped = [pid for pid in all_dead if now - handled.get(pid, now) >= self.config.zombie_grace_s]
            if len(unreaped) >= self.config.zombie_limit and self._will_relaunch():
                if not self._relaunch(f"{len(unreaped)} dead model backend process(es) {sorted(unreaped)} "
                                      f"were not reaped"):
                    return
                pending, handled = set(), {}
                continue
            tick += 1
            if tick % 5 == 0:
                split = (self._http_status("/v2/health/ready") != 200
                         and self._http_status(f"/v2/models/{MODEL_NAME}/ready") == 200)
                # Readiness also dips while an old version unloads or a new one loads (every few
                # seconds when the trainer publishes often): only a split seen on two checks in
                # a row with a version that failed to load is worth a warning.
                failed = self._safe_failed_loads() if split and split_before and not explained else {}
                if failed:
                    log.warning("server readiness is false while %s serves: version(s) %s failed "
                                "to load; probe /v2/models/%s/ready for serving, the server's flag "
                                "clears when a newer version loads",
                                MODEL_NAME, "; ".join(f"{v}: {why}" for v, why in sorted(failed.items())),
                                MODEL_NAME)
                    explained = True
                if not split:
                    explained = False
                split_before = split

    def _safe_failed_loads(self) -> dict[int, str]:
        try:
            return self.failed_loads()
        except (OSError, ValueError) as exc:
            log.debug("cannot read the repository index: %s", exc)
            return {}

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(self._explain_exit())
            if self._watchdog_stop.is_set():
                raise ServeError("stopped while tritonserver was starting")
            # the metrics service starts last (tens of ms after HTTP): wait for it as well
            if (self._http_status(f"/v2/models/{MODEL_NAME}/ready") == 200
                    and _url_status(self.metrics_url) == 200):
                return
            time.sleep(0.05)
        raise ServeError(f"tritonserver not ready after {timeout:.0f} s; see {self.log_path}:\n"
                         + self.log_tail())

    def _explain_exit(self) -> str:
        tail = self.log_tail()
        if "already in use" in tail or "Address already in use" in tail:
            return f"tritonserver could not bind its ports {self.config.ports} on {HOST}: already in use\n{tail}"
        return f"tritonserver exited with code {self.process.returncode} during start-up; log {self.log_path}:\n{tail}"

    def poll(self) -> int | None:
        """The server's exit code, or None while it runs or the watchdog is about to relaunch it."""
        if self.process is None:
            return None
        code = self.process.poll()
        return None if code is not None and self._will_relaunch() else code

    def stop(self) -> int | None:
        """Graceful stop (idempotent); returns the server's exit code."""
        if self.process is None:
            return None
        atexit.unregister(self.stop)
        self._watchdog_stop.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(5)
        with self._lifecycle:            # a relaunch under way finishes (or gives up) first
            proc = self.process
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.config.exit_timeout_s + 5)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver %d ignored SIGTERM; killing its process group", proc.pid)
        self._kill_group(proc.pid)
        proc.wait()
        self._remove_shm()
        return proc.returncode

    @staticmethod
    def _kill_group(pgid: int) -> None:
        """SIGKILL whatever of our server's session is still alive (stray python stubs)."""
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _remove_shm(self) -> list[str]:
        leftovers = sorted(p.name for p in SHM_DIR.glob(self.shm_prefix + "*"))
        for name in leftovers:
            (SHM_DIR / name).unlink(missing_ok=True)
        if leftovers:
            log.warning("removed %d shared-memory file(s) the server left behind", len(leftovers))
        return leftovers

    def __enter__(self) -> "LocalTriton":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- introspection -----------------------------------------------------------------------
    def _http_status(self, path: str) -> int:
        return _url_status(self.http_url + path)

    def version_states(self) -> dict[int, str]:
        """Version -> state (READY, LOADING, UNAVAILABLE, ...) from the repository index."""
        return {int(e["version"]): e.get("state", "") for e in self._model_index()}

    def _model_index(self) -> list[dict]:
        """This model's versioned entries of Triton's repository index."""
        request = urllib.request.Request(f"{self.http_url}/v2/repository/index", method="POST", data=b"{}")
        with urllib.request.urlopen(request, timeout=5) as response:
            index = json.load(response)
        return [e for e in index if e.get("name") == MODEL_NAME and e.get("version")]

    def failed_loads(self) -> dict[int, str]:
        """Version -> Triton's reason, for versions that failed to load.

        Versions unloaded on purpose (poll mode serves only the newest) are UNAVAILABLE too,
        with the reason "unloaded"; they are not failures."""
        return {int(e["version"]): e.get("reason") or "no reason given" for e in self._model_index()
                if e.get("state") == "UNAVAILABLE" and e.get("reason") != "unloaded"}

    def ready_versions(self) -> list[int]:
        return sorted(v for v, state in self.version_states().items() if state == "READY")

    def wait_for_version(self, version: int, timeout: float = 30.0) -> None:
        """Block until ``version`` serves (poll mode picks it up within ``poll_secs`` + load time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._http_status(f"/v2/models/{MODEL_NAME}/versions/{version}/ready") == 200:
                return
            time.sleep(0.1)
        raise ServeError(f"version {version} not ready after {timeout:.0f} s "
                         f"(states {self.version_states()}); log:\n{self.log_tail()}")

    def metrics(self) -> str:
        """Prometheus text exposition from the metrics port."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return response.read().decode()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        # drop Triton's wide ASCII tables; keep the messages
        text = [line for line in text if not line.startswith(("+", "|"))]
        return "\n".join(text[-lines:])


def _children(pid: int) -> list[tuple[int, str, str]]:
    """(pid, command name, state letter) of the direct children of ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        close = stat.rindex(")")
        state, ppid = stat[close + 2:].split()[:2]
        if int(ppid) == pid:
            out.append((int(entry.name), stat[stat.index("(") + 1:close], state))
    return out


def _url_status(url: str) -> int:
    """HTTP status of a GET (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


# -- the `blobzero serve` command -------------------------------------------------------------

def init_repository(repo: Path | str, preset_name: str, seed: int = 0) -> int:
    """Export a freshly initialised BlobNet and publish it (version 1 of an empty repository)."""
    import tempfile

    from trainer.export import export_fresh  # lazy: torch is only needed for this

    with tempfile.TemporaryDirectory(prefix="blobnet-init-") as tmp:
        onnx_path = export_fresh(preset_name, Path(tmp) / "model.onnx", seed=seed)
        return publish_version(repo, onnx_path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from plumbing.config import add_config_arguments
    add_config_arguments(parser)   # the shared config supplies the defaults of the next four
    parser.add_argument("--model-repository",
                        help="repository with blobnet/<n>/model.onnx (default: storage.model_repository)")
    parser.add_argument("--work-dir", type=Path, default=Path("var/triton"),
                        help="backend directory and tritonserver.log (default: %(default)s)")
    parser.add_argument("--grpc-port", type=int, help="default: triton.grpc_port")
    parser.add_argument("--http-port", type=int, help="default: triton.http_port")
    parser.add_argument("--metrics-port", type=int, help="default: triton.metrics_port")
    parser.add_argument("--instances", type=int, default=default_instances(),
                        help="model instances, one ORT thread each (default: %(default)s)")
    parser.add_argument("--poll-secs", type=int, default=1, help="repository rescan period (s)")
    parser.add_argument("--init-preset", choices=["tiny", "small", "full"],
                        help="if the repository has no version yet, publish a freshly initialised "
                             "BlobNet of this size as version 1")
    parser.add_argument("--seed", type=int, default=0, help="weights seed for --init-preset")
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level")


class _StopRequested(Exception):
    pass


def _request_stop(signum, _frame):
    raise _StopRequested(signal.Signals(signum).name)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from plumbing.config import from_args_or_exit
    shared = from_args_or_exit(args, "serve")
    config = ServerConfig(args.model_repository or shared.storage.model_repository, args.work_dir,
                          grpc_port=args.grpc_port or shared.triton.grpc_port,
                          http_port=args.http_port or shared.triton.http_port,
                          metrics_port=args.metrics_port or shared.triton.metrics_port,
                          instances=args.instances, poll_secs=args.poll_secs, log_verbose=args.log_verbose)
    server = LocalTriton(config)
    previous = {s: signal.signal(s, _request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        model_dir = join(config.model_repository, MODEL_NAME)
        if args.init_preset and not list_versions(model_dir):
            check_ports(config)  # fail fast, before spending seconds on an export
            check_not_foreign(model_dir)
            version = init_repository(config.model_repository, args.init_preset, args.seed)
            log.info("initialised %s with a fresh '%s' BlobNet as version %d",
                     config.model_repository, args.init_preset, version)
        server.start()
        log.info("tritonserver (pid %d) ready: gRPC %s | HTTP %s | metrics %s | model %s versions %s "
                 "from %s | log %s", server.process.pid, server.url, server.http_url, server.metrics_url,
                 MODEL_NAME, server.ready_versions(), repository_argument(config.model_repository),
                 server.log_path)
        while server.poll() is None:
            time.sleep(0.5)
        log.error("tritonserver exited unexpectedly (code %s); log tail:\n%s", server.poll(), server.log_tail())
        return 1
    except _StopRequested as stop:
        log.info("%s received: stopping tritonserver", stop)
        return 0
    except (ServeError, ModelRepositoryError, triton_dist.TritonNotAvailable) as exc:
        log.error("error: %s", exc)
        return 2
    finally:
        for s in previous:  # a second Ctrl-C must not interrupt the clean-up below
            signal.signal(s, signal.SIG_IGN)
        code = server.stop()
        if code is not None:
            log.info("tritonserver stopped (exit code %d)", code)
        for s, handler in previous.items():
            signal.signal(s, handler)
