"""The public objects: :class:`Rule` and :class:`RuleSet`, and the functions that make rules."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from . import ir as _ir
from ._files import RULE_SUFFIXES, archive_members, read_rule_text, rule_files
from ._notes import say
from .errors import ArgumentError, ArrowDataError, MatcherError, RegexBudgetExceeded, RegexBudgetWarning, RuleError
from . import _core
from .compiler import compile_plan, py_callback
from .ops import regex_engine
from .record import RuleInfo, RuleRecord
from .s1ql import cards as _cards
from .s1ql import parse, to_s1ql

__all__ = ["Rule", "RuleSet", "compile", "load", "load_rules", "builtin", "builtin_names"]


if TYPE_CHECKING:  # imported where used: loading matcher does not load the correlation engine
    from .correlation import Correlation, Correlator
    from .mapping import Profile

class Rule:
    """One compiled rule: its IR, its metadata and a matching program.

    ``Rule.query`` is the canonical S1QL text (see :func:`matcher.s1ql.to_s1ql`); the text the
    rule was written in is ``Rule.source_query``.
    """

    __slots__ = ("ir", "info", "source_query", "_query", "_set")

    def __init__(self, node: _ir.Node, info: RuleInfo, source_query: Optional[str] = None):
        _ir.validate(node)
        self.ir = node
        self.info = info
        self.source_query = source_query
        self._query: Optional[str] = None
        self._set: Optional[RuleSet] = None

    # -- metadata ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.info.id

    @property
    def title(self) -> str:
        return self.info.title

    @property
    def author(self) -> str:
        return self.info.author

    @property
    def level(self) -> str:
        return self.info.level

    @property
    def query(self) -> str:
        if self._query is None:
            self._query = to_s1ql(self.ir)
        return self._query

    def __repr__(self) -> str:
        return f"Rule(id={self.id!r}, title={self.title!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and other.info == self.info and other.ir == self.ir

    def __hash__(self) -> int:
        return hash((self.info.id, self.ir))

    def __reduce__(self) -> tuple:
        # The IR and the metadata are plain data; the compiled program is rebuilt on demand.
        return (Rule, (self.ir, self.info, self.source_query))

    # -- matching ----------------------------------------------------------------------------
    def _ruleset(self) -> "RuleSet":
        if self._set is None:
            self._set = RuleSet([self])
        return self._set

    def match(self, event: Mapping) -> bool:
        """Whether this rule matches ``event`` (a mapping, as decoded from JSON)."""
        return bool(self._ruleset().match(event, _method="Rule.match"))

    def match_many(self, events: Iterable[Mapping]):
        """A numpy bool array: the verdict on each event."""
        return self._ruleset()._match_many_one(_events_arg(events, "Rule.match_many"))

    def match_arrow(self, data: Any):
        """A numpy bool array: the verdict on each row of a pyarrow Table or RecordBatch."""
        return self._ruleset()._match_arrow_one(_arrow_arg(data, "Rule.match_arrow"))


class RuleSet:
    """Many rules compiled together; a rule's verdict never depends on its neighbours."""

    def __init__(self, rules: Iterable[Union[Rule, str, "Correlation"]]):
        from .correlation import Correlation, order_correlations

        items: list[Rule] = []
        corrs: list[Correlation] = []
        seen: dict[str, Any] = {}
        for r in rules:
            if isinstance(r, str):
                r = compile(r)
            if not isinstance(r, (Rule, Correlation)):
                raise TypeError(f"RuleSet takes Rule or Correlation objects or query strings, not {type(r).__name__}")
            if r.id in seen:
                raise MatcherError(f"two rules share the id {r.id!r}: {seen[r.id].info.source or seen[r.id].title!r} and {r.info.source or r.title!r}")
            seen[r.id] = r
            (corrs if isinstance(r, Correlation) else items).append(r)
        self.rules: tuple[Rule, ...] = tuple(items)
        #: the correlation rules, each after the correlations it names
        self.correlations: tuple[Correlation, ...] = tuple(order_correlations(corrs, items))
        self._ids = tuple(r.id for r in items)
        self._prog: Optional[_core.Program] = None
        self._plan = None
        #: Budget overruns of backtracking regexes (opted in) while matching: each one a
        #: predicate taken as false for one value of one event, and a RegexBudgetWarning.
        self.regex_overruns = 0
        self._overrun_lock = threading.Lock()
        self._pending = threading.local()  # overruns of the core call running on this thread
        self._program  # compile now: errors and cost belong to construction

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __repr__(self) -> str:
        more = f", {len(self.correlations)} correlations" if self.correlations else ""
        return f"RuleSet({len(self.rules)} rules{more})"

    def __reduce__(self) -> tuple:
        """Pickled as its rules: unpickling compiles them again (the core program holds C
        tables and a Python callback, which do not pickle), so ``multiprocessing``, Ray,
        Dask and Spark can ship a RuleSet; compile it once per worker, not per task."""
        return (RuleSet, (self.rules + self.correlations,))

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names the rules read: an event's other fields never change a verdict,
        unless :attr:`reads_whole_events` (then every field may)."""
        prog = self._program
        return tuple(n for f, n in enumerate(prog.field_names) if f != prog.strings_field)

    @property
    def reads_whole_events(self) -> bool:
        """Whether some rule reads every value of an event (a Sigma keyword: any string value
        at any depth), so that a reader must decode whole records, not only :attr:`fields`."""
        return self._program.strings_field >= 0

    # -- matching (the compiled core) ----------------------------------------------------------
    def match(self, event: Mapping, *, _method: str = "RuleSet.match") -> list[str]:
        """Ids of the rules that match ``event``, in the RuleSet's order."""
        if not isinstance(event, Mapping):
            hint = f"; for many events use {_method}_many" if _method == "Rule.match" else \
                "; for many events use scan or match_arrays"
            raise ArgumentError(f"{_method} takes one event (a mapping such as a dict), "
                                f"but was given {_kind(event)}{hint if _iterable(event) else ''}")
        ids = self._ids
        found = self._program.match_one(event)
        self._report_overruns(0)
        return [ids[i] for i in found]

    def scan(self, events: Iterable[Mapping], *, batch: int = 8192) -> Iterator[tuple[int, str]]:
        """``(event_index, rule_id)`` for every match, in event order then rule order.

        Events are consumed ``batch`` at a time, so a generator of any length streams. If the
        iterable raises, the matches of every event read before the failure are yielded
        first, then the error propagates. A wrong argument raises
        :class:`~matcher.errors.ArgumentError` here, not when iterated.
        """
        events = _events_arg(events, "RuleSet.scan")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ArgumentError(f"RuleSet.scan: batch must be a positive int, not {batch!r}")
        return self._scan(events, batch)

    def _scan(self, events: Iterable[Mapping], batch: int) -> Iterator[tuple[int, str]]:
        ids = self._ids
        it = iter(events)
        base = 0
        while True:
            chunk: list = []
            failure: Optional[BaseException] = None
            try:
                chunk.extend(islice(it, batch))  # keeps what was read if the iterator raises
            except Exception as exc:
                failure = exc
            if chunk:
                rows, rules, _ = _events_call(self._program.match_events, chunk, "RuleSet.scan", base)
                self._report_overruns(base)
                for r, u in zip(rows.tolist(), rules.tolist()):
                    yield base + r, ids[u]
                base += len(chunk)
            if failure is not None:
                raise failure
            if len(chunk) < batch:
                return

    def scan_arrow(self, data: Any, *, threads: int = 1) -> Iterator[tuple[int, str]]:
        """``(row_index, rule_id)`` for every match in a pyarrow Table, RecordBatch, or an
        iterable of them (a ``RecordBatchReader``), rows numbered across batches.

        With ``threads=1`` each batch's matches are yielded before the next batch is read, so if
        reading fails every match before the failure has reached the caller. ``threads > 1``
        matches slices of the data on that many threads (the core releases the GIL while it
        reads Arrow string columns; see docs/scale.md for what still takes it); an iterable of
        batches is then read whole first. The output is the same, in the same order, at every
        ``threads``. Buffers that contradict their metadata, and field names two columns share,
        raise :class:`~matcher.errors.ArrowDataError`. The argument is checked at the call
        (:class:`~matcher.errors.ArgumentError`), not when the iterator is first read."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ArgumentError(f"RuleSet.scan_arrow: threads must be a positive int, not {threads!r}")
        return self._scan_arrow(_arrow_arg(data, "RuleSet.scan_arrow", batches=True), threads)

    def _scan_arrow(self, data: Any, threads: int) -> Iterator[tuple[int, str]]:
        ids = self._ids
        for rows, rules in self._arrow_arrays(data, threads):
            for r, u in zip(rows.tolist(), rules.tolist()):
                yield r, ids[u]

    def match_arrays(self, events: Iterable[Mapping]):
        """All matches as two numpy arrays: event indices (int64) and rule indices (int32)."""
        events = _events_arg(events, "RuleSet.match_arrays")
        rows, rules, _ = _events_call(self._program.match_events, events, "RuleSet.match_arrays")
        self._report_overruns(0)
        return rows, rules

    # -- correlation ----------------------------------------------------------------------------
    def correlate(self, events: Iterable[Mapping], *, timestamp: str, lateness: Any = 0,
                  max_groups: int = 1_000_000, action: str = "alert", batch: int = 2048) -> "Correlator":
        """The correlation alerts over ``events`` (any iterable of mappings, streamed ``batch`` at a time).

        Iterating the result yields :class:`~matcher.correlation.Alert` objects: every alert of the
        correlation rules, and the single-event matches of the rules no ``generate: false``
        correlation names (``kind == "match"``). ``timestamp`` is the time field; ``lateness`` (seconds,
        or a timespan such as ``"5m"``) how far out of order events may come; ``max_groups`` caps
        the live groups of each correlation (evictions are counted); ``action="reset"`` empties a
        group's window when it fires. ``.stats`` counts what could not be correlated. See
        ``docs/correlation.md``.
        """
        from .correlation import Correlator

        events = _events_arg(events, "RuleSet.correlate")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ArgumentError(f"RuleSet.correlate: batch must be a positive int, not {batch!r}")
        match = self._program.match_events

        def match_chunk(chunk: list, base: int) -> Any:
            return _events_call(match, chunk, "RuleSet.correlate", base)

        return Correlator(self, timestamp, lateness, max_groups, action, dicts=(events, batch, match_chunk))

    def correlate_arrow(self, data: Any, *, timestamp: str, lateness: Any = 0, max_groups: int = 1_000_000,
                        action: str = "alert") -> "Correlator":
        """:meth:`correlate` over a pyarrow Table, RecordBatch or iterable of RecordBatches."""
        from .correlation import Correlator

        return Correlator(self, timestamp, lateness, max_groups, action, arrow=data)

    def _references(self) -> tuple[dict[str, int], dict[str, int]]:
        """What a correlation may name: ids and names of base rules -> index in ``rules``; of
        correlations -> index in ``correlations``."""
        ref_rule: dict[str, int] = {}
        for u, r in enumerate(self.rules):
            ref_rule[r.id] = u
            name = r.info.extra.get("name")
            if name:
                ref_rule.setdefault(name, u)
        ref_corr: dict[str, int] = {}
        for ci, c in enumerate(self.correlations):
            ref_corr[c.id] = ci
            if c.name:
                ref_corr.setdefault(c.name, ci)
        return ref_rule, ref_corr

    def _arrow_batches(self, data: Any):
        """``(first row, batch, rows, rules)`` per record batch of ``data``; rows local to the batch."""
        from ._arrow import record_batches

        base = 0
        for batch in record_batches(data):
            rows, rules = self._match_batch(batch)
            yield base, batch, rows, rules
            base += batch.num_rows

    def match_arrow_arrays(self, data: Any, *, threads: int = 1):
        """All matches in a pyarrow RecordBatch (or Table) as two numpy arrays: row indices
        (int64) and rule indices (int32, into ``RuleSet.rules``), in row order then rule order.

        The array form of :meth:`scan_arrow`, as :meth:`match_arrays` is for mappings: one
        call per record batch, no Python object per row or per match. ``threads`` as for
        :meth:`scan_arrow`.
        """
        data = _arrow_arg(data, "RuleSet.match_arrow_arrays")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ArgumentError(f"RuleSet.match_arrow_arrays: threads must be a positive int, not {threads!r}")
        if threads == 1 and isinstance(data, _pa_record_batch()):
            return self._match_batch(data)
        parts = list(self._arrow_arrays(data, threads))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _match_batch(self, batch: Any, base: int = 0):
        """The core's matches in one record batch (``base``: the index of its first row, for reports)."""
        from ._arrow import column_descriptors

        prog = self._program
        cols = column_descriptors(batch, prog.field_names, prog.strings_field, self._plan.memo_fields)
        found = prog.match_columns(cols, batch.num_rows)
        self._report_overruns(base)
        return found

    def _arrow_arrays(self, data: Any, threads: int) -> Iterator[tuple[Any, Any]]:
        """``(rows, rules)`` per record batch of ``data``, rows counted from the start of ``data``."""
        from ._arrow import record_batches

        if threads == 1:  # streamed: a batch is read only once the one before it is matched
            base = 0
            for batch in record_batches(data):
                rows, rules = self._match_batch(batch, base)
                yield rows + base, rules
                base += batch.num_rows
            return
        batches = _slices(list(record_batches(data)), threads)
        bases = np.cumsum([0] + [b.num_rows for b in batches]).tolist()
        pool = None
        if len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(min(threads, len(batches)), thread_name_prefix="matcher")
        starts = bases[:-1]
        results: Iterable = (map(self._match_batch, batches, starts) if pool is None
                             else pool.map(self._match_batch, batches, starts))
        try:
            for base, (rows, rules) in zip(bases, results):  # pool.map keeps submission order
                yield rows + base, rules
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _match_many_one(self, events: Iterable[Mapping]):
        rows, _, n = _events_call(self._program.match_events, events, "Rule.match_many")
        self._report_overruns(0)
        out = np.zeros(n, dtype=bool)
        out[rows] = True
        return out

    def _match_arrow_one(self, data: Any):
        out = np.zeros(data.num_rows, dtype=bool)
        for rows, _ in self._arrow_arrays(data, 1):
            out[rows] = True
        return out

    @property
    def _program(self) -> "_core.Program":
        prog = self._prog
        if prog is None:
            with _gc_paused():
                prog = self._prog = self._build_program()
        return prog

    def _build_program(self) -> "_core.Program":
        self._plan = plan = compile_plan([r.ir for r in self.rules])
        try:
            return _core.Program(plan, py_callback(plan, self._overrun), ArrowDataError)
        except MemoryError as e:  # a rule pack too large to compile (a limit, or memory): a reason, no crash
            raise RuleError(f"the rule set is too large to compile: {e or 'out of memory'}") from None

    def _overrun(self, pid: int, row: int, e: RegexBudgetExceeded) -> None:
        """A backtracking regex ran out of budget on one value (taken as no match): counted, and
        reported by _report_overruns after the core call (never read silently as "no match")."""
        with self._overrun_lock:
            self.regex_overruns += 1
        pending = getattr(self._pending, "items", None)
        if pending is None:
            pending = self._pending.items = []
        pending.append((pid, row, e))

    def _report_overruns(self, base: int) -> None:
        """Warn (RegexBudgetWarning) about the overruns of the core call that just ran on this
        thread, naming the rules, the event (``base`` + its index in the call) and the field."""
        pending = getattr(self._pending, "items", None)
        if not pending:
            return
        self._pending.items = []
        for pid, row, e in pending:
            pred = self._plan.preds[pid]
            users = tuple(r.id for r in self.rules if pred in _ir.walk_preds(r.ir))
            warnings.warn(RegexBudgetWarning(
                f"rule {', '.join(users)}: event {base + row}: field {pred.field!r}: {e}; "
                "the predicate was taken as false", rules=users, event=base + row, field=pred.field), stacklevel=3)


def _kind(x: Any) -> str:
    """How an argument is described in messages: its type, and its size when it has one."""
    name = type(x).__name__
    if isinstance(x, (str, bytes, bytearray)):
        return f"{name} {x[:40]!r}"
    try:
        return f"{name} ({len(x)} item{'s' if len(x) != 1 else ''})"
    except TypeError:
        return name


def _iterable(x: Any) -> bool:
    try:
        iter(x)
    except TypeError:
        return False
    return not isinstance(x, (str, bytes, bytearray, Mapping))


def _events_arg(events: Any, method: str) -> Iterable[Mapping]:
    """``events`` if it can be an iterable of events; :class:`ArgumentError` saying what it is otherwise."""
    if isinstance(events, Mapping):
        raise ArgumentError(f"{method} takes an iterable of events (mappings), but was given one event "
                            f"({_kind(events)}): pass [event], or use match(event)")
    if isinstance(events, (str, bytes, bytearray)) or not _iterable(events):
        hint = " (a pyarrow Table or RecordBatch goes to match_arrow / scan_arrow)" if _is_arrow(events) else ""
        raise ArgumentError(f"{method} takes an iterable of events (mappings such as dicts), "
                            f"not {_kind(events)}{hint}")
    if _is_arrow(events):
        raise ArgumentError(f"{method} takes an iterable of events (mappings), not {_kind(events)}: "
                            "a pyarrow Table or RecordBatch goes to match_arrow / scan_arrow")
    return events


def _events_call(fn: Any, events: Any, method: str, base: int = 0):
    """``fn(events)`` (the core's event loop); its error on an item that is not a mapping becomes an
    :class:`ArgumentError` naming the item's index when ``events`` is a list or tuple."""
    try:
        return fn(events)
    except TypeError as e:
        where = ""
        if isinstance(events, (list, tuple)):
            bad = next((i for i, ev in enumerate(events) if not isinstance(ev, Mapping)), None)
            if bad is not None:
                where = f" (event {base + bad}, {_kind(events[bad])})"
        raise ArgumentError(f"{method}: {e}{where}; every event must be a mapping such as a dict") from None


def _is_arrow(data: Any) -> bool:
    pa = sys.modules.get("pyarrow")  # not imported: data cannot be a pyarrow object
    return pa is not None and isinstance(data, (pa.Table, pa.RecordBatch))


def _arrow_arg(data: Any, method: str, batches: bool = False) -> Any:
    """data if it is a pyarrow Table or RecordBatch (or, with batches, any other iterable: its
    items are checked as they are read, see _arrow.record_batches)."""
    if _is_arrow(data):
        return data
    if batches and _iterable(data) and not isinstance(data, (list, tuple)):
        return data
    if batches and isinstance(data, (list, tuple)) and all(_is_arrow(x) for x in data):
        return data
    hint = ""
    if isinstance(data, Mapping) or _iterable(data):
        hint = " (for mappings such as dicts use match / match_many / scan)"
    raise ArgumentError(f"{method} takes a pyarrow Table or RecordBatch, not {_kind(data)}{hint}")


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a RuleSet is built: the build allocates hundreds of
    thousands of acyclic objects, and the collections that allocation count would trigger
    find nothing to free (measured: ~15% of the build time of the 1,648-rule corpus)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _pa_record_batch() -> type:
    import pyarrow as pa

    return pa.RecordBatch


#: Rows per slice when a scan is split across threads: large enough that a slice's fixed cost
#: (column descriptors, a State from the pool, the output arrays) is noise.
THREAD_SLICE = 16_384


def _slices(batches: list, threads: int) -> list:
    """Record batches cut so that ``threads`` threads share the work (zero-copy slices)."""
    total = sum(b.num_rows for b in batches)
    size = max(1024, min(THREAD_SLICE, -(-total // (4 * threads))))
    out = []
    for b in batches:
        for lo in range(0, b.num_rows, size):
            out.append(b.slice(lo, size))
    return out


def _regex_scope(regex: Optional[str]) -> Any:
    """The engines the front ends allow inside the block (``None``: leave them as they are)."""
    return contextlib.nullcontext() if regex is None else regex_engine(regex)


def compile(query: str, *, id: Optional[str] = None, title: Optional[str] = None,  # noqa: A001
            regex: Optional[str] = None) -> Rule:
    """Parse an S1QL query into a :class:`Rule` (raises :class:`~matcher.QuerySyntaxError`).

    ``regex="backtracking"`` accepts ``RegExp`` patterns RE2 cannot run (backreferences,
    lookaround); they run on a backtracking engine under a time budget per value
    (``docs/semantics.md``, Regular expressions). By default (``"re2"``) such a pattern is a
    syntax error.
    """
    with _regex_scope(regex):
        node = parse(query)
    rid = id if id is not None else _cards.default_id(query)
    return _rule(RuleRecord(RuleInfo(id=rid, title=title if title is not None else rid), node, query))


def load(path: Union[str, "os.PathLike[str]"], *, profile: Any = "s1", logsource: Any = None,
         regex: Optional[str] = None, placeholders: Any = None, unrouted: str = "skip",
         timestamp: Optional[str] = None, filters: Any = None) -> Any:
    """Read a rule card (markdown), a file holding one bare S1QL query, or Sigma YAML.

    A ``.yml``/``.yaml`` file is Sigma (:mod:`matcher.sigma`): one rule gives a :class:`Rule`,
    a multi-document file a list of them. ``profile`` (a :mod:`matcher.mapping` profile) is
    the schema of the events the rule will see: S1 names by default, as every rule's IR;
    for Sigma, ``"sysmon"`` keeps Sigma's own field names. ``logsource`` keeps only the Sigma
    rules of that log source (``{"category": ..., "product": ..., "service": ...}``).
    ``regex``: as for :func:`compile` (``"backtracking"`` opts in to patterns RE2 cannot run).

    Sigma only (``docs/sigma.md``): each rule is routed to the events of its logsource as the
    profile recognises them; ``unrouted`` (``"skip"``, default, or ``"run"``) says what becomes
    of a rule whose logsource the profile cannot recognise (skipped: an ``UnsupportedFeature``).
    ``placeholders`` fills ``%name%`` values (``{"name": [values]}``); ``timestamp`` names the
    field the timestamp-part modifiers read; ``filters`` are Sigma filter files to apply.
    """
    with _regex_scope(regex):
        return _load(path, profile, logsource, placeholders, unrouted, timestamp, filters)


def _load(path: Union[str, "os.PathLike[str]"], profile: Any, logsource: Any, placeholders: Any,
          unrouted: str, timestamp: Optional[str], filters: Any) -> Any:
    if os.fspath(path).lower().endswith((".yml", ".yaml")):
        from .sigma.loader import SigmaOptions, load_sigma_records

        options = SigmaOptions.of(placeholders, unrouted, timestamp)
        found = _rules(load_sigma_records(path, profile=profile, logsource=logsource, options=options,
                                          filters=filters))
        return found[0] if len(found) == 1 else found
    if logsource is not None or placeholders is not None or timestamp is not None or filters is not None:
        raise MatcherError("logsource, placeholders, timestamp and filters apply to Sigma rules only")
    return _rule(_cards.load_path(path), profile)


def _rule(record: RuleRecord, profile: Any = None) -> Rule:
    """The :class:`Rule` of a front end's record, in ``profile``'s names (``None``/``"s1"``: as read)."""
    from .mapping import in_profile

    return Rule(in_profile(record.ir, profile), record.info, record.query)


def _rules(items: Iterable) -> list:
    """A front end's output as objects for :class:`RuleSet`: each record a :class:`Rule` (in
    the names it was read in), a correlation rule as it is."""
    return [_rule(x) if isinstance(x, RuleRecord) else x for x in items]


_ARCHIVES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar", ".zip")
_CORPUS = _cards.RULE_LINES_SUFFIXES  # JSON lines rule files


def load_rules(path: Union[str, "os.PathLike[str]"], *, profile: Any = "s1", logsource: Any = None,
               failures: Optional[list] = None, placeholders: Any = None, unrouted: str = "skip",
               timestamp: Optional[str] = None, filters: Any = None) -> list:
    """Every rule under ``path``, as a list (always): :class:`Rule` and
    :class:`~matcher.correlation.Correlation` objects, ready for :class:`RuleSet`.

    ``path`` is a rule file (card ``.md``, query file, Sigma ``.yml``/``.yaml`` with any number
    of documents, correlation rules included), a corpus of JSON lines records
    ``{"id", "title", "query", ...}``, a directory of rule files (recursive, as
    :func:`matcher._files.rule_files` lists them), or an archive of them (``.tar.gz``, ``.tar.xz``,
    ``.tar.bz2``, ``.tar``, ``.zip``; members by name). ``profile`` and ``logsource`` as for
    :func:`load`. A rule that does not load raises its :class:`~matcher.MatcherError`; given a
    list as ``failures``, it is appended there as ``(source, error)`` and loading goes on.

    Sigma (``docs/sigma.md``): ``placeholders``, ``unrouted``, ``timestamp`` as for :func:`load`;
    the filter documents among the files and in ``filters`` (filter files) apply to the rules
    they name, across files. What is reported rather than failed -- a logsource the profile
    cannot recognise (once per logsource), a filter naming a rule that is not loaded -- is a
    failure ``(what, error)`` too, or raised when there is no ``failures`` list (an unrouted
    logsource only with ``unrouted="skip"``).
    """
    from .sigma.loader import SigmaOptions, TreeLoad, load_filters

    options = SigmaOptions.of(placeholders, unrouted, timestamp)
    holder = TreeLoad(filters=load_filters(filters, profile=profile, options=options) if filters else [])
    p = Path(path)
    name = str(p)
    if p.is_dir():
        texts: Iterable = ((str(f), lambda f=f: read_rule_text(f)) for f in rule_files(p))
    elif name.lower().endswith(_ARCHIVES):
        texts = _archive_texts(p)
    else:
        texts = [(name, lambda: read_rule_text(p))]
    out: list = []
    for source, read in texts:
        try:
            out += _rules_from_text(source, read(), profile, logsource, failures, options, holder)
        except MatcherError as e:
            if failures is None:
                raise
            failures.append((source, e))
    return _sigma_finish(out, holder, profile, options, failures)


def _sigma_finish(out: list, holder: Any, profile: Any, options: Any, failures: Optional[list]) -> list:
    """The filters collected in ``holder`` applied to ``out``; what it noted, as failures."""
    from .errors import UnsupportedFeature
    from .sigma.filters import apply_filters
    from .sigma.loader import UNROUTED_FEATURE

    out, problems = apply_filters(out, holder.filters, lambda r, node: Rule(node, r.info, r.source_query))
    noted = [(msg.split(": filter names", 1)[0], RuleError(msg)) for msg in problems]
    if options.unrouted == "skip":  # with "run" the rules loaded, as asked
        noted += [(f"logsource {key}", UnsupportedFeature(names[0], UNROUTED_FEATURE, msg))
                  for (key, names), msg in zip(sorted(holder.unrouted.items()), holder.report(profile, options))]
    if noted and failures is None:
        raise noted[0][1]
    if failures is not None:
        failures.extend(noted)
    return out


def _archive_texts(p: Path) -> list:
    """``(archive:member, read)`` for the rule files of a tar or zip archive, by member name."""
    return [(f"{p}:{m}", read) for m, read in archive_members(p, RULE_SUFFIXES + _CORPUS, zip_too=True)
            if not Path(m).name.startswith(".") and not Path(m).name.upper().startswith("README")]


def _rules_from_text(source: str, text: str, profile: Any, logsource: Any, failures: Optional[list],
                     options: Any = None, into: Any = None) -> list:
    low = source.lower()
    if low.endswith((".yml", ".yaml")):
        from .sigma.loader import parse_sigma_records

        return _rules(parse_sigma_records(text, source=source, profile=profile, logsource=logsource, options=options,
                                          into=into))
    if low.endswith(_CORPUS):
        return _corpus_rules(source, text, profile, failures)
    return [_rule(_cards.parse_rule_text(text, source=source), profile)]


def _corpus_rules(source: str, text: str, profile: Any, failures: Optional[list]) -> list:
    """JSON lines records ``{"id", "title", "query", ...}`` (:func:`matcher.s1ql.cards.parse_rule_lines`);
    a bad line, and a record without a query (``"query": null``), is a failure like any other."""
    found, errors, no_query = _cards.parse_rule_lines(text.encode("utf-8", "surrogatepass"), source=source)
    import re

    line = re.compile(re.escape(source) + r":(\d+)")
    problems = sorted((int(line.search(m).group(1)), m) for m in errors + no_query)  # each names its line
    if problems and failures is None:
        raise RuleError(problems[0][1])
    for n, msg in problems:
        failures.append((f"{source}:{n}", RuleError(msg)))
    return [_rule(record, profile) for record in found]


def gather_rules(queries: Iterable[str], specs: Iterable[str], default: bool = True,
                 progress: Any = None,
                 sigma_profile: Any = "s1", sigma_options: Any = None, sigma_filters: Any = (),
                 sigma_logsource: Any = None, notes: Optional[list[str]] = None) -> tuple[list[Rule], list[str]]:
    """The command line's rules (``scan``, ``check``, ``explain``, ``coverage``, ``test``, ...;
    :func:`matcher.spark` and :mod:`matcher.testing` too): rules from ``-q`` texts and ``-r`` specs (files, directories, built-in names or ids, JSON
    lines rule files). ``sigma_profile``: the profile Sigma rules are loaded for (the events'
    profile: their routing and field names; ``"sysmon"`` keeps Sigma's own names); Sigma files
    load together (:func:`matcher.sigma.loader.load_sigma_files_records`: filters among them and in
    ``sigma_filters`` apply across files). ``notes`` receives what is reported but not an
    error: logsources the profile cannot recognise, filters naming rules that are not loaded
    (without ``notes`` they are printed here).

    Returns the rules that load and one message per rule that does not (every one, not just the
    first). Records of a JSON lines rule file that carry no query are counted in one message.
    """
    rules: list[Rule] = []
    errors: list[str] = []
    for i, q in enumerate(queries, 1):
        try:
            rules.append(compile(q, id=f"query-{i}", title=f"query {i}"))
        except MatcherError as e:
            errors.append(f"-q #{i}: {e}")
    todo: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            files = rule_files(p)
            if not files:
                errors.append(f"{spec}: no rule files (.md, .s1ql, .txt, .yml, .yaml) in this directory")
            todo.extend(files)
        elif p.exists():
            todo.append(p)
        else:
            try:
                rules.append(builtin(spec))
            except MatcherError as e:
                errors.append(f"{spec}: not a file or directory, and {e}")
    if progress is not None:
        progress.start("loading rules", len(todo), "files")
    sigma_files = [f for f in todo if f.suffix.lower() in (".yml", ".yaml")]
    if sigma_files or sigma_filters:
        from .sigma.loader import load_sigma_files_records

        try:
            loaded = load_sigma_files_records(sigma_files, profile=sigma_profile, logsource=sigma_logsource,
                                      options=sigma_options, filters=sigma_filters)
        except MatcherError as e:
            errors.append(str(e))
        else:
            for name, e in loaded.failures:
                msg = str(e)
                errors.append(msg if name in msg else f"{name}: {msg}")
            rules.extend(_rules(loaded.rules))
            reported = loaded.report(sigma_profile, sigma_options) + loaded.filter_problems
            if notes is not None:
                notes.extend(reported)
            else:  # the caller does not print them: never silent
                for msg in reported:
                    say(msg)
        if progress is not None:
            progress.advance(len(sigma_files))
    for f in todo:
        if f in sigma_files:
            continue
        try:
            if f.suffix.lower() in _cards.RULE_LINES_SUFFIXES:  # (not yet through matcher.load_rules: issue 17)
                found, bad, no_query = _cards.read_rule_lines(f)
                errors.extend(bad)
                rules.extend(_rule(record) for record in found)
                if no_query:
                    say(f"{f}: {len(no_query)} record(s) carry no query (e.g. {no_query[0]}): not rules, passed over")
            else:
                rules.append(load(f, profile="s1"))
        except MatcherError as e:
            msg = str(e)
            errors.append(msg if str(f) in msg else f"{f}: {msg}")
        if progress is not None:
            progress.advance(1)
    if default and not rules and not errors:
        rules.append(builtin())
    seen: dict[str, Rule] = {}
    unique = []
    for r in rules:
        if r.id in seen:
            errors.append(f"{r.info.source or r.title}: the id {r.id!r} is already used by {seen[r.id].info.source or seen[r.id].title}")
            continue
        seen[r.id] = r
        unique.append(r)
    return unique, errors


def remap_rules(rules: list[Rule], src: "Profile", dst: "Profile") -> tuple[list[Rule], list[str]]:
    """The rules rewritten for events in ``dst`` names; messages for those the profile decides."""
    from .mapping import RuleNeverMatches, remap

    if src is dst:
        return rules, []
    out, skipped = [], []
    for r in rules:
        if not isinstance(r, Rule) or loaded_for(r, dst):  # a correlation: field names as written
            out.append(r)
            continue
        try:
            out.append(Rule(remap(r.ir, src, dst), r.info, r.source_query))
        except RuleNeverMatches as e:
            skipped.append(f"rule {r.id} ({r.title}): {e}: not run")
    return out, skipped


def loaded_for(rule: Rule, profile: "Profile") -> bool:
    """Whether ``rule`` was loaded for events of ``profile`` (Sigma rules are: routed and named
    for the events' profile at load time, by the same code as ``matcher.load(..., profile=)``)."""
    return rule.info.extra.get("profile") == profile.name


_BUILTIN_ALIASES = {"flagship": "proc_creation_win_webshell_susp_process_spawned_from_webserver"}


def builtin_names() -> list[str]:
    """Names of the rules shipped with matcher (file stems; ids and aliases work too)."""
    return sorted(_cards.builtin_rules())


def builtin(name: str = "flagship") -> Rule:
    """A built-in rule by name, id or alias (``"flagship"``: Suspicious Process By Web Server Process)."""
    table = _cards.builtin_rules()
    key = _BUILTIN_ALIASES.get(name, name)
    for stem, record in table.items():
        if key == stem or key == record.info.id:
            return _rule(record)
    raise RuleError(f"no built-in rule named {name!r}; known: {', '.join(sorted(table))}, flagship")
