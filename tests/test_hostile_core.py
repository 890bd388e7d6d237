"""Hostile inputs against the compiled core (issue 11, classes 1, 2 and 7).

Class 1: the core reads pointers into ``str`` data and into events while Python code (a
``Mapping`` method, a dict key's ``__eq__``, an iterator, a whole-event callback, another
thread) may run in between. Each test below builds one way for that Python code to free what
the core reads; the core must own a reference to everything it reads, so the verdicts equal
the reference evaluator's and nothing crashes. Crash-prone cases run in a subprocess, so a
segmentation fault fails the test instead of killing pytest.

Class 2: Arrow buffers with out-of-range offsets or dictionary indices raise
``ArrowDataError`` naming the column, never read out of bounds.

Class 7: an iterator that raises in the middle of a scan: every match found before the
failure reaches the caller, then the error does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import matcher
from matcher.errors import ArrowDataError

ROOT = Path(__file__).resolve().parent.parent

# Shared by every subprocess scenario: a rule set over two fields (one gathered up front, one
# read lazily by candidates only), fresh (never interned, never shared) strings, and a check
# of every verdict against the expected set of matching rows.
PRELUDE = """
import gc, sys, threading
from collections.abc import Mapping
import matcher
from matcher.ir import Pred, Op, And
from matcher.rules import RuleInfo

def fresh(s):
    # A new str object with s's text, not shared with any other value.
    return "".join(list(s))

N = 2000
RS = matcher.RuleSet([matcher.compile('TgtProcName = "proc3.exe"', id="r")])
RS2 = matcher.RuleSet([matcher.compile('TgtProcName = "proc3.exe" AND SrcProcName containsCIS "svc"', id="r2")])
EXPECT = {i for i in range(N) if i % 7 == 3}

def name(i):
    return fresh("proc%d.exe" % (i % 7))

def check(found, expect=EXPECT):
    found = set(found)
    if found != expect:
        print("WRONG", len(found), len(expect), sorted(found ^ expect)[:10])
        sys.exit(3)
    print("OK", len(found))

JUNK = []
def scribble():
    # Reuse the memory just freed: strings of the same size with other text, dicts.
    gc.collect()
    JUNK.append([fresh("zzzz%d.exe" % (i % 7)) for i in range(N)])
    JUNK.append([{"x": i} for i in range(N)])

def check_prefix(found, limit):
    # The events list was cleared mid-scan: the rows seen before are matched as they were
    # (a prefix of the expected rows, up to the row whose lookup cleared the list).
    found = set(found)
    k = max(found, default=-1) + 1
    if k > limit or found != {i for i in EXPECT if i < k}:
        print("WRONG", sorted(found)[:10])
        sys.exit(3)
    print("OK", len(found))

class Key:
    # Hashes as the field name, so every lookup of the field in a dict holding it runs __eq__.
    busy = False
    def __init__(self, action): self.action = action
    def __hash__(self): return hash("TgtProcName")
    def __eq__(self, other):
        if not Key.busy:
            Key.busy = True
            try:
                self.action()
            finally:
                Key.busy = False
        return False
"""


def run_scenario(body: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)  # PYTHONPATH names the matcher under test (conftest)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def assert_ok(body: str) -> None:
    proc = run_scenario(body)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert proc.stdout.startswith("OK"), proc.stdout


# -- class 1: every way for Python code to free what the core reads ---------------------------


def test_mapping_getitem_returns_a_new_string_each_time():
    assert_ok("""
        class Ev(Mapping):
            def __init__(self, i): self.i = i
            def __getitem__(self, k):
                if k == "TgtProcName": return name(self.i)
                raise KeyError(k)
            def __iter__(self): return iter(["TgtProcName"])
            def __len__(self): return 1
        check(i for i, _ in RS.scan([Ev(i) for i in range(N)]))
    """)


def test_list_subclass_iterator_yields_copies():
    assert_ok("""
        class Copies(list):
            def __iter__(self):
                for e in list.__iter__(self):
                    yield dict(e, TgtProcName=fresh(e["TgtProcName"]))
        events = Copies({"TgtProcName": name(i)} for i in range(N))
        check(i for i, _ in RS.scan(events))
        rows, _ = RS.match_arrays(events)
        check(rows.tolist())
    """)




def test_dict_key_eq_rewrites_earlier_events_mid_gather():
    assert_ok("""
        events = [{"TgtProcName": name(i)} for i in range(N)]
        def rewrite():
            for ev in events:
                ev["TgtProcName"] = fresh(ev["TgtProcName"])  # the old value is freed
            gc.collect()
        Key.busy = True  # disarmed while the dicts are built
        for i in range(100, N, 300):  # the key comes first, so the field's lookup meets it
            events[i] = {Key(rewrite): 1, "TgtProcName": name(i)}
        Key.busy = False
        for batch in (8192, 50):
            check(i for i, _ in RS.scan(events, batch=batch))
        rows, _ = RS.match_arrays(events)
        check(rows.tolist())
        check(i for i, _ in RS.scan(iter(events)))
    """)


def test_dict_key_eq_clears_the_list_of_events_mid_gather():
    assert_ok("""
        def make():
            events = [{"TgtProcName": name(i)} for i in range(N)]
            Key.busy = True  # disarmed while the dict is built
            events[300] = {Key(lambda: (events.clear(), scribble())): 1, "TgtProcName": name(300)}
            Key.busy = False
            return events
        rows, _ = RS.match_arrays(make())
        check_prefix(rows.tolist(), 301)
        check_prefix((i for i, _ in RS.scan(make(), batch=100)), 400)  # scan copies a batch

        class Sub(list):
            pass
        events = Sub([{"TgtProcName": name(i)} for i in range(N)])
        Key.busy = True
        events[300] = {Key(lambda: (events.clear(), scribble())): 1, "TgtProcName": name(300)}
        Key.busy = False
        rows, _ = RS.match_arrays(events)  # no read-ahead: rows 0..300 are gathered
        check(rows.tolist(), {i for i in EXPECT if i <= 300})
    """)


def test_lazy_field_read_rewrites_gathered_values():
    # SrcProcName is read only by candidates (after TgtProcName fired), with the GIL, through
    # the mapping's own get(): it rewrites every event's gathered value.
    assert_ok("""
        class Ev(dict):
            pass
        class Hostile(Mapping):
            def __init__(self, d): self.d = d
            def __getitem__(self, k):
                if k == "SrcProcName":
                    for ev in events:
                        if isinstance(ev, dict):
                            ev["TgtProcName"] = fresh(ev["TgtProcName"])
                    gc.collect()
                return self.d[k]
            def __iter__(self): return iter(self.d)
            def __len__(self): return len(self.d)
        events = [{"TgtProcName": name(i), "SrcProcName": fresh("svchost.exe")} for i in range(N)]
        events[3] = Hostile(events[3])
        check(i for i, _ in RS2.scan(events))
    """)


def test_whole_event_callback_rewrites_events():
    # A whole-event predicate (Sigma's field reference) runs Python over the event mapping.
    assert_ok("""
        pred = And((Pred("TgtProcName", Op.EQUALS, "proc3.exe"), Pred("TgtProcName", Op.FIELDREF, "Other")))
        rs = matcher.RuleSet([matcher.Rule(pred, RuleInfo(id="w", title="w"))])
        class Hostile(Mapping):
            def __init__(self, d): self.d = d
            def __getitem__(self, k):
                for ev in events:
                    if isinstance(ev, dict):
                        ev["TgtProcName"] = fresh(ev["TgtProcName"])
                        ev["Other"] = fresh(ev["Other"])
                gc.collect()
                return self.d[k]
            def __iter__(self): return iter(self.d)
            def __len__(self): return len(self.d)
        events = [{"TgtProcName": name(i), "Other": name(i)} for i in range(N)]
        for i in range(3, N, 70):
            events[i] = Hostile(events[i])
        check(i for i, _ in rs.scan(events))
    """)


def test_other_thread_replaces_values_while_the_gil_is_released():
    # Every value the other thread writes matches (case-insensitively): a verdict that is not
    # a match means the core read freed memory. A regex rule re-takes the GIL per row, which
    # lets the writer run in the middle of a chunk.
    assert_ok("""
        sys.setswitchinterval(1e-6)
        rs = matcher.RuleSet([
            matcher.compile('TgtProcName = "proc3.exe"', id="a"),
            matcher.compile('TgtProcName RegExp "^PROC3"', id="b"),
        ])
        forms = ["proc3.exe", "PROC3.EXE", "Proc3.Exe"]
        events = [{"TgtProcName": fresh("proc3.exe")} for i in range(N)]
        stop = False
        def writer():
            k = 0
            while not stop:
                for ev in events:
                    ev["TgtProcName"] = fresh(forms[k % 3])
                    k += 1
        t = threading.Thread(target=writer)
        t.start()
        try:
            for _ in range(20):
                found = [i for i, r in rs.scan(events) if r == "a"]
                check(found, set(range(N)))
        finally:
            stop = True
            t.join()
    """)


# -- class 2: Arrow buffers that contradict their metadata -------------------------------------

ARROW = """
import struct
import pyarrow as pa
from matcher.errors import ArrowDataError
RSA = matcher.RuleSet([matcher.compile('TgtProcName = "opqrstu"', id="x")])

def i32(*xs): return pa.py_buffer(struct.pack("<%di" % len(xs), *xs))
def i64(*xs): return pa.py_buffer(struct.pack("<%dq" % len(xs), *xs))
DATA = pa.py_buffer(b"abcdefghijklmnopqrstu")

def strings(offsets, n=3, data=DATA, typ=pa.string(), offset=0, validity=None):
    return pa.Array.from_buffers(typ, n, [validity, offsets, data], offset=offset)

def dictionary(indices, n=3, itype=pa.int8(), dict_offsets=None):
    d = strings(dict_offsets or i32(0, 7, 14, 21))
    idx = pa.Array.from_buffers(itype, n, [None, indices])
    return pa.DictionaryArray.from_arrays(idx, d, safe=False)

def expect_error(arr):
    # An array goes into a batch of its own; a table (read from a file) goes as it is.
    data = arr if isinstance(arr, pa.Table) else pa.RecordBatch.from_arrays([arr], ["TgtProcName"])
    try:
        found = list(RSA.scan_arrow(data))
    except ArrowDataError as exc:
        assert exc.column == "TgtProcName", exc.column
        print("OK", exc)
        return
    print("WRONG: no error", found)
    sys.exit(3)
"""

# What pyarrow's construction (which runs its cheap validation) lets through: offsets and
# indices only its full validation looks at. Buffers too short, offsets past the data and
# slice offsets past the buffers are refused by Array.from_buffers, so they come from an IPC
# file below, and straight to the core in test_core_checks_column_buffers_itself.
HOSTILE_ARROW = {
    "offsets_not_monotonic": "strings(i32(0, 14, 7, 21))",
    "offset_negative_middle": "strings(i32(0, -(1 << 30), 14, 21))",
    "large_string_not_monotonic": "strings(i64(0, 14, 7, 21), typ=pa.large_string())",
    "dict_index_past_end": "dictionary(pa.py_buffer(bytes([0, 1, 100])))",
    "dict_index_negative": "dictionary(pa.py_buffer(bytes([0, 0xff, 2])))",
    "dict_index_int32_huge": "dictionary(i32(0, 1, 1 << 30), itype=pa.int32())",
    "dict_offsets_not_monotonic": "dictionary(pa.py_buffer(bytes([0, 1, 2])), dict_offsets=i32(0, 14, 7, 21))",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ARROW))
def test_hostile_arrow_buffers_raise_naming_the_column(case):
    pytest.importorskip("pyarrow")
    assert_ok(ARROW + f"expect_error({HOSTILE_ARROW[case]})\n")


# Past 4,096 rows a string column of few distinct values is dictionary-encoded by Arrow before
# the core reads it (_arrow._dictionary): Arrow's kernels must never meet hostile offsets, in the
# sample (row 100) or past it (row 4,500).
LONG = """
import numpy as np
def long_strings(bad_at, n=5000):
    offs = (np.arange(n + 1) % 2).cumsum().astype(np.int32)  # "", "a", "", "a", ...: few distinct
    offs[bad_at] = 1 << 30
    return strings(pa.py_buffer(offs.tobytes()), n=n, data=pa.py_buffer(b"a" * n))
"""


@pytest.mark.parametrize("bad_at", [100, 4500])
def test_hostile_long_column_of_few_values_raises_naming_the_column(bad_at):
    pytest.importorskip("pyarrow")
    assert_ok(ARROW + LONG + f"expect_error(long_strings({bad_at}))\n")


# correlate_arrow reads the time and group-by columns through Arrow (take, to_pylist) for the
# matched rows: the columns' layout is checked first, and bytes that are not UTF-8 there are an
# ArrowDataError naming the column, not a UnicodeDecodeError.
@pytest.mark.parametrize("column", ["EventTime", "U"])
@pytest.mark.parametrize("bad", ["offsets", "utf8"])
def test_correlate_arrow_hostile_columns_raise_naming_the_column(column, bad):
    pytest.importorskip("pyarrow")
    assert_ok(ARROW + LONG + f"""
from matcher.correlation import parse_correlation
rule = matcher.compile('EventID = "4625"', id="f", title="f")
corr = parse_correlation({{"title": "b", "id": "b", "correlation": {{"type": "event_count", "rules": ["f"],
                          "group-by": ["U"], "timespan": "5m", "condition": {{"gte": 2}}}}}}, where="b")
rs = matcher.RuleSet([rule, corr])
n = 5000
cols = {{"EventID": pa.array(["4625"] * n), "U": pa.array(["x", "y"] * (n // 2)),
        "EventTime": pa.array(["2024-01-01T00:00:00Z"] * n)}}
cols[{column!r}] = long_strings(100) if {bad!r} == "offsets" else pa.array([b"\\xff"] * n, pa.binary()).view(pa.string())
try:
    alerts = list(rs.correlate_arrow(pa.table(cols), timestamp="EventTime"))
except ArrowDataError as exc:
    assert exc.column == {column!r}, exc.column
    print("OK", exc)
else:
    print("WRONG: no error", len(alerts)); sys.exit(3)
""")


def test_hostile_ipc_file_raises_naming_the_column(tmp_path):
    # A Feather/IPC file written by pyarrow, then one string offset overwritten on disk.
    pytest.importorskip("pyarrow")
    assert_ok(ARROW + f"""
import io, pyarrow.feather as feather
path = {str(tmp_path / "bad.arrow")!r}
table = pa.table({{"TgtProcName": pa.array(["abcdefg", "hijklmn", "opqrstu"])}})
feather.write_feather(table, path, compression="uncompressed")
raw = bytearray(open(path, "rb").read())
at = raw.index(struct.pack("<4i", 0, 7, 14, 21))
good = bytes(raw[at:at + 16])
for bad in ((0, 7, 14, 1 << 20), (0, 7, 14, -1), (-(1 << 20), 7, 14, 21), (0, 15, 14, 21), (0, -7, 14, 21)):
    raw[at:at + 16] = struct.pack("<4i", *bad)
    open(path, "wb").write(raw)
    expect_error(feather.read_table(path))
    with pa.ipc.open_file(path) as reader:  # the same through a batch reader
        try:
            list(RSA.scan_arrow(reader.get_batch(i) for i in range(reader.num_record_batches)))
            print("WRONG: no error"); sys.exit(3)
        except ArrowDataError:
            pass
raw[at:at + 16] = good
open(path, "wb").write(raw)
print(list(RSA.scan_arrow(feather.read_table(path))))
""")


def _core_program():
    return matcher.RuleSet([matcher.compile('TgtProcName = "opqrstu"', id="x")])._program


def _mv(b: bytes) -> memoryview:
    return memoryview(b).cast("B")


def _i32(*xs: int) -> memoryview:
    import struct

    return _mv(struct.pack(f"<{len(xs)}i", *xs))


@pytest.mark.parametrize(
    "column, nrows",
    [
        (("utf8", None, 0, _i32(0, 7, 14, 99), 4, 0, _mv(b"abcdefghijklmnopqrstu")), 3),
        (("utf8", None, 0, _i32(0, 14, 7, 21), 4, 0, _mv(b"abcdefghijklmnopqrstu")), 3),
        (("utf8", None, 0, _i32(0, 7, 14, 21), 4, 1, _mv(b"abcdefghijklmnopqrstu")), 3),
        (("utf8", _mv(b"\xff"), 0, _i32(*range(0, 7 * 41, 7)), 4, 0, _mv(b"x" * 287)), 40),
        (("dict", None, 0, _mv(bytes([0, 1, 3])), 1, 0, 3, _i32(0, 7, 14, 21), 4, 0,
          _mv(b"abcdefghijklmnopqrstu")), 3),
        (("dict", None, 0, _mv(bytes([0, 1, 2])), 1, 1, 3, _i32(0, 7, 14, 21), 4, 0,
          _mv(b"abcdefghijklmnopqrstu")), 3),
        (("dict", None, 0, _mv(bytes([0, 1, 2])), 1, 0, 4, _i32(0, 7, 14, 21), 4, 0,
          _mv(b"abcdefghijklmnopqrstu")), 3),
    ],
    ids=["past_data", "not_monotonic", "offsets_short", "validity_short", "index_past_end",
         "indices_short", "dictionary_longer_than_offsets"],
)
def test_core_checks_column_buffers_itself(column, nrows):
    # The core's own check, under pyarrow's: descriptors straight into Program.match_columns.
    with pytest.raises(ArrowDataError) as info:
        _core_program().match_columns([column], nrows)
    assert info.value.column == "TgtProcName"


def test_core_accepts_null_rows_with_garbage_indices():
    # A null row's index is never read, so it is not checked either (Arrow leaves it undefined).
    column = ("dict", _mv(b"\x05"), 0, _mv(bytes([2, 200, 2])), 1, 0, 3, _i32(0, 7, 14, 21), 4, 0,
              _mv(b"abcdefghijklmnopqrstu"))
    rows, rules = _core_program().match_columns([column], 3)
    assert rows.tolist() == [0, 2]


def test_duplicate_column_names_are_an_error_naming_the_column():
    pa = pytest.importorskip("pyarrow")
    rs = matcher.RuleSet([matcher.compile('TgtProcName = "a"', id="x")])
    batch = pa.RecordBatch.from_arrays([pa.array(["a"]), pa.array(["b"])], ["TgtProcName", "TgtProcName"])
    with pytest.raises(ArrowDataError, match="TgtProcName") as info:
        list(rs.scan_arrow(batch))
    assert info.value.column == "TgtProcName"
    # A duplicate the rules never read changes nothing.
    other = pa.RecordBatch.from_arrays([pa.array(["a"]), pa.array(["b"]), pa.array(["c"])],
                                       ["TgtProcName", "X", "X"])
    assert list(rs.scan_arrow(other)) == [(0, "x")]
    # Inside a struct, on the path of a dotted field.
    st = pa.StructArray.from_arrays([pa.array(["a"]), pa.array(["b"])], ["n", "n"])
    rs2 = matcher.RuleSet([matcher.compile('p.n = "a"', id="y")])
    with pytest.raises(ArrowDataError, match="'n'"):
        list(rs2.scan_arrow(pa.RecordBatch.from_arrays([st], ["p"])))


# -- class 7 (API half): a stream that fails in the middle --------------------------------------


class StreamBroke(Exception):
    pass


def _failing(items, at):
    for i, item in enumerate(items):
        if i == at:
            raise StreamBroke(f"broken at {i}")
        yield item


@pytest.mark.parametrize("batch, at", [(8192, 1000), (100, 250), (100, 300), (1, 5), (100, 0)])
def test_scan_yields_every_match_before_the_iterator_fails(batch, at):
    rs = matcher.RuleSet([matcher.compile('TgtProcName = "hit.exe"', id="r")])
    events = [{"TgtProcName": "hit.exe" if i % 3 == 0 else "miss.exe"} for i in range(2000)]
    got = []
    with pytest.raises(StreamBroke):
        for pair in rs.scan(_failing(events, at), batch=batch):
            got.append(pair)
    assert got == [(i, "r") for i in range(at) if i % 3 == 0]


def test_scan_arrow_yields_every_match_before_the_batch_stream_fails():
    pa = pytest.importorskip("pyarrow")
    rs = matcher.RuleSet([matcher.compile('TgtProcName = "hit.exe"', id="r")])
    batches = [pa.RecordBatch.from_pydict({"TgtProcName": ["hit.exe", "miss.exe", "hit.exe"]})
               for _ in range(4)]
    got = []
    with pytest.raises(StreamBroke):
        for pair in rs.scan_arrow(_failing(batches, 3)):
            got.append(pair)
    assert got == [(0, "r"), (2, "r"), (3, "r"), (5, "r"), (6, "r"), (8, "r")]
    # A reader over an IPC stream whose last batch is cut off: the whole batches are matched.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    data = sink.getvalue().to_pybytes()
    reader = pa.ipc.open_stream(data[: len(data) - 40])
    got = []
    with pytest.raises((pa.ArrowInvalid, OSError)):
        for pair in rs.scan_arrow(reader):
            got.append(pair)
    assert got == [(i, "r") for i in range(9) if i % 3 != 1]


def test_scan_arrow_rejects_what_is_not_arrow():
    rs = matcher.RuleSet([matcher.compile('TgtProcName = "hit.exe"', id="r")])
    with pytest.raises(TypeError, match="RecordBatch"):
        list(rs.scan_arrow([{"TgtProcName": "hit.exe"}]))
    with pytest.raises(TypeError, match="RecordBatch"):
        list(rs.scan_arrow("not arrow"))


def test_whole_event_rows_of_a_hostile_batch_raise_naming_the_column():
    # Whole-event predicates (a Sigma keyword reads every string value) convert every column
    # of the row: a corrupt column the rules do not name is checked before that conversion.
    pytest.importorskip("pyarrow")
    assert_ok(ARROW + """
from matcher.ir import Glob, Wild
pred = And((Pred("TgtProcName", Op.EQUALS, "a"), Pred("", Op.KEYWORD, Glob.of(Wild.ANY, "a", Wild.ANY))))
rs = matcher.RuleSet([matcher.Rule(pred, RuleInfo(id="w", title="w"))])
good = pa.array(["a", "a", "b"])
bad = strings(i32(0, 14, 7, 21))
batch = pa.RecordBatch.from_arrays([good, good, bad], ["TgtProcName", "Other", "Z"])
try:
    list(rs.scan_arrow(batch))
    print("WRONG: no error"); sys.exit(3)
except ArrowDataError as exc:
    assert exc.column == "Z", exc.column
dup = pa.RecordBatch.from_arrays([good, good, good], ["TgtProcName", "Other", "Other"])
try:
    list(rs.scan_arrow(dup))
    print("WRONG: no error"); sys.exit(3)
except ArrowDataError as exc:
    assert exc.column == "Other", exc.column
ok = pa.RecordBatch.from_arrays([good, good], ["TgtProcName", "Other"])
check([i for i, _ in rs.scan_arrow(ok)], {0, 1})
""")
