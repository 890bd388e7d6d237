"""The literals the compiler requires of a regex before running it (regex_prefilter.regex_factors).

Soundness is what matters: a value with a match must contain one literal of every set, or
the core would skip a regex that holds. hypothesis's ``from_regex`` builds values that
contain a match under Python's ``re``, for every regex of the corpus and a few hand-made
traps; those RE2 (the engine rules run on) matches too are checked.
"""

from __future__ import annotations

import re
import string
import warnings

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matcher
import matcher._core as core
from helpers import corpus_queries
from shared_data import corpus_path
from matcher import compiler, ops, regex_prefilter
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
    r"(?i)ki\b",  # Python's re matches i to 'İ', RE2 does not
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
    r"(?i)[k]{4}x",  # RE2's (?i)k also matches the Kelvin sign (UTF-8: 3 bytes >= 0x80)
    r"(?m)ab$",
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
        # RE2's \d, \w, \s are ASCII: texts from any alphabet seldom match under RE2, so
        # each example also draws one from ASCII and the pattern's own characters.
        own = sorted({c for ch in pattern if not ch.isascii() for c in (ch, ch.lower(), ch.upper())})
        alphabet = st.characters(codec="ascii") | st.sampled_from(own) if own else st.characters(codec="ascii")
        texts = [data.draw(st.from_regex(rx)), data.draw(st.from_regex(rx, alphabet=alphabet))]
    engine = ops.compile_regex(pattern)
    for text in texts:
        assert rx.search(text), "from_regex gives a text with a match"
        if engine.search(text):  # what RE2 matches must pass the prefilter
            _check_prefilter(pattern, text)


def _check_prefilter(pattern: str, text: str) -> None:
    folded = text.lower()
    for fs in regex_prefilter.regex_factors(pattern):
        assert any(x in folded for x in fs), (fs, text)
    run = regex_prefilter.regex_run(pattern)
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
    assert [set(fs) for fs in regex_prefilter.regex_factors(pattern)] == sets


@pytest.mark.parametrize(
    "pattern, k",
    [(r"\s[a-fA-F0-9]{64}\s[a-fA-F0-9]{16}", 64), (r" [0-7]{7,13}", 7), (r"(?i:[a-f]{5})", None), (r"\w{1,64}", None)],
)
def test_run_found(pattern, k):
    run = regex_prefilter.regex_run(pattern)
    assert (run[1] if run else None) == k


def test_run_check_skips_python_and_keeps_verdicts():
    pattern = r"\s[a-fA-F0-9]{8}\s"
    rule = matcher.compile(f'TgtProcCmdLine RegExp "{pattern}"'.replace("\\", "\\\\"))
    assert rule.ir.value == pattern
    plan = compiler.compile_plan([rule.ir])
    calls = []

    def py_eval(pid, texts, event):
        calls.append(texts)
        return any(ops.compile_regex(pattern).search(t) for t in texts)

    prog = core.Program(plan, py_eval)
    hexes = "x 0123abcd y"
    for text in (hexes, "x 0123abc y", "x 0123abcé y", "x 0123ABCD y", "ü" + hexes, "x 0123ab\u0100d y"):
        del calls[:]
        want = ops.compile_regex(pattern).search(text)
        assert (prog.match_one({"TgtProcCmdLine": text}) == [0]) == want
        has_run = re.search(r"[a-fA-F0-9\x80-\U0010ffff]{8}", text) is not None
        assert bool(calls) == has_run, text  # Python runs only where an 8-run is present


def test_extra_factors_are_anded_in_front_of_the_regex():
    q = 'TgtProcCmdLine RegExp "(?i)echo.*clip.*&&.*(?:Clipboard|invoke)"'
    rule = matcher.compile(q)
    plan = compiler.compile_plan([rule.ir])
    contains = {p.value for p in plan.preds if p.op is Op.CONTAINS}
    assert {"echo", "clip", "&&"} <= contains  # RE2's (?i) folds i to I only
    rs = matcher.RuleSet([rule])
    assert rs.match({"TgtProcCmdLine": "ECHO x | clip && invoke"}) == [rule.id]
    assert rs.match({"TgtProcCmdLine": "echo x | clip ; invoke"}) == []


def test_ignorecase_unsafe_is_rederived_from_re2():
    """The ASCII letters RE2's (?i) matches to a non-ASCII character that does not lower to
    the letter: a folded contains guard with them would skip real matches."""
    every = "".join(chr(c) for c in range(128, 0x110000) if not 0xD800 <= c < 0xE000)
    unsafe = set()
    for letter in string.ascii_letters:
        for m in re2.compile("(?i)" + letter).finditer(every):
            if m.group().lower() != letter.lower():
                unsafe.add(letter)
    assert frozenset(unsafe) == regex_prefilter.IGNORECASE_UNSAFE


@pytest.mark.parametrize("pattern, text", [
    (r"[[:alpha:]]{5}\]", "hello]"),  # RE2: a POSIX class; Python's re: a set of '[', ':', 'a', ...
    (r"x[[:digit:]]{4}", "x2024"),
])
def test_posix_classes_get_no_prefilter(pattern, text):
    """Python's parser reads ``[[:alpha:]]`` as a set and a literal ``]``: the analysis built on
    it would require characters RE2's match does not hold, so such patterns get none."""
    assert ops.compile_regex(pattern).search(text)
    assert regex_prefilter.regex_factors(pattern) == [] and regex_prefilter.regex_run(pattern) is None
    rule = matcher.compile(f'TgtProcCmdLine RegExp "{pattern}"'.replace("\\", "\\\\"))
    assert matcher.RuleSet([rule]).match({"TgtProcCmdLine": text}) == [rule.id]


def test_backtracking_patterns_get_no_prefilter():
    """The regex module's syntax is not Python's re's (fuzzy matching, POSIX classes...)."""
    for pattern in (r"(abc)\1{e<=1}", r"(?=abc)abcd", r"(a)\1xyz"):
        assert not ops.is_linear(pattern)
        assert regex_prefilter.regex_factors(pattern) == [] and regex_prefilter.regex_run(pattern) is None
