"""Rule IR -> canonical S1QL text, such that parsing the text gives the same IR.

Canonical form: keywords and operators in the case the SentinelOne backend emits, one space
between tokens, parentheses where precedence needs them and around an AND inside an OR, and an ``Or`` of ``=``
(``containsCIS``) predicates on one field written as ``In (...)`` (``In Contains AnyCase``).

S1QL's escaping is ambiguous (``docs/s1ql-spec.md`` §5): the backend never escapes a
backslash, so a few values cannot be written so that they read back. The printer checks each
literal it writes and raises :class:`~matcher.errors.UnprintableQueryError` for those
instead of printing a query that means something else. ``DESIGN.md`` lists them.
"""

from __future__ import annotations

import re

from ..errors import UnprintableQueryError
from ..ir import And, Glob, Node, Not, Op, Or, Pred, Wild
from .lexer import EQ, FIELD, PLAIN, REGEX, read_string

__all__ = ["to_s1ql"]

_OPS = {
    Op.CONTAINS: "containsCIS",
    Op.STARTSWITH: "startswithCIS",
    Op.ENDSWITH: "endswithCIS",
    Op.REGEX: "RegExp",
    Op.LT: "<",
    Op.LE: "<=",
    Op.GT: ">",
    Op.GE: ">=",
}
_KEYWORDS = {"and", "or", "not"}
_FIELD_ESCAPE = re.compile(r"[\\'\s]")


def _field(name: str) -> str:
    if not name:
        raise UnprintableQueryError("an empty field name cannot be written in S1QL")
    if FIELD.fullmatch(name) and name.lower() not in _KEYWORDS:
        return name
    return "'" + _FIELD_ESCAPE.sub(lambda m: "\\" + m.group(), name) + "'"


def _checked(token: str, value, mode: int, in_list: bool) -> str:
    """Return ``token`` if the lexer reads it back as ``value``; raise otherwise."""
    try:
        got, end = read_string(token, 0, mode, in_list)
    except Exception:  # noqa: BLE001 - any failure to read back means unprintable
        got, end = None, -1
    if got != value or end != len(token):
        raise UnprintableQueryError(
            f"the value {value!r} cannot be written as an S1QL literal that reads back the same "
            "(S1QL does not escape backslashes; see DESIGN.md, 'Printing')"
        )
    return token


def _string(value: str, in_list: bool = False) -> str:
    token = '"' + value.replace('"', '\\"').replace("*", "\\*") + '"'
    return _checked(token, value, PLAIN, in_list)


def _glob(glob: Glob) -> str:
    out = []
    for p in glob.parts:
        if p is Wild.ANY:
            out.append("*")
        elif p is Wild.ONE or "*" in p:
            raise UnprintableQueryError(
                f"the pattern {glob!r} has a single-character wildcard or a literal '*', "
                "which an S1QL '=' value cannot express"
            )
        else:
            out.append(p.replace('"', '\\"'))
    token = '"' + "".join(out) + '"'
    return _checked(token, glob, EQ, False)


def _regex(value: str) -> str:
    token = '"' + value.replace("\\", "\\\\") + '"'
    return _checked(token, value, REGEX, False)


#: Operators S1QL has: every other (the Sigma operators of ``docs/sigma.md``) has no S1QL text.
PRINTABLE_OPS = frozenset(_OPS) | {Op.EXISTS, Op.NOT_EMPTY, Op.GLOB, Op.EQUALS}


def _pred(p: Pred) -> str:
    op = p.op
    if op not in PRINTABLE_OPS:
        raise UnprintableQueryError(f"the operator {op.value!r} (Sigma) has no S1QL form")
    f = _field(p.field)
    if op is Op.EXISTS:
        return f"{f} EXISTS"
    if op is Op.NOT_EMPTY:
        return f"{f} IS NOT EMPTY"
    if op is Op.GLOB:
        return f"{f} = {_glob(p.value)}"
    if op is Op.EQUALS:
        if "*" in p.value:  # a literal star only survives in an In-list
            return f"{f} In ({_string(p.value, True)})"
        return f"{f} = {_checked(_string(p.value), p.value, EQ, False)}"
    if op is Op.REGEX:
        return f"{f} RegExp {_regex(p.value)}"
    return f"{f} {_OPS[op]} {_string(p.value)}"


def _as_list(node: Or):
    """``F In (...)`` / ``F In Contains AnyCase (...)`` when every item allows it, else None."""
    first = node.items[0]
    if not isinstance(first, Pred) or first.op not in (Op.EQUALS, Op.CONTAINS):
        return None
    for it in node.items:
        if not isinstance(it, Pred) or it.op is not first.op or it.field != first.field:
            return None
    try:
        items = ",".join(_string(it.value, True) for it in node.items)
    except UnprintableQueryError:  # fall back to an OR of single predicates
        return None
    kw = "In" if first.op is Op.EQUALS else "In Contains AnyCase"
    return f"{_field(first.field)} {kw} ({items})"


def to_s1ql(node: Node) -> str:
    """Canonical S1QL for ``node``."""
    if isinstance(node, Pred):
        return _pred(node)
    if isinstance(node, Not):
        inner = node.item
        text = to_s1ql(inner)
        if isinstance(inner, (And, Or)) and not (isinstance(inner, Or) and _as_list(inner)):
            text = f"({text})"
        return f"NOT {text}"
    if isinstance(node, Or):
        listed = _as_list(node)
        if listed is not None:
            return listed
        # And binds tighter than Or; the parentheses are for the reader.
        return " OR ".join(f"({to_s1ql(c)})" if isinstance(c, And) else to_s1ql(c) for c in node.items)
    if isinstance(node, And):
        parts = []
        for c in node.items:
            t = to_s1ql(c)
            if isinstance(c, Or) and not _as_list(c):
                t = f"({t})"
            parts.append(t)
        return " AND ".join(parts)
    raise TypeError(f"not an IR node: {node!r}")
