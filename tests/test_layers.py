"""Each top-level package is one layer and imports only point down (docs/architecture.md, "Layers").

    blobzero         application: CLI, local loop, arena, benchmarks, demo
       |
    services         Triton launcher, publishing (and next, the agent): may use the two below
       |
    selfplay_client  trainer      the two services of the loop, side by side, never importing each other
       |               |
    plumbing         config schema, wire contract, records and shards, model repository, crash-safe I/O
       |
    blobcore         the game core: rules, encoder, determinization, search (no I/O)

The imports are read with ``ast`` from the source files, including imports inside functions
(the lazy ones are exactly where a back-edge would hide). Third-party and stdlib imports are
ignored; tests are not a layer.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> rank; a package may import only packages of strictly lower rank.
LAYERS: dict[str, int] = {
    "blobcore": 0,
    "plumbing": 1,
    "selfplay_client": 2,
    "trainer": 2,
    "services": 3,
    "blobzero": 4,
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """Our top-level packages imported anywhere in ``path``, with the line of each import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in LAYERS:
                found.add((top, node.lineno))
    return found


def layer_violations(root: Path = ROOT) -> list[str]:
    """Every import that points up a layer or sideways into another package of the same layer."""
    problems = []
    for package, rank in LAYERS.items():
        for path in sorted((root / package).rglob("*.py")):
            for target, line in sorted(imported_packages(path)):
                if target == package:
                    continue
                if LAYERS[target] >= rank:
                    kind = "up" if LAYERS[target] > rank else "sideways"
                    problems.append(f"{path.relative_to(root)}:{line}: {package} (layer {rank}) imports "
                                    f"{target} (layer {LAYERS[target]}), {kind}")
    return problems


def test_every_import_points_down():
    assert layer_violations() == []


def test_every_package_is_assigned_a_layer():
    """A new top-level Python package must be placed in a layer before it can be imported."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(LAYERS), f"unassigned: {packages - set(LAYERS)}, gone: {set(LAYERS) - packages}"


@pytest.mark.parametrize("package,back_import", [
    ("blobcore", "from plumbing.fsio import atomic_write_bytes"),   # the core reaching for I/O
    ("plumbing", "from trainer.blobnet import build"),              # plumbing importing a service
    ("trainer", "import selfplay_client.runner"),                    # two services of one layer
    ("services", "    from blobzero.arena import play"),             # lazy import of the application
])
def test_a_back_import_is_caught(tmp_path, package, back_import):
    """The checker itself: a copy of the tree with one back-import planted must fail."""
    for name in LAYERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    body = f"def f():\n{back_import}\n" if back_import.startswith(" ") else back_import + "\n"
    (tmp_path / package / "planted.py").write_text(body)
    problems = layer_violations(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{package}/planted.py:")
