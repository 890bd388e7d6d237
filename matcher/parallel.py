"""``matcher scan --jobs N``: the inputs of a scan cut into tasks, matched in N processes,
and handed back in input order.

Tasks: a whole input (CSV, JSON arrays, EVTX, anything gzip-compressed, standard input); a byte
range of a plain JSON lines file, cut just after a newline, with the number of lines before it
counted here so that line numbers are those of the whole file; a run of Parquet row groups. The
JSON lines decoder is chosen once per file from its first non-blank line, as one process does.
Each task's result is the list of its items as :func:`match_item` turns them into
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

__all__ = ["Matched", "InputDone", "Task", "match_item", "plan", "scan_items", "default_jobs"]

#: A byte range of a JSON lines file is never cut smaller than this,
MIN_RANGE = 1 << 16
#: nor larger than this (a worker holds its range in memory).
MAX_RANGE = 64 << 20
#: Tasks per process: enough that one slow task does not leave the other processes idle.
TASKS_PER_JOB = 4
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


# -- tasks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
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


def plan(todo: Sequence[inputs.Input], jobs: int, *, fmt: Optional[str], fields: Optional[Sequence[str]]) -> list[Task]:
    """The tasks of ``todo``, in input order."""
    sizes = [_size(inp) for inp in todo]
    step = min(MAX_RANGE, max(MIN_RANGE, -(-sum(sizes) // max(1, jobs * TASKS_PER_JOB))))
    tasks: list[Task] = []
    for i, (inp, size) in enumerate(zip(todo, sizes)):
        kind = _kind(inp, fmt) if size > MIN_RANGE else None
        if kind == "jsonl" and size > step:
            tasks.extend(_jsonl_tasks(i, inp, size, step, fields))
        elif kind == "parquet":  # compressed: its size says little; cut its rows in jobs * TASKS_PER_JOB
            tasks.extend(_parquet_tasks(i, inp, jobs * TASKS_PER_JOB))
        else:
            tasks.append(Task(i, inp))
    return tasks


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


def _jsonl_tasks(index: int, inp: inputs.Input, size: int, step: int, fields) -> list[Task]:
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
    return [Task(index, inp, "jsonl", a, b, n, wide) for a, b, n in zip(cuts, cuts[1:], linenos)]


def _parquet_tasks(index: int, inp: inputs.Input, parts: int) -> list[Task]:
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(inp.path).metadata
    except Exception:  # noqa: BLE001  (read whole: the reader reports what is wrong)
        return [Task(index, inp)]
    rows_per_task = max(1, -(-meta.num_rows // parts))
    tasks: list[Task] = []
    groups: list[int] = []
    first = row = 1
    for g in range(meta.num_row_groups):
        groups.append(g)
        row += meta.row_group(g).num_rows
        if row - first >= rows_per_task or g == meta.num_row_groups - 1:
            tasks.append(Task(index, inp, "parquet", row_groups=tuple(groups), first_row=first))
            groups, first = [], row
    return tasks or [Task(index, inp)]


def _items(task: Task, fmt: Optional[str], fields: Optional[Sequence[str]], limit: int,
           pos: inputs.Position) -> Iterator[inputs.Item]:
    if task.kind == "file":
        yield from inputs.read(task.inp, fmt=fmt, fields=fields, max_record=limit, position=pos)
        return
    pos.format = task.kind
    try:
        fh = open(task.inp.path, "rb")  # noqa: SIM115
    except OSError as e:
        yield inputs.Bad(None, f"cannot read: {e.strerror or e}")
        return
    with fh:
        if task.kind == "parquet":
            yield from inputs._read_parquet(task.inp, fh, None, inputs.CHUNK, limit, row_groups=list(task.row_groups),
                                            first_row=task.first_row)
            return
        try:
            fh.seek(task.start)
            data = fh.read(task.end - task.start)
        except OSError as e:
            yield inputs.Bad(None, f"read error ({e.strerror or e}) after line {task.lineno}")
            return
        dec = inputs.JsonLinesDecoder(fields if task.wide else None)
        yield from inputs._read_jsonl(task.inp, io.BytesIO(data), fields, inputs.CHUNK, limit,
                                      lineno=task.lineno, dec=dec)


# -- running them ----------------------------------------------------------------------------------

_worker_rules: Optional[RuleSet] = None


def _init_worker(rs: RuleSet) -> None:
    global _worker_rules
    _worker_rules = rs


def _run_task(task: Task, fmt: Optional[str], fields: Optional[Sequence[str]],
              limit: int) -> tuple[list[Result], Optional[str]]:
    assert _worker_rules is not None
    pos = inputs.Position()
    return [match_item(_worker_rules, it) for it in _items(task, fmt, fields, limit, pos)], pos.format


def scan_items(todo: Sequence[inputs.Input], rs: RuleSet, *, jobs: Optional[int] = None, fmt: Optional[str] = None,
               fields: Optional[Sequence[str]] = None, max_record: int = inputs.MAX_RECORD_BYTES) -> Iterator[tuple[int, Union[Result, InputDone], int]]:
    """``(input index, result, bytes of that input read so far)`` for every item of every input,
    in input order, and an :class:`InputDone` when an input is done. ``jobs`` None: the
    machine's cores, for inputs of at least :data:`AUTO_MIN_BYTES` in all; 1: this process only.
    ``fields``: decode only these (None: whole records; always when ``rs.reads_whole_events``)."""
    if rs.reads_whole_events:
        fields = None
    n = default_jobs() if jobs is None else max(1, jobs)
    if jobs is None and sum(_size(inp) for inp in todo) < AUTO_MIN_BYTES:
        n = 1
    tasks = plan(todo, n, fmt=fmt, fields=fields) if n > 1 else [Task(i, inp) for i, inp in enumerate(todo)]
    if n == 1 or sum(u.inp.path != "-" for u in tasks) < 2:
        yield from _in_order(_local(rs, u, fmt, fields, max_record) for u in tasks)
        return
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(rs,))
    try:
        yield from _in_order(_pooled(pool, tasks, rs, n, fmt, fields, max_record))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: What a task gives _in_order: the task, its results (lazily when read here), and a callable
#: returning (bytes of the input read so far, the format read) at that point.
Done = tuple[Task, Iterator, Any]


def _pooled(pool: ProcessPoolExecutor, tasks: list[Task], rs: RuleSet, n: int, fmt, fields, limit: int) -> Iterator[Done]:
    """Tasks in task order, at most 2n in flight (standard input is read here)."""
    pending: deque = deque()
    it = iter(tasks)

    def submit(u: Task) -> None:
        pending.append((u, pool.submit(_run_task, u, fmt, fields, limit) if u.inp.path != "-" else None))

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


def _local(rs: RuleSet, task: Task, fmt, fields, limit: int) -> Done:
    """A task matched in this process, lazily (standard input streams)."""
    pos = inputs.Position()
    return task, (match_item(rs, it) for it in _items(task, fmt, fields, limit, pos)), lambda: (pos.done, pos.format)


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
