"""The fast correlator: the compiled core's matches feed per-group windows of plain ints.

Per correlation, live groups sit in a dict ordered by their last update (the oldest first), so
groups whose window has emptied with time are dropped from the front, and the ``max_groups``
cap evicts the least recently updated group (counted and reported). A group's window is a few
``array('q')`` of machine ints (times in ms, stream indices, rule bitmasks; ``array('d')`` for
numeric values, a list for ``value_count``'s values), oldest first: entries that leave the
window are found by bisection and cut from the front; counts that the condition reads are kept
up to date as entries come and go.

Events are taken from the core in chunks; only events matched by a rule that some correlation
names are looked at again (their time, group and value). They pass through a reorder buffer
(a heap) that releases them in event-time order once no accepted event can come before them:
an event more than ``lateness`` older than the newest accepted one is late (reported, counted).
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Callable, Mapping
from math import fsum
from typing import Any, Optional

import numpy as np

from ..errors import ArgumentError
from ..ops import lookup
from .results import Alert, Stats
from .rule import Correlation
from .values import TimeReader, count_value, group_value, numeric_value, percentile

__all__ = ["Engine"]

_COUNTING = ("event_count", "temporal", "temporal_ordered")


class _Corr:
    """One correlation's compiled form and its live groups."""

    __slots__ = ("c", "type", "span", "groups", "fields_by_rank", "value_field_by_rank", "nrules", "parents",
                 "holds", "update", "counting", "single")

    def __init__(self, c: Correlation):
        self.c = c
        self.type = c.type
        self.span = c.timespan
        self.groups: dict = {}
        self.fields_by_rank = [c.group_fields(ref) for ref in c.rules]
        if c.type == "value_count":
            self.value_field_by_rank = [tuple(c.aliases.get(f, {}).get(ref, f) for f in c.field) for ref in c.rules]
        elif c.field:
            self.value_field_by_rank = [c.aliases.get(c.field[0], {}).get(ref, c.field[0]) for ref in c.rules]
        else:
            self.value_field_by_rank = None
        self.nrules = len(c.rules)
        self.parents: list[tuple[int, int]] = []  # (parent correlation index, rank of this one in its rules)
        self.holds = _condition(c)
        self.update = _updater(c)
        self.single = _single(c)
        self.counting = c.type in _COUNTING


class Engine:
    """Streaming correlation of one :class:`~matcher.RuleSet` (see :meth:`matcher.RuleSet.correlate`)."""

    def __init__(self, ruleset: Any, timestamp: str, *, lateness_ms: int = 0, max_groups: int = 1_000_000,
                 action: str = "alert", stats: Optional[Stats] = None):
        if not isinstance(timestamp, str) or not timestamp:
            raise ArgumentError(f"correlate: timestamp must name the time field (a str), not {timestamp!r}")
        if action not in ("alert", "reset"):
            raise ArgumentError(f"correlate: action must be 'alert' or 'reset', not {action!r}")
        if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 1:
            raise ArgumentError(f"correlate: max_groups must be a positive int, not {max_groups!r}")
        self.ts_field = timestamp
        self.lateness = int(lateness_ms)
        self.max_groups = max_groups
        self.reset = action == "reset"
        self.stats = stats if stats is not None else Stats()
        self.rules = ruleset.rules
        corrs = list(ruleset.correlations)  # a correlation after those it names
        self.corrs = [_Corr(c) for c in corrs]
        ref_rule, ref_corr = ruleset._references()
        n = len(self.rules)
        self.feeds: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # base rule -> (corr, rank)
        hidden = np.zeros(n, dtype=bool)
        for ci, c in enumerate(corrs):
            for rank, ref in enumerate(c.rules):
                if ref in ref_rule:
                    u = ref_rule[ref]
                    self.feeds[u].append((ci, rank))
                    hidden[u] |= not c.generate
                else:
                    self.corrs[ref_corr[ref]].parents.append((ci, rank))
        self.chained = any(cc.parents for cc in self.corrs)
        self.relevant = np.array([bool(f) for f in self.feeds] or [False], dtype=bool)[:n]
        self.emit = ~hidden
        self.heap: list = []
        self.newest: Optional[int] = None
        self._hit_cache: dict[tuple, dict] = {}  # base rules matched -> correlations hit (few distinct)
        self.read_time = TimeReader()

    # -- input --------------------------------------------------------------------------------
    def feed(self, base: int, rows: np.ndarray, rules: np.ndarray, n_events: int,
             event: Callable[[int], Mapping]) -> list[Alert]:
        """One chunk's matches from the core: ``rows``/``rules`` (chunk-local), the chunk's size, and
        a function giving the event at a chunk row. Returns single matches, then released alerts."""
        st = self.stats
        st.events += n_events
        out: list[Alert] = []
        if len(rows) == 0:
            return out
        emit = self.emit[rules]
        if emit.any():
            rl = self.rules
            for r, u in zip(rows[emit].tolist(), rules[emit].tolist()):
                rule = rl[u]
                out.append(Alert("match", rule.id, rule.title, rule.level, "match", events=(base + r,)))
        rel = self.relevant[rules]
        if not rel.any():
            return out
        rows_r, rules_r = rows[rel].tolist(), rules[rel].tolist()
        ts_field, lateness, heap, read_time = self.ts_field, self.lateness, self.heap, self.read_time
        i, m = 0, len(rows_r)
        while i < m:
            r = rows_r[i]
            j = i + 1
            while j < m and rows_r[j] == r:
                j += 1
            us = tuple(rules_r[i:j])
            i = j
            idx = base + r
            st.correlated += 1
            ev = event(r)
            tv = ev.get(ts_field)
            ts = read_time(tv if tv is not None else lookup(ev, ts_field))
            if ts.__class__ is not int:
                st.no_timestamp += 1
                st.problem(idx, ts)
                continue
            newest = self.newest
            if newest is not None and ts < newest - lateness:
                st.late += 1
                st.problem(idx, f"late by {newest - ts} ms (lateness {lateness} ms)")
                continue
            if newest is None or ts > newest:
                self.newest = newest = ts
            if not heap and ts >= newest - lateness and lateness == 0:
                self._process(ts, idx, ev, us, out)  # in order, nothing held: no heap
                continue
            heapq.heappush(heap, (ts, idx, ev, us))
            limit = newest - lateness
            while heap and heap[0][0] <= limit:
                t, k, e, u = heapq.heappop(heap)
                self._process(t, k, e, u, out)
        return out

    def flush(self) -> list[Alert]:
        """The end of the stream: release every held event."""
        out: list[Alert] = []
        heap = self.heap
        while heap:
            t, k, e, u = heapq.heappop(heap)
            self._process(t, k, e, u, out)
        return out

    # -- windows ------------------------------------------------------------------------------
    def _hits(self, us: tuple) -> dict:
        """corr -> [lowest rank hit, bitmask of ranks hit] for an event matching base rules ``us``."""
        pending: dict[int, list[int]] = {}
        for u in us:
            for ci, rank in self.feeds[u]:
                p = pending.get(ci)
                if p is None:
                    pending[ci] = [rank, 1 << rank]
                else:
                    if rank < p[0]:
                        p[0] = rank
                    p[1] |= 1 << rank
        return pending

    def _process(self, ts: int, idx: int, ev: Mapping, us: tuple, out: list[Alert]) -> None:
        template = self._hit_cache.get(us)
        if template is None:
            template = self._hit_cache[us] = self._hits(us)
        pending = template.copy()  # its [rank, mask] lists are never changed: merges make new ones
        corrs = self.corrs
        st = self.stats
        while pending:
            ci = min(pending) if len(pending) > 1 else next(iter(pending))
            first, mask = pending.pop(ci)
            cc = corrs[ci]
            t = cc.type
            if cc.counting:
                value: Any = None
            else:
                value = (count_value if t == "value_count" else numeric_value)(ev, cc.value_field_by_rank[first])
                if value is None:
                    st.no_value += 1
                    continue
            fields = cc.fields_by_rank[first]
            if len(fields) == 1:
                v = ev.get(fields[0])
                key: tuple = (v if v.__class__ is str else group_value(ev, fields[0]),)
            else:
                key = tuple([group_value(ev, f) for f in fields])
            groups = cc.groups
            cutoff = ts - cc.span
            g = groups.pop(key, None)
            if g is None or g.__class__ is tuple and g[0] < cutoff:
                # a window of one entry: kept as the tuple (time, index, mask or value) until a
                # second entry comes (most groups of a sparse key never get one)
                if g is None:
                    st.live_groups += 1
                    if st.live_groups > st.peak_groups:
                        st.peak_groups = st.live_groups
                groups[key] = g = (ts, idx, mask if value is None else value)
                agg = cc.single(mask, value)
                start, members = ts, (idx,)
            else:
                if g.__class__ is tuple:  # the second entry: now arrays
                    one = g
                    g = self._fresh(cc)
                    cc.update(g, one[0], one[0], one[1], one[2], one[2])
                groups[key] = g  # now the most recently updated
                agg = cc.update(g, cutoff, ts, idx, mask, value)
                start, members = g[0][0], None
            if cc.holds(agg):
                c = cc.c
                group = {gn: gv for gn, gv in zip(c.group_by, key) if gv is not None}
                out.append(Alert("correlation", c.id, c.title, c.level, t, group, start, ts, agg,
                                 members or tuple(g[1])))
                st.alerts += 1
                if self.reset:  # an empty window: no group
                    del groups[key]
                    st.live_groups -= 1
                for pci, prank in cc.parents:
                    p = pending.get(pci)
                    pending[pci] = [prank, 1 << prank] if p is None else [min(p[0], prank), p[1] | 1 << prank]
            if groups:
                old = groups[next(iter(groups))]
                if (old[0] if old.__class__ is tuple else old[0][-1]) < cutoff or len(groups) > self.max_groups:
                    self._expire(cc, ts)

    @staticmethod
    def _fresh(cc: _Corr) -> list:
        # [times (ms), stream indices, rule bitmasks | values | None, per-rank counts + how many
        #  are non-zero | value -> count | None]: arrays of machine ints, no object per entry
        t = cc.type
        if t == "event_count":
            return [array("q"), array("q"), None, None]
        if t in ("temporal", "temporal_ordered"):
            return [array("q"), array("q"), array("q"), [0] * (cc.nrules + 1)]
        if t == "value_count":
            return [array("q"), array("q"), [], {}]
        return [array("q"), array("q"), array("d"), None]

    def _expire(self, cc: _Corr, now: int) -> None:
        """Drop groups whose newest entry has left the window; evict past the cap."""
        groups = cc.groups
        st = self.stats
        cutoff = now - cc.span
        while groups:
            key = next(iter(groups))
            g = groups[key]
            if (g[0] if g.__class__ is tuple else g[0][-1]) >= cutoff:
                break
            del groups[key]
            st.live_groups -= 1
            st.expired_groups += 1
        while len(groups) > self.max_groups:
            key = next(iter(groups))
            del groups[key]
            st.live_groups -= 1
            st.evicted_groups += 1
            st.problem(None, f"correlation {cc.c.id}: group {dict(zip(cc.c.group_by, key))} evicted "
                             f"(more than {self.max_groups} live groups)")


def _slide(times: array, cutoff: int) -> int:
    """How many entries (oldest first) are older than ``cutoff``: they leave the window."""
    return bisect_left(times, cutoff) if times and times[0] < cutoff else 0


def _update_count(g: list, cutoff: int, ts: int, idx: int, mask: int, value: Any) -> float:
    times, ids = g[0], g[1]
    k = _slide(times, cutoff)
    if k:
        del times[:k], ids[:k]
    times.append(ts)
    ids.append(idx)
    return float(len(times))


def _update_distinct(g: list, cutoff: int, ts: int, idx: int, mask: int, value: Any) -> float:
    times, ids, values, counts = g
    k = _slide(times, cutoff)
    if k:
        for v in values[:k]:
            n = counts[v] - 1
            if n:
                counts[v] = n
            else:
                del counts[v]
        del times[:k], ids[:k], values[:k]
    times.append(ts)
    ids.append(idx)
    values.append(value)
    counts[value] = counts.get(value, 0) + 1
    return float(len(counts))


def _temporal_window(g: list, cutoff: int, ts: int, idx: int, mask: int) -> int:
    """Slide a temporal window; return how many named rules have an event in it."""
    times, ids, masks, counts = g
    k = _slide(times, cutoff)
    if k:
        for old in masks[:k]:
            for r in _BITS.get(old) or _bits(old):
                counts[r] -= 1
                if not counts[r]:
                    counts[-1] -= 1
        del times[:k], ids[:k], masks[:k]
    times.append(ts)
    ids.append(idx)
    masks.append(mask)
    for r in _BITS.get(mask) or _bits(mask):
        if not counts[r]:
            counts[-1] += 1
        counts[r] += 1
    return counts[-1]


_BITS: dict[int, tuple[int, ...]] = {}


def _bits(mask: int) -> tuple[int, ...]:
    """The ranks set in a rule bitmask (cached: a correlation has few distinct masks)."""
    out = _BITS[mask] = tuple(r for r in range(mask.bit_length()) if mask >> r & 1)
    return out


def _update_temporal(g: list, cutoff: int, ts: int, idx: int, mask: int, value: Any) -> float:
    return float(_temporal_window(g, cutoff, ts, idx, mask))


def _numeric(aggregate: Callable[[array], float]):
    def update(g: list, cutoff: int, ts: int, idx: int, mask: int, value: Any) -> float:
        times, ids, values = g[0], g[1], g[2]
        k = _slide(times, cutoff)
        if k:
            del times[:k], ids[:k], values[:k]
        times.append(ts)
        ids.append(idx)
        values.append(value)
        return aggregate(values)
    return update


def _updater(c: Correlation) -> Callable[..., float]:
    t = c.type
    if t == "event_count":
        return _update_count
    if t == "value_count":
        return _update_distinct
    if t == "temporal":
        return _update_temporal
    if t == "temporal_ordered":
        n = len(c.rules)

        def update(g: list, cutoff: int, ts: int, idx: int, mask: int, value: Any) -> float:
            fired = _temporal_window(g, cutoff, ts, idx, mask)
            return float(n) if fired == n and _ordered(g[0], g[2], n) else 0.0
        return update
    p = 50.0 if t == "value_median" else c.percentile
    return _numeric({"value_sum": fsum, "value_avg": lambda v: fsum(v) / len(v), "value_min": min,
                     "value_max": max}.get(t, lambda v: percentile(sorted(v), p)))


def _single(c: Correlation) -> Callable[[int, Any], float]:
    """The aggregate of a window holding one entry (with rule bitmask ``mask`` or ``value``)."""
    t = c.type
    if t in ("event_count", "value_count"):
        return lambda mask, value: 1.0
    if t == "temporal":
        return lambda mask, value: float(len(_BITS.get(mask) or _bits(mask)))
    if t == "temporal_ordered":
        n = len(c.rules)  # one event matching every named rule: ties satisfy the order
        return lambda mask, value: float(n) if len(_BITS.get(mask) or _bits(mask)) == n else 0.0
    return lambda mask, value: value  # sum, mean, min, max, any percentile of one number


def _condition(c: Correlation) -> Callable[[float], bool]:
    """The condition as one function (a single comparison is the common case)."""
    import operator

    ops = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le, "eq": operator.eq,
           "ne": operator.ne, "neq": operator.ne}
    if len(c.condition) == 1:
        (op, n), = c.condition
        f = ops[op]
        return lambda v: v is not None and f(v, n)
    return c.holds


def _ordered(times: array, masks: array, nrules: int) -> bool:
    """temporal_ordered over a group's entries (in time order): the earliest entry of each rule,
    in the order of ``rules``, at a time no earlier than the previous rule's (ties satisfy)."""
    prev = None
    start = 0
    tl, ml = times, masks
    n = len(tl)
    for k in range(nrules):
        bit = 1 << k
        if prev is not None:
            while start < n and tl[start] < prev:
                start += 1
        j = start
        while j < n and not ml[j] & bit:
            j += 1
        if j == n:
            return False
        prev = tl[j]
    return True
