"""``matcher test`` (rules that carry their tests) and ``matcher coverage`` (what the rules read
against what the events hold), through ``python -m matcher``; ``matcher check``'s warning for a
field no profile knows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from shared_data import shared_path
from test_cli import CARD, RULE_ID, TN, TP, _jsonl, err, no_traceback, run, write_jsonl

import matcher
from matcher import coverage
from matcher.ir import And, Not, Op, Or, Pred

# --------------------------------------------------------------------------------------------
# matcher test: rule cards
# --------------------------------------------------------------------------------------------


def test_the_flagship_passes_its_own_tests():
    tests = matcher.builtin().info.extra["tests"]
    assert sum(t.expect for t in tests) >= 3 and sum(not t.expect for t in tests) >= 3
    proc = run("flagship", "-v", command="test")
    assert proc.returncode == 0, err(proc)
    out = proc.stdout.decode()
    assert f"PASS  {RULE_ID}" in out and "7 events as expected (3 match, 4 no match)" in out
    assert "1 rule(s) tested: 1 passed, 0 failed" in err(proc)
    # the flagship's verdicts are the reference's too
    rule = matcher.builtin()
    assert all(matcher.reference.evaluate(rule, t.event) == t.expect for t in tests)


def _card_with_tests(tmp_path: Path, match: list, no_match: list) -> Path:
    text = CARD.read_text(encoding="utf-8").split("## Tests")[0]
    text += "## Tests\n\n### Match\n```jsonl\n" + "".join(json.dumps(e) + "\n" for e in match) + "```\n"
    text += "\n### No match\n```jsonl\n" + "".join(json.dumps(e) + "\n" for e in no_match) + "```\n"
    path = tmp_path / "card.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_failing_card_test_shows_expected_got_and_the_first_disagreeing_event(tmp_path):
    card = _card_with_tests(tmp_path, [TP, TN], [TN, TP])
    proc = run(str(card), command="test")
    assert proc.returncode == 1, err(proc)
    no_traceback(proc)
    out = proc.stdout.decode()
    assert f"FAIL  {RULE_ID}" in out
    assert "2 of 4 events not as expected (2 match, 2 no match)" in out
    lines = card.read_text().splitlines()
    tn_line = lines.index(json.dumps(TN)) + 1  # the first disagreeing event: TN under ### Match
    assert f"first event that disagrees: {card}:{tn_line} (expected a match)" in out
    assert "reference: NO MATCH (the compiled core agrees)" in out
    assert "✗ any of 29 on TgtProcImagePath" in out  # explain's tree
    assert "0 passed, 1 failed" in err(proc)


def test_rules_without_tests_are_counted_and_nothing_tested_is_exit_2(tmp_path):
    q = tmp_path / "q.s1ql"
    q.write_text('A = "b"')
    proc = run(str(q), command="test")
    assert proc.returncode == 2, err(proc)
    assert "1 loaded rule(s) have no tests" in err(proc)
    both = run(str(q), "flagship", command="test")
    assert both.returncode == 0 and "1 passed, 0 failed; 1 loaded rule(s) have no tests" in err(both)


# --------------------------------------------------------------------------------------------
# matcher test: SigmaHQ's regression layout
# --------------------------------------------------------------------------------------------

SIGMA = """\
title: whoami by a web server
id: 0d5c3e3a-2d39-4f61-8d0c-6d6a8b0c7e11
status: test
logsource: {category: process_creation, product: windows}
detection:
    sel:
        ParentImage|endswith: '\\w3wp.exe'
        Image|endswith: '\\whoami.exe'
    condition: sel
level: high
"""


def _regression(tmp_path: Path, events: list, match_count) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(SIGMA)
    folder = tmp_path / "data" / "regression_data" / "rules" / "windows" / "r"
    folder.mkdir(parents=True)
    write_jsonl(folder / "0d5c3e3a-2d39-4f61-8d0c-6d6a8b0c7e11.jsonl", events)
    info = {"id": "x", "rule_metadata": [{"id": "0d5c3e3a-2d39-4f61-8d0c-6d6a8b0c7e11", "title": "t"}],
            "regression_tests_info": [{"name": "Positive Detection Test", "type": "json",
                                       "path": "regression_data/rules/windows/r/0d5c3e3a-2d39-4f61-8d0c-6d6a8b0c7e11.jsonl"}]}
    if match_count is not None:
        info["regression_tests_info"][0]["match_count"] = match_count
    (folder / "info.yml").write_text(json.dumps(info))  # JSON is YAML
    return rules, tmp_path / "data"


HIT = {"EventID": 1, "ParentImage": "C:\\inetpub\\w3wp.exe", "Image": "C:\\Windows\\System32\\whoami.exe"}
MISS = dict(HIT, Image="C:\\Windows\\System32\\notepad.exe")


@pytest.mark.parametrize("events, count, code, says", [
    ([MISS, HIT], None, 0, "expected at least 1 match(es)"),
    ([HIT, HIT], 2, 0, "got 2 of 2"),
    ([HIT, MISS], 2, 1, "expected at least 2 match(es) in 0d5c3e3a-2d39-4f61-8d0c-6d6a8b0c7e11.jsonl, got 1 of 2"),
])
def test_regression_layout(tmp_path, events, count, code, says):
    rules, data = _regression(tmp_path, events, count)
    proc = run(str(rules), str(data), "-v", command="test")
    assert proc.returncode == code, err(proc) + proc.stdout.decode()
    out = proc.stdout.decode()
    assert says in out
    if code:
        assert "first event that disagrees: 0d5c3e3a-2d39-4f61-8d0c-6d6a8b0c7e11.jsonl line 2 (expected a match)" in out
        assert '✗ Image endswithCIS "\\whoami.exe"' in out


def test_more_matches_than_match_count_is_a_note(tmp_path):
    rules, data = _regression(tmp_path, [HIT, HIT], 1)
    proc = run(str(rules), str(data), "-v", command="test")
    assert proc.returncode == 0
    assert "note: 0d5c3e3a-2d39-4f61-8d0c-6d6a8b0c7e11.jsonl: 2 matches, more than the 1 info.yml names" in proc.stdout.decode()


def test_a_missing_event_file_fails(tmp_path):
    rules, data = _regression(tmp_path, [HIT], None)
    for f in data.rglob("*.jsonl"):
        f.unlink()
    proc = run(str(rules), str(data), command="test")
    assert proc.returncode == 1 and "is missing" in proc.stdout.decode()


@pytest.mark.slow
def test_sigmahq_regression_data_passes_for_every_rule_shipped():
    """The CI step: every SigmaHQ rule with regression data passes it (EVTX read with the evtx package)."""
    pytest.importorskip("evtx")
    rules, data = shared_path("sigma-rules"), shared_path("sigma-regression")
    n_info = sum(1 for _ in data.rglob("info.yml"))
    proc = run(str(rules), str(data), "--skip-bad-rules", command="test")
    e = err(proc)
    assert proc.returncode == 0, proc.stdout.decode()[-5000:] + e[-3000:]
    m = re.search(r"test: (\d+) rule\(s\) tested: (\d+) passed, 0 failed", e)
    assert m and m.group(1) == m.group(2), e[-2000:]
    no_tests = e.count("has no test (regression_tests_info is empty or commented out)")
    assert int(m.group(1)) + no_tests == n_info  # every folder was run or said why not
    assert "name rules not loaded" not in e  # every rule with regression data loaded


# --------------------------------------------------------------------------------------------
# matcher coverage
# --------------------------------------------------------------------------------------------


def test_possible_decides_only_what_absence_decides():
    a, b = Pred("A", Op.EQUALS, "x"), Pred("B", Op.EQUALS, "y")
    assert coverage.possible(And((a, b)), {"A"}) is False
    assert coverage.possible(Or((a, b)), {"A"}) is None
    assert coverage.possible(Or((a, b)), {"A", "B"}) is False
    assert coverage.possible(Not(a), {"A"}) is True  # a NOT over an absent field holds
    assert coverage.possible(And((Not(a), b)), {"A"}) is None
    ref = Pred("A", Op.FIELDREF, "B")
    assert coverage.possible(ref, {"B"}) is False
    assert coverage.possible(Pred("", Op.KEYWORD, matcher.ir.Glob.of("x")), {"A"}) is None
    assert coverage.blocking_fields(And((a, Or((b, Pred("C", Op.EXISTS))))), {"A", "B", "C"}) == ["A"]
    assert coverage.blocking_fields(Or((a, b)), {"A", "B"}) == ["A", "B"]


def test_event_fields_follow_the_absence_rules():
    ev = {"a": "x", "n": None, "l": [], "lo": [None, 1], "o": {"p": {"q": 1}, "r": None}, "b": False}
    assert coverage.event_fields(ev) == {"a", "lo", "o.p.q", "b"}


def test_coverage_report(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "typo.s1ql").write_text('TgtProcImagPath endswithCIS "\\cmd.exe" AND EventType = "Process Creation"')
    (rules / "either.s1ql").write_text('TgtProcImagPath endswithCIS "\\cmd.exe" OR TgtProcCmdLine containsCIS "x"')
    events = write_jsonl(tmp_path / "e.jsonl", [TP, TN, {"Extra": None, "Only": "here"}])
    proc = run(str(rules), str(events), "-r", "flagship", command="coverage")
    assert proc.returncode == 0, err(proc)
    out = proc.stdout.decode()
    assert "3 rule(s) reading 7 field(s); 3 event(s) holding 7 field(s); 0 bad record(s)" in out
    assert re.search(r"fields the rules read that no event holds: 1\n  TgtProcImagPath  \(read by 2 rule\(s\); "
                     r"no profile knows it: did you mean TgtProcImagePath\?\)", out), out
    assert "fields the events hold that no rule reads: 1\n  Only  (in 1 event(s))" in out
    assert "rules that can never fire on these events: 1\n  typo  typo  (needs TgtProcImagPath)" in out
    assert "either" not in out.split("can never fire")[1]


def test_coverage_follows_the_profile():
    proc = run("flagship", "-", "-p", "sysmon", input=_jsonl({"EventID": 1, "Image": "x", "ParentImage": "y"}),
               command="coverage")
    assert proc.returncode == 0, err(proc)
    out = proc.stdout.decode()
    assert "fields the rules read that no event holds: 2\n  CommandLine" in out and "ParentCommandLine" in out
    assert "rules that can never fire on these events: 0" in out


SIGMA_PH = """title: Workstation admins
id: 5a5a5a5a-0000-4000-8000-000000000001
name: ws_admins
logsource:
  category: process_creation
  product: windows
detection:
  sel:
    Computer|expand: '%Workstations%'
    Image|endswith: '\\cmd.exe'
  condition: sel
---
title: Filter service accounts
id: 5a5a5a5a-0000-4000-8000-000000000002
logsource:
  category: process_creation
  product: windows
filter:
  rules:
    - ws_admins
  sel:
    User|startswith: 'svc_'
  condition: not sel
---
title: Zeek rdp
id: 5a5a5a5a-0000-4000-8000-000000000003
logsource:
  product: zeek
  service: rdp
detection:
  sel:
    id.orig_h|cidr: 10.0.0.0/8
  condition: not sel
"""


def test_coverage_loads_sigma_rules_as_scan_does(tmp_path):
    """Sigma rules go through the Sigma front end for the events' profile: placeholders filled,
    filters applied (their fields read), the routing's fields read, an unrouted logsource reported."""
    (tmp_path / "r.yml").write_text(SIGMA_PH)
    events = write_jsonl(tmp_path / "e.jsonl", [{"EventID": 1, "Image": "c:\\cmd.exe", "Computer": "ws-1"}])
    proc = run(str(tmp_path / "r.yml"), str(events), "-p", "sysmon", "--placeholder", "Workstations=ws-*",
               command="coverage")
    assert proc.returncode == 0, err(proc)
    out = proc.stdout.decode()
    assert "1 rule(s) reading 5 field(s)" in out, out  # Computer, Image, User (the filter), EventID, Channel
    assert "fields the rules read that no event holds: 2\n  Channel" in out and "\n  User" in out
    assert "rules that can never fire on these events: 0" in out
    assert "cannot recognise logsource product=zeek,service=rdp: 1 rule(s) skipped" in err(proc)
    # as scan: a placeholder without a value is an error, not %Workstations% taken literally
    proc = run(str(tmp_path / "r.yml"), str(events), "-p", "sysmon", command="coverage")
    assert proc.returncode == 2 and "%Workstations% has no value" in err(proc)
    # under s1 the same rule reads S1 names, routed by the s1 table
    proc = run(str(tmp_path / "r.yml"), str(events), "--placeholder", "Workstations=ws-*", command="coverage")
    assert proc.returncode == 0, err(proc)
    assert "TgtProcImagePath" in proc.stdout.decode() and "EventType" in proc.stdout.decode()


def test_coverage_usage_errors(tmp_path):
    assert run("flagship", str(tmp_path / "nope.jsonl"), command="coverage").returncode == 2
    assert run("no-such-rule", "-", command="coverage").returncode == 2


def test_check_warns_of_a_field_no_profile_knows():
    proc = run("-q", 'TgtProcImagPath endswithCIS "\\cmd.exe"', "flagship", command="check")
    assert proc.returncode == 0, err(proc)
    assert ("warning: rule query-1 (query 1): field 'TgtProcImagPath' is known to no profile "
            "(did you mean TgtProcImagePath?)") in err(proc)
    assert "2 rule(s) ok, 0 error(s), 1 field name(s) no profile knows" in err(proc)
    assert "warning" not in err(run("flagship", command="check"))


TYPO = """title: typo
id: 22222222-2222-3333-4444-555555555555
logsource:
  category: process_creation
  product: windows
detection:
  sel:
    Imgae|endswith: '\\cmd.exe'
    CommandLine|contains: 'x'
    FooBarField: 'y'
  other:
    ParentImage|fieldref: ParentImaeg
  condition: sel or other
"""


def test_check_warns_of_a_misspelt_sigma_field_at_its_yaml_key(tmp_path):
    rule = tmp_path / "typo.yml"
    rule.write_text(TYPO)
    proc = run(str(rule), "-p", "sysmon", command="check")
    assert proc.returncode == 0, err(proc)
    warnings = [x for x in err(proc).splitlines() if "warning" in x]
    # without a sample: only names one edit away from a known one (Sigma's names are open-ended)
    assert warnings == [
        f"matcher check: warning: {rule}:line 8, column 5: rule 22222222-2222-3333-4444-555555555555: field 'Imgae' "
        "is known to no profile (did you mean Image?)",
        f"matcher check: warning: {rule}:line 12, column 27: rule 22222222-2222-3333-4444-555555555555: field "
        "'ParentImaeg' is known to no profile (did you mean ParentImage?)"], err(proc)
    assert "1 rule(s) ok, 0 error(s), 2 field name(s) no profile knows" in err(proc)
    # with a sample: every name no profile knows and no event of the sample holds
    sample = write_jsonl(tmp_path / "s.jsonl", [{"EventID": 1, "Image": "c:\\cmd.exe", "ParentImaeg": "x"}])
    proc = run(str(rule), "-p", "sysmon", "--sample", str(sample), command="check")
    assert proc.returncode == 0, err(proc)
    warnings = [x.split(": rule ", 1)[0].rsplit(":", 1)[1] + ": " + x.split("field ", 1)[1]
                for x in err(proc).splitlines() if "warning" in x]
    assert warnings == ["line 8, column 5: 'Imgae' is known to no profile and no event of the sample holds it "
                        "(did you mean Image?)",
                        "line 10, column 5: 'FooBarField' is known to no profile and no event of the sample holds it"]
    assert "the sample holds 3 field name(s) in 1 event(s)" in err(proc)
    # the routing's own fields (Channel, EventID) are known; a missing sample is a usage error
    assert "Channel" not in err(proc) and "EventID" not in err(proc)
    assert run(str(rule), "--sample", str(tmp_path / "nope.jsonl"), command="check").returncode == 2


def test_check_sample_silences_an_s1ql_field_the_events_hold(tmp_path):
    sample = write_jsonl(tmp_path / "s.jsonl", [{"TgtProcImagPath": "x"}])
    proc = run("-q", 'TgtProcImagPath endswithCIS "\\cmd.exe"', "--sample", str(sample), command="check")
    assert proc.returncode == 0 and "warning" not in err(proc), err(proc)
    # an S1QL rule file: the warning gives the field's line and column in the file
    rule = tmp_path / "t.s1ql"
    rule.write_text('EventType = "Process Creation"\n  AND TgtProcImagPath endswithCIS "x"\n')
    proc = run(str(rule), command="check")
    assert (f"warning: {rule}:line 2, column 7: rule t: field 'TgtProcImagPath' is known to no profile "
            "(did you mean TgtProcImagePath?)") in err(proc)


def test_sigma_field_positions():
    from matcher.sigma.loader import field_positions

    assert field_positions(TYPO) == {"Imgae": (8, 5), "CommandLine": (9, 5), "FooBarField": (10, 5),
                                     "ParentImage": (12, 5), "ParentImaeg": (12, 27)}
    assert field_positions("a: [") == {}


def test_every_corpus_field_is_known_to_a_profile():
    """The check's warning is for typos: none of the 1,648 corpus queries gets it."""
    from matcher import mapping, rules

    found, _, _ = rules.read_rule_lines(shared_path("corpus", "sigmahq-s1ql.jsonl"))
    known = mapping.known_fields()
    assert len(found) == 1648
    assert [w for _, node, _ in found for w in mapping.unknown_field_warnings(node, known)] == []
