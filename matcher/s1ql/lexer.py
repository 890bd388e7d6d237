"""S1QL's tokens: the regexes of its words and the decoding of its string literals.

Rules L1 to L3 of ``docs/s1ql-spec.md`` (what a backslash and a quote mean inside a string, and
the "T" context that ends one) are here, shared by the parser (:mod:`.parser`) and the printer
(:mod:`.printer`, which re-reads every literal it writes).
"""

from __future__ import annotations

import re
from typing import Optional, Union

from ..errors import QuerySyntaxError
from ..ir import Glob, Wild

__all__ = ["read_string", "PLAIN", "EQ", "REGEX", "WS", "WS_CHARS", "FIELD", "OPWORD", "NUMBER", "BOOL", "KEYWORD",
           "T", "T_TOP", "T_LIST", "NOT_WORD", "EMPTY_WORD", "CONTAINS_WORD", "ANYCASE_WORD"]

WS = re.compile(r"[ \t\r\n\f\v]*")
WS_CHARS = frozenset(" \t\r\n\f\v")
FIELD = re.compile(r"\w+(?:\.\w+)*")
OPWORD = re.compile(r"[A-Za-z]\w*|[<>=!]+")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?![\w.])")
BOOL = re.compile(r"(?ai:true|false)(?!\w)")
KEYWORD = re.compile(r"(?ai:AND|OR|NOT)(?![\w.])")
# What may follow a closing quote (rule L1/L3): ")"* then AND / OR / end of input.
T = r"(?:[ \t\r\n\f\v]*\))*(?:[ \t\r\n\f\v]*\Z|[ \t\r\n\f\v]+(?ai:AND|OR)(?![\w.])|(?<=\))(?ai:AND|OR)(?![\w.]))"
T_TOP = re.compile(T)
# Inside an In-list: also ',"' and ',' + digit.
T_LIST = re.compile(T + r'|[ \t\r\n\f\v]*,[ \t\r\n\f\v]*(?:"|-?\d)')
NOT_WORD = re.compile(r"(?ai:NOT)(?!\w)")
EMPTY_WORD = re.compile(r"(?ai:EMPTY)(?!\w)")
CONTAINS_WORD = re.compile(r"(?ai:contains)(?!\w)")
ANYCASE_WORD = re.compile(r"(?ai:anycase)(?!\w)")
SPECIAL = re.compile(r'[\\"*]')
SPECIAL_RE = re.compile(r'[\\"]')

# String modes: a plain string, an "=" value (wildcards), a RegExp pattern.
PLAIN, EQ, REGEX = 0, 1, 2


def read_string(text: str, pos: int, mode: int, in_list: bool = False,
                source: Optional[str] = None) -> tuple[Union[str, Glob], int]:
    """Decode the string literal whose opening quote is at ``text[pos]`` (rules L1-L3, ``mode``
    PLAIN, EQ or REGEX); return (value, end). An unterminated string is a
    :class:`QuerySyntaxError` (``source`` names the file in it)."""
    follow = T_LIST if in_list else T_TOP
    start = pos
    i = pos + 1
    parts: list[Union[str, Wild]] = []
    buf: list[str] = []
    special = SPECIAL_RE if mode == REGEX else SPECIAL
    while True:
        m = special.search(text, i)
        if m is None:
            raise QuerySyntaxError("unterminated string: expected a closing '\"'", text, start, source=source)
        j = m.start()
        if j > i:
            buf.append(text[i:j])
        ch = text[j]
        if mode == REGEX:
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
            if mode == EQ:
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
            if mode == EQ:  # L2: backslash followed by a wildcard
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
    if mode == EQ:
        parts.append("".join(buf))
        glob = Glob.of(*parts)
        if not glob.has_wildcards:
            return "".join(p for p in glob.parts if isinstance(p, str)), j + 1
        return glob, j + 1
    return "".join(buf), j + 1
