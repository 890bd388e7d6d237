"""pySigma's parsed rule -> matcher IR, with Sigma's semantics (``docs/sigma.md``).

pySigma parses the YAML, applies the value modifiers and resolves the condition (``1 of``,
``all of``, ``them``, name patterns) into a tree of ``ConditionAND``/``ConditionOR``/
``ConditionNOT`` over field/value and keyword expressions. This module walks that tree and
writes each leaf as IR:

- strings: case-insensitive; no wildcard -> ``EQUALS``, ``*v*``/``v*``/``*v`` with a plain
  ``v`` -> ``CONTAINS``/``STARTSWITH``/``ENDSWITH``, ``*`` -> ``EXISTS``, any other
  pattern -> ``GLOB`` (``Wild.ANY``/``Wild.ONE``);
- ``cased`` strings -> ``REGEX`` anchored with ``\\A``/``$`` (case-sensitive, whole value);
- ``re`` -> ``REGEX`` with the ``i``/``m``/``s`` flags written inline; pySigma checks the
  pattern when it parses the rule, with matcher's engines (``SIGMA_POLICY``): RE2, or the
  backtracking engine when the caller opted in (``docs/semantics.md``, RegExp);
- ``cidr`` -> ``CIDR``; ``gt``/``gte``/``lt``/``lte`` -> the comparisons; ``exists`` ->
  ``EXISTS`` or ``NOT EXISTS``; ``null`` -> ``NOT NOT_EMPTY`` (absent or empty);
- ``windash``, ``base64offset`` (pySigma's value expansions) -> ``OR`` of their values;
  ``base64``, ``wide``, ``utf16*`` are already plain strings;
- ``fieldref`` -> the whole-event ``FIELDREF*`` ops; keywords -> the whole-event ``KEYWORD``.

Placeholders (``expand``) are filled from the user's lists (:mod:`.placeholders`); timestamp
parts (``minute`` ... ``year``) are ``TIMEPART`` predicates on the timestamp field. Anything
else outside the IR raises :class:`~matcher.errors.UnsupportedFeature` naming the rule and the
feature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Callable, Optional

import re2

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import RegexEngine

from .. import ir
from ..errors import RegexError, UnsupportedFeature
from ..fields import S1_ENUM_FIELDS
from ..ops import check_regex, is_linear
from ..ir import Glob, Op, Pred, Wild
from .placeholders import FEATURE as PLACEHOLDERS
from .placeholders import expand_parts, no_value, placed

__all__ = ["translate_rule", "string_pred", "KEYWORD_FIELD"]

#: The field name of keyword predicates (they search every field).
KEYWORD_FIELD = ""

_COMPARE = {
    CompareOperators.LT: Op.LT,
    CompareOperators.LTE: Op.LE,
    CompareOperators.GT: Op.GT,
    CompareOperators.GTE: Op.GE,
}
_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_FIELDREF = {
    (False, False): Op.FIELDREF,
    (True, True): Op.FIELDREF_CONTAINS,
    (True, False): Op.FIELDREF_STARTSWITH,
    (False, True): Op.FIELDREF_ENDSWITH,
}


def _parts(value, rule: str) -> tuple:
    """A SigmaString's (or a placeholder expansion's) parts as a Glob's parts."""
    out: list = []
    for p in getattr(value, "s", value):
        if isinstance(p, Placeholder):  # pragma: no cover - strings() expands them first
            raise no_value(rule, p.name)
        if p is SpecialChars.WILDCARD_MULTI:
            out.append(Wild.ANY)
        elif p is SpecialChars.WILDCARD_SINGLE:
            out.append(Wild.ONE)
        elif isinstance(p, str):
            out.append(p)
        else:  # pragma: no cover - pySigma has no other part type
            raise UnsupportedFeature(rule, f"string part {type(p).__name__}")
    return Glob.of(*out).parts


def string_pred(field: str, parts: tuple) -> Pred:
    """A case-insensitive Sigma string (a Glob's parts) on ``field`` as the cheapest IR op."""
    if not parts:
        return Pred(field, Op.EQUALS, "")
    if parts == (Wild.ANY,):
        return Pred(field, Op.EXISTS)
    inner = parts
    head = inner[0] is Wild.ANY
    tail = inner[-1] is Wild.ANY
    core = inner[int(head) : len(inner) - int(tail)]
    if len(core) == 1 and isinstance(core[0], str):
        op = {(False, False): Op.EQUALS, (True, True): Op.CONTAINS, (False, True): Op.STARTSWITH,
              (True, False): Op.ENDSWITH}[(head, tail)]
        return Pred(field, op, core[0])
    return Pred(field, Op.GLOB, Glob(tuple(parts)))


def timepart_pred(field: str, part: str, number: int) -> Pred:
    """``field|hour: 3``: the ``part`` of the timestamp in ``field`` equals ``number``
    (``ops.timestamp_part`` reads the timestamp)."""
    return Pred(field, Op.TIMEPART, f"{part}={number}")


def _cased_regex(parts: tuple) -> str:
    # re.escape writes only escapes RE2 reads as the character itself; RE2's "$" (no m flag) is
    # the end of the text.
    body = "".join(".*" if p is Wild.ANY else "." if p is Wild.ONE else re.escape(p) for p in parts)
    return r"(?s)\A" + body + "$"


def _glob_regex(parts: Sequence) -> str:
    """A Sigma string's parts (wildcards, literal text) as a regex fragment matching the same text."""
    return "".join("(?s:.*)" if p is SpecialChars.WILDCARD_MULTI else "(?s:.)" if p is SpecialChars.WILDCARD_SINGLE
                   else re.escape(p) for p in parts)


def _regex_context(prefix: str) -> str:
    """Where the regex text ``prefix`` leaves the next character: ``"inside a character class"``,
    ``"right after a backslash"``, ``"inside a repetition count"`` (``a{2,%x%}``), or ``""``
    (where a group may stand)."""
    i, in_class, in_class_start, brace = 0, False, 0, -1
    while i < len(prefix):
        c = prefix[i]
        if c == "\\":
            if i + 1 == len(prefix):
                return "right after a backslash"
            i += 2
            continue
        if in_class:
            if c == "]" and i > in_class_start:
                in_class = False
        elif c == "{":
            brace = i
        elif c == "}":
            brace = -1
        elif c == "[":
            in_class, in_class_start = True, i + 1
            if prefix[i + 1 : i + 2] == "^":
                in_class_start += 1
            if prefix[in_class_start : in_class_start + 1] == "]":  # []...] and [^]...]: a literal ]
                in_class_start += 1
        i += 1
    if in_class:
        return "inside a character class"
    if brace >= 0 and re.fullmatch(r"\d*,?\d*", prefix[brace + 1 :]):
        return "inside a repetition count"
    return ""


def _with_flags(pattern: str, letters) -> str:
    flags = "".join(sorted(letters))
    return f"(?{flags}){pattern}" if flags else pattern


def _regex(value: SigmaRegularExpression) -> str:
    return _with_flags(str(value.regexp), (_FLAGS[f] for f in value.flags))


class _RegexEngine(RegexEngine):
    """pySigma's regexes (its check of ``|re`` values when it parses a rule, its condition
    selectors such as ``1 of sel*``) on matcher's engines: RE2, or the backtracking engine when
    the caller opted in (``ops.check_regex``)."""

    _PY_FLAGS = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s"}
    _OPTIONS = re2.Options()
    _OPTIONS.log_errors = False

    def compile(self, pattern: str, flags: int = 0):
        full = _with_flags(pattern, (v for k, v in self._PY_FLAGS.items() if int(flags) & int(k)))
        check_regex(full)
        if is_linear(full):
            return re2.compile(full, self._OPTIONS)
        import regex

        return regex.compile(full, regex.VERSION0)

    @property
    def error(self) -> type[Exception]:
        return RegexError


#: The policy the Sigma loader parses rules under: pySigma's safe defaults, matcher's regexes.
SIGMA_POLICY = SigmaPolicy(regex_engine=_RegexEngine())


def _plain(v) -> bool:
    return isinstance(v, SigmaNumber) or (
        isinstance(v, SigmaString) and not isinstance(v, SigmaCasedString) and not v.contains_special()
    )


def _s1_string(field: str, parts: tuple) -> Pred:
    """The backend's string: ``?`` written as ``*``; a literal ``*`` written as ``\\*``, which
    S1QL reads, in ``=`` values, as a backslash and a wildcard (``s1ql-spec.md`` rule L2)."""
    parts = tuple(Wild.ANY if p is Wild.ONE else p for p in parts)
    pred = string_pred(field, Glob.of(*parts).parts)
    if pred.op is Op.GLOB or pred.op is Op.EQUALS and "*" in pred.value:
        out: list = []
        for p in parts:
            if isinstance(p, str):
                for i, chunk in enumerate(p.split("*")):
                    out += ["\\", Wild.ANY, chunk] if i else [chunk]
            else:
                out.append(p)
        return Pred(field, Op.GLOB, Glob.of(*out))
    return pred  # in containsCIS & co. S1QL reads \* back as a literal *


def _plain_text(v) -> str:
    return str(v.number) if isinstance(v, SigmaNumber) else "".join(v.s)


class _Translator:
    def __init__(self, rule: str, field_map: Callable[[str], str], s1_backend: bool = False,
                 placeholders: Optional[Mapping[str, Sequence[str]]] = None, timestamp: Optional[str] = None):
        self.rule = rule
        self.field_map = field_map
        self.s1_backend = s1_backend
        self.placeholders = placeholders or {}
        self.timestamp = timestamp

    def strings(self, v: SigmaString) -> list:
        """The Glob parts a Sigma string stands for: one, or one per placeholder combination."""
        if not v.contains_placeholder():
            return [_parts(v, self.rule)]
        return [_parts(p, self.rule) for p in expand_parts(v.s, self.placeholders, self.rule)]

    def regex_with_placeholders(self, parts: Sequence) -> str:
        """An ``|expand|re`` pattern with each ``%name%`` replaced by ``(?:v1|v2|...)``: each value
        is a Sigma string (``*``, ``?`` wildcards, ``\\`` escapes, as for plain values), written as
        regex: its text escaped, ``*`` as ``(?s:.*)``, ``?`` as ``(?s:.)``. A placeholder inside
        a character class (``[...]``), a repetition count (``{2,%x%}``) or right after a
        backslash has no such reading: an :class:`UnsupportedFeature` naming the character where
        it stands (as is a pattern the filled values make invalid, e.g. ``(?P<%x%>...)``)."""
        out: list[str] = []
        for p in parts:
            if isinstance(p, Placeholder):
                text = "".join(out)
                where = _regex_context(text)
                if where:
                    raise placed(UnsupportedFeature(self.rule, PLACEHOLDERS, f"%{p.name}% stands {where} of the |re "
                                                    f"pattern (at character {len(text) + 1}): its values cannot be "
                                                    "written there as an alternation"), p.name)
                vals = self.placeholders.get(p.name)
                if not vals:
                    raise no_value(self.rule, p.name)
                out.append("(?:" + "|".join(_glob_regex(SigmaString(x).s) for x in vals) + ")")
            elif p is SpecialChars.WILDCARD_MULTI:  # in a regex, pySigma's special characters are
                out.append("*")                    # the pattern's own * and ?
            elif p is SpecialChars.WILDCARD_SINGLE:
                out.append("?")
            else:
                out.append(p)
        return "".join(out)

    def node(self, cond) -> ir.Node:
        if isinstance(cond, ConditionAND):
            return ir.and_(*(self.node(a) for a in cond.args))
        if isinstance(cond, ConditionOR):
            if self.s1_backend and self._s1_in_contains(cond):
                field = self.field_map(cond.args[0].field)
                return ir.or_(*(Pred(field, Op.CONTAINS, _plain_text(a.value)) for a in cond.args))
            return ir.or_(*(self.node(a) for a in cond.args))
        if isinstance(cond, ConditionNOT):
            arg = cond.args[0]
            if (self.s1_backend and isinstance(arg, ConditionFieldEqualsValueExpression)
                    and isinstance(arg.value, SigmaExpansion) and len(arg.value.values) > 1):
                # the expansion's OR is written without parentheses: NOT binds to its first item
                first, *rest = (self.value(self.field_map(arg.field), x) for x in arg.value.values)
                return ir.or_(ir.not_(first), *rest)
            return ir.not_(self.node(arg))
        if isinstance(cond, ConditionFieldEqualsValueExpression):
            return self.value(self.field_map(cond.field), cond.value)
        if isinstance(cond, ConditionValueExpression):
            return self.keyword(cond.value)
        raise UnsupportedFeature(self.rule, f"condition element {type(cond).__name__}")

    def _s1_in_contains(self, cond) -> bool:
        """pySigma's backend writes an OR of two or more plain values on one non-enum field
        as ``In Contains AnyCase``: substring matches."""
        args = cond.args
        return (
            len(args) >= 2
            and all(isinstance(a, ConditionFieldEqualsValueExpression) and _plain(a.value) for a in args)
            and len({a.field for a in args}) == 1
            and self.field_map(args[0].field) not in S1_ENUM_FIELDS
        )

    def value(self, field: str, v) -> ir.Node:
        rule = self.rule
        if self.s1_backend:
            if isinstance(v, SigmaNull):  # written as IS NOT EMPTY (sic)
                return Pred(field, Op.NOT_EMPTY)
            if isinstance(v, SigmaRegularExpression):  # flags dropped
                return Pred(field, Op.REGEX, str(v.regexp))
            if isinstance(v, SigmaString) and not isinstance(v, SigmaCasedString):
                return _s1_string(field, _parts(v, rule))
        if isinstance(v, SigmaExpansion):  # windash, base64offset: always OR-linked
            return ir.or_(*(self.value(field, x) for x in v.values))
        if isinstance(v, SigmaCasedString):
            return ir.or_(*(Pred(field, Op.REGEX, _cased_regex(p)) for p in self.strings(v)))
        if isinstance(v, SigmaString):
            return ir.or_(*(string_pred(field, p) for p in self.strings(v)))
        if isinstance(v, SigmaRegularExpression):
            if v.regexp.contains_placeholder():
                pattern = _with_flags(self.regex_with_placeholders(v.regexp.s), (_FLAGS[f] for f in v.flags))
                try:  # pySigma checked the pattern with %name% in it; the values can still break it
                    check_regex(pattern)
                except RegexError as e:
                    name = next(p.name for p in v.regexp.s if isinstance(p, Placeholder))
                    raise placed(UnsupportedFeature(rule, PLACEHOLDERS, f"the |re pattern with %{name}% filled is "
                                                    f"not a regex the engine runs ({e.reason})"), name) from None
                return Pred(field, Op.REGEX, pattern)
            return Pred(field, Op.REGEX, _regex(v))
        if isinstance(v, SigmaTimestampPart):  # before SigmaNumber: a subclass
            return timepart_pred(self.timestamp or field, v.timestamp_part.name.lower(), int(v.number))
        if isinstance(v, SigmaBool):  # before SigmaNumber: not a subclass, but keep the order explicit
            return Pred(field, Op.EQUALS, "true" if v.boolean else "false")
        if isinstance(v, SigmaNumber):
            return Pred(field, Op.EQUALS, str(v.number))
        if isinstance(v, SigmaNull):
            return ir.not_(Pred(field, Op.NOT_EMPTY))
        if isinstance(v, SigmaExists):
            p = Pred(field, Op.EXISTS)
            return p if v.exists else ir.not_(p)
        if isinstance(v, SigmaCompareExpression):
            op = _COMPARE.get(v.op)
            if op is None:
                raise UnsupportedFeature(rule, f"comparison {v.op.name}")
            return Pred(field, op, str(v.number.number))
        if isinstance(v, SigmaCIDRExpression):
            return Pred(field, Op.CIDR, str(v.network))
        if isinstance(v, SigmaFieldReference):
            # Both fields' presence is implied: written out, it gives the rule a trigger (a
            # whole-event predicate alone makes its rule run on every event).
            other = self.field_map(v.field)
            ref = Pred(field, _FIELDREF[(v.starts_with, v.ends_with)], other)
            return ir.and_(Pred(field, Op.EXISTS), Pred(other, Op.EXISTS), ref)
        raise UnsupportedFeature(rule, f"value type {type(v).__name__}")

    def keyword(self, v) -> ir.Node:
        rule = self.rule
        if isinstance(v, SigmaExpansion):
            return ir.or_(*(self.keyword(x) for x in v.values))
        if isinstance(v, SigmaCasedString):
            raise _at_keyword(UnsupportedFeature(rule, "cased keywords"))
        if isinstance(v, SigmaString):
            alts = self.strings(v)
        elif isinstance(v, (SigmaNumber, SigmaBool)):
            alts = [(str(v).lower() if isinstance(v, SigmaBool) else str(v.number),)]
        else:
            raise _at_keyword(UnsupportedFeature(rule, f"keywords of type {type(v).__name__}"))
        # A keyword is found anywhere in a field's text: implicit wildcards at both ends.
        return ir.or_(*(Pred(KEYWORD_FIELD, Op.KEYWORD, Glob.of(Wild.ANY, *parts, Wild.ANY)) for parts in alts))


def _at_keyword(error: UnsupportedFeature) -> UnsupportedFeature:
    """``error`` marked as being about a field-less key (``'|cased'``, ``'|re'``): the loader
    adds the line and column of the first such key."""
    error.yaml_keyword = True  # type: ignore[attr-defined]
    return error


def translate_rule(
    rule, *, name: str, field_map: Optional[Callable[[str], str]] = None, s1_backend: bool = False,
    placeholders: Optional[Mapping[str, Sequence[str]]] = None, timestamp: Optional[str] = None,
) -> ir.Node:
    """The IR of a parsed ``sigma.rule.SigmaRule``; several conditions are OR-ed (Sigma spec).

    ``s1_backend=True`` gives instead what pySigma's SentinelOne backend (0.1.3) makes of the
    rule, meaning changes included (``docs/sigma.md``): value lists as substring matches,
    ``null`` as ``IS NOT EMPTY``, ``?`` as ``*``, regex flags dropped. It exists to explain
    the differences between the two routes, not to be used for detection.
    ``placeholders``: values for ``%name%`` (:mod:`.placeholders`). ``timestamp``: the event
    field the timestamp-part modifiers read (default: the field the rule names).
    """
    t = _Translator(name, field_map or (lambda f: f), s1_backend, placeholders, timestamp)
    nodes = []
    for cond in rule.detection.parsed_condition:
        tree = cond.parsed
        if tree is None:  # pragma: no cover - pySigma raises on empty selectors
            raise UnsupportedFeature(name, "an empty condition")
        nodes.append(t.node(tree))
    node = ir.or_(*nodes)
    ir.validate(node)
    return node
