"""Sigma correlation rules: counting and ordering events over time (``docs/correlation.md``).

- :mod:`.rule`: the :class:`Correlation` record and its parser from a YAML document;
- :mod:`.values`: what an event says to a correlation (time, group, value);
- :mod:`.reference`: the reference correlator, over :func:`matcher.reference.evaluate`;
- :mod:`.engine`: the fast correlator, fed by the compiled core's matches;
- :mod:`.cli`: ``matcher scan --timestamp``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, Optional, Union

import numpy as np

from ..errors import ArgumentError, RuleError
from .engine import Engine
from .results import Alert, Stats
from .rule import TYPES, Correlation, parse_correlation, parse_timespan

__all__ = ["Correlation", "Alert", "Stats", "Correlator", "parse_correlation", "order_correlations",
           "lateness_ms", "TYPES"]


def lateness_ms(value: Any) -> int:
    """Allowed lateness: seconds (a number) or a timespan (``"30s"``, ``"5m"``) -> milliseconds."""
    if isinstance(value, bool):
        raise ArgumentError(f"lateness must be seconds or a timespan such as '5m', not {value!r}")
    if isinstance(value, (int, float)):
        if not 0 <= value < 1e12:
            raise ArgumentError(f"lateness must be a non-negative number of seconds: {value!r}")
        return int(value * 1000)
    try:
        return parse_timespan(value, allow_zero=True)
    except ValueError as e:
        raise ArgumentError(f"lateness: {e}") from None


def order_correlations(corrs: list[Correlation], rules: list) -> list[Correlation]:
    """``corrs`` with each correlation after the correlations it names; every reference checked.

    A reference to no rule or correlation of the set, and a cycle, are :class:`RuleError`.
    """
    rule_refs = {r.id for r in rules} | {r.info.extra.get("name") for r in rules if r.info.extra.get("name")}
    by_ref: dict[str, Correlation] = {}
    for c in corrs:
        by_ref[c.id] = c
        if c.name:
            by_ref.setdefault(c.name, c)
    for c in corrs:
        for ref in c.rules:
            if ref not in rule_refs and ref not in by_ref:
                where = c.info.source if c.info is not None and c.info.source else "the RuleSet"
                raise RuleError(f"correlation {c.id!r} ({c.title}, {where}) names rule {ref!r}, "
                                f"which is not in the RuleSet (by id or name)")
    out: list[Correlation] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(c: Correlation, path: list[str]) -> None:  # depth is the chain length, a handful
        s = state.get(c.id)
        if s == 2:
            return
        if s == 1:
            raise RuleError(f"correlation rules name each other in a cycle: {' -> '.join(path + [c.id])}")
        state[c.id] = 1
        for ref in c.rules:
            if ref not in rule_refs and ref in by_ref:
                visit(by_ref[ref], path + [c.id])
        state[c.id] = 2
        out.append(c)

    for c in corrs:
        visit(c, [])
    return _in_profiles(out, rules)


def rule_field_map(rule: Any) -> Optional[Callable[[str], str]]:
    """Sigma field name -> event field name for a Sigma rule loaded under a profile that renames
    fields (as its detection was mapped: by its logsource category to S1 names, then to the
    profile's); ``None`` when names are kept (``profile=None``, ``"sysmon"``, not a Sigma rule,
    or a profile given as an object or file, which a rule records only by name)."""
    extra = rule.info.extra
    name = extra.get("profile")
    if extra.get("format") != "sigma" or name in (None, "sysmon"):
        return None
    from ..mapping import PROFILES, SIGMA_TO_S1
    from ..sigma.logsource import CATEGORY_ALIASES

    profile = PROFILES.get(name)
    if profile is None:
        return None
    cat = (extra.get("logsource") or {}).get("category") or ""
    table = SIGMA_TO_S1.get(CATEGORY_ALIASES.get(cat, cat), {})
    if name == "s1":
        return lambda f: table.get(f, f)
    return lambda f: profile.from_s1(table.get(f, f))


def _in_profiles(corrs: list[Correlation], rules: list) -> list[Correlation]:
    """The correlations with their group-by and ``field`` names mapped, per named rule, as the
    named rule's detection was (``profile=``): the event names land in ``aliases`` (a name
    already aliased maps its alias target). A reference to a correlation maps as that
    correlation's first named rule does."""
    maps: dict[str, Optional[Callable[[str], str]]] = {}
    for r in rules:
        fn = rule_field_map(r)
        maps[r.id] = fn
        if r.info.extra.get("name"):
            maps.setdefault(r.info.extra["name"], fn)
    for c in corrs:  # each after those it names: a chain's map is known when needed
        fn = maps.get(c.rules[0])
        maps.setdefault(c.id, fn)
        if c.name:
            maps.setdefault(c.name, fn)
    out = []
    for c in corrs:
        if c.mapped or all(maps.get(ref) is None for ref in c.rules):
            out.append(c)
            continue
        aliases = {k: dict(v) for k, v in c.aliases.items()}
        for name in dict.fromkeys(c.group_by + c.field):
            per = aliases.get(name, {})
            for ref in c.rules:
                fn = maps.get(ref)
                target = per.get(ref, name)
                if fn is not None and fn(target) != target:
                    per[ref] = fn(target)
            if per:
                aliases[name] = per
        out.append(dataclasses.replace(c, aliases=aliases, mapped=True))
    return out


class Correlator:
    """The alerts of :meth:`matcher.RuleSet.correlate` (iterate it once); ``stats`` counts the rest.
    ``dicts``: ``(events, batch, match)``, ``match(chunk, base)`` the core's ``(rows, rules, _)``
    for a list of events; ``arrow``: the data of :meth:`matcher.RuleSet.correlate_arrow`."""

    def __init__(self, ruleset: Any, timestamp: str, lateness: Any, max_groups: int, action: str,
                 dicts: Optional[tuple] = None, arrow: Any = None):
        self.ruleset = ruleset
        self.stats = Stats()
        self.engine = Engine(ruleset, timestamp, lateness_ms=lateness_ms(lateness), max_groups=max_groups,
                             action=action, stats=self.stats)
        self._dicts = dicts
        self._arrow = arrow

    def __iter__(self) -> Iterator[Alert]:
        engine = self.engine
        if self._dicts is not None:
            events, batch, match = self._dicts
            it = iter(events)
            base = 0
            while True:
                chunk = list(islice(it, batch))
                if not chunk:
                    break
                rows, rules, _ = match(chunk, base)
                yield from engine.feed(base, rows, rules, len(chunk), chunk)
                base += len(chunk)
        else:
            for base, batch, rows, rules in self.ruleset._arrow_batches(self._arrow):
                yield from engine.feed(base, rows, rules, batch.num_rows, arrow_rows(batch, rows[engine.relevant[rules]], engine.fields))
        yield from engine.flush()


def _column_values(arr: Any, encode: bool = True) -> list:
    """An Arrow array's values as a list; a string column through its dictionary (one str per
    distinct value, shared by its rows) unless ``encode`` is false (the time field)."""
    import pyarrow as pa

    if encode and arr.type in (pa.string(), pa.large_string()) and len(arr) > 64:
        enc = arr.dictionary_encode()
        if len(enc.dictionary) * 2 < len(arr):
            words = np.array(enc.dictionary.to_pylist() + [None], dtype=object)
            idx = enc.indices.fill_null(len(enc.dictionary)).to_numpy(zero_copy_only=False)
            return words[idx].tolist()
    return arr.to_pylist()


def _times(arr: Any) -> tuple:
    """The time column of the matched rows: ``(epoch ms of each row or None, values)``. A string
    column's ISO 8601 times are read in C from its buffer (``_correlate.arrow_times_ms``: no
    ``str`` per row); ``values`` then holds only the rows that reader leaves to Python (None
    elsewhere). Any other column: ``(None, its values)``."""
    from .. import _correlate
    from .._arrow import _is_str, _strings, _view

    if not _is_str(arr.type):
        return None, _column_values(arr, encode=False)
    offsets, width, offset, data = _strings(arr)
    validity = _view(arr.buffers()[0]) if arr.null_count else None
    times = _correlate.arrow_times_ms(validity, arr.offset, offsets, width, offset, data, len(arr))
    values: list = [None] * len(arr)
    left = np.flatnonzero(times == _correlate.MISSING_MS)
    if len(left):
        for k, v in zip(left.tolist(), arr.take(left).to_pylist()):
            values[k] = v
    return times, values


def _distinct(rows: np.ndarray) -> np.ndarray:
    """The distinct rows, in order: the core gives them sorted, so one comparison with the row
    before (np.unique would sort or hash them again); any other order through np.unique."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        return rows
    if not (rows[1:] >= rows[:-1]).all():
        return np.unique(rows)
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))]


def arrow_rows(batch: Any, rows: np.ndarray, fields: Optional[tuple] = None) -> Union[dict, tuple]:
    """The given rows of a record batch for the engine: row -> mapping (converted together,
    nested structs as dicts); or, with ``fields`` (what correlating reads) when each is one
    column of the batch or a plain name it lacks (absent either way), just those columns:
    ``(distinct rows, {field: list of values})``, strings decoded once per distinct value
    (``fields[0]`` is the time field: not dictionary-encoded). A
    dotted name that is no column (a path into a struct) converts whole rows."""
    from .._arrow import check_whole, validated_layout

    uniq = _distinct(rows)
    if len(uniq) == 0:
        return {}
    rows_l = uniq.tolist()
    if fields is not None:
        names = batch.schema.names
        have = [f for f in fields if f in names]
        if all(names.count(f) == 1 for f in have) and not any("." in f for f in fields if f not in names):
            # Arrow's take reads the offsets as given: hostile ones are an ArrowDataError, not a crash
            cols = {f: validated_layout(batch.column(f), f) for f in have}
            try:
                values = {f: _column_values(col.take(uniq)) for f, col in cols.items() if f != fields[0]}
                if fields[0] not in cols:
                    return uniq, values
                times, values[fields[0]] = _times(cols[fields[0]].take(uniq))
                return (uniq, values) if times is None else (uniq, values, times)
            except (ValueError, OverflowError, ArithmeticError):
                pass  # converted whole below, with its own fallback
    check_whole(batch)
    try:
        dicts = batch.take(uniq).to_pylist()
    except (ValueError, OverflowError, ArithmeticError):  # a value Python cannot hold: row by row, as text
        from ..inputs import Columns

        whole = Columns(0, batch)
        dicts = [whole.row(i) for i in rows_l]
    return dict(zip(rows_l, dicts))
