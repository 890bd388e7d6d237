"""Printer <-> parser: parse(to_s1ql(node)) == node, or the printer refuses with UnprintableQueryError."""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import event as note_event
from hypothesis import strategies as st

import matcher
from helpers import corpus_queries
from shared_data import corpus_path
from matcher import MatcherError, UnprintableQueryError, ir
from matcher.ir import And, Glob, Not, Op, Or, Pred, Wild
from matcher.s1ql import parse, to_s1ql
from strategies import LITERAL_POOL, events, ir_nodes, literals, predicates



def round_trip(node: ir.Node) -> str | None:
    """The printed text if printable (asserting it reads back as ``node``), else None."""
    try:
        text = to_s1ql(node)
    except UnprintableQueryError:
        return None
    assert parse(text) == node, text
    assert to_s1ql(parse(text)) == text  # the canonical text is a fixed point
    return text


# -- the strategies themselves -------------------------------------------------------------------


@given(ir_nodes(s1ql_only=False))
def test_ir_nodes_are_valid_ir(node):
    ir.validate(node)
    assert ir.depth(node) <= 12


def _json_like(value, depth: int = 0) -> bool:
    if depth > 10:
        return False
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_json_like(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v, depth + 1) for k, v in value.items())
    return False


@given(events())
def test_events_are_json_like_dicts(ev):
    assert isinstance(ev, dict)
    assert _json_like(ev)


def test_strategies_cover_the_tricky_cases():
    """Over a fixed sample, the strategies really produce what their docstrings promise."""
    seen: set[str] = set()

    @settings(max_examples=600, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(ir_nodes(), events())
    def sample(node, ev):
        for n in [node]:
            stack = [n]
            while stack:
                x = stack.pop()
                if isinstance(x, Not):
                    seen.add("not")
                    stack.append(x.item)
                elif isinstance(x, (And, Or)):
                    seen.add(type(x).__name__)
                    stack.extend(x.items)
                else:
                    seen.add(x.op.name)
                    v = x.value
                    if isinstance(v, str):
                        if '"' in v:
                            seen.add("quote")
                        if v.endswith("\\"):
                            seen.add("trailing backslash")
                        if "*" in v:
                            seen.add("star")
                        if v == "":
                            seen.add("empty")
                        if any(ord(c) > 127 for c in v):
                            seen.add("non-ascii")
                    if " " in x.field:
                        seen.add("field with space")
        if "src" in ev and isinstance(ev["src"], dict):
            seen.add("nested dotted field")
        if "src.process.name" in ev:
            seen.add("flat dotted field")
        for k, v in ev.items():
            if v is None:
                seen.add("None value")
            if isinstance(v, list):
                seen.add("list value")
            if isinstance(v, str) and any("\ud800" <= c <= "\udfff" for c in v):
                seen.add("lone surrogate")
            if isinstance(v, str) and v != v.lower() and v.lower() in LITERAL_POOL:
                seen.add("case-changed literal")
        if len(ev) < 7:
            seen.add("missing keys")

    sample()
    wanted = {
        "And", "Or", "not", "CONTAINS", "STARTSWITH", "ENDSWITH", "EQUALS", "GLOB", "REGEX", "NOT_EMPTY",
        "EXISTS", "LT", "GT", "quote", "trailing backslash", "star", "empty", "non-ascii", "field with space",
        "nested dotted field", "flat dotted field", "None value", "list value", "missing keys",
        "lone surrogate", "case-changed literal",
    }
    assert wanted <= seen, wanted - seen


# -- generated IR --------------------------------------------------------------------------------


@given(ir_nodes())
def test_round_trip_generated_ir(node):
    text = round_trip(node)
    note_event("unprintable" if text is None else "printable")
    if text is not None:
        target(float(len(text)), label="printed length")


@given(ir_nodes(s1ql_only=False))
def test_round_trip_generated_ir_with_unprintable_globs(node):
    round_trip(node)


@given(predicates())
def test_round_trip_single_predicates(pred):
    round_trip(pred)


@given(st.sampled_from([Op.EQUALS, Op.CONTAINS]), st.lists(literals(), min_size=2, max_size=5))
def test_round_trip_lists(op, values):
    round_trip(ir.or_(*(Pred("F", op, v) for v in values)))
    round_trip(ir.and_(Pred("G", Op.EXISTS), ir.or_(*(Pred("F", op, v) for v in values))))
    round_trip(Not(ir.or_(*(Pred("F", op, v) for v in values))))


def test_unprintable_is_rare():
    """Over a fixed (derandomized) sample of generated IR, the printer refuses fewer than 5%."""
    counts = {"printable": 0, "unprintable": 0}

    @settings(max_examples=400, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(ir_nodes())
    def sample(node):
        counts["printable" if round_trip(node) is not None else "unprintable"] += 1

    sample()
    total = sum(counts.values())
    assert total >= 300
    assert counts["unprintable"] <= 0.05 * total, counts


def test_literal_pool_mostly_prints():
    """Each tricky literal alone, under every string operator, is printable except the documented cases."""
    refused = []
    for value in LITERAL_POOL:
        for op in (Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.EQUALS):
            if round_trip(Pred("F", op, value)) is None:
                refused.append((op, value))
    assert not refused, refused


# -- documented unprintable cases ----------------------------------------------------------------

UNPRINTABLE = [
    Pred("F", Op.CONTAINS, 'x" AND y'),
    Pred("F", Op.STARTSWITH, '" OR y'),
    Pred("F", Op.ENDSWITH, 'x") AND y'),
    Pred("F", Op.CONTAINS, 'x\\" AND y'),
    Pred("F", Op.EQUALS, 'a" and b'),
    Pred("F", Op.EQUALS, 'a*b" AND c'),  # a star forces In (...), where '" AND' still closes
    Pred("F", Op.REGEX, 'a" AND b'),
    Pred("F", Op.REGEX, 'a") OR b'),
    Pred("F", Op.GLOB, Glob.of("a*b", Wild.ANY)),  # a literal star in a glob
    Pred("F", Op.GLOB, Glob.of(Wild.ANY, "*")),
    Pred("F", Op.GLOB, Glob.of("a", Wild.ONE, "b")),  # S1QL has no single-character wildcard
    Pred("F", Op.GLOB, Glob.of(Wild.ONE)),
    Pred("F", Op.GLOB, Glob.of(Wild.ANY, 'x" AND y')),
]


@pytest.mark.parametrize("node", UNPRINTABLE, ids=[repr(n) for n in UNPRINTABLE])
def test_documented_unprintable(node):
    with pytest.raises(UnprintableQueryError):
        to_s1ql(node)
    # ... also when nested
    with pytest.raises(UnprintableQueryError):
        to_s1ql(ir.and_(Pred("G", Op.EXISTS), ir.not_(ir.or_(Pred("H", Op.EXISTS), node))))


def test_unprintable_is_a_matcher_error():
    with pytest.raises(MatcherError):
        to_s1ql(UNPRINTABLE[0])


# -- printable tricky cases ----------------------------------------------------------------------

PRINTABLE = [
    (Pred("F", Op.CONTAINS, "C:\\Program Files\\"), 'F containsCIS "C:\\Program Files\\"'),
    (Pred("F", Op.ENDSWITH, "\\"), 'F endswithCIS "\\"'),
    (Pred("F", Op.EQUALS, "C:\\dir\\"), 'F = "C:\\dir\\"'),
    (ir.and_(Pred("F", Op.CONTAINS, "x\\"), Pred("G", Op.CONTAINS, "y\\")), None),
    (ir.or_(Pred("F", Op.EQUALS, "a\\"), Pred("F", Op.EQUALS, "b\\")), 'F In ("a\\","b\\")'),
    (Not(ir.or_(Pred("F", Op.CONTAINS, "a\\"), Pred("F", Op.CONTAINS, "b"))), None),
    (Pred("F", Op.CONTAINS, 'a\\"b'), None),
    (Pred("F", Op.CONTAINS, 'say "hi"'), None),
    (Pred("F", Op.CONTAINS, '"'), None),
    (Pred("F", Op.CONTAINS, '\\"'), None),
    (Pred("F", Op.CONTAINS, 'AMMYY\\aa_nts.dll",run'), None),
    (ir.or_(Pred("F", Op.CONTAINS, 'x",1'), Pred("F", Op.CONTAINS, "y")), None),
    (ir.or_(Pred("F", Op.CONTAINS, 'x","y'), Pred("F", Op.CONTAINS, "z")), None),
    (Pred("F", Op.EQUALS, "a*b"), 'F In ("a\\*b")'),  # '*' in EQUALS is written via In (...)
    (Pred("F", Op.EQUALS, "*"), None),
    (ir.or_(Pred("F", Op.EQUALS, "a*"), Pred("F", Op.EQUALS, "b")), None),
    (Pred("F", Op.CONTAINS, "a*b"), 'F containsCIS "a\\*b"'),
    (Pred("F", Op.GLOB, Glob.of("C:\\Users\\", Wild.ANY, "\\x")), 'F = "C:\\Users\\*\\x"'),
    (Pred("F", Op.GLOB, Glob.of(Wild.ANY, "x\\")), 'F = "*x\\"'),
    (Pred("F", Op.GLOB, Glob.of(Wild.ANY, 'a"b', Wild.ANY)), None),
    (Pred("F", Op.EQUALS, "true"), None),
    (Pred("F", Op.EQUALS, ""), 'F = ""'),
    (Pred("F", Op.CONTAINS, "İß\u212aſ\u200f"), None),
    (Pred("F", Op.REGEX, "-(W|R)\\s?(\\s|\"|')"), 'F RegExp "-(W|R)\\\\s?(\\\\s|"|\')"'),
    (Pred("F", Op.REGEX, "\\\\server"), None),
    (Pred("F", Op.GT, "4"), 'F > "4"'),
    (Pred("not", Op.EXISTS), "'not' EXISTS"),
    (Pred("my field", Op.CONTAINS, "x"), None),
    (Pred("it's", Op.EXISTS), None),
    (Pred("src.process.name", Op.ENDSWITH, "\\cmd.exe"), 'src.process.name endswithCIS "\\cmd.exe"'),
    (Pred("OR", Op.NOT_EMPTY), None),
]


@pytest.mark.parametrize("node,expected_text", PRINTABLE, ids=[repr(n) for n, _ in PRINTABLE])
def test_printable_tricky(node, expected_text):
    text = round_trip(node)
    assert text is not None, "printer refused a printable value"
    if expected_text is not None:
        assert text == expected_text


def test_canonical_text_form():
    q = 'a containscis "x" and (b exists or c = "y") and not d in contains anycase ("p","q") or e is not empty'
    assert to_s1ql(parse(q)) == (
        '(a containsCIS "x" AND (b EXISTS OR c = "y") AND NOT d In Contains AnyCase ("p","q")) OR e IS NOT EMPTY'
    )


def test_empty_field_name_is_unprintable_or_round_trips():
    # Pred("", ...) is valid IR (ir.validate accepts it); the printer must not emit text that does not parse.
    node = Pred("", Op.CONTAINS, "x")
    ir.validate(node)
    round_trip(node)


# -- corpus --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sorted_keys", [False, True], ids=["unsorted", "sortedkeys"])
def test_round_trip_corpus(sorted_keys):
    failures = []
    for rid, q in corpus_queries(corpus_path(sorted_keys)).items():
        node = parse(q)
        try:
            text = to_s1ql(node)
            again = parse(text)
        except Exception as e:  # noqa: BLE001 - report every failure at once
            failures.append(f"{rid}: {type(e).__name__}: {e}")
            continue
        if again != node:
            failures.append(f"{rid}: reads back differently")
    assert not failures, f"{len(failures)} corpus queries do not round-trip:\n" + "\n".join(failures[:10])


def test_flagship_query_round_trips():
    rule = matcher.builtin("flagship")
    assert parse(rule.query) == rule.ir
    assert matcher.compile(rule.query).ir == rule.ir


@given(ir_nodes(max_leaves=6))
@settings(max_examples=50)
def test_rule_query_is_canonical_and_recompiles(node):
    try:
        text = to_s1ql(node)
    except UnprintableQueryError:
        return
    rule = matcher.compile(text, id="x")
    assert rule.query == text
    assert matcher.compile(rule.query, id="y").ir == node


def test_And_Or_shapes_print_with_needed_parentheses():
    a, b, c = (Pred(f, Op.EXISTS) for f in "abc")
    assert to_s1ql(And((a, Or((b, c))))) == "a EXISTS AND (b EXISTS OR c EXISTS)"
    assert parse(to_s1ql(Not(And((a, b))))) == Not(And((a, b)))
    assert parse(to_s1ql(Or((And((a, b)), c)))) == Or((And((a, b)), c))
    assert parse(to_s1ql(Not(Not(a)))) == Not(Not(a))
