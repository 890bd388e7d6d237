"""The reference correlator: what a correlation rule means, in the plainest Python.

It decides each single-event verdict with :func:`matcher.reference.evaluate`, keeps every
group's window as a list of entries and recomputes each aggregate from scratch. The fast
engine (:mod:`.engine`) must yield the same alerts, alert for alert; the differential tests
hold it to that. ``docs/correlation.md`` states the rules this code implements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import fsum
from typing import Any, Optional

from ..ops import lookup
from ..reference import evaluate
from .results import Alert, Stats
from .rule import Correlation
from .values import count_value, group_value, numeric_value, percentile, timestamp_ms

__all__ = ["correlate", "aggregate", "ordered"]


def ordered(corr: Correlation, window: list) -> bool:
    """temporal_ordered: one entry per named rule, in the order of ``rules``, at non-decreasing
    times (ties satisfy the order). The earliest fitting entry for each rule is the best choice."""
    prev = None
    for ref in corr.rules:
        times = [ts for ts, _, refs, _ in window if ref in refs and (prev is None or ts >= prev)]
        if not times:
            return False
        prev = min(times)
    return True


def aggregate(corr: Correlation, window: list) -> Optional[float]:
    """The value the condition is tested on, from a group's window entries (ts, index, refs, value)."""
    t = corr.type
    values = [v for _, _, _, v in window]
    if t == "event_count":
        return float(len(window))
    if t == "value_count":
        return float(len(set(values)))
    if t == "temporal":
        return float(sum(1 for r in corr.rules if any(r in refs for _, _, refs, _ in window)))
    if t == "temporal_ordered":
        return float(len(corr.rules)) if ordered(corr, window) else 0.0
    if t == "value_sum":
        return fsum(values)
    if t == "value_avg":
        return fsum(values) / len(values)
    if t == "value_min":
        return min(values)
    if t == "value_max":
        return max(values)
    return percentile(sorted(values), 50.0 if t == "value_median" else corr.percentile)


def correlate(rules: list, correlations: list[Correlation], events: Iterable[Mapping], timestamp: str,
              *, lateness_ms: int = 0, action: str = "alert", stats: Optional[Stats] = None) -> tuple[list, list]:
    """``(alerts, matches)`` of ``correlations`` (in an order where a correlation comes after those
    it names) over ``events``; ``rules`` are the base rules (``Rule``). ``matches`` lists the
    single-event matches of the rules that are not correlation-only, in stream order."""
    stats = stats if stats is not None else Stats()
    events = list(events)
    by_ref: dict[str, str] = {}  # reference (id or name) -> the id of the rule or correlation
    for r in list(rules) + list(correlations):
        by_ref[r.id] = r.id
        name = r.name if isinstance(r, Correlation) else r.info.extra.get("name")
        if name:
            by_ref[name] = r.id
    hidden = {by_ref[ref] for c in correlations if not c.generate for ref in c.rules}
    named = {by_ref[ref] for c in correlations for ref in c.rules}

    # 1. single-event verdicts, in stream order
    verdicts, matches = [], []
    for i, ev in enumerate(events):
        hit = {r.id for r in rules if evaluate(r, ev)}
        verdicts.append(hit)
        matches += [Alert("match", r.id, r.title, r.level, "match", events=(i,))
                    for r in rules if r.id in hit and r.id not in hidden]
    stats.events = len(events)

    # 2. times: events a correlation counts need one; later than the lateness allows is late
    accepted, newest = [], None
    for i, ev in enumerate(events):
        if not verdicts[i] & named:
            continue
        stats.correlated += 1
        ts = timestamp_ms(lookup(ev, timestamp))
        if isinstance(ts, str):
            stats.no_timestamp += 1
            stats.problem(i, ts)
        elif newest is not None and ts < newest - lateness_ms:
            stats.late += 1
            stats.problem(i, f"late by {newest - ts} ms (lateness {lateness_ms} ms)")
        else:
            newest = ts if newest is None else max(newest, ts)
            accepted.append((ts, i))

    # 3. windows, in event time (ties in stream order)
    windows: dict[tuple, list] = {}
    alerts = []
    for ts, i in sorted(accepted):
        ev, fired = events[i], set(verdicts[i])
        for corr in correlations:
            hits = [ref for ref in corr.rules if by_ref[ref] in fired]
            if not hits:
                continue
            if corr.type == "value_count":
                value: Any = count_value(ev, tuple(corr.aliases.get(f, {}).get(hits[0], f) for f in corr.field))
            elif corr.type in ("event_count", "temporal", "temporal_ordered"):
                value = 0
            else:
                value = numeric_value(ev, corr.aliases.get(corr.field[0], {}).get(hits[0], corr.field[0]))
            if value is None:
                stats.no_value += 1
                continue
            key = tuple(group_value(ev, f) for f in corr.group_fields(hits[0]))
            window = windows.setdefault((corr.id, key), [])
            window[:] = [e for e in window if e[0] >= ts - corr.timespan]
            window.append((ts, i, set(hits), value))
            agg = aggregate(corr, window)
            if corr.holds(agg):
                group = {g: v for g, v in zip(corr.group_by, key) if v is not None}
                alerts.append(Alert("correlation", corr.id, corr.title, corr.level, corr.type, group,
                                    window[0][0], ts, agg, tuple(e[1] for e in window)))
                fired.add(corr.id)
                if action == "reset":
                    window.clear()
    stats.alerts = len(alerts)
    return alerts, matches
