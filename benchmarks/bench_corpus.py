"""Many rules at once: the SigmaHQ corpus converted to S1QL, compiled into one RuleSet.

    pytest benchmarks/bench_corpus.py --events 100000 --benchmark-json=corpus.json

The reference evaluator runs ~1,500 rule walks per event, far too slow for the whole
corpus, so each benchmark checks its (event, rule) pairs against the reference on an evenly
spaced sample of events (about 1,000 of them; all of them when the corpus is that small).
"""

from __future__ import annotations

import json

import pytest
import sigma_sqlite
from conftest import run

import matcher
from shared_data import corpus_path
from matcher.reference import evaluate

SAMPLE = 1000


def _records(windows_process_creation: bool):
    out = []
    with open(corpus_path(), encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if not r["query"]:
                continue
            ls = r["logsource"]
            if windows_process_creation and not (ls.get("product") == "windows" and ls.get("category") == "process_creation"):
                continue
            out.append(r)
    return out


@pytest.fixture(scope="module", params=["windows_process_creation", "all"])
def corpus(request):
    recs = _records(request.param == "windows_process_creation")
    rules = [matcher.compile(r["query"], id=r["id"], title=r["title"]) for r in recs]
    return request.param, rules, matcher.RuleSet(rules)


def _check(pairs_rows, pairs_rules, ruleset, events):
    step = max(1, len(events) // SAMPLE)
    ids = [r.id for r in ruleset]
    got = {}
    for row, rule in zip(pairs_rows.tolist(), pairs_rules.tolist()):
        if row % step == 0:
            got.setdefault(row, []).append(ids[rule])
    for i in range(0, len(events), step):
        want = [r.id for r in ruleset if evaluate(r, events[i])]
        assert got.get(i, []) == want, f"event {i}: core {got.get(i, [])} != reference {want}"


@pytest.mark.benchmark(group="corpus")
def test_ruleset_dicts(benchmark, corpus, events):
    name, rules, rs = corpus
    benchmark.extra_info.update(events=len(events), rules=len(rules), corpus=name)
    rows, rules_ = run(benchmark, rs.match_arrays, events, rounds=3)
    _check(rows, rules_, rs, events)


@pytest.mark.benchmark(group="corpus")
def test_ruleset_arrow(benchmark, corpus, events, table):
    name, rules, rs = corpus
    benchmark.extra_info.update(events=len(events), rules=len(rules), corpus=name)

    rows, rules_ = run(benchmark, rs.match_arrow_arrays, table, rounds=3)
    _check(rows, rules_, rs, events)


@pytest.mark.benchmark(group="corpus-baselines")
def test_rules_one_by_one(benchmark, corpus, events):
    """matcher's own single rules, one RuleSet per rule, on a slice (the naive way to use it)."""
    name, rules, rs = corpus
    n = min(len(events), 2000)
    benchmark.extra_info.update(events=n, rules=len(rules), corpus=name)
    singles = [r._ruleset() for r in rules]

    def loop():
        return [(int(i), k) for k, s in enumerate(singles) for i in s.match_arrays(events[:n])[0]]

    pairs = run(benchmark, loop, rounds=1)
    got = sorted(pairs)
    rows, rr = rs.match_arrays(events[:n])
    assert got == sorted(zip(rows.tolist(), rr.tolist()))


@pytest.mark.benchmark(group="corpus-baselines")
def test_reference_per_rule_loop(benchmark, corpus, events):
    name, rules, rs = corpus
    n = min(len(events), 200)
    benchmark.extra_info.update(events=n, rules=len(rules), corpus=name)
    got = run(benchmark, lambda: [(i, r.id) for i in range(n) for r in rules if evaluate(r, events[i])], rounds=1)
    assert got == list(rs.scan(events[:n]))


@pytest.mark.benchmark(group="compile")
@pytest.mark.parametrize("size", [1, 751, 1648])
def test_compile(benchmark, size):
    recs = _records(size == 751)[: size if size != 751 else None]
    assert len(recs) == size
    queries = [(r["query"], r["id"]) for r in recs]
    benchmark.extra_info.update(rules=size)

    def build():
        return matcher.RuleSet([matcher.compile(q, id=i) for q, i in queries])

    rs = run(benchmark, build, rounds=5)
    assert len(rs) == size


#: process_creation rules whose S1QL conversion (pysigma-backend-sentinelone) does not mean what the
#: Sigma rule means, so the SQLite route (Sigma's meaning) legitimately differs from the reference:
#: a Sigma equality list becomes `In Contains AnyCase` (rundll32_without_parameters,
#: susp_proc_wrong_parent, svchost_uncommon_parent_process, susp_non_exe_image) and `field: null`
#: becomes `IS NOT EMPTY` (susp_image_missing, svchost_uncommon_command_line_flags).
SQLITE_DIFFERENT_MEANING = {
    "5bb68627-3198-40ca-b458-49f973db8752", "96036718-71cc-4027-a538-d1587e0006a7",
    "01d2e2a1-5f09-44f7-9fc1-24faa7479b6d", "c09dad97-1c78-4f71-b127-7edb2b8e491a",
    "71158e3f-df67-472b-930e-7d287acaa3e1", "f17211f1-1f24-4d0c-829f-31e28dc93cdd",
}
SQLITE_EVENTS = 20_000


@pytest.fixture(scope="module")
def sqlite_corpus():
    pytest.importorskip("sigma.backends.sqlite", reason="pysigma-backend-sqlite is not installed")
    recs = _records(True)
    queries, fields = sigma_sqlite.convert_corpus(sigma_sqlite.sigma_texts(r["path"] for r in recs))
    assert sorted(queries) == sorted(r["id"] for r in recs)
    return recs, queries, fields


@pytest.mark.benchmark(group="corpus-baselines")
def test_sqlite_pysigma_corpus(benchmark, sqlite_corpus, events):
    """The Zircolite route for the 751 process_creation rules (their SigmaHQ YAML through
    pysigma-backend-sqlite), on a slice of SQLITE_EVENTS events: load the table, run every query."""
    recs, queries, fields = sqlite_corpus
    n = min(len(events), SQLITE_EVENTS)
    rows = sigma_sqlite.sysmon_rows(events[:n])
    benchmark.extra_info.update(events=n, rules=len(recs), corpus="windows_process_creation")

    def route():
        con = sigma_sqlite.load(rows, fields)
        try:
            return {rid: set(sigma_sqlite.run(con, q).tolist()) for rid, qs in queries.items() for q in qs}
        finally:
            con.close()

    got = run(benchmark, route, rounds=1)
    rules = [matcher.compile(r["query"], id=r["id"]) for r in recs]
    step = max(1, n // SAMPLE)
    differ = set()
    for rule in rules:
        want = {i for i in range(0, n, step) if evaluate(rule, events[i])}
        if {i for i in got[rule.id] if i % step == 0} != want:
            differ.add(rule.id)
    assert differ <= SQLITE_DIFFERENT_MEANING, f"SQLite differs from the reference on {sorted(differ - SQLITE_DIFFERENT_MEANING)}"
