"""``matcher scan`` through the real entry point: ``python -m matcher scan ...`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

import matcher
from matcher import datasets, reference

RULE_ID = "8202070f-edeb-4d31-a010-a26c72ac5600"
CARD = Path(matcher.__file__).parent / "data" / "proc_creation_win_webshell_susp_process_spawned_from_webserver.md"
SUMMARY = re.compile(
    r"matcher: (-?\d+) records read = (-?\d+) matched or not \+ (-?\d+) bad; (-?\d+) events matched, (-?\d+) matches"
)

TP = {
    "EventType": "Process Creation",
    "EndpointOS": "windows",
    "SrcProcImagePath": "C:\\inetpub\\w3wp.exe",
    "SrcProcCmdLine": "w3wp.exe -ap DefaultAppPool",
    "TgtProcImagePath": "C:\\Windows\\System32\\cmd.exe",
    "TgtProcCmdLine": "cmd.exe /c whoami",
}
TN = dict(TP, TgtProcImagePath="C:\\Windows\\System32\\notepad.exe")


def run(*args: str, input: bytes | None = None, cwd=None, command: str = "scan",
        tty: bool = False) -> subprocess.CompletedProcess:
    """``python -m matcher COMMAND ARGS``; standard input is ``input`` through a pipe (empty by
    default), or a terminal (a pseudo-terminal) with ``tty``."""
    env = dict(os.environ)
    # run the same matcher package the tests import
    root = str(Path(matcher.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONSTARTUP", None)
    kw: dict = dict(
        capture_output=True,
        timeout=120,
        env=env,
        # not the checkout: `python -m` puts the working directory first on sys.path, and the
        # source tree has no compiled core unless it was installed in place
        cwd=cwd if cwd is not None else tempfile.gettempdir(),
    )
    argv = [sys.executable, "-m", "matcher", command, *args]
    if not tty:
        return subprocess.run(argv, input=input if input is not None else b"", **kw)
    import pty

    master, slave = pty.openpty()
    try:
        return subprocess.run(argv, stdin=slave, **kw)
    finally:
        os.close(master)
        os.close(slave)


def out_lines(proc) -> list[dict]:
    text = proc.stdout.decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def err(proc) -> str:
    return proc.stderr.decode("utf-8", "replace")


def summary(proc) -> dict:
    m = SUMMARY.search(err(proc))
    assert m, f"no summary line on stderr:\n{err(proc)}"
    read, good, bad, events, matches = map(int, m.groups())
    assert min(read, good, bad, events, matches) >= 0, f"negative count in the summary: {m.group(0)!r}"
    assert read == good + bad, m.group(0)
    return {"read": read, "good": good, "bad": bad, "events": events, "matches": matches}


def no_traceback(proc) -> None:
    assert "Traceback" not in err(proc), err(proc)
    assert "Exception ignored" not in err(proc), err(proc)


def write_jsonl(path: Path, lines: list) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            if isinstance(line, bytes):
                fh.write(line + b"\n")
            elif isinstance(line, str):
                fh.write(line.encode("utf-8") + b"\n")
            else:
                fh.write(json.dumps(line).encode("utf-8") + b"\n")
    return path


# --------------------------------------------------------------------------------------------
# the built-in sample
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run():
    return run(tty=True)  # no input named and standard input a terminal: the built-in sample


def test_no_input_scans_the_builtin_sample(sample_run):
    proc = sample_run
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    lines = out_lines(proc)
    assert lines, "the built-in sample holds true positives of the flagship rule"
    for rec in lines:
        assert rec["rule_id"] == RULE_ID
        assert rec["rule_title"] == "Suspicious Process By Web Server Process"
        assert rec["source"] == "<sample>"
        assert isinstance(rec["line"], int)
    assert "built-in sample" in err(proc)
    s = summary(proc)
    assert s["bad"] == 0
    assert s["read"] == 2000
    assert s["matches"] == len(lines)
    assert s["events"] == len(lines)
    assert RULE_ID in err(proc)


def test_sample_output_matches_the_reference(sample_run):
    rule = matcher.builtin("flagship")
    lines = out_lines(sample_run)
    for rec in lines:
        assert reference.evaluate(rule, rec["event"]) is True, rec
    # and nothing is missed: the sample is the documented generator (2000 events, seed 7)
    from matcher import cli

    events = datasets.generate(cli.SAMPLE_SIZE, cli.SAMPLE_SEED)
    want = [i for i, ev in enumerate(events, 1) if reference.evaluate(rule, ev)]
    assert [rec["line"] for rec in lines] == want
    for rec in lines:
        assert rec["event"] == events[rec["line"] - 1]


# --------------------------------------------------------------------------------------------
# files with bad lines
# --------------------------------------------------------------------------------------------


@pytest.fixture
def planted(tmp_path) -> Path:
    return write_jsonl(
        tmp_path / "events.jsonl",
        [
            TP,  # 1
            TN,  # 2
            '{"EventType": "Process Creation", "broken": ',  # 3: invalid JSON
            dict(TP, TgtProcImagePath="C:\\Windows\\System32\\net.exe"),  # 4
            '["EventType", "Process Creation"]',  # 5: a JSON array
            TP,  # 6
        ],
    )


def test_bad_lines_are_reported_and_counted(planted):
    proc = run(str(planted))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    e = err(proc)
    assert f"{planted}:3" in e
    assert f"{planted}:5" in e
    assert f"{planted}:1:" not in e and f"{planted}:4:" not in e
    s = summary(proc)
    assert s["bad"] == 2
    assert s["read"] == 6
    assert s["good"] == 4
    lines = out_lines(proc)
    assert [rec["line"] for rec in lines] == [1, 4, 6]
    assert all(rec["source"] == str(planted) for rec in lines)
    assert s["matches"] == 3


def test_strict_stops_at_the_first_bad_line(planted):
    proc = run("--strict", str(planted))
    assert proc.returncode == 1, err(proc)
    no_traceback(proc)
    e = err(proc)
    assert f"{planted}:3" in e
    assert f"{planted}:5" not in e
    # nothing after the bad line was scanned
    assert all(rec["line"] < 3 for rec in out_lines(proc))


def test_strict_with_a_clean_file(tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", [TP, TN])
    proc = run("--strict", str(path))
    assert proc.returncode == 0, err(proc)
    assert [rec["line"] for rec in out_lines(proc)] == [1]


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n" + json.dumps(TN).encode() + b"\n   \n\r\n" + json.dumps(TP).encode() + b"\r\n")
    proc = run(str(path))
    assert proc.returncode == 0, err(proc)
    assert [rec["line"] for rec in out_lines(proc)] == [5]
    s = summary(proc)
    assert s["read"] == 2 and s["bad"] == 0


def test_odd_records_do_not_crash(tmp_path):
    path = write_jsonl(
        tmp_path / "odd.jsonl",
        [
            dict(TP, TgtProcCmdLine="nul \u0000 byte"),  # 1: \u0000 escape
            '{"EventType": "Process Creation", "TgtProcCmdLine": "\\ud800"}',  # 2: lone surrogate escape
            b"\xff\xfe not utf-8",  # 3
            "42",  # 4: a JSON number
            '"a string"',  # 5
            "null",  # 6
            dict(TP, TgtProcImagePath=None),  # 7: None
            dict(TP, TgtProcCmdLine={"nested": [1, {"x": None}]}),  # 8
            dict(TP, SrcProcImagePath="C:\\Users\\jürgen\\İ\\W3WP.EXE"),  # 9
            dict(TP, TgtProcCmdLine="A" * 2_000_000),  # 10
            TP,  # 11
        ],
    )
    proc = run(str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    s = summary(proc)
    assert s["read"] == 11
    e = err(proc)
    for n in (3, 4, 5, 6):
        assert f"{path}:{n}" in e
    lines = [rec["line"] for rec in out_lines(proc)]
    assert {1, 8, 9, 10, 11} <= set(lines)
    assert 7 not in lines
    # line 2: a lone surrogate escape is read as json.loads reads it (issue 11, class 9): a
    # record, not a bad line (it does not match: no SrcProcImagePath)
    assert f"{path}:2" not in e
    assert s["bad"] == 4


# --------------------------------------------------------------------------------------------
# stdin, -q, -r
# --------------------------------------------------------------------------------------------


def _jsonl(*events) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_stdin_dash():
    proc = run("-", input=_jsonl(TN, TP, TN) + b"not json\n")
    assert proc.returncode == 0, err(proc)
    lines = out_lines(proc)
    assert [(r["rule_id"], r["source"], r["line"]) for r in lines] == [(RULE_ID, "<stdin>", 2)]
    assert lines[0]["event"] == TP
    assert "<stdin>:4" in err(proc)
    s = summary(proc)
    assert s["read"] == 4 and s["bad"] == 1


def test_custom_query():
    events = [
        {"TgtProcImagePath": "C:\\WINDOWS\\system32\\CMD.EXE"},
        {"TgtProcImagePath": "C:\\x\\notepad.exe"},
        {"Other": 1},
        {"TgtProcImagePath": ["a", "b\\cmd.exe"]},
    ]
    proc = run("-q", 'TgtProcImagePath endswithCIS "\\cmd.exe"', "-", input=_jsonl(*events))
    assert proc.returncode == 0, err(proc)
    lines = out_lines(proc)
    assert [r["line"] for r in lines] == [1, 4]
    assert {r["rule_id"] for r in lines} == {"query-1"}
    rule = matcher.compile('TgtProcImagePath endswithCIS "\\cmd.exe"')
    for r in lines:
        assert reference.evaluate(rule, r["event"])


def test_custom_query_with_not_and_absent_field():
    events = [{"A": "x"}, {"A": "x", "B": "secret"}, {"A": "y"}]
    proc = run("-q", 'A = "x" AND NOT B containsCIS "SECRET"', "-", input=_jsonl(*events))
    assert proc.returncode == 0, err(proc)
    assert [r["line"] for r in out_lines(proc)] == [1]


def test_two_queries_and_the_flagship():
    proc = run("-q", 'EventType = "process creation"', "-q", 'TgtProcCmdLine containsCIS "WHOAMI"',
               "-r", "flagship", "-", input=_jsonl(TP, TN))
    assert proc.returncode == 0, err(proc)
    got = [(r["line"], r["rule_id"]) for r in out_lines(proc)]
    assert got == [(1, "query-1"), (1, "query-2"), (1, RULE_ID), (2, "query-1"), (2, "query-2")]
    s = summary(proc)
    assert s["events"] == 2 and s["matches"] == 5


def test_rule_card_path():
    proc = run("-r", str(CARD), "-", input=_jsonl(TN, TP))
    assert proc.returncode == 0, err(proc)
    assert [(r["line"], r["rule_id"]) for r in out_lines(proc)] == [(2, RULE_ID)]


def test_custom_rule_card_and_query_file(tmp_path):
    card = tmp_path / "my_rule.md"
    card.write_text(
        "# my_rule\n\n## Title\nNotepad child\n\n## ID\nmy-rule-1\n\n## Level\nhigh\n\n"
        "## SentinelOne Query\n```\nTgtProcImagePath endswithCIS \"\\notepad.exe\"\n```\n",
        encoding="utf-8",
    )
    qfile = tmp_path / "cmd_query.s1ql"
    qfile.write_text('TgtProcImagePath endswithCIS "\\cmd.exe"\n', encoding="utf-8")
    proc = run("-r", str(card), "-r", str(qfile), "-", input=_jsonl(TP, TN))
    assert proc.returncode == 0, err(proc)
    lines = out_lines(proc)
    assert [(r["line"], r["rule_id"]) for r in lines] == [(1, "cmd_query"), (2, "my-rule-1")]
    assert lines[1]["rule_title"] == "Notepad child"
    assert lines[1]["level"] == "high"


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, column",
    [
        ('TgtProcImagePath containsCIS', 29),
        ('TgtProcImagePath frobnicates "x"', 18),
        ('A = "x" AND (B = "y"', None),
        ('A > "abc"', 5),
    ],
)
def test_bad_query_exits_2_with_a_caret(query, column):
    proc = run("-q", query, "-", input=_jsonl(TP))
    assert proc.returncode == 2, err(proc)
    no_traceback(proc)
    e = err(proc)
    assert proc.stdout == b""
    caret_lines = [line for line in e.splitlines() if line.strip() == "^"]
    assert caret_lines, e
    m = re.search(r"line (\d+), column (\d+)", e)
    assert m, e
    if column is not None:
        assert int(m.group(2)) == column, e
        # the caret sits under the named column of the echoed query
        lines = e.splitlines()
        i = lines.index(caret_lines[0])
        echoed = lines[i - 1]
        assert query in echoed
        assert caret_lines[0].index("^") == echoed.index(query) + column - 1


def test_bad_rule_card_exits_2(tmp_path):
    card = tmp_path / "bad.md"
    card.write_text("## Title\nx\n\n## SentinelOne Query\n```\nA = \"x\" AND\n```\n", encoding="utf-8")
    proc = run("-r", str(card), "-", input=_jsonl(TP))
    assert proc.returncode == 2, err(proc)
    no_traceback(proc)
    assert "^" in err(proc)


def test_unknown_builtin_rule_exits_2():
    proc = run("-r", "no-such-rule", "-", input=_jsonl(TP))
    assert proc.returncode == 2, err(proc)
    no_traceback(proc)


def test_unreadable_inputs_are_reported_and_counted(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [TP])
    a_dir = tmp_path / "a_directory"
    a_dir.mkdir()
    proc = run(str(a_dir), str(good))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    assert str(a_dir) in err(proc)
    assert [(r["source"], r["line"]) for r in out_lines(proc)] == [(str(good), 1)]
    # counted: 1 good record + 1 bad input, and the summary's arithmetic holds
    s = summary(proc)
    assert (s["read"], s["good"], s["bad"]) == (2, 1, 1)


@pytest.mark.parametrize("strict", [(), ("--strict",)])
def test_a_missing_input_is_an_error_and_nothing_is_scanned(tmp_path, strict):
    good = write_jsonl(tmp_path / "good.jsonl", [TP])
    missing = tmp_path / "does-not-exist.jsonl"
    proc = run(*strict, str(good), str(missing))
    assert proc.returncode == 2, err(proc)
    no_traceback(proc)
    assert f"{missing}: no such file or directory" in err(proc)
    assert out_lines(proc) == []


# --------------------------------------------------------------------------------------------
# input formats (the readers' details are in test_inputs.py)
# --------------------------------------------------------------------------------------------

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

NET = dict(TP, TgtProcImagePath="C:\\Windows\\System32\\net.exe")


def matched(proc) -> list[tuple]:
    out = []
    for r in out_lines(proc):
        unit = "line" if "line" in r else "row" if "row" in r else "record"
        out.append((unit, r[unit]))
    return out


def test_json_array_with_a_bad_item(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps([TN, TP, 42, NET]), encoding="utf-8")
    proc = run(str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    assert matched(proc) == [("row", 2), ("row", 4)]
    assert f"{path}:row 3" in err(proc)
    s = summary(proc)
    assert (s["read"], s["bad"]) == (4, 1)


def test_csv_with_bad_rows(tmp_path):
    path = tmp_path / "events.csv"
    cols = list(TP)
    lines = [",".join(cols)]
    lines.append(",".join(f'"{TN[c]}"' for c in cols))  # line 2
    lines.append(",".join(f'"{TP[c]}"' for c in cols))  # line 3
    lines.append(",".join(f'"{TP[c]}"' for c in cols) + ",extra")  # line 4: one cell too many
    lines.append(",".join(f'"{NET[c]}"' for c in cols))  # line 5
    data = ("\n".join(lines) + "\n").encode("utf-8") + b'Process Creation,windows,\xff\xfe,x,y,z\n'  # line 6
    path.write_bytes(data)
    proc = run(str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    assert matched(proc) == [("line", 3), ("line", 5)]
    assert out_lines(proc)[0]["event"] == TP
    e = err(proc)
    assert f"{path}:4:" in e and f"{path}:6:" in e
    s = summary(proc)
    assert (s["read"], s["good"], s["bad"]) == (5, 3, 2)


def test_parquet_goes_through_the_columnar_path(tmp_path):
    path = tmp_path / "events.parquet"
    table = pa.Table.from_pylist([TN, TP, TN, NET] * 3)
    pq.write_table(table, path, row_group_size=5)  # several row groups
    proc = run(str(path))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    assert matched(proc) == [("row", r) for r in (2, 4, 6, 8, 10, 12)]
    assert out_lines(proc)[0]["event"] == TP
    assert summary(proc)["read"] == 12


def test_gzip_and_detection_by_content(tmp_path):
    import gzip

    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(_jsonl(TN, TP)))
    odd = tmp_path / "events.log"  # no known extension: detected from the content
    odd.write_bytes(gzip.compress(json.dumps([TP, TN]).encode()))
    proc = run(str(gz), str(odd))
    assert proc.returncode == 0, err(proc)
    assert [(r["source"], r.get("line", r.get("row"))) for r in out_lines(proc)] == [(str(gz), 2), (str(odd), 1)]
    # stdin, gzipped, and an explicit format
    proc = run("-i", "jsonl", "-", input=gzip.compress(_jsonl(TP)))
    assert matched(proc) == [("line", 1)], err(proc)


def test_truncated_gzip_is_reported_and_the_scan_goes_on(tmp_path):
    import gzip

    cut = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress(_jsonl(*([TN] * 2000 + [TP])))
    cut.write_bytes(whole[: len(whole) // 2])
    good = write_jsonl(tmp_path / "good.jsonl", [TP])
    proc = run(str(cut), str(good))
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    assert "truncated" in err(proc) and str(cut) in err(proc)
    assert out_lines(proc)[-1]["source"] == str(good)
    s = summary(proc)
    # the partial last line is a bad record, the truncation a bad input (issue 11: both reported);
    # every whole line before the damage was read
    assert s["bad"] == 2 and s["read"] == s["good"] + 2 and s["good"] > 1
    assert "inside the gzip member that starts at byte 0" in err(proc)
    assert run("--strict", str(cut), str(good)).returncode == 1


def test_a_directory_of_logs(tmp_path):
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    write_jsonl(d / "a.jsonl", [TP])
    (d / "sub" / "b.json").write_text(json.dumps([TN, TP]), encoding="utf-8")
    (d / "notes.txt").write_text("not a log", encoding="utf-8")
    proc = run(str(d))
    assert proc.returncode == 0, err(proc)
    assert [r["source"] for r in out_lines(proc)] == [str(d / "a.jsonl"), str(d / "sub" / "b.json")]
    assert "notes.txt: passed over" in err(proc)


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_output_formats(fmt):
    proc = run("-f", fmt, "-", input=_jsonl(TN, TP, NET))
    assert proc.returncode == 0, err(proc)
    text = proc.stdout.decode("utf-8")
    if fmt == "json":
        doc = json.loads(text)
        assert [(r["line"], r["rule_id"]) for r in doc] == [(2, RULE_ID), (3, RULE_ID)]
        assert doc[0]["author"].startswith("Thomas Patzke")
    elif fmt == "csv":
        import csv
        import io

        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["unit"], r["where"], r["rule_id"]) for r in rows] == [("line", "2", RULE_ID), ("line", "3", RULE_ID)]
        assert json.loads(rows[0]["event"]) == TP
    else:
        assert "2 matches" in text and "Suspicious" in text and "<stdin>:2" in text
    assert run("-f", "json", "-", input=_jsonl(TN)).stdout.strip() == b"[]"


def test_stats_line():
    proc = run("--stats", "-", input=_jsonl(TP, TN))
    assert re.search(r"stats: 1 rules compiled in .* 2 records in .* records/s", err(proc)), err(proc)


# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------

SYSMON_TP = {"EventID": 1, "ParentImage": TP["SrcProcImagePath"], "Image": TP["TgtProcImagePath"],
             "CommandLine": TP["TgtProcCmdLine"], "ParentCommandLine": TP["SrcProcCmdLine"]}
ECS_TP = {"event": {"category": ["process"], "type": ["start"]}, "host": {"os": {"type": "windows"}},
          "process": {"executable": TP["TgtProcImagePath"], "command_line": TP["TgtProcCmdLine"],
                      "parent": {"executable": TP["SrcProcImagePath"], "command_line": TP["SrcProcCmdLine"]}}}
S1QL2_TP = {"event.type": "Process Creation", "endpoint.os": "windows", "src.process.image.path": TP["SrcProcImagePath"],
            "tgt.process.image.path": TP["TgtProcImagePath"], "tgt.process.cmdline": TP["TgtProcCmdLine"]}


@pytest.mark.parametrize("profile, tp, miss", [
    ("sysmon", SYSMON_TP, dict(SYSMON_TP, EventID=11)),
    ("ecs", ECS_TP, {**ECS_TP, "host": {"os": {"type": "linux"}}}),
    ("s1ql2", S1QL2_TP, dict(S1QL2_TP, **{"tgt.process.image.path": "C:\\x\\notepad.exe"})),
])
def test_profiles_run_the_flagship_on_other_schemas(profile, tp, miss):
    proc = run("-p", profile, "-", input=_jsonl(miss, tp, TP))
    assert proc.returncode == 0, err(proc)
    assert matched(proc) == [("line", 2)], err(proc)  # the S1-named event is not in this schema


def test_user_mapping_file(tmp_path):
    prof = tmp_path / "mine.toml"
    prof.write_text('base = "sysmon"\n[fields]\nTgtProcImagePath = "exe"\n', encoding="utf-8")
    ev = dict(SYSMON_TP)
    ev["exe"] = ev.pop("Image")
    proc = run("-p", str(prof), "-", input=_jsonl(SYSMON_TP, ev))
    assert matched(proc) == [("line", 2)], err(proc)
    bad = tmp_path / "bad.json"
    bad.write_text('{"fields": {"A": 1}}', encoding="utf-8")
    proc = run("-p", str(bad), "-", input=_jsonl(TP))
    assert proc.returncode == 2 and "fields" in err(proc)
    no_traceback(proc)


def test_rule_that_cannot_match_under_a_profile_is_reported():
    proc = run("-p", "sysmon", "-q", 'EndpointOS = "linux" AND Image containsCIS "sh"', "-r", "flagship", "-",
               input=_jsonl(SYSMON_TP))
    assert proc.returncode == 0, err(proc)
    assert "query-1" in err(proc) and "always false" in err(proc)
    assert matched(proc) == [("line", 1)]


# --------------------------------------------------------------------------------------------
# directories of rules, check
# --------------------------------------------------------------------------------------------


@pytest.fixture
def rule_dir(tmp_path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "good.s1ql").write_text('TgtProcImagePath endswithCIS "\\cmd.exe"\n', encoding="utf-8")
    (d / "bad.s1ql").write_text('TgtProcImagePath endswithCIS "\\cmd.exe" AND\n  SrcProcImagePath frob "x"\n',
                                encoding="utf-8")
    (d / "sigma.yml").write_text("title: t\nlogsource:\n  category: process_creation\n  product: windows\ndetection:\n  sel:\n    Image|endswith: '\\\\cmd.exe'\n  condition: sel\n",
                                 encoding="utf-8")
    (d / "multi.yml").write_text(
        "title: a\nid: 8a6c3f6e-0d6f-4c8e-9a51-3c1f1b1e0a01\nlogsource:\n  category: process_creation\n  product: windows\ndetection:\n  sel:\n    Image|endswith: '\\\\whoami.exe'\n  condition: sel\n"
        "---\ntitle: b\nid: 8a6c3f6e-0d6f-4c8e-9a51-3c1f1b1e0a02\nlogsource:\n  category: process_creation\n  product: windows\ndetection:\n  sel:\n    CommandLine|contains: 'whoami'\n  condition: sel\n",
        encoding="utf-8")
    (d / "card.md").write_text(CARD.read_text(encoding="utf-8"), encoding="utf-8")
    return d


def test_rule_directory_with_a_bad_rule(rule_dir):
    proc = run("-r", str(rule_dir), "-", input=_jsonl(TP))
    assert proc.returncode == 2, err(proc)
    no_traceback(proc)
    assert proc.stdout == b""
    assert str(rule_dir / "bad.s1ql") in err(proc)
    proc = run("-r", str(rule_dir), "--skip-bad-rules", "-", input=_jsonl(TP))
    assert proc.returncode == 0, err(proc)
    assert {r["rule_id"] for r in out_lines(proc)} >= {"good", RULE_ID}
    assert "did not load" in err(proc)


def test_check_reports_every_bad_rule(rule_dir):
    proc = run(str(rule_dir), command="check")
    no_traceback(proc)
    e = err(proc)
    assert proc.returncode == 1, e
    assert f"{rule_dir / 'bad.s1ql'}" in e and "line 2, column 20" in e
    assert any(line.strip() == "^" for line in e.splitlines())
    assert "sigma.yml" not in e and "multi.yml" not in e  # Sigma files load, one rule or several
    assert re.search(r"(\d+) rule\(s\) ok, (\d+) error", e).groups() == ("5", "1")
    ok = run(str(rule_dir / "good.s1ql"), str(rule_dir / "card.md"), command="check")
    assert ok.returncode == 0, err(ok)
    dup = run(str(rule_dir / "card.md"), "flagship", command="check")  # the same id twice
    assert dup.returncode == 1 and "already used" in err(dup)
    assert run(command="check").returncode == 2


# --------------------------------------------------------------------------------------------
# generate | scan
# --------------------------------------------------------------------------------------------


def test_generate_piped_into_scan(tmp_path):
    want = [i for i, ev in enumerate(datasets.generate(1000, 0), 1) if reference.evaluate(matcher.builtin(), ev)]
    assert want, "1000 events at seed 0 hold true positives"
    gen = run("-n", "1000", "-o", "-", command="generate")
    assert gen.returncode == 0, err(gen)
    proc = run("-", input=gen.stdout)
    assert [r["line"] for r in out_lines(proc)] == want
    for schema, profile in (("s1", "s1"), ("sysmon", "sysmon")):
        for ext in ("jsonl", "parquet"):
            path = tmp_path / f"{schema}.{ext}"
            gen = run("-n", "1000", "--schema", schema, "-o", str(path), command="generate")
            assert gen.returncode == 0, err(gen)
            proc = run("-p", profile, str(path))
            assert proc.returncode == 0, err(proc)
            assert [r.get("line", r.get("row")) for r in out_lines(proc)] == want, (schema, ext)
            assert summary(proc)["read"] == 1000
