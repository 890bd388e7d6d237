"""Sigma correlation rules: parsing, semantics pinned by hand-made cases, errors, loading, CLI."""

from __future__ import annotations

import functools
import json
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import matcher
from matcher.correlation import parse_correlation, reference
from matcher.correlation.values import TimeReader, timestamp_ms
from hypothesis import given, strategies as st
from matcher.errors import RuleError

# The specification's worked example (failed logons, then a success, for one user), in our words.
SPEC_EXAMPLE = """\
title: Many logon failures then a logon, same user
id: 5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a01
correlation:
    type: temporal_ordered
    rules:
        - many_failures
        - logon_ok
    group-by:
        - User
    timespan: 10m
level: high
---
title: Ten logon failures in ten minutes
id: 5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a02
name: many_failures
correlation:
    type: event_count
    rules:
        - logon_failed
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Logon failed
id: 5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a03
name: logon_failed
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: [529, 4625]
    condition: selection
---
title: Logon succeeded
id: 5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a04
name: logon_ok
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: [528, 4624]
    condition: selection
"""

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "mr_failures_then_logon.yml"
    p.write_text(SPEC_EXAMPLE)
    return p


def brute_force(n_failed: int, user: str = "bob", gap: float = 1.0) -> list[dict]:
    evs = [{"EventID": 4625, "User": user, "t": iso(i * gap)} for i in range(n_failed)]
    evs.append({"EventID": 4624, "User": user, "t": iso(n_failed * gap)})
    return evs


def corr_rules(spec_file: Path) -> matcher.RuleSet:
    return matcher.RuleSet(matcher.load_rules(spec_file, profile="sysmon"))


def alerts_of(run) -> list:
    return [a for a in run if a.kind == "correlation"]


# -- the specification's example -------------------------------------------------------------

def test_spec_example_chain_fires_on_tenth_failure_then_success(spec_file):
    rs = corr_rules(spec_file)
    assert [c.type for c in rs.correlations] == ["event_count", "temporal_ordered"]  # child first
    alerts = alerts_of(rs.correlate(brute_force(10), timestamp="t"))
    assert [(a.type, a.value) for a in alerts] == [("event_count", 10.0), ("temporal_ordered", 2.0)]
    count, ordered = alerts
    assert count.events == tuple(range(10)) and count.group == {"User": "bob"}
    assert count.start == T0 and count.end == T0 + timedelta(seconds=9)
    assert ordered.events == (9, 10) and ordered.level == "high"
    assert ordered.rule_id == "5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a01"


def test_spec_example_nine_failures_do_not_fire(spec_file):
    assert alerts_of(corr_rules(spec_file).correlate(brute_force(9), timestamp="t")) == []


def test_spec_example_window_slides(spec_file):
    # 10 failures 70 s apart span 630 s > 10m: never 10 in one window
    assert alerts_of(corr_rules(spec_file).correlate(brute_force(10, gap=70), timestamp="t")) == []
    # 66.6 s apart: the 10th is exactly 600 s after the first: the window includes both ends
    assert len(alerts_of(corr_rules(spec_file).correlate(brute_force(10, gap=600 / 9), timestamp="t"))) == 2


def test_generate_default_hides_named_rules_matches(spec_file):
    results = list(corr_rules(spec_file).correlate(brute_force(3), timestamp="t"))
    assert [a for a in results if a.kind == "match"] == []


def test_generate_true_yields_named_rules_matches(tmp_path):
    p = tmp_path / "g.yml"
    p.write_text(SPEC_EXAMPLE.replace("level: high", "level: high\ngenerate: true", 1))
    results = list(matcher.RuleSet(matcher.load_rules(p, profile="sysmon")).correlate(brute_force(3), timestamp="t"))
    # the outer correlation names the inner one and logon_ok: its own matches come out
    assert [(a.rule_id, a.events) for a in results if a.kind == "match"] == [
        ("5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a04", (3,))]


# -- semantics --------------------------------------------------------------------------------

R = [matcher.compile('kind = "a"', id="ra"), matcher.compile('kind = "b"', id="rb"), matcher.compile('kind = "c"', id="rc")]


def corr(ctype: str, rules=("ra",), **body) -> matcher.Correlation:
    doc = {"title": ctype, "id": f"c-{ctype}", "correlation": {"type": ctype, "rules": list(rules), "timespan": "1m", **body}}
    return parse_correlation(doc, where="test")


def run(c, events, **kw) -> list:
    rs = matcher.RuleSet(R + [c])
    fast = alerts_of(rs.correlate(events, timestamp="t", **kw))
    ref, _ = reference.correlate(R, [c], events, "t", lateness_ms=int(kw.get("lateness", 0) * 1000),
                                 action=kw.get("action", "alert"))
    assert fast == ref
    return fast


def test_value_count_counts_distinct_and_skips_absent_and_lists():
    c = corr("value_count", condition={"field": "user", "gte": 3}, **{"group-by": ["host"]})
    evs = [{"kind": "a", "host": "h", "user": u, "t": i} for i, u in enumerate(["x", "y", "x", None, ["z"], "z"])]
    alerts = run(c, evs)
    assert [(a.value, a.events) for a in alerts] == [(3.0, (0, 1, 2, 5))]


def test_value_aggregations():
    evs = [{"kind": "a", "n": n, "t": i} for i, n in enumerate([10, "20", 30, "x", True])]
    assert [a.value for a in run(corr("value_sum", condition={"field": "n", "gte": 60}), evs)] == [60.0]
    assert [a.value for a in run(corr("value_avg", condition={"field": "n", "eq": 15}), evs)] == [15.0]
    assert [a.value for a in run(corr("value_min", condition={"field": "n", "lt": 11}), evs)] == [10.0, 10.0, 10.0]
    assert [a.value for a in run(corr("value_max", condition={"field": "n", "gt": 25}), evs)] == [30.0]
    assert [a.value for a in run(corr("value_percentile", condition={"field": "n", "percentile": 50, "gte": 20}), evs)] == [20.0]
    assert [a.value for a in run(corr("value_median", condition={"field": "n", "gte": 15}), evs)] == [15.0, 20.0]


def test_condition_range_and_neq():
    evs = [{"kind": "a", "t": i} for i in range(5)]
    assert [a.value for a in run(corr("event_count", condition={"gt": 1, "lte": 3}), evs)] == [2.0, 3.0]
    assert [a.value for a in run(corr("event_count", condition={"neq": 2}), evs)] == [1.0, 3.0, 4.0, 5.0]


def test_temporal_any_order_and_ordered_ties():
    evs = [{"kind": "b", "t": 5}, {"kind": "a", "t": 5}, {"kind": "c", "t": 6}]
    assert [a.value for a in run(corr("temporal", rules=("ra", "rb")), evs)] == [2.0]
    # a and b at the same time: ties satisfy the order (a then b), both ways
    assert [a.value for a in run(corr("temporal_ordered", rules=("ra", "rb")), evs)] == [2.0]
    assert [a.value for a in run(corr("temporal_ordered", rules=("rb", "ra")), evs)] == [2.0]
    late_a = [{"kind": "b", "t": 1}, {"kind": "a", "t": 2}]
    assert run(corr("temporal_ordered", rules=("ra", "rb")), late_a) == []


def test_alert_action_keeps_window_reset_empties_it():
    evs = [{"kind": "a", "t": i} for i in range(6)]
    assert [a.value for a in run(corr("event_count", condition={"gte": 3}), evs)] == [3.0, 4.0, 5.0, 6.0]
    assert [a.value for a in run(corr("event_count", condition={"gte": 3}), evs, action="reset")] == [3.0, 3.0]


def test_aliases_group_across_fields():
    c = parse_correlation({"title": "t", "id": "x", "correlation": {
        "type": "temporal", "rules": ["ra", "rb"], "group-by": ["ip"], "timespan": "10s",
        "aliases": {"ip": {"ra": "dst", "rb": "src"}}}}, where="test")
    evs = [{"kind": "a", "dst": "10.0.0.1", "t": 0}, {"kind": "b", "src": "10.0.0.2", "t": 1},
           {"kind": "b", "src": "10.0.0.1", "t": 2}]
    assert [(a.group, a.events) for a in run(c, evs)] == [({"ip": "10.0.0.1"}, (0, 2))]


# -- time -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, ms", [
    ("2024-01-01T00:00:00Z", 1704067200000),
    ("2024-01-01T00:00:00", 1704067200000),          # no zone: UTC
    ("2024-01-01 01:00:00+01:00", 1704067200000),
    ("2024-01-01T00:00:00.123456Z", 1704067200123),
    (1704067200, 1704067200000),                      # epoch seconds
    (1704067200.5, 1704067200500),
    (1704067200000, 1704067200000),                   # above 1e11: epoch milliseconds
    (datetime(2024, 1, 1), 1704067200000),            # naive datetime: UTC
    (datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), 1704067200000),
])
def test_timestamps(value, ms):
    assert timestamp_ms(value) == ms


@pytest.mark.parametrize("value", [None, "yesterday", "1704067200", True, float("nan"), [1], 1e300])
def test_unusable_timestamps_are_messages(value):
    assert isinstance(timestamp_ms(value), str)


def test_events_without_time_are_counted_and_reported():
    evs = [{"kind": "a", "t": 1}, {"kind": "a"}, {"kind": "a", "t": "soon"}, {"kind": "b"}, {"kind": "a", "t": 2}]
    res = matcher.RuleSet(R + [corr("event_count", condition={"gte": 2})]).correlate(evs, timestamp="t")
    alerts = alerts_of(res)
    assert [a.events for a in alerts] == [(0, 4)]
    assert res.stats.no_timestamp == 2 and res.stats.correlated == 4 and res.stats.events == 5
    assert [i for i, _ in res.stats.problems] == [1, 2]


def test_lateness_reorders_and_reports_later_events():
    c = corr("temporal_ordered", rules=("ra", "rb"))
    evs = [{"kind": "b", "t": 10}, {"kind": "a", "t": 8}, {"kind": "a", "t": 2}]
    assert [a.events for a in run(c, evs, lateness=5)] == [(1, 0)]  # a at 8 then b at 10
    res = matcher.RuleSet(R + [c]).correlate(evs, timestamp="t", lateness=5)
    list(res)
    assert res.stats.late == 1 and res.stats.problems[0][0] == 2
    assert run(c, evs) == []  # no lateness: a at 8 is late


def test_groups_expire_and_the_cap_evicts_with_a_count():
    c = corr("event_count", condition={"gte": 2}, **{"group-by": ["user"]})
    evs = [{"kind": "a", "user": f"u{i}", "t": i} for i in range(100)] + [{"kind": "a", "user": "u99", "t": 100}]
    rs = matcher.RuleSet(R + [c])
    res = rs.correlate(evs, timestamp="t", max_groups=10)
    assert [a.events for a in alerts_of(res)] == [(99, 100)]
    assert res.stats.evicted_groups == 90 and res.stats.peak_groups == 11
    res = rs.correlate([{**e, "t": e["t"] * 100} for e in evs], timestamp="t")
    assert alerts_of(res) == [] and res.stats.expired_groups >= 99 and res.stats.live_groups <= 1


# -- errors -----------------------------------------------------------------------------------

def test_missing_rule_is_a_rule_error_naming_both():
    c = corr("event_count", rules=("ra", "nope"), condition={"gte": 1})
    with pytest.raises(RuleError, match=r"c-event_count.*'nope'"):
        matcher.RuleSet(R + [c])


def test_cycle_is_a_rule_error():
    a = parse_correlation({"title": "a", "id": "A", "correlation": {"type": "temporal", "rules": ["B"], "timespan": "1m"}}, where="t")
    b = parse_correlation({"title": "b", "id": "B", "correlation": {"type": "temporal", "rules": ["A"], "timespan": "1m"}}, where="t")
    with pytest.raises(RuleError, match="cycle"):
        matcher.RuleSet([a, b])


@pytest.mark.parametrize("body, msg", [
    ({"type": "event_count", "rules": ["ra"], "timespan": "1m"}, "needs a 'condition'"),
    ({"type": "event_count", "rules": ["ra"], "timespan": "1 hour", "condition": {"gte": 1}}, "timespan"),
    ({"type": "value_sum", "rules": ["ra"], "timespan": "1m", "condition": {"gte": 1}}, "needs 'field'"),
    ({"type": "nope", "rules": ["ra"], "timespan": "1m"}, "correlation type"),
    ({"type": "event_count", "rules": [], "timespan": "1m", "condition": {"gte": 1}}, "'rules'"),
    ({"type": "event_count", "rules": ["ra"], "timespan": "1m", "condition": {"over": 1}}, "unknown condition"),
])
def test_bad_correlations_name_file_line_and_column(tmp_path, body, msg):
    p = tmp_path / "bad.yml"
    p.write_text("# a comment\n" + json.dumps({"title": "x", "correlation": body}) .replace('{"title"', '{"title"'))
    with pytest.raises(RuleError, match=msg) as e:
        matcher.load_rules(p)
    assert f"{p}:line 2, column" in str(e.value)


# -- loading ----------------------------------------------------------------------------------

def test_load_rules_lists_files_directories_archives(spec_file, tmp_path):
    # Windows Security rules: loaded for the sysmon profile, which recognises their logsource
    load_rules = functools.partial(matcher.load_rules, profile="sysmon")
    assert len(load_rules(spec_file)) == 4
    (tmp_path / "q.s1ql").write_text('kind = "a"')
    assert len(load_rules(tmp_path)) == 5
    assert isinstance(load_rules(tmp_path / "q.s1ql"), list)
    with tarfile.open(tmp_path / "r.tar.gz", "w:gz") as t:
        t.add(spec_file, arcname="rules/spec.yml")
        t.add(tmp_path / "q.s1ql", arcname="rules/q.s1ql")
    with zipfile.ZipFile(tmp_path / "r.zip", "w") as z:
        z.write(spec_file, "spec.yml")
    assert len(load_rules(tmp_path / "r.tar.gz")) == 5
    assert [r.info.source for r in load_rules(tmp_path / "r.zip")][0] == f"{tmp_path / 'r.zip'}:spec.yml"


def test_load_rules_corpus_records(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": "x1", "title": "one", "query": "kind = \\"a\\""}\n'
                 '{"id": "x2", "title": "two", "query": null, "error": "unsupported"}\n'
                 '{"id": "x3", "title": "three", "query": "kind = "}\n')
    with pytest.raises(RuleError, match=r"c.jsonl:2: rule x2 has no query \(unsupported\)"):
        matcher.load_rules(p)
    failures: list = []
    rules = matcher.load_rules(p, failures=failures)
    assert [r.id for r in rules] == ["x1"] and rules[0].title == "one"
    assert [src for src, _ in failures] == [f"{p}:2", f"{p}:3"]


# -- command line -----------------------------------------------------------------------------

def test_cli_scan_timestamp_writes_alerts_with_positions(spec_file, tmp_path):
    evs = brute_force(10)
    evs.insert(4, {"EventID": 4625, "User": "bob"})  # no time: reported, counted
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in evs))
    out = subprocess.run([sys.executable, "-m", "matcher", "scan", "-r", str(spec_file), "-p", "sysmon",
                          "--timestamp", "t", str(log)], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["kind"] for r in recs] == ["correlation", "correlation"]
    assert recs[0]["events"][0] == {"source": str(log), "line": 1}
    assert {"source": str(log), "line": 5} not in recs[0]["events"]
    assert recs[1]["events"] == [{"source": str(log), "line": 11}, {"source": str(log), "line": 12}]
    assert f"{log}:5: not correlated: no timestamp" in out.stderr
    assert "1 without a usable timestamp" in out.stderr


# -- Arrow, Parquet, check, generator ---------------------------------------------------------

def test_arrow_timestamp_columns_and_struct_fields():
    import pyarrow as pa

    c = corr("event_count", condition={"gte": 2}, **{"group-by": ["src.user"]})
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows = [{"kind": "a", "src": {"user": "x"}, "t": t0 + timedelta(seconds=i)} for i in range(3)]
    rows.insert(1, {"kind": "a", "src": {"user": "y"}, "t": None})
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("kind", pa.string()), ("src", pa.struct([("user", pa.string())])), ("t", pa.timestamp("ms", tz="UTC"))]))
    run_ = matcher.RuleSet(R + [c]).correlate_arrow(table, timestamp="t")
    alerts = alerts_of(run_)
    assert [(a.group, a.events, a.start) for a in alerts] == [({"src.user": "x"}, (0, 2), t0), ({"src.user": "x"}, (0, 2, 3), t0)]
    assert run_.stats.no_timestamp == 1
    ref, _ = reference.correlate(R, [c], table.to_pylist(), "t")
    assert alerts == ref


def test_cli_scan_parquet_rows(spec_file, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "log.parquet"
    pq.write_table(pa.Table.from_pylist(brute_force(10)), path)
    out = subprocess.run([sys.executable, "-m", "matcher", "scan", "-r", str(spec_file), "-p", "sysmon",
                          "--timestamp", "t", str(path)], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["type"] for r in recs] == ["event_count", "temporal_ordered"]
    assert recs[1]["events"] == [{"source": str(path), "row": 10}, {"source": str(path), "row": 11}]


def test_cli_check_and_scan_without_timestamp(spec_file, tmp_path):
    # Windows Security rules: the sysmon profile recognises their logsource (s1 does not: skipped)
    chk = subprocess.run([sys.executable, "-m", "matcher", "check", "-p", "sysmon", str(spec_file)],
                         capture_output=True, text=True)
    assert chk.returncode == 0 and "4 rule(s) ok" in chk.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(SPEC_EXAMPLE.split("---")[0])  # the outer correlation alone: its rules are missing
    chk = subprocess.run([sys.executable, "-m", "matcher", "check", "-p", "sysmon", str(bad)], capture_output=True,
                         text=True)
    assert chk.returncode == 1 and "many_failures" in chk.stderr
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in brute_force(10)))
    out = subprocess.run([sys.executable, "-m", "matcher", "scan", "-r", str(spec_file), "-p", "sysmon", str(log)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "2 correlation rule(s) not run: give --timestamp FIELD" in out.stderr


def test_load_single_correlation_document(tmp_path):
    p = tmp_path / "c.yml"
    p.write_text(SPEC_EXAMPLE.split("---")[1])
    c = matcher.load(p)
    assert isinstance(c, matcher.Correlation) and c.name == "many_failures" and c.timespan == 600_000
    assert matcher.load_rules(p) == [c] or len(matcher.load_rules(p)) == 1


def test_scenario_generator_is_deterministic_and_attacks_fire():
    from matcher import datasets

    a = list(datasets.iter_scenario_events(20_000, 3, "brute-force"))
    assert a == list(datasets.iter_scenario_events(20_000, 3, "brute-force"))
    failed = matcher.compile('EventID = "4625"', id="failed")
    brute = parse_correlation({"title": "bf", "id": "bf", "correlation": {
        "type": "event_count", "rules": ["failed"], "group-by": ["TargetUserName"], "timespan": "5m",
        "condition": {"gte": 20}}}, where="t")
    alerts = alerts_of(matcher.RuleSet([failed, brute]).correlate(a, timestamp="EventTime"))
    assert alerts and all(a.value >= 20 for a in alerts)
    with pytest.raises(matcher.MatcherError, match="scenario"):
        next(datasets.iter_scenario_events(1, 0, "nope"))


@given(st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).flatmap(
        lambda d: st.sampled_from([d.isoformat(), d.isoformat() + "Z", d.isoformat(timespec="milliseconds") + "Z",
                                   d.isoformat(timespec="microseconds"), d.isoformat(sep=" "),
                                   d.isoformat(timespec="milliseconds") + "+01:00"])),
    st.text(alphabet="0123456789-T:.Z+ ٣", max_size=28),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z?\Z")))
def test_time_reader_equals_timestamp_ms(text):
    reader = TimeReader()
    assert reader(text) == timestamp_ms(text)
    assert reader("2000-01-01T00:00:00.000Z") == timestamp_ms("2000-01-01T00:00:00.000Z")
    assert reader(text) == timestamp_ms(text)  # after another second was cached
    from matcher._correlate import iso_time_ms

    ms = iso_time_ms(text)  # the C engine's reader: the same time, or it leaves the text to Python
    assert ms is None or ms == timestamp_ms(text)
    if len(text) == 19 and text[10] == "T" and text.isascii() and isinstance(timestamp_ms(text), int):
        assert ms is not None  # the stream's usual form is read in C


_MINUTE = "2024-02-29T23:59"


@given(st.lists(st.one_of(
    st.sampled_from([_MINUTE, "2024-02-28T23:59", "2023-02-29T23:59", "2024-02-29T24:59", "2024-02-29 23:59",
                     "0000-01-01T00:00"]).flatmap(
        lambda m: st.sampled_from(["", ":00", ":59", ":60", ":5", ":5x", ":00.123", ":00.123Z", ":00.123456",
                                   ":00.1234", ":00Z", ":00+01:00", "Z"]).map(lambda tail: m + tail)),
    st.text(alphabet="0123456789-T:.Z ", max_size=26)), max_size=12))
def test_the_minute_cache_reads_each_time_as_alone(texts):
    """The engine remembers the last minute it read (row after row of a stream share it): a
    sequence read through the cache gives each text's time as read alone."""
    from matcher._correlate import iso_time_ms, iso_times_ms

    assert iso_times_ms(texts) == [iso_time_ms(t) for t in texts]
    assert iso_times_ms([_MINUTE + ":01", _MINUTE + ":02.5", _MINUTE + ":03.250Z"]) == [
        timestamp_ms(_MINUTE + ":01"), None, timestamp_ms(_MINUTE + ":03.250Z")]


@pytest.mark.parametrize("kw", [{"timestamp": 3}, {"timestamp": "t", "lateness": -1}, {"timestamp": "t", "lateness": "soon"},
                                {"timestamp": "t", "max_groups": 0}, {"timestamp": "t", "action": "page"},
                                {"timestamp": "t", "batch": 0}])
def test_bad_arguments_are_argument_errors(kw):
    from matcher.errors import ArgumentError

    with pytest.raises(ArgumentError):
        matcher.RuleSet(R).correlate([], **kw)


def test_arrow_times_past_year_9999_are_reported_not_fatal():
    import pyarrow as pa

    c = corr("event_count", condition={"gte": 1})
    table = pa.table({"kind": ["a", "a"], "t": pa.array([1_704_067_200_000, 253_402_300_800_000], pa.timestamp("ms"))})
    run_ = matcher.RuleSet(R + [c]).correlate_arrow(table, timestamp="t")
    assert [a.events for a in alerts_of(run_)] == [(0,)]
    assert run_.stats.no_timestamp == 1 and run_.stats.problems[0][0] == 1


PROFILE_RULES = """\
title: whoami
id: 5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a11
name: whoami
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        Image|endswith: '\\\\whoami.exe'
    condition: sel
---
title: whoami with several command lines, same user
id: 5f0c9f57-3a0e-4c55-9a55-0d7e6b3f7a12
correlation:
    type: value_count
    rules: [whoami]
    group-by: [User]
    timespan: 1m
    condition:
        field: CommandLine
        gte: 2
"""


@pytest.mark.parametrize("profile, names", [
    ("s1", {"type": "EventType", "os": "EndpointOS", "image": "TgtProcImagePath", "user": "TgtProcUser",
            "cmd": "TgtProcCmdLine"}),
    ("ecs", {"type": None, "os": "host.os.type", "image": "process.executable", "user": "user.name",
             "cmd": "process.command_line"}),
    (None, {"type": None, "os": None, "image": "Image", "user": "User", "cmd": "CommandLine"}),
])
def test_profile_maps_group_by_and_value_fields(tmp_path, profile, names):
    """profile= maps a correlation's group-by and field names per named rule, as it maps the
    rule's detection; alerts keep the group-by names as written."""
    path = tmp_path / "r.yml"
    path.write_text(PROFILE_RULES)
    rs = matcher.RuleSet(matcher.load_rules(path, profile=profile))

    def ev(i: int, user: str, cmd: str) -> dict:
        e = {names["image"]: "C:\\Windows\\System32\\whoami.exe", names["user"]: user, names["cmd"]: cmd, "t": iso(i)}
        if names["type"]:
            e[names["type"]] = "Process Creation"
        if profile == "ecs":
            e.update({"event.category": "process", "event.type": "start"})
        if names["os"]:
            e[names["os"]] = "windows"
        return e

    events = [ev(0, "bob", "whoami"), ev(1, "alice", "whoami /all"), ev(2, "bob", "whoami /priv")]
    alerts = [a for a in rs.correlate(events, timestamp="t") if a.kind == "correlation"]
    assert [(a.group, a.value, a.events) for a in alerts] == [({"User": "bob"}, 2.0, (0, 2))]
    ref, _ = reference.correlate(list(rs.rules), list(rs.correlations), events, "t")
    assert ref == alerts
    again = pickle.loads(pickle.dumps(rs))  # mapped once, not twice
    assert again.correlations[0].aliases == rs.correlations[0].aliases


def test_event_count_may_name_more_than_63_rules():
    rules = [matcher.compile(f'kind = "k{i}"', id=f"r{i}", title=f"r{i}") for i in range(70)]
    corr = parse_correlation({"title": "many", "id": "many", "correlation": {
        "type": "event_count", "rules": [f"r{i}" for i in range(70)], "group-by": ["user"], "timespan": "1m",
        "condition": {"gte": 2}}}, where="many")
    rs = matcher.RuleSet(rules + [corr])
    events = [{"kind": "k69", "user": "u", "t": iso(0)}, {"kind": "k65", "user": "u", "t": iso(1)}]
    alerts = [a for a in rs.correlate(events, timestamp="t") if a.kind == "correlation"]
    assert [(a.value, a.events) for a in alerts] == [(2.0, (0, 1))]
    assert alerts == reference.correlate(rules, [corr], events, "t")[0]


def test_many_groups_come_and_go_as_the_reference_has_them():
    """Thousands of groups created, found again and expired (the engine's key table grows, and
    deletes shift probe chains back): alert for alert the reference's, for one-field and
    two-field keys, with and without a value count."""
    import random

    rng = random.Random(3)
    failed = matcher.compile('EventID = "4625"', id="failed", title="failed")
    count = parse_correlation({"title": "bf", "id": "bf", "correlation": {
        "type": "event_count", "rules": ["failed"], "group-by": ["TargetUserName", "Computer"], "timespan": "10s",
        "condition": {"gte": 3}}}, where="t")
    spray = parse_correlation({"title": "vc", "id": "vc", "correlation": {
        "type": "value_count", "rules": ["failed"], "group-by": ["IpAddress"], "timespan": "10s",
        "condition": {"field": "TargetUserName", "gte": 3}}}, where="t")
    t = 1_700_000_000.0
    events = []
    for _ in range(6000):
        t += rng.random() * 0.3
        events.append({"EventID": "4625", "TargetUserName": f"u{rng.randrange(1500)}", "IpAddress": f"10.0.0.{rng.randrange(900)}",
                       "Computer": rng.choice(["a", "b", None, 7]), "EventTime": t})
    rs = matcher.RuleSet([failed, count, spray])
    run = rs.correlate(events, timestamp="EventTime")
    fast = [a for a in run if a.kind == "correlation"]
    ref, _ = reference.correlate(list(rs.rules), list(rs.correlations), events, "EventTime")
    assert fast == ref and len(fast) > 10
    assert run.stats.expired_groups > 1000 and run.stats.peak_groups > 64  # the table grew and emptied
