"""``matcher scan --jobs N``: the inputs of a scan cut into units of work, matched in N processes,
and handed back in input order.

Units: a whole input (CSV, JSON arrays, EVTX, anything gzip-compressed, standard input); a byte
range of a plain JSON lines file, cut just after a newline, with the number of lines before it
counted here so that line numbers are those of the whole file; a run of Parquet row groups. The
JSON lines decoder is chosen once per file from its first non-blank line, as one process does.
Each unit's result is the list of its items as :func:`match_item` turns them into
:class:`Matched` (rows read and the matched records) or :class:`~matcher.inputs.Bad`, so the
caller's accounting of records, bad records and matches is the one of a single process; after
a whole-input :class:`~matcher.inputs.Bad` (a read error), the rest of that input is dropped,
as one process stops reading it.

Workers are forked where the platform allows it (they inherit the compiled RuleSet); elsewhere
the RuleSet is pickled to them and compiled once per worker.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from . import inputs
from .api import RuleSet
from .errors import ArrowDataError

__all__ = ["Matched", "InputDone", "Unit", "match_item", "plan", "scan_items", "default_jobs"]

#: A byte range of a JSON lines file is never cut smaller than this,
MIN_RANGE = 1 << 16
#: nor larger than this (a worker holds its range in memory).
MAX_RANGE = 64 << 20
#: Units per process: enough that one slow unit does not leave the other processes idle.
UNITS_PER_JOB = 4
#: With --jobs left to its default, inputs smaller than this in all are scanned in this process
#: (starting processes costs more than it gives).
AUTO_MIN_BYTES = 8 << 20


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class Matched:
    """One item matched: ``read`` records read (all good), and per matched record its line, row
    or record number, the record, and the indices of the rules it matches (in rule order)."""

    read: int
    unit: str
    hits: list[tuple[int, Any, list[int]]] = field(default_factory=list)
    selected: bool = False  # JSON lines decoded by field (the reader chose it for wide records)


@dataclass
class InputDone:
    """Input ``index`` is read to its end (or to its error): the format it was read as, and
    whether its JSON lines were decoded by field (for ``--stats``)."""

    format: Optional[str]
    selected: bool


Result = Union[Matched, inputs.Bad]


def match_item(rs: RuleSet, item: inputs.Item) -> Result:
    """An item of :func:`matcher.inputs.read` matched with ``rs`` (a ``Bad`` as it is). Each
    matched record is read whole here (it travels to the main process), or, when that fails,
    the failure is kept for :func:`record` to raise again where the output is written."""
    if isinstance(item, inputs.Records):
        rows, rules = rs.match_arrays(item.events)
        return Matched(len(item.events), item.unit, _hits(rows, rules, item.where.__getitem__, item.event),
                       item.full is not None)
    if isinstance(item, inputs.Columns):
        batch = item.batch
        try:  # the core checks a batch's buffers before it reads a row: the batch is bad, counted
            rows, rules = rs.match_arrow_arrays(batch)
        except ArrowDataError as e:
            last = item.first_row + batch.num_rows - 1
            return inputs.Bad(None, f"rows {item.first_row}-{last}: {e}", "row", batch.num_rows)
        get = item.row
        matched = np.unique(rows)
        try:  # the matched rows in one call, not one slice each
            at = dict(zip(matched.tolist(), batch.take(matched).to_pylist()))
            get = at.__getitem__
        except (ValueError, OverflowError, ArithmeticError):  # a value Python cannot hold: Columns.row's way
            pass
        return Matched(batch.num_rows, "row", _hits(rows, rules, lambda r: item.first_row + r, get))
    return item


@dataclass
class _Failed:
    """A record that could not be read whole: the exception's type name and text."""

    kind: str
    text: str


def record(event: Any) -> Any:
    """A matched record as :func:`match_item` kept it: the record, or its failure raised again."""
    if isinstance(event, _Failed):
        raise type(event.kind, (Exception,), {})(event.text)
    return event


def _read(get: Any, r: int) -> Any:
    try:
        return get(r)
    except Exception as e:  # noqa: BLE001 - reported with the match by the caller (cli emit)
        return _Failed(type(e).__name__, str(e))


def _hits(rows: Any, rules: Any, where: Any, get: Any) -> list[tuple[int, Any, list[int]]]:
    out = []
    rows_l, rules_l = rows.tolist(), rules.tolist()
    i, n = 0, len(rows_l)
    while i < n:
        j = i + 1
        while j < n and rows_l[j] == rows_l[i]:
            j += 1
        out.append((where(rows_l[i]), _read(get, rows_l[i]), rules_l[i:j]))
        i = j
    return out


# -- units of work -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """Part of input number ``index``: all of it (``kind`` "file"), bytes ``[start, end)`` of a
    JSON lines file with ``lineno`` lines before them ("jsonl"), or Parquet ``row_groups`` whose
    first row is ``first_row`` ("parquet")."""

    index: int
    inp: inputs.Input
    kind: str = "file"
    start: int = 0
    end: int = 0
    lineno: int = 0
    wide: bool = False  # JSON lines: decode only the rules' fields (chosen for the whole file)
    row_groups: tuple[int, ...] = ()
    first_row: int = 1


def plan(todo: Sequence[inputs.Input], jobs: int, *, fmt: Optional[str], fields: Optional[Sequence[str]]) -> list[Unit]:
    """The units of ``todo``, in input order."""
    sizes = [_size(inp) for inp in todo]
    step = min(MAX_RANGE, max(MIN_RANGE, -(-sum(sizes) // max(1, jobs * UNITS_PER_JOB))))
    units: list[Unit] = []
    for i, (inp, size) in enumerate(zip(todo, sizes)):
        kind = _kind(inp, fmt) if size > MIN_RANGE else None
        if kind == "jsonl" and size > step:
            units.extend(_jsonl_units(i, inp, size, step, fields))
        elif kind == "parquet":  # compressed: its size says little; cut its rows in jobs * UNITS_PER_JOB
            units.extend(_parquet_units(i, inp, jobs * UNITS_PER_JOB))
        else:
            units.append(Unit(i, inp))
    return units


def _size(inp: inputs.Input) -> int:
    try:
        return os.path.getsize(inp.path) if inp.path != "-" else 0
    except OSError:
        return 0


def _kind(inp: inputs.Input, fmt: Optional[str]) -> Optional[str]:
    """"jsonl" or "parquet" for a plain (not compressed) file that can be cut, else None."""
    try:
        with open(inp.path, "rb") as fh:
            head = fh.read(8192)
        if head.startswith(b"\x1f\x8b"):
            return None
        return fmt or inputs.detect(inp.name, head)
    except Exception:  # noqa: BLE001  (unreadable, unknown: read whole, which reports it)
        return None


def _jsonl_units(index: int, inp: inputs.Input, size: int, step: int, fields) -> list[Unit]:
    cuts = [0]
    first: Optional[bytes] = None
    with open(inp.path, "rb") as fh:
        for line in fh:  # the first non-blank line chooses the decoder, as in one process
            if line.strip():
                first = line.rstrip(b"\n")
                break
        while cuts[-1] + step < size:
            fh.seek(cuts[-1] + step)
            fh.readline()
            if fh.tell() >= size:
                break
            cuts.append(fh.tell())
        cuts.append(size)
        linenos = [0]
        for a, b in zip(cuts, cuts[1:-1]):
            fh.seek(a)
            linenos.append(linenos[-1] + fh.read(b - a).count(b"\n"))
    wide = fields is not None and first is not None and inputs.jsonl_decoder(first, fields).keys is not None
    return [Unit(index, inp, "jsonl", a, b, n, wide) for a, b, n in zip(cuts, cuts[1:], linenos)]


def _parquet_units(index: int, inp: inputs.Input, parts: int) -> list[Unit]:
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(inp.path).metadata
    except Exception:  # noqa: BLE001  (read whole: the reader reports what is wrong)
        return [Unit(index, inp)]
    rows_per_unit = max(1, -(-meta.num_rows // parts))
    units: list[Unit] = []
    groups: list[int] = []
    first = row = 1
    for g in range(meta.num_row_groups):
        groups.append(g)
        row += meta.row_group(g).num_rows
        if row - first >= rows_per_unit or g == meta.num_row_groups - 1:
            units.append(Unit(index, inp, "parquet", row_groups=tuple(groups), first_row=first))
            groups, first = [], row
    return units or [Unit(index, inp)]


def _items(unit: Unit, fmt: Optional[str], fields: Optional[Sequence[str]], limit: int,
           pos: inputs.Position) -> Iterator[inputs.Item]:
    if unit.kind == "file":
        yield from inputs.read(unit.inp, fmt=fmt, fields=fields, max_record=limit, position=pos)
        return
    pos.format = unit.kind
    try:
        fh = open(unit.inp.path, "rb")  # noqa: SIM115
    except OSError as e:
        yield inputs.Bad(None, f"cannot read: {e.strerror or e}")
        return
    with fh:
        if unit.kind == "parquet":
            yield from inputs._read_parquet(unit.inp, fh, None, inputs.CHUNK, limit, row_groups=list(unit.row_groups),
                                            first_row=unit.first_row)
            return
        try:
            fh.seek(unit.start)
            data = fh.read(unit.end - unit.start)
        except OSError as e:
            yield inputs.Bad(None, f"read error ({e.strerror or e}) after line {unit.lineno}")
            return
        dec = inputs.JsonLinesDecoder(fields if unit.wide else None)
        yield from inputs._read_jsonl(unit.inp, io.BytesIO(data), fields, inputs.CHUNK, limit,
                                      lineno=unit.lineno, dec=dec)


# -- running them ----------------------------------------------------------------------------------

_worker_rules: Optional[RuleSet] = None


def _init_worker(rs: RuleSet) -> None:
    global _worker_rules
    _worker_rules = rs


def _run_unit(unit: Unit, fmt: Optional[str], fields: Optional[Sequence[str]],
              limit: int) -> tuple[list[Result], Optional[str]]:
    assert _worker_rules is not None
    pos = inputs.Position()
    return [match_item(_worker_rules, it) for it in _items(unit, fmt, fields, limit, pos)], pos.format


def scan_items(todo: Sequence[inputs.Input], rs: RuleSet, *, jobs: Optional[int] = None, fmt: Optional[str] = None,
               fields: Optional[Sequence[str]] = None, max_record: int = inputs.MAX_RECORD_BYTES) -> Iterator[tuple[int, Union[Result, InputDone], int]]:
    """``(input index, result, bytes of that input read so far)`` for every item of every input,
    in input order, and an :class:`InputDone` when an input is done. ``jobs`` None: the
    machine's cores, for inputs of at least :data:`AUTO_MIN_BYTES` in all; 1: this process only."""
    n = default_jobs() if jobs is None else max(1, jobs)
    if jobs is None and sum(_size(inp) for inp in todo) < AUTO_MIN_BYTES:
        n = 1
    units = plan(todo, n, fmt=fmt, fields=fields) if n > 1 else [Unit(i, inp) for i, inp in enumerate(todo)]
    if n == 1 or sum(u.inp.path != "-" for u in units) < 2:
        yield from _in_order(_local(rs, u, fmt, fields, max_record) for u in units)
        return
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(rs,))
    try:
        yield from _in_order(_pooled(pool, units, rs, n, fmt, fields, max_record))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: What a unit gives _in_order: the unit, its results (lazily when read here), and a callable
#: returning (bytes of the input read so far, the format read) at that point.
Done = tuple[Unit, Iterator, Any]


def _pooled(pool: ProcessPoolExecutor, units: list[Unit], rs: RuleSet, n: int, fmt, fields, limit: int) -> Iterator[Done]:
    """Units in unit order, at most 2n in flight (standard input is read here)."""
    pending: deque = deque()
    it = iter(units)

    def submit(u: Unit) -> None:
        pending.append((u, pool.submit(_run_unit, u, fmt, fields, limit) if u.inp.path != "-" else None))

    for u in it:
        submit(u)
        if len(pending) >= 2 * n:
            break
    while pending:
        u, fut = pending.popleft()
        nxt = next(it, None)
        if nxt is not None:
            submit(nxt)
        if fut is None:
            yield _local(rs, u, fmt, fields, limit)
            continue
        results, kind = fut.result()
        end = u.end if u.kind == "jsonl" else _size(u.inp)
        yield u, iter(results), lambda end=end, kind=kind: (end, kind)


def _local(rs: RuleSet, unit: Unit, fmt, fields, limit: int) -> Done:
    """A unit matched in this process, lazily (standard input streams)."""
    pos = inputs.Position()
    return unit, (match_item(rs, it) for it in _items(unit, fmt, fields, limit, pos)), lambda: (pos.done, pos.format)


def _in_order(results: Iterator[Done]) -> Iterator[tuple[int, Union[Result, InputDone], int]]:
    stopped = -1  # a JSON lines file cut in parts whose read failed: its later parts are dropped, as one process stops
    last, selected, kind = -1, False, None
    for u, res, where in results:
        if u.index != last and last >= 0:
            yield last, InputDone(kind, selected), 0
            selected, kind = False, None
        last = u.index
        if u.index == stopped:
            continue
        for r in res:
            selected = selected or (isinstance(r, Matched) and r.selected)
            yield u.index, r, where()[0]
            if u.kind == "jsonl" and isinstance(r, inputs.Bad) and r.where is None:
                stopped = u.index
                break
        kind = kind or where()[1]
    if last >= 0:
        yield last, InputDone(kind, selected), 0
