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
from ..errors import MatcherError, QuerySyntaxError, RuleError, UnsupportedFeature
from .logsource import logsource_filter, s1_field_map, s1_logsource_condition
from .translate import translate_rule

__all__ = ["parse_sigma", "load_sigma", "load_sigma_tree", "load_sigma_tar", "TreeLoad", "SIGMA_SUFFIXES"]

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
) -> list:
    """The rules of one Sigma YAML text (one document, or several: a list).

    ``profile``: ``None`` or ``"sysmon"`` keeps Sigma's (Sysmon) field names; any other
    profile of :func:`matcher.mapping.load_profile` maps the names per logsource category to
    S1 names, adds the logsource's event-type and OS conditions, then translates to that
    profile. ``logsource``: keep only rules whose logsource matches (a mapping of
    category/product/service, or a callable on pySigma's ``SigmaLogSource``).
    ``s1_backend``: what the SentinelOne backend makes of the rules instead (see
    :func:`~matcher.sigma.translate.translate_rule`; for explaining differences only).
    """
    from ..api import Rule

    from ..correlation.rule import split_correlations

    docs, correlations = split_correlations(_yaml_documents(text, source), text, source)
    select = _selector(logsource)
    try:
        collection = SigmaCollection.from_dicts(docs, collect_errors=True, resolve_references=False) if docs else ()
    except SigmaError as e:
        raise RuleError(f"{source or 'Sigma YAML'}: {e}") from None
    items = list(collection)
    if not items and not correlations:
        raise RuleError(f"{source or 'Sigma YAML'}: no Sigma rule in the document(s)")
    out = []
    for i, rule in enumerate(items):
        name = _rule_name(rule, source, i, len(items))
        if isinstance(rule, SigmaCorrelationRule):
            raise UnsupportedFeature(name, "correlation rules", getattr(rule.type, "name", "").lower())
        if isinstance(rule, SigmaFilter):
            raise UnsupportedFeature(name, "filter documents (Sigma meta-filters)")
        if rule.errors:
            raise RuleError(f"{name}: {rule.errors[0]}")
        if select is not None and not select(rule.logsource):
            continue
        out.append(Rule(_rule_ir(rule, name, profile, s1_backend), _metadata(rule, name, source), text))
    return out + correlations


def _rule_ir(rule: SigmaRule, name: str, profile: Any, s1_backend: bool = False) -> ir.Node:
    s1 = profile not in (None, "sysmon")
    try:
        node = translate_rule(rule, name=name, field_map=s1_field_map(rule.logsource) if s1 else None,
                              s1_backend=s1_backend)
    except SigmaError as e:  # pySigma checks conditions and values lazily
        raise RuleError(f"{name}: {e}") from None
    except ValueError as e:
        if isinstance(e, MatcherError):
            raise
        raise RuleError(f"{name}: {e}") from None  # e.g. nesting deeper than ir.MAX_DEPTH
    if not s1:
        return node
    cond = s1_logsource_condition(rule.logsource)
    if cond is not None:
        node = ir.and_(cond, node)
    if profile == "s1":
        return node
    from ..mapping import translate

    return translate(node, "s1", profile)


def load_sigma(path: Union[str, "os.PathLike[str]"], *, profile: Any = None, logsource: LogsourceSpec = None) -> list:
    """The rules of one Sigma YAML file (see :func:`parse_sigma`)."""
    p = Path(path)
    return parse_sigma(_read(p), source=str(p), profile=profile, logsource=logsource)


@dataclass
class TreeLoad:
    """What :func:`load_sigma_tree` read: the rules, and every file that failed, with why."""

    rules: list = field(default_factory=list)
    failures: list[tuple[str, MatcherError]] = field(default_factory=list)
    files: int = 0

    def unsupported(self) -> dict[str, int]:
        """Failures by unsupported feature (others under ``"error"``)."""
        out: dict[str, int] = {}
        for _, e in self.failures:
            key = e.feature if isinstance(e, UnsupportedFeature) else "error"
            out[key] = out.get(key, 0) + 1
        return out


def load_sigma_tree(
    root: Union[str, "os.PathLike[str]"],
    *,
    profile: Any = None,
    logsource: LogsourceSpec = None,
    strict: bool = False,
) -> TreeLoad:
    """Every ``*.yml``/``*.yaml`` under ``root``, in path order.

    A file that fails is recorded in ``failures`` (never dropped silently), or raised at once
    with ``strict=True``. Rules filtered out by ``logsource`` are not errors.
    """
    base = Path(root)
    if not base.is_dir():
        raise RuleError(f"{base}: not a directory")
    paths = sorted(p for p in base.rglob("*") if p.suffix.lower() in SIGMA_SUFFIXES and p.is_file())
    return _load_many(((str(p), lambda p=p: _read(p)) for p in paths), profile, logsource, strict)


def load_sigma_tar(
    archive: Union[str, "os.PathLike[str]"],
    *,
    profile: Any = None,
    logsource: LogsourceSpec = None,
    strict: bool = False,
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

    return _load_many(((n, lambda n=n, d=d: decode(n, d)) for n, d in texts), profile, logsource, strict)


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(f"{p}: cannot read rule file: {e}") from None


def _load_many(items, profile: Any, logsource: LogsourceSpec, strict: bool) -> TreeLoad:
    result = TreeLoad()
    for name, read in items:
        result.files += 1
        try:
            result.rules.extend(parse_sigma(read(), source=name, profile=profile, logsource=logsource))
        except MatcherError as e:
            if strict:
                raise
            result.failures.append((name, e))
    return result
