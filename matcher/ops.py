"""What each operator means, in plain Python: the vocabulary the reference evaluator runs.

One registry, :data:`REFERENCE`, maps every :class:`~matcher.ir.Op` to its predicate over a
field's text. ``tests/test_ops_registry.py`` walks it, so an operator cannot be added to the IR
without a meaning here and a lowering in the compiler. This module is the executable form of
``docs/semantics.md``; it depends on :mod:`matcher.ir` only.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Callable, Optional

from .ir import Glob, Op, Pred

__all__ = ["fold", "field_texts", "scalar_text", "to_number", "REFERENCE", "EVENT_REFERENCE", "compile_regex",
           "TIMESTAMP_PARTS", "parse_timestamp", "timestamp_part"]


def fold(s: str) -> str:
    """Case-insensitive comparison key: Python's full Unicode ``str.lower()``, nothing else."""
    return s.lower()


def scalar_text(value: Any) -> Optional[str]:
    """A scalar's text, or ``None`` when ``value`` is not a scalar (so the field is absent).

    ``str`` as it is, ``True``/``False`` as ``"true"``/``"false"``, ``int``/``float`` as their
    decimal ``repr``. Subclasses count as their base type. An ``int`` with more digits than
    ``sys.get_int_max_str_digits()`` allows has no text.
    """
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return int.__repr__(value)
        except ValueError:  # over the int/str digit limit
            return None
    if isinstance(value, float):
        return float.__repr__(value)
    return None


_MISSING = object()


def lookup(event: Mapping, name: str) -> Any:
    """The raw value of field ``name``: the exact key, else (for dotted names) a path."""
    value = event.get(name, _MISSING)
    if value is not _MISSING:
        return value
    if "." not in name:
        return None
    node: Any = event
    for part in name.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part, _MISSING)
        if node is _MISSING:
            return None
    return node


def field_texts(event: Mapping, name: str) -> Optional[list[str]]:
    """The texts of field ``name`` in ``event``, or ``None`` when the field is absent.

    A scalar gives one text; a list gives the texts of its scalar elements (absent when it
    has none); ``None``, a mapping, or anything else is absent.
    """
    value = lookup(event, name)
    if isinstance(value, list):
        texts = [t for t in map(scalar_text, value) if t is not None]
        return texts or None
    if value is None or isinstance(value, Mapping):
        return None
    text = scalar_text(value)
    return None if text is None else [text]


def to_number(text: str) -> Optional[float]:
    """``float(text)``, or ``None`` when the text is not a number (NaN compares false anyway)."""
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


@lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> "re.Pattern[str]":
    """``re.compile``, without the FutureWarnings ``re`` gives for patterns such as ``[[a]``
    (their meaning today is what the rule means)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(pattern)


@lru_cache(maxsize=4096)
def _glob_regex(glob: Glob) -> "re.Pattern[str]":
    folded = Glob.of(*(fold(p) if isinstance(p, str) else p for p in glob.parts))
    return re.compile(folded.regex(), re.DOTALL)


@lru_cache(maxsize=4096)
def network(value: str) -> "ipaddress.IPv4Network | ipaddress.IPv6Network":
    """The network of a ``CIDR`` literal (host bits set are allowed, as in Sigma)."""
    return ipaddress.ip_network(value, strict=False)


def _in_network(text: str, value: str) -> bool:
    """The text is exactly one IP address (``ipaddress.ip_address``) inside the network."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    net = network(value)
    return addr.version == net.version and addr in net


#: Sigma's timestamp parts (the ``minute`` ... ``year`` modifiers) -> the part of a UTC datetime.
TIMESTAMP_PARTS: dict[str, Callable[[Any], int]] = {
    "minute": lambda d: d.minute,
    "hour": lambda d: d.hour,
    "day": lambda d: d.day,
    "week": lambda d: d.isocalendar()[1],
    "month": lambda d: d.month,
    "year": lambda d: d.year,
}


@lru_cache(maxsize=65536)
def parse_timestamp(text: str) -> "Optional[datetime.datetime]":
    """A field's text as a UTC datetime, or ``None``: ISO 8601 (``2024-05-01T13:45:00Z``, a
    space for the ``T``, fractions, offsets; without an offset the time is UTC), or a number of
    seconds since the epoch (milliseconds when it is above 10^11)."""
    import datetime

    t = text.strip()
    try:
        d = datetime.datetime.fromisoformat(t)
    except ValueError:
        n = to_number(t)
        if n is None or n != n:
            return None
        try:
            return datetime.datetime.fromtimestamp(n / 1000 if abs(n) > 1e11 else n, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return d.replace(tzinfo=datetime.timezone.utc) if d.tzinfo is None else d.astimezone(datetime.timezone.utc)


def timestamp_part(text: str, part: str) -> Optional[int]:
    """The ``part`` (a key of :data:`TIMESTAMP_PARTS`) of the timestamp ``text``, or ``None``."""
    d = parse_timestamp(text)
    return None if d is None else TIMESTAMP_PARTS[part](d)


def _timepart(text: str, value: str) -> bool:
    part, _, number = value.partition("=")
    got = timestamp_part(text, part)
    return got is not None and str(got) == number


def _cmp(test: Callable[[float, float], bool]) -> Callable[[str, Any], bool]:
    def pred(text: str, value: Any) -> bool:
        x = to_number(text)
        y = to_number(value)
        return x is not None and y is not None and test(x, y)

    return pred


#: Op -> predicate(text_of_field, literal) -> bool. The field is known to be present.
REFERENCE: dict[Op, Callable[[str, Any], bool]] = {
    Op.CONTAINS: lambda x, v: fold(v) in fold(x),
    Op.STARTSWITH: lambda x, v: fold(x).startswith(fold(v)),
    Op.ENDSWITH: lambda x, v: fold(x).endswith(fold(v)),
    Op.EQUALS: lambda x, v: fold(x) == fold(v),
    Op.GLOB: lambda x, v: _glob_regex(v).fullmatch(fold(x)) is not None,
    Op.REGEX: lambda x, v: compile_regex(v).search(x) is not None,
    Op.NOT_EMPTY: lambda x, v: x != "",
    Op.EXISTS: lambda x, v: True,
    Op.LT: _cmp(lambda a, b: a < b),
    Op.LE: _cmp(lambda a, b: a <= b),
    Op.GT: _cmp(lambda a, b: a > b),
    Op.GE: _cmp(lambda a, b: a >= b),
    Op.CIDR: lambda x, v: _in_network(x, v),
    Op.TIMEPART: lambda x, v: _timepart(x, v),
}


#: Op -> predicate(event, pred) -> bool, for the whole-event operators of ``ir.EVENT_OPS``
#: (the predicate reads whatever fields of the event it needs; absence rules are its own).
EVENT_REFERENCE: dict[Op, Callable[[Mapping, Pred], bool]] = {}


# -- Sigma's whole-event predicates (docs/sigma.md) ---------------------------------------------


def _fieldref(test: Callable[[str, str], bool]) -> Callable[[Mapping, Pred], bool]:
    def pred(event: Mapping, p: Pred) -> bool:
        mine = field_texts(event, p.field)
        theirs = field_texts(event, p.value)
        if mine is None or theirs is None:
            return False
        return any(test(fold(a), fold(b)) for a in mine for b in theirs)

    return pred


def string_values(event: Mapping):
    """Every ``str`` value of the event, at any depth (lists and nested mappings walked)."""
    stack: list = [event]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield str.__str__(node)
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _keyword(event: Mapping, p: Pred) -> bool:
    rx = _glob_regex(p.value)
    return any(rx.fullmatch(fold(s)) is not None for s in string_values(event))


EVENT_REFERENCE.update(
    {
        Op.FIELDREF: _fieldref(lambda a, b: a == b),
        Op.FIELDREF_CONTAINS: _fieldref(lambda a, b: b in a),
        Op.FIELDREF_STARTSWITH: _fieldref(lambda a, b: a.startswith(b)),
        Op.FIELDREF_ENDSWITH: _fieldref(lambda a, b: a.endswith(b)),
        Op.KEYWORD: _keyword,
    }
)
