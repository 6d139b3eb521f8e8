"""The real ``tritonserver`` shipped in the nvidia-pytriton wheel, and what it needs to run here.

The wheel carries server 2.51 with the python backend only. We run its binary directly (not
through PyTriton's Python API, which adds a ZMQ hop) with:

* a backend directory: ``python/`` = the wheel's ``libtriton_python.so`` (copied: the server
  rejects a library whose resolved path leaves the backend directory), and symlinks to
  ``triton_python_backend_utils.py`` and the stub matching *this* Python's version;
  ``blobnet_ort/model.py`` = a symlink to our python-based backend;
* ``PATH`` starting with this venv's ``bin``: the stub embeds an isolated interpreter that
  ignores PYTHONPATH and finds its prefix (hence numpy/onnxruntime) through ``python3`` on PATH;
* ``LD_LIBRARY_PATH`` = this Python's LIBDIR: otherwise the stub loads the system's
  libpython (3.11.2 on Debian 12) under our 3.11.7 standard library.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from plumbing.fsio import atomic_write_bytes
from plumbing.triton_config import LOCAL_BACKEND

log = logging.getLogger("blobzero.serve")

BACKEND_SOURCE = Path(__file__).resolve().parent / LOCAL_BACKEND / "model.py"


class TritonNotAvailable(RuntimeError):
    """The wheel, its binary, or a stub for this Python is missing."""


@dataclass(frozen=True)
class TritonDist:
    """Paths inside the installed wheel (``root`` = ``site-packages/pytriton/tritonserver``)."""

    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "backends" / "python"

    def stub(self, version: tuple[int, int] = sys.version_info[:2]) -> Path:
        return self.root / "python_backend_stubs" / f"{version[0]}.{version[1]}" / "triton_python_backend_stub"


def locate() -> TritonDist:
    """Find the wheel without importing it (pytriton's package import is slow and chatty)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotAvailable("nvidia-pytriton is not installed in this environment "
                                 "(it is pinned in requirements.txt; run `make venv`)")
    dist = TritonDist(Path(list(spec.submodule_search_locations)[0]) / "tritonserver")
    stub = dist.stub()
    for needed in (dist.binary, dist.python_backend / "libtriton_python.so", stub):
        if not needed.exists():
            have = sorted(p.name for p in (dist.root / "python_backend_stubs").glob("*"))
            raise TritonNotAvailable(f"{needed} is missing from the nvidia-pytriton wheel "
                                     f"(stubs available for Python {have})")
    return dist


def _link(target: Path, link: Path) -> None:
    """Make ``link`` a symlink to ``target``, replacing any previous link atomically."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _copy_if_changed(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` crash-safely unless an identical copy is already there."""
    if dst.is_file() and not dst.is_symlink() and dst.read_bytes() == src.read_bytes():
        return
    atomic_write_bytes(dst, src.read_bytes(), mode=0o755)


def provision_backends(work_dir: str | os.PathLike, dist: TritonDist | None = None) -> Path:
    """Create ``<work_dir>/backends`` (python backend + blobnet_ort) and return it."""
    dist = dist or locate()
    backends = Path(work_dir).resolve() / "backends"
    python_dir, ort_dir = backends / "python", backends / LOCAL_BACKEND
    python_dir.mkdir(parents=True, exist_ok=True)
    ort_dir.mkdir(parents=True, exist_ok=True)
    # A real copy, not a link: tritonserver resolves the library path and refuses one that
    # "escapes backend directory". The stub and the utils module may be links.
    _copy_if_changed(dist.python_backend / "libtriton_python.so", python_dir / "libtriton_python.so")
    _link(dist.python_backend / "triton_python_backend_utils.py", python_dir / "triton_python_backend_utils.py")
    _link(dist.stub(), python_dir / "triton_python_backend_stub")
    _link(BACKEND_SOURCE, ort_dir / "model.py")
    return backends


def python_libdir() -> Path:
    """Directory holding this interpreter's libpython (what the stub must link against)."""
    return Path(sysconfig.get_config_var("LIBDIR") or Path(sys.base_prefix) / "lib")


def server_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver and its python stubs (see module docstring for why)."""
    libpython = python_libdir() / f"libpython{sys.version_info[0]}.{sys.version_info[1]}.so.1.0"
    if not libpython.exists():
        log.warning("%s not found (Python built without --enable-shared?): the python stub will load "
                    "the system's libpython, which may not match this interpreter's standard library",
                    libpython)
    env = dict(os.environ if base is None else base)
    venv_bin = Path(sys.prefix) / "bin"  # sys.prefix is the venv; do not resolve the python symlink
    env["PATH"] = os.pathsep.join(p for p in (str(venv_bin), env.get("PATH", "")) if p)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(python_libdir()), env.get("LD_LIBRARY_PATH", "")) if p)
    env.pop("PYTHONPATH", None)  # ignored by the stub anyway; avoid confusing anyone reading env
    return env
