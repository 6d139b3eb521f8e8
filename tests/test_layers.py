"""Each top-level package is one layer and imports only point down (docs/architecture.md, "Layers").

    blobzero         application: CLI, local loop, arena, benchmarks, demo, the agent
       |
    services         Triton launcher, publishing: may use the layers below
       |
    selfplay_client  trainer      the two services of the loop, side by side, never importing each other
       |               |
    plumbing         config schema, storage (local or s3://), wire contract, records and shards,
                     model repository, crash-safe I/O
       |
    blobcore         the game core: rules, encoder, determinization, search (no I/O)

The imports are read with ``ast`` from the Python files, including imports inside functions
(the lazy ones are exactly where a back-edge would hide), and line by line from the Cython
files (``.pyx``/``.pxd``: ``import``, ``from … import`` and ``cimport``). Third-party and stdlib
imports are ignored; tests are not a layer.

Two more rules: the config schema (plumbing/config.py) imports nothing compiled — it must load
on a machine that has not built the core — and no module imports itself through a cycle.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
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


#: ``from X cimport``/``from X import``/``cimport X``/``import X`` at the start of a Cython line
_CYTHON_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import\b|c?import\s+([\w.]+))")


def imported_modules(path: Path) -> set[tuple[str, int]]:
    """Every absolute module name imported anywhere in ``path`` (Python or Cython), with the
    line of each import."""
    found: set[tuple[str, int]] = set()
    if path.suffix in (".pyx", ".pxd"):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            match = _CYTHON_IMPORT.match(line)
            if match:
                found.add((match[1] or match[2], lineno))
        return found
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from package import name``: ``name`` may be a module (the cycle check tries
            # ``package.name`` first) or an attribute of ``package``
            found.update((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
    return found


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """Our top-level packages imported anywhere in ``path``, with the line of each import."""
    return {(name.split(".")[0], line) for name, line in imported_modules(path)
            if name.split(".")[0] in LAYERS}


def source_files(directory: Path) -> list[Path]:
    return sorted(p for pattern in ("*.py", "*.pyx", "*.pxd") for p in directory.rglob(pattern))


def layer_violations(root: Path = ROOT) -> list[str]:
    """Every import that points up a layer or sideways into another package of the same layer."""
    problems = []
    for package, rank in LAYERS.items():
        for path in source_files(root / package):
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


def module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles(root: Path = ROOT) -> list[list[str]]:
    """Cycles in the graph of our modules (an edge: a module imports another, at any depth of
    the file; a Cython .pxd counts as its module)."""
    graph: dict[str, set[str]] = {}
    for package in LAYERS:
        for path in source_files(root / package):
            here = module_of(path, root)
            targets = graph.setdefault(here, set())
            for name, _ in imported_modules(path):
                if name.split(".")[0] in LAYERS and name != here:
                    targets.add(name)
    known = set(graph)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            # ``from package import name`` names a module or an attribute: follow what exists
            target = target if target in known else target.rpartition(".")[0]
            if target not in known or target == node:
                continue
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_no_module_imports_itself_through_a_cycle():
    assert import_cycles() == []


def test_the_config_schema_loads_nothing_compiled():
    """plumbing.config validates and builds every search without a compiled module in sight:
    importing it (and loading the default config's values) loads no extension."""
    code = ("import sys, plumbing.config as c; c.Config(); "
            "compiled = [m for m, mod in sys.modules.items() "
            "if getattr(mod, '__file__', '') and mod.__file__.endswith('.so') and m.startswith('blobcore')]; "
            "print(compiled)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout.strip()
    assert out == "[]", f"importing plumbing.config loaded compiled modules: {out}"


@pytest.mark.parametrize("package,back_import", [
    ("blobcore", "from plumbing.fsio import atomic_write_bytes"),   # the core reaching for I/O
    ("plumbing", "from trainer.blobnet import build"),              # plumbing importing a service
    ("trainer", "import selfplay_client.runner"),                    # two services of one layer
    ("services", "    from blobzero.arena import play"),             # lazy import of the application
    ("blobcore", "from plumbing.fsio cimport fsync_all"),            # a Cython cimport up a layer
])
def test_a_back_import_is_caught(tmp_path, package, back_import):
    """The checker itself: a copy of the tree with one back-import planted must fail."""
    for name in LAYERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    body = f"def f():\n{back_import}\n" if back_import.startswith(" ") else back_import + "\n"
    suffix = ".pyx" if "cimport" in back_import else ".py"
    (tmp_path / package / f"planted{suffix}").write_text(body)
    problems = layer_violations(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{package}/planted{suffix}:")


def test_a_cycle_is_caught(tmp_path):
    for name in LAYERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "plumbing" / "a.py").write_text("def f():\n    from plumbing.b import g\n")
    (tmp_path / "plumbing" / "b.py").write_text("from plumbing import a\n")
    assert import_cycles(tmp_path) == [["plumbing.a", "plumbing.b", "plumbing.a"]]
