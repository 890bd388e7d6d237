"""Field-mapping profiles: a rule remapped for another schema gives the verdicts the original
gives on the same events written in that schema (checked with the reference evaluator)."""

from __future__ import annotations

import pytest

import matcher
from matcher import datasets, reference
from matcher.ir import Pred, walk_preds
from matcher.mapping import PROFILES, ProfileError, RuleNeverMatches, load_profile, remap

FLAGSHIP = matcher.builtin("flagship")
EVENTS = datasets.generate(3000, 11)


def test_identity_and_pass_through():
    s1 = load_profile("s1")
    assert s1.to_s1("TgtProcImagePath") == "TgtProcImagePath" == s1.from_s1("TgtProcImagePath")
    assert remap(FLAGSHIP.ir, "s1", "s1") == FLAGSHIP.ir
    for name in PROFILES:
        p = load_profile(name)
        assert p.name == name
        assert p.to_s1("NoSuchField") == "NoSuchField" == p.from_s1("NoSuchField")


@pytest.mark.parametrize("name, s1, other", [
    ("s1ql2", "SrcProcImagePath", "src.process.image.path"),
    ("sysmon", "SrcProcImagePath", "ParentImage"),
    ("sysmon", "TgtProcCmdLine", "CommandLine"),
    ("ecs", "SrcProcImagePath", "process.parent.executable"),
])
def test_names_both_ways(name, s1, other):
    p = load_profile(name)
    assert p.from_s1(s1) == other and p.to_s1(other) == s1


def test_sysmon_translation_keeps_every_verdict():
    rule = remap(FLAGSHIP.ir, "s1", "sysmon")
    fields = {p.field for p in walk_preds(rule)}
    assert "EndpointOS" not in fields and "EventID" in fields and "TgtProcImagePath" not in fields
    hits = 0
    for ev in EVENTS:
        want = reference.evaluate(FLAGSHIP, ev)
        if ev.get("EndpointOS") not in (None, "windows"):
            continue  # Sysmon logs hold Windows events only (the profile's constant)
        hits += want
        assert reference.evaluate(rule, datasets.to_sysmon(ev)) == want, ev
    assert hits > 0
    # and the compiled core agrees on the remapped rule
    r = matcher.Rule(rule, FLAGSHIP.info)
    assert [r.match(datasets.to_sysmon(e)) for e in EVENTS[:500]] == [reference.evaluate(rule, datasets.to_sysmon(e))
                                                                       for e in EVENTS[:500]]


def _nest(flat: dict) -> dict:
    out: dict = {}
    for k, v in flat.items():
        node = out
        *parents, last = k.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = v
    return out


@pytest.mark.parametrize("name", ["s1ql2", "ecs"])
def test_dotted_profiles_on_flat_and_nested_events(name):
    p = load_profile(name)
    rule = remap(FLAGSHIP.ir, "s1", name)
    for ev in EVENTS[:1500]:
        if ev.get("EventType") != "Process Creation" or ev.get("EndpointOS") not in ("windows", "linux"):
            continue
        flat = {p.from_s1(k): v for k, v in ev.items() if v is not None}
        if name == "ecs":  # ECS spells the event type as two fields
            flat.pop("event.action")
            flat.update({"event.category": ["process"], "event.type": ["start"]})
        want = reference.evaluate(FLAGSHIP, ev)
        assert reference.evaluate(rule, flat) == want
        assert reference.evaluate(rule, _nest(flat)) == want


def test_constants_decide_predicates():
    q = matcher.compile('EndpointOS = "linux" AND TgtProcImagePath endswithCIS "/sh"')
    with pytest.raises(RuleNeverMatches) as e:
        remap(q.ir, "s1", "sysmon")
    assert e.value.always is False
    q = matcher.compile('EndpointOS = "windows" OR TgtProcImagePath endswithCIS "/sh"')
    with pytest.raises(RuleNeverMatches) as e:
        remap(q.ir, "s1", "sysmon")
    assert e.value.always is True
    q = matcher.compile('NOT EndpointOS = "linux" AND TgtProcImagePath endswithCIS "\\cmd.exe"')
    assert remap(q.ir, "s1", "sysmon") == Pred("Image", q.ir.items[1].op, "\\cmd.exe")


def test_rules_written_in_another_schema():
    q = matcher.compile('ParentImage endswithCIS "\\w3wp.exe" AND Image endswithCIS "\\cmd.exe"')
    s1 = remap(q.ir, "sysmon", "s1")
    assert {p.field for p in walk_preds(s1)} == {"SrcProcImagePath", "TgtProcImagePath"}
    ecs = remap(q.ir, "sysmon", "ecs")
    assert {p.field for p in walk_preds(ecs)} == {"process.parent.executable", "process.executable"}


@pytest.mark.parametrize("suffix, text", [
    (".json", '{"name": "mine", "base": "sysmon", "fields": {"TgtProcImagePath": "exe"},'
              ' "values": {"EventType": {"Process Creation": "kind = \\"exec\\""}}, "aliases": {"img": "TgtProcImagePath"}}'),
    (".toml", 'name = "mine"\nbase = "sysmon"\n[fields]\nTgtProcImagePath = "exe"\n'
              '[values.EventType]\n"Process Creation" = \'kind = "exec"\'\n[aliases]\nimg = "TgtProcImagePath"\n'),
])
def test_user_file(tmp_path, suffix, text):
    path = tmp_path / f"p{suffix}"
    path.write_text(text, encoding="utf-8")
    p = load_profile(str(path))
    assert p.name == "mine"
    assert p.from_s1("TgtProcImagePath") == "exe" and p.to_s1("img") == "TgtProcImagePath"
    assert p.from_s1("SrcProcImagePath") == "ParentImage"  # from the base
    rule = remap(FLAGSHIP.ir, "s1", p)
    ev = {"kind": "exec", "ParentImage": "C:\\inetpub\\w3wp.exe", "exe": "C:\\Windows\\System32\\cmd.exe"}
    assert reference.evaluate(rule, ev)
    assert not reference.evaluate(rule, dict(ev, kind="exit"))


@pytest.mark.parametrize("text, msg", [
    ("{not json", "not a valid JSON"),
    ('{"fields": {"A": 1}}', "'fields' must be"),
    ('{"colours": {}}', "unknown keys"),
    ('{"base": "nope"}', "base 'nope'"),
    ('{"values": {"EventType": {"x": "A = "}}}', "values.EventType"),
    ("[1]", "one object"),
])
def test_bad_user_files(tmp_path, text, msg):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=msg):
        load_profile(str(path))


def test_unknown_profile():
    with pytest.raises(ProfileError, match="no profile named"):
        load_profile("splunk")
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile("/nonexistent/p.toml")
    assert issubclass(ProfileError, matcher.MatcherError)
