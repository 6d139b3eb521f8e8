"""Build the Cython extensions of the shared game core (``blobcore``) and generate the
protobuf modules from ``proto/``.

Metadata lives in pyproject.toml; this file only declares the compiled parts.
Every ``.pyx`` under ``blobcore/`` (its subpackages too) becomes one extension module; every ``.proto`` under
``proto/`` becomes a ``*_pb2.py`` module next to the package named by its directory.
"""
import re
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent


def generate_protos() -> None:
    """proto/<pkg>/<name>.proto -> <pkg>/<name>_pb2.py, plus <pkg>/<name>_pb2_grpc.py (the gRPC
    stubs) when the file declares a service (generated, never committed)."""
    from grpc_tools import protoc

    for proto in sorted((HERE / "proto").rglob("*.proto")):
        rel = proto.relative_to(HERE / "proto")
        has_service = re.search(r"^service\s", proto.read_text(), re.MULTILINE) is not None
        targets = [HERE / rel.with_name(rel.stem + "_pb2.py")]
        outputs = [f"--python_out={HERE}"]
        if has_service:
            targets.append(HERE / rel.with_name(rel.stem + "_pb2_grpc.py"))
            outputs.append(f"--grpc_python_out={HERE}")
        if all(t.exists() and t.stat().st_mtime >= proto.stat().st_mtime for t in targets):
            continue
        code = protoc.main(["protoc", f"-I{HERE / 'proto'}", *outputs, str(proto)])
        if code != 0:
            raise SystemExit(f"protoc failed on {proto}")


generate_protos()
# -ffp-contract=off: a*b + c stays two roundings even where CFLAGS allow FMA, so the value
# targets blobcore/replay.pyx mixes equal numpy's bit for bit (trainer/examples.py)
COMPILE_ARGS = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function", "-ffp-contract=off"]

extensions = [
    Extension(
        ".".join(pyx.relative_to(HERE).with_suffix("").parts),
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include()],
        extra_compile_args=COMPILE_ARGS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in sorted((HERE / "blobcore").rglob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
