"""What a correlation reads from one event: its time, its group, its value.

One home for these rules, shared by the reference correlator and the fast engine (the two
differ in how they keep windows, never in what an event says). ``docs/correlation.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional, Union

from ..ops import lookup, scalar_text

__all__ = ["EPOCH_MS_ABOVE", "timestamp_ms", "TimeReader", "to_datetime", "group_value", "count_value", "numeric_value",
           "percentile"]

#: A number above this is epoch milliseconds, else epoch seconds (1e11 s is the year 5138;
#: 1e11 ms is March 1973).
EPOCH_MS_ABOVE = 1e11

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z: what datetime can show


def timestamp_ms(value: Any) -> Union[int, str]:
    """Epoch milliseconds (int) of a timestamp value, or a message saying why it has none.

    - ``datetime``: naive means UTC; aware is converted.
    - ``int``/``float`` (not bool): epoch seconds, or milliseconds when above
      :data:`EPOCH_MS_ABOVE`; fractions of a millisecond are dropped (floor).
    - ``str``: ISO 8601 (``datetime.fromisoformat``, which reads ``Z``, offsets, fractions,
      ``T`` or space); no zone means UTC. A numeric string is *not* a timestamp.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            return f"timestamp {value[:64]!r} is not ISO 8601"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return f"timestamp {value!r} is not a finite number"
        ms = math.floor(value if value > EPOCH_MS_ABOVE else value * 1000)
        if not -_MAX_MS <= ms <= _MAX_MS:
            return f"timestamp {value!r} is out of range"
        return int(ms)
    elif value is None:
        return "no timestamp (field absent or null)"
    else:
        return f"timestamp of type {type(value).__name__} is not a time"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class TimeReader:
    """:func:`timestamp_ms` with a shortcut for a stream's usual ISO 8601 form
    (``YYYY-MM-DDTHH:MM:SS``, then ``.fff`` or ``.ffffff`` or nothing, then ``Z`` or nothing):
    the whole second is parsed once and reused while the next strings share it, and the
    fraction's milliseconds are remembered per distinct tail (at most :data:`TAILS` of them).
    Same results as :func:`timestamp_ms` (``tests/test_correlation.py`` checks it)."""

    TAILS = 4096
    __slots__ = ("head", "second", "tails")

    def __init__(self) -> None:
        self.head = None
        self.second = 0
        self.tails: dict[str, int] = {}

    def __call__(self, value: Any) -> Union[int, str]:
        if value.__class__ is not str:
            return timestamp_ms(value)
        head = value[:19]
        if head != self.head:
            if len(head) != 19 or head[10] != "T":
                return timestamp_ms(value)
            second = timestamp_ms(head)
            if second.__class__ is not int:
                return timestamp_ms(value)
            self.head, self.second = head, second
        tail = value[19:]
        ms = self.tails.get(tail)
        if ms is None:
            ms = _tail_ms(tail)
            if ms is None:
                return timestamp_ms(value)
            if len(self.tails) < self.TAILS:
                self.tails[tail] = ms
        return self.second + ms


def _tail_ms(tail: str) -> Optional[int]:
    """Milliseconds of ``""``, ``"Z"``, ``".fff"``, ``".ffffff"`` (each optionally with ``Z``); else None."""
    if tail.endswith("Z"):
        tail = tail[:-1]
    if tail == "":
        return 0
    frac = tail[1:]
    if tail[0] == "." and len(frac) in (3, 6) and frac.isdigit() and frac.isascii():
        return int(frac[:3])
    return None


def to_datetime(ms: int) -> datetime:
    """Epoch milliseconds -> an aware UTC ``datetime``."""
    from datetime import timedelta

    return _EPOCH + timedelta(milliseconds=ms)


def group_value(event: Mapping, name: str) -> Optional[str]:
    """A group-by field's value: the scalar's text (as single-event matching reads it); ``None``
    when absent, null, a list or a mapping (rsigma groups such events under "no value")."""
    return scalar_text(lookup(event, name))


def count_value(event: Mapping, names: tuple[str, ...]) -> Optional[tuple]:
    """The value ``value_count`` counts: one text per field; ``None`` (the event is not counted)
    when any field is absent, null, a list or a mapping."""
    out = []
    for n in names:
        t = scalar_text(lookup(event, n))
        if t is None:
            return None
        out.append(t)
    return tuple(out)


def numeric_value(event: Mapping, name: str) -> Optional[float]:
    """The number ``value_sum``/``avg``/``min``/``max``/``percentile`` aggregate: an int or float
    (not bool), or a string that reads as a finite decimal number; else ``None`` (not counted)."""
    v = lookup(event, name)
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v) if not isinstance(v, int) or abs(v) < 2**63 else None
    elif isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
    else:
        return None
    return f if f is not None and math.isfinite(f) else None


def percentile(sorted_values: list[float], p: float) -> Optional[float]:
    """Linear interpolation between closest ranks (numpy's default, rsigma's choice)."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return sorted_values[0]
    rank = p / 100.0 * (n - 1)
    lo = int(math.floor(rank))
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)
