"""S1QL (Deep Visibility v1) text -> rule IR.

The grammar and its lexical traps (rules L1 to L3) are in ``docs/s1ql-spec.md``; the choices
this parser makes where the spec leaves room are in ``DESIGN.md``. The parser is iterative
(an operator-precedence parser over an explicit stack), so neither a 1 MB query nor 10,000
levels of parentheses can exhaust Python's recursion limit; logical nesting deeper than
:data:`matcher.ir.MAX_DEPTH` is a :class:`~matcher.errors.QuerySyntaxError`.

The common tokens take a fast path, one regex match each, that reads exactly what the
general code would read (see the comment above ``_OPERAND``); the general code handles the
rest, and every error.
"""

from __future__ import annotations

import re
from typing import Optional, Union

from ..errors import QuerySyntaxError, RegexError
from ..ir import MAX_DEPTH, And, Glob, Node, Not, Op, Or, Pred, and_, or_
from ..ops import check_regex, to_number
from .lexer import (
    ANYCASE_WORD,
    BOOL,
    CONTAINS_WORD,
    EMPTY_WORD,
    EQ,
    FIELD,
    KEYWORD,
    NOT_WORD,
    NUMBER,
    OPWORD,
    PLAIN,
    REGEX,
    T_TOP,
    WS,
    WS_CHARS,
    read_string,
)

__all__ = ["parse"]

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


# -- fast path ------------------------------------------------------------------------------
# Almost every token of a real query is "(", NOT, AND, OR, ")" or ``field op "value"`` with
# a string operator or "=". ``_Parser.parse`` reads an operand (with the connector after a
# predicate) in ONE match of ``_OPERAND`` and a lone connector in one match of ``_OPERATOR``,
# and hands anything else (quoted or dotted fields, In-lists, RegExp, IS NOT EMPTY,
# comparisons, true/false, bare numbers, and every error) to the general code, from the same
# position. A fast match reads exactly what the general code would read there:
#
# - whitespace is ``_S``, the class of ``WS`` / ``WS_CHARS``;
# - NOT, AND and OR are ``KEYWORD`` (``_KW``) split by word. No other character
#   case-folds onto A, N, D, O, R or T, so the general code's ``.upper()`` of such a match
#   is the group's name. A field may not be one of them (the look-ahead ``(?!_KW)``);
# - the field is a ``\w+`` run followed by neither a word character nor "." (the look-ahead
#   also stops the regex engine from giving characters back to the operator, as in
#   ``FoocontainsCIS``). There ``FIELD.match`` reads the same run;
# - the operator word is ``OPWORD``; any shorter match than the greedy one would be
#   followed by a word or operator character, never by whitespace + '"', so it is the same
#   word. ``_FAST_OPS`` gets it as written or ``.lower()``, like ``_WORD_OPS`` (no ``(?i)``,
#   which would also accept "\u017f" for "s");
# - the value is the text up to the first '"'. Outside RegExp, ``string`` closes a string at
#   the first '"' that no backslash precedes, keeps any other character, and keeps a
#   backslash unless '"' or '*' follows it. So if the text holds no "\*" (L2) and, for "=",
#   no "*" (wildcards), and either does not end in a backslash or ends in one with the T
#   context after the quote (L1: a literal backslash, then the closing quote), ``string``
#   would return the text itself and end just after the quote. Otherwise ``string`` decodes
#   it from the opening quote, and the connector read after the quote is not used;
# - a connector is read just as the general code reads it after an operand.
_S = r"[ \t\r\n\f\v]*"
_KW = KEYWORD.pattern
# What may follow an operand: ")" or AND / OR (the end of the query and errors are left to
# the general code). The group names are the names of the connectors.
_CONNECTOR = _S + r"(?:(?P<close>\))|(?P<AND>(?ai:AND)(?![\w.]))|(?P<OR>(?ai:OR)(?![\w.])))"
_OPERAND = re.compile(
    _S + r"(?:"
    r"(?P<open>\()"
    r"|(?P<NOT>(?ai:NOT)(?![\w.]))"
    r"|(?!" + _KW + r")(?P<field>\w+)(?![\w.])"  # group 3
    + _S + r"(?P<word>" + OPWORD.pattern + r")"  # group 4: the operator
    + _S + r'"(?P<value>[^"]*)"'  # group 5: the raw value, between the quotes
    r"(?:" + _CONNECTOR + r"|)"  # the connector after the closing quote, if there is one
    r")"
)
_OPERATOR = re.compile(_CONNECTOR)
# A quoted In-list item and the "," or ")" after it (groups 2 and 3). The raw value is the
# item's value under the conditions above for a string operator; it ends in no backslash,
# so the T context of lists is not involved.
_LIST_ITEM = re.compile(r'"([^"]*)"' + _S + r"(?:(,)" + _S + r"|(\)))")
# The operators of the fast path, as written by the backend and lower-cased: the operator,
# the string mode, and what in a raw value needs the decoding of ``string`` (L2, wildcards).
_FAST_OPS = {
    word: (op, mode, needs_decoding)
    for spelling, op, mode, needs_decoding in (
        ("containsCIS", Op.CONTAINS, PLAIN, "\\*"),
        ("startswithCIS", Op.STARTSWITH, PLAIN, "\\*"),
        ("endswithCIS", Op.ENDSWITH, PLAIN, "\\*"),
        ("=", Op.EQUALS, EQ, "*"),
    )
    for word in (spelling, spelling.lower())
}
# The operators an AND / OR reduces before it is pushed: those that bind tighter.
_TIGHTER = {kind: tuple(k for k in _PREC if _PREC[k] > _PREC[kind]) for kind in ("AND", "OR")}


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
        if pos >= self.n or text[pos] not in WS_CHARS:  # the common cases, without a regex
            return pos
        if pos + 1 >= self.n or text[pos + 1] not in WS_CHARS:
            return pos + 1
        return WS.match(text, pos).end()

    def describe(self, pos: int) -> str:
        if pos >= self.n:
            return "end of query"
        ch = self.text[pos]
        if ch.isprintable() and not ch.isspace():
            m = OPWORD.match(self.text, pos) or FIELD.match(self.text, pos)
            if m:
                return repr(m.group())
            return repr(ch)
        return f"character U+{ord(ch):04X}"

    # -- strings ---------------------------------------------------------------------------
    def string(self, pos: int, mode: int, in_list: bool = False) -> tuple[Union[str, Glob], int]:
        """Decode the string literal whose opening quote is at ``pos``; return (value, end)."""
        return read_string(self.text, pos, mode, in_list, self.source)

    def expect_string_or_number(self, pos: int, mode: int, in_list: bool, what: str):
        if pos < self.n and self.text[pos] == '"':
            return self.string(pos, mode, in_list)
        m = NUMBER.match(self.text, pos)
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
        m = FIELD.match(text, pos)
        assert m is not None
        return m.group(), m.end()

    def predicate(self, pos: int) -> tuple[Node, int]:
        """Parse ``field op rhs`` at ``pos``; return the IR node and the end offset."""
        text = self.text
        field, pos = self.field(pos)
        pos = self.ws(pos)
        m = OPWORD.match(text, pos)
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
            m2 = NOT_WORD.match(text, p)
            p2 = self.ws(m2.end()) if m2 else p
            m3 = EMPTY_WORD.match(text, p2) if m2 else None
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
            value, end = self.string(pos, REGEX)
            try:
                check_regex(value)
            except RegexError as e:
                raise self.fail(f"{e.args[0]} (character {e.offset + 1} of the pattern)", pos) from None
            return Pred(field, op, value), end
        if op is Op.EQUALS:
            m = BOOL.match(text, pos)
            if m:
                return Pred(field, op, m.group().lower()), m.end()
            value, end = self.expect_string_or_number(pos, EQ, False, "a quoted string, a number, true or false")
            if isinstance(value, Glob):
                return Pred(field, Op.GLOB, value), end
            return Pred(field, op, value), end
        if op in (Op.LT, Op.LE, Op.GT, Op.GE):
            value, end = self.expect_string_or_number(pos, PLAIN, False, "a number")
            if to_number(value) is None:
                raise self.fail(f"expected a number to compare with, found {value!r}", pos)
            return Pred(field, op, value), end
        if not text.startswith('"', pos):
            raise self.fail(f"expected a quoted string after {word}, found {self.describe(pos)}", pos)
        value, end = self.string(pos, PLAIN)
        return Pred(field, op, value), end

    def in_list(self, field: str, pos: int, op_pos: int) -> tuple[Node, int]:
        text = self.text
        op = Op.EQUALS
        p = self.ws(pos)
        m = CONTAINS_WORD.match(text, p)
        if m:
            p2 = self.ws(m.end())
            m2 = ANYCASE_WORD.match(text, p2)
            if not m2:
                raise self.fail(f"expected 'In Contains AnyCase', found {self.describe(p2)}", p2)
            op = Op.CONTAINS
            p = self.ws(m2.end())
        if not text.startswith("(", p):
            raise self.fail(f"expected '(' to open the list, found {self.describe(p)}", p)
        p = self.ws(p + 1)
        items: list[Node] = []
        while True:
            m = _LIST_ITEM.match(text, p)
            if m is not None and not (m[1].endswith("\\") or "\\*" in m[1]):  # see _LIST_ITEM
                items.append(Pred(field, op, m[1]))
                p = m.end()
                if m.lastindex == 2:  # ","
                    continue
                return or_(*items), p
            value, p = self.expect_string_or_number(p, PLAIN, True, "a quoted string or a number in the list")
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
        """Operator-precedence parsing over explicit stacks, kept as parallel lists of plain
        values (no tuple per entry): operands and their logical depths (``out``, ``depths``);
        operators, and the positions of the "(" among them (``ops``, ``opens``: the only operator
        position an error can quote)."""
        text = self.text
        pos = self.ws(0)
        if pos >= self.n:
            raise self.fail("empty query: expected a predicate", pos)
        self.out: list[Node] = []
        self.depths: list[int] = []
        self.ops: list[str] = []  # "(" | "NOT" | "AND" | "OR"
        self.opens: list[int] = []
        out, depths, ops, opens = self.out, self.depths, self.ops, self.opens
        operand = _OPERAND.match
        operator = _OPERATOR.match
        fast_ops = _FAST_OPS.get
        while True:
            # An operand: "(" and NOT are pushed and another operand follows; a predicate
            # goes to ``out``. The fast path first (see _OPERAND), else the general code.
            m = operand(text, pos)
            fast = None
            if m is not None:
                kind = m.lastgroup
                if kind == "open":
                    pos = m.end()
                    ops.append("(")
                    opens.append(pos - 1)
                    continue
                if kind == "NOT":
                    ops.append("NOT")
                    pos = m.end()
                    continue
                field, word, value = m.group(3, 4, 5)
                fast = fast_ops(word) or fast_ops(word.lower())
            if fast is None:
                pos, node = self.operand(pos, ops, opens)
                if node is None:  # "(" or NOT
                    continue
                out.append(node)
                depths.append(0 if isinstance(node, Pred) else 1)
                kind = None
            else:
                op, mode, needs_decoding = fast
                if needs_decoding in value or (value.endswith("\\") and not T_TOP.match(text, m.end(5) + 1)):
                    value, pos = self.string(m.start(5) - 1, mode)  # L1, L2 or wildcards
                    if type(value) is Glob:
                        op = Op.GLOB
                    kind = None  # the string may end elsewhere: the connector read is void
                else:
                    pos = m.end()
                out.append(Pred(field, op, value))
                depths.append(0)
            # After an operand: ")"s, then AND / OR or the end of the query. ``kind`` is the
            # connector already read with the predicate ("value" or None if there is none).
            while True:
                if kind is None or kind == "value":
                    m = operator(text, pos)
                    if m is None:  # the end of the query, or an error
                        return self.end(pos)
                    kind = m.lastgroup
                    pos = m.end()
                if kind != "close":
                    break
                self.close(pos - 1)
                kind = None
            tighter = _TIGHTER[kind]
            while ops and ops[-1] in tighter:
                self.reduce_top(m.start(kind))
            ops.append(kind)

    def close(self, at: int) -> None:
        """A ")" at ``at``: reduce down to its "(" and drop both."""
        ops = self.ops
        while ops and ops[-1] != "(":
            self.reduce_top(at)
        if not ops:
            raise self.fail("unbalanced parentheses: ')' without a matching '('", at)
        ops.pop()
        self.opens.pop()

    def end(self, pos: int) -> Node:
        """The end of the query (after ``pos``, nothing but whitespace, else a syntax error):
        reduce what is left on the stacks into the one tree."""
        pos = self.ws(pos)
        if pos < self.n:
            raise self.fail(f"expected AND, OR, ')' or end of query, found {self.describe(pos)}", pos)
        ops = self.ops
        while ops:
            if ops[-1] == "(":
                raise self.fail("unbalanced parentheses: '(' is never closed", self.opens[-1])
            self.reduce_top(pos)
        node = self.out.pop()
        assert not self.out
        return node

    def reduce_top(self, at: int) -> None:
        """Pop the top operator and its operands (a run of equal AND/OR operators at once, as
        one n-ary node) and push the node; ``at`` is where an error about its depth points."""
        out, depths, ops = self.out, self.depths, self.ops
        kind = ops.pop()
        if kind == "NOT":
            d = depths[-1] + 1
            self.check_depth(d, at)
            out[-1] = Not(out[-1])
            depths[-1] = d
            return
        k = 2  # a run of k - 1 equal operators joins k operands into one n-ary node
        while ops and ops[-1] == kind:
            ops.pop()
            k += 1
        operands = out[-k:]
        del out[-k:]
        ds = depths[-k:]
        del depths[-k:]
        if any(ds):  # operands of the same kind are flattened into the node: no extra level
            cls = And if kind == "AND" else Or
            d = max(dd if type(nd) is cls else dd + 1 for nd, dd in zip(operands, ds))
            if d > MAX_DEPTH:
                self.check_depth(d, at)
            out.append((and_ if kind == "AND" else or_)(*operands))
            depths.append(d)
        else:  # predicates only (depth 0): nothing to flatten, ``and_`` / ``or_`` build just this
            out.append((And if kind == "AND" else Or)(tuple(operands)))
            depths.append(1)

    def operand(self, pos: int, ops: list[str], opens: list[int]) -> tuple[int, Optional[Node]]:
        """The general code for an operand at ``pos`` (after whitespace): push "(" or NOT and
        return (end, None), or parse a predicate and return (end, node)."""
        text = self.text
        pos = self.ws(pos)
        if pos >= self.n:
            after = f" after {ops[-1]}" if ops and ops[-1] != "(" else ""
            raise self.fail(f"expected a predicate, NOT or '('{after}, found end of query", pos)
        ch = text[pos]
        if ch == "(":
            ops.append("(")
            opens.append(pos)
            return pos + 1, None
        if ch == '"':
            raise self.fail("a bare string (keyword search) is not supported: expected a field name", pos)
        if ch == "'" or FIELD.match(text, pos):
            m = KEYWORD.match(text, pos)
            if m and m.group().upper() == "NOT":
                ops.append("NOT")
                return m.end(), None
            if m:
                raise self.fail(f"expected a predicate, NOT or '(', found {m.group()!r}", pos)
            node, pos = self.predicate(pos)
            return pos, node
        raise self.fail(f"expected a predicate, NOT or '(', found {self.describe(pos)}", pos)

    def check_depth(self, d: int, at: int) -> None:
        if d > MAX_DEPTH:
            raise self.fail(f"query nested deeper than {MAX_DEPTH} levels of AND/OR/NOT", at)


def parse(text: str, *, source: Optional[str] = None) -> Node:
    """Parse one S1QL query into IR; raise :class:`QuerySyntaxError` if it does not parse."""
    if not isinstance(text, str):
        raise TypeError(f"query must be str, not {type(text).__name__}")
    return _Parser(text, source).parse()
