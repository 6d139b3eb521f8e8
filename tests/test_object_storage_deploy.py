"""Deployment with object storage (issue 19), validated offline with the real tools: the
Kubernetes overlay without any claim (`kubectl kustomize` + `kubernetes-validate --strict`),
the compose override with its MinIO profile (`docker-compose config` + the compose-spec
schema), and the Triton image's entry point turning an s3:// repository into Triton's form."""
import json
import os
import re
import subprocess
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
    that touches the bucket reads it, the mirror's and the arena fetch's arguments included; the
    static-key Secrets are optional; each role runs as its own annotated ServiceAccount."""
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


def test_the_strength_tracker_is_no_longer_pinned_to_the_trainer(rendered):
    _, docs = rendered
    pods = dict(_pods(docs))
    strength, trainer = pods["blobzero-strength"], pods["blobzero-trainer"]
    assert "affinity" not in strength and "affinity" not in trainer
    mirror = next(c for c in strength["containers"] if c["name"] == "mirror")
    assert mirror["args"][:2] == ["mirror", "--watch"]
    assert mirror["args"][2] == "$(BLOBZERO__STORAGE__URL)/checkpoints/versions"
    tracker = next(c for c in strength["containers"] if c["name"] == "strength")
    env = {e["name"]: e.get("value") for e in tracker.get("env", [])}
    assert env["BLOBZERO__STORAGE__URL"] == "" and env["BLOBZERO__STORAGE__CHECKPOINT_DIR"]
    arena = pods["blobzero-arena"]
    assert arena["initContainers"][0]["args"][0] == "mirror"


def test_a_changed_bucket_reaches_the_mirror_and_the_arena_fetch(tmp_path):
    """Edit only the component's URL and endpoint (what docs/deploy.md asks), render, and run the
    mirror and the arena's fetch with the arguments and environment the kubelet would give
    them against a real S3 server: both read the new bucket."""
    import shutil
    import sys
    from s3_helpers import S3Server
    server = S3Server().start()
    try:
        bucket = server.bucket("team-bucket")
        client = server.client()
        client.put_object(Bucket=bucket, Key="exp1/checkpoints/versions/v1/manifest.json", Body=b"{}")
        client.put_object(Bucket=bucket, Key="exp1/model_repository/blobnet/config.pbtxt", Body=b"name: 'blobnet'")
        copy = tmp_path / "k8s"
        shutil.copytree(ROOT / "k8s", copy)
        (tmp_path / "monitoring").symlink_to(ROOT / "monitoring")
        kustomization = copy / "components" / "object-storage" / "kustomization.yaml"
        text = kustomization.read_text()
        text = text.replace("BLOBZERO__STORAGE__URL=s3://blobzero/run", "BLOBZERO__STORAGE__URL=s3://team-bucket/exp1")
        text = text.replace("# - AWS_ENDPOINT_URL=http://minio.minio:9000", f"- AWS_ENDPOINT_URL={server.endpoint}")
        kustomization.write_text(text)
        result = run([tool("kubectl"), "kustomize", str(copy / "overlays" / "objectstore")])
        assert result.returncode == 0, explain(result)
        assert "blobzero/run" not in result.stdout
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        pods = dict(_pods(docs))
        mirror = next(c for c in pods["blobzero-strength"]["containers"] if c["name"] == "mirror")
        fetch = pods["blobzero-arena"]["initContainers"][0]
        for container, copied in ((mirror, "v1/manifest.json"), (fetch, "blobnet/config.pbtxt")):
            env = _container_env(container, docs)
            args = [_expand(a, env).replace("/var/lib/blobzero", str(tmp_path / "var"))
                    for a in container["args"] if a != "--watch"]
            child_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env,
                         "AWS_ACCESS_KEY_ID": server.env["AWS_ACCESS_KEY_ID"],       # the optional Secret
                         "AWS_SECRET_ACCESS_KEY": server.env["AWS_SECRET_ACCESS_KEY"]}
            ran = run([str(Path(sys.executable).parent / "blobzero"), *args], env=child_env, cwd=ROOT, timeout=120)
            assert ran.returncode == 0, explain(ran)
            assert (Path(args[2]) / copied).exists(), (args, ran.stderr)
    finally:
        server.stop()


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
    assert {"minio", "minio-init", "strength-mirror"} <= set(services)
    for name in ("triton", "selfplay", "trainer"):
        assert not services[name].get("volumes"), name
        assert services[name]["environment"]["AWS_ACCESS_KEY_ID"] == "k"
        assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in ("triton", "selfplay", "trainer", "strength-mirror"):
        assert services[name]["environment"]["BLOBZERO__STORAGE__URL"] == "s3://blobzero/run", name
    assert {v["source"] for v in services["strength"]["volumes"]} == {"strength-mirror", "strength"}
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
