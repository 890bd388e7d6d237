"""Hypothesis strategies shared by the matcher test-suite (parser, printer, differential tests).

Import them with ``from strategies import ir_nodes, events`` (``tests/`` is on ``sys.path``
under pytest's default import mode).

Public strategies
-----------------

``fields()``
    A field name from :data:`FIELDS`: plain S1 names, a dotted name (``src.process.name``,
    which events may carry as a flat key or as a nested path), a name with a space
    (``my field``) and keyword-like names (``not``, ``AND``, ``In``) that the printer must quote.

``literals()``
    A string literal biased toward S1QL's lexical traps: quotes, backslashes, trailing
    backslashes, ``*``, the empty string, ``" AND `` / ``,"`` sequences, and non-ASCII
    characters whose ``lower()`` changes length or maps outside ASCII (``İ``, ``ß``, KELVIN
    SIGN, long s, RTL mark), plus arbitrary ``st.text()``.

``regexes()``
    A pattern that compiles with Python's ``re`` (a pool of corpus-like patterns, including a
    raw ``"`` and doubled backslashes, plus ``re.escape`` of arbitrary text).

``numbers()``
    The text of a number that the parser accepts as the operand of ``<``/``<=``/``>``/``>=``.

``globs(s1ql_only=True)``
    A :class:`matcher.ir.Glob` with at least one wildcard. With ``s1ql_only=True`` only what an
    S1QL ``=`` value can express (``Wild.ANY``, no literal ``*``); with ``False`` it may also
    hold ``Wild.ONE`` and literal stars (valid IR that the printer must refuse).

``predicates(s1ql_only=True)``
    One :class:`matcher.ir.Pred` of any operator with a value of the right kind.

``ir_nodes(max_leaves=12, max_depth=12, s1ql_only=True)``
    A valid IR tree (``ir.validate`` holds): built with ``ir.and_``/``ir.or_`` so it is
    flattened, with ``Not`` anywhere, same-field ``Or`` lists (what ``In (...)`` parses to),
    and logical depth at most ``max_depth`` (far below ``ir.MAX_DEPTH``). Even with
    ``s1ql_only=True`` a few literals (e.g. ``x" AND y``) cannot be printed as S1QL, so
    ``to_s1ql`` may raise ``UnprintableQueryError`` for a small fraction of trees.

``field_values()``
    One value as JSON would decode it, and then some: strings from the literal pool with their
    case changed, ``None``, ints (including one too long for ``str()``), floats (including NaN
    and infinities), bools, lists, nested dicts, lone surrogates and ``"\\x00"``.

``events(fields=FIELDS)``
    A ``dict`` event over the same field pool: each field missing or present, dotted fields
    either as a flat key, as a nested path of dicts, or both, or as a path through lists of
    mappings (with non-mapping elements and lists of lists among them), plus some unrelated keys.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from matcher import ir
from matcher.ir import Glob, Op, Pred, Wild
from matcher.ops import is_linear

__all__ = [
    "FIELDS",
    "DOTTED_FIELD",
    "LITERAL_POOL",
    "REGEX_POOL",
    "fields",
    "literals",
    "regexes",
    "numbers",
    "globs",
    "predicates",
    "ir_nodes",
    "field_values",
    "events",
]

#: The dotted field of the pool (events may hold it flat or as a nested path).
DOTTED_FIELD = "src.process.name"

#: Field names used by both ``ir_nodes()`` and ``events()``.
FIELDS: tuple[str, ...] = (
    "TgtProcCmdLine",
    "SrcProcImagePath",
    DOTTED_FIELD,
    "my field",
    "not",
    "AND",
    "In",
)

#: Literal pieces that stress the S1QL lexer (rules L1 to L3) and Unicode folding.
LITERAL_POOL: tuple[str, ...] = (
    "",
    "a",
    "cmd.exe",
    "\\",
    "C:\\Windows\\",
    "\\cmd.exe",
    '"',
    '\\"',
    '"\\',
    '\\"x',
    "*",
    "\\*",
    "x*y",
    "**",
    " AND ",
    " OR ",
    " and ",
    ")",
    "(",
    ",",
    '","',
    ",1",
    "'",
    "AND",
    "NOT",
    "İ",
    "ß",
    "\u212a",  # KELVIN SIGN, lower() is ASCII 'k'
    "ſ",  # LATIN SMALL LETTER LONG S
    "\u200f",  # RIGHT-TO-LEFT MARK
    "–",  # EN DASH (windash)
    "\t",
    "\n",
    "\x00",
)

#: Regular expressions RE2 runs (corpus-like, plus traps for the L3 rule).
REGEX_POOL: tuple[str, ...] = (
    "a",
    "\\d+",
    "\\\\",
    "C:\\\\Windows\\\\",
    "-(W|R)\\s?(\\s|\"|')",
    'a"b',
    '"',
    "[\"']",
    "(?i)powershell",
    "^$",
    ".*",
    "\\x41",
    "[a-zA-Z]\\^[a-zA-Z]",
    "İß",
    "\\*",
)


def fields() -> st.SearchStrategy[str]:
    """A field name from :data:`FIELDS`."""
    return st.sampled_from(FIELDS)


def literals() -> st.SearchStrategy[str]:
    """A literal string, heavily biased toward quotes, backslashes, stars and non-ASCII."""
    piece = st.one_of(st.sampled_from(LITERAL_POOL), st.text(max_size=4))
    return st.one_of(
        st.sampled_from(LITERAL_POOL),
        st.lists(piece, min_size=1, max_size=5).map("".join),
        st.text(),
    )


def regexes() -> st.SearchStrategy[str]:
    """A regular expression RE2 runs (what a rule may hold without opting in to backtracking)."""
    return st.one_of(
        st.sampled_from(REGEX_POOL),
        st.text(max_size=10).map(re.escape).filter(is_linear),  # not a lone surrogate
        st.lists(st.sampled_from(REGEX_POOL), min_size=1, max_size=3).map("|".join).filter(is_linear),
    )


def numbers() -> st.SearchStrategy[str]:
    """The text of a number (what ``<``, ``<=``, ``>``, ``>=`` take)."""
    return st.one_of(
        st.integers(min_value=-(10**12), max_value=10**12).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["0", "-1", "4", "0.5", "-3.25", "10"]),
    )


def globs(s1ql_only: bool = True) -> st.SearchStrategy[Glob]:
    """A ``Glob`` with at least one wildcard (see the module docstring for ``s1ql_only``)."""
    if s1ql_only:
        text = literals().map(lambda s: s.replace("*", ""))
        wild = st.just(Wild.ANY)
    else:
        text = literals()
        wild = st.sampled_from([Wild.ANY, Wild.ONE])
    part = st.one_of(text, wild)
    return (
        st.tuples(st.lists(part, max_size=4), wild, st.lists(part, max_size=4))
        .map(lambda t: Glob.of(*t[0], t[1], *t[2]))
    )


def predicates(s1ql_only: bool = True) -> st.SearchStrategy[Pred]:
    """One predicate, any operator, with a value of the right kind."""
    f = fields()
    return st.one_of(
        st.builds(Pred, f, st.sampled_from([Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.EQUALS]), literals()),
        st.builds(Pred, f, st.just(Op.EQUALS), st.sampled_from(["true", "false", "4", "-1.5"])),
        st.builds(Pred, f, st.just(Op.GLOB), globs(s1ql_only)),
        st.builds(Pred, f, st.just(Op.REGEX), regexes()),
        st.builds(Pred, f, st.sampled_from([Op.NOT_EMPTY, Op.EXISTS])),
        st.builds(Pred, f, st.sampled_from([Op.LT, Op.LE, Op.GT, Op.GE]), numbers()),
    )


def ir_nodes(max_leaves: int = 12, max_depth: int = 12, s1ql_only: bool = True) -> st.SearchStrategy[ir.Node]:
    """A valid, flattened IR tree (``ir.validate`` passes) of logical depth <= ``max_depth``."""
    assert max_depth < ir.MAX_DEPTH

    def extend(children: st.SearchStrategy[ir.Node]) -> st.SearchStrategy[ir.Node]:
        group = st.lists(children, min_size=2, max_size=4)
        return st.one_of(
            group.map(lambda xs: ir.and_(*xs)),
            group.map(lambda xs: ir.or_(*xs)),
            children.map(ir.not_),
            # Same-field lists, as S1QL's In (...) and In Contains AnyCase (...) produce.
            st.tuples(fields(), st.sampled_from([Op.EQUALS, Op.CONTAINS]), st.lists(literals(), min_size=2, max_size=4)).map(
                lambda t: ir.or_(*(Pred(t[0], t[1], v) for v in t[2]))
            ),
        )

    return st.recursive(predicates(s1ql_only), extend, max_leaves=max_leaves).filter(
        lambda n: ir.depth(n) <= max_depth
    )


# -- events ------------------------------------------------------------------------------------

_CASE_CHANGES = (str, str.lower, str.upper, str.swapcase, str.title, str.casefold)


def _huge_int() -> int:
    """An int with more digits than ``sys.get_int_max_str_digits()`` allows by default."""
    return 10**5000


_SPECIAL_TEXT = ("\ud800", "\udfff", "a\ud83dz", "\x00", "a\x00b", "", "true", "false", "TRUE", "4", "-1.5", "1e3", "nan")


def _text_values() -> st.SearchStrategy[str]:
    cased = st.tuples(literals(), st.sampled_from(_CASE_CHANGES)).map(lambda t: t[1](t[0]))
    around = st.tuples(st.text(max_size=3), cased, st.text(max_size=3)).map("".join)
    return st.one_of(cased, around, st.sampled_from(_SPECIAL_TEXT), numbers(), st.text())


def _scalars() -> st.SearchStrategy[object]:
    return st.one_of(
        _text_values(),
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 4, 2**63, -(2**63) - 1]),
        st.builds(_huge_int),
        st.floats(),  # NaN and infinities included
    )


def field_values() -> st.SearchStrategy[object]:
    """One field value: a scalar, ``None``, a list of values or a nested dict."""
    return _FIELD_VALUES


_TEXT = _text_values()
_NESTED = st.recursive(
    _scalars(),
    lambda c: st.one_of(
        st.lists(c, max_size=3),
        st.dictionaries(st.sampled_from(["process", "name", "x", ""]), c, max_size=2),
    ),
    max_leaves=4,
)
_FIELD_VALUES = st.one_of(
    _TEXT,  # strings first: they are what rules match on
    _scalars(),
    st.lists(_NESTED, max_size=3),  # multi-valued fields (possibly empty, or holding no scalar)
    st.dictionaries(st.sampled_from(["process", "name", "x", ""]), _NESTED, max_size=2),  # absent
)


def _nest(path: str, value: object) -> dict:
    out: object = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out  # type: ignore[return-value]


_NOT_MAPPINGS = st.one_of(st.none(), st.integers(-2, 2), st.text(max_size=2), st.just([]))


def _listed(draw, parts: list[str], values) -> object:
    """A node that the path ``parts`` walks from: a mapping holding ``parts[0]``, or a list
    of several such mappings (a path step meets a list), with sometimes a mapping that lacks
    the key, an element that is not a mapping, or a list of lists among them."""
    if not parts:
        return draw(values)

    def one() -> dict:
        node = {parts[0]: _listed(draw, parts[1:], values)}
        if draw(st.integers(0, 5)) == 0:
            del node[parts[0]]  # a mapping the path reaches nothing in
        return node

    if not draw(st.booleans()):
        return one()
    items: list = [one() for _ in range(draw(st.integers(0, 3)))]
    for _ in range(draw(st.integers(0, 1))):
        extra = [one()] if draw(st.booleans()) else draw(_NOT_MAPPINGS)
        items.insert(draw(st.integers(0, len(items))), extra)
    return items


@st.composite
def events(draw, fields: tuple[str, ...] = FIELDS) -> dict:
    """A ``dict`` event over ``fields`` (dotted names flat, nested, through lists of mappings,
    or flat and nested; any may be missing)."""
    event: dict = {}
    values = field_values()
    for name in fields:
        how = draw(st.sampled_from(["missing", "flat", "nested", "both", "listed"] if "." in name else ["missing", "flat"]))
        if how in ("flat", "both"):
            event[name] = draw(values)
        if how in ("nested", "both"):
            nested = _nest(name, draw(values))
            top = next(iter(nested))
            if draw(st.booleans()):  # sometimes a sibling key in the nested mapping
                nested[top]["other"] = draw(values)
            event[top] = nested[top]
        if how == "listed":
            top, *rest = name.split(".")
            event[top] = _listed(draw, rest, values)
    extra = draw(st.dictionaries(st.text(max_size=5), values, max_size=1))
    for k, v in extra.items():
        event.setdefault(k, v)
    return event
