"""Deployment with object storage (issue 19), validated offline with the real tools: the
Kubernetes overlay without any claim (`kubectl kustomize` + `kubernetes-validate --strict`),
the compose override with its MinIO profile (`docker-compose config` + the compose-spec
schema), and the Triton image's entry point turning an s3:// repository into Triton's form."""
import json
import re
import os
import subprocess

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


def test_the_objectstore_overlay_has_no_claim_at_all(rendered):
    path, docs = rendered
    text = path.read_text()
    assert "PersistentVolumeClaim" not in text and "persistentVolumeClaim" not in text
    assert "ReadWriteMany" not in text
    assert not [d for d in docs if d["kind"] == "Secret"]          # credentials are never committed
    env = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("blobzero-env"))
    assert env["data"]["BLOBZERO__STORAGE__URL"].startswith("s3://")
    assert env["data"]["BLOBZERO__STORAGE__MODEL_REPOSITORY"] == env["data"]["BLOBZERO__STORAGE__URL"] + "/model_repository"
    pods = dict(_pods(docs))
    for name in ("blobzero-triton", "blobzero-selfplay", "blobzero-trainer"):
        container = pods[name]["containers"][0]
        refs = [next(iter(e.values()))["name"] for e in container["envFrom"]]
        assert "blobzero-s3" in refs and any(r.startswith("blobzero-env") for r in refs), name
        assert not [m for m in container.get("volumeMounts", []) if "/var/lib/blobzero" in m["mountPath"]], name
        assert {m["name"] for m in container.get("volumeMounts", [])} <= {v["name"] for v in pods[name]["volumes"]}


def test_the_strength_tracker_is_no_longer_pinned_to_the_trainer(rendered):
    _, docs = rendered
    pods = dict(_pods(docs))
    strength, trainer = pods["blobzero-strength"], pods["blobzero-trainer"]
    assert "affinity" not in strength and "affinity" not in trainer
    mirror = next(c for c in strength["containers"] if c["name"] == "mirror")
    assert mirror["args"][:2] == ["mirror", "--watch"] and mirror["args"][2].startswith("s3://")
    tracker = next(c for c in strength["containers"] if c["name"] == "strength")
    env = {e["name"]: e.get("value") for e in tracker.get("env", [])}
    assert env["BLOBZERO__STORAGE__URL"] == "" and env["BLOBZERO__STORAGE__CHECKPOINT_DIR"]
    arena = pods["blobzero-arena"]
    assert arena["initContainers"][0]["args"][0] == "mirror"


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
    assert services["triton"]["environment"]["BLOBZERO__STORAGE__MODEL_REPOSITORY"] == "s3://blobzero/run/model_repository"
    assert services["selfplay"]["environment"]["BLOBZERO__STORAGE__URL"] == "s3://blobzero/run"
    assert {v["source"] for v in services["strength"]["volumes"]} == {"strength-mirror", "strength"}
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == "s"
    # without the profile (your own S3 service) the optional dependency on minio-init drops out
    own = _compose({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                    "AWS_ENDPOINT_URL": "https://s3.example.com"})
    assert own.returncode == 0, explain(own)
    assert "minio" not in json.loads(own.stdout)["services"]


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
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin",
           "BLOBZERO__STORAGE__MODEL_REPOSITORY": "s3://blobzero/run/model_repository"}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    result = run(["/bin/sh", str(ROOT / "docker" / "triton-entrypoint.sh")], env=env, timeout=10)
    assert result.returncode == 0, explain(result)
    assert f"--model-repository={expected}" in argv_file.read_text().split()
    assert "waiting" not in result.stderr


def test_one_registry_variable_points_compose_and_the_overlays_at_your_images(tmp_path):
    import shutil
    import sys
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "REGISTRY": "registry.example.com/team",
           "BLOBZERO_TAG": "0.2.0"}
    model = json.loads(_compose(env).stdout)
    images = {name: svc["image"] for name, svc in model["services"].items() if "build" in svc}
    assert images and all(i.startswith("registry.example.com/team/blobzero/") and i.endswith(":0.2.0")
                          for i in images.values()), images
    unset = json.loads(_compose({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}).stdout)
    assert unset["services"]["trainer"]["image"] == "blobzero/trainer:0.1.0"      # unchanged default
    # the overlays: k8s/set_images.py (what `make images` runs) on a copy of k8s/
    copy = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", copy)
    (tmp_path / "monitoring").symlink_to(ROOT / "monitoring")
    result = run([sys.executable, str(copy / "set_images.py"), "registry.example.com/team", "0.2.0"])
    assert result.returncode == 0, explain(result)
    for overlay, suffix in (("gpu", ""), ("gpu-shared", ""), ("objectstore", ""), ("cpu-dev", "-cpu")):
        rendered = run([tool("kubectl"), "kustomize", str(copy / "overlays" / overlay)])
        assert rendered.returncode == 0, explain(rendered)
        found = set(re.findall(r"image: (\S+)", rendered.stdout))
        assert f"registry.example.com/team/blobzero/triton:0.2.0{suffix}" in found, (overlay, found)
        assert f"registry.example.com/team/blobzero/trainer:0.2.0{suffix}" in found
        assert "registry.example.com/team/blobzero/selfplay:0.2.0" in found
        assert not [i for i in found if i.startswith("blobzero/")], found
    assert "# Production on GPU nodes" in (copy / "overlays" / "gpu" / "kustomization.yaml").read_text()
    bad = run([sys.executable, str(copy / "set_images.py"), "Not A Registry", "0.2.0"])
    assert bad.returncode == 2 and "not a registry path" in bad.stderr
