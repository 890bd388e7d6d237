"""Issue 11, classes 4, 5, 6, 7 (Ctrl-C) and 9: hostile inputs end in a report, never in a crash,
a hang or a silently lost record.

Each case goes through the API (``inputs.read``) and through the real command (``python -m matcher
scan`` in a subprocess), checking the exit code, the report on stderr with its position, and the
invariant: records read = matched or not + bad, the same in both.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import orjson
import pytest

import matcher
from matcher import inputs, jsonio, reference
from shared_data import shared_path
from test_cli import RULE_ID, TN, TP, err, no_traceback, out_lines, run, summary


def items(path, **kw) -> list:
    return list(inputs.read(inputs.Input(str(path), str(path)), **kw))


def counts(its) -> tuple[int, int]:
    """(records read, bad) as ``matcher scan`` counts them."""
    good = sum(len(i.events) if isinstance(i, inputs.Records) else i.batch.num_rows
               for i in its if not isinstance(i, inputs.Bad))
    bad = sum(i.records for i in its if isinstance(i, inputs.Bad))
    return good + bad, bad


def bads(its) -> list[inputs.Bad]:
    return [i for i in its if isinstance(i, inputs.Bad)]


def rows(its) -> list:
    return [w for i in its if isinstance(i, inputs.Records) for w in i.where]


def assert_same_counts(its, proc) -> None:
    read, bad = counts(its)
    s = summary(proc)
    assert (s["read"], s["bad"], s["good"]) == (read, bad, read - bad), err(proc)


def jsonl(*events) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


# ------------------------------------------------------------------------------------------------
# class 4: readers that lose what they could read
# ------------------------------------------------------------------------------------------------


def _csv_text(n: int, bad_row: int, quote: str = 'x,"oops') -> str:
    lines = ["k,TgtProcCmdLine"]
    for i in range(1, n + 1):
        lines.append(quote if i == bad_row else f"{'hit' if i % 100 == 0 else 'miss'},cmd {i}")
    return "\n".join(lines) + "\n"


def test_csv_stray_quote_loses_only_its_line(tmp_path):
    path = tmp_path / "stray.csv"
    path.write_text(_csv_text(10_000, 6))
    its = items(path)
    (b,) = bads(its)
    assert b.where == 7 and "unbalanced quote" in b.problem  # header is line 1, row 6 is line 7
    got = rows(its)
    assert len(got) == 9_999 and got[:6] == [2, 3, 4, 5, 6, 8] and got[-1] == 10_001
    proc = run("-q", 'k = "hit"', str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    assert f"{path}:7: bad record" in err(proc)
    assert_same_counts(its, proc)
    assert summary(proc)["matches"] == 100
    assert {r["line"] for r in out_lines(proc)} == {i + 1 for i in range(100, 10_001, 100)}


def test_csv_two_stray_quotes_and_a_real_multiline_cell(tmp_path):
    text = 'a,b\n1,"two\nlines"\n2,"x\n3,3\n4,4\n5,"y\n6,6\n7,"three\nline\ncell"\n'
    path = tmp_path / "two.csv"
    path.write_text(text)
    its = items(path)
    assert [b.where for b in bads(its)] == [4, 7]
    events = [e for i in its if isinstance(i, inputs.Records) for e in i.events]
    assert {"a": "1", "b": "two\nlines"} in events and {"a": "7", "b": "three\nline\ncell"} in events
    assert rows(its) == [2, 5, 6, 8, 9]
    # the same as a reader that knew where the bad lines were: the text without them
    clean = [r for n, r in enumerate(text.splitlines(keepends=True), 1) if n not in (4, 7)]
    assert events == [dict(zip(["a", "b"], row)) for row in list(csv.reader(clean))[1:]]
    proc = run("-q", 'a = "3"', str(path))
    assert proc.returncode == 0 and [r["line"] for r in out_lines(proc)] == [5]
    assert_same_counts(its, proc)


def _gz_lines(n: int) -> tuple[bytes, list[dict]]:
    events = [dict(TP if i % 10 == 0 else TN, TgtProcPID=i) for i in range(n)]
    return gzip.compress(jsonl(*events)), events


def test_truncated_gzip_keeps_every_record_before_the_damage(tmp_path):
    whole, events = _gz_lines(5000)
    cut = whole[: len(whole) * 3 // 4]
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(cut)
    its = items(path)
    text = zlib.decompressobj(31).decompress(cut)  # everything the damaged file still holds
    complete = text.count(b"\n")
    assert rows(its) == list(range(1, complete + 1))
    damage = bads(its)
    assert damage[0].where == complete + 1 and "not valid JSON" in damage[0].problem  # the partial line
    assert damage[1].where is None and f"ends at byte {len(cut)}" in damage[1].problem
    proc = run("-r", RULE_ID, str(path))
    assert proc.returncode == 0
    no_traceback(proc)
    assert f"bad input: truncated: the file ends at byte {len(cut)}" in err(proc)
    assert_same_counts(its, proc)
    assert summary(proc)["matches"] == sum(1 for i in range(complete) if i % 10 == 0)


def test_junk_after_a_gzip_member_is_reported_with_its_bytes(tmp_path):
    whole, events = _gz_lines(300)
    path = tmp_path / "junk.jsonl.gz"
    path.write_bytes(whole + b"this is not gzip" + gzip.compress(jsonl(TP)))
    its = items(path)
    assert rows(its) == list(range(1, 301))
    (b,) = bads(its)
    end = len(whole) + 16 + len(gzip.compress(jsonl(TP)))
    assert f"bytes {len(whole)}..{end} after the last gzip member are not gzip data" in b.problem
    # two members, then zero padding: all read, nothing reported
    path.write_bytes(whole + gzip.compress(jsonl(TP)) + b"\0" * 100)
    its = items(path)
    assert rows(its) == list(range(1, 302)) and not bads(its)
    path.write_bytes(whole + b"junk")
    its = items(path)
    proc = run(str(path))
    assert proc.returncode == 0 and f"bytes {len(whole)}..{len(whole) + 4}" in err(proc)
    assert_same_counts(its, proc)


def test_corrupt_gzip_data_keeps_what_came_before(tmp_path):
    data = jsonl(*[dict(TN, n="x" * (i % 97)) for i in range(20000)])
    whole = bytearray(gzip.compress(data))
    mid = len(whole) // 2
    whole[mid : mid + 64] = bytes(64)
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(whole))
    its = items(path)
    got = rows(its)
    # the lines before the damage, in order (the damaged stretch may decode to garbage lines,
    # which are bad records); the damage is in the middle, so about half the lines come first
    assert got == sorted(set(got)) and got[:8000] == list(range(1, 8001))
    assert any("corrupt gzip data" in b.problem and "bytes " in b.problem for b in bads(its))
    proc = run(str(path))
    assert proc.returncode == 0
    no_traceback(proc)
    assert_same_counts(its, proc)


def _parquet(tmp_path) -> tuple[Path, int, int]:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    n = 1000
    t = pa.table({"TgtProcCmdLine": [f"cmd {i}" for i in range(3 * n)], "k": ["hit" if i % 7 == 0 else "no" for i in range(3 * n)]})
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=n, compression="NONE")
    data = bytearray(buf.getvalue())
    col = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(1).column(0)
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    for i in range(start, start + 200):
        data[i] ^= 0x5A
    path = tmp_path / "bad.parquet"
    path.write_bytes(bytes(data))
    return path, n, start


def test_corrupt_parquet_row_group_keeps_the_others(tmp_path):
    path, n, start = _parquet(tmp_path)
    its = items(path)
    cols = [(i.first_row, i.batch.num_rows) for i in its if isinstance(i, inputs.Columns)]
    assert cols == [(1, n), (2 * n + 1, n)]
    (b,) = bads(its)
    assert b.records == n and f"row group 1 (rows {n + 1}..{2 * n}, bytes {start}.." in b.problem
    proc = run("-q", 'k = "hit"', str(path))
    assert proc.returncode == 0
    no_traceback(proc)
    assert "row group 1" in err(proc)
    assert_same_counts(its, proc)
    expected = [i + 1 for i in range(3 * n) if i % 7 == 0 and not n <= i < 2 * n]
    assert [r["row"] for r in out_lines(proc)] == expected


def test_parquet_columns_sharing_a_name_are_a_bad_batch_counted(tmp_path):
    """The core refuses a batch in which two columns share a field name a rule reads
    (ArrowDataError): the command reports the batch's rows as bad and goes on, with one
    process and with --jobs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dup = pa.Table.from_arrays([pa.array(["a\\cmd.exe", "b"]), pa.array(["x", "y"])], names=["k", "k"])
    pq.write_table(dup, tmp_path / "dup.parquet")
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl({"k": "a\\cmd.exe"}, {"k": "b"}))
    for jobs in ("1", "2"):
        proc = run("-q", 'k endswithCIS "cmd.exe"', "--jobs", jobs, str(tmp_path / "dup.parquet"), str(good))
        assert proc.returncode == 0, proc.stderr
        no_traceback(proc)
        assert "2 columns share this name" in err(proc) and "rows 1-2" in err(proc)
        assert "4 records read = 2 matched or not + 2 bad" in err(proc)
        assert [r["line"] for r in out_lines(proc)] == [1]


EVTX_CHUNK = 65536


def _evtx_files() -> list[bytes]:
    root = shared_path("sigma-regression", "regression_data")
    files = sorted(glob.glob(str(root / "**" / "*.evtx"), recursive=True))
    if len(files) < 3:
        pytest.skip(f"fewer than 3 EVTX files under {root}")
    return [Path(f).read_bytes() for f in files[:3]]


def _evtx_of_chunks(datas: list[bytes]) -> bytes:
    """A file of the first chunk of each of ``datas`` behind the first file's header."""
    header = bytearray(datas[0][:4096])
    struct.pack_into("<Q", header, 16, len(datas) - 1)
    struct.pack_into("<H", header, 42, len(datas))
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    return bytes(header) + b"".join(d[4096 : 4096 + EVTX_CHUNK] for d in datas)


def test_corrupt_evtx_chunk_keeps_the_others_and_truncation_is_reported(tmp_path):
    pytest.importorskip("evtx")
    datas = _evtx_files()
    good = _evtx_of_chunks(datas)
    path = tmp_path / "three.evtx"
    path.write_bytes(good)
    whole = items(path)
    assert not bads(whole) and len(rows(whole)) == 3
    bad = bytearray(good)
    lo = 4096 + EVTX_CHUNK
    for i in range(lo + 600, lo + 1400, 7):  # the records of chunk 1
        bad[i] ^= 0xFF
    path.write_bytes(bytes(bad))
    its = items(path)
    events = [e for i in its if isinstance(i, inputs.Records) for e in i.events]
    assert events == [e for i in whole if isinstance(i, inputs.Records) for e in i.events][::2]
    (b,) = bads(its)
    assert f"chunk 1 (bytes {lo}..{lo + EVTX_CHUNK})" in b.problem
    proc = run("-q", 'EventID = "1"', str(path))
    assert proc.returncode == 0
    no_traceback(proc)
    assert f"chunk 1 (bytes {lo}..{lo + EVTX_CHUNK})" in err(proc)
    assert_same_counts(its, proc)
    # a file cut inside its last chunk: the whole chunks read, the cut one reported
    path.write_bytes(good[: lo + EVTX_CHUNK + 3000])
    its = items(path)
    assert len(rows(its)) == 2
    (b,) = bads(its)
    assert "truncated" in b.problem and f"chunk 2 (bytes {lo + EVTX_CHUNK}..{lo + EVTX_CHUNK + 3000})" in b.problem
    proc = run(str(path))
    assert proc.returncode == 0 and "truncated" in err(proc)
    assert_same_counts(its, proc)
    # through gzip (streamed a chunk at a time): the same records, the same report
    gz = tmp_path / "three.evtx.gz"
    gz.write_bytes(gzip.compress(bytes(bad)))
    plain = tmp_path / "bad.evtx"
    plain.write_bytes(bytes(bad))
    assert [(i.where, i.problem) for i in bads(items(gz))] == [(i.where, i.problem) for i in bads(items(plain))]
    assert rows(items(gz)) == rows(items(plain))


# ------------------------------------------------------------------------------------------------
# class 5: output that kills the scan
# ------------------------------------------------------------------------------------------------


def _nested(depth: int) -> object:
    v: object = "bottom"
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


def _nested_text(depth: int) -> str:
    """:func:`_nested` as compact JSON text."""
    opened = "".join("[" if i % 2 else '{"k":' for i in reversed(range(depth)))
    return opened + '"bottom"' + "".join("]" if i % 2 else "}" for i in range(depth))


def _deep_line(depth: int, wide: int = 0) -> bytes:
    text = orjson.dumps(dict(TP, **{f"pad{i}": i for i in range(wide)}))
    return text[:-1] + b',"deep":' + _nested_text(depth).encode() + b"}\n"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table"])
def test_a_deep_event_is_written_in_every_format(tmp_path, fmt):
    path = tmp_path / "deep.jsonl"
    path.write_bytes(_deep_line(300) + jsonl(TN, TP))
    proc = run_env({"COLUMNS": "400"}, "-f", fmt, str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    s = summary(proc)
    assert (s["read"], s["bad"], s["matches"]) == (3, 0, 2)
    text = proc.stdout.decode()
    if fmt == "jsonl":
        recs = [jsonio.loads(line) for line in text.splitlines()]
        assert recs[0]["event"] == jsonio.loads(_deep_line(300)) and recs[1]["line"] == 3
    elif fmt == "json":
        assert [r["line"] for r in jsonio.loads(text)] == [1, 3]
    elif fmt == "csv":
        got = list(csv.DictReader(io.StringIO(text)))
        assert jsonio.loads(got[0]["event"]) == jsonio.loads(_deep_line(300))
    else:
        assert text.count(f"{path}:") == 2


@pytest.mark.parametrize("decode", ["auto", "whole"])
def test_a_wide_record_nested_a_thousand_deep(tmp_path, decode):
    line = _deep_line(1000, wide=40)
    path = tmp_path / "wide.jsonl"
    path.write_bytes(jsonl(dict(TN, **{f"pad{i}": i for i in range(40)})) + line)
    its = items(path, fields=matcher.RuleSet([matcher.builtin()]).fields if decode == "auto" else None)
    assert rows(its) == [1, 2] and not bads(its)
    proc = run("--decode", decode, str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    (rec,) = out_lines_deep(proc)
    assert rec["line"] == 2 and jsonio.dumps(rec["event"]) == jsonio.dumps(jsonio.loads(line))  # == recurses


def out_lines_deep(proc) -> list:
    return [jsonio.loads(line) for line in proc.stdout.decode().splitlines()]


def test_non_finite_and_huge_numbers_in_a_matching_event(tmp_path):
    path = tmp_path / "num.jsonl"
    line = orjson.dumps(TP)[:-1] + b',"a":1e999,"b":-1e999,"c":NaN,"d":123456789012345678901234567890}\n'
    path.write_bytes(line)
    for fmt in ("jsonl", "csv", "table", "json"):
        proc = run("-f", fmt, str(path))
        assert proc.returncode == 0, err(proc)
        no_traceback(proc)
        assert summary(proc)["matches"] == 1
    proc = run(str(path))
    (rec,) = out_lines(proc)
    ev = rec["event"]
    assert (ev["a"], ev["b"], ev["c"], ev["d"]) == ("Infinity", "-Infinity", "NaN", 123456789012345678901234567890)


def test_table_lines_carry_markup_as_text_cut_to_the_width(tmp_path):
    shown = "[bold]x[/bold] [/] [red]y"
    path = tmp_path / "markup.jsonl"
    path.write_bytes(jsonl(dict(TP, TgtProcCmdLine=shown), dict(TP, SrcProcCmdLine="w3wp [/]")))
    proc = run_env({"COLUMNS": "400"}, "-f", "table", str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    out = proc.stdout.decode().splitlines()
    assert summary(proc)["matches"] == 2 and out[-1] == "2 matches"
    assert f'"TgtProcCmdLine":"{shown}"' in out[0] and '"SrcProcCmdLine":"w3wp [/]"' in out[1]
    proc = run_env({"COLUMNS": "60"}, "-f", "table", str(path))
    out = proc.stdout.decode().splitlines()
    assert all(len(x) <= 60 for x in out) and out[0].endswith("…")


def run_env(extra: dict, *args: str, **kw) -> subprocess.CompletedProcess:
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        return run(*args, **kw)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_parquet_values_python_cannot_hold_are_written_as_arrow_text(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    t = pa.table({"k": ["hit", "no", "hit"], "t": pa.array([10**15, 0, 1], pa.timestamp("s"))})
    path = tmp_path / "far.parquet"
    pq.write_table(t, path)
    (cols,) = items(path)
    with pytest.raises(OverflowError):
        cols.batch.slice(0, 1).to_pylist()
    assert cols.row(0)["k"] == "hit" and cols.row(0)["t"].startswith("<value out of range: 1000000000000000")
    proc = run("-q", 'k = "hit"', str(path))
    assert proc.returncode == 0, err(proc)
    recs = out_lines(proc)
    assert [r["row"] for r in recs] == [1, 3] and recs[1]["event"]["t"] == "1970-01-01T00:00:01"
    assert recs[0]["event"]["t"].startswith("<value out of range")


def test_a_match_the_writer_cannot_write_raises_value_error_and_writes_nothing(capfd):
    from matcher import cli

    class Hostile:
        def __str__(self):
            raise RuntimeError("no text")

    for fmt in ("jsonl", "json", "csv", "table"):
        w = cli._Writer(fmt)
        w.flush()
        capfd.readouterr()
        with pytest.raises(ValueError, match="no text"):
            w.write({"rule_id": "r", "rule_title": "t", "level": None, "author": None, "source": "s", "line": 1,
                     "event": {"x": Hostile()}})
        assert w.n == 0
        w.flush()
        assert capfd.readouterr().out == "", fmt  # nothing of the match was written
        if fmt == "csv":
            w.text.detach()


def test_table_output_streams_as_matches_come():
    with _spawn("-f", "table", "-") as proc:
        proc.stdin.write(jsonl(TN, TP))
        proc.stdin.flush()
        line = _read_line(proc.stdout)
        assert "<stdin>:2" in line  # written while the input is still open
        proc.stdin.write(jsonl(TP))
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "<stdin>:3" in out.decode() and "2 matches" in out.decode()


# ------------------------------------------------------------------------------------------------
# class 6: files that are not regular files; records over the limit
# ------------------------------------------------------------------------------------------------


def test_fifo_symlinked_dir_and_hidden_entries_are_passed_over_and_counted(tmp_path):
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    (logs / "a.jsonl").write_bytes(jsonl(TP))
    (logs / "sub" / "b.jsonl").write_bytes(jsonl(TP))
    os.mkfifo(logs / "x.jsonl")
    (logs / ".hidden.jsonl").write_bytes(jsonl(TP))
    (logs / ".git").mkdir()
    (logs / ".git" / "c.jsonl").write_bytes(jsonl(TP))
    other = tmp_path / "other"
    other.mkdir()
    (other / "d.jsonl").write_bytes(jsonl(TP))
    (logs / "link").symlink_to(other, target_is_directory=True)
    (logs / "file-link.jsonl").symlink_to(other / "d.jsonl")
    (logs / "broken.jsonl").symlink_to(tmp_path / "nowhere")
    todo, passed = inputs.expand([str(logs)])
    assert [i.path for i in todo] == [str(logs / "a.jsonl"), str(logs / "file-link.jsonl"), str(logs / "sub" / "b.jsonl")]
    why = {Path(p).name: w for p, w in passed}
    assert set(why) == {".hidden.jsonl", ".git", "link", "x.jsonl", "broken.jsonl"}
    assert "FIFO" in why["x.jsonl"] and "not followed" in why["link"] and "hidden" in why[".git"]
    proc = run(str(logs))  # would hang on the FIFO
    assert proc.returncode == 0, err(proc)
    e = err(proc)
    for name in why:
        assert f"{logs / name}: passed over: " in e
    assert "5 directory entries passed over" in e
    assert summary(proc)["read"] == 3


def test_a_line_over_the_limit_is_a_bad_record_read_past_in_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    big = b'{"x":"' + b"a" * (64 << 20) + b'"}\n'
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(jsonl(TP))
        f.write(big)
        f.write(jsonl(TN, TP))
    del big
    tracemalloc.start()
    try:
        its = items(path, max_record=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20  # 64 MiB went through; a few 4 MiB blocks were held
    (b,) = bads(its)
    assert b.where == 2 and f"{(64 << 20) + 8:,} bytes, over the limit of {1 << 20:,}" in b.problem
    assert rows(its) == [1, 3, 4]
    proc = run("--max-record-bytes", "1000", str(path))
    assert proc.returncode == 0
    assert f"{path}:2: bad record: a record of" in err(proc) and "--max-record-bytes" in err(proc)
    assert [r["line"] for r in out_lines(proc)] == [1, 4]
    assert_same_counts(its, proc)


@pytest.mark.parametrize("limit", [50, 100, 1 << 16])
def test_line_limit_at_block_edges(tmp_path, limit):
    lines = [b"x" * n for n in (0, 1, 49, 50, 51, 99, 100, 101, 5000, 3)]
    stream = io.BufferedReader(io.BytesIO(b"\n".join(lines)), 16)
    got = [x for block in inputs._lines(stream, limit, block=37) for x in block]
    assert len(got) == len(lines)
    for want, x in zip(lines, got):
        if len(want) > limit:
            assert type(x) is inputs._TooLong and x.size == len(want)
        else:
            assert x == want


def test_csv_record_over_the_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n1,2\n3," + "x" * 5000 + "\n4,5\n" + '6,"' + "y\n" * 3000 + "7,8\n")
    its = items(path, max_record=1000)
    assert [b.where for b in bads(its)] == [3, 5]
    assert "over the limit" in bads(its)[0].problem and "unbalanced quote" in bads(its)[1].problem
    assert rows(its)[:2] == [2, 4] and rows(its)[-1] == 3005  # line 5 opens the quote, lines 6..3004 are "y"
    proc = run("--max-record-bytes", "1000", "-q", 'a = "7"', str(path))
    assert proc.returncode == 0 and [r["line"] for r in out_lines(proc)] == [3005]
    assert_same_counts(its, proc)


def test_max_record_bytes_must_be_positive():
    proc = run("--max-record-bytes", "0")
    assert proc.returncode == 2 and "not a positive whole number" in err(proc)


# ------------------------------------------------------------------------------------------------
# class 7: Ctrl-C during matcher scan
# ------------------------------------------------------------------------------------------------


def _spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ)
    root = str(Path(matcher.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen([sys.executable, "-m", "matcher", "scan", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir())


def _read_line(f, timeout: float = 60) -> str:
    """One line of a pipe; fails if none comes (the process would be stuck)."""
    buf = b""
    end = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        ready, _, _ = select.select([f], [], [], max(0.0, end - time.monotonic()))
        assert ready, f"no output line within {timeout} s (got {buf!r})"
        ch = os.read(f.fileno(), 1)
        assert ch, f"output ended (got {buf!r})"
        buf += ch
    return buf.decode()


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_ctrl_c_flushes_the_matches_and_exits_130(tmp_path, fmt):
    fifo = tmp_path / "feed.jsonl"
    os.mkfifo(fifo)
    with _spawn("-f", fmt, "--no-progress", str(fifo)) as proc, open(fifo, "wb") as feed:
        feed.write(jsonl(TN, TP, TP))
        feed.flush()
        # both matches are out (json: the second line ends with the comma written before match 2)
        first = _read_line(proc.stdout) + _read_line(proc.stdout)
        proc.send_signal(signal.SIGINT)  # while it waits on the FIFO for more
        out, errb = proc.communicate(timeout=60)
    e = errb.decode()
    assert proc.returncode == 130, e
    assert "Traceback" not in e and "KeyboardInterrupt" not in e
    assert "interrupted" in e
    text = first + out.decode()
    if fmt == "jsonl":
        assert [json.loads(x)["line"] for x in text.splitlines()] == [2, 3]
    else:
        assert [r["line"] for r in json.loads(text)] == [2, 3]  # the array is closed
    m = summary(subprocess.CompletedProcess([], 130, b"", errb))
    assert (m["read"], m["matches"]) == (3, 2)


# ------------------------------------------------------------------------------------------------
# class 9: one value, one verdict
# ------------------------------------------------------------------------------------------------

VALUES = [
    "123456789012345678901234567890", "-123456789012345678901234567890", "18446744073709551616", "9223372036854775807",
    "1e999", "-1e999", "-0.0", "0.0", "1.0", "1", "1E2", "NaN", "Infinity", "-Infinity", '"\\ud800"', '"é\\u00e9"',
    '"\\u0130stanbul"', "true", "null", '[1, 1e999, "x"]',
]
QUERIES = [
    'F = "123456789012345678901234567890"', 'F = "-123456789012345678901234567890"', 'F > 100000000000000000000', "F < -100000000000000000000",
    'F = "18446744073709551616"', 'F = "9223372036854775807"', 'F = "inf"', 'F = "-inf"', 'F = "-0.0"', 'F = "0.0"',
    'F = "1.0"', 'F = "1"', 'F = "100.0"', 'F = "nan"', 'F = 1', 'F >= 0', 'F In Contains AnyCase ("é", "istanbul")',
    'F containsCIS "\\ud800"', 'F = "true"', 'F = "x"', 'F Exists', 'NOT F Exists',
]


def _oracle(rule, line: bytes) -> bool:
    return reference.evaluate(rule, json.loads(line))


def _class9_lines() -> list[bytes]:
    pad = {f"pad{i}": i for i in range(60)}  # wide: the default decoding reads only F
    lines = []
    for v in VALUES:
        lines.append(b'{"F": ' + v.encode() + b', ' + orjson.dumps(pad)[1:])
        lines.append(b'{"F": 0, "F": ' + v.encode() + b", " + orjson.dumps(pad)[1:])  # duplicate key: the last
    return lines


def test_every_decoding_path_gives_the_references_verdict(tmp_path):
    lines = _class9_lines()
    rules = [matcher.compile(q, id=f"q{n}") for n, q in enumerate(QUERIES)]
    rs = matcher.RuleSet(rules)
    path = tmp_path / "v.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    arr = tmp_path / "v.json"
    arr.write_bytes(b"[" + b",".join(lines) + b"]")
    want = {(n + 1, r.id) for n, line in enumerate(lines) for r in rules if _oracle(r, line)}
    assert want  # the values do decide verdicts
    for fields in (rs.fields, None):
        its = items(path, fields=fields)
        assert not bads(its)
        got = {(rec.where[i], r.id) for rec in its for i in range(len(rec.events)) for r in rules
               if reference.evaluate(r, rec.events[i])}
        assert got == want, fields
        core = {(rec.where[i], rs.rules[k].id) for rec in its for i, k in
                zip(*[a.tolist() for a in rs.match_arrays(rec.events)])}
        assert core == want, fields
    its = items(arr)
    got = {(rec.where[i], r.id) for rec in its for i in range(len(rec.events)) for r in rules
           if reference.evaluate(r, rec.events[i])}
    assert got == want
    qs = [a for q in QUERIES for a in ("-q", q)]
    for extra in ([str(path)], ["--decode", "whole", str(path)], [str(arr)]):
        proc = run(*qs, *extra)
        assert proc.returncode == 0, err(proc)
        got = {(rec.get("line", rec.get("row")), f"q{int(rec['rule_id'].split('-')[1]) - 1}") for rec in out_lines_deep(proc)}
        assert got == want, extra


def test_explain_gives_the_same_verdict(tmp_path):
    lines = _class9_lines()
    path = tmp_path / "v.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    cases = {'F = "123456789012345678901234567890"': 1, 'F = "inf"': 9, 'F = "-0.0"': 13, 'F = "nan"': 23,
             'F containsCIS "\\ud800"': 29}
    for q, line in cases.items():
        rule = matcher.compile(q)
        for n in (line, line + 1):  # the value, and the value as the last of duplicate keys
            proc = run("-q", q, "-n", str(n), "-f", "json", str(path), command="explain")
            assert proc.returncode == 0, err(proc)
            doc = jsonio.loads(proc.stdout)
            assert doc["matched"] == doc["compiled_core"] == _oracle(rule, lines[n - 1]), (q, n)
        proc = run("-q", q, "--event", lines[line - 1].decode(), "-f", "json", command="explain")
        assert jsonio.loads(proc.stdout)["matched"] == _oracle(rule, lines[line - 1])


def test_csv_cells_are_text_and_give_the_references_verdict(tmp_path):
    path = tmp_path / "v.csv"
    cells = [v.strip('"') for v in VALUES if not v.startswith("[")]
    path.write_text("F\n" + "\n".join(f'"{c}"' for c in cells) + "\n", encoding="utf-8", errors="surrogatepass")
    its = items(path)
    rules = [matcher.compile(q, id=f"q{n}") for n, q in enumerate(QUERIES)]
    rs = matcher.RuleSet(rules)
    for rec in its:
        assert isinstance(rec, inputs.Records)
        rows_, ks = (a.tolist() for a in rs.match_arrays(rec.events))
        core = set(zip(rows_, ks))
        ref = {(i, k) for i, ev in enumerate(rec.events) for k, r in enumerate(rules) if reference.evaluate(r, ev)}
        assert core == ref


@pytest.mark.parametrize("text", ['{"a": [[[{"b": 1e999}]]]}', '{"a": "\\udfff\\ud800"}', '{"":{"":[]}}', '{"a":-0}',
                                  '{"a": 1.5e-400}', '{"a": 12345678901234567890123}', '  {"a" : 1 }  '])
def test_jsonio_loads_is_json_loads(text):
    want = json.loads(text)
    for got in (jsonio.loads(text.encode()), jsonio.loads(text), jsonio._loads_flat(text)):
        assert repr(got) == repr(want)


@pytest.mark.parametrize("text", ['{"a":', '{"a" 1}', "[1,]", "{} x", "", '{"a":1,}', "[nan]", "{'a': 1}", '"\\x"'])
def test_jsonio_loads_rejects_what_json_loads_rejects(text):
    with pytest.raises(ValueError):
        json.loads(text)
    for f in (jsonio.loads, jsonio._loads_flat):
        with pytest.raises(ValueError):
            f(text)


def test_jsonio_dumps_any_depth_and_value():
    deep = _nested(5000)
    assert jsonio.dumps(deep) == _nested_text(5000).encode()
    assert jsonio.dumps(jsonio.loads(_nested_text(5000))) == _nested_text(5000).encode()
    v = {"i": 2**80, "n": -(2**70), "f": [math.inf, -math.inf, math.nan, -0.0], "s": "\ud800", 3: b"x"}
    assert jsonio.loads(jsonio.dumps(v)) == {"i": 2**80, "n": -(2**70), "f": ["Infinity", "-Infinity", "NaN", -0.0],
                                            "s": "\ud800", "3": "b'x'"}


# ------------------------------------------------------------------------------------------------
# properties of the pieces the readers stand on
# ------------------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(deadline=None)
@given(st.lists(st.integers(0, 120), max_size=12), st.integers(1, 100), st.integers(1, 50), st.booleans())
def test_lines_split_like_bytes_split(lengths, limit, block, newline_at_end):
    lines = [bytes([97 + i % 26]) * n for i, n in enumerate(lengths)]
    data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    got = [x for part in inputs._lines(io.BufferedReader(io.BytesIO(data), 8), limit, block=block) for x in part]
    want = data.split(b"\n")
    if want and want[-1] == b"":
        want.pop()  # a last line ends with its newline
    assert [(x.size, "long") if type(x) is inputs._TooLong else x for x in got] == [
        (len(w), "long") if len(w) > limit else w for w in want]


@settings(deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=3), st.integers(0, 100), st.sampled_from([0, 1, 9]))
def test_gunzip_gives_every_byte_before_the_damage(members, cut_percent, level):
    packed = [gzip.compress(m, compresslevel=level) for m in members]
    whole = b"".join(packed)
    cut = whole[: len(whole) * cut_percent // 100]
    gz = inputs._Gunzip(io.BytesIO(cut))
    got = io.BufferedReader(gz).read()
    # what can be known from the cut file: the whole members in it, and what zlib makes of the rest
    want, at = b"", 0
    for m, p in zip(members, packed):
        if at + len(p) <= len(cut):
            want += m
        elif at < len(cut):
            want += zlib.decompressobj(31).decompress(cut[at:])
        at += len(p)
    assert got == want
    ends = {sum(len(p) for p in packed[:k]) for k in range(len(packed) + 1)}
    if len(cut) in ends:  # a cut between members leaves a whole gzip file
        assert gz.damage is None
    else:
        assert gz.damage is not None and f"ends at byte {len(cut)}" in gz.damage


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**90), 2**90) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)


@settings(deadline=None)
@given(JSON)
def test_jsonio_loads_reads_what_json_dumps_wrote(value):
    text = json.dumps(value)  # NaN, Infinity, big integers, lone surrogates escaped
    want = repr(json.loads(text))
    assert repr(jsonio.loads(text.encode())) == repr(jsonio._loads_flat(text)) == want
