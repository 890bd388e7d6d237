"""The log readers, one by one (the command line over them is in test_cli.py).

EVTX: no redistributable .evtx sample is in the repository, so the EVTX mapping is tested on
records shaped as ``evtx.PyEvtxParser.records_json()`` yields them (``{"event_record_id",
"timestamp", "data"}`` with ``data`` the JSON text of ``{"Event": {"System": ..., "EventData": ...}}``),
and the reader itself on files that are not EVTX (reported, never raised)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matcher
from matcher import inputs, mapping, reference

FLAGSHIP = matcher.builtin("flagship")


def items(path, **kw):
    return list(inputs.read(inputs.Input(str(path), str(path)), **kw))


def test_detection_by_content_then_name():
    assert inputs.detect("x.bin", b"PAR1....") == "parquet"
    assert inputs.detect("x.jsonl", b"ElfFile\0") == "evtx"
    assert inputs.detect("x.csv", b"{}") == "csv"
    assert inputs.detect("x.log", b"\xef\xbb\xbf  {\"a\": 1}") == "jsonl"
    assert inputs.detect("x.log", b"\n[{}]") == "json"
    assert inputs.detect("x.log", b"a,b\n1,2") == "csv"
    assert inputs.detect("x.jsonl.gz", b"whatever") == "jsonl"


def test_undetectable_input_is_reported(tmp_path):
    p = tmp_path / "x.log"
    p.write_bytes(b"hello there\n")
    (bad,) = items(p)
    assert isinstance(bad, inputs.Bad) and bad.where is None and "--input-format" in bad.problem


EVENT = st.dictionaries(
    st.sampled_from(["TgtProcImagePath", "SrcProcImagePath", "EventType", "EndpointOS", "Other", "x.y", "x"]),
    st.one_of(st.none(), st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), st.lists(st.text(max_size=4), max_size=2),
              st.dictionaries(st.sampled_from(["y", "z"]), st.text(max_size=4), max_size=2)),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=5))
def test_selected_field_decoding_keeps_the_verdicts(events):
    rule = matcher.compile('TgtProcImagePath containsCIS "a" OR x.y = "b" OR NOT EndpointOS = "windows"')
    lines = [orjson.dumps(e) for e in events]
    sel = inputs.JsonLinesDecoder(matcher.RuleSet([rule]).fields)
    whole = inputs.JsonLinesDecoder(None)
    many = sel.decode_many(lines)
    assert many is not None and whole.decode_many(lines) == events
    for raw, ev, got in zip(lines, events, many):
        assert reference.evaluate(rule, sel.decode(raw)) == reference.evaluate(rule, ev) == reference.evaluate(rule, got)


@pytest.mark.parametrize("fields", [None, ("TgtProcImagePath",)])
def test_bad_json_lines_named(fields):
    dec = inputs.JsonLinesDecoder(fields)
    for raw, msg in [(b"[1]", "array, not an object"), (b"{", "not valid JSON"), (b'"s"', "string, not an object"),
                     (b'{"TgtProcImagePath": "a", "B": "\xff"}', "(undecodable|not valid)")]:
        with pytest.raises(ValueError, match=msg):
            dec.decode(raw)
    assert dec.decode_many([b'{"a": 1}', b"[1]"]) is None
    assert dec.decode_many([b'{"a": 1}, {"b": 2}']) is None  # two values on one line


def test_jsonl_bad_lines_and_chunks(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_bytes(b'{"a": 1}\n\nnope\n{"a": 2}\r\n{"a": 3}')  # no newline at the end
    got = items(p, chunk=2)
    recs = [(w, e) for i in got if isinstance(i, inputs.Records) for w, e in zip(i.where, i.events)]
    bads = [(i.where, i.problem) for i in got if isinstance(i, inputs.Bad)]
    assert recs == [(1, {"a": 1}), (4, {"a": 2}), (5, {"a": 3})]
    assert [type(i).__name__ for i in got][:2] == ["Records", "Bad"]  # in input order
    assert bads[0][0] == 3 and "not valid JSON" in bads[0][1]


def test_wide_records_are_decoded_by_field_and_output_whole(tmp_path):
    p = tmp_path / "wide.jsonl"
    ev = {"TgtProcImagePath": "x", **{f"F{i}": i for i in range(10)}}
    p.write_bytes(orjson.dumps(ev) + b"\n")
    (rec,) = items(p, fields=("TgtProcImagePath",))
    assert rec.events == [{"TgtProcImagePath": "x"}]
    assert rec.event(0) == ev


def test_csv_multiline_cells_keep_the_record_line(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text('A,B\n"one\ntwo",x\n,y\n', encoding="utf-8")
    (rec,) = items(p)
    assert rec.where == [2, 4] and rec.events == [{"A": "one\ntwo", "B": "x"}, {"B": "y"}]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    (bad,) = items(empty, fmt="csv")
    assert "no header" in bad.problem


def test_parquet_batches_are_bounded(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "e.parquet"
    pq.write_table(pa.table({"A": [str(i) for i in range(25)]}), p)
    monkeypatch.setattr(inputs, "PARQUET_BATCH", 10)
    got = items(p)
    assert [(c.first_row, c.batch.num_rows) for c in got] == [(1, 10), (11, 10), (21, 5)]
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(p.read_bytes()[:40])
    (bad,) = items(cut, fmt="parquet")
    assert isinstance(bad, inputs.Bad) and "Parquet" in bad.problem


# -- EVTX --------------------------------------------------------------------------------------

SYSMON_1 = {"Event": {
    "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
    "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9"}},
               "EventID": 1, "Version": 5, "Level": 4, "Channel": "Microsoft-Windows-Sysmon/Operational",
               "Computer": "web01.corp.local", "EventRecordID": 4711,
               "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00.000000Z"}}},
    "EventData": {"RuleName": "-", "ProcessId": 4242, "Image": "C:\\Windows\\System32\\cmd.exe",
                  "CommandLine": "cmd.exe /c whoami", "User": "IIS APPPOOL\\DefaultAppPool",
                  "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
                  "ParentCommandLine": "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"DefaultAppPool\"",
                  "IntegrityLevel": "High"}}}
SECURITY_4688 = {"Event": {
    "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
               "EventID": {"#attributes": {"Qualifiers": ""}, "#text": 4688}, "Channel": "Security",
               "Computer": "web01", "EventRecordID": 99},
    "EventData": {"SubjectUserName": "WEB01$", "NewProcessId": "0x1a2b", "NewProcessName": "C:\\Windows\\System32\\net.exe",
                  "CommandLine": "net user", "ProcessId": "0x99", "ParentProcessName": "C:\\php\\php-cgi.exe",
                  "TargetUserName": "-", "TargetDomainName": "-"}}}
OTHER = {"Event": {"System": {"EventID": 3, "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}},
                   "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe"}}}


def _rec(doc, rid):
    return {"event_record_id": rid, "timestamp": "2024-05-01 10:00:00 UTC", "data": json.dumps(doc)}


def test_evtx_records_are_mapped_to_s1_names():
    got = list(inputs.evtx_records([_rec(SYSMON_1, 4711), _rec(SECURITY_4688, 99), _rec(OTHER, 5),
                                    {"event_record_id": 6, "data": "{broken"}]))
    (r1, sysmon), (r2, sec), (r3, other), (r4, problem) = got
    assert (r1, r2, r3, r4) == (4711, 99, 5, 6)
    assert sysmon["EventType"] == "Process Creation" and sysmon["EndpointOS"] == "windows"
    assert sysmon["TgtProcImagePath"] == sysmon["Image"] and sysmon["SrcProcCmdLine"].startswith("c:\\windows")
    assert sysmon["Provider"] == "Microsoft-Windows-Sysmon" and sysmon["TimeCreated"].startswith("2024")
    assert reference.evaluate(FLAGSHIP, sysmon) and matcher.RuleSet([FLAGSHIP]).match(sysmon)
    assert sec["EventID"] == 4688 and sec["TgtProcImagePath"].endswith("net.exe") and "TgtProcUser" not in sec
    assert reference.evaluate(FLAGSHIP, sec)  # php-cgi.exe spawning net.exe
    assert "EventType" not in other and not reference.evaluate(FLAGSHIP, other)
    assert isinstance(problem, str) and "not decodable" in problem
    # the Sysmon names are kept too: the sysmon profile runs on the same events
    rule = mapping.remap(FLAGSHIP.ir, "s1", "sysmon")
    assert reference.evaluate(rule, sysmon)


def test_a_file_that_is_not_evtx_is_reported(tmp_path):
    pytest.importorskip("evtx")
    p = tmp_path / "x.evtx"
    p.write_bytes(b"ElfFile\0" + b"\0" * 100)
    got = items(p)
    assert got and all(isinstance(i, inputs.Bad) for i in got)
    assert "EVTX" in got[0].problem
