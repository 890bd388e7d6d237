"""matcher.testing (issue 18): events from rules, near misses, counterexamples between rules.

Every strategy is checked twice here: the reference evaluator inside the strategy, the
compiled core (``Rule.match``) in the tests. The corpus tests need the shared third-party data
(``$MATCHER_SHARED``; skipped when absent); the full corpus is ``slow``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings

import matcher
from matcher import reference
from matcher import testing as mt
from matcher.errors import ArgumentError, MatcherError
from matcher.ir import Op, walk_preds
from matcher.sigma import parse_sigma
from shared_data import corpus_path

ROOT = Path(__file__).resolve().parent.parent
#: The property tests below: the profile's example count, at most 30 (each example is built and
#: checked by the reference, then matched by the core).
FEW = settings(max_examples=min(settings.default.max_examples, 30))

# One rule per kind of predicate events() must satisfy (S1QL); Sigma-only kinds below.
S1QL_RULES = [
    'TgtProcImagePath endswithCIS "\\cmd.exe"',
    'TgtProcCmdLine containsCIS "kill" AND TgtProcCmdLine startswithCIS "tas"',
    'TgtProcImagePath = "C:\\Windows\\System32\\whoami.exe"',
    'TgtProcCmdLine = "*powershell*-enc*"',
    'TgtProcCmdLine RegExp "-[Ee]nc(odedCommand)?\\s+[A-Za-z0-9+/]{20,}={0,2}"',
    'TgtProcCmdLine RegExp "^cmd" AND TgtProcCmdLine containsCIS "whoami"',
    'TgtProcPID > "4" AND TgtProcPID <= "1000"',
    'TgtProcImagePath endswithCIS "\\cmd.exe" AND NOT SrcProcImagePath endswithCIS "\\explorer.exe"',
    'TgtProcUser IS NOT EMPTY AND NOT (SrcProcCmdLine containsCIS "svchost" OR SrcProcCmdLine EXISTS)',
    'TgtProcImagePath In Contains AnyCase ("\\\\net.exe","\\\\net1.exe") AND TgtProcCmdLine In ("stop","start")',
    'EventType = "Process Creation" AND (TgtProcCmdLine containsCIS "Σ" OR TgtProcCmdLine containsCIS "ſ")',
]

SIGMA_RULE = """
title: test rule with Sigma-only predicates
id: 9d5c4a43-8d1f-4c1e-9a3c-7f1a2b3c4d5e
logsource: {category: network_connection, product: windows}
detection:
  net:
    DestinationIp|cidr: ['10.0.0.0/8', '2001:db8::/32']
  same:
    SourceHostname|fieldref: DestinationHostname
  port:
    DestinationPort|gte: 1024
  odd:
    Image|endswith: '\\w?p.exe'
  condition: net and same and port and odd
---
title: keywords
id: 0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0
logsource: {product: windows, service: system}
detection:
  keywords: ['*mimikatz*', 'sekurlsa::*']
  filter: {Provider_Name: 'Microsoft-Windows-Security-Auditing'}
  condition: keywords and not filter
"""


def _sigma_rules():
    return parse_sigma(SIGMA_RULE, source="test.yml", profile="sysmon")


ALL_RULES = [matcher.compile(q, id=f"q{i}") for i, q in enumerate(S1QL_RULES)] + _sigma_rules()
IDS = [r.id for r in ALL_RULES]


def _collect(strategy, n: int = 40) -> list[dict]:
    got: list[dict] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(ev):
        got.append(ev)

    run()
    return got


# -- the interface of the issue ------------------------------------------------------------------


@pytest.mark.parametrize("rule", ALL_RULES, ids=IDS)
def test_events_fire(rule):
    @FEW
    @given(mt.events(rule))
    def test_fires(event):
        assert rule.match(event)
        assert reference.evaluate(rule, event)

    test_fires()


@pytest.mark.parametrize("rule", ALL_RULES, ids=IDS)
def test_near_misses_are_quiet(rule):
    @FEW
    @given(mt.events(rule, matching=False))
    def test_quiet(event):
        assert not rule.match(event)
        assert not reference.evaluate(rule, event)

    test_quiet()


def test_shrinking_gives_the_minimal_event():
    rule = matcher.compile('TgtProcImagePath endswithCIS "\\cmd.exe" AND TgtProcCmdLine containsCIS "/c"')
    got = find(mt.events(rule), lambda ev: True, settings=settings(database=None))
    assert got == {"TgtProcImagePath": "\\cmd.exe", "TgtProcCmdLine": "/c"} == mt.witness(rule)
    # a failing property shrinks to a minimal event too: the OR's first branch, no filler
    rule = matcher.compile('A containsCIS "x" OR B containsCIS "y"')
    got = find(mt.events(rule), lambda ev: "B" in ev, settings=settings(database=None))
    assert got == {"B": "y"}


def test_events_carry_filler_and_folding_traps():
    rule = matcher.compile('TgtProcCmdLine containsCIS "kill"')
    evs = _collect(mt.events(rule), 120)
    values = {ev["TgtProcCmdLine"] for ev in evs}
    assert any("KILL" in v for v in values)  # upper case: ASCII folding
    assert any("\u212aill" in v for v in values)  # KELVIN SIGN lowers to "k"
    assert any(set(ev) - {"TgtProcCmdLine"} for ev in evs)  # realistic fields the rule does not read
    users = {ev.get("TgtProcUser") for ev in evs} - {None}
    assert users and all(u.startswith("CORP\\") for u in users)  # from the generator's vocabulary


def test_regexes_come_from_from_regex():
    rule = matcher.compile('TgtProcCmdLine RegExp "^[a-f]{3}[0-9]+$"')
    evs = _collect(mt.events(rule), 60)
    assert len({ev["TgtProcCmdLine"] for ev in evs}) > 5
    assert mt.witness(rule)["TgtProcCmdLine"] == "aaa0"


def test_negated_predicates_leave_fields_absent_in_the_minimal_event():
    rule = matcher.compile('A endswithCIS "x" AND NOT B containsCIS "y" AND NOT C EXISTS')
    assert mt.witness(rule) == {"A": "x"}


def test_comparisons_and_cidr_values():
    rule = matcher.compile('P > "4" AND P <= "6"')
    values = {float(ev["P"]) for ev in _collect(mt.events(rule), 40)}
    assert values and all(4 < v <= 6 for v in values)
    (net,) = parse_sigma("title: t\nlogsource: {product: x}\ndetection:\n  s: {Ip|cidr: 192.168.0.0/16}\n"
                         "  condition: s", profile=None)
    ips = {ev["Ip"] for ev in _collect(mt.events(net), 30)}
    assert ips and all(ip.startswith("192.168.") for ip in ips)


# -- near misses ----------------------------------------------------------------------------------


def test_near_misses_break_one_place_minimally():
    rule = matcher.compile('TgtProcImagePath endswithCIS "\\cmd.exe" AND TgtProcCmdLine containsCIS "/c"')
    misses = list(mt.near_misses(rule))
    assert {"TgtProcImagePath": "\\cmd.exe.bak", "TgtProcCmdLine": "/c"} in misses
    assert {"TgtProcCmdLine": "/c"} in misses  # a removed field
    assert {"TgtProcImagePath": "\\cmd.exe", "TgtProcCmdLine": "\\c"} in misses  # a one-character edit
    for m in misses:  # each differs from the minimal event in one field
        changed = {k for k in set(m) | {"TgtProcImagePath", "TgtProcCmdLine"}
                   if m.get(k) != mt.witness(rule).get(k)}
        assert len(changed) == 1, m
        assert not rule.match(m)


def test_near_misses_use_the_wrong_case_where_case_matters():
    rule = matcher.compile('TgtProcCmdLine RegExp "Invoke-Mimikatz"')
    assert {"TgtProcCmdLine": "iNVOKE-mIMIKATZ"} in list(mt.near_misses(rule))


def test_near_misses_use_look_alikes_that_do_not_fold():
    rule = matcher.compile('TgtProcCmdLine containsCIS "vssadmin"')
    misses = [m.get("TgtProcCmdLine") for m in mt.near_misses(rule)]
    assert "v\u017fsadmin" in misses  # LATIN SMALL LETTER LONG S is not "s" after str.lower()
    rule = matcher.compile('TgtProcCmdLine containsCIS "mimikatz"')
    assert "m\u0130mikatz" in [m.get("TgtProcCmdLine") for m in mt.near_misses(rule)]


def test_near_misses_of_a_negated_predicate_make_it_hold():
    rule = matcher.compile('A endswithCIS "x" AND NOT B endswithCIS "\\java.exe"')
    assert {"A": "x", "B": "\\java.exe"} in list(mt.near_misses(rule))


# -- unsatisfiable rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    'x EXISTS AND NOT x EXISTS',
    'x containsCIS "dllhost" AND NOT x IS NOT EMPTY',
    'x = "a" AND NOT x startswithCIS "A"',
    'x endswithCIS "a" AND NOT x endswithCIS "a"',
    'x endswithCIS "/etc/nsswitch.conf" AND NOT x In Contains AnyCase ("/etc/nsswitch.conf","/x")',
    'x startswithCIS "C:\\Windows" AND NOT x startswithCIS "c:\\"',
    '(x = "a" OR y = "b") AND NOT (x EXISTS OR y EXISTS)',
])
def test_unsatisfiable_rules_are_proven_by_structure(query):
    with pytest.raises(mt.UnsatisfiableRule) as ei:
        mt.events(matcher.compile(query))
    assert ei.value.proven and not ei.value.always
    assert isinstance(ei.value, MatcherError)


@pytest.mark.parametrize("query,value", [
    ('x = "a" AND x = "b"', ["a", "b"]),
    ('x > "5" AND x < "3"', ["6", "2"]),
    ('x = "RunWizard" AND x RegExp "\\{[0-9a-f]{8}\\}"', ["RunWizard", "{aaaaaaaa}"]),
])
def test_one_text_cannot_but_a_list_can(query, value):
    # docs/semantics.md: a list is a multi-valued field, a predicate holds for any element
    rule = matcher.compile(query)
    assert mt.witness(rule) == {"x": value}
    assert rule.match({"x": value})
    for ev in _collect(mt.events(rule, matching=False), 20):
        assert not rule.match(ev)


@pytest.mark.timeout(60)
def test_unsatisfiable_beyond_structure_is_found_by_a_bounded_search():
    # the only text the first regex finds a match in also holds the second: no structural test knows
    rule = matcher.compile('x RegExp "^a$" AND NOT x RegExp "a"')
    with pytest.raises(mt.UnsatisfiableRule) as ei:
        mt.witness(rule)
    assert not ei.value.proven and ei.value.searched >= 1
    # a wide rule: the search is bounded, not exhaustive
    wide = " AND ".join(f'(x{i} = "a" OR x{i} = "b")' for i in range(12)) + ' AND y RegExp "^1$" AND NOT y RegExp "1"'
    with pytest.raises(mt.UnsatisfiableRule) as ei:
        mt.events(matcher.compile(wide))
    assert ei.value.searched == mt.SEARCH_TERMS and not ei.value.proven


def test_a_rule_every_event_matches_has_no_near_miss():
    rule = matcher.compile('x EXISTS OR NOT x EXISTS')
    assert mt.witness(rule) == {"x": ""}  # the first branch: x present
    with pytest.raises(mt.UnsatisfiableRule) as ei:
        mt.events(rule, matching=False)
    assert ei.value.always


CORRELATION = """
title: failed logon
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
name: failed_logon
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4625, LogonType: [3, 10]}
  condition: selection
---
title: brute force
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [TargetUserName]
  timespan: 5m
  condition: {gte: 10}
"""


def test_correlation_base_rules_are_rules():
    base, corr = parse_sigma(CORRELATION, source="corr.yml", profile="sysmon")
    assert isinstance(base, matcher.Rule) and not isinstance(corr, matcher.Rule)
    evs = _collect(mt.events(base), 20)
    assert evs and all(base.match(ev) for ev in evs)
    misses = _collect(mt.events(base, matching=False), 20)
    assert misses and not any(base.match(ev) for ev in misses)
    with pytest.raises(ArgumentError, match="base rules"):  # a MatcherError and a TypeError
        mt.events(corr)


# -- counterexample / implies ------------------------------------------------------------------------


def _check_disagreement(a, b, ev):
    assert ev is not None
    assert reference.evaluate(a, ev) != reference.evaluate(b, ev)
    assert a.match(ev) != b.match(ev)


def test_counterexample_finds_an_edit_that_changed_the_meaning():
    a = matcher.compile('TgtProcImagePath endswithCIS "\\cmd.exe"')
    b = matcher.compile('TgtProcImagePath containsCIS "\\cmd.exe"')
    ev = mt.counterexample(a, b)
    _check_disagreement(a, b, ev)
    assert mt.implies(a, b) is None
    ev = mt.implies(b, a)
    assert b.match(ev) and not a.match(ev)


@pytest.mark.parametrize("qa,qb", [
    ('x > "5"', 'x >= "5"'),
    ('x RegExp "abc"', 'x containsCIS "abc"'),
    ('x = "a*"', 'x startswithCIS "a"'),  # only a literal star would tell them apart: none
    ('x endswithCIS "a" AND NOT y EXISTS', 'x endswithCIS "a"'),
])
def test_counterexample_on_boundaries_case_and_absence(qa, qb):
    a, b = matcher.compile(qa), matcher.compile(qb)
    ev = mt.counterexample(a, b)
    if qa == 'x = "a*"':
        assert ev is None
    else:
        _check_disagreement(a, b, ev)


def test_counterexample_under_not_equality_against_substring():
    # SigmaHQ's sigverif rule: the backend turned "NOT equals any" into "NOT contains any"
    a = matcher.compile('S endswithCIS "\\sigverif.exe" AND NOT (T = "C:\\W\\WerFault.exe" OR T = "C:\\X\\WerFault.exe")')
    b = matcher.compile('S endswithCIS "\\sigverif.exe" AND NOT T In Contains AnyCase ("C:\\W\\WerFault.exe","C:\\X\\WerFault.exe")')
    ev = mt.counterexample(a, b, budget=0)  # found by the structural search alone
    _check_disagreement(a, b, ev)
    assert a.match(ev) and "WerFault.exe" in ev["T"]


def test_equivalent_rewrites_have_no_counterexample():
    a = matcher.compile('x In Contains AnyCase ("a","b") AND NOT y = "c"')
    b = matcher.compile('NOT (y = "C" OR NOT (x containsCIS "B" OR x containsCIS "A"))')
    assert mt.counterexample(a, b, budget=50) is None
    assert mt.counterexample(a, a, budget=0) is None


def test_counterexample_across_front_ends():
    text = """
title: list of values
id: 11111111-2222-4333-8444-555555555555
logsource: {category: process_creation, product: windows}
detection:
  sel: {Image: ['C:\\\\Windows\\\\System32\\\\net.exe', 'C:\\\\Windows\\\\System32\\\\net1.exe']}
  condition: sel
"""
    (sig,) = parse_sigma(text, profile="s1")
    (emu,) = parse_sigma(text, profile="s1", s1_backend=True)
    s1 = matcher.compile(emu.query)  # what the SentinelOne backend writes: In Contains AnyCase
    ev = mt.counterexample(sig, s1)
    _check_disagreement(sig, s1, ev)
    assert mt.implies(sig, s1) is None
    assert mt.counterexample(emu, s1, budget=20) is None


# -- on ourselves: the built-in rules and the corpus ----------------------------------------------------


@pytest.mark.parametrize("name", matcher.builtin_names())
def test_builtin_rules_yield_events_the_core_matches(name):
    rule = matcher.builtin(name)
    evs = _collect(mt.events(rule), 10)
    assert evs and all(rule.match(ev) for ev in evs)
    misses = _collect(mt.events(rule, matching=False), 10)
    assert misses and not any(rule.match(ev) for ev in misses)


def _corpus_rules():
    out = []
    with corpus_path().open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["query"]:
                out.append(matcher.compile(rec["query"], id=rec["id"], title=rec["title"]))
    return out


def _check_corpus(rules, examples: int) -> int:
    """Every rule: a witness and hypothesis events the core matches, or UnsatisfiableRule."""
    satisfiable = 0
    for rule in rules:
        try:
            strategy = mt.events(rule)
        except mt.UnsatisfiableRule as e:
            # proven: fine. Not proven: the reference must agree on the candidates we can build
            assert e.proven, f"{rule.id}: {e}"
            continue
        satisfiable += 1
        evs = [mt.witness(rule)] + _collect(strategy, examples)
        assert all(rule.match(ev) for ev in evs), rule.id
    return satisfiable


def test_corpus_sample_every_satisfiable_rule_yields_events():
    rules = random.Random(18).sample(_corpus_rules(), 60)
    assert _check_corpus(rules, 3) >= 55


@pytest.mark.slow
def test_corpus_every_satisfiable_rule_yields_events():
    rules = _corpus_rules()
    assert len(rules) > 1600
    assert _check_corpus(rules, 5) >= 0.99 * len(rules)


# -- the command line ------------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matcher", *args], capture_output=True, timeout=300)


def test_cli_examples_and_near_misses(tmp_path):
    path = tmp_path / "r.s1ql"
    path.write_text('TgtProcImagePath endswithCIS "\\cmd.exe" AND TgtProcCmdLine containsCIS "/c"\n', encoding="utf-8")
    rule = matcher.load(path)
    proc = _run("examples", str(path), "-n", "5")
    assert proc.returncode == 0, proc.stderr
    evs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(evs) == 5 and all(rule.match(ev) for ev in evs)
    assert evs[0] == {"TgtProcImagePath": "\\cmd.exe", "TgtProcCmdLine": "/c"}  # the simplest first
    proc = _run("examples", str(path), "-n", "5", "--near-misses")
    evs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert proc.returncode == 0 and len(evs) == 5 and not any(rule.match(ev) for ev in evs)
    unsat = tmp_path / "u.s1ql"
    unsat.write_text('x EXISTS AND NOT x EXISTS\n', encoding="utf-8")
    proc = _run("examples", str(unsat))
    assert proc.returncode == 2 and b"no event can match it" in proc.stderr
    assert _run("examples", str(tmp_path / "missing.s1ql")).returncode == 2


def test_cli_diff(tmp_path):
    a, b = tmp_path / "a.s1ql", tmp_path / "b.s1ql"
    a.write_text('TgtProcImagePath endswithCIS "\\cmd.exe"\n', encoding="utf-8")
    b.write_text('TgtProcImagePath containsCIS "\\cmd.exe"\n', encoding="utf-8")
    proc = _run("diff", str(a), str(b))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.decode()
    assert "disagree" in out and "NO MATCH" in out and "\n" + str(b) in out and "✓ TgtProcImagePath containsCIS" in out
    proc = _run("diff", str(a), str(b), "--format", "json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["differ"]
    assert [r["matched"] for r in doc["rules"]] == [False, True]
    assert matcher.load(b).match(doc["event"]) and not matcher.load(a).match(doc["event"])
    proc = _run("diff", str(a), str(a), "--budget", "10")
    assert proc.returncode == 0 and b"no event found" in proc.stdout


def test_sigma_rule_predicates_are_all_exercised():
    kinds = {p.op for r in _sigma_rules() for p in walk_preds(r.ir)}
    assert {Op.CIDR, Op.FIELDREF, Op.GE, Op.GLOB, Op.KEYWORD} <= kinds
