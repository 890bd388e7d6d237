#!/bin/sh
# Run each fuzz target for FUZZ_SECONDS (default 60) seconds, one at a time; exit 1 on a finding
# (the reproducer is printed). See fuzz/README.md.
set -eu
cd "$(dirname "$0")/.."
exec python fuzz/run.py "$@"
