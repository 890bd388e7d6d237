"""Sigma rules as one RuleSet: every Windows process_creation rule of SigmaHQ loaded from YAML
(the shared ``sigma-rules/`` tree, profile ``s1``), against the S1QL route (the same rules
converted by pySigma's SentinelOne backend, the shared ``corpus/sigmahq-s1ql.jsonl``).

    pytest benchmarks/bench_sigma.py --events 20000 --benchmark-json=sigma.json

``sigma_all``: all the Windows process_creation Sigma rules that load (the S1QL backend
rejects about half of them); ``sigma_paired``/``s1ql_paired``: the rules both routes accept,
rule for rule. Every answer is checked against the reference evaluator on an evenly spaced
sample of about 200 events (the reference's answers computed once per route).
"""

from __future__ import annotations


import pytest

import matcher
from bench_corpus import _records
from conftest import run
from matcher.reference import evaluate
from matcher.sigma import load_sigma_tree
from shared_data import sigma_rules_path

WINDOWS_PROCESS_CREATION = {"category": "process_creation", "product": "windows"}
SAMPLE = 200


@pytest.fixture(scope="module")
def sigma_rules():
    loaded = load_sigma_tree(sigma_rules_path(), profile="s1", logsource=WINDOWS_PROCESS_CREATION)
    assert loaded.rules and all(isinstance(e, matcher.errors.UnsupportedFeature) for _, e in loaded.failures)
    return loaded.rules


@pytest.fixture(scope="module", params=["sigma_all", "sigma_paired", "s1ql_paired"])
def route(request, sigma_rules):
    s1ql = {r["id"]: r for r in _records(True)}
    if request.param == "sigma_all":
        rules = sigma_rules
    elif request.param == "sigma_paired":
        rules = [r for r in sigma_rules if r.id in s1ql]
    else:
        paired = {r.id for r in sigma_rules}
        rules = [matcher.compile(r["query"], id=i, title=r["title"]) for i, r in s1ql.items() if i in paired]
    return request.param, rules, matcher.RuleSet(rules)


@pytest.fixture(scope="module")
def expected(route, events):
    """The reference's (event, rule id) pairs on the sample rows, and the sample step."""
    _, rules, _ = route
    step = max(1, len(events) // SAMPLE)
    want = {(i, r.id) for i in range(0, len(events), step) for r in rules if evaluate(r, events[i])}
    assert want, "the sample must hold matches for the check to mean anything"
    return step, want


def _check(rows, rules_, rs, expected):
    step, want = expected
    ids = [r.id for r in rs]
    got = {(row, ids[k]) for row, k in zip(rows.tolist(), rules_.tolist(), strict=True) if row % step == 0}
    assert got == want


@pytest.mark.benchmark(group="sigma")
def test_sigma_ruleset_dicts(benchmark, route, events, expected):
    name, rules, rs = route
    benchmark.extra_info.update(events=len(events), rules=len(rules), route=name)
    rows, rules_ = run(benchmark, rs.match_arrays, events, rounds=3)
    _check(rows, rules_, rs, expected)


@pytest.mark.benchmark(group="sigma")
def test_sigma_ruleset_arrow(benchmark, route, events, table, expected):
    name, rules, rs = route
    benchmark.extra_info.update(events=len(events), rules=len(rules), route=name)

    rows, rules_ = run(benchmark, rs.match_arrow_arrays, table, rounds=3)
    _check(rows, rules_, rs, expected)


@pytest.mark.benchmark(group="sigma-compile")
def test_sigma_load_and_compile(benchmark):
    """Reading the SigmaHQ tree's Windows process_creation rules with pySigma and compiling them."""

    def build():
        loaded = load_sigma_tree(sigma_rules_path(), profile="s1", logsource=WINDOWS_PROCESS_CREATION)
        return matcher.RuleSet(loaded.rules)

    rs = run(benchmark, build, rounds=1)
    assert len(rs) > 1000
