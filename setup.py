"""Build the Cython core. All metadata lives in pyproject.toml.

MATCHER_DEBUG=1 builds with Cython's bounds and wraparound checks on and -O0 -g, for the
differential tests to run against (see .ci/run).

MATCHER_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer (-O1 -g), for
.ci/sanitize.sh; the interpreter must then preload libasan (the script does).
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("MATCHER_DEBUG") == "1"
SANITIZE = os.environ.get("MATCHER_SANITIZE") == "1"
SANITIZERS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]

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
        name,
        [source],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=(["-O1", "-g"] + SANITIZERS if SANITIZE else ["-O0", "-g"] if DEBUG else ["-O3"]),
        extra_link_args=SANITIZERS if SANITIZE else [],
    )
    for name, source in (("matcher._core", "src/_core.pyx"),  # the matching program
                         ("matcher._correlate", "src/_correlate.pyx"))  # correlation windows
]

setup(ext_modules=cythonize(extensions, include_path=["src"], compiler_directives=DIRECTIVES))
