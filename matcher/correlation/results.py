"""What correlating yields (:class:`Alert`) and what it counts (:class:`Stats`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from .values import to_datetime

__all__ = ["Alert", "Stats", "MAX_PROBLEMS"]

#: Problems (events without a usable timestamp, late events, evicted groups) kept with their
#: position; past this many only the counters grow.
MAX_PROBLEMS = 1000


@dataclass(slots=True)
class Alert:
    """A correlation that met its condition (``kind == "correlation"``), or, for rules that are
    not correlation-only, one single-event match (``kind == "match"``: ``events`` is that one
    event, ``group`` empty, ``value``/``start``/``end`` ``None``).

    The engine's alerts are not tracked by Python's cycle collector (they hold only strings,
    numbers and a dict of group values, so they can be in no reference cycle; keeping millions
    of them would otherwise make every full collection walk them): a cycle made through one by
    its owner (``alert.group["me"] = alert``) is never collected."""

    kind: str
    rule_id: str
    title: str
    level: str
    type: str  # the correlation type, or "match"
    group: dict = field(default_factory=dict)
    start_ms: Optional[int] = None
    end_ms: Optional[int] = None
    value: Optional[float] = None
    events: tuple[int, ...] = ()

    @property
    def start(self) -> Optional[datetime]:
        """Time (UTC) of the first event counted."""
        return None if self.start_ms is None else to_datetime(self.start_ms)

    @property
    def end(self) -> Optional[datetime]:
        """Time (UTC) of the last event counted (the one that made the condition hold)."""
        return None if self.end_ms is None else to_datetime(self.end_ms)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "rule_id": self.rule_id, "rule_title": self.title,
                             "level": self.level or None}
        if self.kind == "correlation":
            d.update(type=self.type, group=self.group, value=self.value,
                     start=self.start.isoformat(), end=self.end.isoformat())
        d["events"] = list(self.events)
        return d


@dataclass
class Stats:
    """Counters of one correlation run. Nothing is dropped without being counted here."""

    events: int = 0          # events read
    correlated: int = 0      # events matched by a rule some correlation names
    no_timestamp: int = 0    # ... of which had no usable timestamp (reported, not correlated)
    late: int = 0            # ... of which came later than the allowed lateness (reported, not correlated)
    no_value: int = 0        # events a value_* / value_count correlation could not count (field absent or not a value)
    alerts: int = 0
    expired_groups: int = 0  # groups whose window emptied with time (normal)
    evicted_groups: int = 0  # live groups dropped by the max_groups cap (reported)
    live_groups: int = 0
    peak_groups: int = 0
    problems: list = field(default_factory=list)  # (stream index or None, message), at most MAX_PROBLEMS

    def problem(self, index: Optional[int], message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((index, message))

    def summary(self) -> str:
        return (f"{self.events} events, {self.correlated} correlated ({self.no_timestamp} without a usable timestamp, "
                f"{self.late} late), {self.no_value} without a value to count, {self.alerts} alerts; "
                f"groups: {self.peak_groups} peak live, {self.expired_groups} expired, {self.evicted_groups} evicted by the cap")
