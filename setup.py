"""Build the Cython core. All metadata lives in pyproject.toml.

MATCHER_DEBUG=1 builds with Cython's bounds and wraparound checks on and -O0 -g, for the
differential tests to run against (see .ci/run).
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("MATCHER_DEBUG") == "1"

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension(
        "matcher._core",
        ["src/_core.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
]

setup(ext_modules=cythonize(extensions, include_path=["src"], compiler_directives=DIRECTIVES))
