"""Every value modifier pySigma 2 accepts (``sigma.modifiers.modifier_mapping``) either works --
the compiled core and the reference evaluator agree with the verdicts written out here -- or
is a clear UnsupportedFeature naming it. Timestamp parts (``|minute`` ... ``|year``) and the
``timestamp`` option, API and command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from sigma.modifiers import modifier_mapping

import matcher
from matcher import ops, reference
from matcher.errors import MatcherError, UnsupportedFeature
from matcher.ir import Op, walk_preds
from matcher.sigma import parse_sigma
from matcher.sigma.loader import SigmaOptions


def rule_of(detection: str, **kw) -> matcher.Rule:
    text = ("title: t\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  category: process_creation\n"
            "detection:\n" + textwrap.indent(textwrap.dedent(detection).strip(), "  ") + "\n")
    (rule,) = parse_sigma(text, source="t.yml", **kw)
    return rule


def agree(rule: matcher.Rule, events: list[dict]) -> list[bool]:
    core = [rule.match(e) for e in events]
    assert core == [reference.evaluate(rule, e) for e in events]
    assert rule.match_many(events).tolist() == core
    return core


B64 = "YQBiAA=="  # "ab" as UTF-16LE, base64
# modifier -> (detection, events, expected verdicts)
EXAMPLES = {
    "all": ("s:\n  F|contains|all: [ab, cd]\ncondition: s", [{"F": "xabcd"}, {"F": "ab"}], [True, False]),
    "neq": ("s:\n  F|neq: x\ncondition: s", [{"F": "y"}, {"F": "X"}], [True, False]),
    "base64": ("s:\n  F|base64: ab\ncondition: s", [{"F": "YWI="}, {"F": "ab"}], [True, False]),
    "base64offset": ("s:\n  F|base64offset|contains: ab\ncondition: s", [{"F": "xxYWIx"}, {"F": "ab"}], [True, False]),
    "cased": ("s:\n  F|cased: Ab\ncondition: s", [{"F": "Ab"}, {"F": "ab"}], [True, False]),
    "cidr": ("s:\n  F|cidr: 10.0.0.0/8\ncondition: s", [{"F": "10.1.2.3"}, {"F": "11.1.2.3"}], [True, False]),
    "contains": ("s:\n  F|contains: b\ncondition: s", [{"F": "aBc"}, {"F": "ac"}], [True, False]),
    "endswith": ("s:\n  F|endswith: c\ncondition: s", [{"F": "abC"}, {"F": "ca"}], [True, False]),
    "startswith": ("s:\n  F|startswith: a\ncondition: s", [{"F": "Abc"}, {"F": "ba"}], [True, False]),
    "exists": ("s:\n  F|exists: true\ncondition: s", [{"F": ""}, {"G": "x"}], [True, False]),
    "expand": ("s:\n  F|expand: '%hosts%'\ncondition: s", [{"F": "ws-2"}, {"F": "ws-3"}], [True, False]),
    "fieldref": ("s:\n  F|fieldref: G\ncondition: s", [{"F": "a", "G": "A"}, {"F": "a", "G": "b"}], [True, False]),
    "gt": ("s:\n  F|gt: 5\ncondition: s", [{"F": 6}, {"F": "5"}], [True, False]),
    "gte": ("s:\n  F|gte: 5\ncondition: s", [{"F": "5"}, {"F": 4.5}], [True, False]),
    "lt": ("s:\n  F|lt: 5\ncondition: s", [{"F": "4"}, {"F": 5}], [True, False]),
    "lte": ("s:\n  F|lte: 5\ncondition: s", [{"F": "5.0"}, {"F": "x"}], [True, False]),
    "re": ("s:\n  F|re: ^a.c$\ncondition: s", [{"F": "abc"}, {"F": "Abc"}], [True, False]),
    "i": ("s:\n  F|re|i: ^a.c$\ncondition: s", [{"F": "Abc"}, {"F": "xbc"}], [True, False]),
    "ignorecase": ("s:\n  F|re|ignorecase: ^a\ncondition: s", [{"F": "Ab"}, {"F": "b"}], [True, False]),
    "m": ("s:\n  F|re|m: ^b\ncondition: s", [{"F": "a\nb"}, {"F": "ab"}], [True, False]),
    "multiline": ("s:\n  F|re|multiline: ^b\ncondition: s", [{"F": "a\nb"}, {"F": "ab"}], [True, False]),
    "s": ("s:\n  F|re|s: a.b\ncondition: s", [{"F": "a\nb"}, {"F": "ab"}], [True, False]),
    "dotall": ("s:\n  F|re|dotall: a.b\ncondition: s", [{"F": "a\nb"}, {"F": "ab"}], [True, False]),
    "wide": ("s:\n  F|wide|base64: ab\ncondition: s", [{"F": B64}, {"F": "YWI="}], [True, False]),
    "utf16": ("s:\n  F|utf16|base64: ab\ncondition: s", [{"F": "//5hAGIA"}, {"F": B64}], [True, False]),
    "utf16be": ("s:\n  F|utf16be|base64: ab\ncondition: s", [{"F": "AGEAYg=="}, {"F": B64}], [True, False]),
    "windash": ("s:\n  F|windash|contains: ' -a'\ncondition: s", [{"F": "x /a"}, {"F": "x a"}], [True, False]),
    "minute": ("s:\n  T|minute: 45\ncondition: s", [{"T": "2026-05-01T13:45:10Z"}, {"T": "2026-05-01T13:44:59Z"}], [True, False]),
    "hour": ("s:\n  T|hour: 13\ncondition: s", [{"T": "2026-05-01 13:45:10"}, {"T": "2026-05-01T13:45:00+02:00"}], [True, False]),
    "day": ("s:\n  T|day: 1\ncondition: s", [{"T": "2026-05-01T00:00:00Z"}, {"T": "2026-05-02T00:00:00Z"}], [True, False]),
    "week": ("s:\n  T|week: 18\ncondition: s", [{"T": "2026-04-27T12:00:00Z"}, {"T": "2026-04-26T12:00:00Z"}], [True, False]),
    "month": ("s:\n  T|month: 5\ncondition: s", [{"T": 1777593600}, {"T": "2026-04-30T23:59:59Z"}], [True, False]),
    "year": ("s:\n  T|year: 2026\ncondition: s", [{"T": "1767225600000"}, {"T": "2025-12-31T23:59:59Z"}], [True, False]),
}


def test_every_pysigma_modifier_has_an_example():
    assert set(modifier_mapping) == set(EXAMPLES), set(modifier_mapping) ^ set(EXAMPLES)


@pytest.mark.parametrize("modifier", sorted(modifier_mapping))
def test_modifier_works_or_is_unsupported(modifier):
    detection, events, expected = EXAMPLES[modifier]
    try:
        rule = rule_of(detection, options=SigmaOptions.of(placeholders={"hosts": ["ws-1", "ws-2"]}))
    except UnsupportedFeature as e:  # pragma: no cover - today every modifier works
        assert modifier in str(e)
        return
    assert agree(rule, events) == expected


def test_timestamp_parts_are_timepart_predicates_on_the_timestamp_option():
    rule = rule_of("s:\n  EventTime|hour: 3\ncondition: s")
    assert {(p.field, p.op, p.value) for p in walk_preds(rule.ir)} == {("EventTime", Op.TIMEPART, "hour=3")}
    rule = rule_of("s:\n  EventTime|hour: 3\ncondition: s", options=SigmaOptions.of(timestamp="UtcTime"))
    assert [p.field for p in walk_preds(rule.ir)] == ["UtcTime"]
    assert agree(rule, [{"UtcTime": "2026-01-01T03:00:00Z"}, {"EventTime": "2026-01-01T03:00:00Z"}]) == [True, False]


@pytest.mark.parametrize("text", ["", "x", "2026-13-01T00:00:00", "nan", "1e400", "-1e30"])
def test_unreadable_timestamps_never_match(text):
    assert ops.parse_timestamp(text) is None
    rule = rule_of("s:\n  T|year: 2026\ncondition: s")
    assert agree(rule, [{"T": text}]) == [False]


def test_timestamp_api_and_cli_agree(tmp_path):
    path = tmp_path / "r.yml"
    path.write_text("title: t\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  product: windows\n"
                    "  service: security\ndetection:\n  s:\n    EventID: 4624\n    Any|hour: 13\n  condition: s\n")
    events = [{"Channel": "Security", "EventID": 4624, "TimeCreated": "2026-03-01 13:00:01"},
              {"Channel": "Security", "EventID": 4624, "TimeCreated": "2026-03-01 14:00:01"}]
    rule = matcher.load(path, profile="sysmon", timestamp="TimeCreated")
    assert [rule.match(e) for e in events] == [True, False]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    out = subprocess.run([sys.executable, "-m", "matcher", "scan", "-p", "sysmon", "-r", str(path), "--timestamp",
                          "TimeCreated", "-f", "jsonl", "--no-progress", str(log)],
                         capture_output=True, text=True, env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [json.loads(x)["line"] for x in out.stdout.splitlines()] == [1]
    with pytest.raises(MatcherError, match="timestamp must be a field name"):
        matcher.load(path, profile="sysmon", timestamp="")
