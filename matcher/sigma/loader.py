"""Sigma YAML -> rule records (:class:`~matcher.record.RuleRecord`): files, multi-document
files and rule trees. The functions here return records (``*_records``; a :class:`TreeLoad`'s
``rules`` are records); :mod:`matcher.sigma.public` (``matcher.sigma.parse_sigma``, ``load_sigma``,
``load_sigma_*``) and :mod:`matcher.api` turn them into :class:`~matcher.Rule` objects.

pySigma reads the YAML (its collection actions ``global``/``reset``/``repeat`` included) and
checks each rule; :mod:`.translate` writes the IR. Every malformed document is a
:class:`~matcher.errors.RuleSyntaxError` (a :class:`~matcher.RuleError` and a
:class:`~matcher.QuerySyntaxError`) naming the file, the rule id when it has one, and the line
and column: YAML syntax errors where the parser stopped; shapes pySigma would crash on, checked
here first on the YAML nodes; pySigma's own errors placed at the key or value they are about.
Limits (``MAX_YAML_DEPTH``, ``MAX_CONDITION_DEPTH``, ``MAX_CONDITION_TOKENS``) refuse what
would overflow a stack or take super-linear time (``docs/sigma.md``). A feature matcher does
not implement is :class:`~matcher.errors.UnsupportedFeature`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.rule import SigmaLogSource, SigmaRule

from .. import ir
from .._files import archive_members, read_rule_text
from ..errors import MatcherError, RuleError, RuleSyntaxError, UnsupportedFeature
from ..mapping import PROFILES, in_profile
from ..record import RuleInfo, RuleRecord
from .filters import SigmaFilterDoc, apply_filters
from .logsource import UNROUTED_MODES, logsource_filter, logsource_key, route, s1_field_map
from .placeholders import check_placeholders
from .translate import SIGMA_POLICY, translate_rule

__all__ = ["parse_sigma_records", "load_sigma_records", "field_positions",
           "load_sigma_tree_records", "load_sigma_tar_records", "load_sigma_files_records", "load_filters",
           "TreeLoad", "SigmaOptions", "SIGMA_SUFFIXES", "UNROUTED_FEATURE"]

#: The feature a rule fails with when its profile cannot recognise its logsource (``unrouted="skip"``).
UNROUTED_FEATURE = "logsources the profile cannot recognise"


@dataclass(frozen=True)
class SigmaOptions:
    """How Sigma rules are loaded beyond the profile: ``placeholders`` (name -> values for
    ``%name%``, :mod:`.placeholders`), ``unrouted`` (``"skip"``, the default, or ``"run"``: what
    becomes of a rule whose logsource the profile cannot recognise; reported either way),
    ``timestamp`` (the event field the timestamp-part modifiers read; default: the rule's field)."""

    placeholders: Mapping[str, tuple] = field(default_factory=dict)
    unrouted: str = "skip"
    timestamp: Optional[str] = None

    @classmethod
    def of(cls, placeholders: Any = None, unrouted: str = "skip", timestamp: Optional[str] = None) -> "SigmaOptions":
        if unrouted not in UNROUTED_MODES:
            raise MatcherError(f"unrouted must be one of {', '.join(UNROUTED_MODES)}, not {unrouted!r}")
        if timestamp is not None and (not isinstance(timestamp, str) or not timestamp):
            raise MatcherError(f"timestamp must be a field name, not {timestamp!r}")
        return cls(check_placeholders(placeholders), unrouted, timestamp)

SIGMA_SUFFIXES = (".yml", ".yaml")

LogsourceSpec = Union[None, Mapping[str, str], Callable[[SigmaLogSource], bool]]


def _selector(logsource: LogsourceSpec) -> Optional[Callable[[SigmaLogSource], bool]]:
    if logsource is None or callable(logsource):
        return logsource
    unknown = set(logsource) - {"category", "product", "service"}
    if unknown:
        raise MatcherError(f"logsource filter keys are category, product, service; not {sorted(unknown)}")
    return logsource_filter(**logsource)


#: The deepest nesting of lists and maps a Sigma YAML document may have (SigmaHQ rules peak at
#: 5). Deeper text is a :class:`RuleSyntaxError` at the first level too deep: the YAML composer,
#: pySigma and libyaml itself work in time or stack that grows with the depth.
MAX_YAML_DEPTH = 32
#: The deepest nesting of ``not`` and parentheses in one condition (SigmaHQ: 3). pySigma's
#: condition parser uses about 50 Python frames per parenthesis and fails from about 20 levels.
MAX_CONDITION_DEPTH = 10
#: The most words (names, operators, parentheses) in one condition (SigmaHQ: under 100);
#: pySigma's parse time grows faster than linearly with the length.
MAX_CONDITION_TOKENS = 1000

try:
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML without libyaml
    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _Loader(yaml.composer.Composer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """libyaml's parser (events), PyYAML's Python composer (nodes, with marks), safe
    construction. The composer is the Python one so that nesting is counted as it is read and
    refused at ``MAX_YAML_DEPTH``: libyaml's own composer recurses in C (a stack overflow at
    about 100,000 levels) and its scanner slows down quadratically with the depth."""

    def __init__(self, text: str):
        _Parser.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise yaml.MarkedYAMLError(None, None, f"nesting deeper than {MAX_YAML_DEPTH} levels",
                                           self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as e:  # 2020-13-45, !!float abc, !!int 0x
            raise yaml.constructor.ConstructorError(None, None, f"cannot read the value {node.value!r} ({e})"
                                                    if isinstance(node, yaml.ScalarNode) else str(e),
                                                    node.start_mark) from None


@dataclass
class _Doc:
    """One YAML document: its node tree (marks) and its data."""

    node: Any
    data: Any

    @property
    def rule_id(self) -> Optional[str]:
        rid = self.data.get("id") if isinstance(self.data, dict) else None
        return rid if isinstance(rid, str) else None


def _yaml_documents(text: str, source: Optional[str]) -> list[_Doc]:
    """The documents of a YAML text, each with its nodes. Empty (null) documents are left out."""
    docs = []
    loader = None
    try:
        loader = _Loader(text)
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None:  # as pySigma: an empty document (a trailing ---) is no rule
                docs.append(_Doc(node, data))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context
        if problem == "exceeded maximum nesting depth":  # libyaml >= 0.2.6 (PyYAML 6.0.4) stops at 1,000 levels
            problem = f"nesting deeper than {MAX_YAML_DEPTH} levels"  # in its scanner, before our composer counts
        raise RuleSyntaxError(f"YAML: {problem}", text, mark.index if mark else 0,
                              source=source) from None
    except yaml.YAMLError as e:  # the reader's errors (control characters, encoding)
        raise RuleSyntaxError(f"YAML: {getattr(e, 'reason', None) or e}", text, getattr(e, "position", 0) or 0,
                              source=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def _find(node: Any, path: tuple) -> Any:
    """The value node at ``path`` (mapping keys), or ``None``."""
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                node = v
                break
        else:
            return None
    return node


def _walk(node: Any):
    """Every node under ``node``, mapping keys included, in document order (no alias twice)."""
    seen: set = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        yield n
        if isinstance(n, yaml.MappingNode):
            stack.extend(x for kv in reversed(n.value) for x in reversed(kv))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(reversed(n.value))


class _Shape(Exception):
    """A shape error found by :func:`_check_shape`: message and the node it is at."""

    def __init__(self, message: str, node: Any, rule_id: Optional[str] = None):
        super().__init__(message)
        self.node = node
        self.rule_id = rule_id


def _scalar_text(node: Any) -> Optional[str]:
    """The text of a scalar node that YAML reads as a string, else ``None``."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        return node.value
    return None


def _check_shape(doc: _Doc) -> None:
    """Raise :class:`_Shape` for what pySigma would trip over with a ``TypeError``, an
    ``AttributeError`` or a ``RecursionError`` (it checks the rest itself, see :func:`_locate`).
    Each node is looked at once however many aliases point to it (no "billion laughs")."""
    try:
        _check_document_shape(doc.node)
    except _Shape as e:
        e.rule_id = doc.rule_id
        raise


def _check_document_shape(node: Any) -> None:
    if not isinstance(node, yaml.MappingNode):
        raise _Shape(f"a Sigma document is a map of keys (title, detection, ...), not a {_kind(node)}", node)
    for key in ("id", "action"):
        n = _find(node, (key,))
        if n is not None and _scalar_text(n) is None:
            raise _Shape(f"{key} must be a string, not a {_kind(n)}", n)
    det = _find(node, ("detection",))
    if not isinstance(det, yaml.MappingNode):
        return  # missing or not a map: pySigma says so
    seen: set = set()
    for k, v in det.value:
        name = _scalar_text(k)
        if name is None:
            raise _Shape(f"detection names are strings, not a {_kind(k)}", k)
        if id(v) in seen:
            continue
        seen.add(id(v))
        if name == "condition":
            conds = v.value if isinstance(v, yaml.SequenceNode) else [v]
            for c in conds:
                if _scalar_text(c) is None:
                    raise _Shape(f"a condition is a string (or a list of strings), not a {_kind(c)}", c)
                _check_condition(c)
        elif name != "timeframe":
            _check_selection(v, seen)


def _check_selection(node: Any, seen: set) -> None:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for item in items:
        if id(item) in seen and item is not node:
            continue
        seen.add(id(item))
        if isinstance(item, yaml.MappingNode):
            for k, v in item.value:
                if _scalar_text(k) is None:
                    raise _Shape(f"field names are strings, not a {_kind(k)} (quote it)", k)
                regex = "re" in _scalar_text(k).split("|")[1:]
                # each value node is looked at once, and once more under a |re key (an alias
                # of a value first met under a plain key)
                if id(v) in seen and not (regex and ("re", id(v)) not in seen):
                    continue
                seen.add(id(v))
                if regex:
                    seen.add(("re", id(v)))
                values = v.value if isinstance(v, yaml.SequenceNode) else [v]
                for x in values:
                    if not isinstance(x, yaml.ScalarNode):
                        raise _Shape(f"the value of a field is a value or a list of values, not a {_kind(x)}", x)
                    if regex and _scalar_text(x) is None:
                        # pySigma reads a number, a boolean or null under |re with an AttributeError
                        raise _Shape(f"the re modifier takes a regular expression, a string, not a {_kind(x)} "
                                     "(quote it)", x)
        elif isinstance(item, yaml.SequenceNode) and node is not item:
            for x in item.value:
                if not isinstance(x, yaml.ScalarNode):
                    raise _Shape(f"a keyword is a value, not a {_kind(x)}", x)
        elif not isinstance(item, yaml.ScalarNode):
            raise _Shape(f"a selection is a map of fields, a list of maps or a list of keywords, not a {_kind(item)}",
                         item)


_CONDITION_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _check_condition(node: Any) -> None:
    """Refuse a condition nested (``not``, parentheses) or long beyond what pySigma parses."""
    depth = nots = total = 0
    stack: list[int] = []
    tokens = 0
    for m in _CONDITION_TOKEN.finditer(node.value):
        tokens += 1
        if tokens > MAX_CONDITION_TOKENS:
            raise _Shape(f"a condition of more than {MAX_CONDITION_TOKENS} words", node)
        word = m.group().lower()
        if word == "not":
            nots += 1
        elif word == "(":
            stack.append(nots + 1)
            total += nots + 1
            nots = 0
        elif word == ")":
            total -= stack.pop() if stack else 0
            nots = 0
        elif word in ("and", "or"):
            nots = 0
        else:
            depth = max(depth, total + nots)
            nots = 0
        if max(depth, total + nots) > MAX_CONDITION_DEPTH:
            raise _Shape(f"a condition nested deeper than {MAX_CONDITION_DEPTH} levels of not and parentheses", node)


def _kind(node: Any) -> str:
    if isinstance(node, yaml.MappingNode):
        return "map"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"str": "string", "int": "number", "float": "number", "bool": "boolean", "null": "null",
            "timestamp": "date"}.get(tag, tag)


#: The key each of pySigma's errors is about (an error about a value is placed at the value).
_ERROR_KEYS = {
    "SigmaTitleError": "title", "SigmaIdentifierError": "id", "SigmaNameError": "name",
    "SigmaLevelError": "level", "SigmaStatusError": "status", "SigmaDateError": "date",
    "SigmaModifiedError": "modified", "SigmaAuthorError": "author", "SigmaDescriptionError": "description",
    "SigmaFalsePositivesError": "falsepositives", "SigmaFieldsError": "fields", "SigmaLicenseError": "license",
    "SigmaReferencesError": "references", "SigmaRelatedError": "related", "SigmaScopeError": "scope",
    "SigmaTagError": "tags", "SigmaTaxonomyError": "taxonomy", "SigmaLogsourceError": "logsource",
    "SigmaDetectionError": "detection", "SigmaConditionError": "condition",
}
_QUOTED = re.compile(r"'([^']*)'")


def _locate(docs: list[_Doc], error: BaseException) -> Any:
    """The node a pySigma error is about, in the first of ``docs`` that has it: a detection key
    or value named in the message (``Unknown modifier 'x'``, ``Regular expression '(' ...``), else
    the key the error's class is about, else the document."""
    named = {n.lower() for n in _QUOTED.findall(str(error))}
    key = next((_ERROR_KEYS[c.__name__] for c in type(error).__mro__ if c.__name__ in _ERROR_KEYS), None)
    for doc in docs:
        det = _find(doc.node, ("detection",))
        if named and det is not None and key != "condition":
            for n in _walk(det):
                if isinstance(n, yaml.ScalarNode) and (n.value.lower() in named or any(
                        m in named for m in n.value.lower().split("|")[1:])):
                    return n
        mods = _modifiers_named(str(error))
        if mods and det is not None:
            for n in _walk(det):
                if isinstance(n, yaml.MappingNode):
                    for k, _ in n.value:
                        if n is not det and any(m in mods for m in (_scalar_text(k) or "").lower().split("|")[1:]):
                            return k
        path = ("detection", "condition") if key == "condition" else (key,)
        n = _find(doc.node, path) if key else None
        if n is not None:
            return n
    return docs[0].node if docs else None


#: pySigma's messages about a modifier that name no value: the start of the message -> the modifiers.
_MODIFIER_MESSAGES = {
    "windash modifier": ("windash",), "regular expression modifier": ("re",), "cidr expression modifier": ("cidr",),
    "exists modifier": ("exists",), "base64 encoding": ("base64", "base64offset"), "field references": ("fieldref",),
    "wide modifier": ("wide", "utf16le"), "utf-16be modifier": ("utf16be",), "utf-16 modifier": ("utf16",),
}


def _modifiers_named(message: str) -> tuple[str, ...]:
    """The modifiers a pySigma message is about (``Modifier SigmaCIDRModifier incompatible ...``,
    ``windash modifier expands at most ...``), or ``()``."""
    low = message.lower()
    for start, mods in _MODIFIER_MESSAGES.items():
        if low.startswith(start):
            return mods
    m = re.match(r"Modifier (\w+) incompatible", message)
    if m:
        from sigma.modifiers import modifier_mapping

        return tuple(k for k, v in modifier_mapping.items() if v.__name__ == m.group(1))
    return ()


def _metadata(rule: SigmaRule, name: str, source: Optional[str]) -> RuleInfo:
    ls = rule.logsource
    logsource = {k: v for k, v in (("category", ls.category), ("product", ls.product),
                                   ("service", ls.service), ("definition", ls.definition)) if v}
    return RuleInfo(
        id=str(rule.id) if rule.id is not None else name,
        title=rule.title or name,
        author=rule.author or "",
        date=rule.date.isoformat() if rule.date else "",
        level=rule.level.name.lower() if rule.level else "",
        tags=tuple(str(t) for t in rule.tags),
        description=" ".join((rule.description or "").split()),
        references=tuple(rule.references),
        falsepositives=tuple(str(f) for f in rule.falsepositives),
        source=source,
        extra={
            "format": "sigma",
            "name": getattr(rule, "name", None) or "",  # what a correlation or a filter may name it by
            "status": rule.status.name.lower() if rule.status else "",
            "logsource": logsource,
            "modified": rule.modified.isoformat() if rule.modified else "",
        },
    )


def _rule_name(rule: Any, source: Optional[str], index: int, count: int) -> str:
    where = source or "Sigma rule"
    if count > 1:
        where += f" (document {index + 1})"
    rid = getattr(rule, "id", None)
    return f"{where} [{rid}]" if rid else where


def parse_sigma_records(
    text: str,
    *,
    source: Optional[str] = None,
    profile: Any = None,
    logsource: LogsourceSpec = None,
    s1_backend: bool = False,
    options: Optional[SigmaOptions] = None,
    into: Optional["TreeLoad"] = None,
) -> list:
    """The rules of one Sigma YAML text (one document, or several: a list), as records
    (:class:`~matcher.record.RuleRecord`; correlation rules as :class:`~matcher.Correlation`).

    ``profile``: ``None`` or ``"sysmon"`` keeps Sigma's (Sysmon) field names; any other
    profile of :func:`matcher.mapping.load_profile` maps the names per logsource category to
    S1 names, adds the logsource's event-type and OS conditions, then translates to that
    profile. ``logsource``: keep only rules whose logsource matches (a mapping of
    category/product/service, or a callable on pySigma's ``SigmaLogSource``).
    ``s1_backend``: what the SentinelOne backend makes of the rules instead (see
    :func:`~matcher.sigma.translate.translate_rule`; for explaining differences only).

    Logsource routing (``docs/sigma.md``): under a profile, each rule gets the condition by
    which the profile recognises its logsource (:func:`~matcher.sigma.logsource.route`). A rule
    whose logsource the profile cannot recognise is skipped or run unrouted per
    ``options.unrouted``; with ``into`` (a :class:`TreeLoad`) it is recorded there, without it a
    skipped rule is an :class:`UnsupportedFeature`. ``profile=None``: the detection alone.

    Filter documents (:mod:`.filters`) are collected into ``into.filters`` when ``into`` is
    given; otherwise they apply to the rules of this text, and a filter naming a rule not in
    it is a :class:`RuleError`.
    """
    opts = options or SigmaOptions()
    profile = _resolve(profile)
    docs, correlations = _split_correlations(_yaml_documents(text, source), source)
    try:  # what pySigma would not read, or read with a crash
        for doc in docs:
            _check_shape(doc)
        _check_merges(docs)
    except _Shape as e:
        raise RuleSyntaxError(str(e), text, e.node.start_mark.index, source=source, rule_id=e.rule_id) from None
    select = _selector(logsource)
    try:
        collection = SigmaCollection.from_dicts([d.data for d in docs], collect_errors=True,
                                                resolve_references=False, collect_filters=True,
                                                policy=SIGMA_POLICY) if docs else None
    except Exception as e:  # noqa: BLE001 - pySigma's own checks let TypeErrors & co. through
        raise _rule_error(e, docs, text, source) from (None if isinstance(e, SigmaError) else e)
    rules = list(collection) if collection is not None else []
    sigma_filters = list(collection.filters) if collection is not None else []
    own = {id(e) for r in rules + sigma_filters for e in r.errors}
    for e in getattr(collection, "errors", ()):  # collection-level: an unknown action, an alias bomb
        if id(e) not in own:
            raise _rule_error(e, docs, text, source) from None
    if not rules and not sigma_filters and not correlations:
        raise RuleError(f"{source or 'Sigma YAML'}: no Sigma rule in the document(s)")
    count = len(rules) + len(sigma_filters)
    filters = []
    for i, f in enumerate(sigma_filters, len(rules)):
        name = _rule_name(f, source, i, count)
        if f.errors:
            raise _rule_error(f.errors[0], docs, text, source, str(f.id) if f.id is not None else None) from None
        filters.append(_filter_doc(f, name, source, profile, opts))
    rule_docs = [d for d in docs if not (isinstance(d.data, dict) and "filter" in d.data)]
    out = []
    for i, (rule, (where, _)) in enumerate(zip(rules, _rule_documents(rule_docs))):
        name = _rule_name(rule, source, i, count)
        if isinstance(rule, SigmaCorrelationRule):
            raise UnsupportedFeature(name, "correlation rules", getattr(rule.type, "name", "").lower())
        rid = str(rule.id) if rule.id is not None else where[0].rule_id
        if rule.errors:
            raise _rule_error(rule.errors[0], where, text, source, rid) from None
        if select is not None and not select(rule.logsource):
            continue
        try:
            node = _rule_ir(rule, name, profile, s1_backend, opts)
        except UnsupportedFeature as e:
            raise _placed(e, where, text) from None
        except MatcherError:
            raise
        except Exception as e:  # noqa: BLE001 - pySigma parses conditions lazily, see _rule_ir
            raise _rule_error(e, where, text, source, rid) from (None if isinstance(e, (SigmaError, ValueError)) else e)
        if profile is not None:
            recognised, cond = route(rule.logsource, profile)
            if not recognised:
                key = logsource_key(rule.logsource) or "no logsource"
                if into is not None:
                    into.unrouted.setdefault(key, []).append(name)
                if opts.unrouted == "skip":
                    if into is None:
                        error = UnsupportedFeature(name, UNROUTED_FEATURE, f"{key} under profile "
                                                   f"{_profile_name(profile)} (unrouted='run' runs it on every event; "
                                                   "a profile's logsources table can name it)")
                        node = next((n for n in (_find(d.node, ("logsource",)) for d in where) if n is not None), None)
                        raise _at_node(error, node)
                    continue
            elif cond is not None:
                node = ir.and_(cond, node)
        info = _metadata(rule, name, source)
        if profile is not None:
            info.extra["profile"] = _profile_name(profile)
        out.append(RuleRecord(info, node, text))
    if into is not None:
        into.filters.extend(filters)
        return out + correlations
    out, problems = apply_filters(out, filters, _filtered)
    if problems:
        raise RuleError(problems[0])
    return out + correlations


def _placed(error: UnsupportedFeature, docs: list[_Doc], text: str) -> UnsupportedFeature:
    """An error about a place in the detection -- a placeholder (``.yaml_text``: ``%name%``) or
    a field-less keyword key (``.yaml_keyword``) -- with the line and column of the first
    detection key or value of ``docs`` that holds it (``.line``, ``.column``; also in the message)."""
    want = getattr(error, "yaml_text", None)
    keyword = getattr(error, "yaml_keyword", False)
    if want is None and not keyword:
        return error
    for doc in docs:
        det = _find(doc.node, ("detection",))
        for n in _walk(det) if det is not None else ():
            if not isinstance(n, yaml.MappingNode):
                continue
            for k, v in n.value:
                key = _scalar_text(k) or ""
                if keyword and n is not det and key.startswith("|"):
                    hit = k
                else:
                    hit = next((x for x in (k, *(v.value if isinstance(v, yaml.SequenceNode) else [v]))
                                if want and isinstance(x, yaml.ScalarNode) and want in x.value and x is not k), None)
                if hit is not None:
                    return _at_node(error, hit)
    return error


def _at_node(error: UnsupportedFeature, node: Any) -> UnsupportedFeature:
    """``error`` with the line and column of the YAML ``node`` (``.line``, ``.column``, and in
    its message); ``error`` itself when ``node`` is ``None``."""
    if node is None:
        return error
    mark = node.start_mark
    out = UnsupportedFeature(error.rule, error.feature, "; ".join(
        x for x in (error.detail, f"line {mark.line + 1}, column {mark.column + 1}") if x))
    out.__dict__.update({a: getattr(error, a) for a in ("placeholder", "yaml_text", "yaml_keyword")
                         if hasattr(error, a)})
    out.line, out.column = mark.line + 1, mark.column + 1  # type: ignore[attr-defined]
    return out


def field_positions(text: str, rule_id: Optional[str] = None) -> dict[str, tuple[int, int]]:
    """Where each field of a Sigma YAML text's detections is first named: field name (as the
    rule writes it, before ``|``; the field a ``|fieldref`` value names too) -> 1-based ``(line,
    column)`` of that key or value. With ``rule_id``, the document with that ``id`` is looked at
    first. ``{}`` when the text does not parse."""
    try:
        docs = _yaml_documents(text, None)
    except MatcherError:
        return {}
    docs.sort(key=lambda d: d.rule_id != rule_id)  # stable: the rule's own document first
    out: dict[str, tuple[int, int]] = {}
    for doc in docs:
        if not isinstance(doc.node, yaml.MappingNode):
            continue
        for section in ("detection", "filter"):
            det = _find(doc.node, (section,))
            for n in _walk(det) if isinstance(det, yaml.MappingNode) else ():
                if not isinstance(n, yaml.MappingNode):
                    continue
                for k, v in n.value:
                    key = _scalar_text(k)
                    if key is None or n is det:  # the detection's own keys name selections
                        continue
                    name, *mods = key.split("|")
                    if name:
                        out.setdefault(name, (k.start_mark.line + 1, k.start_mark.column + 1))
                    if "fieldref" in mods:
                        for x in (v.value if isinstance(v, yaml.SequenceNode) else [v]):
                            if _scalar_text(x):
                                out.setdefault(x.value, (x.start_mark.line + 1, x.start_mark.column + 1))
    return out


def _split_correlations(docs: list[_Doc], source: Optional[str]) -> tuple[list[_Doc], list]:
    """The documents of one YAML file: ``(the others, the correlation rules parsed)``; a
    correlation's errors name the file and the line and column of its ``correlation`` key."""
    if not any(isinstance(d.data, dict) and "correlation" in d.data for d in docs):
        return docs, []
    from ..correlation.rule import parse_correlation

    rest, out = [], []
    for i, d in enumerate(docs):
        if not (isinstance(d.data, dict) and "correlation" in d.data):
            rest.append(d)
            continue
        where = f"document {i + 1}"
        for k, _ in d.node.value:
            if getattr(k, "value", None) == "correlation":
                where = f"line {k.start_mark.line + 1}, column {k.start_mark.column + 1}"
        out.append(parse_correlation(d.data, where=f"{source or 'Sigma YAML'}:{where}", source=source))
    return rest, out


def _rule_documents(docs: list[_Doc]):
    """For each rule pySigma makes of ``docs`` (``SigmaCollection.from_dicts``'s order): the
    documents merged into it, its own first, and the pairs ``(dest, src)`` that pySigma's
    ``deep_dict_update`` merges (``src`` into ``dest``)."""
    glob: list[_Doc] = []
    prev: list[_Doc] = []
    for doc in docs:
        action = doc.data.get("action")
        if action == "global":
            glob = prev = [doc]
        elif action == "reset":
            glob = []
        elif action is None:
            prev = [doc, *glob]
            yield prev, [(doc, g) for g in glob]
        elif action == "repeat":
            merged = [doc, *prev]
            if prev is glob:  # pySigma merges a repeat right after the global one into it
                glob = merged
            prev = merged
            yield prev, [(p, doc) for p in prev[1:]]


def _check_merges(docs: list[_Doc]) -> None:
    """Raise :class:`_Shape` where ``action: global``/``repeat`` would merge a map into a key
    that is not a map in the other document (pySigma fails with an ``AttributeError``)."""
    seen: set = set()
    for where, pairs in _rule_documents(docs):
        rule_id = next((d.rule_id for d in where if d.rule_id), None)  # a repeat keeps the id
        stack = [(dest.node, src.node) for dest, src in pairs]
        while stack:
            dest, src = stack.pop()
            if (id(dest), id(src)) in seen or not isinstance(src, yaml.MappingNode):
                continue
            seen.add((id(dest), id(src)))
            theirs = {k.value: v for k, v in dest.value if isinstance(k, yaml.ScalarNode)}
            for k, v in src.value:
                other = theirs.get(k.value) if isinstance(k, yaml.ScalarNode) else None
                if other is None or not isinstance(v, yaml.MappingNode):
                    continue
                if not isinstance(other, yaml.MappingNode):
                    raise _Shape(f"{k.value} is a map in the document merged into this one "
                                 f"(line {v.start_mark.line + 1}), not a {_kind(other)}", other, rule_id)
                stack.append((other, v))


def _rule_error(error: BaseException, docs: list[_Doc], text: str, source: Optional[str],
                rule_id: Optional[str] = None) -> RuleSyntaxError:
    """A pySigma error (or a crash inside pySigma) as a :class:`RuleSyntaxError` at the place
    it is about (:func:`_locate`)."""
    if isinstance(error, (SigmaError, ValueError)):
        message = str(error)
    else:
        message = f"pySigma cannot read this rule ({type(error).__name__}: {error})"
    node = _locate(docs, error)
    if rule_id is None and docs:
        rule_id = docs[0].rule_id
    offset = node.start_mark.index if node is not None else 0
    at = _AT_CHAR.search(message)
    if at and isinstance(node, yaml.ScalarNode) and not node.style and "\n" not in node.value \
            and text[offset : offset + len(node.value)] == node.value:
        offset += min(int(at.group(1)), len(node.value))  # pyparsing's place in a plain condition
    return RuleSyntaxError(message, text, offset, source=source, rule_id=rule_id)


_AT_CHAR = re.compile(r"\(at char (\d+)\)")


def _resolve(profile: Any) -> Any:
    """``None`` (the detection alone) or the :class:`~matcher.mapping.Profile` object."""
    from ..mapping import load_profile

    return None if profile is None else load_profile(profile)


def _profile_name(profile: Any) -> str:
    from ..mapping import load_profile

    return load_profile(profile).name


def _filtered(record: RuleRecord, node: ir.Node) -> RuleRecord:
    return record._replace(ir=node)


def _filter_doc(f: SigmaFilter, name: str, source: Optional[str], profile: Any, opts: SigmaOptions) -> SigmaFilterDoc:
    """A filter's condition as IR, translated like a rule of its logsource (no routing)."""
    from sigma.rule import SigmaDetections

    as_rule = SigmaRule(title=f.title or name, logsource=f.logsource,
                        detection=SigmaDetections(f.filter.detections, f.filter.condition))
    try:
        node = _rule_ir(as_rule, name, profile, False, opts)
    except MatcherError:
        raise
    except Exception as e:  # noqa: BLE001 - pySigma's lazy checks (SigmaError, ValueError, ...)
        raise RuleError(f"{name}: {e}") from None
    refs = () if isinstance(f.filter.rules, str) else tuple(str(r.reference) for r in f.filter.rules)
    ls = tuple((k, getattr(f.logsource, k)) for k in ("category", "product", "service") if getattr(f.logsource, k))
    return SigmaFilterDoc(name=name, rules=refs, logsource=ls, node=node, source=source)


def _rule_ir(rule: SigmaRule, name: str, profile: Any, s1_backend: bool = False,
             opts: Optional[SigmaOptions] = None) -> ir.Node:
    profile = _resolve(profile)
    s1 = profile is not None and profile is not PROFILES["sysmon"]
    opts = opts or SigmaOptions()
    # pySigma checks conditions and values lazily: its errors surface here, and the callers place
    # them in the YAML (parse_sigma_records: _rule_error; _filter_doc: the filter's name)
    node = translate_rule(rule, name=name, field_map=s1_field_map(rule.logsource) if s1 else None,
                          s1_backend=s1_backend, placeholders=opts.placeholders, timestamp=opts.timestamp)
    return in_profile(node, profile) if s1 else node  # without S1 names (no profile, sysmon): as translated


def load_sigma_records(path: Union[str, "os.PathLike[str]"], *, profile: Any = None, logsource: LogsourceSpec = None,
                       options: Optional[SigmaOptions] = None, filters: Any = None) -> list:
    """The rules of one Sigma YAML file as records (see :func:`parse_sigma_records`); ``filters``:
    filter files (or :class:`~matcher.sigma.filters.SigmaFilterDoc` objects) to apply to them as well."""
    p = Path(path)
    if not filters:
        return parse_sigma_records(read_rule_text(p), source=str(p), profile=profile, logsource=logsource,
                                   options=options)
    load = load_sigma_files_records([p], profile=profile, logsource=logsource, options=options, filters=filters, strict=True)
    if load.filter_problems:
        raise RuleError(load.filter_problems[0])
    unrouted = load.report(profile, options)
    if unrouted and (options or SigmaOptions()).unrouted == "skip":
        raise UnsupportedFeature(str(p), UNROUTED_FEATURE, unrouted[0])
    return load.rules


def load_filters(specs: Any, *, profile: Any = None, options: Optional[SigmaOptions] = None) -> list[SigmaFilterDoc]:
    """Filter documents from files (a path or a list of paths; a file may hold several)."""
    if isinstance(specs, (str, os.PathLike, SigmaFilterDoc)):
        specs = [specs]
    out: list[SigmaFilterDoc] = []
    for spec in specs:
        if isinstance(spec, SigmaFilterDoc):
            out.append(spec)
            continue
        holder = TreeLoad()
        rules = parse_sigma_records(read_rule_text(Path(spec)), source=str(spec), profile=profile, options=options, into=holder)
        if rules or holder.unrouted:
            raise RuleError(f"{spec}: a filters file holds rules too; load it as rules (its filters apply then)")
        out.extend(holder.filters)
    return out


@dataclass
class TreeLoad:
    """What :func:`load_sigma_tree_records` read: the rules (records here; ``Rule`` objects from
    :func:`matcher.sigma.load_sigma_tree` and the other public loaders), and every file that
    failed, with why.

    ``unrouted``: logsource -> the rules whose logsource the profile cannot recognise (skipped or
    run unrouted, per the ``unrouted`` option); ``filters``: the filter documents found (already
    applied to ``rules``); ``filter_problems``: filter references that name no loaded rule.
    """

    rules: list = field(default_factory=list)
    failures: list[tuple[str, MatcherError]] = field(default_factory=list)
    files: int = 0
    unrouted: dict[str, list[str]] = field(default_factory=dict)
    filters: list[SigmaFilterDoc] = field(default_factory=list)
    filter_problems: list[str] = field(default_factory=list)

    def unsupported(self) -> dict[str, int]:
        """Failures by unsupported feature (others under ``"error"``)."""
        out: dict[str, int] = {}
        for _, e in self.failures:
            key = e.feature if isinstance(e, UnsupportedFeature) else "error"
            out[key] = out.get(key, 0) + 1
        return out

    def report(self, profile: Any = None, options: Optional[SigmaOptions] = None) -> list[str]:
        """One message per logsource the profile cannot recognise (what became of its rules)."""
        how = "run on every event (unrouted)" if (options or SigmaOptions()).unrouted == "run" else "skipped"
        name = _profile_name(profile) if profile is not None else "none"
        return [f"profile {name} cannot recognise logsource {key}: {len(names)} rule(s) {how} (e.g. {names[0]})"
                for key, names in sorted(self.unrouted.items())]


def load_sigma_files_records(paths: Any, *, profile: Any = None, logsource: LogsourceSpec = None, strict: bool = False,
                             options: Optional[SigmaOptions] = None, filters: Any = None) -> TreeLoad:
    """Sigma files as one load: rules, the filters found among them and in ``filters`` (files
    or filter objects) applied to the rules they name, unrouted logsources recorded."""
    profile = _resolve(profile)  # once: a profile file is read once per load, not per rule
    extra = load_filters(filters, profile=profile, options=options) if filters else []
    return _load_many(((str(p), lambda p=p: read_rule_text(Path(p))) for p in paths), profile, logsource, strict, options, extra)


def load_sigma_tree_records(
    root: Union[str, "os.PathLike[str]"],
    *,
    profile: Any = None,
    logsource: LogsourceSpec = None,
    strict: bool = False,
    options: Optional[SigmaOptions] = None,
    filters: Any = None,
) -> TreeLoad:
    """Every ``*.yml``/``*.yaml`` under ``root``, in path order.

    A file that fails is recorded in ``failures`` (never dropped silently), or raised at once
    with ``strict=True``. Rules filtered out by ``logsource`` are not errors.
    """
    base = Path(root)
    if not base.is_dir():
        raise RuleError(f"{base}: not a directory")
    paths = sorted(p for p in base.rglob("*") if p.suffix.lower() in SIGMA_SUFFIXES and p.is_file())
    return load_sigma_files_records(paths, profile=profile, logsource=logsource, strict=strict, options=options, filters=filters)


def load_sigma_tar_records(
    archive: Union[str, "os.PathLike[str]"],
    *,
    profile: Any = None,
    logsource: LogsourceSpec = None,
    strict: bool = False,
    options: Optional[SigmaOptions] = None,
    filters: Any = None,
) -> TreeLoad:
    """Every ``*.yml``/``*.yaml`` member of a tar archive (any compression ``tarfile`` reads),
    in member-name order; failures and ``filters`` as in :func:`load_sigma_tree_records`. Sources are
    ``archive:member``."""
    members = archive_members(archive, SIGMA_SUFFIXES)  # read first: an unreadable archive is the error
    profile = _resolve(profile)
    extra = load_filters(filters, profile=profile, options=options) if filters else []
    return _load_many(((f"{archive}:{m}", read) for m, read in members), profile, logsource, strict, options, extra)


def _load_many(items, profile: Any, logsource: LogsourceSpec, strict: bool, options: Optional[SigmaOptions],
               filters: list[SigmaFilterDoc]) -> TreeLoad:
    result = TreeLoad(filters=list(filters))
    for name, read in items:
        result.files += 1
        try:
            result.rules.extend(parse_sigma_records(read(), source=name, profile=profile, logsource=logsource,
                                                    options=options, into=result))
        except MatcherError as e:
            if strict:
                raise
            result.failures.append((name, e))
    result.rules, result.filter_problems = apply_filters(result.rules, result.filters, _filtered)
    return result
