"""Point the Kubernetes overlays at your registry: ``make images REGISTRY=… [TAG=…]`` runs this
after building and pushing (mk/images.mk); by hand::

    python k8s/set_images.py registry.example.com/you 0.2.0

Every ``images:`` entry of every overlay's kustomization.yaml gets ``newName:
<registry>/<name>`` (e.g. ``registry.example.com/you/blobzero/trainer``) and ``newTag: <tag>``,
keeping a ``-cpu`` suffix where the overlay runs the CPU build (cpu-dev). Comments and layout
stay (ruamel.yaml round trip), like ``kustomize edit set image``. Overlays that inherit another's
images (gpu-shared, objectstore: from gpu) follow it.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

OVERLAYS = Path(__file__).resolve().parent / "overlays"
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9._-]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}$")


def set_images(registry: str, tag: str, overlays: Path = OVERLAYS) -> list[Path]:
    if not _REGISTRY.match(registry):
        raise ValueError(f"not a registry path: {registry!r} (e.g. registry.example.com/you)")
    if not _TAG.match(tag):
        raise ValueError(f"not an image tag: {tag!r}")
    yaml = YAML()
    yaml.preserve_quotes = True
    changed = []
    for path in sorted(overlays.glob("*/kustomization.yaml")):
        doc = yaml.load(path.read_text())
        images = doc.get("images") if doc else None
        if not images:
            continue
        for image in images:
            suffix = "-cpu" if str(image.get("newTag", "")).endswith("-cpu") else ""
            image["newName"] = f"{registry}/{image['name']}"
            image["newTag"] = tag + suffix
        with path.open("w") as f:
            yaml.dump(doc, f)
        changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        print("usage: python k8s/set_images.py REGISTRY TAG", file=sys.stderr)
        return 2
    try:
        for path in set_images(*argv):
            print(f"set images in {path.relative_to(OVERLAYS.parent.parent)}")
    except ValueError as exc:
        print(f"k8s/set_images.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
