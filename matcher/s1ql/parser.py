"""S1QL (Deep Visibility v1) text -> rule IR.

The grammar and its lexical traps (rules L1 to L3) are in ``docs/s1ql-spec.md``; the choices
this parser makes where the spec leaves room are in ``DESIGN.md``. The parser is iterative
(an operator-precedence parser over an explicit stack), so neither a 1 MB query nor 10,000
levels of parentheses can exhaust Python's recursion limit; logical nesting deeper than
:data:`matcher.ir.MAX_DEPTH` is a :class:`~matcher.errors.QuerySyntaxError`.
"""

from __future__ import annotations

import re
from typing import Optional, Union

from ..errors import QuerySyntaxError
from ..ir import MAX_DEPTH, And, Glob, Node, Not, Op, Or, Pred, Wild, and_, or_
from ..ops import compile_regex, to_number

__all__ = ["parse"]

_WS = re.compile(r"[ \t\r\n\f\v]*")
_WS_CHARS = frozenset(" \t\r\n\f\v")
_FIELD = re.compile(r"\w+(?:\.\w+)*")
_OPWORD = re.compile(r"[A-Za-z]\w*|[<>=!]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?![\w.])")
_BOOL = re.compile(r"(?i:true|false)(?!\w)")
_KEYWORD = re.compile(r"(?i:AND|OR|NOT)(?![\w.])")
# What may follow a closing quote (rule L1/L3): ")"* then AND / OR / end of input.
_T = r"(?:[ \t\r\n\f\v]*\))*(?:[ \t\r\n\f\v]*\Z|[ \t\r\n\f\v]+(?i:AND|OR)(?![\w.])|(?<=\))(?i:AND|OR)(?![\w.]))"
_T_TOP = re.compile(_T)
# Inside an In-list: also ',"' and ',' + digit.
_T_LIST = re.compile(_T + r'|[ \t\r\n\f\v]*,[ \t\r\n\f\v]*(?:"|-?\d)')
_NOT_WORD = re.compile(r"(?i:NOT)(?!\w)")
_EMPTY_WORD = re.compile(r"(?i:EMPTY)(?!\w)")
_CONTAINS_WORD = re.compile(r"(?i:contains)(?!\w)")
_ANYCASE_WORD = re.compile(r"(?i:anycase)(?!\w)")
_SPECIAL = re.compile(r'[\\"*]')
_SPECIAL_RE = re.compile(r'[\\"]')

# Single-word operators, by lower-case spelling.
_WORD_OPS = {
    "containscis": Op.CONTAINS,
    "startswithcis": Op.STARTSWITH,
    "endswithcis": Op.ENDSWITH,
    "=": Op.EQUALS,
    "regexp": Op.REGEX,
    "exists": Op.EXISTS,
    "<": Op.LT,
    "<=": Op.LE,
    ">": Op.GT,
    ">=": Op.GE,
}
_KNOWN = (
    "containsCIS, startswithCIS, endswithCIS, =, In, In Contains AnyCase, RegExp, "
    "IS NOT EMPTY, EXISTS, <, <=, >, >="
)
_PREC = {"OR": 1, "AND": 2, "NOT": 3}

# Plain string modes.
_PLAIN, _EQ, _REGEX = 0, 1, 2


class _Parser:
    def __init__(self, text: str, source: Optional[str]):
        self.text = text
        self.source = source
        self.n = len(text)

    # -- helpers ---------------------------------------------------------------------------
    def fail(self, message: str, pos: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.text, pos, source=self.source)

    def ws(self, pos: int) -> int:
        text = self.text
        if pos >= self.n or text[pos] not in _WS_CHARS:  # the common cases, without a regex
            return pos
        if pos + 1 >= self.n or text[pos + 1] not in _WS_CHARS:
            return pos + 1
        return _WS.match(text, pos).end()

    def describe(self, pos: int) -> str:
        if pos >= self.n:
            return "end of query"
        ch = self.text[pos]
        if ch.isprintable() and not ch.isspace():
            m = _OPWORD.match(self.text, pos) or _FIELD.match(self.text, pos)
            if m:
                return repr(m.group())
            return repr(ch)
        return f"character U+{ord(ch):04X}"

    # -- strings ---------------------------------------------------------------------------
    def string(self, pos: int, mode: int, in_list: bool = False) -> tuple[Union[str, Glob], int]:
        """Decode the string literal whose opening quote is at ``pos``; return (value, end)."""
        text = self.text
        follow = _T_LIST if in_list else _T_TOP
        start = pos
        i = pos + 1
        parts: list[Union[str, Wild]] = []
        buf: list[str] = []
        special = _SPECIAL_RE if mode == _REGEX else _SPECIAL
        while True:
            m = special.search(text, i)
            if m is None:
                raise self.fail("unterminated string: expected a closing '\"'", start)
            j = m.start()
            if j > i:
                buf.append(text[i:j])
            ch = text[j]
            if mode == _REGEX:
                if ch == "\\":
                    # L3: "\\" is one backslash; a lone "\" is kept as it is.
                    buf.append("\\")
                    i = j + 2 if text.startswith("\\", j + 1) else j + 1
                    continue
                if follow.match(text, j + 1):
                    return "".join(buf), j + 1
                buf.append('"')
                i = j + 1
                continue
            if ch == '"':
                break
            if ch == "*":
                if mode == _EQ:
                    parts.append("".join(buf))
                    buf = []
                    parts.append(Wild.ANY)
                else:
                    buf.append("*")  # a raw "*" outside "=" is a literal star
                i = j + 1
                continue
            # Backslash.
            nxt = text[j + 1 : j + 2]
            if nxt == '"':
                if follow.match(text, j + 2):  # L1: a literal "\" and the closing quote
                    buf.append("\\")
                    j += 1
                    break
                buf.append('"')
                i = j + 2
            elif nxt == "*":
                if mode == _EQ:  # L2: backslash followed by a wildcard
                    buf.append("\\")
                    parts.append("".join(buf))
                    buf = []
                    parts.append(Wild.ANY)
                else:
                    buf.append("*")
                i = j + 2
            else:
                buf.append("\\")
                i = j + 1
        if mode == _EQ:
            parts.append("".join(buf))
            glob = Glob.of(*parts)
            if not glob.has_wildcards:
                return "".join(p for p in glob.parts if isinstance(p, str)), j + 1
            return glob, j + 1
        return "".join(buf), j + 1

    def expect_string_or_number(self, pos: int, mode: int, in_list: bool, what: str):
        if pos < self.n and self.text[pos] == '"':
            return self.string(pos, mode, in_list)
        m = _NUMBER.match(self.text, pos)
        if m:
            return m.group(), m.end()
        raise self.fail(f"expected {what}, found {self.describe(pos)}", pos)

    # -- predicates ------------------------------------------------------------------------
    def field(self, pos: int) -> tuple[str, int]:
        text = self.text
        if text[pos] == "'":
            buf = []
            i = pos + 1
            while i < self.n:
                ch = text[i]
                if ch == "\\" and i + 1 < self.n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if ch == "'":
                    if i == pos + 1:
                        raise self.fail("empty field name", pos)
                    return "".join(buf), i + 1
                buf.append(ch)
                i += 1
            raise self.fail("unterminated field name: expected a closing \"'\"", pos)
        m = _FIELD.match(text, pos)
        assert m is not None
        return m.group(), m.end()

    def predicate(self, pos: int) -> tuple[Node, int]:
        """Parse ``field op rhs`` at ``pos``; return the IR node and the end offset."""
        text = self.text
        field, pos = self.field(pos)
        pos = self.ws(pos)
        m = _OPWORD.match(text, pos)
        if m is None:
            raise self.fail(f"expected an operator ({_KNOWN}) after field {field!r}, found {self.describe(pos)}", pos)
        word = m.group()
        low = word.lower()
        op_pos = pos
        pos = m.end()
        if low == "in":
            return self.in_list(field, pos, op_pos)
        if low == "is":
            p = self.ws(pos)
            m2 = _NOT_WORD.match(text, p)
            p2 = self.ws(m2.end()) if m2 else p
            m3 = _EMPTY_WORD.match(text, p2) if m2 else None
            if not (m2 and m3):
                raise self.fail("expected 'IS NOT EMPTY'", op_pos)
            return Pred(field, Op.NOT_EMPTY), m3.end()
        op = _WORD_OPS.get(low)
        if op is None:
            raise self.fail(f"unknown operator {word!r}; expected one of {_KNOWN}", op_pos)
        if op is Op.EXISTS:
            return Pred(field, op), pos
        pos = self.ws(pos)
        if op is Op.REGEX:
            if not text.startswith('"', pos):
                raise self.fail(f"expected a quoted regular expression, found {self.describe(pos)}", pos)
            value, end = self.string(pos, _REGEX)
            try:
                compile_regex(value)
            except re.error as e:
                raise self.fail(f"invalid regular expression: {e.msg}", pos) from None
            return Pred(field, op, value), end
        if op is Op.EQUALS:
            m = _BOOL.match(text, pos)
            if m:
                return Pred(field, op, m.group().lower()), m.end()
            value, end = self.expect_string_or_number(pos, _EQ, False, "a quoted string, a number, true or false")
            if isinstance(value, Glob):
                return Pred(field, Op.GLOB, value), end
            return Pred(field, op, value), end
        if op in (Op.LT, Op.LE, Op.GT, Op.GE):
            value, end = self.expect_string_or_number(pos, _PLAIN, False, "a number")
            if to_number(value) is None:
                raise self.fail(f"expected a number to compare with, found {value!r}", pos)
            return Pred(field, op, value), end
        if not text.startswith('"', pos):
            raise self.fail(f"expected a quoted string after {word}, found {self.describe(pos)}", pos)
        value, end = self.string(pos, _PLAIN)
        return Pred(field, op, value), end

    def in_list(self, field: str, pos: int, op_pos: int) -> tuple[Node, int]:
        text = self.text
        op = Op.EQUALS
        p = self.ws(pos)
        m = _CONTAINS_WORD.match(text, p)
        if m:
            p2 = self.ws(m.end())
            m2 = _ANYCASE_WORD.match(text, p2)
            if not m2:
                raise self.fail(f"expected 'In Contains AnyCase', found {self.describe(p2)}", p2)
            op = Op.CONTAINS
            p = self.ws(m2.end())
        if not text.startswith("(", p):
            raise self.fail(f"expected '(' to open the list, found {self.describe(p)}", p)
        p = self.ws(p + 1)
        items: list[Node] = []
        while True:
            value, p = self.expect_string_or_number(p, _PLAIN, True, "a quoted string or a number in the list")
            items.append(Pred(field, op, value))
            p = self.ws(p)
            if text.startswith(",", p):
                p = self.ws(p + 1)
                continue
            if text.startswith(")", p):
                return or_(*items), p + 1
            raise self.fail(f"expected ',' or ')' in the list, found {self.describe(p)}", p)

    # -- expressions -----------------------------------------------------------------------
    def parse(self) -> Node:
        text = self.text
        pos = self.ws(0)
        if pos >= self.n:
            raise self.fail("empty query: expected a predicate", pos)
        out: list[tuple[Node, int]] = []  # (node, depth)
        ops: list[tuple[str, int]] = []  # ("(" | "NOT" | "AND" | "OR", position)

        def reduce_top(at: int) -> None:
            kind, _ = ops[-1]
            if kind == "NOT":
                ops.pop()
                node, d = out.pop()
                self.check_depth(d + 1, at)
                out.append((Not(node), d + 1))
                return
            k = 0
            while ops and ops[-1][0] == kind:
                ops.pop()
                k += 1
            operands = out[len(out) - k - 1 :]
            del out[len(out) - k - 1 :]
            cls = And if kind == "AND" else Or
            d = max(dd if type(nd) is cls else dd + 1 for nd, dd in operands)
            self.check_depth(d, at)
            join = and_ if kind == "AND" else or_
            out.append((join(*(nd for nd, _ in operands)), d))

        expect_operand = True
        while True:
            pos = self.ws(pos)
            if expect_operand:
                if pos >= self.n:
                    after = f" after {ops[-1][0]}" if ops and ops[-1][0] != "(" else ""
                    raise self.fail(f"expected a predicate, NOT or '('{after}, found end of query", pos)
                ch = text[pos]
                if ch == "(":
                    ops.append(("(", pos))
                    pos += 1
                    continue
                if ch == '"':
                    raise self.fail("a bare string (keyword search) is not supported: expected a field name", pos)
                if ch == "'" or _FIELD.match(text, pos):
                    m = _KEYWORD.match(text, pos)
                    if m and m.group().upper() == "NOT":
                        ops.append(("NOT", pos))
                        pos = m.end()
                        continue
                    if m:
                        raise self.fail(f"expected a predicate, NOT or '(', found {m.group()!r}", pos)
                    node, pos = self.predicate(pos)
                    out.append((node, 0 if isinstance(node, Pred) else 1))
                    expect_operand = False
                    continue
                raise self.fail(f"expected a predicate, NOT or '(', found {self.describe(pos)}", pos)
            # Expecting an operator, ')' or the end.
            if pos >= self.n:
                while ops:
                    if ops[-1][0] == "(":
                        raise self.fail("unbalanced parentheses: '(' is never closed", ops[-1][1])
                    reduce_top(pos)
                node, _ = out.pop()
                assert not out
                return node
            ch = text[pos]
            if ch == ")":
                while ops and ops[-1][0] != "(":
                    reduce_top(pos)
                if not ops:
                    raise self.fail("unbalanced parentheses: ')' without a matching '('", pos)
                ops.pop()
                pos += 1
                continue
            m = _KEYWORD.match(text, pos)
            if m and m.group().upper() in ("AND", "OR"):
                kind = m.group().upper()
                while ops and ops[-1][0] != "(" and (
                    _PREC[ops[-1][0]] > _PREC[kind]
                ):
                    reduce_top(pos)
                ops.append((kind, pos))
                pos = m.end()
                expect_operand = True
                continue
            raise self.fail(f"expected AND, OR, ')' or end of query, found {self.describe(pos)}", pos)

    def check_depth(self, d: int, at: int) -> None:
        if d > MAX_DEPTH:
            raise self.fail(f"query nested deeper than {MAX_DEPTH} levels of AND/OR/NOT", at)


def parse(text: str, *, source: Optional[str] = None) -> Node:
    """Parse one S1QL query into IR; raise :class:`QuerySyntaxError` if it does not parse."""
    if not isinstance(text, str):
        raise TypeError(f"query must be str, not {type(text).__name__}")
    return _Parser(text, source).parse()
