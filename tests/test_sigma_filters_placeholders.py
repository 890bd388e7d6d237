"""Sigma filters (sigma-filters-specification.md) and placeholders (``%name%``, ``|expand``):
API and command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import matcher
from matcher import reference
from matcher.errors import MatcherError, RuleError, UnsupportedFeature
from matcher.sigma import SigmaOptions, load_sigma_files, load_sigma_tree
from matcher.sigma.placeholders import FEATURE, parse_placeholder_arg, read_placeholder_file
from shared_data import sigma_rules_path

RULE = """title: Rar
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
name: rar_compress
logsource:
  category: process_creation
  product: windows
detection:
  sel:
    Image|endswith: '\\\\rar.exe'
  condition: sel
"""
OTHER = RULE.replace("6f3e2987", "7f3e2987").replace("rar_compress", "other").replace("Rar", "Other")
FILTER = """title: Filter admins
id: 0e95725d-7320-415d-80f7-004da920fc11
logsource:
  category: process_creation
  product: windows
filter:
  rules:
    - {ref}
  sel:
    User|startswith: 'adm_'
  condition: not sel
"""
EVENTS = [{"EventID": 1, "Image": "c:\\rar.exe", "User": "bob"}, {"EventID": 1, "Image": "c:\\rar.exe", "User": "adm_x"}]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matcher", *args], capture_output=True, text=True,
                          env=os.environ, timeout=300)


def scan(*args: str) -> tuple[list[tuple[int, str]], str]:
    out = cli("scan", "-f", "jsonl", "--no-progress", "-p", "sysmon", *args)
    assert out.returncode == 0, out.stderr
    return sorted((json.loads(x)["line"], json.loads(x)["rule_id"][:8]) for x in out.stdout.splitlines()), out.stderr


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rar.yml").write_text(RULE)
    (tmp_path / "rules" / "other.yml").write_text(OTHER)
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    return tmp_path


@pytest.mark.parametrize("ref", ["6f3e2987-db24-4c78-a860-b4f4095a7095", "rar_compress"])
def test_filter_in_its_own_file_applies_to_the_rule_it_names(tree, ref):
    flt = tree / "mf_admins.yml"
    flt.write_text(FILTER.format(ref=ref))
    rule = matcher.load(tree / "rules" / "rar.yml", profile="sysmon", filters=[flt])
    assert [rule.match(e) for e in EVENTS] == [True, False] == [reference.evaluate(rule, e) for e in EVENTS]
    other = matcher.load(tree / "rules" / "other.yml", profile="sysmon")
    assert [other.match(e) for e in EVENTS] == [True, True]
    # a tree holding the filter: applied to the rule it names only, across files
    (tree / "rules" / "mf_admins.yml").write_text(FILTER.format(ref=ref))
    load = load_sigma_tree(tree / "rules", profile="sysmon")
    assert not load.failures and not load.filter_problems and len(load.filters) == 1
    got = {r.id[:8]: [r.match(e) for e in EVENTS] for r in load.rules}
    assert got == {"6f3e2987": [True, False], "7f3e2987": [True, True]}
    # the command line: --filter FILE, and filters inside -r trees
    matches, _ = scan("-r", str(tree / "rules"), str(tree / "log.jsonl"))
    assert matches == [(1, "6f3e2987"), (1, "7f3e2987"), (2, "7f3e2987")]
    (tree / "rules" / "mf_admins.yml").unlink()
    matches, _ = scan("-r", str(tree / "rules"), "--filter", str(flt), str(tree / "log.jsonl"))
    assert matches == [(1, "6f3e2987"), (1, "7f3e2987"), (2, "7f3e2987")]


def test_filter_given_to_a_tar_load(tree):
    import tarfile

    from matcher.sigma import load_sigma_tar

    flt = tree / "mf_admins.yml"
    flt.write_text(FILTER.format(ref="rar_compress"))
    archive = tree / "rules.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "rules", arcname="rules")
    load = load_sigma_tar(archive, profile="sysmon", filters=[flt])
    assert not load.failures and not load.filter_problems
    assert {r.id[:8]: [r.match(e) for e in EVENTS] for r in load.rules} == {"6f3e2987": [True, False],
                                                                             "7f3e2987": [True, True]}


def test_filter_in_the_rules_file(tree):
    both = tree / "both.yml"
    both.write_text(RULE + "---\n" + FILTER.format(ref="rar_compress"))
    rule = matcher.load(both, profile="sysmon")
    assert [rule.match(e) for e in EVENTS] == [True, False]


def test_filter_naming_a_missing_rule_is_reported(tree):
    flt = tree / "mf_missing.yml"
    flt.write_text(FILTER.format(ref="no_such_rule"))
    with pytest.raises(RuleError, match="filter names rule 'no_such_rule', which is not loaded"):
        matcher.load(tree / "rules" / "rar.yml", profile="sysmon", filters=[flt])
    load = load_sigma_files([tree / "rules" / "rar.yml", flt], profile="sysmon")
    assert len(load.rules) == 1 and len(load.filter_problems) == 1 and not load.failures
    matches, err = scan("-r", str(tree / "rules"), "--filter", str(flt), str(tree / "log.jsonl"))
    assert "filter names rule 'no_such_rule', which is not loaded" in err and len(matches) == 4


def test_filter_outside_the_rules_logsource_is_reported(tree):
    flt = tree / "mf_dns.yml"
    flt.write_text(FILTER.format(ref="rar_compress").replace("process_creation", "dns_query"))
    load = load_sigma_files([tree / "rules" / "rar.yml", flt], profile="sysmon")
    assert [r.match(EVENTS[1]) for r in load.rules] == [True]
    assert "does not cover" in load.filter_problems[0]


def test_a_file_holding_only_filters_is_not_an_error(tree):
    (tree / "rules" / "mf_admins.yml").write_text(FILTER.format(ref="rar_compress"))
    out = cli("check", "-p", "sysmon", str(tree / "rules"))
    assert out.returncode == 0, out.stderr
    with pytest.raises(RuleError, match="holds rules too"):
        matcher.load(tree / "rules" / "other.yml", profile="sysmon", filters=[tree / "rules" / "rar.yml"])


# -- placeholders ------------------------------------------------------------------------------

PH_RULE = """title: ph
id: 11111111-1111-1111-1111-111111111111
logsource:
  category: process_creation
  product: windows
detection:
  sel:
    Computer|expand: '%Workstations%'
    User|expand: '%dom%\\\\%admins%'
  condition: sel
"""


def test_placeholders_fill_every_combination(tmp_path):
    path = tmp_path / "ph.yml"
    path.write_text(PH_RULE)
    values = {"Workstations": ["ws-1*", "ws-2"], "dom": ["CORP", "LAB"], "admins": ["adm"]}
    rule = matcher.load(path, profile="sysmon", placeholders=values)
    events = [{"EventID": 1, "Computer": "WS-10", "User": "lab\\adm"}, {"EventID": 1, "Computer": "ws-2", "User": "CORP\\adm"},
              {"EventID": 1, "Computer": "ws-3", "User": "CORP\\adm"}, {"EventID": 1, "Computer": "ws-2", "User": "X\\adm"}]
    assert [rule.match(e) for e in events] == [True, True, False, False] == [reference.evaluate(rule, e) for e in events]
    with pytest.raises(UnsupportedFeature, match="%admins% has no value") as e:
        matcher.load(path, profile="sysmon", placeholders={"Workstations": ["a"], "dom": ["b"]})
    assert e.value.feature == FEATURE
    with pytest.raises(MatcherError, match="expected a list of strings"):
        matcher.load(path, profile="sysmon", placeholders={"dom": [["nested"]]})
    # the command line: --placeholder and --placeholders FILE give the same verdicts
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    vals = tmp_path / "values.yml"
    vals.write_text("Workstations: ['ws-1*', ws-2]\ndom: [CORP]\n")
    matches, _ = scan("-r", str(path), "--placeholders", str(vals), "--placeholder", "dom=LAB",
                      "--placeholder", "admins=adm", str(log))
    assert [m[0] for m in matches] == [1, 2]
    out = cli("scan", "-p", "sysmon", "-r", str(path), "--placeholder", "dom=LAB", "--skip-bad-rules",
              "-q", "x = 1", "--no-progress", str(log))
    assert out.returncode == 0 and "%Workstations% has no value" in out.stderr and "1 rule(s) did not load" in out.stderr
    assert parse_placeholder_arg("a=b,c") == ("a", ["b", "c"])
    with pytest.raises(MatcherError):
        parse_placeholder_arg("novalue")
    bad = tmp_path / "bad.yml"
    bad.write_text("a: {b: c}\n")
    with pytest.raises(MatcherError, match="bad.yml"):
        read_placeholder_file(bad)


RE_RULE = """title: re ph
id: 11111111-2222-3333-4444-555555555555
logsource:
  category: process_creation
  product: windows
detection:
  sel:
    CommandLine|re|i|expand: '{pattern}'
  condition: sel
"""


def test_placeholders_in_a_regex_are_escaped_and_alternated(tmp_path):
    path = tmp_path / "re.yml"
    path.write_text(RE_RULE.format(pattern=r"^\S+ %users%\d+$"))
    rule = matcher.load(path, profile="sysmon", placeholders={"users": ["adm*", "a.b?", "x|y"]})
    (pred,) = [p for p in matcher.ir.walk_preds(rule.ir) if p.field == "CommandLine"]
    assert pred.value == r"(?i)^\S+ (?:adm(?s:.*)|a\.b(?s:.)|x\|y)\d+$"
    lines = {"x adm12": True, "x ADMxyz12": True, "x a.bc3": True, "x axbc3": False, "x adm": False,
             "x x|y7": True, "x x7": False, "x y7": False}
    events = [{"EventID": 1, "CommandLine": c} for c in lines]
    assert [rule.match(e) for e in events] == list(lines.values()) == [reference.evaluate(rule, e) for e in events]
    with pytest.raises(UnsupportedFeature, match="%users% has no value") as e:
        matcher.load(path, profile="sysmon")
    assert (e.value.feature, e.value.line, e.value.column) == (FEATURE, 8, 30)


@pytest.mark.parametrize("pattern, where, at", [("a[b%users%]c", "inside a character class", 4),
                                                ("a[]%users%]c", "inside a character class", 4),
                                                (r"a\%users%", "right after a backslash", 3),
                                                ("a{2,%users%}", "inside a repetition count", 5)])
def test_a_placeholder_where_an_alternation_cannot_stand_is_unsupported(tmp_path, pattern, where, at):
    path = tmp_path / "re.yml"
    path.write_text(RE_RULE.format(pattern=pattern))
    with pytest.raises(UnsupportedFeature, match=re.escape(f"%users% stands {where} of the |re pattern "
                                                           f"(at character {at})")) as e:
        matcher.load(path, profile="sysmon", placeholders={"users": ["x"]})
    assert (e.value.feature, e.value.line, e.value.column) == (FEATURE, 8, 30)
    # a closed class, or an escaped backslash, leaves a place a group may stand
    ok = tmp_path / "ok.yml"
    ok.write_text(RE_RULE.format(pattern=r"[\]]\\%users%"))
    rule = matcher.load(ok, profile="sysmon", placeholders={"users": ["x"]})
    assert rule.match({"EventID": 1, "CommandLine": "]\\x"})


def test_a_regex_its_placeholder_values_make_too_large_is_unsupported(tmp_path):
    path = tmp_path / "re.yml"
    path.write_text(RE_RULE.format(pattern="(?:%users%){1000}"))
    with pytest.raises(UnsupportedFeature, match="with %users% filled is not a regex the engine runs") as e:
        matcher.load(path, profile="sysmon", placeholders={"users": [f"v{i}*" * 10 for i in range(20)]})
    assert (e.value.feature, e.value.line, e.value.column) == (FEATURE, 8, 30)


def test_all_sigmahq_placeholder_rules_load_given_values():
    root = sigma_rules_path()
    names: set[str] = set()
    for p in root.rglob("*.yml"):
        text = p.read_text(encoding="utf-8")
        if "|expand" in text:
            names.update(re.findall(r"%([^%\s']+)%", text))
    without = load_sigma_tree(root / "rules-placeholder", profile="sysmon", options=SigmaOptions.of(unrouted="run"))
    assert without.unsupported() == {FEATURE: len(without.failures)} and without.failures
    given = load_sigma_tree(root / "rules-placeholder", profile="sysmon",
                            options=SigmaOptions.of({n: [f"value-of-{n}"] for n in names}, unrouted="run"))
    assert not given.failures
    assert len(given.rules) == len(without.rules) + len(without.failures)
    whole = load_sigma_tree(root, options=SigmaOptions.of({n: ["x"] for n in names}))
    assert whole.unsupported() == {} and len(whole.rules) == whole.files


def test_load_rules_applies_filters_across_files_and_reports_once(tree):
    (tree / "rules" / "mf_admins.yml").write_text(FILTER.format(ref="rar_compress"))
    (tree / "rules" / "mf_missing.yml").write_text(FILTER.format(ref="gone").replace("0e95725d", "1e95725d"))
    for i in range(2):
        (tree / "rules" / f"zeek{i}.yml").write_text(
            RULE.replace("6f3e2987", f"{i}f3e2987").replace("rar_compress", f"z{i}")
            .replace("category: process_creation\n  product: windows", "product: zeek\n  service: rdp"))
    failures: list = []
    rules = matcher.load_rules(tree / "rules", profile="sysmon", failures=failures)
    got = {r.id[:8]: [r.match(e) for e in EVENTS] for r in rules}
    assert got == {"6f3e2987": [True, False], "7f3e2987": [True, True]}
    noted = dict(failures)
    assert set(noted) == {"logsource product=zeek,service=rdp",
                          str(tree / "rules" / "mf_missing.yml") + " [1e95725d-7320-415d-80f7-004da920fc11]"}
    assert "product=zeek,service=rdp: 2 rule(s) skipped" in str(noted["logsource product=zeek,service=rdp"])
    with pytest.raises(RuleError, match="'gone', which is not loaded"):
        matcher.load_rules(tree / "rules", profile="sysmon")
    (tree / "rules" / "mf_missing.yml").unlink()
    run = matcher.load_rules(tree / "rules", profile="sysmon", unrouted="run")
    assert len(run) == 4
    flt = tree / "extra.yml"
    flt.write_text(FILTER.format(ref="other").replace("0e95725d", "2e95725d"))
    ran = matcher.load_rules(tree / "rules", profile="sysmon", unrouted="run", filters=[flt])
    assert {r.id[:8]: r.match(EVENTS[1]) for r in ran if r.id[:2] in ("6f", "7f")} == {"6f3e2987": False, "7f3e2987": False}
