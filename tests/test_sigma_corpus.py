"""The two routes to one SigmaHQ rule: the Sigma YAML loaded directly (fields mapped to S1
names, logsource conditions added) and the S1QL query pySigma's SentinelOne backend wrote for
it (the shared corpus, ``sigmahq-s1ql.jsonl``), paired by the rule's path, on Windows process-creation
events built from the rules' own literals plus the generator's events.

The backend changes what some rules mean (docs/sigma.md, "The S1QL route"). The test proves
that these changes are the *only* differences: with the backend's changes emulated
(``s1_backend=True``), every pair agrees on every event. It then lists, per kind of change,
the rules whose Sigma meaning differs from their S1QL query on these events.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

import matcher
from matcher import datasets, reference
from matcher.ir import Glob, Op, Wild, walk_preds
from matcher.sigma import parse_sigma
from shared_data import corpus_path, sigma_rules_path



def _pairs():
    records = {}
    for line in corpus_path().read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        ls = rec["logsource"] or {}
        if rec["query"] and ls.get("category") == "process_creation" and ls.get("product") == "windows":
            records[rec["path"]] = rec
    out = []
    tree = sigma_rules_path()
    for path in sorted(tree.rglob("*.yml")):
        name = path.relative_to(tree).as_posix()
        rec = records.get(name)
        if rec is None:
            continue
        text = path.read_text(encoding="utf-8-sig")
        (sig,) = parse_sigma(text, source=name, profile="s1")
        (emu,) = parse_sigma(text, source=name, profile="s1", s1_backend=True)
        s1 = matcher.compile(rec["query"], id=rec["id"], title=rec["title"])
        assert sig.id == rec["id"]
        out.append((name, sig, emu, s1))
    return sorted(out, key=lambda t: t[0])


@pytest.fixture(scope="module")
def pairs():
    return _pairs()


@pytest.fixture(scope="module")
def events(pairs):
    return _events(pairs)


def _flip(rng: random.Random, s: str) -> str:
    r = rng.random()
    return s.upper() if r < 0.2 else s.lower() if r < 0.4 else s


def _pieces(rule) -> dict[str, list[tuple[Op, str]]]:
    out: dict[str, list] = {}
    for p in walk_preds(rule.ir):
        if p.field in ("EventType", "EndpointOS"):
            continue
        if isinstance(p.value, Glob):
            runs = [x for x in p.value.parts if isinstance(x, str)]
            out.setdefault(p.field, []).append((Op.GLOB, runs))
        elif isinstance(p.value, str):
            out.setdefault(p.field, []).append((p.op, p.value))
        else:
            out.setdefault(p.field, [])
    return out


def _value(rng: random.Random, pieces: list) -> str:
    """A value made of 1-3 of the rule's literals for this field, placed as their operators want."""
    noise = ["", " ", "x", "C:\\Windows\\", " -a ", ".exe", "\\"]
    chosen = rng.sample(pieces, min(len(pieces), rng.randint(1, 3))) if pieces else []
    head, mid, tail = [], [], []
    for op, v in chosen:
        if op is Op.EQUALS:
            return _flip(rng, v) if rng.random() < 0.8 else v + rng.choice(noise[1:])
        if op is Op.GLOB:
            mid.append(rng.choice(noise).join(v))
        elif op is Op.STARTSWITH:
            head.append(v)
        elif op is Op.ENDSWITH:
            tail.append(v)
        elif op is Op.REGEX:
            mid.append(rng.choice(noise))
        else:
            mid.append(v)
    parts = head[:1] + [rng.choice(noise)] + mid + [rng.choice(noise)] + tail[:1]
    return _flip(rng, "".join(parts))


def _events(pairs, per_rule: int = 12) -> list[dict]:
    rng = random.Random(6)
    events = datasets.generate(400, seed=6)
    for _, sig, _, _ in pairs:
        pieces = _pieces(sig)
        for _ in range(per_rule):
            ev = {"EventType": "Process Creation", "EndpointOS": "windows" if rng.random() < 0.95 else "linux"}
            for f, ps in pieces.items():
                r = rng.random()
                if r < 0.1:
                    continue  # absent
                ev[f] = "" if r < 0.15 else _value(rng, ps)
            events.append(ev)
    return events


def _verdicts(rules, events) -> set[tuple[int, str]]:
    return set(matcher.RuleSet(rules).scan(events))


def _changes(emu, sig) -> set[str]:
    """Which of the backend's meaning changes a rule is subject to."""
    kinds = set()
    sp, ep = list(walk_preds(sig.ir)), list(walk_preds(emu.ir))
    if any(p.op is Op.NOT_EMPTY for p in sp):
        kinds.add("null written as IS NOT EMPTY")
    if any(isinstance(p.value, Glob) and Wild.ONE in p.value.parts for p in sp):
        kinds.add("? written as *")
    if any(p.op is Op.REGEX and p.value.startswith("(?") for p in sp) and {p.value for p in sp if p.op is Op.REGEX} != {
        p.value for p in ep if p.op is Op.REGEX
    }:
        kinds.add("regex flags dropped")
    if any("*" in x for p in sp if isinstance(p.value, Glob) or p.op is Op.EQUALS
           for x in (p.value.parts if isinstance(p.value, Glob) else [p.value]) if isinstance(x, str)):
        kinds.add("literal * written as \\*")
    if "Or(items=(Not(" in repr(emu.ir) and "Or(items=(Not(" not in repr(sig.ir):
        kinds.add("NOT over windash/base64offset loses its parentheses")
    if sum(p.op is Op.CONTAINS for p in ep) > sum(p.op is Op.CONTAINS for p in sp):
        kinds.add("value list as substring matches")
    return kinds


def test_pairs_cover_the_windows_process_creation_corpus(pairs):
    # 751 corpus queries for windows/process_creation; each has its Sigma file in the archive.
    assert len(pairs) == 751


def test_routes_agree_once_the_backend_changes_are_emulated(pairs, events):
    s1 = _verdicts([p[3] for p in pairs], events)
    emu = _verdicts([p[2] for p in pairs], events)
    assert emu == s1
    assert len(s1) > 2000, "the events must make many rules fire"
    fired = {rid for _, rid in s1}
    assert len(fired) > 0.8 * len(pairs)


def test_the_differences_are_the_backend_changes(pairs, events):
    sig = _verdicts([p[1] for p in pairs], events)
    emu = _verdicts([p[2] for p in pairs], events)
    differ = {rid for _, rid in sig ^ emu}
    by_id = {p[1].id: p for p in pairs}
    explained: Counter = Counter()
    for rid in sorted(differ):
        _, s, e, _ = by_id[rid]
        kinds = _changes(e, s)
        assert kinds, f"{rid}: the routes differ without a backend change to explain it"
        explained.update(kinds)
    print(f"\n{len(differ)} of {len(pairs)} rules differ between the routes on {len(events)} events:")
    for kind, n in explained.most_common():
        print(f"  {kind}: {n}")
    # The listed changes, each seen making a difference on these events.
    assert set(explained) >= {"value list as substring matches", "null written as IS NOT EMPTY"}


def test_sigma_route_core_agrees_with_reference(pairs):
    events = random.Random(7).sample(_events(pairs, per_rule=1), 250)
    rules = [p[1] for p in pairs]
    got = _verdicts(rules, events)
    want = {(i, r.id) for i, ev in enumerate(events) for r in rules if reference.evaluate(r, ev)}
    assert got == want
