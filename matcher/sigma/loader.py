"""Sigma YAML -> :class:`~matcher.Rule`: files, multi-document files and rule trees.

pySigma reads the YAML (its collection actions ``global``/``reset``/``repeat`` included) and
checks each rule; :mod:`.translate` writes the IR. Errors are :class:`~matcher.MatcherError`:
a YAML syntax error is a :class:`~matcher.QuerySyntaxError` with line, column and caret; a
rule pySigma rejects is a :class:`~matcher.RuleError` carrying pySigma's message; a feature
matcher does not implement is :class:`~matcher.errors.UnsupportedFeature`.
"""

from __future__ import annotations

import os
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
from ..mapping import PROFILES
from ..errors import MatcherError, QuerySyntaxError, RuleError, UnsupportedFeature
from .filters import SigmaFilterDoc, apply_filters
from .logsource import UNROUTED_MODES, logsource_filter, logsource_key, route, s1_field_map
from .placeholders import check_placeholders
from .translate import translate_rule

__all__ = ["parse_sigma", "load_sigma", "load_sigma_tree", "load_sigma_tar", "load_sigma_files", "load_filters",
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


def _yaml_documents(text: str, source: Optional[str]) -> list:
    try:
        return list(yaml.load_all(text, Loader=yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        offset = mark.index if mark is not None else 0
        raise QuerySyntaxError(f"YAML: {e.problem or e.context}", text, offset, source=source) from None
    except yaml.YAMLError as e:
        raise RuleError(f"{source or 'Sigma YAML'}: {e}") from None


def _metadata(rule: SigmaRule, name: str, source: Optional[str]) -> Any:
    from ..rules import RuleInfo

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
            "name": rule.name,  # what a correlation rule may name it by
            "status": rule.status.name.lower() if rule.status else "",
            "logsource": logsource,
            "modified": rule.modified.isoformat() if rule.modified else "",
            "name": getattr(rule, "name", None) or "",
        },
    )


def _rule_name(rule: Any, source: Optional[str], index: int, count: int) -> str:
    where = source or "Sigma rule"
    if count > 1:
        where += f" (document {index + 1})"
    rid = getattr(rule, "id", None)
    return f"{where} [{rid}]" if rid else where


def parse_sigma(
    text: str,
    *,
    source: Optional[str] = None,
    profile: Any = None,
    logsource: LogsourceSpec = None,
    s1_backend: bool = False,
    options: Optional[SigmaOptions] = None,
    into: Optional["TreeLoad"] = None,
) -> list:
    """The rules of one Sigma YAML text (one document, or several: a list).

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
    from ..api import Rule

    from ..correlation.rule import split_correlations

    opts = options or SigmaOptions()
    profile = _resolve(profile)
    docs, correlations = split_correlations(_yaml_documents(text, source), text, source)
    select = _selector(logsource)
    try:
        collection = SigmaCollection.from_dicts(docs, collect_errors=True, resolve_references=False,
                                                collect_filters=True) if docs else None
    except SigmaError as e:
        raise RuleError(f"{source or 'Sigma YAML'}: {e}") from None
    items = (list(collection) + list(collection.filters)) if collection is not None else []
    if not items and not correlations:
        raise RuleError(f"{source or 'Sigma YAML'}: no Sigma rule in the document(s)")
    out = []
    filters = []
    for i, rule in enumerate(items):
        name = _rule_name(rule, source, i, len(items))
        if isinstance(rule, SigmaCorrelationRule):
            raise UnsupportedFeature(name, "correlation rules", getattr(rule.type, "name", "").lower())
        if rule.errors:
            raise RuleError(f"{name}: {rule.errors[0]}")
        if isinstance(rule, SigmaFilter):
            filters.append(_filter_doc(rule, name, source, profile, opts))
            continue
        if select is not None and not select(rule.logsource):
            continue
        node = _rule_ir(rule, name, profile, s1_backend, opts)
        if profile is not None:
            recognised, cond = route(rule.logsource, profile)
            if not recognised:
                key = logsource_key(rule.logsource) or "no logsource"
                if into is not None:
                    into.unrouted.setdefault(key, []).append(name)
                if opts.unrouted == "skip":
                    if into is None:
                        raise UnsupportedFeature(name, UNROUTED_FEATURE, f"{key} under profile {_profile_name(profile)} "
                                                 "(unrouted='run' runs it on every event; a profile's logsources table "
                                                 "can name it)")
                    continue
            elif cond is not None:
                node = ir.and_(cond, node)
        info = _metadata(rule, name, source)
        if profile is not None:
            info.extra["profile"] = _profile_name(profile)
        out.append(Rule(node, info, text))
    if into is not None:
        into.filters.extend(filters)
        return out + correlations
    out, problems = apply_filters(out, filters, _filtered)
    if problems:
        raise RuleError(problems[0])
    return out + correlations


def _resolve(profile: Any) -> Any:
    """``None`` (the detection alone) or the :class:`~matcher.mapping.Profile` object."""
    from ..mapping import load_profile

    return None if profile is None else load_profile(profile)


def _profile_name(profile: Any) -> str:
    from ..mapping import load_profile

    return load_profile(profile).name


def _filtered(rule: Any, node: ir.Node) -> Any:
    from ..api import Rule

    return Rule(node, rule.info, rule.source_query)


def _filter_doc(f: SigmaFilter, name: str, source: Optional[str], profile: Any, opts: SigmaOptions) -> SigmaFilterDoc:
    """A filter's condition as IR, translated like a rule of its logsource (no routing)."""
    from sigma.rule import SigmaDetections

    as_rule = SigmaRule(title=f.title or name, logsource=f.logsource,
                        detection=SigmaDetections(f.filter.detections, f.filter.condition))
    node = _rule_ir(as_rule, name, profile, False, opts)
    refs = () if isinstance(f.filter.rules, str) else tuple(str(r.reference) for r in f.filter.rules)
    ls = tuple((k, getattr(f.logsource, k)) for k in ("category", "product", "service") if getattr(f.logsource, k))
    return SigmaFilterDoc(name=name, rules=refs, logsource=ls, node=node, source=source)


def _rule_ir(rule: SigmaRule, name: str, profile: Any, s1_backend: bool = False,
             opts: Optional[SigmaOptions] = None) -> ir.Node:
    profile = _resolve(profile)
    s1 = profile is not None and profile is not PROFILES["sysmon"]
    opts = opts or SigmaOptions()
    try:
        node = translate_rule(rule, name=name, field_map=s1_field_map(rule.logsource) if s1 else None,
                              s1_backend=s1_backend, placeholders=opts.placeholders, timestamp=opts.timestamp)
    except SigmaError as e:  # pySigma checks conditions and values lazily
        raise RuleError(f"{name}: {e}") from None
    except ValueError as e:
        if isinstance(e, MatcherError):
            raise
        raise RuleError(f"{name}: {e}") from None  # e.g. nesting deeper than ir.MAX_DEPTH
    if not s1 or profile is PROFILES["s1"]:
        return node
    from ..mapping import translate

    return translate(node, "s1", profile)


def load_sigma(path: Union[str, "os.PathLike[str]"], *, profile: Any = None, logsource: LogsourceSpec = None,
               options: Optional[SigmaOptions] = None, filters: Any = None) -> list:
    """The rules of one Sigma YAML file (see :func:`parse_sigma`); ``filters``: filter files (or
    :class:`~matcher.sigma.filters.SigmaFilterDoc` objects) to apply to them as well."""
    p = Path(path)
    if not filters:
        return parse_sigma(_read(p), source=str(p), profile=profile, logsource=logsource, options=options)
    load = load_sigma_files([p], profile=profile, logsource=logsource, options=options, filters=filters, strict=True)
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
        rules = parse_sigma(_read(Path(spec)), source=str(spec), profile=profile, options=options, into=holder)
        if rules or holder.unrouted:
            raise RuleError(f"{spec}: a filters file holds rules too; load it as rules (its filters apply then)")
        out.extend(holder.filters)
    return out


@dataclass
class TreeLoad:
    """What :func:`load_sigma_tree` read: the rules, and every file that failed, with why.

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


def load_sigma_files(paths: Any, *, profile: Any = None, logsource: LogsourceSpec = None, strict: bool = False,
                     options: Optional[SigmaOptions] = None, filters: Any = None) -> TreeLoad:
    """Sigma files as one load: rules, the filters found among them and in ``filters`` (files
    or filter objects) applied to the rules they name, unrouted logsources recorded."""
    profile = _resolve(profile)  # once: a profile file is read once per load, not per rule
    extra = load_filters(filters, profile=profile, options=options) if filters else []
    return _load_many(((str(p), lambda p=p: _read(Path(p))) for p in paths), profile, logsource, strict, options, extra)


def load_sigma_tree(
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
    return load_sigma_files(paths, profile=profile, logsource=logsource, strict=strict, options=options, filters=filters)


def load_sigma_tar(
    archive: Union[str, "os.PathLike[str]"],
    *,
    profile: Any = None,
    logsource: LogsourceSpec = None,
    strict: bool = False,
    options: Optional[SigmaOptions] = None,
) -> TreeLoad:
    """Every ``*.yml``/``*.yaml`` member of a tar archive (any compression ``tarfile`` reads),
    in member-name order; failures as in :func:`load_sigma_tree`. Sources are
    ``archive:member``."""
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(SIGMA_SUFFIXES)),
                             key=lambda m: m.name)
            texts = [(f"{archive}:{m.name}", tar.extractfile(m).read()) for m in members]
    except (OSError, tarfile.TarError) as e:
        raise RuleError(f"{archive}: cannot read rule archive: {e}") from None

    def decode(name: str, data: bytes) -> str:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise RuleError(f"{name}: cannot read rule file: {e}") from None

    return _load_many(((n, lambda n=n, d=d: decode(n, d)) for n, d in texts), profile, logsource, strict, options, [])


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(f"{p}: cannot read rule file: {e}") from None


def _load_many(items, profile: Any, logsource: LogsourceSpec, strict: bool, options: Optional[SigmaOptions],
               filters: list[SigmaFilterDoc]) -> TreeLoad:
    result = TreeLoad(filters=list(filters))
    for name, read in items:
        result.files += 1
        try:
            result.rules.extend(parse_sigma(read(), source=name, profile=profile, logsource=logsource,
                                            options=options, into=result))
        except MatcherError as e:
            if strict:
                raise
            result.failures.append((name, e))
    result.rules, result.filter_problems = apply_filters(result.rules, result.filters, _filtered)
    return result
