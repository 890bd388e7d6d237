"""What each operator means, in plain Python: the vocabulary the reference evaluator runs.

One registry, :data:`REFERENCE`, maps every :class:`~matcher.ir.Op` to its predicate over a
field's text. ``tests/test_core_engine.py`` walks it (``test_every_op_has_a_reference_meaning``,
``test_every_op_is_lowered_and_agrees``), so an operator cannot be added to the IR without a
meaning here and a lowering in the compiler. This module is the executable form of
``docs/semantics.md``; it depends on :mod:`matcher.ir` and :mod:`matcher.errors` only.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Callable, Optional

import re2  # google-re2

from .errors import MatcherError, RegexBudgetExceeded, RegexError
from .ir import Glob, Op, Pred

__all__ = [
    "fold", "field_texts", "lookup", "walk", "scalar_text", "to_number", "REFERENCE", "EVENT_REFERENCE",
    "compile_regex", "check_regex", "regex_engine", "LINEAR", "BACKTRACKING",
    "TIMESTAMP_PARTS", "parse_timestamp", "timestamp_part",
]


def fold(s: str) -> str:
    """Case-insensitive comparison key: Python's full Unicode ``str.lower()``, nothing else."""
    return s.lower()


def scalar_text(value: Any) -> Optional[str]:
    """A scalar's text, or ``None`` when ``value`` is not a scalar (so the field is absent).

    ``str`` as it is, ``True``/``False`` as ``"true"``/``"false"``, ``int``/``float`` as their
    decimal ``repr``. Subclasses count as their base type. An ``int`` with more digits than
    ``sys.get_int_max_str_digits()`` allows has no text.
    """
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return int.__repr__(value)
        except ValueError:  # over the int/str digit limit
            return None
    if isinstance(value, float):
        return float.__repr__(value)
    return None


_MISSING = object()


def lookup(event: Mapping, name: str) -> Any:
    """The raw value of field ``name``: the exact key, else (for dotted names) a path."""
    value = event.get(name, _MISSING)
    if value is not _MISSING:
        return value
    if "." not in name:
        return None
    return walk(event, name.split("."))


def walk(node: Any, parts: "list[str] | tuple[str, ...]") -> Any:
    """The value a dotted path's ``parts`` reach from ``node``, ``None`` when none.

    Each step looks its part up in a mapping. A step that meets a ``list`` walks into every
    element that is a mapping (other elements, lists among them, reach nothing), and from then
    on the result is the ``list`` of every value reached, in order: a multi-valued field, read
    like any ``list`` value (``field_texts``), so a reached value that is itself a list is an
    element that is not a scalar and gives no text.
    """
    found: list = [node]
    multi = False
    for part in parts:
        step: list = []
        for n in found:
            if isinstance(n, list):
                multi = True
                maps = [e for e in n if isinstance(e, Mapping)]
            elif isinstance(n, Mapping):
                maps = [n]
            else:
                continue
            for m in maps:
                v = m.get(part, _MISSING)
                if v is not _MISSING:
                    step.append(v)
        found = step
    if multi:
        return found
    return found[0] if found else None


def field_texts(event: Mapping, name: str) -> Optional[list[str]]:
    """The texts of field ``name`` in ``event``, or ``None`` when the field is absent.

    A scalar gives one text; a list gives the texts of its scalar elements (absent when it
    has none); ``None``, a mapping, or anything else is absent.
    """
    value = lookup(event, name)
    if isinstance(value, list):
        texts = [t for t in map(scalar_text, value) if t is not None]
        return texts or None
    if value is None or isinstance(value, Mapping):
        return None
    text = scalar_text(value)
    return None if text is None else [text]


def to_number(text: str) -> Optional[float]:
    """``float(text)``, or ``None`` when the text is not a number (NaN compares false anyway)."""
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


# -- regular expressions (docs/semantics.md, "RegExp") -----------------------------------------
#
# Every pattern RE2 can run runs on RE2 (google-re2): linear in the value's length, whatever the
# pattern. A pattern RE2 cannot run (backreferences, lookaround, ...) is refused by the front ends
# unless the caller opted in (``regex_engine("backtracking")``); it then runs on the ``regex``
# module under a time budget per value, and an overrun raises RegexBudgetExceeded. Which engine
# runs a pattern depends on the pattern alone, so the reference and the core always agree.

#: The engines a caller may allow: RE2 only (the default), or RE2 and, for the patterns RE2
#: cannot run, the backtracking ``regex`` module under :data:`BACKTRACK_BUDGET`.
LINEAR, BACKTRACKING = "re2", "backtracking"
ENGINES = (LINEAR, BACKTRACKING)

#: Seconds a backtracking pattern may run on one value before it is abandoned (an overrun).
BACKTRACK_BUDGET = 0.1

#: RE2 reads a repetition count above this as an error (and one that overflows as literal text).
MAX_REPEAT = 1000

_ENGINE: ContextVar[str] = ContextVar("matcher_regex_engine", default=LINEAR)

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are raised, not printed on stderr
_RE2_OPTIONS.never_capture = True  # a verdict needs no groups
_UNANCHORED = re2._Anchor.UNANCHORED


@contextmanager
def regex_engine(engine: str) -> Iterator[None]:
    """Within the block, rules read by the front ends may use the engines ``engine`` allows
    (:data:`LINEAR` or :data:`BACKTRACKING`)."""
    if engine not in ENGINES:
        raise MatcherError(f"unknown regex engine {engine!r}; expected one of {', '.join(ENGINES)}")
    token = _ENGINE.set(engine)
    try:
        yield
    finally:
        _ENGINE.reset(token)


def allowed_engine() -> str:
    """The engine the front ends allow now (see :func:`regex_engine`)."""
    return _ENGINE.get()


class LinearRegex:
    """A pattern on RE2. ``search(text)`` is true when the pattern matches somewhere in text."""

    __slots__ = ("pattern", "_match")

    def __init__(self, pattern: str):
        self.pattern = pattern
        at = _literal_brace(pattern)
        if at is not None:
            raise RegexError(at[1], pattern, at[0])
        try:
            encoded = pattern.encode("utf-8")
        except UnicodeEncodeError as e:
            raise RegexError(f"a lone surrogate (U+{ord(pattern[e.start]):04X}) cannot stand in a pattern",
                             pattern, e.start) from None
        rx = re2._re2.RE2(encoded, _RE2_OPTIONS)
        if not rx.ok():
            msg = rx.error().decode("utf-8", "replace")
            what = msg.partition(": ")[2]
            at = pattern.find(what) if what else (len(pattern) - 1 if msg.startswith("trailing") else -1)
            raise RegexError(f"RE2: {msg}", pattern, max(at, 0)) from None
        self._match = rx.Match

    def search(self, text: str) -> bool:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: RE2 takes each as one character
            data = text.encode("utf-8", "surrogatepass")
        return self._match(_UNANCHORED, data, 0, len(data))[0][0] >= 0


class BacktrackingRegex:
    """A pattern RE2 cannot run, on the ``regex`` module (Python ``re`` syntax, VERSION0) under
    :data:`BACKTRACK_BUDGET`; ``search`` raises :class:`RegexBudgetExceeded` on an overrun."""

    __slots__ = ("pattern", "_search")

    def __init__(self, pattern: str):
        import regex as _regex  # only for the patterns a caller opted in for

        self.pattern = pattern
        copies, at = _nested_repeat(pattern)
        if copies > MAX_NESTED_REPEAT:
            raise RegexError(f"nested counted repetitions make {copies} copies (at most {MAX_NESTED_REPEAT})",
                             pattern, at)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._search = _regex.compile(pattern, _regex.VERSION0).search
        except _regex.error as e:
            raise RegexError(f"regex: {e.msg if hasattr(e, 'msg') else e}", pattern, e.pos or 0) from None
        except (OverflowError, RecursionError, MemoryError, ValueError, TypeError, IndexError) as e:
            raise RegexError(f"regex: {type(e).__name__}: {e}", pattern, 0) from None

    def search(self, text: str) -> bool:
        budget = BACKTRACK_BUDGET
        try:
            return self._search(text, timeout=budget) is not None
        except TimeoutError:
            raise RegexBudgetExceeded(self.pattern, len(text), budget) from None


@lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> "LinearRegex | BacktrackingRegex":
    """The runnable form of ``pattern``: on RE2 when RE2 can run it, else on the backtracking
    engine (whether that is allowed is the front ends' business: :func:`check_regex`). Raises
    :class:`~matcher.errors.RegexError` when neither can."""
    try:
        return LinearRegex(pattern)
    except RegexError as e:
        try:
            return BacktrackingRegex(pattern)
        except RegexError:
            raise e from None


def check_regex(pattern: str, engine: Optional[str] = None) -> None:
    """Raise :class:`~matcher.errors.RegexError` unless ``pattern`` runs on the engines
    ``engine`` (default: :func:`allowed_engine`) allows. Under :data:`LINEAR` a pattern RE2
    refuses is an error (with a hint to opt in when RE2's reason is a backtracking feature);
    the backtracking engine is only tried for callers that opted in."""
    engine = engine or allowed_engine()
    try:
        LinearRegex(pattern)
        return
    except RegexError as e:
        if engine != BACKTRACKING:
            hint = any(x in e.reason for x in _BACKTRACKING_FEATURES)
            raise RegexError(e.reason, pattern, e.offset, backtracking=hint) from None
    BacktrackingRegex(pattern)


#: RE2's reasons for refusing a pattern that point to a backtracking feature (lookaround and
#: atomic groups, backreferences, possessive repetition, \Z).
_BACKTRACKING_FEATURES = ("invalid perl operator", "invalid escape sequence", "bad repetition operator")


@lru_cache(maxsize=4096)
def is_linear(pattern: str) -> bool:
    """Whether ``pattern`` runs on RE2 (the prefilters of :mod:`matcher.compiler` analyse only those)."""
    try:
        LinearRegex(pattern)
        return True
    except RegexError:
        return False


_BRACES = re.compile(r"\{(\d*)(,?)(\d*)\}")

#: The most copies nested counted repetitions may make of their body (``(a{100}){100}``) in a
#: backtracking pattern: the ``regex`` module's compile time grows with it (~10 s at 10**6).
MAX_NESTED_REPEAT = 10_000


def _structure(pattern: str) -> Iterator[tuple[int, str, Any]]:
    """The groups and counted repetitions of ``pattern``: ``(offset, "(" or ")" or "{", match)``,
    skipping escapes, ``\\Q...\\E`` and character classes (POSIX classes inside them too)."""
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern.startswith("Q", i + 1):  # \Q...\E: literal text
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
            else:
                i += 2
            continue
        if in_class:
            if c == "[" and pattern.startswith(":", i + 1):
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    i = end + 2
                    continue
            if c == "]":
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):  # a leading ] is a member
                i += 1
            continue
        if c in "()":
            yield i, c, None
        elif c == "{":
            m = _BRACES.match(pattern, i)
            if m:
                yield i, "{", m
        i += 1


def _literal_brace(pattern: str) -> Optional[tuple[int, str]]:
    """(offset, reason) of a counted repetition that RE2 would read as literal text (``{,n}``,
    or a count that overflows) or refuse (above :data:`MAX_REPEAT`): Python's ``re`` reads both
    as repetitions, so a rule author could not tell what the rule means."""
    for i, kind, m in _structure(pattern):
        if kind != "{":
            continue
        lo, comma, hi = m.groups()
        if not lo and comma:
            return i, f"RE2 reads {m.group()} as literal text, Python's re as a repetition: write {{0{comma}{hi}}}"
        if any(x and int(x) > MAX_REPEAT for x in (lo, hi)):
            return i, f"repetition count above {MAX_REPEAT} in {m.group()[:40]}"
    return None


def _nested_repeat(pattern: str) -> tuple[int, int]:
    """(copies, offset): the most copies nested counted repetitions make of one item, and the
    offset of the outermost repetition that reaches it."""
    stack = [(1, 0)]  # per open group: the most copies inside it so far, and where
    closed: Optional[tuple[int, int, int]] = None  # (end offset, copies, at) of the group just closed
    for i, kind, m in _structure(pattern):
        if kind == "(":
            stack.append((1, 0))
        elif kind == ")":
            inner = stack.pop() if len(stack) > 1 else (1, 0)
            closed = (i + 1, *inner)
            stack[-1] = max(stack[-1], inner)
        else:
            count = max(int(x) for x in m.groups()[::2] if x) if any(m.groups()[::2]) else 1
            inner_copies = closed[1] if closed is not None and closed[0] == i else 1
            stack[-1] = max(stack[-1], (inner_copies * count, i))
    return max(stack)


@lru_cache(maxsize=4096)
def _glob_regex(glob: Glob) -> "re.Pattern[str]":
    folded = Glob.of(*(fold(p) if isinstance(p, str) else p for p in glob.parts))
    return re.compile(folded.regex(), re.DOTALL)


@lru_cache(maxsize=4096)
def network(value: str) -> "ipaddress.IPv4Network | ipaddress.IPv6Network":
    """The network of a ``CIDR`` literal (host bits set are allowed, as in Sigma)."""
    return ipaddress.ip_network(value, strict=False)


def _in_network(text: str, value: str) -> bool:
    """The text is exactly one IP address (``ipaddress.ip_address``) inside the network."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    net = network(value)
    return addr.version == net.version and addr in net


#: Sigma's timestamp parts (the ``minute`` ... ``year`` modifiers) -> the part of a UTC datetime.
TIMESTAMP_PARTS: dict[str, Callable[[Any], int]] = {
    "minute": lambda d: d.minute,
    "hour": lambda d: d.hour,
    "day": lambda d: d.day,
    "week": lambda d: d.isocalendar()[1],
    "month": lambda d: d.month,
    "year": lambda d: d.year,
}


@lru_cache(maxsize=65536)
def parse_timestamp(text: str) -> "Optional[datetime.datetime]":
    """A field's text as a UTC datetime, or ``None``: ISO 8601 (``2024-05-01T13:45:00Z``, a
    space for the ``T``, fractions, offsets; without an offset the time is UTC), or a number of
    seconds since the epoch (milliseconds when it is above 10^11)."""
    import datetime

    t = text.strip()
    try:
        d = datetime.datetime.fromisoformat(t)
    except ValueError:
        n = to_number(t)
        if n is None or n != n:
            return None
        try:
            return datetime.datetime.fromtimestamp(n / 1000 if abs(n) > 1e11 else n, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return d.replace(tzinfo=datetime.timezone.utc) if d.tzinfo is None else d.astimezone(datetime.timezone.utc)


def timestamp_part(text: str, part: str) -> Optional[int]:
    """The ``part`` (a key of :data:`TIMESTAMP_PARTS`) of the timestamp ``text``, or ``None``."""
    d = parse_timestamp(text)
    return None if d is None else TIMESTAMP_PARTS[part](d)


def _timepart(text: str, value: str) -> bool:
    part, _, number = value.partition("=")
    got = timestamp_part(text, part)
    return got is not None and str(got) == number


def _cmp(test: Callable[[float, float], bool]) -> Callable[[str, Any], bool]:
    def pred(text: str, value: Any) -> bool:
        x = to_number(text)
        y = to_number(value)
        return x is not None and y is not None and test(x, y)

    return pred


#: Op -> predicate(text_of_field, literal) -> bool. The field is known to be present.
REFERENCE: dict[Op, Callable[[str, Any], bool]] = {
    Op.CONTAINS: lambda x, v: fold(v) in fold(x),
    Op.STARTSWITH: lambda x, v: fold(x).startswith(fold(v)),
    Op.ENDSWITH: lambda x, v: fold(x).endswith(fold(v)),
    Op.EQUALS: lambda x, v: fold(x) == fold(v),
    Op.GLOB: lambda x, v: _glob_regex(v).fullmatch(fold(x)) is not None,
    Op.REGEX: lambda x, v: compile_regex(v).search(x),
    Op.NOT_EMPTY: lambda x, v: x != "",
    Op.EXISTS: lambda x, v: True,
    Op.LT: _cmp(lambda a, b: a < b),
    Op.LE: _cmp(lambda a, b: a <= b),
    Op.GT: _cmp(lambda a, b: a > b),
    Op.GE: _cmp(lambda a, b: a >= b),
    Op.CIDR: lambda x, v: _in_network(x, v),
    Op.TIMEPART: lambda x, v: _timepart(x, v),
}


#: Op -> predicate(event, pred) -> bool, for the whole-event operators of ``ir.EVENT_OPS``
#: (the predicate reads whatever fields of the event it needs; absence rules are its own).
EVENT_REFERENCE: dict[Op, Callable[[Mapping, Pred], bool]] = {}


# -- Sigma's whole-event predicates (docs/sigma.md) ---------------------------------------------


def _fieldref(test: Callable[[str, str], bool]) -> Callable[[Mapping, Pred], bool]:
    def pred(event: Mapping, p: Pred) -> bool:
        mine = field_texts(event, p.field)
        theirs = field_texts(event, p.value)
        if mine is None or theirs is None:
            return False
        return any(test(fold(a), fold(b)) for a in mine for b in theirs)

    return pred


def string_values(event: Mapping):
    """Every ``str`` value of the event, at any depth (lists and nested mappings walked)."""
    stack: list = [event]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield str.__str__(node)
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _keyword(event: Mapping, p: Pred) -> bool:
    rx = _glob_regex(p.value)
    return any(rx.fullmatch(fold(s)) is not None for s in string_values(event))


EVENT_REFERENCE.update(
    {
        Op.FIELDREF: _fieldref(lambda a, b: a == b),
        Op.FIELDREF_CONTAINS: _fieldref(lambda a, b: b in a),
        Op.FIELDREF_STARTSWITH: _fieldref(lambda a, b: a.startswith(b)),
        Op.FIELDREF_ENDSWITH: _fieldref(lambda a, b: a.endswith(b)),
        Op.KEYWORD: _keyword,
    }
)
