"""Differential tests: the compiled core (``matcher._core``) against the reference evaluator.

The reference (``matcher.reference``, ``docs/semantics.md``) is the oracle. Every test here
computes the reference verdict on exactly the input the core saw and requires every entry
point of the core to give the same answer:

- generated IR (globs with ``Wild.ONE`` and literal stars included) against generated events
  (missing keys, ``None``, numbers, bools, lists, nested dicts, lone surrogates, ``\\x00``,
  ``İ``, ``ß``, KELVIN SIGN, long s, final sigma, right-to-left marks, case changes), through
  ``Rule.match``/``match_many``, ``RuleSet.match``/``scan``/``match_arrays``;
- the Arrow path (``scan_arrow``/``match_arrow``) on string, large_string, string_view and
  dictionary-encoded columns, sliced, chunked, as a RecordBatch and with a column missing;
- targeted cases for the places where the core takes shortcuts (ASCII fast path vs folded
  path, ``İ``, final sigma, shared prefix/suffix tables, OR-groups, regex guards, numbers,
  presence on lists);
- the whole corpus (1,648 rules) in one RuleSet against events made of its own literals and
  against 100,000 events of the synthetic dataset.

Disagreements found while writing this suite are pinned with ``@example`` (hypothesis) or as
explicit cases, and listed in ``FOUND_DISAGREEMENTS`` below so a reader sees them at once.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import re
import time
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import matcher
from matcher import compiler, datasets, ir, ops, reference
from matcher.compiler import N_ANY, compile_plan
from matcher.errors import UnprintableQueryError
from matcher.ir import Glob, Not, Op, Pred, Wild, and_, not_, or_
from matcher.s1ql import to_s1ql
from shared_data import corpus_path
from helpers import arrow_table as arrow_table_of
from helpers import encode_column, engines, make_rule, scaled, short, utf8_ok
from strategies import DOTTED_FIELD, FIELDS, LITERAL_POOL, events, globs, ir_nodes, literals

ROOT = Path(__file__).resolve().parent.parent

#: Disagreements between the core and the reference found by this suite. Each is pinned by a
#: test (checked, never skipped); all four were fixed in the core by commit fb28636 and the
#: pins stay as regression tests.
FOUND_DISAGREEMENTS = {
    "arrow-eq-kelvin": (
        'TgtProcCmdLine = "kk" (any equality literal whose longest same-field equality literal '
        "is short) on an Arrow string value '\\u212a\\u212a' (two KELVIN SIGNs, lower() 'kk'): "
        "reference True, scan_arrow/match_arrow False; mapping events give True. scan_eq's "
        "'a fold shrinks by 1/3 at most' bound is wrong: U+212A is 3 UTF-8 bytes and folds to 1."
    ),
    "empty-startswith-and-contains": (
        'TgtProcCmdLine startswithCIS "" and TgtProcCmdLine containsCIS "" in one RuleSet, any '
        "event where the field is present (e.g. {'TgtProcCmdLine': 'x'}): reference matches both, "
        "the core only the startswithCIS rule (match, scan, match_arrays and scan_arrow). The "
        "empty contains literal is moved into the prefix table beside the empty prefix literal "
        "and the hash table returns one predicate per literal."
    ),
    "str-subclass-lower": (
        "tests/test_core_limits.py::test_str_subclass_overrides_are_ignored: a str subclass value "
        "holding U+0130 or U+03A3 is folded by the core with the subclass' own lower() (Python "
        "fallback path), the reference folds str.__str__(value)."
    ),
    "str-subclass-float": (
        "same test: numeric comparisons in the core call float() on the str subclass object "
        "(its __float__), the reference on str.__str__(value)."
    ),
}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def describe(node) -> str:
    """The rule's S1QL, or its IR repr when it has no S1QL form."""
    try:
        return to_s1ql(node)
    except UnprintableQueryError:
        return repr(node)


def make_rules(nodes) -> list[matcher.Rule]:
    return [make_rule(n, f"r{i}") for i, n in enumerate(nodes)]


def reference_pairs(rules, evs) -> list[tuple[int, str]]:
    """(event index, rule id) for every reference match, in event order then rule order."""
    return [(i, r.id) for i, ev in enumerate(evs) for r in rules if reference.evaluate(r, ev)]


def note_rules(rules) -> None:
    """Print each rule's S1QL in hypothesis' report (silently nothing outside @given)."""
    for r in rules:
        try:
            note(f"{r.id}: {describe(r.ir)}")
        except InvalidArgument:  # not inside a hypothesis test
            return


# -- Arrow ------------------------------------------------------------------------------------

ARROW_SCHEMA = pa.schema([(name, pa.string()) for name in FIELDS])
ENCODINGS = ("string", "large_string", "string_view", "dict32", "dict8", "dict_u8", "dict16_large", "dict64")


def arrow_table(rows, encodings=None, schema=ARROW_SCHEMA) -> pa.Table:
    """``rows`` (dicts of str/None) over a fixed schema of string columns, re-encoded."""
    table = pa.Table.from_pylist(rows, schema=schema)
    if encodings is None:
        return table
    cols = [encode_column(table.column(i), enc) for i, enc in enumerate(encodings)]
    return pa.table(cols, names=table.column_names)


def arrow_layouts(rows, encodings, drop=None):
    """(name, table-or-batch) pairs holding ``rows`` in several physical layouts."""
    out = [("plain", arrow_table(rows, encodings))]
    pad = {name: "PAD\\cmd.exe" for name in FIELDS}
    out.append(("slice", arrow_table([pad] + rows + [pad], encodings).slice(1, len(rows))))
    k = len(rows) // 2
    chunked = pa.concat_tables([arrow_table(rows[:k], encodings), arrow_table(rows[k:], encodings)])
    out.append(("chunked", chunked))
    if len(rows) >= 2:
        # chunks that are themselves slices, with different dictionaries per chunk
        a = arrow_table([pad] + rows[:k], encodings).slice(1)
        b = arrow_table(rows[k:] + [pad], encodings).slice(0, len(rows) - k)
        out.append(("chunked-slices", pa.concat_tables([a, b])))
    out.append(("batch", arrow_table(rows, encodings).combine_chunks().to_batches()[0]
                if rows else pa.RecordBatch.from_pylist([], schema=ARROW_SCHEMA)))
    if drop is not None:
        out.append(("dropped", arrow_table(rows, encodings).drop_columns([drop])))
    return out


def arrow_rows(data) -> list[dict]:
    return data.to_pylist()


def check_arrow(rules, data, label: str = "") -> None:
    """scan_arrow and Rule.match_arrow against the reference on ``data.to_pylist()``."""
    rows = arrow_rows(data)
    expected = reference_pairs(rules, rows)
    rs = matcher.RuleSet(rules)
    got = list(rs.scan_arrow(data))
    assert got == expected, f"{label}: scan_arrow {got} != reference {expected} on rows {short(rows)}"
    first = rules[0]
    want = [reference.evaluate(first, row) for row in rows]
    assert first.match_arrow(data).tolist() == want, f"{label}: match_arrow of {first.id}"


def assert_agree(rule, event, expected=None, **kw) -> bool:
    v = engines(rule, event, **{"arrow": "strings", **kw})  # generated events: Arrow only for strings
    assert len(set(v.values())) == 1, f"{describe(rule.ir)} on {short(event)}: {v}"
    if expected is not None:
        assert v["reference"] is expected, f"test premise: reference gives {v['reference']}"
    return v["reference"]


# --------------------------------------------------------------------------------------------
# 1. generated rules and events
# --------------------------------------------------------------------------------------------

KELVIN = "\u212a"
CMD = "TgtProcCmdLine"


@settings(max_examples=scaled(300))
@given(node=ir_nodes(s1ql_only=False), event=events())
@example(node=and_(Pred(CMD, Op.STARTSWITH, ""), Pred(CMD, Op.CONTAINS, "")), event={CMD: "x"})  # found
@example(node=Pred(CMD, Op.EQUALS, KELVIN + KELVIN), event={CMD: KELVIN + KELVIN})
@example(node=Pred(CMD, Op.ENDSWITH, "\\cmd.exe"), event={CMD: "Ä" + "x" * 40 + "\\CMD.EXE"})
@example(node=Pred(CMD, Op.CONTAINS, "\u0130"), event={CMD: "a\u0130b"})
@example(node=Pred(CMD, Op.GLOB, Glob.of(Wild.ONE)), event={CMD: "\u0130"})
@example(node=Pred(CMD, Op.GLOB, Glob.of(Wild.ONE, Wild.ONE)), event={CMD: "\u0130"})
@example(node=Pred(CMD, Op.CONTAINS, "σ"), event={CMD: "AΣ"})
@example(node=Pred(CMD, Op.ENDSWITH, "ς"), event={CMD: "AΣ"})
@example(node=Pred(CMD, Op.REGEX, "(?i)SYSTEM"), event={CMD: "ſystem"})
@example(node=Not(Pred(DOTTED_FIELD, Op.EXISTS)), event={"src": {"process": {"name": None}}})
@example(node=Pred(DOTTED_FIELD, Op.CONTAINS, "a"), event={"src.process.name": {"x": "a"}, "src": {"process": {"name": "a"}}})
@example(node=Pred(CMD, Op.EXISTS), event={CMD: [10**5000, None, {}]})
@example(node=Pred(CMD, Op.GLOB, Glob.of("a", Wild.ANY, "*", Wild.ONE)), event={CMD: "A\ud800*\x00"})
def test_rule_match_agrees_with_reference(node, event):
    rule = make_rule(node)
    note(describe(node))
    expected = reference.evaluate(rule, event)
    assert rule.match(event) is expected
    assert rule.match_many([event]).tolist() == [expected]


@settings(max_examples=scaled(150))
@given(
    nodes=st.lists(ir_nodes(max_leaves=8, s1ql_only=False), min_size=2, max_size=6),
    evs=st.lists(events(), min_size=1, max_size=6),
)
@example(nodes=[Pred(CMD, Op.STARTSWITH, ""), Pred(CMD, Op.CONTAINS, "")], evs=[{CMD: ""}])  # found
@example(
    nodes=[or_(Pred(CMD, Op.REGEX, "(?i)SYSTEM"), Pred(CMD, Op.GLOB, Glob.of(Wild.ONE, "ystem"))),
           Pred(CMD, Op.CONTAINS, "ſ"), not_(Pred(CMD, Op.ENDSWITH, "EM"))],
    evs=[{CMD: "ſystem"}, {CMD: ["SYSTEM", None]}, {}],
)
def test_ruleset_match_scan_and_arrays_agree_with_reference(nodes, evs):
    rules = make_rules(nodes)
    note_rules(rules)
    rs = matcher.RuleSet(rules)
    verdicts = [[reference.evaluate(r, ev) for r in rules] for ev in evs]
    for ev, vs in zip(evs, verdicts):
        assert rs.match(ev) == [r.id for r, ok in zip(rules, vs) if ok]
    expected = [(i, r.id) for i, vs in enumerate(verdicts) for r, ok in zip(rules, vs) if ok]
    assert list(rs.scan(evs)) == expected
    assert list(rs.scan(iter(evs), batch=2)) == expected  # a generator, across batch boundaries
    rows, idx = rs.match_arrays(evs)
    assert list(zip(rows.tolist(), (rules[k].id for k in idx.tolist()))) == expected


# -- Arrow -------------------------------------------------------------------------------------

_CASES = (str, str.lower, str.upper, str.swapcase, str.title)
_ARROW_TRAPS = (
    "",
    "Ä" + "x" * 30 + "\\CMD.EXE",
    "\\CMD.EXEÄ",
    KELVIN + KELVIN,
    KELVIN,
    "\u0130",
    "x\u0130cmd.exe",
    "AΣ",
    "ΣA",
    "ΟΔΟΣ ΟΔΟΣ",
    "ſystem",
    "a\u200fb\u200e",
    "C:\\Windows\\System32\\cmd.exe",
    "\x00",
    "true",
    "4",
)
_arrow_text = st.one_of(
    st.none(),
    st.sampled_from(_ARROW_TRAPS),
    st.tuples(literals(), st.sampled_from(_CASES)).map(lambda t: t[1](t[0])),
    st.tuples(st.text(max_size=3), st.sampled_from(LITERAL_POOL + _ARROW_TRAPS), st.sampled_from(_CASES), st.text(max_size=3))
    .map(lambda t: t[0] + t[2](t[1]) + t[3]),
    st.text(),
).filter(lambda s: s is None or utf8_ok(s))
arrow_events = st.fixed_dictionaries({}, optional={name: _arrow_text for name in FIELDS})


@settings(max_examples=scaled(120), suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    nodes=st.lists(ir_nodes(max_leaves=8, s1ql_only=False), min_size=1, max_size=5),
    rows=st.lists(arrow_events, min_size=0, max_size=8),
    encodings=st.lists(st.sampled_from(ENCODINGS), min_size=len(FIELDS), max_size=len(FIELDS)),
    drop=st.sampled_from(FIELDS),
)
@example(
    nodes=[Pred(CMD, Op.EQUALS, "kk")],
    rows=[{CMD: KELVIN + KELVIN}],
    encodings=["string"] * len(FIELDS),
    drop="In",
)
def test_scan_arrow_agrees_with_reference(nodes, rows, encodings, drop):
    rules = make_rules(nodes)
    note_rules(rules)
    note(f"encodings={encodings}")
    for label, data in arrow_layouts(rows, encodings, drop):
        check_arrow(rules, data, label)


# Past _arrow._SAMPLE rows, a string column whose first rows hold few distinct values is
# dictionary-encoded before the core reads it (each distinct value walked once: run_memo). Rows
# repeat a small pool, so the reference runs on the pool alone.
REPEATED_ROWS = 4_200


@settings(max_examples=scaled(40), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    nodes=st.lists(ir_nodes(max_leaves=8, s1ql_only=False), min_size=1, max_size=5),
    pool=st.lists(arrow_events, min_size=2, max_size=10),
    encodings=st.lists(st.sampled_from(ENCODINGS), min_size=len(FIELDS), max_size=len(FIELDS)),
    seed=st.integers(0, 2**32 - 1),
)
@example(nodes=[Pred(CMD, Op.ENDSWITH, ".exe"), Pred(CMD, Op.CONTAINS, "ſ")],
         pool=[{CMD: "C:\\a.EXE"}, {CMD: "b.dll"}, {}, {CMD: "ſ.exe"}, {CMD: None}],
         encodings=["string"] * len(FIELDS), seed=1)
def test_scan_arrow_of_repeated_values_agrees_with_reference(nodes, pool, encodings, seed):
    import numpy as np

    from matcher._arrow import _dictionary

    rules = make_rules(nodes)
    note_rules(rules)
    note(f"encodings={encodings}")
    pick = np.random.default_rng(seed).integers(0, len(pool), REPEATED_ROWS).tolist()
    rows = [pool[i] for i in pick]
    per_pool = [[r.id for r in rules if reference.evaluate(r, row)] for row in pool]
    expected = [(i, rid) for i, k in enumerate(pick) for rid in per_pool[k]]
    plain = arrow_table(rows)
    assert all(_dictionary(col.chunk(0), name) is not None for name, col in zip(plain.column_names, plain.columns))
    # every field a stage-1 automaton reads goes through the dictionary, however few its literals
    with mock.patch.object(compiler, "MEMO_MIN_LITERALS", 0):
        rs = matcher.RuleSet(rules)
        rs._program
    assert rs._plan.memo_fields == sorted({u // compiler.NPROBES for u in rs._plan.eager})
    for label, data in arrow_layouts(rows, encodings):
        got = list(rs.scan_arrow(data))
        assert got == expected, f"{label}: scan_arrow differs from the reference (first {short(got[:5])})"


# DOTTED_FIELD's path through list columns: src is list<struct<process: struct<name>>>, or
# large_list<struct<process: list<struct<name>>>> (a list met at two steps).
_NAME = st.fixed_dictionaries({}, optional={"name": _arrow_text})
_LISTED_SRC = {
    "list": (pa.list_(pa.struct([("process", pa.struct([("name", pa.string())]))])), _NAME),
    "large_list-list": (
        pa.large_list(pa.struct([("process", pa.list_(pa.struct([("name", pa.string())])))])),
        st.lists(st.one_of(st.none(), _NAME), max_size=3),
    ),
}


@settings(max_examples=scaled(100), suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    nodes=st.lists(ir_nodes(max_leaves=6, s1ql_only=False), min_size=1, max_size=4),
    kind=st.sampled_from(sorted(_LISTED_SRC)),
    data=st.data(),
)
def test_scan_arrow_dotted_path_through_list_columns(nodes, kind, data):
    """A dotted name walks into list<struct> columns: Arrow == reference == the core on dicts."""
    arrow_type, process = _LISTED_SRC[kind]
    element = st.one_of(st.none(), st.fixed_dictionaries({}, optional={"process": st.one_of(st.none(), process)}))
    srcs = data.draw(st.lists(st.one_of(st.none(), st.lists(element, max_size=3)), max_size=6))
    table = pa.table({"src": pa.array(srcs, arrow_type), CMD: pa.array(["x"] * len(srcs), pa.string())})
    rules = make_rules(nodes)
    note_rules(rules)
    check_arrow(rules, table, kind)
    k = len(srcs) // 2
    check_arrow(rules, pa.concat_tables([table.slice(0, k), table.slice(k)]), kind + "/chunked-slices")
    rows = arrow_rows(table)
    assert list(matcher.RuleSet(rules).scan(rows)) == reference_pairs(rules, rows)


# Sigma keywords (Op.KEYWORD: a glob over every string value of the event, at any depth) run in
# the core as a glob over the pseudo-field compiler.EVERY_STRING.
_keyword_globs = st.one_of(
    literals().map(lambda s: Glob.of(Wild.ANY, s, Wild.ANY)),  # Sigma's usual keyword: contains
    literals().map(lambda s: Glob.of(s)),
    globs(s1ql_only=False),
)
_keywords = _keyword_globs.map(lambda g: Pred("", Op.KEYWORD, g))


@settings(max_examples=scaled(150), suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=st.lists(st.one_of(_keywords, st.tuples(_keywords, ir_nodes(max_leaves=4, s1ql_only=False), st.booleans())
                             .map(lambda t: or_(t[0], t[1]) if t[2] else and_(t[0], not_(t[1])))), min_size=1, max_size=5),
    evs=st.lists(events(), min_size=1, max_size=6),
)
@example(nodes=[Pred("", Op.KEYWORD, Glob.of(Wild.ANY, "evil", Wild.ANY))],
         evs=[{"a": [{"b": {"c": ["x", "EVIL"]}}]}, {"a": 5, "evil": 1}, {"evil": "x"}, {"": "evil"}])
def test_keywords_agree_with_reference(nodes, evs):
    rules = make_rules(nodes)
    note_rules(rules)
    expected = reference_pairs(rules, evs)
    rs = matcher.RuleSet(rules)
    assert rs.reads_whole_events
    assert list(rs.scan(evs)) == expected
    for ev in evs:
        assert rules[0].match(ev) is reference.evaluate(rules[0], ev)
    assert rules[0].match_many(evs).tolist() == [reference.evaluate(rules[0], ev) for ev in evs]
    table = arrow_table_of(evs)
    if table is not None:
        check_arrow(rules, table, "keywords")


# Sigma fieldref (Op.FIELDREF*) is compared in the core (kind FREF) on folded UTF-8 bytes.
_fieldrefs = st.builds(Pred, st.sampled_from(FIELDS), st.sampled_from(
    [Op.FIELDREF, Op.FIELDREF_CONTAINS, Op.FIELDREF_STARTSWITH, Op.FIELDREF_ENDSWITH]), st.sampled_from(FIELDS))


@settings(max_examples=scaled(150), suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.lists(st.one_of(_fieldrefs, _fieldrefs.map(not_)), min_size=1, max_size=4),
       evs=st.lists(events(), min_size=1, max_size=6))
@example(nodes=[Pred(CMD, Op.FIELDREF_CONTAINS, DOTTED_FIELD)],
         evs=[{CMD: "xAΣb", "src": [{"process": {"name": "aσ"}}]}, {CMD: "İ", DOTTED_FIELD: "i̇"}])
def test_fieldrefs_agree_with_reference(nodes, evs):
    rules = make_rules(nodes)
    note_rules(rules)
    assert list(matcher.RuleSet(rules).scan(evs)) == reference_pairs(rules, evs)
    assert rules[0].match_many(evs).tolist() == [reference.evaluate(rules[0], ev) for ev in evs]
    table = arrow_table_of(evs)
    if table is not None:
        check_arrow(rules, table, "fieldrefs")


@settings(max_examples=scaled(60))
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "n": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
                "f": st.one_of(st.none(), st.floats()),
                "b": st.one_of(st.none(), st.booleans()),
                "s": st.one_of(st.none(), st.sampled_from(["4", "-1.5", "true", "1e3", "x"])),
            },
        ),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
def test_scan_arrow_non_string_columns(rows, data):
    """int64/float64/bool columns go through to_pylist; verdicts as for the Python rows."""
    schema = pa.schema([("n", pa.int64()), ("f", pa.float64()), ("b", pa.bool_()), ("s", pa.string())])
    table = pa.Table.from_pylist(rows, schema=schema)
    ops_ = [Op.EQUALS, Op.GT, Op.LE, Op.CONTAINS, Op.NOT_EMPTY, Op.REGEX]
    nodes = []
    for i in range(4):
        f = data.draw(st.sampled_from(["n", "f", "b", "s"]))
        op = data.draw(st.sampled_from(ops_))
        if op is Op.NOT_EMPTY:
            p = Pred(f, op)
        elif op is Op.REGEX:
            p = Pred(f, op, data.draw(st.sampled_from(["^-", "\\.", "e", "^true$", "inf|nan"])))
        else:
            p = Pred(f, op, data.draw(st.sampled_from(["4", "-1.5", "true", "0", "1e3", "inf", "nan"])))
        nodes.append(p if data.draw(st.booleans()) else not_(p))
    rules = make_rules(nodes)
    note_rules(rules)
    check_arrow(rules, table, "plain")
    check_arrow(rules, table.slice(1), "slice")


@settings(max_examples=scaled(12))
@given(
    nodes=st.lists(ir_nodes(max_leaves=8, s1ql_only=False), min_size=1, max_size=4),
    base=st.lists(events(), min_size=1, max_size=12),
    rows=st.lists(arrow_events, min_size=1, max_size=12),
    encodings=st.lists(st.sampled_from(ENCODINGS), min_size=len(FIELDS), max_size=len(FIELDS)),
)
def test_more_rows_than_one_core_chunk(nodes, base, rows, encodings):
    """The core matches 512 rows per chunk: 1,300 events and 1,700 Arrow rows cross chunks.

    The events repeat a few distinct objects; the reference verdict of each distinct object is
    computed once and reused for its copies (the verdict is a function of the event)."""
    rules = make_rules(nodes)
    note_rules(rules)
    rs = matcher.RuleSet(rules)
    verdict = [[r.id for r in rules if reference.evaluate(r, ev)] for ev in base]
    k = len(base)
    evs = [base[i % k] for i in range(1300)]
    expected = [(i, rid) for i in range(1300) for rid in verdict[i % k]]
    assert list(rs.scan(evs)) == expected
    assert list(rs.scan(evs, batch=700)) == expected
    rows_v = [[r.id for r in rules if reference.evaluate(r, row)] for row in arrow_table(rows).to_pylist()]
    m = len(rows)
    table = arrow_table([rows[i % m] for i in range(1700)], encodings)
    assert list(rs.scan_arrow(table)) == [(i, rid) for i in range(1700) for rid in rows_v[i % m]]
    sliced = table.slice(600)
    assert list(rs.scan_arrow(sliced)) == [(i - 600, rid) for i in range(600, 1700) for rid in rows_v[i % m]]


def test_arrow_struct_column_for_dotted_field():
    rule = make_rule(Pred(DOTTED_FIELD, Op.ENDSWITH, "cmd.exe"))
    not_rule = make_rule(Not(Pred(DOTTED_FIELD, Op.EXISTS)), "r1")
    rows = [
        {"src": {"process": {"name": "C:\\CMD.EXE"}}},
        {"src": {"process": {"name": None}}},
        {"src": None},
        {"src": {"process": None}},
        {"src": {"process": {"name": "Ä\\cmd.exe"}}},
        {"src": {"process": {"name": "cmd.exe.bak"}}},
    ]
    table = pa.Table.from_pylist(rows)
    for data in (table, table.slice(2), table.slice(1, 3)):
        check_arrow([rule, not_rule], data, "struct")


# --------------------------------------------------------------------------------------------
# 2. targeted cases
# --------------------------------------------------------------------------------------------

_FAR = "x" * 200


@pytest.mark.parametrize(
    "query, value, expected",
    [
        # ASCII fast path: pure ASCII values, raw bytes lowered on the fly
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "C:\\WINDOWS\\SYSTEM32\\CMD.EXE", True),
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "C:\\WINDOWS\\SYSTEM32\\CMD.EXE ", False),
        # a non-ASCII character far from the matched ASCII suffix / prefix / infix
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "Ä" + _FAR + "\\CMD.EXE", True),
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "Ä\\CMD.EXE", True),
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "\\CMD.EXEÄ", False),
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "\\CMDÄ.EXE", False),
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "李雷" + _FAR + "\\cMd.ExE", True),
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "\U0001f600" + _FAR + "\\CMD.EXE", True),
        ('TgtProcCmdLine startswithCIS "c:\\windows\\"', "C:\\WINDOWS\\" + _FAR + "Ä", True),
        ('TgtProcCmdLine startswithCIS "c:\\windows\\"', "C:\\WINDÖWS\\" + _FAR, False),
        ('TgtProcCmdLine startswithCIS "c:\\windows\\"', "\u00a0C:\\WINDOWS\\", False),
        ('TgtProcCmdLine containsCIS "whoami"', "ü" + _FAR + "WHOAMI" + _FAR + "ü", True),
        ('TgtProcCmdLine containsCIS "whoami"', "ü" + _FAR + "WHOAM" + _FAR + "ü", False),
        ('TgtProcCmdLine = "cmd.exe"', "CMD.EXE", True),
        ('TgtProcCmdLine = "cmd.exe"', "CMD.EXÉ", False),
        ('TgtProcCmdLine = "cmd.exé"', "CMD.EXÉ", True),
        ('TgtProcCmdLine = "c*.exe"', "Ä" + _FAR + ".EXE", False),
        ('TgtProcCmdLine = "ä*.exe"', "Ä" + _FAR + ".EXE", True),
        # İ lowers to two code points ('i' + U+0307): before and inside a literal
        ('TgtProcCmdLine containsCIS "i\u0307"', "\u0130", True),
        ('TgtProcCmdLine containsCIS "\u0130"', "I\u0307", True),
        ('TgtProcCmdLine startswithCIS "i"', "\u0130stanbul", True),
        ('TgtProcCmdLine startswithCIS "is"', "\u0130stanbul", False),
        ('TgtProcCmdLine startswithCIS "\u0130s"', "\u0130STANBUL", True),
        ('TgtProcCmdLine endswithCIS "xi"', "X\u0130", False),
        ('TgtProcCmdLine endswithCIS "\\cmd.exe"', "\u0130" + _FAR + "\\CMD.EXE", True),
        ('TgtProcCmdLine containsCIS "cmd.exe"', "\u0130cmd.exe", True),
        ('TgtProcCmdLine = "\u0130"', "i\u0307", True),
        ('TgtProcCmdLine = "\u0130"', "I", False),
        ('TgtProcCmdLine = "i*"', "\u0130", True),
        ('TgtProcCmdLine = "*\u0307"', "\u0130", True),
        ('TgtProcCmdLine = "*\u0130*"', "ab\u0130cd", True),
        # final sigma: Σ lowers to ς at the end of a word, σ elsewhere
        ('TgtProcCmdLine containsCIS "Σ"', "AΣB", True),
        ('TgtProcCmdLine containsCIS "Σ"', "AΣ", False),
        ('TgtProcCmdLine endswithCIS "ς"', "ΟΔΟΣ", True),
        ('TgtProcCmdLine endswithCIS "σ"', "ΟΔΟΣ", False),
        ('TgtProcCmdLine endswithCIS "Σ"', "Σ", True),
        ('TgtProcCmdLine = "\u03bf\u03b4\u03bf\u03c3"', "ΟΔΟΣ", False),  # = "οδοσ" (non-final σ)
        ('TgtProcCmdLine = "\u03bf\u03b4\u03bf\u03c2"', "ΟΔΟΣ", True),  # = "οδος" (final ς)
        ('TgtProcCmdLine = "ΟΔΟΣ"', "ΟΔΟΣ", True),
        ('TgtProcCmdLine = "\u03bf\u03b4\u03bf\u03c3"', "ΟΔΟ\u03c3", True),
        ('TgtProcCmdLine containsCIS "ος ο"', "ΟΔΟΣ ΟΔΟΣ", True),
        ('TgtProcCmdLine startswithCIS "cmd"', "CMD ΟΔΟΣ", True),
        # KELVIN SIGN lowers to ASCII 'k'; long s and sharp s do not lower to ASCII
        ('TgtProcCmdLine containsCIS "k"', KELVIN, True),
        ('TgtProcCmdLine = "kk"', KELVIN + KELVIN, True),
        ('TgtProcCmdLine = "kk"', KELVIN + "K", True),
        ('TgtProcCmdLine = "kkkk"', KELVIN * 4, True),
        ('TgtProcCmdLine startswithCIS "kk"', KELVIN * 3, True),
        ('TgtProcCmdLine endswithCIS "kk"', KELVIN * 3, True),
        ('TgtProcCmdLine containsCIS "system"', "ſystem", False),
        ('TgtProcCmdLine containsCIS "ss"', "ß", False),
        ('TgtProcCmdLine containsCIS "ß"', "\u1e9e", True),
        # right-to-left / zero-width marks are just characters
        ('TgtProcCmdLine containsCIS "cmd.exe"', "cmd\u200f.exe", False),
        ('TgtProcCmdLine containsCIS "cmd\u200f.exe"', "CMD\u200f.EXE", True),
        ('TgtProcCmdLine endswithCIS "exe"', "cmd.exe\u200e", False),
        ('TgtProcCmdLine = "\u200f"', "\u200f", True),
        # NUL and lone surrogates
        ('TgtProcCmdLine containsCIS "a"', "\x00A\x00", True),
        ('TgtProcCmdLine = "*\\cmd.exe"', "\ud800\\CMD.EXE", True),
    ],
)
def test_folding_paths(query, value, expected):
    rule = matcher.compile(query)
    assert_agree(rule, {CMD: value}, expected)
    # the same value among others (a list), and the value with a prefix the other path takes
    assert_agree(rule, {CMD: [None, 5, value]}, expected)


def test_folding_paths_every_code_point_class():
    """One value per Unicode string kind (ASCII, latin-1, UCS-2, UCS-4) x each table."""
    rule_texts = [
        'TgtProcCmdLine endswithCIS "\\cmd.exe"',
        'TgtProcCmdLine startswithCIS "c:\\"',
        'TgtProcCmdLine containsCIS "whoami"',
        'TgtProcCmdLine = "c:\\whoami\\cmd.exe"',
        'TgtProcCmdLine = "c:\\*\\cmd.exe"',
    ]
    rules = [matcher.compile(q, id=f"q{i}") for i, q in enumerate(rule_texts)]
    rs = matcher.RuleSet(rules)
    fillers = ["", "é", "Ä", "\u0100", "ſ", "\u0130", "Σ", KELVIN, "\U0001f600", "\ud83d", "\u200f"]
    vals = []
    for f1, f2 in itertools.product(fillers, repeat=2):
        for core in ("C:\\WHOAMI\\CMD.EXE", "c:\\whoami\\cmd.exe", "C:\\WhoAmI\\Cmd.Exe"):
            vals += [f1 + core + f2, core.replace("\\", f1 + "\\", 1) + f2, f1 + core[:5] + f2 + core[5:]]
    evs = [{CMD: v} for v in vals]
    assert list(rs.scan(evs)) == reference_pairs(rules, evs)
    utf8 = [{CMD: v} for v in vals if utf8_ok(v)]
    table = pa.Table.from_pylist(utf8, schema=pa.schema([(CMD, pa.string())]))
    check_arrow(rules, table, "code point classes")


# -- many rules sharing prefixes and suffixes --------------------------------------------------

_PIECES = [
    "c:\\windows\\",
    "c:\\windows\\system32\\",
    "c:\\win",
    "c:\\",
    "\\cmd.exe",
    "cmd.exe",
    "d.exe",
    ".exe",
    "e",
    "",
    "system32\\cmd.exe",
    "c:\\windows\\system32\\cmd.exe",
    "c:\\wİndows",
    "ß.exe",
    KELVIN + ".exe",
    "Σ.exe",
    "\\windowspowershell\\v1.0\\powershell.exe",
    "powershell",
    "\\power",
]


def _shared_affix_rules(with_empty: bool = True):
    """One rule per (operator, piece), written as S1QL text and compiled with matcher.compile.

    ``with_empty=False`` leaves out the empty literal, so that a regression of the
    disagreement on ``startswithCIS ""`` beside ``containsCIS ""`` (FOUND_DISAGREEMENTS) does
    not hide other failures of the shared tables.
    """
    out = []
    for op in ("startswithCIS", "endswithCIS", "containsCIS", "="):
        for piece in _PIECES:
            if piece == "" and not with_empty:
                continue
            text = to_s1ql(Pred(CMD, Op.EQUALS if op == "=" else {
                "startswithCIS": Op.STARTSWITH, "endswithCIS": Op.ENDSWITH, "containsCIS": Op.CONTAINS}[op], piece))
            out.append(matcher.compile(text, id=f"{op}:{piece}"))
    # also the whole family on a second field and mixed in ORs / ANDs
    out.append(matcher.compile(
        'TgtProcImagePath endswithCIS "\\cmd.exe" AND (TgtProcCmdLine startswithCIS "c:\\windows\\" OR '
        'TgtProcCmdLine endswithCIS ".exe" OR TgtProcCmdLine containsCIS "system32" OR TgtProcCmdLine = "e")',
        id="mixed"))
    return out


_affix_value = st.builds(
    lambda parts, case, pre, post: pre + case("".join(parts)) + post,
    st.lists(st.sampled_from(_PIECES + ["C:\\", "Windows", "\\", "X"]), min_size=0, max_size=4),
    st.sampled_from(_CASES),
    st.sampled_from(["", "Ä", "\u0130", "Σ", KELVIN, "\U0001f600", "z"]),
    st.sampled_from(["", "Ä", "\u0130", "Σ", KELVIN, "\U0001f600", " "]),
)


@pytest.mark.parametrize("with_empty", [True, False], ids=["with-empty-literals", "no-empty-literals"])
@settings(max_examples=scaled(100))
@given(values=st.lists(_affix_value, min_size=1, max_size=10), images=st.lists(_affix_value, min_size=1, max_size=10))
@example(values=[""], images=[""])
@example(values=["x"], images=["Ä"])
def test_many_rules_sharing_prefixes_and_suffixes(with_empty, values, images):
    rules = _shared_affix_rules(with_empty)
    rs = matcher.RuleSet(rules)
    evs = [{CMD: v, "TgtProcImagePath": im} for v, im in zip(values, itertools.cycle(images))]
    expected = reference_pairs(rules, evs)
    assert list(rs.scan(evs)) == expected
    for i, ev in enumerate(evs):
        assert rs.match(ev) == [rid for j, rid in expected if j == i]
    rows = [ev for ev in evs if all(utf8_ok(v) for v in ev.values())]
    schema = pa.schema([(CMD, pa.string()), ("TgtProcImagePath", pa.string())])
    check_arrow(rules, pa.Table.from_pylist(rows, schema=schema), "affix")


@pytest.mark.parametrize("with_empty", [True, False], ids=["with-empty-literals", "no-empty-literals"])
def test_many_rules_sharing_prefixes_and_suffixes_exhaustive(with_empty):
    rules = _shared_affix_rules(with_empty)
    rs = matcher.RuleSet(rules)
    vals = []
    for a, b in itertools.product(_PIECES, repeat=2):
        for case in (str, str.upper):
            vals.append(case(a + b))
    vals += ["Ä" + v for v in vals[::7]] + [v + "\u0130" for v in vals[::11]]
    evs = [{CMD: v, "TgtProcImagePath": v[::-1]} for v in vals]
    assert list(rs.scan(evs)) == reference_pairs(rules, evs)
    rows = [ev for ev in evs if all(utf8_ok(v) for v in ev.values())]
    check_arrow(rules, pa.Table.from_pylist(rows), "affix exhaustive")


@pytest.mark.parametrize("order", ["startswith-first", "contains-first"])
@pytest.mark.parametrize("value", ["", "x", "ÄX", ["", None]])
def test_empty_prefix_and_empty_contains_literal_in_one_ruleset(order, value):
    """Both hold for every present value; the core used to fire only one (FOUND_DISAGREEMENTS)."""
    sw = matcher.compile('TgtProcCmdLine startswithCIS ""', id="startswith-empty")
    ct = matcher.compile('TgtProcCmdLine containsCIS ""', id="contains-empty")
    rules = [sw, ct] if order == "startswith-first" else [ct, sw]
    rs = matcher.RuleSet(rules)
    ev = {CMD: value}
    assert [r.id for r in rules if reference.evaluate(r, ev)] == [r.id for r in rules]
    assert rs.match(ev) == [r.id for r in rules]
    assert list(rs.scan([ev])) == [(0, r.id) for r in rules]
    if isinstance(value, str):
        assert list(rs.scan_arrow(pa.table({CMD: [value]}))) == [(0, r.id) for r in rules]


# -- long prefix / suffix / equality literals (the tables' filters at depths 8 .. 128) ----------

_long_base = st.text(alphabet="abcdefgh\\:É", min_size=1, max_size=140)


@settings(max_examples=scaled(100))
@given(
    bases=st.lists(_long_base, min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 200), min_size=1, max_size=12),
    values=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 260),
            st.sampled_from(["", "Ä", "\u0130", "z", "ABC"]),
            st.sampled_from(_CASES),
            st.sampled_from(["", "Ä", "q", KELVIN]),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_long_prefix_suffix_and_equality_literals(bases, cuts, values):
    """Literals of 1..140 characters cut from a few shared bases (so they share heads and
    tails across the 8/16/32/64/128-byte filter depths), against values cut from the same
    bases with a different length, case, and a character before or after."""
    lits = sorted({(bases[i % len(bases)][:c] or bases[i % len(bases)]) for i, c in enumerate(cuts)})
    nodes = []
    for lit in lits:
        nodes += [Pred(CMD, Op.STARTSWITH, lit), Pred(CMD, Op.ENDSWITH, lit), Pred(CMD, Op.EQUALS, lit)]
    rules = make_rules(nodes)
    evs = []
    for bi, cut, pre, case, post in values:
        b = bases[bi % len(bases)]
        v = case(b[:cut] if cut else b)
        evs += [{CMD: pre + v}, {CMD: v + post}, {CMD: v}, {CMD: [v[::-1], pre + v + post]}]
    rs = matcher.RuleSet(rules)
    assert list(rs.scan(evs)) == reference_pairs(rules, evs)
    rows = [ev for ev in evs if isinstance(ev[CMD], str)]
    check_arrow(rules, pa.Table.from_pylist(rows, schema=pa.schema([(CMD, pa.string())])), "long literals")


@pytest.mark.parametrize("depth", [7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200])
def test_prefix_suffix_filter_depth_edges(depth):
    head = "".join(chr(ord("a") + (i % 7)) for i in range(depth))
    lits = [head, head[:-1] + "Z", head + "x", head[: depth // 2]]
    rules = []
    for k, lit in enumerate(lits):
        rules += [matcher.compile(to_s1ql(Pred(CMD, op, lit)), id=f"{op.name}{k}") for op in (Op.STARTSWITH, Op.ENDSWITH, Op.EQUALS)]
    vals = []
    for lit in lits:
        for v in (lit, lit.upper(), lit + "Q", "Q" + lit, lit[:-1], lit[1:], "Ä" + lit, lit + "Ä", lit[:5] + "Ä" + lit[5:]):
            vals.append(v)
    evs = [{CMD: v} for v in vals]
    rs = matcher.RuleSet(rules)
    expected = reference_pairs(rules, evs)
    assert len(expected) > len(lits)
    assert list(rs.scan(evs)) == expected
    check_arrow(rules, pa.table({CMD: vals}), "filter depths")


# -- OR groups (N_ANY) ------------------------------------------------------------------------

_GROUP_FIELDS = ("TgtProcCmdLine", "TgtProcImagePath", DOTTED_FIELD, "SrcProcImagePath")
_GROUP_LITS = ("cmd.exe", "\\cmd.exe", "c:\\", "Ä", "\u0130", KELVIN, "x", "whoami", "Σ", "")


def _table_preds(with_empty: bool):
    lits = st.sampled_from(_GROUP_LITS if with_empty else _GROUP_LITS[:-1])
    return st.one_of(
        st.builds(Pred, st.sampled_from(_GROUP_FIELDS), st.sampled_from([Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.EQUALS]), lits),
        st.builds(Pred, st.sampled_from(_GROUP_FIELDS), st.sampled_from([Op.EXISTS, Op.NOT_EMPTY])),
    )


@st.composite
def group_rules(draw, with_empty: bool = True):
    """A rule holding an OR of >= 4 table predicates (an N_ANY group), in various contexts."""
    _table_pred = _table_preds(with_empty)
    members = draw(st.lists(_table_pred, min_size=4, max_size=7, unique=True))
    node = or_(*members)
    shape = draw(st.sampled_from(["or", "not", "and", "and-not", "or-of-groups"]))
    if shape == "not":
        node = not_(node)
    elif shape == "and":
        node = and_(node, draw(_table_pred))
    elif shape == "and-not":
        node = and_(draw(_table_pred), not_(node))
    elif shape == "or-of-groups":
        other = or_(*draw(st.lists(_table_pred, min_size=4, max_size=5, unique=True)))
        node = or_(and_(node, draw(_table_pred)), not_(other))
    return node


_group_value = st.one_of(
    st.none(),
    st.builds(lambda a, b, c: c(a + b), st.sampled_from(["", "C:\\", "Ä", "\u0130", KELVIN, "x"]),
              st.sampled_from(["cmd.exe", "\\CMD.EXE", "WHOAMI", "", "Σ", "x"]), st.sampled_from(_CASES)),
    st.lists(st.sampled_from(["cmd.exe", "", None, 4]), max_size=3),
)
_group_event = st.fixed_dictionaries({}, optional={f: _group_value for f in _GROUP_FIELDS})


_PINNED_GROUP_RULE = or_(
    and_(
        or_(Pred(CMD, Op.CONTAINS, "cmd.exe"), Pred(CMD, Op.CONTAINS, "\\cmd.exe"), Pred(CMD, Op.CONTAINS, ""),
            Pred(CMD, Op.STARTSWITH, "cmd.exe")),
        Pred(CMD, Op.EXISTS),
    ),
    not_(or_(Pred(CMD, Op.CONTAINS, "cmd.exe"), Pred(CMD, Op.STARTSWITH, ""), Pred(CMD, Op.EXISTS), Pred(CMD, Op.NOT_EMPTY))),
)


@pytest.mark.parametrize("with_empty", [True, False], ids=["with-empty-literals", "no-empty-literals"])
@settings(max_examples=scaled(120))
@given(data=st.data())
def test_or_groups_mixing_fields_under_not(with_empty, data):
    nodes = data.draw(st.lists(group_rules(with_empty), min_size=1, max_size=5), label="nodes")
    evs = data.draw(st.lists(_group_event, min_size=1, max_size=8), label="evs")
    check_or_groups(nodes, evs)


def test_or_groups_pinned():
    """Shrunk by hypothesis: the empty-literal disagreement (FOUND_DISAGREEMENTS) inside groups."""
    check_or_groups([_PINNED_GROUP_RULE], [{CMD: "WHOAMI"}])


def check_or_groups(nodes, evs):
    plan = compile_plan(nodes)
    assert plan.groups and N_ANY in plan.node_kind  # the shape under test is what the core runs
    rules = make_rules(nodes)
    note_rules(rules)
    rs = matcher.RuleSet(rules)
    expected = reference_pairs(rules, evs)
    assert list(rs.scan(evs)) == expected
    for i, ev in enumerate(evs):
        assert rs.match(ev) == [rid for j, rid in expected if j == i]
    for r in rules:
        for ev in evs:
            assert r.match(ev) is reference.evaluate(r, ev)


def test_or_group_shared_members_under_not():
    """One predicate in several groups; NOT of a group; a group beside lazy predicates."""
    a = Pred(CMD, Op.CONTAINS, "whoami")
    b = Pred("TgtProcImagePath", Op.ENDSWITH, "\\cmd.exe")
    c = Pred(DOTTED_FIELD, Op.EQUALS, "x")
    d = Pred("SrcProcImagePath", Op.EXISTS)
    e = Pred(CMD, Op.STARTSWITH, "c:\\")
    g = Pred(CMD, Op.REGEX, "(?i)who")
    nodes = [
        or_(a, b, c, d),
        not_(or_(a, b, c, e)),
        and_(not_(or_(b, c, d, e)), g),
        or_(a, b, c, d, g),  # a lazy member: not an N_ANY group
        and_(or_(a, c, d, e), not_(or_(a, b, d, e))),
    ]
    rules = make_rules(nodes)
    rs = matcher.RuleSet(rules)
    vals = [None, "", "x", "X", "WHOAMI", "c:\\whoami", "C:\\x\\CMD.EXE", "Ä\\cmd.exe", ["x", None], [], {}]
    evs = []
    for v1, v2, v3, v4 in itertools.product(vals, repeat=4):
        ev = {}
        for k, v in zip((CMD, "TgtProcImagePath", DOTTED_FIELD, "SrcProcImagePath"), (v1, v2, v3, v4)):
            if v is not None or (len(evs) % 3 == 0):
                ev[k] = v
        evs.append(ev)
    evs = evs[:: 7]  # a spread of ~2,000 events
    assert list(rs.scan(evs)) == reference_pairs(rules, evs)


# -- regexes with guards -----------------------------------------------------------------------

REGEX_CASES = [
    "cmd\\.exe",
    "(?i)cmd\\.exe",
    "(?i)SYSTEM",
    "(?i)system",
    "SYSTEM",
    "[Ss]ystem",
    "(?i)[Ss]ystem",
    "[Ss][Yy][Ss][Tt][Ee][Mm]",
    "(?i)[Kk]elvin",
    "(?i)KELVIN",
    "(?i)this",
    "(?i)THIS",
    "(?i)is",
    "(?i:cmd)\\.exe",
    "(?i)(?-i:Cmd)\\.exe",
    "(?-i:SYS)(?i:TEM)",
    "cmd\\.exe|power[Ss]hell",
    "(?i)cmd\\.exe|powershell",
    "(?:abc|def)ghi",
    "[Pp]ower[Ss]hell",
    "(?i)[Pp]ower[Ss]hell",
    "(ab)+cd",
    "(?:ab){2,}cd",
    "(?:ab)*cd",
    "x?yz",
    "\\bwhoami\\b",
    "who(?=ami)",
    "(?!x)abc",
    "(?<=who)ami",
    "(a)b\\1",
    "(?i)ſ",
    "(?i)ı",
    "\u0130",
    "(?i)\u0130",
    "(?i)i\u0307",
    "^C:\\\\",
    "\\.EXE$",
    "(?i)\\.exe$",
    "(?s).*",
    "(?i)st",
    "(?i)[a-z]+st",
    "(?i)ss",
    "(?i)ß",
    "(?a)(?i)system",
    "(?i)σ",
    "(?i)Σ",
    "ς",
    "(?x) s y s",
    "\\x53YSTEM",
    "[^a]bc",
    "(?i)[^s]ystem",
    # single rare characters as guards
    "\\$\\{",
    "%temp%",
    "a\\|b",
    "[$]x",
    "\\^",
    "(?i)\\$env:",
    # shortest-match lengths (values shorter than that are not handed to Python)
    ".{5}",
    "^.{3}$",
    "(?i)ab.{2}",
    "é{2}",
    "(?s).{8,}",
    "a(?=.{4})",
    "(?<=...)b",
    "(ab){3}",
    "(a)\\1{2}",
    "(?x) a b c d",
    ".{60}",
    "(?:ab|c){2}",
    "(a)?(?(1)b|cd)",
]

_REGEX_PIECES = [
    "system", "SYSTEM", "ſystem", "SYſTEM", "ſyſtem", "System", "this", "thıs", "THİS", "tHIS", "ThIs",
    "kelvin", "KELVIN", KELVIN + "elvin", "cmd.exe", "CMD.EXE", "Cmd.exe", "powershell", "PowerShell",
    "pOWERsHELL", "abcghi", "defghi", "ababcd", "abcd", "cd", "whoami", "aabc", "yz", "xyz", "C:\\",
    "c:\\", "x.EXE", "x.exe", "\u0130", "ı", "i\u0307", "\u200f", "Σ", "σ", "ς", "ß", "SS", "st", "ST",
    "ſt", "aba", " ", "\\", "\ud800", "\x00",
    "$", "${", "%TEMP%", "%", "a|b", "|", "^", "$ENV:", "{", "é", "éé", "€", "\U0001f600", "abab", "ab" * 31,
]
_regex_value = st.lists(st.sampled_from(_REGEX_PIECES), min_size=0, max_size=4).map("".join)


@pytest.mark.parametrize("pattern", [".{5}", "^.{3}$", "é{2}.", "(?s).{4,}", "\\w{4}"])
def test_regex_shortest_match_length_counts_characters(pattern):
    """The core skips values shorter than a regex's shortest match; length must be counted in
    characters, whatever the value's storage (ASCII, latin-1, UCS-2, UCS-4, Arrow UTF-8)."""
    rule = make_rule(Pred(CMD, Op.REGEX, pattern))
    for ch in ("a", "é", "€", "\U0001f600", "İ", "\n"):
        for n in range(0, 7):
            v = ch * n
            assert_agree(rule, {CMD: v})
            assert_agree(rule, {CMD: [v, "x"]})
            assert_agree(rule, {CMD: ["x", v]})


@pytest.mark.parametrize("pattern", REGEX_CASES)
def test_regex_guards(pattern):
    rule = make_rule(Pred(CMD, Op.REGEX, pattern))
    also = make_rule(and_(Pred(CMD, Op.REGEX, pattern), Pred(CMD, Op.CONTAINS, "s")), "r1")
    either = make_rule(or_(Pred(CMD, Op.REGEX, pattern), Pred("TgtProcImagePath", Op.EXISTS)), "r2")
    rules = [rule, also, either]
    rs = matcher.RuleSet(rules)
    pairs = list(itertools.product(_REGEX_PIECES, repeat=2))
    evs = [{CMD: a} for a in _REGEX_PIECES] + [{CMD: a + b} for a, b in pairs[:: 3]]
    evs += [{CMD: [a, b]} for a, b in zip(_REGEX_PIECES, reversed(_REGEX_PIECES))]
    assert list(rs.scan(evs)) == reference_pairs(rules, evs)
    for r in rules:
        for ev in evs[:: 17]:
            assert r.match(ev) is reference.evaluate(r, ev)
    rows = [ev for ev in evs if isinstance(ev[CMD], str) and utf8_ok(ev[CMD])]
    check_arrow(rules, pa.Table.from_pylist(rows), f"regex {pattern}")


def test_regex_system_matches_long_s_like_the_reference():
    rule = matcher.compile('TgtProcCmdLine RegExp "(?i)SYSTEM"')
    assert re.search("(?i)SYSTEM", "ſystem")  # Python's re: (?i)S matches U+017F
    assert_agree(rule, {CMD: "ſystem"}, True)
    assert_agree(rule, {CMD: "ſyſtem"}, True)
    assert_agree(rule, {CMD: "ſyst"}, False)


@settings(max_examples=scaled(150))
@given(patterns=st.lists(st.sampled_from(REGEX_CASES), min_size=1, max_size=4), values=st.lists(_regex_value, min_size=1, max_size=8))
def test_regex_guards_generated(patterns, values):
    rules = make_rules(Pred(CMD, Op.REGEX, p) for p in patterns)
    rules.append(make_rule(or_(*(Pred(CMD, Op.REGEX, p) for p in patterns), Pred(CMD, Op.CONTAINS, "abc")), "r99"))
    note_rules(rules)
    evs = [{CMD: v} for v in values]
    assert list(matcher.RuleSet(rules).scan(evs)) == reference_pairs(rules, evs)


# -- numbers -----------------------------------------------------------------------------------

_NUM_VALUES = [
    4, 4.0, 3, -1, 0, -0.0, 2**63, -(2**63) - 1, 10**5000, 1e308, float("inf"), float("-inf"), float("nan"),
    True, False, None, "4", "4.0", " 4 ", "4e0", "1_000", "1e3", "0x10", "nan", "inf", "-inf", "Infinity",
    "\u0664", "\u0661\u0662", "\u00a04\u00a0", "４", "", "four", "4 4", "+4", "-1.5", "1e400", "-1e400",
    [1, "5"], ["x", 10], [], [None], [10**5000, "3"], {"x": 4},
]


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
@pytest.mark.parametrize("bound", ["4", "-1", "3.5", "0", "1e3", "-1.5"])
def test_numeric_comparisons(op, bound):
    ir_op = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE}[op]
    rules = [
        make_rule(Pred(CMD, ir_op, bound)),
        make_rule(not_(Pred(CMD, ir_op, bound)), "r1"),
        make_rule(and_(Pred(CMD, ir_op, bound), Pred(CMD, Op.CONTAINS, "4")), "r2"),
    ]
    evs = [{CMD: v} for v in _NUM_VALUES]
    assert list(matcher.RuleSet(rules).scan(evs)) == reference_pairs(rules, evs)
    for r in rules:
        for ev in evs:
            assert_agree(r, ev)


def test_numeric_comparison_from_s1ql_text():
    for text in ('TgtProcCmdLine > "3"', 'TgtProcCmdLine <= "4.0"', 'TgtProcCmdLine >= "-1.5"', 'TgtProcCmdLine < "1e3"'):
        rule = matcher.compile(text)
        for v in _NUM_VALUES:
            assert_agree(rule, {CMD: v})


# -- presence on lists -------------------------------------------------------------------------

_LIST_VALUES = [
    [], [None], [{}], [[]], [[1]], [""], ["", None], ["a"], [0], [False], [0.0], ["", ""], ["", "x"],
    [10**5000], [10**5000, ""], [{"a": 1}, "b"], (), ("a",), "", "a", 0, None, {}, {"x": "y"},
]


@pytest.mark.parametrize("query", [
    "TgtProcCmdLine EXISTS",
    "TgtProcCmdLine IS NOT EMPTY",
    "NOT TgtProcCmdLine EXISTS",
    "NOT TgtProcCmdLine IS NOT EMPTY",
    "TgtProcCmdLine EXISTS AND NOT TgtProcCmdLine IS NOT EMPTY",
    'TgtProcCmdLine = ""',
    'TgtProcCmdLine containsCIS ""',
    'TgtProcCmdLine = "*"',
])
def test_exists_and_not_empty_on_lists(query):
    rule = matcher.compile(query)
    for v in _LIST_VALUES:
        assert_agree(rule, {CMD: v})
        assert_agree(rule, {"src": {"process": {"name": v}}, CMD: v})


# --------------------------------------------------------------------------------------------
# 3. the corpus against the synthetic dataset (and against events built from its literals)
# --------------------------------------------------------------------------------------------

#: Number of events: 100,000, as the issue asks. The reference needs ~30 ms of one core per
#: event for the 1,648 corpus rules (a Python tree walk), so the harness below splits the work
#: by rules over 2 processes and asks the reference once per rule and *distinct input*: a
#: rule's verdict depends only on the raw values of the fields it reads
#: (``ops.lookup(event, field)``), so events with equal values for those fields share one
#: reference call, made on the first such event. That halves the reference calls (81.7 M
#: calls for 164.8 M pairs) and skips no rule and no event. Measured on a loaded 2-core
#: machine: reference 2,329 s on 2 processes, core 2.7 s, 47,480 matching pairs.
#: MATCHER_CORPUS_EVENTS=<n> runs another number.
CORPUS_EVENTS = int(os.environ.get("MATCHER_CORPUS_EVENTS") or 100_000)
CORPUS_SEED = 7
CORPUS_RULE_CHUNK = 24


def corpus_records() -> list[dict]:
    with corpus_path().open(encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    return [r for r in recs if r.get("query") is not None]


_WORKER: dict = {}


def _corpus_worker_init(n: int) -> None:
    _WORKER["rules"] = [(r["id"], matcher.compile(r["query"], id=r["id"]).ir) for r in corpus_records()]
    _WORKER["events"] = datasets.generate(n, CORPUS_SEED)


def _value_key(value):
    """A hashable key equal for two raw values exactly when they have the same texts: the type
    is part of it (``1``, ``1.0`` and ``True`` have different texts), floats go by ``repr``
    (``0.0`` and ``-0.0``), anything unhashable or nested by its type and ``repr``."""
    if value is None or type(value) in (str, int, bool):
        return (type(value), value)
    return (type(value), repr(value))


def _corpus_reference_rules(task):
    """Reference matches of rules [lo, hi) over all events: [(event index, rule id), ...]."""
    lo, hi = task
    evaluate_ir, lookup = reference.evaluate_ir, ops.lookup
    out, calls = [], 0
    for rid, node in _WORKER["rules"][lo:hi]:
        preds = list(ir.walk_preds(node))
        fields = sorted({p.field for p in preds})
        memo = None if any(p.op in ir.EVENT_OPS for p in preds) else {}  # whole-event: no memo
        for i, ev in enumerate(_WORKER["events"]):
            if memo is None:
                hit, calls = evaluate_ir(node, ev), calls + 1
            else:
                key = tuple(_value_key(lookup(ev, f)) for f in fields)
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = evaluate_ir(node, ev)
                    calls += 1
            if hit:
                out.append((i, rid))
    return out, calls


def test_corpus_value_key_separates_texts():
    # the memo of the corpus harness must never merge two values the reference tells apart
    values = [None, "", "1", 1, 1.0, True, "true", 0.0, -0.0, float("nan"), [1], ["1"], (1,), {"a": 1}, "x"]
    texts = [repr((type(v), ops.field_texts({"f": v}, "f"))) for v in values]
    keys = [_value_key(v) for v in values]
    for a in range(len(values)):
        for b in range(len(values)):
            if keys[a] == keys[b]:
                assert texts[a] == texts[b], (values[a], values[b])


def _literal_events(rules, n: int, seed: int) -> list[dict]:
    """Events made of the corpus' own literals (so that many rules fire), case-changed and
    wrapped in characters that push values off the ASCII fast path."""
    import random

    lits: dict[str, list[str]] = {}
    for r in rules:
        for p in ir.walk_preds(r.ir):
            if isinstance(p.value, str):
                lits.setdefault(p.field, []).append(p.value)
            elif isinstance(p.value, Glob):
                lits.setdefault(p.field, []).append("".join(x if isinstance(x, str) else "*" for x in p.value.parts))
            else:
                lits.setdefault(p.field, []).append("1")
    fields = sorted(lits)
    rng = random.Random(seed)
    cases = [str, str.upper, str.lower, str.swapcase]
    wraps = ["", "", "Ä", "\u0130", "Σ", KELVIN, "ſ", "\U0001f600", " ", "\\", "\u200f"]
    out = []
    for _ in range(n):
        ev: dict = {}
        for f in ("EndpointOS", "EventType", "ObjectType"):
            if rng.random() < 0.9:
                ev[f] = rng.choice(cases)(rng.choice(lits[f]))
        for f in rng.sample(fields, rng.randint(1, 6)):
            parts = [rng.choice(lits[f]) for _ in range(rng.randint(1, 3))]
            v = rng.choice(wraps) + rng.choice(cases)("".join(parts)) + rng.choice(wraps)
            ev[f] = v if rng.random() < 0.9 else [None, v]
        out.append(ev)
    return out


def test_corpus_rules_on_events_made_of_corpus_literals():
    recs = corpus_records()
    rules = [matcher.compile(r["query"], id=r["id"]) for r in recs]
    rs = matcher.RuleSet(rules)
    evs = _literal_events(rules, 250, 2024)
    expected = reference_pairs(rules, evs)
    assert len(expected) > 200  # the events do fire rules
    assert list(rs.scan(evs)) == expected
    rows = [{k: v for k, v in ev.items() if isinstance(v, str) and utf8_ok(v)} for ev in evs]
    table = pa.Table.from_pylist(rows)
    assert list(rs.scan_arrow(table)) == reference_pairs(rules, table.to_pylist())
    dict_table = pa.table([c.dictionary_encode() for c in table.columns], names=table.column_names)
    assert list(rs.scan_arrow(dict_table)) == reference_pairs(rules, dict_table.to_pylist())


@pytest.mark.slow
def test_corpus_ruleset_scan_equals_reference():
    recs = corpus_records()
    assert len(recs) == 1648
    rules = [matcher.compile(r["query"], id=r["id"], title=r["title"]) for r in recs]
    rs = matcher.RuleSet(rules)
    n = CORPUS_EVENTS
    t0 = time.perf_counter()
    got = list(rs.scan(datasets.iter_events(n, CORPUS_SEED)))
    t_core = time.perf_counter() - t0
    evs = datasets.generate(n, CORPUS_SEED)
    tasks = [(lo, min(lo + CORPUS_RULE_CHUNK, len(recs))) for lo in range(0, len(recs), CORPUS_RULE_CHUNK)]
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(2, initializer=_corpus_worker_init, initargs=(n,)) as pool:
        parts = list(pool.imap(_corpus_reference_rules, tasks))
    t_ref = time.perf_counter() - t0
    calls = sum(c for _, c in parts)
    order = {r.id: u for u, r in enumerate(rules)}
    expected = sorted((p for chunk, _ in parts for p in chunk), key=lambda p: (p[0], order[p[1]]))
    print(f"corpus: {n} events, core {t_core:.1f}s, reference {t_ref:.1f}s on 2 processes "
          f"({calls} calls for {n * len(rules)} pairs), {len(expected)} matches")
    assert len(expected) > 0
    # the other entry points of the core on the same events (cheap: no second reference run)
    rows, idx = rs.match_arrays(evs)
    assert list(zip(rows.tolist(), (rules[u].id for u in idx.tolist()))) == got
    table = pa.Table.from_pylist(evs, schema=pa.schema([(f, pa.string()) for f in datasets.FIELDS]))
    # Arrow rows differ from the events only by None for a missing key, which the reference
    # reads the same way (both absent), so the reference pairs carry over unchanged.
    assert all(
        {k: v for k, v in row.items() if v is not None} == {k: v for k, v in ev.items() if v is not None}
        for row, ev in zip(table.to_pylist(), evs)
    )
    arrow_got = list(rs.scan_arrow(table))
    if got != expected:
        gs, es = set(got), set(expected)
        missing = sorted(es - gs)[:10]
        extra = sorted(gs - es)[:10]
        by_id = {r.id: r for r in rules}
        lines = [f"core misses {len(es - gs)}, core adds {len(gs - es)}"]
        for i, rid in missing + extra:
            lines.append(f"event {i} rule {rid}: ref={(i, rid) in es} query={by_id[rid].source_query[:200]!r} "
                         f"event={short(evs[i])}")
        pytest.fail("\n".join(lines))
    assert arrow_got == expected
