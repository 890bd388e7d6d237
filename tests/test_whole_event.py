"""Rules with whole-event predicates (Sigma keywords) through the command line: their verdict
does not depend on how records are decoded or on which other rules are loaded (issue 14)."""

from __future__ import annotations

import json

import pytest

import matcher
from matcher.sigma import parse_sigma
from test_cli import out_lines, run

KEYWORD_RULE = """title: keyword
id: 11111111-2222-3333-4444-555555555555
status: test
logsource:
  service: custom
detection:
  kw:
    - '*evil*'
  condition: kw
"""

EVENTS = [
    {"a": "x evil y", "TgtProcCmdLine": "cmd"},
    {"a": "good", "TgtProcCmdLine": "EVIL.exe"},
    {"b": {"c": ["x", "EVIL"]}},
    {"a": "good"},
]


@pytest.fixture
def files(tmp_path):
    rule = tmp_path / "kw.yml"
    rule.write_text(KEYWORD_RULE)
    # wide records: with --decode auto the reader would decode only the rules' fields
    padding = {f"pad{i}": "p" for i in range(40)}
    events = tmp_path / "ev.jsonl"
    events.write_text("".join(json.dumps({**padding, **ev}) + "\n" for ev in EVENTS))
    return rule, events


def test_ruleset_with_a_keyword_reads_whole_events():
    kw = parse_sigma(KEYWORD_RULE, source="kw.yml")
    fieldref = parse_sigma(KEYWORD_RULE.replace("kw:\n    - '*evil*'\n  condition: kw",
                                                "sel:\n    A|fieldref: B\n  condition: sel"), source="f.yml")
    rules = [matcher.compile('TgtProcCmdLine containsCIS "x"', id="s1")]
    assert not matcher.RuleSet(rules).reads_whole_events
    assert not matcher.RuleSet(rules + fieldref).reads_whole_events  # it reads fields A and B
    assert set(matcher.RuleSet(fieldref).fields) == {"A", "B"}
    assert matcher.RuleSet(rules + kw).reads_whole_events


@pytest.mark.parametrize("decode", ["auto", "whole"])
@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("beside", [False, True])
def test_keyword_rule_matches_whatever_the_decoding_and_the_other_rules(files, decode, jobs, beside):
    rule, events = files
    extra = ["-q", 'TgtProcCmdLine containsCIS "nothing-here"'] if beside else []
    proc = run("-r", str(rule), *extra, "--decode", decode, "-j", jobs, str(events))
    assert proc.returncode == 0, proc.stderr
    assert [m["line"] for m in out_lines(proc) if m["rule_id"].startswith("1111")] == [1, 2, 3]
