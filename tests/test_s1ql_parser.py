"""The S1QL parser: corpus coverage, operator table, precedence, lexical rules L1-L3, limits.

Grammar and lexical rules: ``docs/s1ql-spec.md`` (§2); meaning of the IR: ``docs/semantics.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import matcher
from helpers import corpus_queries
from shared_data import corpus_path
from matcher import QuerySyntaxError, ir
from matcher.ir import And, Glob, Not, Op, Or, Pred, Wild
from matcher.s1ql import parse

ROOT = Path(__file__).resolve().parent.parent
SEED_CARD = ROOT / "matcher" / "data" / "proc_creation_win_webshell_susp_process_spawned_from_webserver.md"
SEED_ID = "8202070f-edeb-4d31-a010-a26c72ac5600"


def card_query(card_text: str) -> str:
    """The fenced query under '## SentinelOne Query', read independently of matcher.rules."""
    m = re.search(r"^## SentinelOne Query[ \t]*\n+```[^\n]*\n(.*?)^```", card_text, re.M | re.S)
    assert m, "the seed card has no fenced query"
    return m.group(1)


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    return corpus_queries(corpus_path())


@pytest.fixture(scope="module")
def corpus_sorted() -> dict[str, str]:
    return corpus_queries(corpus_path(sorted_keys=True))


def P(field: str, op: Op, value=None) -> Pred:
    return Pred(field, op, value)


def E(field: str) -> Pred:
    return Pred(field, Op.EXISTS)


# -- corpus ------------------------------------------------------------------------------------


def test_corpus_files_have_the_documented_size(corpus, corpus_sorted):
    assert len(corpus) == 1648
    assert len(corpus_sorted) == 1648
    assert set(corpus) == set(corpus_sorted)


@pytest.mark.parametrize("sorted_keys", [False, True], ids=["unsorted", "sortedkeys"])
def test_every_corpus_query_parses(sorted_keys):
    failures = []
    for rid, q in corpus_queries(corpus_path(sorted_keys)).items():
        try:
            node = parse(q)
            ir.validate(node)
        except Exception as e:  # noqa: BLE001 - report every failure at once
            failures.append(f"{rid}: {type(e).__name__}: {e}")
    assert not failures, f"{len(failures)} corpus queries fail:\n" + "\n".join(failures[:10])


def test_corpus_orderings_are_equivalent_after_canonical(corpus, corpus_sorted):
    differ = [rid for rid, q in corpus.items() if ir.canonical(parse(q)) != ir.canonical(parse(corpus_sorted[rid]))]
    assert not differ, f"{len(differ)} ids differ after canonical(): {differ[:10]}"


def test_corpus_orderings_really_differ_textually(corpus, corpus_sorted):
    # The previous test would be vacuous if the two files were the same.
    assert sum(corpus[rid] != corpus_sorted[rid] for rid in corpus) > 800


# -- the seed rule -----------------------------------------------------------------------------


def test_seed_parses_identically_from_card_and_bare_file(tmp_path):
    card_text = SEED_CARD.read_text(encoding="utf-8")
    bare = tmp_path / "seed.s1ql"
    bare.write_text(card_query(card_text), encoding="utf-8")
    from_card = matcher.load(SEED_CARD)
    from_bare = matcher.load(bare)
    assert from_card.ir == from_bare.ir
    assert from_card.ir == parse(card_query(card_text))
    assert from_bare.id == "seed"


def test_seed_is_the_sortedkeys_corpus_query(corpus, corpus_sorted):
    seed = card_query(SEED_CARD.read_text(encoding="utf-8")).strip()
    assert seed == corpus_sorted[SEED_ID]
    assert ir.canonical(parse(seed)) == ir.canonical(parse(corpus[SEED_ID]))


def test_seed_structure():
    node = matcher.load(SEED_CARD).ir
    assert isinstance(node, And)
    assert node.items[0] == P("EventType", Op.EQUALS, "Process Creation")
    assert node.items[1] == P("EndpointOS", Op.EQUALS, "windows")
    preds = list(ir.walk_preds(node))
    seed = card_query(SEED_CARD.read_text(encoding="utf-8"))
    assert len(preds) == len(re.findall(r' (?:containsCIS|startswithCIS|endswithCIS|=) "', seed)) > 40
    # Rule L1 inside the seed: '\"Plus' is an escaped quote, the value continues.
    assert P(
        "TgtProcCmdLine",
        Op.ENDSWITH,
        'Windows\\system32\\cmd.exe /c C:\\ManageEngine\\ADManager "Plus\\ES\\bin\\elasticsearch.bat'
        " -Enode.name=RMP-NODE1 -pelasticsearch-pid.txt",
    ) in preds
    assert P("SrcProcImagePath", Op.ENDSWITH, "\\java.exe") in preds
    # The exclusion is a NOT over an OR of two ANDs.
    excl = node.items[-1]
    assert isinstance(excl, Not) and isinstance(excl.item, Or) and len(excl.item.items) == 2


# -- operator table ----------------------------------------------------------------------------

OPERATOR_TABLE = [
    ('F containsCIS "abc"', P("F", Op.CONTAINS, "abc")),
    ('F startswithCIS "abc"', P("F", Op.STARTSWITH, "abc")),
    ('F endswithCIS "\\cmd.exe"', P("F", Op.ENDSWITH, "\\cmd.exe")),
    ('F containsCIS ""', P("F", Op.CONTAINS, "")),
    # '=' without wildcard: EQUALS; with '*': GLOB
    ('F = "Process Creation"', P("F", Op.EQUALS, "Process Creation")),
    ('F = ""', P("F", Op.EQUALS, "")),
    ('F = "*"', P("F", Op.GLOB, Glob.of(Wild.ANY))),
    ('F = "*foo*bar*"', P("F", Op.GLOB, Glob.of(Wild.ANY, "foo", Wild.ANY, "bar", Wild.ANY))),
    ('F = "fe8*:*"', P("F", Op.GLOB, Glob.of("fe8", Wild.ANY, ":", Wild.ANY))),
    ('F = "fc**:*"', P("F", Op.GLOB, Glob.of("fc", Wild.ANY, ":", Wild.ANY))),
    ('F = "a*b"', P("F", Op.GLOB, Glob(("a", Wild.ANY, "b")))),
    # booleans and numbers
    ("F = true", P("F", Op.EQUALS, "true")),
    ("F = false", P("F", Op.EQUALS, "false")),
    ("F = TRUE", P("F", Op.EQUALS, "true")),
    ('F = "true"', P("F", Op.EQUALS, "true")),
    ('F = "4"', P("F", Op.EQUALS, "4")),
    # In (...) and In Contains AnyCase (...)
    ('F In ("a","b")', ir.or_(P("F", Op.EQUALS, "a"), P("F", Op.EQUALS, "b"))),
    ('F In ("a")', P("F", Op.EQUALS, "a")),
    ('F In ("DNS","Url","IP")', Or(tuple(P("F", Op.EQUALS, v) for v in ("DNS", "Url", "IP")))),
    ('F In Contains AnyCase ("appsync-api","avsvmcloud.com")',
     Or((P("F", Op.CONTAINS, "appsync-api"), P("F", Op.CONTAINS, "avsvmcloud.com")))),
    ('F In Contains AnyCase ("a",4,"b")',
     Or((P("F", Op.CONTAINS, "a"), P("F", Op.CONTAINS, "4"), P("F", Op.CONTAINS, "b")))),
    ("F In (4,8)", Or((P("F", Op.EQUALS, "4"), P("F", Op.EQUALS, "8")))),
    ("F In (-1,2.5)", Or((P("F", Op.EQUALS, "-1"), P("F", Op.EQUALS, "2.5")))),
    ('F In ("a*b")', P("F", Op.EQUALS, "a*b")),  # no wildcards in lists
    # RegExp: '\\' is one backslash (L3), a raw '"' stays inside the regex
    ('F RegExp "\\\\d+"', P("F", Op.REGEX, "\\d+")),
    ('F RegExp "C:\\\\\\\\Windows"', P("F", Op.REGEX, "C:\\\\Windows")),
    ('F RegExp "-(W|R)\\\\s?(\\\\s|"|\')"', P("F", Op.REGEX, "-(W|R)\\s?(\\s|\"|')")),
    ('F RegExp "a"b"', P("F", Op.REGEX, 'a"b')),
    ('F RegExp "[a-zA-Z]\\\\^[a-zA-Z]"', P("F", Op.REGEX, "[a-zA-Z]\\^[a-zA-Z]")),
    ('F RegExp "(?i)powershell"', P("F", Op.REGEX, "(?i)powershell")),
    # nullary
    ("F IS NOT EMPTY", P("F", Op.NOT_EMPTY)),
    ("F EXISTS", P("F", Op.EXISTS)),
    ("NOT F EXISTS", Not(P("F", Op.EXISTS))),
    # comparisons (quoted number as emitted, bare number too)
    ('F < "4"', P("F", Op.LT, "4")),
    ('F <= "4"', P("F", Op.LE, "4")),
    ('F > "4"', P("F", Op.GT, "4")),
    ('F >= "4"', P("F", Op.GE, "4")),
    ("F > 4", P("F", Op.GT, "4")),
    ('F >= "-2.5"', P("F", Op.GE, "-2.5")),
]


@pytest.mark.parametrize("query,expected", OPERATOR_TABLE, ids=[q for q, _ in OPERATOR_TABLE])
def test_operator_table(query, expected):
    assert parse(query) == expected


def test_in_list_with_spaces_and_mixed_items():
    assert parse('F In ( "a" , 4 ,"b" )') == parse('F In ("a",4,"b")')


# -- precedence and parentheses ----------------------------------------------------------------

A, B, C, D = E("a"), E("b"), E("c"), E("d")

PRECEDENCE_TABLE = [
    ("a EXISTS AND b EXISTS OR c EXISTS AND d EXISTS", Or((And((A, B)), And((C, D))))),
    ("a EXISTS OR b EXISTS AND c EXISTS", Or((A, And((B, C))))),
    ("a EXISTS AND b EXISTS OR c EXISTS", Or((And((A, B)), C))),
    ("a EXISTS OR b EXISTS AND c EXISTS OR d EXISTS", Or((A, And((B, C)), D))),
    ("NOT a EXISTS AND b EXISTS", And((Not(A), B))),
    ("NOT a EXISTS OR b EXISTS", Or((Not(A), B))),
    ("a EXISTS AND NOT b EXISTS OR c EXISTS", Or((And((A, Not(B))), C))),
    ("a EXISTS OR NOT b EXISTS AND c EXISTS", Or((A, And((Not(B), C))))),
    ("NOT NOT a EXISTS", Not(Not(A))),
    ("NOT (a EXISTS OR b EXISTS)", Not(Or((A, B)))),
    ("NOT (a EXISTS) AND b EXISTS", And((Not(A), B))),
    ("(a EXISTS OR b EXISTS) AND c EXISTS", And((Or((A, B)), C))),
    ("a EXISTS AND (b EXISTS OR c EXISTS) AND d EXISTS", And((A, Or((B, C)), D))),
    ("a EXISTS OR b EXISTS OR c EXISTS", Or((A, B, C))),
    ("(a EXISTS OR b EXISTS) OR c EXISTS", Or((A, B, C))),
    ("a EXISTS AND (b EXISTS AND c EXISTS)", And((A, B, C))),
    ("((a EXISTS))", A),
    ("(a EXISTS)AND(b EXISTS)", And((A, B))),
    ('a In ("x","y") AND b EXISTS', And((Or((P("a", Op.EQUALS, "x"), P("a", Op.EQUALS, "y"))), B))),
    ('NOT a In ("x","y")', Not(Or((P("a", Op.EQUALS, "x"), P("a", Op.EQUALS, "y"))))),
    ("a EXISTS\nAND\tb EXISTS\r\nOR  c EXISTS", Or((And((A, B)), C))),
]


@pytest.mark.parametrize("query,expected", PRECEDENCE_TABLE, ids=[q for q, _ in PRECEDENCE_TABLE])
def test_precedence(query, expected):
    assert parse(query) == expected


# -- letter case of keywords and operators -----------------------------------------------------

CASE_TABLE = [
    ('a containscis "x" and b EXISTS', And((P("a", Op.CONTAINS, "x"), B))),
    ('a CONTAINSCIS "x" Or b exists', Or((P("a", Op.CONTAINS, "x"), B))),
    ('not a STARTSWITHcis "x"', Not(P("a", Op.STARTSWITH, "x"))),
    ('a EndsWithCis "x" aNd NoT b Exists', And((P("a", Op.ENDSWITH, "x"), Not(B)))),
    ('a in contains anycase ("x","y")', Or((P("a", Op.CONTAINS, "x"), P("a", Op.CONTAINS, "y")))),
    ('a IN CONTAINS ANYCASE ("x","y")', Or((P("a", Op.CONTAINS, "x"), P("a", Op.CONTAINS, "y")))),
    ('a iN ("x","y")', Or((P("a", Op.EQUALS, "x"), P("a", Op.EQUALS, "y")))),
    ("a is not empty", P("a", Op.NOT_EMPTY)),
    ("a Is Not Empty", P("a", Op.NOT_EMPTY)),
    ('a regexp "x"', P("a", Op.REGEX, "x")),
    ('a REGEXP "x"', P("a", Op.REGEX, "x")),
    ("a exists", A),
    ("a = False", P("a", Op.EQUALS, "false")),
]


@pytest.mark.parametrize("query,expected", CASE_TABLE, ids=[q for q, _ in CASE_TABLE])
def test_keyword_case(query, expected):
    assert parse(query) == expected


_TOKENS = [
    ("NOT", True), ("(", False), ("a", False), ("containsCIS", True), ('"x"', False), ("AND", True),
    ("b", False), ("In", True), ("Contains", True), ("AnyCase", True), ('("p","q")', False), (")", False),
    ("OR", True), ("c", False), ("IS", True), ("NOT", True), ("EMPTY", True), ("OR", True), ("d", False),
    ("RegExp", True), ('"r+"', False), ("AND", True), ("e", False), ("EXISTS", True), ("AND", True),
    ("f", False), ("startswithCIS", True), ('"s"', False), ("OR", True), ("g", False), ("endswithCIS", True),
    ('"t"', False), ("OR", True), ("h", False), ("In", True), ('("u")', False),
]


_KW_CHARS = sum(len(t) for t, kw in _TOKENS if kw)


@given(st.lists(st.booleans(), min_size=_KW_CHARS, max_size=_KW_CHARS))
def test_keywords_in_any_letter_case(flips):
    canonical_text = " ".join(t for t, _ in _TOKENS)
    bits = iter(flips)
    words = []
    for tok, is_kw in _TOKENS:
        if is_kw:
            tok = "".join(ch.swapcase() if next(bits) else ch for ch in tok)
        words.append(tok)
    assert parse(" ".join(words)) == parse(canonical_text)


# -- lexical rules L1, L2 ----------------------------------------------------------------------

L1_TABLE = [
    # a value ending in a backslash: '\"' + T closes the string
    ('F containsCIS "C:\\Program Files\\"', P("F", Op.CONTAINS, "C:\\Program Files\\")),
    ('F containsCIS "\\Windows\\" AND b EXISTS', And((P("F", Op.CONTAINS, "\\Windows\\"), B))),
    ('F containsCIS "\\Windows\\" or b EXISTS', Or((P("F", Op.CONTAINS, "\\Windows\\"), B))),
    ('(F containsCIS "x\\")', P("F", Op.CONTAINS, "x\\")),
    ('(b EXISTS AND (F endswithCIS "x\\")) OR c EXISTS', Or((And((B, P("F", Op.ENDSWITH, "x\\"))), C))),
    ('F = "C:\\dir\\"', P("F", Op.EQUALS, "C:\\dir\\")),
    # otherwise an escaped quote
    ('F containsCIS "say \\"hi\\" now"', P("F", Op.CONTAINS, 'say "hi" now')),
    ('F containsCIS "\\"quoted\\""', P("F", Op.CONTAINS, '"quoted"')),
    ('F containsCIS "a\\"b" AND b EXISTS', And((P("F", Op.CONTAINS, 'a"b'), B))),
    ('F containsCIS "\\"AND x"', P("F", Op.CONTAINS, '"AND x')),  # 'AND' needs whitespace before it
    ('F containsCIS "\\" ANDROID"', P("F", Op.CONTAINS, '" ANDROID')),  # 'ANDROID' is not 'AND'
    # ',' is part of T only inside lists
    ('F containsCIS "AMMYY\\aa_nts.dll\\",run"', P("F", Op.CONTAINS, 'AMMYY\\aa_nts.dll",run')),
    ('F In Contains AnyCase ("AMMYY\\aa_nts.dll\\",run","x")',
     Or((P("F", Op.CONTAINS, 'AMMYY\\aa_nts.dll",run'), P("F", Op.CONTAINS, "x")))),
    ('F In ("C:\\dir\\","x")', Or((P("F", Op.EQUALS, "C:\\dir\\"), P("F", Op.EQUALS, "x")))),
    ('F In ("C:\\dir\\",5)', Or((P("F", Op.EQUALS, "C:\\dir\\"), P("F", Op.EQUALS, "5")))),
    ('F In ("x","C:\\dir\\")', Or((P("F", Op.EQUALS, "x"), P("F", Op.EQUALS, "C:\\dir\\")))),
    ('F In ("C:\\dir\\") AND b EXISTS', And((P("F", Op.EQUALS, "C:\\dir\\"), B))),
    # a lone backslash is a literal backslash
    ('F containsCIS "\\\\server\\share"', P("F", Op.CONTAINS, "\\\\server\\share")),
]


@pytest.mark.parametrize("query,expected", L1_TABLE, ids=[q for q, _ in L1_TABLE])
def test_rule_L1(query, expected):
    assert parse(query) == expected


L2_TABLE = [
    ('F containsCIS "a\\*b"', P("F", Op.CONTAINS, "a*b")),
    ('F startswithCIS "\\*"', P("F", Op.STARTSWITH, "*")),
    ('F endswithCIS "x\\*"', P("F", Op.ENDSWITH, "x*")),
    ('F containsCIS "a*b"', P("F", Op.CONTAINS, "a*b")),  # no wildcards outside '='
    ('F In ("a\\*b","c")', Or((P("F", Op.EQUALS, "a*b"), P("F", Op.EQUALS, "c")))),
    ('F In Contains AnyCase ("a\\*b","c")', Or((P("F", Op.CONTAINS, "a*b"), P("F", Op.CONTAINS, "c")))),
    # in '=' values '\*' is a backslash followed by a wildcard
    ('F = "C:\\Users\\*\\x"', P("F", Op.GLOB, Glob.of("C:\\Users\\", Wild.ANY, "\\x"))),
    ('F = "a\\*b"', P("F", Op.GLOB, Glob.of("a\\", Wild.ANY, "b"))),
    ('F = "\\*"', P("F", Op.GLOB, Glob.of("\\", Wild.ANY))),
]


@pytest.mark.parametrize("query,expected", L2_TABLE, ids=[q for q, _ in L2_TABLE])
def test_rule_L2(query, expected):
    assert parse(query) == expected


# -- literals and field names ------------------------------------------------------------------

LITERAL_TABLE = [
    ('F containsCIS "İß\u212aſ\u200f–—―"', P("F", Op.CONTAINS, "İß\u212aſ\u200f–—―")),
    ('F In Contains AnyCase (" –c"," —c")', Or((P("F", Op.CONTAINS, " –c"), P("F", Op.CONTAINS, " —c")))),
    ('F = "日本語"', P("F", Op.EQUALS, "日本語")),
    ('F containsCIS "😀"', P("F", Op.CONTAINS, "😀")),
    ('F containsCIS "tab\there\x01"', P("F", Op.CONTAINS, "tab\there\x01")),
    ('F containsCIS "a\nb"', P("F", Op.CONTAINS, "a\nb")),
    ('F containsCIS "it\'s"', P("F", Op.CONTAINS, "it's")),
    ('F containsCIS " AND "', P("F", Op.CONTAINS, " AND ")),
    ('F containsCIS "(x) OR (y)"', P("F", Op.CONTAINS, "(x) OR (y)")),
    ("'my field' containsCIS \"x\"", P("my field", Op.CONTAINS, "x")),
    ("'it\\'s' EXISTS", P("it's", Op.EXISTS)),
    ("'not' EXISTS", P("not", Op.EXISTS)),
    ("'AND' EXISTS AND 'or' EXISTS", And((E("AND"), E("or")))),
    ("'a-b' EXISTS", E("a-b")),
    ('src.process.image.path endswithCIS "\\cmd.exe"', P("src.process.image.path", Op.ENDSWITH, "\\cmd.exe")),
    ("event.dns.request EXISTS AND NOT tgt.file.path EXISTS", And((E("event.dns.request"), Not(E("tgt.file.path"))))),
    ('Ünïcödé containsCIS "x"', P("Ünïcödé", Op.CONTAINS, "x")),
    ("NOTE EXISTS", E("NOTE")),  # a field whose name starts with a keyword
    ("ORDER EXISTS AND ANDY EXISTS", And((E("ORDER"), E("ANDY")))),
    ("In EXISTS", E("In")),
]


@pytest.mark.parametrize("query,expected", LITERAL_TABLE, ids=[repr(q) for q, _ in LITERAL_TABLE])
def test_literals_and_fields(query, expected):
    assert parse(query) == expected


# -- size and nesting limits -------------------------------------------------------------------


def test_one_megabyte_query():
    n = 30_000
    q = " OR ".join(f'TgtProcCmdLine containsCIS "value-{i:05d}"' for i in range(n))
    assert len(q) > 1_000_000
    node = parse(q)
    assert isinstance(node, Or) and len(node.items) == n
    assert node.items[12_345] == P("TgtProcCmdLine", Op.CONTAINS, "value-12345")
    assert ir.depth(node) == 1


def test_one_megabyte_in_list():
    n = 60_000
    q = "TgtProcCmdLine In Contains AnyCase (" + ",".join(f'"v{i:06d}\\"' for i in range(n)) + ")"
    assert len(q) > 600_000
    node = parse(q)
    assert isinstance(node, Or) and len(node.items) == n
    assert node.items[-1] == P("TgtProcCmdLine", Op.CONTAINS, f"v{n - 1:06d}\\")


def test_ten_thousand_parentheses():
    k = 10_000
    assert parse("(" * k + 'F containsCIS "x"' + ")" * k) == P("F", Op.CONTAINS, "x")
    q = "(" * k + "a EXISTS" + ")" * k + " AND " + "(" * k + "b EXISTS" + ")" * k
    assert parse(q) == And((A, B))


def test_ten_thousand_nots_is_a_syntax_error():
    with pytest.raises(QuerySyntaxError):
        parse("NOT " * 10_000 + "a EXISTS")
    with pytest.raises(QuerySyntaxError):
        parse("NOT (" * 10_000 + "a EXISTS" + ")" * 10_000)


def _alternating(levels: int) -> str:
    """levels of (bN EXISTS AND|OR (...)) around 'a EXISTS', built without recursion."""
    head = []
    for i in range(levels):
        head.append(f"(b{i} EXISTS {'AND' if i % 2 else 'OR'} ")
    return "".join(head) + "a EXISTS" + ")" * levels


def test_alternating_and_or_deeper_than_max_depth_is_a_syntax_error():
    with pytest.raises(QuerySyntaxError):
        parse(_alternating(10_000))
    with pytest.raises(QuerySyntaxError):
        parse(_alternating(ir.MAX_DEPTH + 1))


def test_nesting_up_to_max_depth_parses():
    node = parse(_alternating(ir.MAX_DEPTH))
    assert ir.depth(node) == ir.MAX_DEPTH
    node = parse("NOT " * ir.MAX_DEPTH + "a EXISTS")
    assert ir.depth(node) == ir.MAX_DEPTH
    with pytest.raises(QuerySyntaxError):
        parse("NOT " * (ir.MAX_DEPTH + 1) + "a EXISTS")


def test_same_kind_nesting_flattens_and_does_not_count_as_depth():
    k = 1_000
    q = "(" * k + "a0 EXISTS" + "".join(f" AND a{i} EXISTS)" for i in range(1, k + 1))
    node = parse(q)
    assert isinstance(node, And) and len(node.items) == k + 1
    assert ir.depth(node) == 1
