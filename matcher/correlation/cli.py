"""``matcher scan --timestamp FIELD``: correlation alerts next to the single matches.

The scan loop hands each chunk's core matches to :class:`ScanCorrelator`; alerts are written as
JSON records with ``"kind": "correlation"`` (single matches get ``"kind": "match"``), and each
contributing event is named by its file and line (or row).
"""

from __future__ import annotations

import bisect
from typing import Any, Callable

import numpy as np

from . import lateness_ms
from .engine import Engine
from .results import Alert

__all__ = ["ScanCorrelator"]


class ScanCorrelator:
    def __init__(self, ruleset: Any, timestamp: str, lateness: Any, max_groups: int,
                 write: Callable[[dict], None], say: Callable[[str], None]):
        self.ruleset = ruleset
        self.engine = Engine(ruleset, timestamp, lateness_ms=lateness_ms(lateness), max_groups=max_groups)
        self.stats = self.engine.stats
        self.write = write
        self.say = say
        self.base = 0
        self.starts: list[int] = []  # first stream index of each chunk
        self.chunks: list[tuple] = []  # (source, unit, line or row of each record fed)
        ids = [r.id for r in ruleset.rules]
        #: rules whose single matches are not written (named by a generate: false correlation)
        self.hidden = {ids[u] for u in np.flatnonzero(~self.engine.emit).tolist()}
        self.shown = 0
        #: the event fields correlating reads (time, group-by, aliases, values)
        self.fields = tuple(dict.fromkeys(
            [timestamp] + [f for c in ruleset.correlations for ref in c.rules for f in c.group_fields(ref)]
            + [a.get(ref, f) for c in ruleset.correlations for f in c.field for ref in c.rules
               for a in [c.aliases.get(f, {})]]))

    def _chunk(self, source: str, unit: str, where: Any, n: int) -> int:
        base = self.base
        self.starts.append(base)
        self.chunks.append((source, unit, where))
        self.base += n
        return base

    def matched(self, source: str, done: Any) -> None:
        """One item's matches (a :class:`matcher.parallel.Matched`): its matched records, each
        with its line or row and the indices of the rules it matches. Stream indices count the
        matched records (the only ones a correlation can use)."""
        from ..parallel import record

        hits = done.hits
        if not hits:
            self.stats.events += done.read
            return
        base = self._chunk(source, done.unit, np.array([h[0] for h in hits], dtype=np.int64), len(hits))
        counts = [len(h[2]) for h in hits]
        rows = np.repeat(np.arange(len(hits), dtype=np.int64), counts)
        rules = np.array([u for h in hits for u in h[2]], dtype=np.int32)

        def event(k: int) -> Any:
            try:
                return record(hits[k][1])
            except Exception:  # noqa: BLE001 - a record that could not be read: it has no time (reported)
                return {}

        self._out(self.engine.feed(base, rows, rules, done.read, event))

    def where(self, index: int) -> dict:
        k = bisect.bisect_right(self.starts, index) - 1
        source, unit, where = self.chunks[k]
        off = index - self.starts[k]
        return {"source": source, unit: int(where[off])}

    def _out(self, results: list[Alert]) -> None:
        for a in results:
            if a.kind == "correlation":
                rec = a.to_dict()
                rec["events"] = [self.where(i) for i in a.events]
                self.write(rec)
                self.shown += 1

    def finish(self) -> None:
        self._out(self.engine.flush())
        st = self.stats
        for index, msg in st.problems:
            self.say(f"{self._pos(index)}: not correlated: {msg}" if index is not None else f"correlation: {msg}")
        if st.no_timestamp + st.late + st.evicted_groups > len(st.problems):
            self.say(f"correlation: {st.no_timestamp + st.late + st.evicted_groups - len(st.problems)} more problem(s) not listed")
        self.say(f"correlation: {st.summary()}")

    def _pos(self, index: int) -> str:
        w = self.where(index)
        return f"{w['source']}:{w['line']}" if "line" in w else f"{w['source']}:row {w['row']}"
