"""The correlation rule record (:class:`Correlation`) and its parser from a Sigma YAML document.

Sigma correlation rules follow the Sigma correlation specification 2.0.2 (2024-11-01) for the
four core types, and its JSON schema and ``tests/correlation`` examples for the value
aggregations (``value_sum``, ``value_avg``, ``value_min``, ``value_max``, ``value_percentile``;
``value_median`` as pySigma and rsigma add it). ``docs/correlation.md`` gives the semantics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field as _dcfield
from typing import Any, Optional

from ..errors import RuleError

__all__ = ["Correlation", "parse_correlation", "TYPES", "VALUE_TYPES", "parse_timespan", "OPS"]

#: Every correlation type matcher runs.
TYPES = ("event_count", "value_count", "temporal", "temporal_ordered",
         "value_sum", "value_avg", "value_min", "value_max", "value_percentile", "value_median")
#: The types that aggregate a numeric ``field``.
VALUE_TYPES = ("value_sum", "value_avg", "value_min", "value_max", "value_percentile", "value_median")

#: Condition operators (the specification's five, and ``neq`` as pySigma and rsigma read it).
OPS = {
    "gt": lambda v, n: v > n,
    "gte": lambda v, n: v >= n,
    "lt": lambda v, n: v < n,
    "lte": lambda v, n: v <= n,
    "eq": lambda v, n: v == n,
    "neq": lambda v, n: v != n,
}

_TIMESPAN = re.compile(r"^\s*(\d+)\s*([smhdwMy])\s*$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000,
            "M": 30 * 86_400_000, "y": 365 * 86_400_000}


def parse_timespan(text: Any, *, allow_zero: bool = False) -> int:
    """``"90m"`` -> milliseconds. The specification's units s, m, h, d (and w, M, y as pySigma reads them)."""
    m = _TIMESPAN.match(str(text)) if isinstance(text, (str, int)) and not isinstance(text, bool) else None
    if m is None:
        raise ValueError(f"timespan {text!r} is not a number followed by s, m, h or d")
    n = int(m.group(1)) * _UNIT_MS[m.group(2)]
    if n <= 0 and not allow_zero:
        raise ValueError(f"timespan {text!r} is not positive")
    return n


@dataclass(frozen=True, eq=False)
class Correlation:
    """One Sigma correlation rule.

    ``rules`` are the references as written (ids or names of rules or other correlations);
    ``group_by`` the group-by names (alias names resolved per rule through ``aliases``:
    alias -> {rule reference -> event field}); ``condition`` a tuple of ``(op, number)``
    (all must hold); ``field`` the value field(s) of ``value_*`` types; ``timespan`` in ms.
    """

    id: str
    title: str
    type: str
    rules: tuple[str, ...]
    timespan: int
    group_by: tuple[str, ...] = ()
    condition: tuple[tuple[str, float], ...] = ()
    field: tuple[str, ...] = ()
    aliases: dict = _dcfield(default_factory=dict)
    percentile: float = 50.0
    generate: bool = False
    name: Optional[str] = None
    level: str = ""
    info: Any = None  # a matcher.record.RuleInfo (author, description, source, ...)
    #: whether ``aliases`` already hold the event names of a profile (see ``order_correlations``)
    mapped: bool = False

    @property
    def author(self) -> str:
        return self.info.author if self.info is not None else ""

    def __repr__(self) -> str:
        return f"Correlation(id={self.id!r}, type={self.type!r}, rules={list(self.rules)!r})"

    def holds(self, value: Optional[float]) -> bool:
        """Whether the aggregate ``value`` meets every condition (``None``: no value, never)."""
        return value is not None and all(OPS[op](value, n) for op, n in self.condition)

    def group_fields(self, ref: str) -> tuple[str, ...]:
        """The event field of each group-by name for events of the rule referenced as ``ref``."""
        return tuple(self.aliases.get(g, {}).get(ref, g) for g in self.group_by)


def _fail(where: str, msg: str) -> RuleError:
    return RuleError(f"{where}: {msg}")


def parse_correlation(doc: dict, *, where: str, source: Optional[str] = None) -> Correlation:
    """A :class:`Correlation` from one YAML document (a mapping with a ``correlation`` key).

    ``where`` names the document in errors (file, line and column of its ``correlation`` key).
    """
    from ..record import RuleInfo

    body = doc.get("correlation")
    if not isinstance(body, dict):
        raise _fail(where, "'correlation' must be a mapping")
    ctype = body.get("type")
    if ctype not in TYPES:
        raise _fail(where, f"correlation type {ctype!r} is not one of {', '.join(TYPES)}")
    refs = body.get("rules")
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r for r in refs):
        raise _fail(where, "'rules' must name one or more rules (ids or names)")
    if ctype in ("temporal", "temporal_ordered") and len(refs) > 63:
        raise _fail(where, f"a {ctype} correlation names at most 63 rules, not {len(refs)}")
    if len(set(refs)) != len(refs):
        raise _fail(where, "'rules' names a rule twice")
    try:
        timespan = parse_timespan(body.get("timespan"))
    except ValueError as e:
        raise _fail(where, str(e)) from None
    group_by = body.get("group-by", [])
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise _fail(where, "'group-by' must be a list of field names")
    aliases = body.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(
            isinstance(a, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in a.items())
            for a in aliases.values()):
        raise _fail(where, "'aliases' must map alias -> {rule name: field}")
    for alias, per_rule in aliases.items():
        unknown = set(per_rule) - set(refs)
        if unknown:
            raise _fail(where, f"alias {alias!r} names {sorted(unknown)}, which 'rules' does not list")
    cond = body.get("condition")
    fields: tuple[str, ...] = ()
    percentile = 50.0
    terms: list[tuple[str, float]] = []
    if cond is None:
        if ctype not in ("temporal", "temporal_ordered"):
            raise _fail(where, f"a {ctype} correlation needs a 'condition'")
        terms = [("gte", float(len(refs)))]  # every named rule
    elif not isinstance(cond, dict):
        raise _fail(where, "'condition' must be a mapping such as {gte: 10}")
    else:
        for k, v in cond.items():
            if k == "field":
                fv = [v] if isinstance(v, str) else v
                if not isinstance(fv, list) or not fv or not all(isinstance(x, str) and x for x in fv):
                    raise _fail(where, "condition 'field' must be a field name or a list of them")
                fields = tuple(fv)
            elif k == "percentile":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                    raise _fail(where, "condition 'percentile' must be a number from 0 to 100")
                percentile = float(v)
            elif k in OPS:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise _fail(where, f"condition {k!r} must be a number, not {v!r}")
                terms.append((k, float(v)))
            else:
                raise _fail(where, f"unknown condition key {k!r} (expected {', '.join(OPS)}, field)")
        if not terms:
            raise _fail(where, "'condition' has no comparison (gt, gte, lt, lte, eq, neq)")
    if ctype == "value_count" or ctype in VALUE_TYPES:
        if not fields:
            raise _fail(where, f"a {ctype} correlation needs 'field' in its condition")
        if ctype in VALUE_TYPES and len(fields) != 1:
            raise _fail(where, f"a {ctype} correlation aggregates one field, not {len(fields)}")
    elif fields:
        raise _fail(where, f"a {ctype} correlation takes no 'field'")
    title = doc.get("title")
    if not isinstance(title, str) or not title:
        raise _fail(where, "a correlation rule needs a 'title'")
    rid = doc.get("id")
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise _fail(where, "'name' must be a string")
    generate = doc.get("generate", body.get("generate", False))
    if not isinstance(generate, bool):
        raise _fail(where, "'generate' must be true or false")
    level = doc.get("level") or ""
    rid = str(rid) if rid is not None else (name or title)
    info = RuleInfo(
        id=rid, title=title, author=str(doc.get("author") or ""), date=str(doc.get("date") or ""),
        level=str(level), tags=tuple(str(t) for t in doc.get("tags") or ()),
        description=" ".join(str(doc.get("description") or "").split()),
        references=tuple(str(r) for r in doc.get("references") or ()),
        falsepositives=tuple(str(f) for f in (doc.get("falsepositives") or ())),
        source=source, extra={"format": "sigma-correlation", "name": name, "status": str(doc.get("status") or "")},
    )
    return Correlation(id=rid, title=title, type=ctype, rules=tuple(refs), timespan=timespan,
                       group_by=tuple(group_by), condition=tuple(terms), field=fields,
                       aliases={k: dict(v) for k, v in aliases.items()}, percentile=percentile,
                       generate=generate, name=name, level=str(level), info=info)
