"""Rules with whole-event predicates (Sigma keywords) through the command line: their verdict
does not depend on how records are decoded or on which other rules are loaded (issue 14)."""

from __future__ import annotations

import json
import types

import pyarrow as pa
import pytest

import matcher
from matcher import compiler, reference
from matcher.errors import ArrowDataError
from matcher.ir import Glob, Op, Pred
from matcher.rules import RuleInfo
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
    # (a custom logsource no profile recognises: run unrouted, as the rule means every event)
    proc = run("-r", str(rule), *extra, "--unrouted", "run", "--decode", decode, "-j", jobs, str(events))
    assert proc.returncode == 0, proc.stderr
    assert [m["line"] for m in out_lines(proc) if m["rule_id"].startswith("1111")] == [1, 2, 3]


# -- Sigma keywords run in the core (a glob over every string value, no Python call per event) --

def kw_rule(pattern: str) -> matcher.Rule:
    (rule,) = parse_sigma(KEYWORD_RULE.replace("'*evil*'", repr(pattern)), source="kw.yml")
    return rule


def verdicts(rule: matcher.Rule, events: list) -> list[bool]:
    """The core's verdicts, checked against the reference, match_many and a RuleSet beside
    another rule on the way."""
    core = [rule.match(e) for e in events]
    assert core == [reference.evaluate(rule, e) for e in events]
    assert rule.match_many(events).tolist() == core
    other = matcher.compile('TgtProcCmdLine containsCIS "evil"', id="other")
    both = matcher.RuleSet([other, rule])
    assert [rule.id in both.match(e) for e in events] == core
    return core


def test_keyword_is_a_core_predicate_not_a_callback():
    rs = matcher.RuleSet([kw_rule("*evil*")])
    kinds = set(compiler.compile_plan([r.ir for r in rs]).pred_kind)
    assert kinds <= {compiler.TABLE, compiler.GLOB}  # no whole-event (Python) predicate is left
    assert rs.reads_whole_events and rs.fields == ()


def test_keyword_reads_every_string_value_at_any_depth():
    events = [
        {"a": "x EVIL y"},
        {"a": [{"b": {"c": ["x", "evil"]}}]},
        {"evil": "x"},  # keys are not values
        {"a": 5, "b": None, "c": True},
        {"a": ["evi", "l"]},
        {"<every string value>": "evil"},  # the pseudo-field's name is no field name
        {"": "evil"},
        {},
    ]
    assert verdicts(kw_rule("*evil*"), events) == [True, True, False, False, False, True, True, False]
    # Sigma reads a keyword without wildcards as contains; "" as any string value
    assert verdicts(kw_rule("evil"), [{"a": "EVIL"}, {"a": "evil!"}, {"a": ["x", "eviL"]}]) == [True, True, True]
    assert verdicts(kw_rule(""), [{"a": ""}, {"a": "x"}, {"a": 1}, {}]) == [True, True, False, False]
    # a KEYWORD glob without wildcards (valid IR) is a whole value, the empty glob the empty string
    for glob, want in ((Glob.of("evil"), [True, False, True]), (Glob.of(), [False, False, False])):
        rule = matcher.Rule(Pred("", Op.KEYWORD, glob), RuleInfo(id="g", title="g"))
        assert verdicts(rule, [{"a": "EVIL"}, {"a": "evil!"}, {"a": ["x", "eviL"]}]) == want
    assert verdicts(matcher.Rule(Pred("", Op.KEYWORD, Glob.of()), RuleInfo(id="g", title="g")), [{"a": ["x", ""]}]) == [True]
    # numbers and booleans are not strings (Sigma keywords search text)
    assert verdicts(kw_rule("*5*"), [{"a": 5}, {"a": "5"}]) == [False, True]


def test_keyword_on_deep_nesting_and_mappings():
    deep: object = "evil"
    for _ in range(50_000):
        deep = [deep]
    assert verdicts(kw_rule("*evil*"), [{"a": deep}]) == [True]

    M = types.MappingProxyType  # a Mapping that is not a dict
    assert verdicts(kw_rule("*evil*"), [M({"a": M({"b": "evil"})}), M({"a": "good"})]) == [True, False]


def test_keyword_on_arrow_reads_every_column_and_nested_values():
    rule = kw_rule("*evil*")
    table = pa.table({
        "a": pa.array(["x evil", None, "good", None]),
        "s": pa.array([None, {"c": ["EVIL"]}, {"c": ["ok"]}, None], pa.struct([("c", pa.list_(pa.string()))])),
        "n": pa.array([1, 2, 3, None]),
    })
    want = [True, True, False, False]
    assert rule.match_arrow(table).tolist() == want
    assert [reference.evaluate(rule, row) for row in table.to_pylist()] == want
    assert list(matcher.RuleSet([rule]).scan_arrow(table.slice(1))) == [(0, rule.id)]
    shared = pa.Table.from_arrays([pa.array(["evil"]), pa.array(["x"])], names=["a", "a"])
    with pytest.raises(ArrowDataError, match="share"):
        rule.match_arrow(shared)
