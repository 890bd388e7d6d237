"""The fast correlator: the compiled core's matches feed per-group windows kept in C.

The windows live in :mod:`matcher._correlate` (``src/_correlate.pyx``): per correlation, live
groups are C structs interned by their group key and chained in order of last update (the
oldest first), so groups whose window has emptied with time are dropped from the front and the
``max_groups`` cap evicts the least recently updated group (counted and reported). A group's
window is a buffer of entries (time in ms, stream index, rule bitmask | value id | number),
oldest first; a window of one entry is kept inside the group. Counts the condition reads are
kept up to date as entries come and go.

Events are taken from the core in chunks; only events matched by a rule that some correlation
names are looked at again (their time, group and value: one dict lookup each, ISO 8601 times
parsed in C; anything unusual goes through :mod:`.values`, as the reference correlator reads
it). They pass through a reorder buffer (a heap) that releases them in event-time order once no
accepted event can come before them: an event more than ``lateness`` older than the newest
accepted one is late (reported, counted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Optional, Union

import numpy as np

from .. import _correlate
from ..errors import ArgumentError
from ..ops import lookup
from .results import Alert, Stats
from .values import TimeReader, count_value, group_value, numeric_value

__all__ = ["Engine"]


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
        self.stats = stats if stats is not None else Stats()
        self.rules = ruleset.rules
        corrs = list(ruleset.correlations)  # a correlation after those it names
        ref_rule, ref_corr = ruleset._references()
        n = len(self.rules)
        feeds: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # base rule -> (corr, rank)
        parents: list[tuple[int, int, int]] = []  # (corr, parent corr, rank in the parent's rules)
        hidden = np.zeros(n, dtype=bool)
        for ci, c in enumerate(corrs):
            for rank, ref in enumerate(c.rules):
                if ref in ref_rule:
                    u = ref_rule[ref]
                    feeds[u].append((ci, rank))
                    hidden[u] |= not c.generate
                else:
                    parents.append((ref_corr[ref], ci, rank))
        #: the event fields correlating reads (time, group-by through aliases, values)
        self.fields = tuple(dict.fromkeys(
            [timestamp] + [f for c in corrs for ref in c.rules for f in c.group_fields(ref)]
            + [c.aliases.get(f, {}).get(ref, f) for c in corrs for f in c.field for ref in c.rules]))
        self.relevant = np.array([bool(f) for f in feeds] or [False], dtype=bool)[:n]
        self.emit = ~hidden
        #: per rule: what its single-match alerts carry, None when correlation-only
        self._match_info = [(r.id, r.title, r.level) if e else None for r, e in zip(self.rules, self.emit.tolist())]
        self._c = _correlate.Engine(corrs, feeds, timestamp, int(lateness_ms), max_groups, action == "reset",
                                    self.stats, (TimeReader(), lookup, group_value, count_value, numeric_value, Alert))
        for ci, pci, rank in parents:
            self._c.add_parent(ci, pci, rank)

    # -- input --------------------------------------------------------------------------------
    def feed(self, base: int, rows: np.ndarray, rules: np.ndarray, n_events: int,
             events: Union[list, dict, Callable[[int], Mapping]]) -> list[Alert]:
        """One chunk's matches from the core: ``rows``/``rules`` (chunk-local, by row), the chunk's
        size, and its events (a list; a dict chunk row -> event holding at least the rows some
        correlation reads; or a function of the chunk row). Returns single matches, then released alerts."""
        self.stats.events += n_events
        out: list[Alert] = []
        if len(rows):
            if self.emit[rules].any():
                _correlate.match_alerts(Alert, base, np.ascontiguousarray(rows, dtype=np.int64),
                                        np.ascontiguousarray(rules, dtype=np.int64), self._match_info, out)
            rel = self.relevant[rules]
            rows = np.ascontiguousarray(rows[rel], dtype=np.int64)
            rules = np.ascontiguousarray(rules[rel], dtype=np.int64)
        else:
            rows = rules = np.zeros(0, dtype=np.int64)
        self._c.feed(base, rows, rules, n_events, events, out)
        return out

    def flush(self) -> list[Alert]:
        """The end of the stream: release every held event."""
        out: list[Alert] = []
        self._c.flush(out)
        return out
