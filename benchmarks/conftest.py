"""Benchmark fixtures: one generated corpus per session, and the reference's answers on it.

Sizes: ``--events N`` (default 100,000; the README table uses 1,000,000). Every benchmark
asserts that its answer equals the reference evaluator's on the same data, so a fast wrong
answer fails instead of being reported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import matcher
from matcher import datasets
from matcher.reference import evaluate

# shared_data (tests/shared_data.py) says where the third-party rules live; benchmarks read them too.
sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import subprocesses_import_this_matcher  # noqa: E402

subprocesses_import_this_matcher()

SEED = 1


def pytest_addoption(parser):
    parser.addoption("--events", type=int, default=100_000, help="events in the generated corpus")
    parser.addoption("--routing-rounds", type=int, default=7, help="bench_routing.py: alternating rounds of the ratio")


@pytest.fixture(scope="session")
def n_events(request) -> int:
    return request.config.getoption("--events")


@pytest.fixture(scope="session")
def events(n_events):
    return datasets.generate(n_events, SEED)


@pytest.fixture(scope="session")
def table(events):
    import pyarrow as pa

    return pa.Table.from_pylist(events)


@pytest.fixture(scope="session")
def flagship():
    return matcher.builtin("flagship")


@pytest.fixture(scope="session")
def flagship_expected(flagship, events) -> np.ndarray:
    """The reference's verdict on every event (the oracle every method must equal)."""
    return np.fromiter((evaluate(flagship, e) for e in events), dtype=bool, count=len(events))


def run(benchmark, fn, *args, rounds: int = 5):
    """Time fn(*args) with a fixed number of rounds; return its result."""
    return benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=1)
