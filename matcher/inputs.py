"""Log readers for ``matcher scan``: JSON lines, JSON arrays, CSV, Parquet and Windows EVTX, each
optionally gzip-compressed, from files, directories or standard input.

:func:`read` turns one input into a stream of items, in input order:

- :class:`Records`: a chunk of decoded events (mappings) with their line or row numbers;
- :class:`Columns`: one Arrow record batch (Parquet), to be matched on the columnar path;
- :class:`Bad`: a record or a whole input that could not be read, with where and why.

Bad input never raises: it becomes a :class:`Bad` item and reading goes on with the next record
(or, when the input itself is unreadable or truncated, with the next input). The caller counts
``Records`` and ``Columns`` rows as read, and each ``Bad`` as one record read and bad.

JSON lines are decoded with msgspec into a struct holding only the fields the rules read (the
top-level keys of their field names), which is several times faster than decoding whole
objects on wide records; a matched line is decoded again in full (orjson) for the output.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional, Union

import orjson

from ._optional import need
from .errors import MissingDependency

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


@dataclass
class Bad:
    """A record (``where`` set) or a whole input (``where`` None) that could not be read."""

    where: Optional[int]
    problem: str
    unit: str = "line"


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


def expand(specs: Iterable[str]) -> tuple[list[Input], list[str]]:
    """Inputs named on the command line: files as given, directories walked (sorted, recursive,
    hidden entries left out) for files whose extension names a format (``.gz`` too).

    Returns the inputs and the files of those directories that were passed over (to report). A
    directory with no log file in it is returned as an input, so reading it reports it.
    """
    out: list[Input] = []
    passed: list[str] = []
    for spec in specs:
        if spec == "-":
            out.append(Input("-", "<stdin>"))
            continue
        p = Path(spec)
        if not p.is_dir():
            out.append(Input(spec, spec))
            continue
        before = len(out)
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if f.startswith("."):
                    continue
                full = os.path.join(root, f)
                if _format_by_name(f) is not None:
                    out.append(Input(full, full))
                else:
                    passed.append(full)
        if len(out) == before:  # no log file in it: read the directory itself, which is reported
            out.append(Input(spec, spec))
    return out, passed


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
         chunk: int = CHUNK, position: Optional[Position] = None) -> Iterator[Item]:
    """Items of one input (see the module docstring); ``fmt`` overrides detection; ``fields``
    are the field names the rules read (``None``: decode whole records); ``position``, if given,
    is kept up to date (bytes read, format)."""
    try:
        raw = sys.stdin.buffer if inp.path == "-" else open(inp.path, "rb")  # noqa: SIM115
    except OSError as e:
        yield Bad(None, f"cannot read: {e.strerror or e}")
        return
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
                stream = io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), 1 << 16)  # type: ignore[arg-type]
            kind = fmt or detect(inp.name, _peek(stream))  # type: ignore[arg-type]
        except (OSError, EOFError, zlib.error) as e:
            yield Bad(None, f"cannot read: {getattr(e, 'strerror', None) or e}")
            return
        except _UnknownFormat as e:
            yield Bad(None, str(e))
            return
        if position is not None:
            position.format = kind
        reader = _READERS[kind]
        yield from reader(inp, stream, fields, chunk)
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _truncated(e: BaseException) -> str:
    if isinstance(e, EOFError):
        return "truncated compressed data"
    if isinstance(e, (zlib.error, gzip.BadGzipFile)):
        return f"corrupt compressed data ({e})"
    return f"read error ({getattr(e, 'strerror', None) or e})"


# -- JSON lines ----------------------------------------------------------------------------------


class JsonLinesDecoder:
    """Decode one JSON line into a dict: whole (orjson), or only the keys the rules read (msgspec).

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
            self._errors: tuple = (msgspec.DecodeError, UnicodeDecodeError)
            self._astuple = msgspec.structs.astuple
            self._dotted = any("." in k for k in self.keys)

    def decode_many(self, lines: list[bytes]) -> Optional[list[dict]]:
        """All of ``lines`` decoded in one call (as one JSON array), or ``None`` when any line is
        bad or holds more than one value: then :meth:`decode` each, to name the bad ones."""
        joined = b"[" + b",".join(lines) + b"]"
        try:
            if self.keys is None:
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
        keys, astuple = self.keys, self._astuple
        if self._dotted:  # a present None would hide a nested path (DESIGN.md: exact key first)
            return [{k: v for k, v in zip(keys, astuple(x)) if v is not None} for x in structs]
        return [dict(zip(keys, astuple(x))) for x in structs]  # None values read as absent

    def decode(self, raw: bytes) -> dict:
        if self.keys is None:
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                raise ValueError(f"not valid JSON ({e})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"a JSON {_json_type(rec)}, not an object")
            return rec
        if not raw.isascii():
            try:  # msgspec does not look at the bytes of the values it skips; orjson would refuse them
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"undecodable bytes ({e.reason} at byte {e.start})") from None
        try:
            values = self._astuple(self._decoder.decode(raw))
        except self._errors as e:
            msg = str(e)
            if msg.startswith("Expected `object`, got"):
                got = msg.rsplit("`", 2)[-2]
                got = {"str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(got, got)
                raise ValueError(f"a JSON {got}, not an object") from None
            raise ValueError(f"not valid JSON ({msg})") from None
        return {k: v for k, v in zip(self.keys, values) if v is not None}


def _json_type(v: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(v), "null")


def _lines(stream: IO[bytes], block: int = 1 << 22) -> Iterator[list[bytes]]:
    """Lines (without their end of line) in blocks of about ``block`` bytes; a last line without
    a newline counts too."""
    rest = b""
    while True:
        data = stream.read(block)
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield lines
    if rest:
        yield [rest]


def _whole_record(raws: list[bytes]) -> Callable[[int], Any]:
    return lambda i: orjson.loads(raws[i])


def _no_whole(raws: list[bytes]) -> None:
    return None


#: Decode only the rules' fields when the first record has at least this many times as many keys.
WIDE = 3


def jsonl_decoder(first: bytes, fields: Optional[Iterable[str]]) -> JsonLinesDecoder:
    """The decoder for a JSON lines input whose first non-blank line is ``first``: only the
    rules' ``fields`` when records are wide, else whole records (measured: docs/cli.md)."""
    try:
        n = len(orjson.loads(first))
    except (orjson.JSONDecodeError, TypeError):
        n = 0
    sel = JsonLinesDecoder(fields)
    return sel if sel.keys is not None and n >= WIDE * len(sel.keys) else JsonLinesDecoder(None)


def _read_jsonl(inp: Input, stream: IO[bytes], fields, chunk: int, *, lineno: int = 0,
                dec: Optional[JsonLinesDecoder] = None) -> Iterator[Item]:
    """``lineno``: lines before the stream (a byte range of a file); ``dec``: the decoder chosen
    for the whole file (else chosen here, from the first non-blank line)."""
    decided = fields is None or dec is not None
    dec = dec or JsonLinesDecoder(None)
    try:
        for block in _lines(stream):
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
    except (OSError, EOFError, zlib.error) as e:
        yield Bad(None, f"{_truncated(e)} after line {lineno}")


# -- JSON array ------------------------------------------------------------------------------------


def _read_json(inp: Input, stream: IO[bytes], fields, chunk: int) -> Iterator[Item]:
    try:
        data = stream.read()
    except (OSError, EOFError, zlib.error) as e:
        yield Bad(None, _truncated(e))
        return
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
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


def _read_csv(inp: Input, stream: IO[bytes], fields, chunk: int) -> Iterator[Item]:
    """A header line, then one record per row; empty cells are absent fields. Undecodable bytes
    and rows with more cells than the header are bad records."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _csv_rows(csv.reader(text), chunk)
    finally:
        text.detach()  # the wrapper must not close the stream (standard input) when collected


def _csv_rows(reader: Any, chunk: int) -> Iterator[Item]:
    where: list[int] = []
    events: list[dict] = []
    header: Optional[list[str]] = None
    prev_end = 0
    while True:
        start = prev_end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            prev_end = reader.line_num
            if events:
                yield Records("line", where, events)
                where, events = [], []
            yield Bad(start, f"not valid CSV ({e})")
            continue
        except (OSError, EOFError, zlib.error) as e:
            if events:
                yield Records("line", where, events)
            yield Bad(None, f"{_truncated(e)} after line {prev_end}")
            return
        prev_end = reader.line_num
        if header is None:
            if any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell):
                yield Bad(None, "undecodable bytes in the header line")
                return
            header = row
            continue
        if not row:
            continue
        problem = None
        if len(row) > len(header):
            problem = f"{len(row)} cells, the header has {len(header)}"
        elif any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell):
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


def _read_parquet(inp: Input, stream: IO[bytes], fields, chunk: int, *, row_groups: Optional[list[int]] = None,
                  first_row: int = 1) -> Iterator[Item]:
    """Record batches of at most :data:`PARQUET_BATCH` rows, read one at a time (bounded memory).
    Standard input and gzip-compressed files are read into memory first (Parquet needs seeking).
    ``row_groups`` (whose first row is ``first_row``) reads only those."""
    try:
        pa = need("pyarrow", "Parquet input")
        pq = need("pyarrow.parquet", "Parquet input")
    except MissingDependency as e:
        yield Bad(None, str(e))
        return
    try:
        source: Any = inp.path if (inp.path != "-" and isinstance(stream, io.BufferedReader) and
                                   not isinstance(stream.raw, gzip.GzipFile)) else pa.BufferReader(stream.read())
        pf = pq.ParquetFile(source)
    except (OSError, EOFError, zlib.error, pa.ArrowException) as e:
        yield Bad(None, f"not a readable Parquet file ({e})")
        return
    row = first_row
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH, row_groups=row_groups):
            yield Columns(row, batch)
            row += batch.num_rows
    except (OSError, pa.ArrowException) as e:
        yield Bad(None, f"Parquet read error after row {row - 1} ({e})")


# -- EVTX ------------------------------------------------------------------------------------------

#: Sysmon event 1 and Security event 4688 fields -> S1 Deep Visibility names.
SYSMON_1_TO_S1 = {
    "Image": "TgtProcImagePath", "CommandLine": "TgtProcCmdLine", "ParentImage": "SrcProcImagePath",
    "ParentCommandLine": "SrcProcCmdLine", "ProcessId": "TgtProcPID", "ParentProcessId": "SrcProcPID",
    "User": "TgtProcUser", "IntegrityLevel": "TgtProcIntegrityLevel", "Description": "TgtProcDisplayName",
    "Company": "TgtProcPublisher", "TerminalSessionId": "TgtProcSessionId",
}
SECURITY_4688_TO_S1 = {
    "NewProcessName": "TgtProcImagePath", "CommandLine": "TgtProcCmdLine", "ParentProcessName": "SrcProcImagePath",
    "NewProcessId": "TgtProcPID", "ProcessId": "SrcProcPID",
}


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


def _read_evtx(inp: Input, stream: IO[bytes], fields, chunk: int) -> Iterator[Item]:
    try:
        PyEvtxParser = need("evtx", "EVTX input").PyEvtxParser
    except MissingDependency as e:
        yield Bad(None, str(e))
        return
    try:
        plain = inp.path != "-" and isinstance(stream, io.BufferedReader) and not isinstance(stream.raw, gzip.GzipFile)
        parser = PyEvtxParser(inp.path if plain else io.BytesIO(stream.read()))
        it = iter(parser.records_json())
    except (OSError, RuntimeError, ValueError, EOFError, zlib.error) as e:
        yield Bad(None, f"not a readable EVTX file ({e})")
        return
    where: list[int] = []
    events: list[dict] = []
    last = 0
    try:
        for rid, ev in evtx_records(it):
            last = rid
            if isinstance(ev, str):
                if events:
                    yield Records("record", where, events)
                    where, events = [], []
                yield Bad(rid, ev, "record")
                continue
            where.append(rid)
            events.append(ev)
            if len(events) >= chunk:
                yield Records("record", where, events)
                where, events = [], []
    except (RuntimeError, OSError, ValueError) as e:
        if events:
            yield Records("record", where, events)
        yield Bad(None, f"EVTX read error after record {last} ({e})")
        return
    if events:
        yield Records("record", where, events)


_READERS = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet, "evtx": _read_evtx}
