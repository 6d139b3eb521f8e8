"""Point a deployment at your registry without touching a tracked file: ``make images REGISTRY=…``
runs this after building and pushing (mk/images.mk); by hand::

    python k8s/set_images.py registry.example.com/you 0.2.0 [--overlay objectstore] \\
        [--digest triton=sha256:…]… [--pull-secret regcred] [--component agent-public]…

writes ``k8s/deploy/kustomization.yaml`` (ignored by git: k8s/.gitignore), an overlay on top of
``k8s/overlays/<overlay>`` whose ``images:`` turn the tracked, local-only names
(``local.invalid/blobzero/<name>``: the ``.invalid`` domain never resolves, so a cluster that
was not pointed at a registry fails loudly with ErrImagePull instead of pulling someone else's
image) into ``<registry>/blobzero/<name>``, pinned by digest where ``--digest`` gives one (what
``make images`` passes after the push: immutable) and by tag otherwise. The CPU overlay
(cpu-dev) gets the ``-cpu`` builds of Triton and the trainer. ``--pull-secret`` adds
``imagePullSecrets`` to every pod for a private registry; ``--component`` adds components of
``k8s/components`` (agent-public, agent-ingress, ...). Then ``kubectl apply -k k8s/deploy``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parent
LOCAL = "local.invalid"                     # the tracked, local-only registry name
NAMES = ("triton", "selfplay", "trainer")
CPU_BUILDS = {"cpu-dev": ("triton", "trainer")}    # overlays that run the -cpu images
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9._-]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_SECRET = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def deploy_overlay(registry: str, tag: str, overlay: str = "objectstore",
                   digests: dict[str, str] | None = None, pull_secret: str = "",
                   components: list[str] = ()) -> dict:
    """The kustomization (as a dict) of the untracked deployment overlay."""
    digests = digests or {}
    if not _REGISTRY.match(registry) or registry.startswith(LOCAL):
        raise ValueError(f"not a registry path: {registry!r} (e.g. registry.example.com/you)")
    if not _TAG.match(tag):
        raise ValueError(f"not an image tag: {tag!r}")
    if not (K8S / "overlays" / overlay / "kustomization.yaml").exists():
        raise ValueError(f"no overlay k8s/overlays/{overlay}")
    for name, digest in digests.items():
        if name not in NAMES or not _DIGEST.match(digest):
            raise ValueError(f"--digest takes {'|'.join(NAMES)}=sha256:<64 hex>, got {name}={digest}")
    if pull_secret and not _SECRET.match(pull_secret):
        raise ValueError(f"not a Secret name: {pull_secret!r}")
    for component in components:
        if not (K8S / "components" / component / "kustomization.yaml").exists():
            raise ValueError(f"no component k8s/components/{component}")
    images = []
    for name in NAMES:
        image = {"name": f"{LOCAL}/blobzero/{name}", "newName": f"{registry}/blobzero/{name}"}
        suffix = "-cpu" if name in CPU_BUILDS.get(overlay, ()) else ""
        if name in digests and not suffix:
            image["digest"] = digests[name]
        else:
            image["newTag"] = tag + suffix
        images.append(image)
    doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
           "resources": [f"../overlays/{overlay}"], "images": images}
    if components:
        doc["components"] = [f"../components/{c}" for c in components]
    if pull_secret:
        secrets = [{"name": pull_secret}]
        doc["patches"] = [
            {"target": {"kind": "Deployment"}, "patch": yaml.safe_dump(
                [{"op": "add", "path": "/spec/template/spec/imagePullSecrets", "value": secrets}])},
            {"target": {"kind": "CronJob"}, "patch": yaml.safe_dump(
                [{"op": "add", "path": "/spec/jobTemplate/spec/template/spec/imagePullSecrets",
                  "value": secrets}])}]
    return doc


def write_deploy_overlay(doc: dict, out: Path) -> Path:
    """Write ``doc`` as ``out/kustomization.yaml``, its resource path made relative to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    def relative(path: str) -> str:
        return os.path.relpath((K8S / "deploy" / path).resolve(), out.resolve())

    doc = {**doc, "resources": [relative(r) for r in doc["resources"]]}
    if "components" in doc:
        doc["components"] = [relative(c) for c in doc["components"]]
    path = out / "kustomization.yaml"
    header = f"# Written by k8s/set_images.py (`make images`); not tracked by git.\n#   kubectl apply -k {out}\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="k8s/set_images.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("registry")
    parser.add_argument("tag")
    parser.add_argument("--overlay", default="objectstore", help="the overlay to build on (default objectstore)")
    parser.add_argument("--digest", action="append", default=[], metavar="NAME=sha256:…",
                        help="pin an image by digest (repeatable)")
    parser.add_argument("--pull-secret", default="", help="imagePullSecrets for every pod")
    parser.add_argument("--component", action="append", default=[], help="add k8s/components/NAME (repeatable)")
    parser.add_argument("--out", type=Path, default=K8S / "deploy", help="default k8s/deploy")
    args = parser.parse_args(argv)
    try:
        digests = dict(d.partition("=")[::2] for d in args.digest)
        doc = deploy_overlay(args.registry, args.tag, args.overlay, digests, args.pull_secret, args.component)
    except ValueError as exc:
        print(f"k8s/set_images.py: {exc}", file=sys.stderr)
        return 2
    path = write_deploy_overlay(doc, args.out)
    print(f"wrote {path}: kubectl apply -k {path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
