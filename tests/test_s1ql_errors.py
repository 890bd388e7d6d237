"""Malformed queries: QuerySyntaxError with the right position, a readable message, no other crash."""

from __future__ import annotations

import re
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

import matcher
from matcher import MatcherError, QuerySyntaxError, RuleError, UnprintableQueryError
from matcher.s1ql import parse


def syntax_error(query: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    return info.value


def check_position(err: QuerySyntaxError, query: str) -> None:
    """line/column agree with offset, and str(err) shows the offending line with a caret under it."""
    assert 0 <= err.offset <= len(query)
    assert err.line == query.count("\n", 0, err.offset) + 1
    line_start = query.rfind("\n", 0, err.offset) + 1
    assert err.column == err.offset - line_start + 1
    text = str(err)
    assert err.message in text
    lines = text.split("\n")
    assert len(lines) >= 3
    shown, caret = lines[-2], lines[-1]
    assert caret.strip() == "^"
    col = caret.index("^")
    at = query[err.offset] if err.offset < len(query) else "\n"
    if at != "\n":
        expected = at if (at.isprintable() or at == "\t") else "?"
        assert shown[col] == expected, (text, err.offset)


# -- table of malformed queries ------------------------------------------------------------------

# (query, expected offset, words the message must contain)
ERROR_TABLE = [
    # unclosed quote: reported at the opening quote
    ('F containsCIS "abc', 14, ["unterminated"]),
    ('F = "abc', 4, ["unterminated"]),
    ('a EXISTS AND F In ("x","y)', 23, ["unterminated"]),
    ('F RegExp "abc', 9, ["unterminated"]),
    ("'my field EXISTS", 0, ["unterminated"]),
    # unbalanced parentheses
    ("(a EXISTS", 0, ["("]),
    ("a EXISTS AND (b EXISTS", 13, ["("]),
    ("((a EXISTS) AND (b EXISTS)", 0, ["("]),
    ("a EXISTS)", 8, [")"]),
    ('a containsCIS "x" AND (b EXISTS))', 32, [")"]),
    ("()", 1, []),
    # dangling AND / OR / NOT
    ("a EXISTS AND", 12, ["AND"]),
    ("a EXISTS OR ", 12, ["OR"]),
    ("NOT", 3, ["NOT"]),
    ("a EXISTS AND NOT", 16, ["NOT"]),
    ("AND a EXISTS", 0, ["AND"]),
    ("OR a EXISTS", 0, ["OR"]),
    ("a EXISTS AND OR b EXISTS", 13, ["OR"]),
    ("a EXISTS NOT b EXISTS", 9, ["NOT"]),
    ("(a EXISTS AND) OR b EXISTS", 13, []),
    # unknown operators: the message names them
    ('F containsXYZ "x"', 2, ["containsXYZ"]),
    ('F contains "x"', 2, ["contains"]),
    ('F != "x"', 2, ["!="]),
    ('F == "x"', 2, ["=="]),
    ('F Between "1"', 2, ["Between"]),
    ('F NotIn ("x")', 2, ["NotIn"]),
    ("F IS EMPTY", 2, ["IS NOT EMPTY"]),
    ('F In Contains ("x")', 14, ["AnyCase"]),
    ("F", 1, ["operator"]),
    # missing or wrong operands
    ("F containsCIS", 13, []),
    ("F containsCIS x", 14, []),
    ("F containsCIS 4", 14, []),
    ("F In ()", 6, []),
    ('F In ("x",)', 10, []),
    ('F In ("x" "y")', 10, []),
    ('F In "x"', 5, ["("]),
    ('"bare keyword"', 0, []),
    ("a EXISTS b EXISTS", 9, []),
    ("'' EXISTS", 0, []),
    ('a containsCIS "x" AND NOT', 25, ["NOT"]),
    # bad regular expressions: reported at the regex
    ('F RegExp "(abc"', 9, ["regular expression"]),
    ('F RegExp "[a-"', 9, ["regular expression"]),
    ('a EXISTS AND F RegExp "a{2,1}"', 22, ["regular expression"]),
    ("F RegExp x", 9, []),
    # comparison with a non-number
    ('F > "abc"', 4, ["number"]),
    ('F >= ""', 5, ["number"]),
    ("F < abc", 4, ["number"]),
    ('F <= "4x"', 5, ["number"]),
    # control characters outside strings
    ("a EXISTS \x01 AND b EXISTS", 9, ["U+0001"]),
    ("a EXISTS AND \x00b EXISTS", 13, ["U+0000"]),
    ("\x7fa EXISTS", 0, []),
    ("a\x07 EXISTS", 1, []),
    ('a containsCIS "x" \x1b', 18, []),
    # keywords are ASCII words in any letter case: the non-ASCII letters that Python's re
    # matches to s, i and k under IGNORECASE (long s, dotless i, dotted I, Kelvin sign) are not
    ("F = falſe", 4, ["true or false"]),
    ("F = TRUE AND G = \u0131true", 17, []),
    ('F In Contains Anycaſe ("x")', 14, ["AnyCase"]),
    ('F In Contaınſ AnyCase ("x")', 5, []),
    ("F ıs NOT EMPTY", 2, ["operator"]),
    ("F EXıSTS", 2, ["operator"]),
]


@pytest.mark.parametrize("query,offset,words", ERROR_TABLE, ids=[repr(q) for q, _, _ in ERROR_TABLE])
def test_error_table(query, offset, words):
    err = syntax_error(query)
    assert (err.offset, err.line, err.column) == (offset, 1, offset + 1), err.message
    for w in words:
        assert w in err.message
    check_position(err, query)


@pytest.mark.parametrize("query", ["", " ", "   \n\t ", "\n\n", "\r\n"])
def test_empty_and_whitespace_only(query):
    err = syntax_error(query)
    check_position(err, query)
    with pytest.raises(QuerySyntaxError):
        matcher.compile(query)


@pytest.mark.parametrize("regex", ["[[matcher]", "[a--b]", "[a&&b]", "[a||b]", "[a~~b]"])
def test_regex_warnings_do_not_escape_parse(regex):
    """A regex that makes ``re`` warn (FutureWarning: possible nested set / set operation) must
    still give a predicate or a QuerySyntaxError, also when warnings are errors (as in this suite)."""
    re.purge()  # the warning is only issued when the pattern is actually compiled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            node = parse(f'F RegExp "{regex}"')
        except QuerySyntaxError:
            return
    assert node == matcher.ir.Pred("F", matcher.ir.Op.REGEX, regex)


def test_control_characters_inside_strings_are_fine():
    assert parse('a containsCIS "\x00\x01\x1b"').value == "\x00\x01\x1b"


# -- multi-line queries --------------------------------------------------------------------------

MULTILINE = [
    ('a EXISTS\nAND b EXISTS\nAND c containsXYZ "q"', 3, 7, "AND c containsXYZ"),
    ('a EXISTS\r\nAND b EXISTS\r\nAND c containsXYZ "q"', 3, 7, "AND c containsXYZ"),
    ('a EXISTS\n  AND (b EXISTS\n  OR c > "x")', 3, 10, '  OR c > "x")'),
    ("a EXISTS\nAND (b EXISTS\nOR c EXISTS", 2, 5, "AND (b EXISTS"),
    ('a EXISTS\nAND\nb containsCIS "unterminated\nAND c EXISTS', 3, 15, 'b containsCIS "unterminated'),
    ("a EXISTS\n\n\nAND", 4, 4, "AND"),
]


@pytest.mark.parametrize("query,line,column,shown", MULTILINE, ids=[repr(q) for q, *_ in MULTILINE])
def test_multiline_position(query, line, column, shown):
    err = syntax_error(query)
    assert (err.line, err.column) == (line, column), str(err)
    lines = query.split("\n")
    assert err.offset == sum(len(x) + 1 for x in lines[: line - 1]) + column - 1
    check_position(err, query)
    text_lines = str(err).split("\n")
    assert any(shown in tl for tl in text_lines[:-1])
    assert f"line {line}" in str(err) and f"column {column}" in str(err)


def test_caret_in_a_long_line():
    q = " OR ".join(f'F{i} containsCIS "v{i}"' for i in range(2_000)) + ' OR G containsXYZ "x"'
    err = syntax_error(q)
    assert err.offset == q.index("containsXYZ")
    check_position(err, q)
    assert len(str(err).split("\n")[-2]) < 300  # the excerpt stays readable


# -- the exception tree --------------------------------------------------------------------------


def test_exception_hierarchy():
    assert issubclass(MatcherError, ValueError)
    for cls in (QuerySyntaxError, RuleError, UnprintableQueryError):
        assert issubclass(cls, MatcherError)


def test_syntax_errors_are_caught_as_value_error_and_matcher_error():
    with pytest.raises(ValueError):
        parse("a EXISTS AND")
    with pytest.raises(MatcherError):
        matcher.compile("a EXISTS AND")


def test_parse_rejects_non_str():
    with pytest.raises(TypeError):
        parse(b"a EXISTS")  # type: ignore[arg-type]


# -- never anything but QuerySyntaxError ---------------------------------------------------------


def _parse_or_syntax_error(text: str) -> None:
    try:
        node = parse(text)
    except QuerySyntaxError as err:
        check_position(err, text)
    else:
        matcher.ir.validate(node)


@given(st.text())
def test_arbitrary_text_only_raises_query_syntax_error(text):
    _parse_or_syntax_error(text)


@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from('"\'\\()*,= \n\x00'))))
def test_arbitrary_text_with_many_quotes_only_raises_query_syntax_error(text):
    _parse_or_syntax_error(text)


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_arbitrary_ascii_only_raises_query_syntax_error(text):
    _parse_or_syntax_error(text)


_SOUP = [
    "a", "F", "src.p.n", "'my f'", "'x\\'", " ", "\n", "\t", "(", ")", '"', '\\"', "\\", "\\\\", "*", "\\*",
    ",", ",\"", ",4", "4", "-1.5", "AND", "OR", "NOT", "and", "or", "not", " AND ", " OR ", "NOT ",
    "containsCIS", "startswithCIS", "endswithCIS", "=", "In", "Contains", "AnyCase", "RegExp", "IS", "EMPTY",
    "EXISTS", "<", "<=", ">", ">=", "true", "[", "(?", "{2,1}", "x", "\x00", "\x01", "İ", "\u200f", "'",
]


@given(st.lists(st.sampled_from(_SOUP), max_size=30).map("".join))
def test_token_soup_only_raises_query_syntax_error(text):
    _parse_or_syntax_error(text)


@given(
    st.lists(st.sampled_from(_SOUP), max_size=6).map("".join),
    st.sampled_from(['a containsCIS "', 'a In ("', "a RegExp \"", 'a = "', "a > ", "'"]),
)
def test_value_soup_only_raises_query_syntax_error(inside, prefix):
    for suffix in ('"', '")', '" AND b EXISTS', '","x")', ""):
        _parse_or_syntax_error(prefix + inside + suffix)


# -- errors in rule files ------------------------------------------------------------------------

CARD = """# broken_rule

## Title
Broken rule

## ID
11111111-2222-3333-4444-555555555555

## SentinelOne Query
```
TgtProcCmdLine containsCIS "a"
AND TgtProcImagePath containsXYZ "b"
```
"""


def test_card_error_reports_position_in_the_card(tmp_path):
    path = tmp_path / "broken_rule.md"
    path.write_text(CARD, encoding="utf-8")
    with pytest.raises(QuerySyntaxError) as info:
        matcher.load(path)
    err = info.value
    card_lines = CARD.split("\n")
    line_no = next(i for i, ln in enumerate(card_lines, 1) if "containsXYZ" in ln)
    assert err.line == line_no == 12
    assert err.column == card_lines[line_no - 1].index("containsXYZ") + 1
    assert CARD[err.offset :].startswith("containsXYZ")
    assert "containsXYZ" in err.message
    assert "broken_rule.md" in str(err)
    assert "AND TgtProcImagePath containsXYZ" in str(err)
    check_position(err, CARD)


def test_card_error_in_unterminated_group(tmp_path):
    card = CARD.replace('AND TgtProcImagePath containsXYZ "b"', 'AND (TgtProcImagePath containsCIS "b"\nOR x EXISTS')
    path = tmp_path / "broken.md"
    path.write_text(card, encoding="utf-8")
    with pytest.raises(QuerySyntaxError) as info:
        matcher.load(path)
    err = info.value
    assert err.line == 12 and err.column == 5  # the '(' that is never closed
    check_position(err, card)


def test_bare_query_file_error_reports_position_in_the_file(tmp_path):
    text = '\n\nTgtProcCmdLine containsCIS "a" AND (\n  b EXISTS OR c > "x")\n'
    path = tmp_path / "q.s1ql"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QuerySyntaxError) as info:
        matcher.load(path)
    err = info.value
    assert (err.line, err.column) == (4, 19)
    assert text[err.offset] == '"'
    assert "q.s1ql" in str(err)
    check_position(err, text)
