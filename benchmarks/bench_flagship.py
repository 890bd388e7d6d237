"""The flagship rule over one generated corpus: matcher against every peer, same data.

    pytest benchmarks/bench_flagship.py --events 1000000 --benchmark-json=out.json

Every method's verdicts must equal the reference evaluator's (checked after timing).
"""

from __future__ import annotations

import numpy as np
import pytest

import flagship_peers as peers
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
    "duckdb": peers.duckdb_sql,
}


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
    import pyarrow.compute as pc
    import pyarrow as pa

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
    pytest.importorskip({"pyarrow_compute": "pyarrow", "polars": "polars", "duckdb": "duckdb"}[name])
    benchmark.extra_info["events"] = table.num_rows
    _check(run(benchmark, ARROW_PEERS[name], table), flagship_expected)
