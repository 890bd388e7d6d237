"""Differential property tests for the Sigma-only features: random Sigma rules (``?``
wildcards, ``cased``, ``cidr``, ``windash``, ``base64offset``, ``fieldref``, keywords, under
``and``/``or``/``not``) are loaded from YAML, and the compiled core (dicts and Arrow) must give
the reference evaluator's verdict on random events built to hit them. Also: the guards the
compiler puts in front of the Sigma predicates are implied by them (soundness)."""

from __future__ import annotations

import base64
import ipaddress

import pyarrow as pa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import literals

import matcher
from matcher import compiler, ops, reference
from matcher.ir import Op, Pred, walk_preds
from matcher.sigma import parse_sigma

FIELDS = ("Image", "CommandLine", "ParentImage", "DestinationIp")
WORDS = ("cmd", "A?c", "x*y", "-enc", "/f", "İ", "ß", "\\", "σ", "Σ", "ab", "http://", "")


def _ascii_words():
    return st.sampled_from(WORDS[:7]) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6)


def _words():
    return st.sampled_from(WORDS) | literals()


@st.composite
def networks(draw) -> str:
    addr = draw(st.ip_addresses())
    bits = 32 if addr.version == 4 else 128
    plen = draw(st.integers(0, bits) | st.sampled_from([8, 16, 24, bits]))
    return str(ipaddress.ip_network(f"{addr}/{min(plen, bits)}", strict=False))


@st.composite
def selections(draw) -> dict:
    """One named selection using one Sigma-only feature."""
    f = draw(st.sampled_from(FIELDS))
    kind = draw(st.sampled_from(["wild", "cased", "cidr", "windash", "b64off", "fieldref", "keyword", "plain"]))
    if kind == "wild":  # ? and * inside the value, Sigma escapes included
        parts = draw(st.lists(_words() | st.sampled_from(["?", "*", "\\?", "\\*"]), min_size=1, max_size=4))
        return {f: "".join(parts)}
    if kind == "cased":
        mod = draw(st.sampled_from(["", "|contains", "|startswith", "|endswith"]))
        return {f"{f}|cased{mod}": draw(st.lists(_words(), min_size=1, max_size=3))}
    if kind == "cidr":
        return {f"{f}|cidr": draw(st.lists(networks(), min_size=1, max_size=3))}
    if kind == "windash":
        return {f"{f}|windash|contains": draw(st.sampled_from([" -f ", "/x", " -a -b ", "-enc"]))}
    if kind == "b64off":
        plain = st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="*?\\")
        return {f"{f}|base64offset|contains": draw(st.text(plain, min_size=1, max_size=8))}
    if kind == "fieldref":
        mod = draw(st.sampled_from(["", "|contains", "|startswith", "|endswith"]))
        return {f"{f}|fieldref{mod}": draw(st.sampled_from(FIELDS))}
    if kind == "keyword":
        return draw(
            st.lists(_words() | st.sampled_from(["a?c", "x*"]), min_size=1, max_size=3).filter(
                lambda xs: all(x.strip() for x in xs)
            )
        )
    return {f: draw(st.lists(_words(), min_size=1, max_size=3))}


@st.composite
def sigma_rules(draw):
    sels = draw(st.lists(selections(), min_size=1, max_size=3))
    names = [f"sel{i}" for i in range(len(sels))]
    cond = names[0]
    for n in names[1:]:
        cond = f"({cond}) {draw(st.sampled_from(['and', 'or', 'and not', 'or not']))} {n}"
    if draw(st.booleans()):
        cond = f"not ({cond})"
    detection = dict(zip(names, sels, strict=True))
    detection["condition"] = cond
    doc = {
        "title": "t",
        "id": "00000000-0000-4000-8000-000000000001",
        "logsource": {"product": "windows"},
        "detection": detection,
    }
    return yaml.safe_dump(doc, allow_unicode=True)


def _value(draw, words: list[str]):
    pick = draw(st.integers(0, 6))
    w = draw(st.sampled_from(words)) if words else ""
    if pick == 0:
        return str(draw(st.ip_addresses()))
    if pick == 1:
        return base64.b64encode((draw(st.text(max_size=3)) + w).encode("utf-8", "surrogatepass")).decode()
    if pick == 2:
        return draw(st.sampled_from([w.upper(), w.lower(), w.swapcase(), w]))
    if pick == 3:
        return draw(st.sampled_from(["", "-", "/", "\u2013"])) + w + draw(st.text(max_size=3))
    if pick == 4:
        return None
    if pick == 5:
        return [w, draw(literals())]
    return draw(literals()) + w + draw(literals())


@st.composite
def rule_and_events(draw):
    text = draw(sigma_rules())
    (rule,) = parse_sigma(text, source="hypothesis.yml")
    words = [p.value for p in walk_preds(rule.ir) if isinstance(p.value, str)]
    words += [
        x
        for p in walk_preds(rule.ir)
        if not isinstance(p.value, str) and p.value is not None
        for x in p.value.parts
        if isinstance(x, str)
    ]
    evs = []
    for _ in range(draw(st.integers(1, 4))):
        ev = {f: _value(draw, words) for f in FIELDS if draw(st.booleans())}
        if ev and draw(st.booleans()):  # a field equal to another (fieldref)
            a, b = draw(st.sampled_from(FIELDS)), draw(st.sampled_from(FIELDS))
            ev[a] = ev.get(b, "same")
        evs.append(ev)
    return text, rule, evs


def _arrow(evs):
    cols = {f: [e.get(f) if isinstance(e.get(f), (str, type(None))) else None for e in evs] for f in FIELDS}
    return pa.table({f: pa.array(v, pa.string()) for f, v in cols.items()})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_and_events())
def test_sigma_features_core_agrees_with_reference(case):
    text, rule, evs = case
    want = [reference.evaluate(rule, e) for e in evs]
    assert [rule.match(e) for e in evs] == want, text
    assert rule.match_many(evs).tolist() == want, text
    table = _arrow(evs)
    rows = table.to_pylist()
    assert rule.match_arrow(table).tolist() == [reference.evaluate(rule, r) for r in rows], text


@settings(max_examples=300, deadline=None)
@given(
    net=networks(),
    text=st.one_of(st.ip_addresses().map(str), literals(), st.ip_addresses().map(lambda a: str(a).upper())),
)
def test_cidr_guard_is_implied(net, text):
    op, *lit = compiler.cidr_guard(net)
    if ops.REFERENCE[Op.CIDR](text, net):
        assert ops.REFERENCE[op](text, lit[0] if lit else None)


@settings(max_examples=300, deadline=None)
@given(
    mod=st.sampled_from(["", "|contains", "|startswith", "|endswith"]),
    words=st.lists(_words() | st.sampled_from(["?", "*"]), min_size=1, max_size=3),
    text=literals(),
    flip=st.booleans(),
)
def test_cased_guards_are_implied(mod, words, text, flip):
    """A cased value is a regex; whenever it matches, one of its guard literals is contained
    (case-insensitively) in the text."""
    doc = {
        "title": "t",
        "logsource": {"product": "x"},
        "detection": {"s": {f"A|cased{mod}": "".join(words)}, "condition": "s"},
    }
    (rule,) = parse_sigma(yaml.safe_dump(doc))
    (pred,) = walk_preds(rule.ir)
    assert pred.op is Op.REGEX
    value = text + "".join(w for w in words if w not in "?*") + (text.swapcase() if flip else text)
    plan = compiler.compile_plan([pred])
    pid = plan.preds.index(pred)
    for candidate in (text, value):
        if ops.REFERENCE[Op.REGEX](candidate, pred.value):
            assert any(reference.predicate(plan.preds[g], {"A": candidate}) for g in plan.guards[pid])


def test_keyword_rules_in_a_ruleset_with_s1ql_rules():
    """Sigma and S1QL side by side: one RuleSet, each rule keeps its own verdict."""
    (kw,) = parse_sigma(
        "title: k\nid: 00000000-0000-4000-8000-000000000001\nlogsource: {product: x}\n"
        "detection: {k: [needle], condition: k}\n"
    )
    s1 = matcher.compile('TgtProcCmdLine containsCIS "needle"', id="s1")
    rs = matcher.RuleSet([kw, s1])
    assert rs.match({"TgtProcCmdLine": "a NEEDLE"}) == [kw.id, "s1"]
    assert rs.match({"Other": "needle"}) == [kw.id]
    assert rs.match({"Other": 5}) == []
    assert Pred("", Op.KEYWORD, next(walk_preds(kw.ir)).value) == next(walk_preds(kw.ir))
