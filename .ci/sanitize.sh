#!/usr/bin/env bash
# The core built with AddressSanitizer + UndefinedBehaviorSanitizer, under the tests that feed it
# hostile and random input: the differential tests (not slow; HYPOTHESIS_PROFILE=dev), the
# hostile-input tests (their subprocesses run under the sanitizers too) and the thread tests.
# Any sanitizer report stops the process with a nonzero status, which fails the run.
#
#   .ci/sanitize.sh                  # from the repository root (12 min on 2 cores under a load
#                                    # of 12: build ~6, tests ~5; expect less on an idle machine)
#   .ci/sanitize.sh tests/x.py -k y  # other pytest arguments instead of the default set
#
# The build happens in a scratch copy of the tree (never over the tree's own matcher/_core*.so),
# and runs with the Python that runs this script ($PYTHON, default python3), which must have the
# test dependencies and Cython installed (CI runs it in its test venv); the scratch tree comes
# first on PYTHONPATH, and a check makes sure the sanitized core is the one imported. Python objects are allocated with malloc
# (PYTHONMALLOC=malloc) so ASan also sees a freed str or dict that the core would read.
# pyarrow runs under ASan here (pyarrow 26, system allocator for Python objects): the Arrow
# tests are included. Checked to catch the class it is for: the core before the ownership
# fix, built this way, stops test_mapping_getitem_returns_a_new_string_each_time with
# "AddressSanitizer: heap-use-after-free ... in Program.scan_eq".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SANITIZE_WORK:-$(mktemp -d /tmp/matcher-sanitize.XXXXXX)}
PY=${PYTHON:-python3}
trap '[ -z "${SANITIZE_KEEP:-}" ] && rm -rf "$WORK"' EXIT

echo "sanitize: scratch tree in $WORK"
VPY=$(command -v "$PY")
mkdir -p "$WORK/tree"
(cd "$ROOT" && tar --exclude=.git --exclude='*.so' --exclude='src/*.c' --exclude=build \
    --exclude=.hypothesis --exclude=__pycache__ -cf - .) | tar -xf - -C "$WORK/tree"
cd "$WORK/tree"

# build_ext needs only setup.py; pyproject.toml's metadata is moved aside so that an older
# setuptools (which rejects its license expression) can still build the extension.
mv pyproject.toml pyproject.toml.off
MATCHER_SANITIZE=1 CC=${CC:-gcc} "$VPY" setup.py -q build_ext --inplace >build.log 2>&1 \
    || { tail -40 build.log; exit 1; }
mv pyproject.toml.off pyproject.toml
ls matcher/_core*.so

LIBASAN=$(${CC:-gcc} -print-file-name=libasan.so)
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
export PYTHONPATH="$PWD"
export HYPOTHESIS_PROFILE=dev
export MATCHER_SHARED=${MATCHER_SHARED:-$ROOT/../shared}

# The core must be the sanitized build.
"$VPY" -c "import matcher._core as c, sys; assert c.__file__.startswith('$PWD'), c.__file__; print('core:', c.__file__)"

if [ $# -gt 0 ]; then  # other tests (pytest arguments), e.g. to try one test under the sanitizers
    "$VPY" -m pytest -q -p no:cacheprovider -x "$@"
else
    "$VPY" -m pytest -q -p no:cacheprovider -x -m "not slow" \
        tests/test_hostile_core.py \
        tests/test_differential.py \
        tests/test_correlation_differential.py \
        tests/test_core_engine.py::test_contains_automaton_down_a_block_of_folded_and_raw_values \
        tests/test_core_limits.py::test_threads_share_one_ruleset \
        tests/test_core_limits.py::test_threads_with_lazy_predicates_and_callbacks
fi
echo "sanitize: no sanitizer report"
