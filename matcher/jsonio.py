"""JSON text <-> Python values, the one way matcher does it (readers, ``explain``, output).

:func:`loads` gives exactly what ``json.loads`` gives (the oracle: integers of any size, ``1e999``
as ``inf``, ``NaN``/``Infinity``, lone surrogate escapes, the last of duplicate keys), at any
nesting depth, and at orjson's speed on the common text. :func:`dumps` writes any value a reader
can produce, at any depth: integers of any size exactly, non-finite floats as the strings
``"Infinity"``, ``"-Infinity"``, ``"NaN"`` (JSON has no such numbers), other types as their
``str``.
"""

from __future__ import annotations

import json
import math
import re
from json.decoder import scanstring
from json.scanner import NUMBER_RE
from typing import Any, Union

import orjson

__all__ = ["loads", "dumps", "needs_exact", "JSONDecodeError"]

JSONDecodeError = json.JSONDecodeError

# orjson reads integers outside the 64-bit range as floats: such text takes the exact path.
_LONG_DIGITS = re.compile(rb"-?[0-9]{19,}")
_DIGITS_AS_0 = bytes.maketrans(b"123456789", b"000000000")
_WS = re.compile(r"[ \t\n\r]*")
_CONSTANTS = (("null", None), ("true", True), ("false", False), ("NaN", math.nan),
              ("Infinity", math.inf), ("-Infinity", -math.inf))


def needs_exact(data: bytes) -> bool:
    """Whether orjson might read ``data`` differently from ``json.loads`` (a long integer)."""
    if data.translate(_DIGITS_AS_0).find(b"0" * 19) < 0:  # memchr-fast; the regex is 50x slower on digits
        return False
    return any(len(run) > 21 or not -(2**63) <= int(run) < 2**64 for run in _LONG_DIGITS.findall(data))


def loads(raw: Union[bytes, str]) -> Any:
    """``json.loads(raw)`` at any depth. Raises ``ValueError`` (``json.JSONDecodeError`` or
    ``UnicodeDecodeError``) for text ``json.loads`` rejects."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if not needs_exact(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json.loads may still accept it (NaN, 1e999, a lone surrogate) or say why not
    try:
        return json.loads(raw)
    except RecursionError:
        pass
    text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw), "surrogatepass")
    return _loads_flat(text)


def _loads_flat(s: str) -> Any:
    """``json.loads`` for text nested too deep for its recursion: the same grammar, with a stack."""
    stack: list[list] = []  # [container, key of the value being read (objects)]
    skip = _WS.match
    i = skip(s, 0).end()
    while True:
        c = s[i : i + 1]
        if c == "{" or c == "[":
            i = skip(s, i + 1).end()
            if s[i : i + 1] == ("}" if c == "{" else "]"):
                value: Any = {} if c == "{" else []
                i += 1
            elif c == "[":
                stack.append([[], None])
                continue
            else:
                key, i = _key(s, i)
                stack.append([{}, key])
                continue
        elif c == '"':
            value, i = scanstring(s, i + 1, True)
        else:
            m = NUMBER_RE.match(s, i)
            if m is not None:
                integer, frac, exp = m.groups()
                value = float(integer + (frac or "") + (exp or "")) if frac or exp else int(integer)
                i = m.end()
            else:
                for name, value in _CONSTANTS:
                    if s.startswith(name, i):
                        i += len(name)
                        break
                else:
                    raise JSONDecodeError("Expecting value", s, i)
        while True:  # put the value in its container; close the containers that end here
            if not stack:
                i = skip(s, i).end()
                if i != len(s):
                    raise JSONDecodeError("Extra data", s, i)
                return value
            top = stack[-1]
            container = top[0]
            if type(container) is dict:
                container[top[1]] = value
            else:
                container.append(value)
            i = skip(s, i).end()
            c = s[i : i + 1]
            if c == ",":
                i = skip(s, i + 1).end()
                if type(container) is dict:
                    top[1], i = _key(s, i)
                break
            if c == ("}" if type(container) is dict else "]"):
                stack.pop()
                value = container
                i += 1
                continue
            raise JSONDecodeError("Expecting ',' delimiter", s, i)


def _key(s: str, i: int) -> tuple[str, int]:
    """An object key at ``s[i]`` and the position of its value."""
    if s[i : i + 1] != '"':
        raise JSONDecodeError("Expecting property name enclosed in double quotes", s, i)
    key, i = scanstring(s, i + 1, True)
    i = _WS.match(s, i).end()
    if s[i : i + 1] != ":":
        raise JSONDecodeError("Expecting ':' delimiter", s, i)
    return key, _WS.match(s, i + 1).end()


def dumps(value: Any, *, indent: bool = False) -> bytes:
    """``value`` as JSON text (see the module docstring), indented by two spaces if ``indent``
    and orjson can (not deeper than 254); never raises."""
    try:
        out = orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2 if indent else None)
    except (TypeError, orjson.JSONEncodeError):  # deeper than 254, an integer over 64 bits, a surrogate, ...
        return _dumps_flat(value)
    if b"null" in out and _has_nonfinite(value):  # orjson writes inf and nan as null
        return _dumps_flat(value)
    return out


def _has_nonfinite(value: Any) -> bool:
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return True
        if isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, (list, tuple)):
            todo.extend(v)
    return False


def _str(s: str) -> str:
    try:
        return orjson.dumps(s).decode()
    except orjson.JSONEncodeError:  # a lone surrogate: escaped
        return json.dumps(s)


def _scalar(v: Any) -> str:
    if v is None or v is True or v is False:
        return "null" if v is None else "true" if v else "false"
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, int):
        try:
            return int.__repr__(v)
        except ValueError:  # more digits than Python prints
            return _str(f"<an integer of {v.bit_length()} bits>")
    if isinstance(v, float):
        if math.isfinite(v):
            return float.__repr__(v)
        return '"NaN"' if v != v else '"Infinity"' if v > 0 else '"-Infinity"'
    try:
        return orjson.dumps(v).decode()  # datetime, date, uuid, ... as orjson writes them
    except (TypeError, orjson.JSONEncodeError):
        return _str(str(v))


def _dumps_flat(value: Any) -> bytes:
    """:func:`dumps` with an explicit stack (no depth limit)."""
    out: list[str] = []
    stack: list[Any] = [value]  # values to write, or literal text (a _Text) between them
    while stack:
        v = stack.pop()
        if type(v) is _Text:
            out.append(v)
        elif isinstance(v, dict):
            out.append("{")
            stack.append(_Text("}"))
            items = list(v.items())
            for n in range(len(items) - 1, -1, -1):
                k, item = items[n]
                stack.append(item)
                stack.append(_Text(("," if n else "") + _str(k if isinstance(k, str) else str(k)) + ":"))
        elif isinstance(v, (list, tuple)):
            out.append("[")
            stack.append(_Text("]"))
            for n in range(len(v) - 1, -1, -1):
                stack.append(v[n])
                if n:
                    stack.append(_Text(","))
        else:
            out.append(_scalar(v))
    return "".join(out).encode("utf-8", "surrogatepass")


class _Text(str):
    """Literal JSON punctuation on :func:`_dumps_flat`'s stack (a value of type ``str`` is a string)."""
