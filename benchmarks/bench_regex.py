"""The regex engine alone: Python's ``re`` (what rules ran on before) against RE2 (what they run
on now, ``matcher.ops.LinearRegex``), on every RegExp of the S1QL corpus.

    pytest benchmarks/bench_regex.py --events 20000

Each round searches every corpus regex in the generated events' command lines (the field most
corpus regexes test), without the compiler's prefilters: the cost per call of each engine.
Both engines must give the same verdicts on these values (checked once).
"""

from __future__ import annotations

import json
import re
import warnings

import pytest
from conftest import run

import matcher
from matcher.ir import Op, walk_preds
from matcher.ops import LinearRegex
from shared_data import corpus_path

VALUES = 2000  # command lines per round


@pytest.fixture(scope="module")
def patterns() -> list[str]:
    out = set()
    with open(corpus_path(), encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)["query"]
            if q:
                out.update(p.value for p in walk_preds(matcher.compile(q).ir) if p.op is Op.REGEX)
    return sorted(out)


@pytest.fixture(scope="module")
def values(events) -> list[str]:
    texts = [e["TgtProcCmdLine"] for e in events if isinstance(e.get("TgtProcCmdLine"), str)]
    return texts[:: max(1, len(texts) // VALUES)][:VALUES]


def _searchers(engine: str, patterns: list[str]):
    if engine == "re":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return [re.compile(p).search for p in patterns]
    return [LinearRegex(p).search for p in patterns]


def _count(searchers, values) -> int:
    return sum(1 for s in searchers for v in values if s(v))


@pytest.mark.parametrize("engine", ["re", "re2"])
def test_regex_engine(benchmark, engine, patterns, values):
    searchers = _searchers(engine, patterns)
    hits = run(benchmark, _count, searchers, values)
    benchmark.extra_info.update(patterns=len(patterns), values=len(values), calls=len(patterns) * len(values))
    # the same verdicts, value by value, wherever RE2's meaning is Python's (ASCII text here)
    other = _searchers("re" if engine == "re2" else "re2", patterns)
    assert hits == _count(other, values)
