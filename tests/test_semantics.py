"""The semantic contract of docs/semantics.md, checked on every engine.

Every verdict is computed by the reference evaluator (the oracle) *and* by the compiled core
(``rule.match``), by ``rule.match_many`` and, where the event can be expressed as an Arrow
table, by ``rule.match_arrow``. A test fails if any engine disagrees with the documented
verdict; the failure message names each engine's answer.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping

import pyarrow as pa
import pytest

import matcher
from helpers import arrow_table, engines, short
from matcher import reference
from matcher.errors import ArrowDataError

# --------------------------------------------------------------------------------------------
# helpers: every engine, one verdict
# --------------------------------------------------------------------------------------------



def verdict(rule, event, **kw) -> bool:
    """All engines must agree; return the common verdict."""
    v = engines(rule, event, **kw)
    assert len(set(v.values())) == 1, (
        f"engines disagree for rule {rule.source_query!r} on event {short(event)}: {v}"
    )
    return v["reference"]


def check(rule, event, expected: bool, **kw) -> None:
    """Every engine must give ``expected``."""
    v = engines(rule, event, **kw)
    wrong = {k: x for k, x in v.items() if x != expected}
    assert not wrong, (
        f"rule {rule.source_query!r} on event {short(event)}: expected {expected}, got {v}"
    )


def q(query: str):
    return matcher.compile(query)


def check_q(query: str, event, expected: bool, **kw) -> None:
    check(q(query), event, expected, **kw)


# --------------------------------------------------------------------------------------------
# 1. the absence truth table
# --------------------------------------------------------------------------------------------

# operator -> (query over field F, a matching value, a non-matching value, verdict on "")
OPERATORS = {
    "containsCIS": ('F containsCIS "abc"', "xxABCxx", "xxabxcx", False),
    "startswithCIS": ('F startswithCIS "abc"', "ABCdef", "xabc", False),
    "endswithCIS": ('F endswithCIS "abc"', "xyzAbC", "abcx", False),
    "=": ('F = "abc"', "ABC", "abcd", False),
    "= wildcard": ('F = "a*c"', "AxyzC", "abcd", False),
    "= bare wildcard": ('F = "*"', "anything", None, True),
    "= empty": ('F = ""', "", "x", True),
    "= true": ("F = true", "TRUE", "yes", False),
    "In": ('F In ("abc","def")', "DEF", "abcdef", False),
    "In Contains AnyCase": ('F In Contains AnyCase ("abc","def")', "xxDeFxx", "adbecf", False),
    "RegExp": ('F RegExp "^a.c$"', "abc", "ABC", False),
    "IS NOT EMPTY": ("F IS NOT EMPTY", "x", "", False),
    "EXISTS": ("F EXISTS", "x", None, True),
    "<": ('F < "10"', "9.5", "10", False),
    "<=": ('F <= "10"', "10", "10.5", False),
    ">": ('F > "10"', "10.5", "10", False),
    ">=": ('F >= "10"', "10", "9.99", False),
}

# field state -> (event, True if the field is absent, else None: operator-specific)
ABSENT_STATES = {
    "missing key": {"G": "abc"},
    "None": {"F": None},
    "dict value": {"F": {"F": "abc", "x": "ABC"}},
    "empty dict": {"F": {}},
    "empty list": {"F": []},
    "list of None": {"F": [None, None]},
    "list of None and dicts": {"F": [None, {"F": "abc"}, {}]},
    "list of lists": {"F": [["abc"], []]},
}


def _cases():
    for op, (query, good, bad, on_empty) in OPERATORS.items():
        for state, event in ABSENT_STATES.items():
            yield pytest.param(query, event, False, id=f"{op}|{state}")
        yield pytest.param(query, {"F": ""}, on_empty, id=f"{op}|empty string")
        yield pytest.param(query, {"F": good}, True, id=f"{op}|matching")
        yield pytest.param(query, {"F": [None, {"k": good}, good]}, True, id=f"{op}|list with a match")
        if bad is not None:
            yield pytest.param(query, {"F": bad}, False, id=f"{op}|non-matching")
            yield pytest.param(query, {"F": [bad, None]}, False, id=f"{op}|list without a match")


@pytest.mark.parametrize("query, event, expected", list(_cases()))
def test_absence_truth_table(query, event, expected):
    rule = q(query)
    check(rule, event, expected)
    # NOT is plain negation (two-valued logic), absent included.
    check(q(f"NOT {query}"), event, not expected)
    check(q(f"NOT ({query})"), event, not expected)
    check(q(f"NOT NOT {query}"), event, expected)


def test_absence_truth_table_in_one_ruleset_and_one_batch():
    """Verdicts do not depend on neighbouring rules or on the batch (semantics.md)."""
    cases = list(_cases())
    queries = sorted({c.values[0] for c in cases})
    rules = [q(x) for x in queries] + [q(f"NOT {x}") for x in queries]
    rs = matcher.RuleSet(rules)
    events = [c.values[1] for c in cases]
    for ev in events:
        got = set(rs.match(ev))
        want = {r.id for r in rules if reference.evaluate(r, ev)}
        assert got == want, f"RuleSet disagrees with the reference on {ev!r}: extra {got - want}, missing {want - got}"
    for r in rules:
        want = [reference.evaluate(r, ev) for ev in events]
        got = [bool(x) for x in r.match_many(events)]
        assert got == want, f"match_many disagrees with the reference for {r.source_query!r}"
    pairs = sorted(rs.scan(events, batch=3))
    want_pairs = sorted((i, r.id) for i, ev in enumerate(events) for r in rules if reference.evaluate(r, ev))
    assert pairs == want_pairs


def test_absent_field_with_other_logic():
    ev = {"G": "abc"}
    check_q('F containsCIS "abc" OR G containsCIS "abc"', ev, True)
    check_q('F containsCIS "abc" AND G containsCIS "abc"', ev, False)
    check_q('NOT F containsCIS "abc" AND G containsCIS "abc"', ev, True)
    # precedence NOT > AND > OR
    check_q('G = "x" AND F EXISTS OR G = "abc"', ev, True)
    check_q('G = "x" AND (F EXISTS OR G = "abc")', ev, False)
    check_q('NOT G = "abc" OR G = "abc"', ev, True)
    check_q('NOT (G = "abc" OR G = "abc")', ev, False)


# --------------------------------------------------------------------------------------------
# 2. fold = str.lower()
# --------------------------------------------------------------------------------------------

KELVIN = "\u212a"  # KELVIN SIGN, lower() -> ASCII "k"
I_DOT = "\u0130"  # LATIN CAPITAL LETTER I WITH DOT ABOVE, lower() -> "i" + U+0307 (2 chars)


def test_fold_is_str_lower_sanity():
    assert KELVIN.lower() == "k"
    assert I_DOT.lower() == "i\u0307"
    assert "ΑΣ".lower() == "ας"
    assert "ß".lower() == "ß"


@pytest.mark.parametrize(
    "query, value, expected",
    [
        # Kelvin sign folds to ASCII k, on both sides
        ('F containsCIS "k"', f"x{KELVIN}x", True),
        ('F = "k"', KELVIN, True),
        (f'F = "{KELVIN}"', "k", True),
        (f'F = "{KELVIN}"', "K", True),
        ('F startswithCIS "kelvin"', f"{KELVIN}ELVIN scale", True),
        ('F endswithCIS "\\worker.exe"', f"C:\\x\\WOR{KELVIN}ER.EXE", True),
        ('F In ("kb")', f"{KELVIN}B", True),
        ('F In Contains AnyCase ("zz","kb")', f"x{KELVIN}Bx", True),
        ('F = "*k*"', f"a{KELVIN}a", True),
        # U+0130 lowers to two code points: 'i' + combining dot above
        ('F containsCIS "i"', I_DOT, True),
        ('F startswithCIS "i"', f"{I_DOT}stanbul", True),
        ('F = "i"', I_DOT, False),
        ('F endswithCIS "i"', f"x{I_DOT}", False),
        ('F endswithCIS "i\u0307"', f"x{I_DOT}", True),
        (f'F = "{I_DOT}"', "i\u0307", True),
        (f'F = "{I_DOT}"', "i", False),
        (f'F containsCIS "{I_DOT}"', "i", False),
        (f'F containsCIS "{I_DOT}stanbul"', "ISTANBUL", False),
        (f'F containsCIS "{I_DOT}stanbul"', f"x{I_DOT}STANBUL", True),
        ('F = "istanbul"', f"{I_DOT}STANBUL", False),
        (f'F = "{I_DOT}*L"', f"{I_DOT}stanbul", True),
        ('F = "i*"', f"{I_DOT}", True),
        ('F = "*i"', f"{I_DOT}", False),
        ('F In ("i","j")', I_DOT, False),
        (f'F In ("{I_DOT}")', "i\u0307", True),
        ('F endswithCIS "\\wmic.exe"', f"C:\\W{I_DOT}MIC.EXE", False),
        # final sigma: 'ΑΣ'.lower() == 'ας' (final ς), so it does not contain 'σ'
        ('F containsCIS "σ"', "ΑΣ", False),
        ('F endswithCIS "σ"', "ΑΣ", False),
        ('F endswithCIS "ς"', "ΑΣ", True),
        ('F containsCIS "σ"', "ΑΣΑ", True),
        ('F = "ας"', "ΑΣ", True),
        ('F = "ασ"', "ΑΣ", False),
        ('F endswithCIS "Σ"', "ΑΣ", False),  # fold("Σ") == "σ" (no cased letter before it)
        ('F = "Σ"', "σ", True),
        ('F = "Σ"', "ς", False),
        # sharp s: lower() does not expand it
        ('F = "ss"', "ß", False),
        ('F = "SS"', "ß", False),
        ('F containsCIS "ss"', "Straße", False),
        ('F = "ß"', "\u1e9e", True),  # capital sharp s lowers to ß
        ('F containsCIS "strasse"', "STRASSE", True),
        # no normalisation: precomposed vs decomposed do not match
        ('F = "é"', "e\u0301", False),
        ('F = "é"', "É", True),
        ('F containsCIS "jürgen"', "C:\\Users\\JÜRGEN\\x", True),
        # other scripts
        ('F containsCIS "привет"', "ПРИВЕТ мир", True),
        ('F = "ǆ"', "ǅ", True),  # titlecase digraph lowers to the lower digraph
        ('F containsCIS "ﬀ"', "FF", False),  # ligature is not expanded by lower()
        # RegExp is on the raw text: no fold
        ('F RegExp "k"', KELVIN, False),
        ('F RegExp "(?i)k"', KELVIN, True),  # RE2's (?i): k, K and the Kelvin sign
    ],
)
def test_fold(query, value, expected):
    check_q(query, {"F": value}, expected)
    check_q(query, {"F": [None, value]}, expected)


# --------------------------------------------------------------------------------------------
# 3. a scalar's text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, value, expected",
    [
        ('F = "true"', True, True),
        ("F = true", True, True),
        ("F = TRUE", True, True),
        ("F = false", False, True),
        ("F = true", False, False),
        ("F = true", "True", True),
        ("F = true", 1, False),
        ('F = "1"', True, False),
        ('F containsCIS "ru"', True, True),
        ('F startswithCIS "fal"', False, True),
        ('F = "1.5"', 1.5, True),
        ('F = "1.50"', 1.5, False),
        ('F = "10"', 10, True),
        ('F = "10.0"', 10, False),
        ('F = "10"', 10.0, False),
        ('F = "10.0"', 10.0, True),
        ('F = "-7"', -7, True),
        ('F = "0"', 0, True),
        ('F = "-0.0"', -0.0, True),
        ('F = "1e+16"', 1e16, True),
        ('F = "1e-07"', 1e-7, True),
        ('F = "0.1"', 0.1, True),
        ('F = "0.30000000000000004"', 0.1 + 0.2, True),
        ('F = "nan"', float("nan"), True),
        ('F = "inf"', float("inf"), True),
        ('F = "-inf"', float("-inf"), True),
        ('F = "1180591620717411303424"', 2**70, True),
        ('F = "-9223372036854775809"', -(2**63) - 1, True),
        ('F = "18446744073709551616"', 2**64, True),
        ('F startswithCIS "12"', 123, True),
        ('F endswithCIS ".5"', 2.5, True),
        ('F In ("10","20")', 20, True),
        ("F In (10,20)", 20, True),
        ('F In Contains AnyCase ("0")', 100, True),
        ('F RegExp "^\\\\d+$"', 12345, True),
        ('F RegExp "^\\\\d+$"', 1.5, False),
        ("F IS NOT EMPTY", 0, True),
        ("F IS NOT EMPTY", False, True),
        ("F EXISTS", 0, True),
        ("F EXISTS", False, True),
        ("F EXISTS", 0.0, True),
        ('F = "*.5"', 3.5, True),
    ],
)
def test_scalar_text(query, value, expected):
    check_q(query, {"F": value}, expected)


@pytest.mark.parametrize(
    "query, value, expected",
    [
        ('F containsCIS "abc"', ["x", "y", "xABCx"], True),
        ('F containsCIS "abc"', ["x", "y"], False),
        ('F = "1"', [None, {"a": "1"}, 1], True),
        ('F = "true"', [[], True], True),
        ('F = "abc"', [["abc"]], False),  # nested lists are not scalars
        ('F = "abc"', [{"F": "abc"}], False),
        ("F IS NOT EMPTY", ["", ""], False),
        ("F IS NOT EMPTY", ["", None, "x"], True),
        ("F EXISTS", ["", None], True),
        ('F In ("a","b")', ["c", "B"], True),
        ('F > "5"', ["1", "x", "6"], True),
        ('F > "5"', ["1", "x", "5"], False),
        ('F RegExp "^z"', ["az", "za"], True),
        ('F endswithCIS "\\cmd.exe"', ["C:\\a\\notepad.exe", "C:\\WINDOWS\\CMD.EXE"], True),
    ],
)
def test_list_any_scalar_element(query, value, expected):
    check_q(query, {"F": value}, expected)


def test_list_negation_is_of_the_any():
    # NOT over a list: negation of "any element matches"
    ev = {"F": ["C:\\a\\notepad.exe", "C:\\WINDOWS\\CMD.EXE"]}
    check_q('NOT F endswithCIS "\\cmd.exe"', ev, False)
    check_q('NOT F endswithCIS "\\calc.exe"', ev, True)
    # two predicates may be satisfied by different elements
    check_q('F containsCIS "notepad" AND F containsCIS "cmd"', ev, True)


# --------------------------------------------------------------------------------------------
# 4. dotted names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event, value, expected",
    [
        ({"src.process.name": "exact", "src": {"process": {"name": "nested"}}}, "exact", True),
        ({"src.process.name": "exact", "src": {"process": {"name": "nested"}}}, "nested", False),
        ({"src": {"process": {"name": "nested"}}}, "nested", True),
        ({"src": {"process": {"name": None}}}, "nested", False),
        ({"src": {"process": {"name": ["a", "nested"]}}}, "nested", True),
        ({"src": {"process": "nested"}}, "nested", False),
        ({"src": {"process": {"name": {"x": "nested"}}}}, "nested", False),
        ({"src": [{"process": {"name": "nested"}}]}, "nested", True),  # a step walks into a list
        ({"src": "x"}, "nested", False),
        ({"src.process": {"name": "nested"}}, "nested", False),  # only whole-name key or full path
        ({"src": {"process.name": "nested"}}, "nested", False),
        ({"src": {"process": {"name": 5}}}, "5", True),
        # the exact key exists (value None): it is the field, and it is absent
        ({"src.process.name": None, "src": {"process": {"name": "nested"}}}, "nested", False),
    ],
)
def test_dotted_names(event, value, expected):
    check_q(f'src.process.name = "{value}"', event, expected)
    check_q(f'NOT src.process.name = "{value}"', event, not expected)


CONN = {"connections": [{"ip": "a"}, {"ip": "b"}]}


@pytest.mark.parametrize(
    "event, value, expected",
    [
        # "A path step that meets a list walks into every element that is a mapping"
        (CONN, "a", True),
        (CONN, "b", True),
        (CONN, "c", False),
        ({"connections": ["b", 5, None, {"ip": "a"}]}, "b", False),  # a scalar element: no value
        ({"connections": ["b", 5, None, {"ip": "a"}]}, "a", True),
        ({"connections": [{"port": "b"}, {"ip": "a"}]}, "b", False),  # a mapping without the key
        ({"connections": [[{"ip": "b"}]]}, "b", False),  # a list element is not a mapping
        ({"connections": []}, "b", False),
        ({"connections": {"ip": ["x", "b"]}}, "b", True),  # no list met: the value is the list
        # "the path can reach several values, which then count as one multi-valued field";
        # "Several values reached this way behave exactly like a list value": scalars count,
        # None, mappings and lists reached give no text
        ({"connections": [{"ip": None}, {"ip": "b"}]}, "b", True),
        ({"connections": [{"ip": {"v": "b"}}]}, "b", False),
        ({"connections": [{"ip": ["b"]}]}, "b", False),
        ({"connections": [{"ip": 5}, {"ip": True}]}, "true", True),
        # lists met at several steps: every value reached, at any step
        ({"connections": [{"ip": "a"}, {"ip": [{"v": 1}]}]}, "a", True),
        # the exact key is looked up first, and then it alone is the field
        ({"connections.ip": "a", "connections": [{"ip": "b"}]}, "b", False),
        ({"connections.ip": None, "connections": [{"ip": "b"}]}, "b", False),
    ],
)
def test_dotted_names_through_lists(event, value, expected):
    check_q(f'connections.ip = "{value}"', event, expected)
    check_q(f'NOT connections.ip = "{value}"', event, not expected)


def test_dotted_names_through_lists_are_one_multi_valued_field():
    ev = {"connections": [{"ip": "10.0.0.1", "port": 22}, {"ip": "8.8.8.8", "port": 53}]}
    # two predicates may be satisfied by different elements (as for a list value)
    check_q('connections.ip = "10.0.0.1" AND connections.ip = "8.8.8.8"', ev, True)
    check_q('connections.port > 50 AND connections.port < 30', ev, True)
    check_q('NOT connections.ip EXISTS', {"connections": [{"ip": None}, {"port": 1}]}, True)
    check_q("connections.ip IS NOT EMPTY", {"connections": [{"ip": ""}, {"ip": "x"}]}, True)
    check_q("connections.ip IS NOT EMPTY", {"connections": [{"ip": ""}]}, False)
    # several steps, each meeting a list; lists of mappings under a mapping under a list
    deep = {"a": [{"b": [{"c": "x"}, {"c": "y"}]}, {"b": {"c": "z"}}, {"b": [[{"c": "w"}]]}]}
    for value, expected in (("x", True), ("y", True), ("z", True), ("w", False)):
        check_q(f'a.b.c = "{value}"', deep, expected)
    # inside a list's mappings each step is one dotted part (exact key is for the whole name)
    check_q('a.b.c = "1"', {"a": [{"b.c": 1}]}, False)


def test_dotted_path_through_a_list_that_a_mapping_empties_while_it_is_walked():
    """Ownership: a Mapping element's get clears the list being walked and drops the other
    values; every engine still reads the values as they were when the walk reached them."""

    class Clearing(Mapping):
        def __init__(self, d, victim):
            self._d, self.victim = d, victim

        def __getitem__(self, k):
            self.victim.clear()
            return self._d[k]

        def __iter__(self):
            return iter(self._d)

        def __len__(self):
            return len(self._d)

    for value, expected in (("a", True), ("b" * 40, True), ("c", False)):
        for rule in (q(f'connections.ip = "{value}"'), q(f'NOT connections.ip = "{value}"')):
            want = expected if rule.source_query.startswith("c") else not expected
            verdicts = []
            for engine in ("reference", "core", "match_many"):
                conns: list = []
                conns += [Clearing({"ip": "a"}, conns), {"ip": "b" * 40}]
                ev = {"connections": conns}
                if engine == "reference":
                    verdicts.append(bool(reference.evaluate(rule, ev)))
                elif engine == "core":
                    verdicts.append(rule.match(ev))
                else:
                    verdicts.append(bool(rule.match_many([ev])[0]))
            assert verdicts == [want] * 3, (rule.source_query, verdicts)


def test_dotted_name_exists_on_path():
    check_q("a.b EXISTS", {"a": {"b": ""}}, True)
    check_q("a.b EXISTS", {"a": {"c": "x"}}, False)
    check_q("a.b EXISTS", {"a": {"b": {}}}, False)
    check_q("NOT a.b EXISTS", {"a": None}, True)


# --------------------------------------------------------------------------------------------
# 5. = with wildcards
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, value, expected",
    [
        ('F = "a*c"', "ac", True),
        ('F = "a*c"', "abc", True),
        ('F = "a*c"', "ABBBC", True),
        ('F = "a*c"', "abcd", False),
        ('F = "a*c"', "xac", False),
        ('F = "a*c"', "a\nc", True),  # any run of characters, newlines included
        ('F = "*"', "", True),
        ('F = "**"', "x", True),
        ('F = "*abc*"', "ABC", True),
        ('F = "*abc*"', "ab", False),
        ('F = "a*b*c"', "abc", True),
        ('F = "a*b*c"', "acb", False),
        ('F = "a*b*c"', "aXbYbZc", True),
        ('F = "*.exe"', "C:\\x\\CMD.EXE", True),
        ('F = "*.exe"', "C:\\x\\cmdxexe", False),  # '.' is literal
        ('F = "a?c"', "abc", False),  # '?' is literal
        ('F = "a?c"', "A?C", True),
        ('F = "[ab]*"', "a", False),
        ('F = "[ab]*"', "[AB]x", True),
        ('F = "(x*"', "(xyz", True),
        ('F = "a+b*"', "aab", False),
        ('F = "a+b*"', "a+b", True),
        ('F = "^a*$"', "^abc$", True),
        ('F = "^a*$"', "abc", False),
        ('F = "a|b*"', "b", False),
        ('F = "x{2}*"', "xx", False),
        ('F = "%_*"', "%_x", True),
        # \* in = values is a backslash followed by a wildcard (rule L2)
        ('F = "C:\\Users\\*\\x.exe"', "C:\\Users\\bob\\x.exe", True),
        ('F = "C:\\Users\\*\\x.exe"', "C:\\USERS\\\\x.exe", True),
        ('F = "C:\\Users\\*\\x.exe"', "C:\\Users\\*\\x.exe", True),
        ('F = "C:\\Users\\*\\x.exe"', "C:\\Usersbob\\x.exe", False),
        ('F = "C:\\Users\\*\\x.exe"', "C:\\Users*\\x.exe", False),
        ('F = "a\\*b"', "a\\b", True),
        ('F = "a\\*b"', "a\\XYZb", True),
        ('F = "a\\*b"', "a*b", False),
        ('F = "a\\*b"', "ab", False),
        ('F = "a\\\\*b"', "a\\\\zb", True),
        # fold applies to the wildcard pattern and the text
        (f'F = "*{I_DOT}"', f"x{I_DOT}", True),
        ('F = "*I"', f"x{I_DOT}", False),
        ('F = "*σ"', "ΑΣ", False),
        # a glob in In lists is not a wildcard: In is exact membership
        ('F In ("a*c")', "abc", False),
        ('F In ("a*c")', "A*C", True),
        # containsCIS never carries wildcards: \* is a literal star there
        ('F containsCIS "a\\*b"', "xA*Bx", True),
        ('F containsCIS "a\\*b"', "xa\\zbx", False),
    ],
)
def test_equals_wildcards(query, value, expected):
    check_q(query, {"F": value}, expected)


# --------------------------------------------------------------------------------------------
# 6. RegExp
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, value, expected",
    [
        ('F RegExp "abc"', "xxabcxx", True),  # search, not match
        ('F RegExp "abc"', "xxABCxx", False),  # case-sensitive
        ('F RegExp "(?i)abc"', "xxABCxx", True),
        ('F RegExp "^abc"', "xabc", False),
        ('F RegExp "\\\\d{3}"', "ab123", True),  # \\ in the query is one backslash
        ('F RegExp "\\\\d{3}"', "ab12", False),
        ('F RegExp "\\\\\\\\cmd\\\\.exe$"', "C:\\x\\cmd.exe", True),
        ('F RegExp "\\\\\\\\cmd\\\\.exe$"', "C:\\x\\CMD.EXE", False),
        ('F RegExp "\\\\w+ü"', "grüß über", True),  # "grü"
        ('F RegExp "^\\\\w+$"', "jürgen", False),  # RE2: \w is ASCII [0-9A-Za-z_]
        ('F RegExp "^\\\\d$"', "٣", False),  # RE2: \d is ASCII [0-9]
        ('F RegExp "a.c"', "a\nc", False),  # '.' does not match newline
        ('F RegExp "a$"', "a\n", False),  # RE2: '$' is the end of the text (no m flag)
        ('F RegExp "^b"', "a\nb", False),  # not MULTILINE
        ('F RegExp "(?m)^b"', "a\nb", True),
        ('F RegExp "-(W|R)\\\\s?(\\\\s|"|\')"', 'x -W "y', True),  # raw " inside (rule L3)
        ('F RegExp ""', "", True),
        ('F RegExp "^$"', "", True),
        ('F RegExp "\\\\x00"', "a\x00b", True),
        ('F RegExp "b"', "a\x00b", True),
        ('F RegExp "σ"', "ΑΣ", False),  # raw text, not folded
        ('F RegExp "Σ"', "ΑΣ", True),
        ('F RegExp "(?i)σ"', "ΑΣ", True),
        ('F RegExp "\\\\bnet\\\\b"', "net user", True),
        ('F RegExp "\\\\bnet\\\\b"', "netsh", False),
    ],
)
def test_regexp(query, value, expected):
    check_q(query, {"F": value}, expected)


# --------------------------------------------------------------------------------------------
# 7. numeric comparisons: both sides as float
# --------------------------------------------------------------------------------------------


def _float_or_none(s):
    try:
        return float(s)
    except (ValueError, OverflowError):
        return None


_CMP_VALUES = [
    "9", "10", "11", "9.99", "10.0", "1e1", "1E2", "-5", "+11", " 11 ", "11\n", "0x10", "1_000",
    "inf", "-inf", "Infinity", "nan", "NaN", "abc", "", "10abc", "١١", "11.", ".5", "1e400",
    9, 10, 11, 10.5, True, False, float("nan"), float("inf"), 2**80,
]


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
@pytest.mark.parametrize("value", _CMP_VALUES, ids=repr)
def test_comparisons_parse_as_float(op, value):
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    else:
        text = repr(value)  # int / float: str(value)
    x = _float_or_none(text)
    y = 10.0
    expected = x is not None and {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    check_q(f'F {op} "10"', {"F": value}, expected)
    check_q(f'NOT F {op} "10"', {"F": value}, not expected)


@pytest.mark.parametrize(
    "query, value, expected",
    [
        ('F > "9"', "10", True),  # not a string compare
        ('F < "9"', "10", False),
        ('F > "-1.5"', "-1", True),
        ('F >= "0.1"', 0.1, True),
        ('F < "1e3"', "999", True),
        ('F > "2"', "10", True),
        ('F <= "100"', "1e2", True),
        ('F > "0"', "abc", False),
        ('F < "0"', "abc", False),
        ('F > "0"', True, False),  # "true" is not a number
        ('F >= "0"', "nan", False),
        ('F <= "0"', "nan", False),
    ],
)
def test_comparisons_misc(query, value, expected):
    check_q(query, {"F": value}, expected)


# --------------------------------------------------------------------------------------------
# 8. never a crash: odd code points, big values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, value, expected",
    [
        ('F containsCIS "abc"', "\ud800abc", True),
        ('F containsCIS "abc"', "\udfff", False),
        ('F endswithCIS "abc"', "x\udc80ABC", True),
        ('F startswithCIS "abc"', "ABC\ud800", True),
        ('F = "a*c"', "a\ud800c", True),
        ('F = "abc"', "abc\ud800", False),
        ('F RegExp "a.c"', "a\ud800c", True),
        ("F IS NOT EMPTY", "\ud800", True),
        ('F > "1"', "\ud8002", False),
        ('F In ("abc")', "\udbff\udfffabc", False),
        ('F containsCIS "abc"', "\udbff\udfffabc", True),  # a surrogate *pair* in a str is two lone ones
        ('F containsCIS "b"', "a\x00b", True),
        ('F endswithCIS "b"', "a\x00b", True),
        ('F = "a*b"', "a\x00b", True),
        ('F = "a"', "a\x00", False),
        ("F IS NOT EMPTY", "\x00", True),
        ('F containsCIS "\x00"', "a\x00b", True),
        ('F containsCIS "\x00"', "ab", False),
        ('F containsCIS "ab"', "\x00" * 1000 + "AB", True),
        ('F containsCIS "x"', "\U0010ffff x", True),
        ('F = "\U0001f600"', "\U0001f600", True),
        ('F containsCIS "\ufffd"', "\ud800", False),  # a lone surrogate is not U+FFFD
    ],
)
def test_odd_code_points(query, value, expected):
    check_q(query, {"F": value}, expected)
    check_q(query, {"F": [value]}, expected)


def test_surrogate_in_rule_literal():
    check_q('F containsCIS "\ud800"', {"F": "x\ud800y"}, True)
    check_q('F containsCIS "\ud800"', {"F": "x\udc00y"}, False)


def test_odd_keys_and_other_fields_do_not_crash():
    ev = {"\ud800": "x", "\x00": "y", "": "z", "F": "abc", "F\x00": "w", "f": "abc"}
    check_q('F = "abc"', ev, True, arrow=False)
    check_q('G = "abc"', ev, False, arrow=False)


@pytest.mark.parametrize("bad", [None, "F=abc", b"F", 5, ["F", "abc"], [("F", "abc")], ("F",), {"F"}])
def test_non_mapping_event_is_a_type_error(bad):
    rule = q('F containsCIS "abc"')
    with pytest.raises(TypeError):
        reference.evaluate(rule, bad)
    with pytest.raises(TypeError):
        rule.match(bad)
    with pytest.raises(TypeError):
        matcher.RuleSet([rule]).match(bad)


@pytest.mark.parametrize("bad", [None, "F=abc", 5, ["F", "abc"]])
def test_non_mapping_event_in_match_many_is_a_type_error(bad):
    rule = q('F containsCIS "abc"')
    with pytest.raises(TypeError):
        rule.match_many([{"F": "abc"}, bad])


def test_other_mappings_are_events():
    rule = q('F containsCIS "abc" AND NOT G EXISTS')

    class M(Mapping):
        def __init__(self, d):
            self._d = d

        def __getitem__(self, k):
            return self._d[k]

        def __iter__(self):
            return iter(self._d)

        def __len__(self):
            return len(self._d)

    for ev in (types.MappingProxyType({"F": "xABC"}), M({"F": "xABC"})):
        check(rule, ev, True)
    check(rule, M({"F": "xABC", "G": "1"}), False)
    check_q('a.b = "x"', {"a": types.MappingProxyType({"b": "X"})}, True)


def test_very_long_value():
    big = "A" * (10 * 1024 * 1024)
    ev = {"F": big + "needle"}
    check_q('F containsCIS "NEEDLE"', ev, True)
    check_q('F endswithCIS "aneedle"', ev, True)
    check_q('F startswithCIS "aaaa"', ev, True)
    check_q('F containsCIS "needles"', ev, False)
    check_q('F = "a*needle"', ev, True)
    check_q('F = "a*needlex"', ev, False)
    check_q('F RegExp "needle$"', ev, True)
    check_q("F IS NOT EMPTY", ev, True)
    check_q('F In ("needle")', ev, False)
    check_q('NOT F containsCIS "needle"', {"F": big}, True)


def test_very_long_non_ascii_value():
    big = ("Ü" * (1024 * 1024)) + I_DOT
    check_q('F endswithCIS "üi\u0307"', {"F": big}, True)
    check_q('F endswithCIS "üi"', {"F": big}, False)


def test_deeply_nested_value():
    node: object = "abc"
    for _ in range(10000):
        node = {"x": node}
    ev = {"F": node, "G": [[[[["abc"]]]]]}
    check_q('F containsCIS "abc"', ev, False, arrow=False)
    check_q('G containsCIS "abc"', ev, False, arrow=False)
    check_q("NOT F EXISTS AND NOT G EXISTS", ev, True, arrow=False)


def test_huge_int_is_absent():
    limit = sys.get_int_max_str_digits()
    if not limit:
        pytest.skip("no int/str digit limit in this interpreter")
    huge = 10 ** (limit + 10)
    for query, expected in [
        ("F EXISTS", False),
        ("NOT F EXISTS", True),
        ('F containsCIS "1"', False),
        ('NOT F containsCIS "1"', True),
        ('F > "0"', False),
        ("F IS NOT EMPTY", False),
        ('F = "*"', False),
    ]:
        check_q(query, {"F": huge}, expected)
        check_q(query, {"F": -huge}, expected)
        check_q(query, {"F": [huge]}, expected)
    # other elements of the list still count
    check_q('F = "1"', {"F": [huge, 1]}, True)
    # a sibling field is unaffected
    check_q('G = "x" AND NOT F EXISTS', {"F": huge, "G": "x"}, True)


def test_int_just_under_the_digit_limit_has_text():
    limit = sys.get_int_max_str_digits()
    if not limit:
        pytest.skip("no int/str digit limit in this interpreter")
    n = 10 ** (limit - 1)  # exactly `limit` digits
    check_q('F startswithCIS "10000"', {"F": n}, True)
    check_q("F EXISTS", {"F": n}, True)
    check_q('F > "1"', {"F": n}, True)


# --------------------------------------------------------------------------------------------
# 9. Arrow: a column that is not in the table is an absent field, whatever came before
# --------------------------------------------------------------------------------------------


def test_arrow_missing_column_after_a_table_that_had_it():
    """No state between calls: a table without column F has F absent, even after the same
    rule matched a table that had F (the earlier table is kept alive here, so a stale read
    shows as a wrong verdict rather than a crash)."""
    rule = q('F containsCIS "secret"')
    neg = q("NOT F EXISTS")
    t1 = pa.Table.from_pylist([{"F": "top secret", "G": "a"}])
    assert [bool(x) for x in rule.match_arrow(t1)] == [True]
    assert [bool(x) for x in neg.match_arrow(t1)] == [False]
    t2 = pa.Table.from_pylist([{"G": "b"}])
    assert reference.evaluate(rule, {"G": "b"}) is False
    assert [bool(x) for x in rule.match_arrow(t2)] == [False]
    assert [bool(x) for x in neg.match_arrow(t2)] == [True]
    # a null-typed column (all values None) is absent too
    t3 = pa.Table.from_pylist([{"F": None, "G": "c"}])
    assert [bool(x) for x in rule.match_arrow(t3)] == [False]
    assert [bool(x) for x in neg.match_arrow(t3)] == [True]
    del t1


def test_arrow_tables_with_different_columns_in_turn():
    rule = q('F containsCIS "abc" OR NOT G EXISTS')
    events_list = [
        [{"F": "xabc", "G": "1"}, {"F": "no", "G": "1"}],
        [{"G": "1"}, {"G": None}],
        [{"F": "ABC"}, {"H": "x"}],
        [{"F": "q", "G": "x"}],
    ]
    keep = []
    for events in events_list:
        table = arrow_table(events)
        keep.append(table)
        want = [reference.evaluate(rule, e) for e in events]
        assert [bool(x) for x in rule.match_arrow(table)] == want, events
        assert [bool(x) for x in rule.match_many(events)] == want, events


_ARROW_VALUES = [
    "xABCx", "abc", None, "", "ΑΣ", "ασ", f"{I_DOT}stanbul", "istanbul", f"{KELVIN}b", "kb",
    "Straße", "C:\\Users\\JÜRGEN\\abc.exe", "a\x00bc", "abcabc", "ABC", None, "zzz", "ǅ", "x" * 5000,
]
_ARROW_QUERIES = [
    'F containsCIS "abc"', 'F endswithCIS "abc"', 'F startswithCIS "ist"', 'F = "abc"',
    'F = "a*c"', 'F In ("kb","ǆ")', 'F containsCIS "σ"', 'F endswithCIS "ς"', 'F RegExp "^[a-z]+$"',
    "F IS NOT EMPTY", "F EXISTS", 'NOT F containsCIS "b"', 'F In Contains AnyCase ("üRGEN","ss")',
    'F containsCIS "i\u0307"', 'F = "*.exe"',
]


def _arrow_variants(values):
    arr = pa.array(values, type=pa.string())
    yield "string", pa.table({"F": arr})
    yield "large_string", pa.table({"F": arr.cast(pa.large_string())})
    yield "dictionary", pa.table({"F": arr.dictionary_encode()})
    for it in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32()):
        d = arr.dictionary_encode()
        yield f"dictionary[{it}]", pa.table({"F": pa.DictionaryArray.from_arrays(d.indices.cast(it), d.dictionary)})
    # a dictionary that holds a null entry
    uniq = [None] + sorted({v for v in values if v is not None})
    idx = pa.array([uniq.index(v) for v in values], type=pa.int32())
    yield "dictionary with null entry", pa.table({"F": pa.DictionaryArray.from_arrays(idx, pa.array(uniq, type=pa.string()))})
    yield "chunked", pa.Table.from_batches(pa.table({"F": arr}).to_batches(max_chunksize=3))


@pytest.mark.parametrize("query", _ARROW_QUERIES)
def test_arrow_encodings_agree_with_the_reference(query):
    rule = q(query)
    events = [{"F": v} for v in _ARROW_VALUES]
    want = [reference.evaluate(rule, e) for e in events]
    assert [bool(x) for x in rule.match_many(events)] == want
    for name, table in _arrow_variants(_ARROW_VALUES):
        assert [bool(x) for x in rule.match_arrow(table)] == want, name
        # slices at offsets that are not byte-aligned in the validity bitmap
        for lo in (1, 3, 9):
            assert [bool(x) for x in rule.match_arrow(table.slice(lo))] == want[lo:], (name, lo)
    # a dotted name through a struct column
    dotted = q(query.replace("F ", "a.F ", 1) if not query.startswith("NOT") else query.replace("NOT F", "NOT a.F", 1))
    nested = [{"a": {"F": v}} for v in _ARROW_VALUES]
    want_nested = [reference.evaluate(dotted, e) for e in nested]
    assert want_nested == want
    st = pa.table({"a": pa.StructArray.from_arrays([pa.array(_ARROW_VALUES, type=pa.string())], names=["F"])})
    assert [bool(x) for x in dotted.match_arrow(st)] == want_nested
    assert [bool(x) for x in dotted.match_many(nested)] == want_nested


# --------------------------------------------------------------------------------------------
# 10. Arrow: a dotted path walks into list<struct> columns, as into lists of mappings
# --------------------------------------------------------------------------------------------

_CONN_ROWS = [
    {"connections": [{"ip": "a", "port": 1}, {"ip": "b", "port": 2}]},
    {"connections": [{"ip": None, "port": 3}, None, {"ip": "c", "port": 4}]},
    {"connections": []},
    {"connections": None},
]


@pytest.mark.parametrize("list_type", [pa.list_, pa.large_list])
def test_arrow_dotted_path_through_list_of_structs(list_type):
    conn = pa.struct([("ip", pa.string()), ("port", pa.int64())])
    table = pa.table({"connections": pa.array([r["connections"] for r in _CONN_ROWS], list_type(conn))})
    # a struct column around the list column: the path walks the struct, then the list
    outer = pa.table({"net": pa.StructArray.from_arrays([table.column(0).combine_chunks()], ["connections"])})
    for query, want in [
        ('connections.ip = "b"', [True, False, False, False]),
        ('connections.ip = "c"', [False, True, False, False]),
        ('connections.port > 2', [False, True, False, False]),
        ("connections.ip EXISTS", [True, True, False, False]),
        ("NOT connections.ip EXISTS", [False, False, True, True]),
        ('connections.nope = "a"', [False] * 4),
    ]:
        rule = q(query)
        assert rule.match_arrow(table).tolist() == want, query
        assert [reference.evaluate(rule, row) for row in table.to_pylist()] == want, query
        nested = q(query.replace("connections.", "net.connections."))
        assert nested.match_arrow(outer).tolist() == want, query


def test_arrow_list_of_structs_with_a_shared_field_name_is_an_error():
    conn = pa.struct([("ip", pa.string()), ("ip", pa.string())])
    table = pa.table({"connections": pa.array([[("a", "b")]], pa.list_(conn))})
    with pytest.raises(ArrowDataError, match="column .ip.: 2 columns of struct"):
        q('connections.ip = "a"').match_arrow(table)
    # a path that does not go through the shared name is fine
    assert q('connections.port = "a"').match_arrow(table).tolist() == [False]
