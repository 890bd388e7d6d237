"""The flagship rule over one generated corpus: matcher against every peer, same data.

    pytest benchmarks/bench_flagship.py --events 1000000 --benchmark-json=out.json

Every method's verdicts must equal the reference evaluator's (checked after timing).
"""

from __future__ import annotations

import subprocess
import sys

import flagship_peers as peers
import numpy as np
import orjson
import pytest
import sigma_sqlite
from conftest import run

from matcher.reference import evaluate

DICT_PEERS = {
    "naive_python": peers.naive_python,
    "tuned_python": peers.tuned_python,
    "pyahocorasick_python": peers.pyahocorasick_python,
    "python_re": peers.python_re,
}
ARROW_PEERS = {
    "pyarrow_compute": peers.pyarrow_compute,
    "polars": peers.polars_expr,
    "polars_tuned": peers.polars_tuned,
    "duckdb": peers.duckdb_sql,
    "duckdb_tuned": peers.duckdb_tuned,
}
ARROW_MODULES = {"pyarrow_compute": "pyarrow", "polars": "polars", "polars_tuned": "polars", "duckdb": "duckdb",
                 "duckdb_tuned": "duckdb"}


def _check(got, expected):
    got = np.asarray(got, dtype=bool)
    assert got.shape == expected.shape
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, f"{bad.size} verdicts differ from the reference, first at event {bad[:5].tolist()}"


@pytest.mark.benchmark(group="flagship")
def test_matcher_dicts(benchmark, flagship, events, flagship_expected):
    benchmark.extra_info["events"] = len(events)
    _check(run(benchmark, flagship.match_many, events), flagship_expected)


@pytest.mark.benchmark(group="flagship")
def test_matcher_arrow(benchmark, flagship, table, flagship_expected):
    benchmark.extra_info["events"] = table.num_rows
    _check(run(benchmark, flagship.match_arrow, table), flagship_expected)


@pytest.mark.benchmark(group="flagship")
def test_matcher_arrow_dictionary_encoded(benchmark, flagship, table, flagship_expected):
    import pyarrow as pa
    import pyarrow.compute as pc

    enc = pa.table({name: pc.dictionary_encode(table[name]) for name in table.column_names})
    benchmark.extra_info["events"] = enc.num_rows
    _check(run(benchmark, flagship.match_arrow, enc), flagship_expected)


@pytest.mark.benchmark(group="flagship")
def test_reference(benchmark, flagship, events, flagship_expected):
    n = min(len(events), 20_000)  # the oracle is slow: timed on a slice
    benchmark.extra_info["events"] = n
    got = run(benchmark, lambda: np.fromiter((evaluate(flagship, e) for e in events[:n]), dtype=bool, count=n), rounds=1)
    _check(got, flagship_expected[:n])


@pytest.mark.benchmark(group="flagship")
@pytest.mark.parametrize("name", sorted(DICT_PEERS))
def test_python_peer(benchmark, name, events, flagship_expected):
    benchmark.extra_info["events"] = len(events)
    _check(run(benchmark, DICT_PEERS[name], events, rounds=3), flagship_expected)


@pytest.mark.benchmark(group="flagship")
@pytest.mark.parametrize("name", sorted(ARROW_PEERS))
def test_arrow_peer(benchmark, name, table, flagship_expected):
    pytest.importorskip(ARROW_MODULES[name])
    benchmark.extra_info["events"] = table.num_rows
    _check(run(benchmark, ARROW_PEERS[name], table), flagship_expected)


@pytest.mark.benchmark(group="flagship")
def test_hyperscan(benchmark, table, flagship_expected):
    pytest.importorskip("hyperscan", reason="hyperscan does not install on this platform")
    scan = peers.Hyperscan()  # pattern databases compiled once, like matcher.compile
    benchmark.extra_info["events"] = table.num_rows
    _check(run(benchmark, scan, table), flagship_expected)


@pytest.fixture(scope="module")
def sqlite_route(events):
    pytest.importorskip("sigma.backends.sqlite", reason="pysigma-backend-sqlite is not installed")
    return sigma_sqlite.flagship_sql(), sigma_sqlite.sysmon_rows(events)


@pytest.mark.benchmark(group="flagship")
def test_sqlite_pysigma(benchmark, sqlite_route, flagship_expected):
    """The Zircolite route: the Sigma rule through pysigma-backend-sqlite, the events loaded into an
    in-memory SQLite table, the query run (load + query timed: what a run of the tool does)."""
    sql, rows = sqlite_route
    benchmark.extra_info["events"] = len(rows)
    _check(run(benchmark, sigma_sqlite.load_and_query, rows, sql, len(rows), rounds=3), flagship_expected)


@pytest.mark.benchmark(group="flagship")
def test_sqlite_pysigma_query_only(benchmark, sqlite_route, flagship_expected):
    """The same query on a table loaded beforehand (SQLite's matching alone)."""
    sql, rows = sqlite_route
    con = sigma_sqlite.load(rows)
    benchmark.extra_info["events"] = len(rows)
    hits = run(benchmark, sigma_sqlite.run, con, sql, rounds=3)
    con.close()
    _check(peers._verdicts(len(rows), hits), flagship_expected)


@pytest.fixture(scope="module")
def jsonl_file(events, tmp_path_factory):
    path = tmp_path_factory.mktemp("jsonl") / "events.jsonl"
    path.write_bytes(b"\n".join(map(orjson.dumps, events)) + b"\n")
    return path


def matcher_jsonl(rule, path, batch: int = 65_536) -> np.ndarray:
    """JSON lines to verdicts: read the file, orjson per line, match_many per batch of lines."""
    loads = orjson.loads
    with open(path, "rb") as fh:
        lines = fh.read().splitlines()
    out = np.empty(len(lines), dtype=bool)
    for i in range(0, len(lines), batch):
        out[i : i + batch] = rule.match_many([loads(x) for x in lines[i : i + batch]])
    return out


@pytest.mark.benchmark(group="flagship")
def test_matcher_jsonl(benchmark, flagship, jsonl_file, flagship_expected):
    """End to end in-process: bytes on disk -> orjson -> the compiled rule -> verdicts."""
    benchmark.extra_info["events"] = len(flagship_expected)
    _check(run(benchmark, matcher_jsonl, flagship, jsonl_file, rounds=3), flagship_expected)


@pytest.mark.benchmark(group="flagship")
def test_matcher_cli_jsonl(benchmark, jsonl_file, flagship_expected):
    """End to end through the command line: `matcher scan FILE` in a new process (start-up, reading,
    matching, writing each match as a JSON line); its output's line numbers are the verdicts."""
    benchmark.extra_info["events"] = len(flagship_expected)

    def scan():
        # from outside the source tree: there `python -m matcher` would import the uncompiled sources
        proc = subprocess.run([sys.executable, "-m", "matcher", "scan", str(jsonl_file)],
                              capture_output=True, check=True, cwd=jsonl_file.parent)
        return [orjson.loads(x)["line"] - 1 for x in proc.stdout.splitlines()]

    _check(peers._verdicts(len(flagship_expected), run(benchmark, scan, rounds=3)), flagship_expected)
