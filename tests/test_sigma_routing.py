"""Logsource routing (docs/sigma.md): a Sigma rule applies only to events of its logsource, as
the profile recognises them; the API and the command line give the same verdicts; logsources a
profile cannot recognise are reported once and skipped or run unrouted (``unrouted``); the
whole SigmaHQ tree over a mixed generated log makes no cross-logsource match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import matcher
from matcher import datasets, reference
from matcher.errors import MatcherError, UnsupportedFeature
from matcher.mapping import SYSMON_CATEGORY_IDS
from matcher.sigma import SigmaOptions, load_sigma_files, load_sigma_tree
from matcher.sigma.loader import UNROUTED_FEATURE
from matcher.sigma.logsource import logsource_key, parse_logsource_spec, route
from shared_data import sigma_rules_path


def write_rule(path: Path, logsource: str, detection: str, rid: str = "11111111-1111-1111-1111-111111111111") -> Path:
    path.write_text(f"title: t {rid[:4]}\nid: {rid}\nlogsource:\n{logsource}\ndetection:\n{detection}\n")
    return path


PROC = "  category: process_creation\n  product: windows"
CMD = "  sel:\n    Image|endswith: '\\cmd.exe'\n  condition: sel"
RDP = "  product: zeek\n  service: rdp"
NOT_PRIVATE = "  sel:\n    id.orig_h|cidr: 10.0.0.0/8\n  condition: not sel"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matcher", *args], capture_output=True, text=True,
                          env=os.environ, timeout=300)


def scan_lines(*args: str) -> list[int]:
    out = cli("scan", "-f", "jsonl", "--no-progress", *args)
    assert out.returncode == 0, out.stderr
    return sorted({json.loads(x)["line"] for x in out.stdout.splitlines()})


def jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


SYSMON_EVENTS = [
    {"EventID": 1, "Image": "C:\\x\\cmd.exe"},
    {"EventID": 3, "Image": "C:\\x\\cmd.exe"},
    {"Image": "C:\\x\\cmd.exe"},
    {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Image": "C:\\cmd.exe"},
    {"EventID": 1, "Channel": "System", "Image": "C:\\cmd.exe"},
]
S1_EVENTS = [
    {"EventType": "Process Creation", "EndpointOS": "windows", "TgtProcImagePath": "C:\\cmd.exe"},
    {"EventType": "Process Creation", "EndpointOS": "linux", "TgtProcImagePath": "C:\\cmd.exe"},
    {"EventType": "IP Connect", "EndpointOS": "windows", "TgtProcImagePath": "C:\\cmd.exe"},
]


@pytest.mark.parametrize("profile, events, want", [("sysmon", SYSMON_EVENTS, [True, False, False, True, False]),
                                                   ("s1", S1_EVENTS, [True, False, False])])
def test_api_and_cli_give_the_same_verdicts(tmp_path, profile, events, want):
    path = write_rule(tmp_path / "r.yml", PROC, CMD)
    rule = matcher.load(path, profile=profile)
    got = [rule.match(e) for e in events]
    assert got == want == [reference.evaluate(rule, e) for e in events]
    lines = scan_lines("-p", profile, "-r", str(path), str(jsonl(tmp_path / "e.jsonl", events)))
    assert lines == [i + 1 for i, w in enumerate(want) if w]


def test_routing_is_an_and_of_ordinary_predicates():
    from sigma.rule import SigmaLogSource

    from matcher.rules import RuleInfo

    ok, cond = route(SigmaLogSource(category="dns_query", product="windows"), "sysmon")
    as_rule = matcher.Rule(cond, RuleInfo(id="r", title="r"))
    assert ok and [as_rule.match(e) for e in ({"EventID": 22}, {"EventID": "22", "Channel": "Security"},
                                              {"EventID": 3})] == [True, False, False]
    ok, cond = route(SigmaLogSource(product="windows", service="security"), "sysmon")
    as_rule = matcher.Rule(cond, RuleInfo(id="r", title="r"))
    assert ok and [as_rule.match(e) for e in ({"Channel": "Security"}, {"EventID": 4624}, {"Channel": "System"})] \
        == [True, True, False]  # no Channel field: the channel cannot be told, the rule decides
    ok, cond = route(SigmaLogSource(product="windows", service="security"), "ecs")
    assert ok and "winlog.channel" in repr(cond)
    ok, cond = route(SigmaLogSource(category="process_creation", product="windows"), "ecs")
    assert ok and "event.category" in repr(cond) and "host.os.type" in repr(cond)
    assert route(SigmaLogSource(product="zeek", service="rdp"), "sysmon") == (False, None)
    assert route(SigmaLogSource(product="windows", service="nosuchservice"), "sysmon") == (False, None)
    assert route(SigmaLogSource(product="windows", category="ps_script"), "s1") == (False, None)


def test_unrecognised_logsource_is_reported_and_skipped_or_run(tmp_path):
    path = write_rule(tmp_path / "rdp.yml", RDP, NOT_PRIVATE)
    with pytest.raises(UnsupportedFeature, match="product=zeek,service=rdp under profile s1") as e:
        matcher.load(path)
    assert e.value.feature == UNROUTED_FEATURE
    assert (e.value.line, e.value.column) == (4, 3) and "line 4, column 3" in str(e.value)  # the logsource's place
    rule = matcher.load(path, unrouted="run")
    assert rule.match({"id.orig_h": "8.8.8.8"}) and rule.match(datasets.generate(1)[0])  # unrouted: any event
    with pytest.raises(MatcherError, match="unrouted must be one of skip, run"):
        matcher.load(path, unrouted="maybe")
    # in a tree: reported once per logsource, counted, not a failure
    write_rule(tmp_path / "rdp2.yml", RDP, NOT_PRIVATE, rid="22222222-2222-2222-2222-222222222222")
    write_rule(tmp_path / "proc.yml", PROC, CMD, rid="33333333-3333-3333-3333-333333333333")
    load = load_sigma_tree(tmp_path, profile="sysmon")
    assert [r.id[:4] for r in load.rules] == ["3333"] and not load.failures
    (msg,) = load.report("sysmon")
    assert "profile sysmon cannot recognise logsource product=zeek,service=rdp: 2 rule(s) skipped" in msg
    run = load_sigma_tree(tmp_path, profile="sysmon", options=SigmaOptions.of(unrouted="run"))
    assert len(run.rules) == 3 and "run on every event" in run.report("sysmon", SigmaOptions.of(unrouted="run"))[0]
    # the command line says it once and scans with the rest
    log = jsonl(tmp_path / "e.jsonl", [{"EventID": 1, "Image": "c:\\cmd.exe", "id.orig_h": "8.8.8.8"}])
    out = cli("scan", "-p", "sysmon", "-r", str(tmp_path), "-f", "jsonl", "--no-progress", str(log))
    assert out.returncode == 0 and out.stderr.count("cannot recognise logsource product=zeek,service=rdp") == 1
    assert [json.loads(x)["rule_id"][:4] for x in out.stdout.splitlines()] == ["3333"]
    assert len(scan_lines("-p", "sysmon", "-r", str(tmp_path), "--unrouted", "run", str(log))) == 1


def test_user_profile_names_its_own_logsources(tmp_path):
    path = write_rule(tmp_path / "rdp.yml", RDP, NOT_PRIVATE)
    prof = tmp_path / "zeek.json"
    prof.write_text(json.dumps({"base": "sysmon", "logsources": {"product=zeek,service=rdp": '_path = "rdp"'}}))
    events = [{"_path": "rdp", "id.orig_h": "8.8.8.8"}, {"_path": "rdp", "id.orig_h": "10.1.1.1"},
              {"_path": "conn", "id.orig_h": "8.8.8.8"}, datasets.to_sysmon(datasets.generate(1)[0])]
    rule = matcher.load(path, profile=str(prof))
    assert [rule.match(e) for e in events] == [True, False, False, False]
    assert scan_lines("-p", str(prof), "-r", str(path), str(jsonl(tmp_path / "e.jsonl", events))) == [1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"logsources": {"product=zeek": "_path = "}}))
    with pytest.raises(MatcherError, match="logsources"):
        matcher.mapping.load_profile(str(bad))


def test_logsource_option_narrows_a_tree(tmp_path):
    write_rule(tmp_path / "proc.yml", PROC, CMD)
    write_rule(tmp_path / "dns.yml", "  category: dns_query\n  product: windows",
               "  sel:\n    QueryName|endswith: '.ngrok.io'\n  condition: sel", rid="22222222-2222-2222-2222-222222222222")
    log = jsonl(tmp_path / "e.jsonl", [{"EventID": 1, "Image": "c:\\cmd.exe"}, {"EventID": 22, "QueryName": "a.ngrok.io"}])
    assert scan_lines("-p", "sysmon", "-r", str(tmp_path), str(log)) == [1, 2]
    assert scan_lines("-p", "sysmon", "-r", str(tmp_path), "--logsource", "category=dns_query", str(log)) == [2]
    out = cli("scan", "-r", str(tmp_path), "--logsource", "os=windows", str(log))
    assert out.returncode == 2 and "keys category, product, service" in out.stderr
    assert parse_logsource_spec("product=windows,category=process_creation") == \
        {"product": "windows", "category": "process_creation"}
    assert logsource_key({"category": "c", "product": "p"}) == "product=p,category=c"


def test_mixed_log_keeps_the_process_creation_events():
    mixed = list(datasets.iter_mixed(3000, seed=5))
    procs = [e for e in mixed if e.get("EventID") == 1 or "EventID" in e and "Channel" not in e]
    want = [datasets.to_sysmon(e) for e in datasets.generate(len(procs), seed=5)]
    assert procs == want
    kinds = {("zeek" if "_path" in e else e.get("Channel", "sysmon")) for e in mixed}
    assert kinds == {"zeek", "Security", "Microsoft-Windows-Sysmon/Operational", "sysmon"}
    assert list(datasets.iter_mixed(50, seed=5)) == mixed[:50]


def _event_categories(e: dict) -> tuple[str, set]:
    """What the event is: ("zeek", ...), ("security", ...) or ("sysmon", {categories of its EventID})."""
    if "_path" in e:
        return "zeek", set()
    if e.get("Channel") == "Security":
        return "security", set()
    return "sysmon", {c for c, ids in SYSMON_CATEGORY_IDS.items() if e.get("EventID") in ids}


@pytest.fixture(scope="module")
def sigmahq_sysmon():
    return load_sigma_tree(sigma_rules_path(), profile="sysmon")


def test_sigmahq_over_the_mixed_log_makes_no_cross_logsource_match(sigmahq_sysmon):
    load = sigmahq_sysmon
    assert len(load.rules) > 2500 and load.unrouted  # every unrouted logsource is reported
    events = list(datasets.iter_mixed(3000, seed=11))
    ruleset = matcher.RuleSet(load.rules)
    by_id = {r.id: r for r in load.rules}
    matches = list(ruleset.scan(events))
    assert matches
    seen = set()
    for i, rid in matches:
        kind, cats = _event_categories(events[i])
        ls = by_id[rid].info.extra["logsource"]
        seen.add(kind)
        assert kind != "zeek", (rid, ls)
        assert ls.get("product") == "windows", (rid, ls)
        if kind == "security":
            assert ls.get("service") == "security" or set(ls) == {"product"}, (rid, ls)
        else:
            assert ls.get("category") in cats or (not ls.get("category") and ls.get("service") in (None, "sysmon")), \
                (rid, ls, events[i].get("EventID"))
    assert seen == {"security", "sysmon"}
    rdp = [r for r in load.rules if r.title == "Publicly Accessible RDP Service"]
    assert rdp == []  # zeek: the sysmon profile cannot recognise it, so it is skipped (and reported)
    assert any(k.startswith("product=zeek") for k in load.unrouted)


def test_rdp_rule_no_longer_matches_process_creation_under_s1(tmp_path):
    rdp = next(sigma_rules_path().rglob("zeek_rdp_public_listener.yml"))
    events = datasets.generate(200, seed=1)
    load = load_sigma_files([rdp], profile="s1")
    assert load.rules == [] and list(load.unrouted) == ["product=zeek,service=rdp"]
    run = load_sigma_files([rdp], profile="s1", options=SigmaOptions.of(unrouted="run"))
    assert all(run.rules[0].match(e) for e in events)  # what it did before routing, now only on request
