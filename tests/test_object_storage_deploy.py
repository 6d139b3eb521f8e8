"""Deployment with object storage (issue 19), validated offline with the real tools: the
Kubernetes overlay without any claim (`kubectl kustomize` + `kubernetes-validate --strict`),
the compose override with its MinIO profile (`docker-compose config` + the compose-spec
schema), and the Triton image's entry point turning an s3:// repository into Triton's form."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from deploy_helpers import ROOT, explain, run, tool

OVERLAY = ROOT / "k8s" / "overlays" / "objectstore"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_S3 = ROOT / "docker-compose.objectstore.yml"
K8S_VERSIONS = ("1.29.0", "1.37.0")
CRD_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    result = run([tool("kubectl"), "kustomize", str(OVERLAY)])
    assert result.returncode == 0, explain(result)
    path = tmp_path_factory.mktemp("objectstore") / "rendered.yaml"
    path.write_text(result.stdout)
    return path, [d for d in yaml.safe_load_all(result.stdout) if d]


def _pods(docs):
    for d in docs:
        if d["kind"] == "Deployment":
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_objectstore_overlay_validates_strictly(rendered, version):
    path, docs = rendered
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, str(path)])
    assert result.returncode == 0, explain(result)
    assert "ERROR" not in result.stdout + result.stderr


ROLES = ("triton", "selfplay", "trainer", "strength", "arena")


def _container_env(container: dict, docs: list[dict]) -> dict[str, str]:
    """The environment the kubelet gives ``container``: envFrom ConfigMaps in order (Secrets are
    never committed: they contribute nothing here), then ``env`` with $(VAR) expanded."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _expand(item["value"], env)
    return env


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args and env values ($$ escapes; unknown names stay)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group() == "$$" else env.get(m.group(1), m.group()), text)


def _containers(pod: dict):
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def test_the_objectstore_overlay_has_no_claim_at_all(rendered):
    path, docs = rendered
    text = path.read_text()
    assert "PersistentVolumeClaim" not in text and "persistentVolumeClaim" not in text
    assert "ReadWriteMany" not in text
    assert not [d for d in docs if d["kind"] == "Secret"]          # credentials are never committed
    pods = dict(_pods(docs))
    for name in ("blobzero-triton", "blobzero-selfplay", "blobzero-trainer"):
        container = pods[name]["containers"][0]
        assert not [m for m in container.get("volumeMounts", []) if "/var/lib/blobzero" in m["mountPath"]], name
        assert {m["name"] for m in container.get("volumeMounts", [])} <= {v["name"] for v in pods[name]["volumes"]}


def test_the_bucket_is_set_in_one_place_and_credentials_are_optional(rendered):
    """One ConfigMap (blobzero-storage) holds the bucket URL, region and endpoint; every container
    that touches the bucket reads it (the strength tracker and the arena too, with no override
    of it); the static-key Secrets are optional; each role runs as its own annotated
    ServiceAccount."""
    path, docs = rendered
    storage = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("blobzero-storage")]
    assert len(storage) == 1
    url = storage[0]["data"]["BLOBZERO__STORAGE__URL"]
    assert url.startswith("s3://") and path.read_text().count(url) == 1      # nowhere else
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    pods = dict(_pods(docs))
    for role in ROLES:
        pod = pods[f"blobzero-{role}"]
        assert pod["serviceAccountName"] == f"blobzero-{role}"
        annotations = accounts[f"blobzero-{role}"]["metadata"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"].endswith(f":role/blobzero-{role}")
        assert annotations["iam.gke.io/gcp-service-account"].startswith(f"blobzero-{role}@")
        assert accounts[f"blobzero-{role}"]["automountServiceAccountToken"] is False
        for container in _containers(pod):
            env = _container_env(container, docs)
            secrets = [s["secretRef"] for s in container.get("envFrom", []) if "secretRef" in s]
            args = [_expand(a, env) for a in container.get("args", [])]
            if env.get("BLOBZERO__STORAGE__URL") or any(a.startswith("s3://") or "=s3://" in a for a in args):
                assert [s["name"] for s in secrets] == ["blobzero-s3", f"blobzero-s3-{role}"], (role, container["name"])
                assert all(s["optional"] is True for s in secrets)
                assert env["AWS_REGION"] and "$(" not in " ".join(args), (role, container["name"], args)
                assert all(a.startswith(url) for a in args if "s3://" in a and "=" not in a)
            else:
                assert not secrets, (role, container["name"])        # no key where no bucket is read


def _gib(quantity: str) -> float:
    units = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}
    number, unit = re.fullmatch(r"(\d+)([KMGT]i)", quantity).groups()
    return int(number) * units[unit] / 2 ** 30


def test_the_strength_tracker_and_the_arena_read_the_bucket_themselves(rendered, tmp_path):
    """No mirror sidecar, no fetch init container, no claim or copy of the run: one container
    each, reading blobzero-storage with nothing blanking or redirecting it, a writable /tmp large
    enough for the model cache (2 GB), and the tracker's results at <url>/strength.json (its
    default --out, which it reads back on restart). The tracker is not tied to the trainer's
    node, and stays Recreate: one writer of strength.json at a time."""
    _, docs = rendered
    pods = dict(_pods(docs))
    strength, trainer, arena = pods["blobzero-strength"], pods["blobzero-trainer"], pods["blobzero-arena"]
    assert "affinity" not in strength and "affinity" not in trainer
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "blobzero-strength")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    for pod in (strength, arena):
        assert "initContainers" not in pod
        [container] = pod["containers"]
        assert not [e for e in container.get("env", []) if e["name"].startswith("BLOBZERO__STORAGE__")]
        assert "mirror" not in json.dumps(container)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert set(volumes) == {"config", "tmp"}, volumes
        assert _gib(volumes["tmp"]["emptyDir"]["sizeLimit"]) >= 2
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts == {"/etc/blobzero": "config", "/tmp": "tmp"}
        env = _container_env(container, docs)
        assert env["BLOBZERO__STORAGE__URL"].startswith("s3://") and "TMPDIR" not in env   # the cache in /tmp
    [tracker] = strength["containers"]
    assert tracker["args"][:2] == ["strength", "--watch"] and "--out" not in tracker["args"]
    from blobzero.strength import results_location
    from plumbing.config import load
    env = _container_env(tracker, docs)
    cfg = load(_config_file(docs, tmp_path), env=env)          # the real loader, the rendered file
    assert results_location(cfg) == env["BLOBZERO__STORAGE__URL"] + "/strength.json"
    [script] = arena["containers"][0]["args"]
    assert "blobzero arena --a latest --b latest~1 " in script and "$BLOBZERO__STORAGE" not in script


def _config_file(docs: list[dict], directory: Path) -> Path:
    """The rendered blobzero-config ConfigMap's file, written where a test can load it."""
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("blobzero-config"))
    path = directory / "etc" / "blobzero.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config["data"]["blobzero.toml"])
    return path


def _rendered_with_bucket(tmp_path: Path, url: str, endpoint: str) -> list[dict]:
    """k8s/ copied, only the component's URL and endpoint edited (what docs/deploy.md asks), and
    the objectstore overlay rendered by the real kubectl."""
    import shutil
    copy = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", copy)
    (tmp_path / "monitoring").symlink_to(ROOT / "monitoring")
    kustomization = copy / "components" / "object-storage" / "kustomization.yaml"
    text = kustomization.read_text()
    text = text.replace("BLOBZERO__STORAGE__URL=s3://blobzero/run", f"BLOBZERO__STORAGE__URL={url}")
    text = text.replace("# - AWS_ENDPOINT_URL=http://minio.minio:9000", f"- AWS_ENDPOINT_URL={endpoint}")
    kustomization.write_text(text)
    result = run([tool("kubectl"), "kustomize", str(copy / "overlays" / "objectstore")])
    assert result.returncode == 0, explain(result)
    assert "blobzero/run" not in result.stdout
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_a_changed_bucket_reaches_the_strength_tracker_and_the_arena(tmp_path):
    """Edit only the component's bucket and endpoint, render, and run the strength tracker's and
    the arena's containers as the kubelet would start them — their args (the arena's shell
    script by /bin/sh), the environment of their ConfigMaps, the keys of the optional Secret, the
    rendered config file at its mount path's stand-in, /tmp a directory of the test's — against a
    real S3 server. The tracker measures the archived versions it reads from the bucket, writes
    <url>/strength.json and, restarted, reads it back instead of measuring again; the arena
    compares the newest two versions, succeeds saying so while there is only one, and fails
    when the bucket cannot be read. Only for speed: 2 deals against `random`, the light search,
    and a free metrics port (a shared test machine)."""
    import signal
    import sys
    from plumbing.storage import open_store
    from s3_helpers import S3Server, _free_port, publish_as_the_trainer, s3_environment
    server = S3Server().start()
    try:
        with s3_environment(server):       # this process publishes the versions
            server.bucket("team-bucket")
            url = "s3://team-bucket/exp1"
            docs = _rendered_with_bucket(tmp_path, url, server.endpoint)
            pods = dict(_pods(docs))
            config_file = _config_file(docs, tmp_path)
            results = open_store(url)

            def start(container: dict, extra_env: dict, scratch: str) -> tuple[list[str], dict]:
                env = _container_env(container, docs)
                tmp = tmp_path / scratch
                tmp.mkdir()
                args = [_expand(a, env).replace("/etc/blobzero/blobzero.toml", str(config_file))
                        for a in container["args"]]
                child_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
                             "TMPDIR": str(tmp), **env,
                             "AWS_ACCESS_KEY_ID": server.env["AWS_ACCESS_KEY_ID"],       # the optional Secret
                             "AWS_SECRET_ACCESS_KEY": server.env["AWS_SECRET_ACCESS_KEY"],
                             "BLOBZERO__ARENA__SEARCH_PRESET": "light", **extra_env}
                return args, child_env

            # the arena's script (by /bin/sh) while one version is published: nothing to compare yet
            publish_as_the_trainer(url, 1, tmp_path)
            arena = pods["blobzero-arena"]["containers"][0]
            assert arena["command"] == ["/bin/sh", "-c"]
            [script] = arena["args"]
            script = script.replace("/etc/blobzero/blobzero.toml", str(config_file))
            _, arena_env = start(arena, {"ARENA_ROUNDS": "2"}, "tmp-arena")
            one = run(["/bin/sh", "-c", script], env=arena_env, cwd=tmp_path, timeout=300)
            assert one.returncode == 0, explain(one)
            assert "only one model version is published so far" in one.stdout and "is v1" in one.stderr

            # the strength tracker: measures v1 from the bucket, results in <url>/strength.json
            [tracker] = pods["blobzero-strength"]["containers"]
            speed = ["--deals", "2", "--opponents", "random"]

            def watch_until(version: int, scratch: str) -> str:
                args, env = start(tracker, {"BLOBZERO__METRICS__HOST": "127.0.0.1",
                                            "BLOBZERO__METRICS__STRENGTH_PORT": str(_free_port())}, scratch)
                proc = subprocess.Popen([str(Path(sys.executable).parent / "blobzero"), *args, *speed],
                                        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    deadline = time.monotonic() + 240
                    while time.monotonic() < deadline and proc.poll() is None:
                        if version in _measured(results):
                            break
                        time.sleep(0.5)
                    assert version in _measured(results), "not measured in time"
                finally:
                    proc.send_signal(signal.SIGTERM)
                    out, _ = proc.communicate(timeout=60)
                assert proc.returncode == 0, out
                cached = list((tmp_path / scratch / f"blobzero-cache-{os.getuid()}").glob("*-v00000?.onnx"))   # the archive's copy
                assert cached, out                       # the version came through the model cache
                return out

            first = watch_until(1, "tmp-strength-1")
            assert "v1 vs random" in first and "uniform (no network) vs random" in first
            publish_as_the_trainer(url, 2, tmp_path)
            second = watch_until(2, "tmp-strength-2")    # restarted: v1 and the baseline read back
            assert "v2 vs random" in second and "v1 vs random" not in second and "uniform" not in second, second
            points = json.loads(results.get("strength.json"))["points"]
            assert sorted(p["version"] for p in points) == [0, 1, 2]

            # the arena's script, now that there are two versions
            two = run(["/bin/sh", "-c", script], env=arena_env, cwd=tmp_path, timeout=300)
            assert two.returncode == 0, explain(two)
            report = json.loads(two.stdout)
            assert (report["a"], report["b"], report["deals"]) == ("v2", "v1", 2)
            # any other failure fails the job: a bucket that is not there, an endpoint that is down
            missing = {**arena_env, "BLOBZERO__STORAGE__URL": "s3://no-such-bucket/exp1"}
            refused = run(["/bin/sh", "-c", script], env=missing, cwd=tmp_path, timeout=300)
            assert refused.returncode == 2 and "cannot list the model versions" in refused.stderr, explain(refused)
            assert "only one model version" not in refused.stdout
            server.stop()
            down = run(["/bin/sh", "-c", script], env=arena_env, cwd=tmp_path, timeout=300)
            assert down.returncode != 0 and "only one model version" not in down.stdout, explain(down)
    finally:
        server.stop()


def _measured(results) -> set[int]:
    try:
        return {p["version"] for p in json.loads(results.get("strength.json"))["points"]}
    except FileNotFoundError:
        return set()


def _compose(env: dict) -> subprocess.CompletedProcess:
    return run([tool("docker-compose"), "--project-directory", str(ROOT), "-f", str(COMPOSE),
                "-f", str(COMPOSE_S3), "config", "--format", "json"],
               env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}, cwd=ROOT)


def test_the_compose_override_needs_credentials_and_mounts_no_shared_volume(tmp_path):
    refused = _compose({"COMPOSE_PROFILES": "minio"})
    assert refused.returncode != 0 and "set AWS_ACCESS_KEY_ID in .env" in refused.stderr
    result = _compose({"COMPOSE_PROFILES": "minio", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert result.returncode == 0, explain(result)
    model = json.loads(result.stdout)
    path = tmp_path / "compose.json"
    path.write_text(json.dumps(model))
    schema = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)])
    assert schema.returncode == 0, explain(schema)
    services = model["services"]
    assert {"minio", "minio-init"} <= set(services) and not [s for s in services if "mirror" in s]
    for name in ("triton", "selfplay", "trainer", "strength"):
        assert services[name]["environment"]["AWS_ACCESS_KEY_ID"] == "k"
        assert services[name]["environment"]["BLOBZERO__STORAGE__URL"] == "s3://blobzero/run", name
        assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in ("triton", "selfplay", "trainer"):
        assert not services[name].get("volumes"), name
    # the strength tracker: results in the bucket (no --out), the model cache in /tmp, on a
    # volume of its own (a 2 GB cache would not fit the 512 MB tmpfs, nor in its memory limit)
    strength = services["strength"]
    assert strength["command"][:2] == ["strength", "--watch"] and "--out" not in strength["command"]
    assert [(v["source"], v["target"]) for v in strength["volumes"]] == [("strength-cache", "/tmp")]
    assert not strength.get("tmpfs") and strength["read_only"] is True
    assert "strength-cache" in model["volumes"]
    # MinIO's root user is its own, never the services' key
    assert services["minio"]["environment"]["MINIO_ROOT_USER"] != "k"
    # without the profile (your own S3 service) the optional dependency on minio-init drops out
    own = _compose({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                    "AWS_ENDPOINT_URL": "https://s3.example.com"})
    assert own.returncode == 0, explain(own)
    assert "minio" not in json.loads(own.stdout)["services"]


@pytest.mark.parametrize("endpoint, expected", [(None, "https://s3.amazonaws.com"),
                                                ("http://minio:9000", "http://minio:9000")])
def test_compose_targets_aws_s3_with_the_endpoint_unset_and_minio_with_it_set(endpoint, expected):
    """The environment compose gives the services, handed to boto3 as they get it: AWS S3 when
    AWS_ENDPOINT_URL is unset (it was MinIO's address by default), the given endpoint when set."""
    import sys
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    result = _compose(env)
    assert result.returncode == 0, explain(result)
    service_env = json.loads(result.stdout)["services"]["trainer"]["environment"]
    assert service_env["AWS_ENDPOINT_URL"] == (endpoint or "")
    resolved = run([sys.executable, "-c", "import boto3; print(boto3.session.Session().client('s3').meta.endpoint_url)"],
                   env={"PATH": os.environ["PATH"], "HOME": "/tmp", **{k: str(v) for k, v in service_env.items()}})
    assert resolved.returncode == 0, explain(resolved)
    assert resolved.stdout.strip() == expected


def test_the_minio_profile_refuses_a_wrong_endpoint_before_touching_minio(tmp_path):
    """minio-init's script (run by the real /bin/sh) stops with a message that names the fix
    when AWS_ENDPOINT_URL does not point at the profile's MinIO, or MinIO has no root password."""
    result = _compose({"COMPOSE_PROFILES": "minio", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert result.returncode == 0, explain(result)
    init = json.loads(result.stdout)["services"]["minio-init"]
    script = init["command"][0].replace("$$", "$")
    assert run(["/bin/sh", "-n", "-c", script]).returncode == 0
    base = {"PATH": "/usr/bin:/bin", **{k: str(v) for k, v in init["environment"].items()}}
    for fix, env in (("AWS_ENDPOINT_URL=http://minio:9000", base),
                     ("MINIO_ROOT_PASSWORD", {**base, "AWS_ENDPOINT_URL": "http://minio:9000"})):
        refused = run(["/bin/sh", "-c", script], env=env, cwd=tmp_path)
        assert refused.returncode == 1 and fix in refused.stderr, explain(refused)


@pytest.mark.parametrize("endpoint, expected", [
    ("http://minio:9000", "s3://minio:9000/blobzero/run/model_repository"),
    ("https://s3.example.com", "s3://https://s3.example.com:443/blobzero/run/model_repository"),
    ("", "s3://blobzero/run/model_repository"),
])
def test_the_triton_entrypoint_serves_an_s3_repository(tmp_path, endpoint, expected):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    argv_file = tmp_path / "argv"
    (fake_bin / "tritonserver").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_file}\n')
    (fake_bin / "tritonserver").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "BLOBZERO__STORAGE__URL": "s3://blobzero/run",
           "BLOBZERO__STORAGE__MODEL_REPOSITORY": "/var/lib/blobzero/models/repository"}   # the URL wins
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    result = run(["/bin/sh", str(ROOT / "docker" / "triton-entrypoint.sh")], env=env, timeout=10)
    assert result.returncode == 0, explain(result)
    assert f"--model-repository={expected}" in argv_file.read_text().split()
    assert "waiting" not in result.stderr


def test_one_registry_variable_points_compose_and_an_untracked_overlay_at_your_images(tmp_path):
    import sys
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "REGISTRY": "registry.example.com/team",
           "BLOBZERO_TAG": "0.2.0"}
    model = json.loads(_compose(env).stdout)
    images = {name: svc["image"] for name, svc in model["services"].items() if "build" in svc}
    assert images and all(i.startswith("registry.example.com/team/blobzero/") and i.endswith(":0.2.0")
                          for i in images.values()), images
    unset = json.loads(_compose({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}).stdout)
    assert unset["services"]["trainer"]["image"] == "local.invalid/blobzero/trainer:0.1.0"   # never pulled
    # the tracked overlays name only local-only images
    for overlay in ("gpu", "gpu-shared", "objectstore", "cpu-dev"):
        rendered = run([tool("kubectl"), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)])
        found = set(re.findall(r"image: (\S+)", rendered.stdout))
        assert found and all(i.startswith("local.invalid/blobzero/") for i in found), (overlay, found)
    # k8s/set_images.py (what `make images` runs) writes an untracked overlay, pinned by digest
    tracked = run(["git", "-C", str(ROOT), "status", "--porcelain", "k8s"]).stdout
    digest = "sha256:" + "ab" * 32
    for overlay, cpu in (("objectstore", ""), ("cpu-dev", "-cpu")):
        out = tmp_path / overlay
        result = run([sys.executable, str(ROOT / "k8s" / "set_images.py"), "registry.example.com/team", "0.2.0",
                      "--overlay", overlay, "--digest", f"triton={digest}", "--digest", f"trainer={digest}",
                      "--pull-secret", "regcred", "--component", "agent-public", "--out", str(out)])
        assert result.returncode == 0, explain(result)
        rendered = run([tool("kubectl"), "kustomize", str(out)])
        assert rendered.returncode == 0, explain(rendered)
        found = set(re.findall(r"image: (\S+)", rendered.stdout))
        registry = "registry.example.com/team/blobzero"
        if cpu:      # the -cpu builds are not the pushed digests: pinned by their tag
            assert found == {f"{registry}/triton:0.2.0-cpu", f"{registry}/trainer:0.2.0-cpu", f"{registry}/selfplay:0.2.0"}
        else:
            assert found == {f"{registry}/triton@{digest}", f"{registry}/trainer@{digest}", f"{registry}/selfplay:0.2.0"}
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        for name, pod in _pods(docs):
            assert pod["imagePullSecrets"] == [{"name": "regcred"}], name
        assert "BLOBZERO__AGENT__COST_PER_MINUTE" in rendered.stdout         # the component is in
    assert run(["git", "-C", str(ROOT), "status", "--porcelain", "k8s"]).stdout == tracked   # nothing tracked changed
    bad = run([sys.executable, str(ROOT / "k8s" / "set_images.py"), "Not A Registry", "0.2.0", "--out", str(tmp_path / "x")])
    assert bad.returncode == 2 and "not a registry path" in bad.stderr
    local = run([sys.executable, str(ROOT / "k8s" / "set_images.py"), "local.invalid", "0.2.0", "--out", str(tmp_path / "x")])
    assert local.returncode == 2
