"""One storage seam (issue 26), read from the source with ``ast``: only plumbing/storage.py tells
a directory from a bucket (no ``is_remote`` anywhere else), and the plumbing modules import each
other without a cycle (config <-> storage and model_repository <-> triton_config did)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("blobcore", "plumbing", "selfplay_client", "trainer", "services", "blobzero")


def _sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_only_the_storage_module_tells_a_directory_from_a_bucket():
    found = []
    for path in _sources():
        if path == ROOT / "plumbing" / "storage.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            name = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                    else None)
            if name == "is_remote":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def module_imports(path: Path) -> set[str]:
    """The ``plumbing.*`` modules ``path`` imports anywhere (lazy imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("plumbing.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("plumbing."):
                out.add(node.module)
            elif node.module == "plumbing":
                out |= {f"plumbing.{a.name}" for a in node.names}
    return out


def test_plumbing_modules_import_each_other_without_a_cycle():
    modules = {f"plumbing.{p.stem}": p for p in (ROOT / "plumbing").glob("*.py") if p.stem != "__init__"}
    graph = {name: module_imports(path) & modules.keys() - {name} for name, path in modules.items()}
    assert "plumbing.storage" not in graph["plumbing.config"]
    assert "plumbing.model_repository" not in graph["plumbing.triton_config"]
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", " -> ".join(trail + [name])
        state[name] = "open"
        for target in sorted(graph[name]):
            visit(target, trail + [name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])
