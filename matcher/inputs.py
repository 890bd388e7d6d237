"""Log readers for ``matcher scan``: JSON lines, JSON arrays, CSV, Parquet and Windows EVTX, each
optionally gzip-compressed, from files, directories or standard input.

:func:`read` turns one input into a stream of items, in input order:

- :class:`Records`: a chunk of decoded events (mappings) with their line or row numbers;
- :class:`Columns`: one Arrow record batch (Parquet), to be matched on the columnar path;
- :class:`Bad`: a record or a whole input that could not be read, with where and why.

Bad input never raises: it becomes a :class:`Bad` item and reading goes on with the next record
(CSV: the next line; Parquet: the next row group; EVTX: the next chunk; gzip: what was
decompressed before the damage is read, then the damage is reported with its byte position).
The caller counts ``Records`` and ``Columns`` rows as read, and each ``Bad`` as ``records``
records read and bad. A record longer than ``max_record`` bytes is bad, and is streamed past
without being held in memory.

JSON lines are decoded with msgspec into a struct holding only the fields the rules read (the
top-level keys of their field names), which is several times faster than decoding whole
objects on wide records; a matched line is decoded again in full (orjson) for the output.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional, Union

import orjson

from . import jsonio
from ._optional import need
from .errors import MissingDependency
from .fields import SECURITY_4688_TO_S1, SYSMON_1_TO_S1

__all__ = [
    "FORMATS",
    "Records",
    "Columns",
    "Bad",
    "Input",
    "Position",
    "FORMAT_NAMES",
    "expand",
    "detect",
    "read",
    "evtx_event",
    "JsonLinesDecoder",
]

FORMATS = ("jsonl", "json", "csv", "parquet", "evtx")
_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
    ".parquet": "parquet", ".pq": "parquet", ".evtx": "evtx",
}
CHUNK = 4096
#: The default of ``--max-record-bytes``: a longer JSON line or CSV record is a bad record.
MAX_RECORD_BYTES = 64 << 20
#: How each format is named in messages.
FORMAT_NAMES = {"jsonl": "JSON lines", "json": "JSON", "csv": "CSV", "parquet": "Parquet", "evtx": "EVTX"}


@dataclass
class Records:
    """Decoded events; ``where[i]`` is the line (``unit`` ``"line"``) or row of ``events[i]``."""

    unit: str
    where: list[int]
    events: list[Any]
    full: Optional[Callable[[int], Any]] = None  # the whole record i, when events hold only some fields

    def event(self, i: int) -> Any:
        return self.full(i) if self.full is not None else self.events[i]


@dataclass
class Columns:
    """An Arrow record batch whose first row is row ``first_row`` (1-based) of the input."""

    first_row: int
    batch: Any

    def row(self, i: int) -> dict:
        """Row ``i`` (0-based) as a dict; a value Python cannot hold (a timestamp past year 9999)
        as the text Arrow gives it."""
        one = self.batch.slice(i, 1)
        try:
            return one.to_pylist()[0]
        except (ValueError, OverflowError, ArithmeticError):
            import pyarrow as pa

            out = {}
            for name, col in zip(one.schema.names, one.columns):
                try:
                    out[name] = col.to_pylist()[0]
                except (ValueError, OverflowError, ArithmeticError):
                    out[name] = col.cast(pa.string()).to_pylist()[0]
            return out


@dataclass
class Bad:
    """A record (``where`` set) or a whole input or a part of it (``where`` None; ``problem``
    gives the byte position) that could not be read; it counts as ``records`` records."""

    where: Optional[int]
    problem: str
    unit: str = "line"
    records: int = 1


Item = Union[Records, Columns, Bad]


@dataclass(frozen=True)
class Input:
    """One input: a path, or ``"-"`` for standard input; ``name`` is how messages show it."""

    path: str
    name: str


@dataclass
class Position:
    """How far :func:`read` has come in one input, for progress displays: ``done`` of ``total``
    bytes (``total`` None: unknown, e.g. a pipe) and the ``format`` it detected (``None`` until
    known). Bytes count as read from the file as stored (compressed, for ``.gz``)."""

    total: Optional[int] = None
    format: Optional[str] = None
    _raw: Any = None

    @property
    def done(self) -> int:
        raw = self._raw
        if raw is None or raw.closed:
            return self.total or 0
        try:
            return raw.tell()
        except (OSError, ValueError):
            return 0


class _UnknownFormat(Exception):
    pass


def expand(specs: Iterable[str]) -> tuple[list[Input], list[tuple[str, str]]]:
    """Inputs named on the command line: files (and FIFOs, devices) as given; directories walked,
    sorted and recursive, for regular files (or links to them) whose extension names a format
    (``.gz`` too).

    Returns the inputs and ``(path, why)`` for every entry of those directories that was passed
    over, to report: hidden entries (name starting with ``.``; a hidden directory is one entry),
    links to directories (not followed: no loops, no scanning outside the tree), entries that are
    not regular files (a FIFO would block the scan), broken links, and files whose extension
    names no format. A directory with no log file in it is returned as an input, so reading it
    reports it.
    """
    out: list[Input] = []
    passed: list[tuple[str, str]] = []
    for spec in specs:
        if spec == "-":
            out.append(Input("-", "<stdin>"))
            continue
        p = Path(spec)
        if not p.is_dir():
            out.append(Input(spec, spec))
            continue
        before = len(out)
        for root, dirs, files in os.walk(p, onerror=lambda e: passed.append((e.filename, f"cannot list: {e.strerror}"))):
            keep = []
            for d in sorted(dirs):
                full = os.path.join(root, d)
                if d.startswith("."):
                    passed.append((full, "hidden directory: not read"))
                elif os.path.islink(full):
                    passed.append((full, "link to a directory: not followed"))
                else:
                    keep.append(d)
            dirs[:] = keep
            for f in sorted(files):
                full = os.path.join(root, f)
                why = _passed_over(full, f)
                if why is None:
                    out.append(Input(full, full))
                else:
                    passed.append((full, why))
        if len(out) == before:  # no log file in it: read the directory itself, which is reported
            out.append(Input(spec, spec))
    return out, passed


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def _passed_over(full: str, name: str) -> Optional[str]:
    """Why a directory entry is not read, or ``None`` to read it."""
    if name.startswith("."):
        return "hidden file: not read"
    try:
        mode = os.stat(full).st_mode
    except OSError as e:
        return f"cannot read: {e.strerror}" + (" (a broken link)" if os.path.islink(full) else "")
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        return f"{kind}, not a regular file: not read (name it to read it)"
    if _format_by_name(name) is None:
        return ("not a known log extension (.jsonl .ndjson .json .csv .parquet .pq .evtx, optionally .gz); "
                "name the file to read it")
    return None


def _format_by_name(name: str) -> Optional[str]:
    low = name.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    return _EXTENSIONS.get(os.path.splitext(low)[1])


def detect(name: str, head: bytes) -> str:
    """The format of an input from its (decompressed) first bytes, else from its extension."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ElfFile\0"):
        return "evtx"
    by_name = _format_by_name(name)
    if by_name is not None:
        return by_name
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:  # empty, or blank lines only: no record, in any format
        return "jsonl"
    if text.startswith(b"{"):
        return "jsonl"
    if text.startswith(b"["):
        return "json"
    if text and b"," in text.split(b"\n", 1)[0]:
        return "csv"
    raise _UnknownFormat("cannot tell the format from the name or the first bytes; give --input-format")


def _peek(stream: IO[bytes], n: int = 8192) -> bytes:
    if isinstance(stream, io.BufferedReader):
        return stream.peek(n)[:n]
    raise TypeError("not peekable")


def read(inp: Input, *, fmt: Optional[str] = None, fields: Optional[Iterable[str]] = None,
         chunk: int = CHUNK, max_record: int = MAX_RECORD_BYTES,
         position: Optional[Position] = None) -> Iterator[Item]:
    """Items of one input (see the module docstring); ``fmt`` overrides detection; ``fields``
    are the field names the rules read (``None``: decode whole records); ``max_record`` is the
    longest JSON line or CSV record read, in bytes; ``position``, if given, is kept up to date
    (bytes read, format)."""
    try:
        raw = sys.stdin.buffer if inp.path == "-" else open(inp.path, "rb")  # noqa: SIM115
    except OSError as e:
        yield Bad(None, f"cannot read: {e.strerror or e}")
        return
    gz: Optional[_Gunzip] = None
    if position is not None:
        position._raw = raw
        try:
            st = os.fstat(raw.fileno())
            position.total = st.st_size if stat.S_ISREG(st.st_mode) else None
        except (OSError, ValueError, io.UnsupportedOperation):
            position.total = None
    try:
        stream: IO[bytes] = raw
        try:
            head = _peek(raw, 2)
            if head.startswith(b"\x1f\x8b"):
                gz = _Gunzip(raw)
                stream = io.BufferedReader(gz, 1 << 16)
            kind = fmt or detect(inp.name, _peek(stream))  # type: ignore[arg-type]
        except OSError as e:
            yield Bad(None, f"cannot read: {getattr(e, 'strerror', None) or e}")
            return
        except _UnknownFormat as e:
            yield Bad(None, str(e))
            return
        if position is not None:
            position.format = kind
        reader = _READERS[kind]
        yield from reader(inp, stream, fields, chunk, max_record)
        if gz is not None and gz.damage is not None:
            yield Bad(None, gz.damage)
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


class _Gunzip(io.RawIOBase):
    """The decompressed bytes of a gzip stream (one or more members), read in bounded steps.

    Damage ends the stream instead of raising: every byte decompressed before it is returned
    first, and ``damage`` then says what was wrong and at which byte of the compressed input
    (a truncated member, a corrupt member, or bytes after the last member that are not gzip).
    """

    STEP = 1 << 16  # compressed bytes read at a time
    OUT = 1 << 20  # most decompressed bytes made at a time

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.pending = b""  # compressed bytes not yet given to the decompressor
        self.offset = 0  # byte position of pending[0] in the compressed input
        self.member: Optional[Any] = None  # the decompressor of the member being read
        self.member_start = 0
        self.out = memoryview(b"")
        self.done = False
        self.damage: Optional[str] = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.out and not self.done:
            self._step()
        n = min(len(b), len(self.out))
        b[:n] = self.out[:n]
        self.out = self.out[n:]
        return n

    def _more(self) -> bool:
        data = self.raw.read(self.STEP)
        self.pending += data
        return bool(data)

    SALVAGE = 256  # compressed bytes a step when decompressing up to damage

    def _salvage(self, member: Any) -> tuple[bytes, int]:
        """The output of ``pending`` up to the step of :data:`SALVAGE` bytes that holds the damage,
        and where that step starts."""
        out, at = [], 0
        while at < len(self.pending):
            try:
                out.append(member.decompress(self.pending[at : at + self.SALVAGE]))
            except zlib.error:
                break
            at += self.SALVAGE
        return b"".join(out), self.offset + at

    def _stop(self, damage: Optional[str]) -> None:
        self.done = True
        self.damage = damage

    def _step(self) -> None:
        if self.member is None:  # between members: another one, padding, junk, or the end
            while len(self.pending) < 2 and self._more():
                pass
            if not self.pending:
                return self._stop(None)
            if self.pending == b"\x1f":  # the file ends one byte into a member
                return self._stop(f"truncated: the file ends at byte {self.offset + 1} inside the gzip member that "
                                  f"starts at byte {self.offset}")
            if self.pending[:2] == b"\x1f\x8b":
                self.member = zlib.decompressobj(31)
                self.member_start = self.offset
            elif not self.pending.strip(b"\0"):  # zero padding after the last member is allowed
                self.offset += len(self.pending)
                self.pending = b""
                if not self._more():
                    self._stop(None)
                return
            else:
                junk = self.offset
                end = self.offset + len(self.pending)
                self.pending = b""
                while self._more():  # count the junk to its end, holding none of it
                    end += len(self.pending)
                    self.pending = b""
                return self._stop(f"bytes {junk}..{end} after the last gzip member are not gzip data: not read")
        if not self.pending and not self._more():
            rest = self.member.flush()
            self.out = memoryview(rest)
            return self._stop(f"truncated: the file ends at byte {self.offset} inside the gzip member that starts at "
                              f"byte {self.member_start}; what was decompressed before that was read")
        before = self.member.copy()
        try:
            data = self.member.decompress(self.pending, self.OUT)
        except zlib.error as e:  # zlib drops that call's output: decompress it again in small steps
            data, at = self._salvage(before)
            self.out = memoryview(data)
            return self._stop(f"corrupt gzip data ({e}) in bytes {at}..{min(at + self.SALVAGE, self.offset + len(self.pending))} "
                              f"(member from byte {self.member_start}); what came before was read, the rest of the "
                              "file is not")
        if self.member.eof:
            used = len(self.pending) - len(self.member.unused_data)
            self.pending = self.member.unused_data
            self.member = None
        else:
            used = len(self.pending) - len(self.member.unconsumed_tail)
            self.pending = self.member.unconsumed_tail
        self.offset += used
        self.out = memoryview(data)


def _read_error(e: OSError) -> str:
    return f"read error ({e.strerror or e})"


# -- JSON lines ----------------------------------------------------------------------------------


class JsonLinesDecoder:
    """Decode one JSON line into a dict: whole, or only the keys the rules read (msgspec).

    Every line decodes to what ``json.loads`` gives (:func:`matcher.jsonio.loads`): the fast
    decoders are tried first, and a line they refuse or would read differently (an integer
    over 64 bits, ``1e999``, ``NaN``, a lone surrogate, deep nesting) is decoded exactly.
    ``decode`` raises ``ValueError`` with a message for invalid JSON, undecodable bytes and
    values that are not objects.
    """

    def __init__(self, fields: Optional[Iterable[str]] = None):
        self.keys: Optional[tuple[str, ...]] = None
        if fields is not None:
            keys: dict[str, None] = {}
            for f in fields:
                keys[f] = None
                keys[f.split(".", 1)[0]] = None
            self.keys = tuple(keys)
        if self.keys is not None:
            import msgspec

            names = [f"f{i}" for i in range(len(self.keys))]
            struct = msgspec.defstruct(
                "Selected", [(n, Any, None) for n in names], rename=dict(zip(names, self.keys)), omit_defaults=False
            )
            self._decoder = msgspec.json.Decoder(struct)
            self._many = msgspec.json.Decoder(list[struct])  # type: ignore[valid-type]
            self._errors: tuple = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
            self._astuple = msgspec.structs.astuple
            self._dotted = any("." in k for k in self.keys)

    def decode_many(self, lines: list[bytes]) -> Optional[list[dict]]:
        """All of ``lines`` decoded in one call (as one JSON array), or ``None`` when any line is
        bad, holds more than one value, or needs the exact decoder: then :meth:`decode` each."""
        joined = b"[" + b",".join(lines) + b"]"
        try:
            if self.keys is None:
                if jsonio.needs_exact(joined):
                    return None
                recs = orjson.loads(joined)
                if len(recs) != len(lines) or not all(type(r) is dict for r in recs):
                    return None
                return recs
            if not joined.isascii():
                joined.decode("utf-8")  # msgspec does not look at the bytes of the values it skips
            structs = self._many.decode(joined)
        except (orjson.JSONDecodeError, *getattr(self, "_errors", ())):
            return None
        if len(structs) != len(lines):
            return None
        return [self._selected(self._astuple(x)) for x in structs]

    def _selected(self, values: Iterable[Any]) -> dict:
        keys = self.keys
        assert keys is not None
        if self._dotted:  # a present None would hide a nested path (DESIGN.md: exact key first)
            return {k: v for k, v in zip(keys, values) if v is not None}
        return dict(zip(keys, values))  # None values read as absent

    def decode(self, raw: bytes) -> dict:
        if self.keys is not None:
            try:
                if not raw.isascii():
                    raw.decode("utf-8")  # msgspec does not look at the bytes of the values it skips
                return self._selected(self._astuple(self._decoder.decode(raw)))
            except self._errors:
                pass  # the exact decoder says whether the line is JSON, and what it holds
        try:
            rec = jsonio.loads(raw)
        except UnicodeDecodeError as e:
            raise ValueError(f"undecodable bytes ({e.reason} at byte {e.start})") from None
        except ValueError as e:
            raise ValueError(f"not valid JSON ({e})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"a JSON {_json_type(rec)}, not an object")
        if self.keys is None:
            return rec
        return self._selected(rec.get(k) for k in self.keys)


def _json_type(v: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(v), "null")


class _TooLong:
    """A line longer than the limit, in place of its bytes (which were not kept)."""

    __slots__ = ("size",)

    def __init__(self, size: int):
        self.size = size


def _lines(stream: IO[bytes], limit: int, block: int = 1 << 22) -> Iterator[list[Any]]:
    """Lines (without their end of line) in blocks of about ``block`` bytes; a last line without
    a newline counts too. A line over ``limit`` bytes comes as a :class:`_TooLong`; its bytes are
    dropped as they are read (memory stays near ``block + limit``, time linear)."""
    pending: list[bytes] = []  # the start of a line that continues in the next block
    size = 0  # its length
    skipping = False  # it is over the limit: count it, keep nothing
    read = getattr(stream, "read1", stream.read)  # what is there: a pipe's lines go on as they come
    while True:
        data = read(block)
        if not data:
            break
        parts = data.split(b"\n")
        last = parts.pop()
        if parts and (pending or skipping):
            size += len(parts[0])
            parts[0] = _TooLong(size) if skipping or size > limit else b"".join((*pending, parts[0]))  # type: ignore[call-overload]
            pending, size, skipping = [], 0, False
        if limit < block:
            parts = [_TooLong(len(x)) if type(x) is bytes and len(x) > limit else x for x in parts]
        size += len(last)
        if skipping or size > limit:
            skipping, pending = True, []
        elif last:
            pending.append(last)
        yield parts
    if skipping:
        yield [_TooLong(size)]
    elif pending:
        yield [b"".join(pending)]


def _whole_record(raws: list[bytes]) -> Callable[[int], Any]:
    return lambda i: jsonio.loads(raws[i])


def _no_whole(raws: list[bytes]) -> None:
    return None


#: Decode only the rules' fields when the first record has at least this many times as many keys.
WIDE = 3


def _too_long(size: int, limit: int) -> str:
    return f"a record of {size:,} bytes, over the limit of {limit:,} (--max-record-bytes); skipped"


def jsonl_decoder(first: bytes, fields: Optional[Iterable[str]]) -> JsonLinesDecoder:
    """The decoder for a JSON lines input whose first non-blank line is ``first``: only the
    rules' ``fields`` when records are wide, else whole records (measured: docs/cli.md)."""
    try:
        n = len(orjson.loads(first))
    except (orjson.JSONDecodeError, TypeError):
        n = 0
    sel = JsonLinesDecoder(fields)
    return sel if sel.keys is not None and n >= WIDE * len(sel.keys) else JsonLinesDecoder(None)


def _read_jsonl(inp: Input, stream: IO[bytes], fields, chunk: int, limit: int, *, lineno: int = 0,
                dec: Optional[JsonLinesDecoder] = None) -> Iterator[Item]:
    """``lineno``: lines before the stream (a byte range of a file); ``dec``: the decoder chosen
    for the whole file (else chosen here, from the first non-blank line)."""
    decided = fields is None or dec is not None
    dec = dec or JsonLinesDecoder(None)
    try:
        for block in _lines(stream, limit):
            for n, line in enumerate(block):
                if type(line) is _TooLong:
                    yield Bad(lineno + n + 1, _too_long(line.size, limit))
                    block[n] = b""
            if not decided:
                first = next((line for line in block if line.strip()), None)
                if first is not None:
                    decided = True
                    dec = jsonl_decoder(first, fields)
            full = _whole_record if dec.keys is not None else _no_whole
            for lo in range(0, len(block), chunk):
                part = block[lo : lo + chunk]
                where = [lineno + lo + i + 1 for i, line in enumerate(part) if line.strip()]
                raws = [part[w - lineno - lo - 1] for w in where]
                events = dec.decode_many(raws) if raws else []
                if events is not None:
                    if events:
                        yield Records("line", where, events, full(raws))
                    continue
                good_w: list[int] = []
                good_e: list[dict] = []
                good_r: list[bytes] = []
                for w, raw in zip(where, raws):
                    try:
                        ev = dec.decode(raw)
                    except ValueError as e:
                        if good_e:
                            yield Records("line", good_w, good_e, full(good_r))
                            good_w, good_e, good_r = [], [], []
                        yield Bad(w, str(e))
                        continue
                    good_w.append(w)
                    good_e.append(ev)
                    good_r.append(raw)
                if good_e:
                    yield Records("line", good_w, good_e, full(good_r))
            lineno += len(block)
    except OSError as e:
        yield Bad(None, f"{_read_error(e)} after line {lineno}")


# -- JSON array ------------------------------------------------------------------------------------


def _read_json(inp: Input, stream: IO[bytes], fields, chunk: int, limit: int) -> Iterator[Item]:
    """The document is read whole (JSON arrays are for small inputs; JSON lines stream)."""
    try:
        data = stream.read()
    except OSError as e:
        yield Bad(None, _read_error(e))
        return
    try:
        doc = jsonio.loads(data)
    except ValueError as e:
        yield Bad(None, f"not valid JSON ({e})")
        return
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        yield Bad(None, f"a JSON {_json_type(doc)}, not an array of objects")
        return
    where: list[int] = []
    events: list[dict] = []
    for i, rec in enumerate(doc, 1):
        if isinstance(rec, dict):
            where.append(i)
            events.append(rec)
            if len(events) >= chunk:
                yield Records("row", where, events)
                where, events = [], []
            continue
        if events:
            yield Records("row", where, events)
            where, events = [], []
        yield Bad(i, f"item is a JSON {_json_type(rec)}, not an object", "row")
    if events:
        yield Records("row", where, events)


# -- CSV -------------------------------------------------------------------------------------------


def _read_csv(inp: Input, stream: IO[bytes], fields, chunk: int, limit: int) -> Iterator[Item]:
    """A header line, then one record per row; empty cells are absent fields. Undecodable bytes,
    rows with more cells than the header, records over ``limit`` and records an unbalanced quote
    would run on over many lines are bad records; reading goes on at the next line."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _csv_rows(_CsvLines(text, limit), chunk)
    finally:
        text.detach()  # the wrapper must not close the stream (standard input) when collected


class _CsvTooLong(Exception):
    def __init__(self, size: int, one_line: bool):
        self.size = size
        self.one_line = one_line


class _CsvLines:
    """The physical lines of CSV text, for ``csv.reader``: numbered, at most ``limit`` characters
    a record, and the lines of the record being read kept, so that a record that turns out bad
    can be read again from its second line (:meth:`retry`)."""

    def __init__(self, text: IO[str], limit: int):
        self.text = text
        self.limit = limit
        self.again: list[str] = []  # lines to hand out again, last first
        self.first = 1  # the line number of the record being read
        self.record: list[str] = []  # its lines handed out so far
        self.size = 0

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        if self.again:
            line = self.again.pop()
        else:
            line = self.text.readline(self.limit + 1)
            if not line:
                raise StopIteration
            if len(line) > self.limit and not line.endswith(("\n", "\r")):
                size = len(line)
                while True:  # stream past the rest of the line, keeping none of it
                    more = self.text.readline(1 << 20)
                    size += len(more)
                    if not more or more.endswith(("\n", "\r")):
                        break
                raise _CsvTooLong(size + self.size, True)
        self.record.append(line)
        self.size += len(line)
        if self.size > self.limit:
            raise _CsvTooLong(self.size, False)
        return line

    def next_record(self, skipped: int = 0) -> None:
        """The record read is done (``skipped`` more lines were dropped after it)."""
        self.first += len(self.record) + skipped
        self.record, self.size = [], 0

    def retry(self) -> None:
        """The record from its second line on is read again (its first line is bad)."""
        self.again.extend(reversed(self.record[1:]))
        self.first += 1
        self.record, self.size = [], 0


def _undecodable(row: list[str]) -> bool:
    return any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell)


def _one_strict_record(lines: list[str]) -> bool:
    """Whether ``lines`` are one well-formed record: every quote closed, and followed by a
    delimiter or the end of the line (a record over several lines that is not was made by stray
    quotes)."""
    try:
        return len(list(csv.reader(lines, strict=True))) == 1
    except csv.Error:
        return False


def _csv_rows(lines: _CsvLines, chunk: int) -> Iterator[Item]:
    where: list[int] = []
    events: list[dict] = []
    header: Optional[list[str]] = None
    reader: Any = None
    while True:
        lines.next_record()
        if reader is None:
            reader = csv.reader(lines)
        start = lines.first
        problem: Optional[str] = None
        try:
            row = next(reader)
        except StopIteration:
            break
        except _CsvTooLong as e:
            problem = _too_long(e.size, lines.limit)
            if e.one_line:
                lines.next_record(skipped=1)
            else:
                problem += " (an unbalanced quote?)"
                lines.retry()
            reader = None
        except csv.Error as e:
            problem = f"not valid CSV ({e})"
            lines.retry()
            reader = None
        except OSError as e:
            if events:
                yield Records("line", where, events)
            yield Bad(None, f"{_read_error(e)} after line {start - 1}")
            return
        else:
            if header is None:
                if _undecodable(row):
                    yield Bad(None, "undecodable bytes in the header line")
                    return
                header = row
                continue
            if not row:
                continue
            if len(lines.record) > 1 and (len(row) != len(header) or not _one_strict_record(lines.record)):
                problem = (f"an unbalanced quote: the record would run over lines {start}..{start + len(lines.record) - 1} "
                           f"with {len(row)} cells; the next line is read as a record")
                lines.retry()
                reader = None
            elif len(row) > len(header):
                problem = f"{len(row)} cells, the header has {len(header)}"
            elif _undecodable(row):
                problem = "undecodable bytes (not UTF-8)"
        if problem:
            if events:
                yield Records("line", where, events)
                where, events = [], []
            yield Bad(start, problem)
            continue
        where.append(start)
        events.append({k: v for k, v in zip(header, row) if v != ""})
        if len(events) >= chunk:
            yield Records("line", where, events)
            where, events = [], []
    if header is None:
        yield Bad(None, "empty CSV: no header line")
    if events:
        yield Records("line", where, events)


# -- Parquet ---------------------------------------------------------------------------------------


PARQUET_BATCH = 65_536


def _read_parquet(inp: Input, stream: IO[bytes], fields, chunk: int, limit: int, *,
                  row_groups: Optional[list[int]] = None, first_row: int = 1) -> Iterator[Item]:
    """Record batches of at most :data:`PARQUET_BATCH` rows, read one row group at a time
    (bounded memory); a row group that cannot be read is reported (rows, bytes) and the next one
    read. Standard input and gzip-compressed files are read into memory first (Parquet needs
    seeking). ``row_groups`` (whose first row is ``first_row``) reads only those."""
    try:
        pa = need("pyarrow", "Parquet input")
        pq = need("pyarrow.parquet", "Parquet input")
    except MissingDependency as e:
        yield Bad(None, str(e))
        return
    errors = (OSError, ValueError, pa.ArrowException)
    try:
        source: Any = inp.path if (inp.path != "-" and isinstance(stream, io.BufferedReader) and
                                   isinstance(stream.raw, io.FileIO) and stream.raw.seekable()) else pa.BufferReader(stream.read())
        pf = pq.ParquetFile(source)
        md = pf.metadata
    except errors as e:
        yield Bad(None, f"not a readable Parquet file ({e})")
        return
    row = first_row
    for g in range(md.num_row_groups) if row_groups is None else row_groups:
        n = md.row_group(g).num_rows
        done = 0
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH, row_groups=[g]):
                yield Columns(row + done, batch)
                done += batch.num_rows
        except errors as e:
            lo, hi = _row_group_bytes(md.row_group(g))
            yield Bad(None, f"row group {g} (rows {row + done}..{row + n - 1}, bytes {lo}..{hi}) is not readable "
                      f"({str(e).strip()}); its rows are skipped", records=max(1, n - done))
        row += n


def _row_group_bytes(rg: Any) -> tuple[int, int]:
    """The byte range of a row group's column chunks (from the footer)."""
    lo, hi = None, 0
    for c in range(rg.num_columns):
        col = rg.column(c)
        start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
        lo = start if lo is None else min(lo, start)
        hi = max(hi, start + col.total_compressed_size)
    return lo or 0, hi


# -- EVTX ------------------------------------------------------------------------------------------

def _text(v: Any) -> Any:
    if isinstance(v, dict):  # an element with attributes: {"#attributes": {...}, "#text": value}
        return v.get("#text")
    return v


def evtx_event(record: dict) -> dict:
    """One record as the ``evtx`` package emits it (``json.loads(record["data"])``) -> a flat event.

    The event holds the ``EventData`` (or ``UserData``) fields (a name with spaces also without
    them: ``Threat Name`` and ``ThreatName``), and from ``System``: ``EventID``,
    ``Channel``, ``Computer``, ``Provider`` (its name), ``EventRecordID`` and ``TimeCreated``.
    Sysmon event 1 and Security event 4688 (process creation) also get the S1 names
    (``EventType = "Process Creation"``, ``EndpointOS = "windows"``, ``TgtProcImagePath``, ...),
    so S1 rules run on them as they are.
    """
    ev_root = record.get("Event", record)
    system = ev_root.get("System") or {}
    out: dict[str, Any] = {}
    data = ev_root.get("EventData")
    if data is None and isinstance(ev_root.get("UserData"), dict):
        inner = list(ev_root["UserData"].values())
        data = inner[0] if len(inner) == 1 and isinstance(inner[0], dict) else ev_root["UserData"]
    if isinstance(data, dict):
        out.update((k, _text(v)) for k, v in data.items() if k != "#attributes")
        # Names with spaces (Windows Defender's "Threat Name", "Process Name") are also given
        # without them, as Sigma rules name them (``ThreatName``) and Sigma's EVTX tools read them.
        out.update((k.replace(" ", ""), out[k]) for k in list(out) if " " in k and k.replace(" ", "") not in out)
    provider = system.get("Provider")
    time_created = system.get("TimeCreated")
    out.update({
        "EventID": _text(system.get("EventID")),
        "Channel": system.get("Channel"),
        "Computer": system.get("Computer"),
        "Provider": provider.get("#attributes", {}).get("Name") if isinstance(provider, dict) else provider,
        "EventRecordID": system.get("EventRecordID"),
        "TimeCreated": time_created.get("#attributes", {}).get("SystemTime") if isinstance(time_created, dict) else time_created,
    })
    eid = out["EventID"]
    table = None
    if eid == 1 and "Sysmon" in str(out["Provider"] or out["Channel"] or ""):
        table = SYSMON_1_TO_S1
    elif eid == 4688 and (out["Channel"] == "Security" or "Security-Auditing" in str(out["Provider"] or "")):
        table = SECURITY_4688_TO_S1
    if table is not None:
        out["EventType"] = "Process Creation"
        out["EndpointOS"] = "windows"
        for src, dst in table.items():
            if out.get(src) is not None:
                out[dst] = out[src]
        if table is SECURITY_4688_TO_S1 and out.get("TargetUserName") not in (None, "-"):
            domain = out.get("TargetDomainName")
            out["TgtProcUser"] = f"{domain}\\{out['TargetUserName']}" if domain not in (None, "-") else out["TargetUserName"]
    return {k: v for k, v in out.items() if v is not None}


def evtx_records(records: Iterable[dict]) -> Iterator[tuple[int, Union[dict, str]]]:
    """``(record id, event or problem)`` for records shaped as ``PyEvtxParser.records_json()`` yields."""
    for n, rec in enumerate(records, 1):
        rid = rec.get("event_record_id", n)
        try:
            doc = orjson.loads(rec["data"])
        except (KeyError, TypeError, orjson.JSONDecodeError) as e:
            yield rid, f"record not decodable ({e})"
            continue
        if not isinstance(doc, dict):
            yield rid, "record is not an object"
            continue
        yield rid, evtx_event(doc)


EVTX_HEADER = 4096
EVTX_CHUNK = 65536


def _read_full(stream: IO[bytes], n: int) -> bytes:
    parts = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _read_evtx(inp: Input, stream: IO[bytes], fields, chunk: int, limit: int) -> Iterator[Item]:
    """Each 64 KiB chunk is parsed on its own (behind a copy of the file header that names one
    chunk), so a corrupt chunk is reported with its byte range and the next one is read; a file
    that ends inside a chunk is reported. Memory stays at one chunk, from files, gzip or stdin."""
    try:
        PyEvtxParser = need("evtx", "EVTX input").PyEvtxParser
    except MissingDependency as e:
        yield Bad(None, str(e))
        return
    try:
        header = _read_full(stream, EVTX_HEADER)
    except OSError as e:
        yield Bad(None, _read_error(e))
        return
    if len(header) < EVTX_HEADER or not header.startswith(b"ElfFile\0"):
        yield Bad(None, f"not an EVTX file: no {EVTX_HEADER:,}-byte file header (ElfFile) at byte 0")
        return
    one = bytearray(header)  # the header of a file of one chunk, numbered 0
    struct.pack_into("<QQ", one, 8, 0, 0)
    struct.pack_into("<H", one, 42, 1)
    struct.pack_into("<I", one, 124, zlib.crc32(bytes(one[:120])))
    offset = EVTX_HEADER
    n = 0
    while True:
        try:
            data = _read_full(stream, EVTX_CHUNK)
        except OSError as e:
            yield Bad(None, f"{_read_error(e)} at byte {offset}")
            return
        if not data:
            return
        where = f"chunk {n} (bytes {offset}..{offset + len(data)})"
        if len(data) < EVTX_CHUNK:
            yield Bad(None, f"truncated: the file ends inside {where}, {len(data):,} of {EVTX_CHUNK:,} bytes; "
                      "its records are not read")
            return
        if data.startswith(b"ElfChnk\0"):
            yield from _evtx_chunk(PyEvtxParser, bytes(one) + data, where, chunk)
        elif data.strip(b"\0"):  # an all-zero chunk is unused space, not damage
            yield Bad(None, f"{where} has no chunk header (ElfChnk); skipped")
        offset += EVTX_CHUNK
        n += 1


def _evtx_chunk(parser_class: Any, data: bytes, where: str, chunk: int) -> Iterator[Item]:
    first, last = struct.unpack_from("<QQ", data, EVTX_HEADER + 8)
    expected = last - first + 1 if 0 < last - first + 1 <= EVTX_CHUNK else 1
    got = 0
    ids: list[int] = []
    events: list[dict] = []
    try:
        it = iter(parser_class(io.BytesIO(data)).records_json())
    except (OSError, RuntimeError, ValueError) as e:
        yield Bad(None, f"{where} is not readable ({e}); skipped", records=expected)
        return
    while True:
        try:
            rec = next(it)
        except StopIteration:
            break
        except (RuntimeError, OSError, ValueError) as e:  # the parser goes on after it
            if events:
                yield Records("record", ids, events)
                ids, events = [], []
            whole = str(e).startswith("Failed to parse chunk")
            yield Bad(None, f"{where}: {e}; " + ("its records are skipped" if whole else "one record skipped"),
                      records=max(1, expected - got) if whole else 1)
            got = expected if whole else got + 1
            continue
        got += 1
        for rid, ev in evtx_records([rec]):
            if isinstance(ev, str):
                if events:
                    yield Records("record", ids, events)
                    ids, events = [], []
                yield Bad(rid, ev, "record")
                continue
            ids.append(rid)
            events.append(ev)
            if len(events) >= chunk:
                yield Records("record", ids, events)
                ids, events = [], []
    if events:
        yield Records("record", ids, events)


_READERS = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet, "evtx": _read_evtx}
