"""Peak memory of every flagship method, each in a fresh process (see memory.py for the method).

This is the correctness pass of the measurement: each method runs once at ``--events`` in its own
process, and its verdicts must equal matcher's there. The figures themselves go into the report
(``python -m benchmarks.report``); tests do not assert on them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import memory
import pytest

HERE = Path(__file__).resolve().parent
OPTIONAL = {"hyperscan": "hyperscan", "sqlite_pysigma": "sigma.backends.sqlite", "polars": "polars",
            "polars_tuned": "polars", "duckdb": "duckdb", "duckdb_tuned": "duckdb"}


@pytest.fixture(scope="module")
def cache(n_events, tmp_path_factory):
    path = tmp_path_factory.mktemp("memory-cache")
    memory.cache_files(n_events, path)
    return path


@pytest.mark.parametrize("method", sorted(memory.methods()))
def test_peak_memory(method, n_events, cache):
    if method in OPTIONAL:
        pytest.importorskip(OPTIONAL[method])
    proc = subprocess.run([sys.executable, str(HERE / "memory.py"), method, "--events", str(n_events), "--cache", str(cache)],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    res = json.loads(proc.stdout)
    assert res["agrees"] and res["events"] == n_events
    assert res["peak_mb"] >= 0 and res["input_mb"] > 0


@pytest.mark.parametrize("name", sorted(memory.RULESETS))
def test_ruleset_memory(name, n_events, cache):
    proc = subprocess.run([sys.executable, str(HERE / "memory.py"), name, "--events", str(n_events), "--cache", str(cache)],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    res = json.loads(proc.stdout)
    assert res["agrees"] and res["events"] == n_events and res["pairs"] > 0
    assert res["compiled_mb"] > 0 and res["peak_mb"] >= 0
