"""Build the Cython extensions of the shared game core (``blobcore``).

Metadata lives in pyproject.toml; this file only declares the compiled modules.
Every ``.pyx`` under ``blobcore/`` becomes one extension module.
"""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
COMPILE_ARGS = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function"]

extensions = [
    Extension(
        f"blobcore.{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include()],
        extra_compile_args=COMPILE_ARGS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in sorted((HERE / "blobcore").glob("*.pyx"))
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
