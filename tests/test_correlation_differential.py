"""Fast correlation engine == reference correlator, alert for alert (dicts and Arrow).

Random correlation rules (every type, group-by, aliases, conditions and ranges, chains) over
random timed event streams (out of order, bad and missing timestamps, absent and odd values).
"""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, strategies as st

import matcher
from matcher.correlation import TYPES, Stats, parse_correlation, reference
from matcher.correlation.rule import VALUE_TYPES

BASE = {
    "ra": 'kind = "a"',
    "rb": 'kind = "b"',
    "rc": 'kind = "c"',
    "rab": 'kind In ("a", "b")',
}
REFS = sorted(BASE)
RULES = [matcher.compile(q, id=i, title=i) for i, q in BASE.items()]

kinds = st.sampled_from(["a", "b", "c", "d"])
users = st.sampled_from(["u1", "u2", "u3", None])
hosts = st.sampled_from(["h1", "h2"])


@st.composite
def correlation_docs(draw, cid: str, refs: list[str]):
    ctype = draw(st.sampled_from(TYPES))
    named = draw(st.lists(st.sampled_from(refs), min_size=1, max_size=3, unique=True))
    group_by = draw(st.lists(st.sampled_from(["user", "host", "peer"]), max_size=2, unique=True))
    body: dict = {"type": ctype, "rules": named, "timespan": f"{draw(st.integers(1, 20))}s"}
    if group_by:
        body["group-by"] = group_by
    if "peer" in group_by:  # an alias: "peer" is user for the first rule, host for the others
        body["aliases"] = {"peer": {named[0]: "user", **{r: "host" for r in named[1:]}}}
    ops = draw(st.lists(st.sampled_from(["gt", "gte", "lt", "lte", "eq", "neq"]), min_size=1, max_size=2, unique=True))
    cond: dict = {op: draw(st.integers(0, 6)) for op in ops}
    if ctype == "value_count":
        cond["field"] = draw(st.sampled_from(["user", "host", ["user", "host"], "n"]))
    elif ctype in VALUE_TYPES:
        cond["field"] = "n"
        if ctype == "value_percentile":
            cond["percentile"] = draw(st.sampled_from([0, 25, 50, 90, 100]))
    if ctype in ("temporal", "temporal_ordered") and draw(st.booleans()):
        pass  # no condition: every named rule
    else:
        body["condition"] = cond
    doc = {"title": f"corr {cid}", "id": cid, "correlation": body, "level": "high"}
    if draw(st.booleans()):
        doc["generate"] = True
    return doc


@st.composite
def rule_sets(draw):
    docs = [draw(correlation_docs("c1", REFS))]
    if draw(st.booleans()):
        docs.append(draw(correlation_docs("c2", REFS + ["c1"])))  # maybe a chain
    return [parse_correlation(d, where=d["id"]) for d in docs]


def _iso_forms(t: int) -> list:
    """Texts of time t (epoch s): the forms the C reader takes (Z or none, .fff, .ffffff) and
    others it leaves to Python (an offset, a space, junk, non-ASCII)."""
    import datetime as dt

    base = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return [base + "Z", base + "Z", base, base + ".250Z", base + ".250123", base + "+00:00",
            base.replace("T", " ") + "+02:00", "soon", base[:-1] + "\u0665Z", base + ".25Z"]


@st.composite
def streams(draw, arrow: bool = False, text_times: bool = False):
    n = draw(st.integers(0, 40))
    t = 1_700_000_000
    events = []
    for _ in range(n):
        t += draw(st.integers(-3, 4))  # out of order now and then
        ev: dict = {"kind": draw(kinds), "user": draw(users), "host": draw(hosts)}
        if text_times:
            ev["t"] = draw(st.one_of(st.sampled_from(_iso_forms(t)), st.none()))
            ev["n"] = None
        elif arrow:
            ev["t"] = draw(st.one_of(st.just(t), st.just(t), st.just(t), st.none()))
            ev["n"] = draw(st.one_of(st.none(), st.floats(-5, 50, allow_nan=False).map(lambda x: round(x, 1))))
        else:
            ev["t"] = draw(st.sampled_from([t, t, t, t * 1000, f"2023-11-14T22:13:{t % 60:02d}Z", None, "soon"]))
            ev["n"] = draw(st.one_of(st.none(), st.integers(-5, 50), st.just("7.5"), st.just("x"), st.just([1, 2])))
            if draw(st.integers(0, 9)) == 0:
                del ev["user"]
        events.append(ev)
    return events


def _reference(rs, events, lateness_ms, action):
    stats = Stats()
    alerts, matches = reference.correlate(list(rs.rules), list(rs.correlations), events, "t",
                                          lateness_ms=lateness_ms, action=action, stats=stats)
    return alerts, matches, stats


def _split(results):
    return [a for a in results if a.kind == "correlation"], [a for a in results if a.kind == "match"]


def _same_stats(a: Stats, b: Stats):
    for k in ("events", "correlated", "no_timestamp", "late", "no_value", "alerts"):
        assert getattr(a, k) == getattr(b, k), k


@given(rule_sets(), streams(), st.integers(0, 5), st.sampled_from(["alert", "reset"]), st.integers(1, 9))
def test_dicts_fast_equals_reference(corrs, events, lateness, action, batch):
    rs = matcher.RuleSet(RULES + corrs)
    want_alerts, want_matches, want_stats = _reference(rs, events, lateness * 1000, action)
    run = rs.correlate(iter(events), timestamp="t", lateness=lateness, action=action, batch=batch)
    alerts, matches = _split(list(run))
    assert alerts == want_alerts
    assert matches == want_matches
    _same_stats(run.stats, want_stats)


@given(rule_sets(), streams(arrow=True), st.integers(0, 5), st.integers(1, 9))
def test_arrow_fast_equals_reference(corrs, events, lateness, batch):
    rs = matcher.RuleSet(RULES + corrs)
    want_alerts, want_matches, want_stats = _reference(rs, events, lateness * 1000, "alert")
    schema = pa.schema([("kind", pa.string()), ("user", pa.string()), ("host", pa.string()),
                        ("t", pa.int64()), ("n", pa.float64())])
    table = pa.Table.from_pylist(events, schema=schema)
    run = rs.correlate_arrow(table.to_batches(max_chunksize=batch), timestamp="t", lateness=lateness)
    alerts, matches = _split(list(run))
    assert alerts == want_alerts
    assert matches == want_matches
    _same_stats(run.stats, want_stats)


@given(rule_sets(), streams(text_times=True), st.integers(0, 5), st.integers(1, 9),
       st.sampled_from([pa.string(), pa.large_string()]), st.booleans())
def test_arrow_text_times_fast_equals_reference(corrs, events, lateness, batch, text, sliced):
    """A string time column is read in C from its buffer (_correlate.arrow_times_ms); the forms
    that reader leaves to Python, nulls and slices give the reference's alerts and counts."""
    rs = matcher.RuleSet(RULES + corrs)
    want_alerts, want_matches, want_stats = _reference(rs, events, lateness * 1000, "alert")
    schema = pa.schema([("kind", pa.string()), ("user", pa.string()), ("host", pa.string()), ("t", text)])
    pad = {"kind": "pad", "user": "pad", "host": "pad", "t": "pad"}
    table = pa.Table.from_pylist([pad] + events + [pad] if sliced else events, schema=schema)
    if sliced:
        table = table.slice(1, len(events))
    run = rs.correlate_arrow(table.to_batches(max_chunksize=batch), timestamp="t", lateness=lateness)
    alerts, matches = _split(list(run))
    assert alerts == want_alerts
    assert matches == want_matches
    _same_stats(run.stats, want_stats)


def test_arrow_times_ms_reads_what_the_str_reader_reads():
    """The buffer reader and the str reader (iso_time_ms) agree on every form, row for row."""
    from matcher import _correlate
    from matcher._arrow import _strings, _view

    texts = [f for t in range(1_700_000_000, 1_700_000_400, 37) for f in _iso_forms(t)] + ["", "2024-02-30T00:00:00Z"]
    arr = pa.array([None] + texts, pa.string()).slice(1)
    offsets, width, offset, data = _strings(arr)
    got = _correlate.arrow_times_ms(None, arr.offset, offsets, width, offset, data, len(arr)).tolist()
    want = [_correlate.iso_time_ms(x) for x in texts]
    assert [None if g == _correlate.MISSING_MS else g for g in got] == want
    assert sum(w is not None for w in want) > len(texts) // 3


def test_arrow_columns_equal_dicts_on_scenario_streams():
    """Arrow batches large enough for the column path (strings dictionary-encoded, only the
    fields correlating reads converted) give the dict path's alerts, which the reference's are."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_correlation as bc
    from matcher import datasets

    rs = matcher.RuleSet(bc.base_rules() + bc.correlations())
    for scenario in ("brute-force", "mixed"):
        # few users and hosts: string columns repeat, so they go through their dictionary
        events = list(datasets.iter_scenario_events(6000, 5, scenario, users=60, hosts=30))
        schema = pa.schema([("EventID", pa.int64())] + [(f, pa.string()) for f in (
            "TargetUserName", "IpAddress", "Computer", "Image", "User", "EventTime")])
        table = pa.Table.from_pylist(events, schema=schema)
        want = list(rs.correlate(events, timestamp="EventTime"))
        assert any(a.kind == "correlation" for a in want)
        for chunk in (1000, 6000):
            assert list(rs.correlate_arrow(table.to_batches(max_chunksize=chunk), timestamp="EventTime")) == want
        ref, _ = reference.correlate(list(rs.rules), list(rs.correlations), events, "EventTime")
        assert [a for a in want if a.kind == "correlation"] == ref
