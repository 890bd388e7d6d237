"""The literals the compiler requires of a regex before running it (compiler.regex_factors).

Soundness is what matters: a value with a match must contain one literal of every set, or
the core would skip a regex that holds. hypothesis's ``from_regex`` builds values that
contain a match, for every regex of the corpus and a few hand-made traps.
"""

from __future__ import annotations

import re
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matcher
import matcher._core as core
from helpers import corpus_queries
from shared_data import corpus_path
from matcher import compiler
from matcher.ir import Op, walk_preds



def _corpus_regexes() -> list[str]:
    out = set()
    for q in corpus_queries(corpus_path()).values():
        for p in walk_preds(matcher.compile(q).ir):
            if p.op is Op.REGEX:
                out.add(p.value)
    return sorted(out)


TRAPS = [
    r"(?i)sk",  # IGNORECASE: 'ſ' and the Kelvin sign match s and k
    r"(?i)ki\b",  # 'İ' matches i
    r"a(?:\.|\b)b",  # an optional dot and a zero-width word boundary
    r"x(?:ab|)y",  # an empty branch
    r"(?:ab){2,3}c",
    r"[Pp]rogram[Dd]ata|temp",
    r"\bcmd(?=\.exe)",
    r"^abc$",
    r"(?i:ÄBC)d",
    r"\s[a-fA-F0-9]{64}\s",
    r"(?i)x[a-f]{5}",  # IGNORECASE: the class takes both cases (and all non-ASCII)
    r"\d{4}",  # \d admits non-ASCII digits
    r"\w{4,}z",
]
PATTERNS = _corpus_regexes() + TRAPS


def test_the_corpus_has_regexes():
    assert len(_corpus_regexes()) > 40


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_match_contains_each_required_set(pattern, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        rx = re.compile(pattern)
        text = data.draw(st.from_regex(rx))
    assert rx.search(text), "from_regex gives a text with a match"
    folded = text.lower()
    for fs in compiler.regex_factors(pattern):
        assert any(x in folded for x in fs), (fs, text)
    run = compiler.regex_run(pattern)
    if run is not None:
        bitmap, k = run
        for data in (text.encode("utf-8", "surrogatepass"), text.encode("latin-1") if max(text, default="a") < "\x100" else b""):
            if not data:
                continue
            best = cur = 0
            for byte in data:
                cur = cur + 1 if bitmap[byte >> 3] & (1 << (byte & 7)) else 0
                best = max(best, cur)
            assert best >= k, (text, k)


@pytest.mark.parametrize(
    "pattern, sets",
    [
        (r'\\[a-zA-Z0-9]{1,32}\.[a-zA-Z0-9]{1,6}\.[ "\']{1}', [{". ", '."', ".'"}]),
        (r"net\s+user\s+", [{"user"}, {"net"}]),
        (r"(a|b)c", [{"ac", "bc"}]),
        (r"\s[a-fA-F0-9]{64}\s", []),  # no literal: the field's presence guards it
        (r"(?i)sk", []),  # s is unsafe under IGNORECASE, and k alone is too common
    ],
)
def test_factors_found(pattern, sets):
    assert [set(fs) for fs in compiler.regex_factors(pattern)] == sets


@pytest.mark.parametrize(
    "pattern, k",
    [(r"\s[a-fA-F0-9]{64}\s[a-fA-F0-9]{16}", 64), (r" [0-7]{7,13}", 7), (r"(?i:[a-f]{5})", None), (r"\w{1,64}", None)],
)
def test_run_found(pattern, k):
    run = compiler.regex_run(pattern)
    assert (run[1] if run else None) == k


def test_run_check_skips_python_and_keeps_verdicts():
    pattern = r"\s[a-fA-F0-9]{8}\s"
    rule = matcher.compile(f'TgtProcCmdLine RegExp "{pattern}"'.replace("\\", "\\\\"))
    assert rule.ir.value == pattern
    plan = compiler.compile_plan([rule.ir])
    calls = []

    def py_eval(pid, texts, event):
        calls.append(texts)
        return any(re.search(pattern, t) for t in texts)

    prog = core.Program(plan, py_eval)
    hexes = "x 0123abcd y"
    for text in (hexes, "x 0123abc y", "x 0123abcé y", "x 0123ABCD y", "ü" + hexes, "x 0123ab\u0100d y"):
        del calls[:]
        want = re.search(pattern, text) is not None
        assert (prog.match_one({"TgtProcCmdLine": text}) == [0]) == want
        has_run = re.search(r"[a-fA-F0-9\x80-\U0010ffff]{8}", text) is not None
        assert bool(calls) == has_run, text  # Python runs only where an 8-run is present


def test_extra_factors_are_anded_in_front_of_the_regex():
    q = 'TgtProcCmdLine RegExp "(?i)echo.*clip.*&&.*(?:Clipboard|invoke)"'
    rule = matcher.compile(q)
    plan = compiler.compile_plan([rule.ir])
    contains = {p.value for p in plan.preds if p.op is Op.CONTAINS}
    assert {"echo", "cl", "&&"} <= contains
    rs = matcher.RuleSet([rule])
    assert rs.match({"TgtProcCmdLine": "ECHO x | clip && invoke"}) == [rule.id]
    assert rs.match({"TgtProcCmdLine": "echo x | clip ; invoke"}) == []
