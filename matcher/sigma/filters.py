"""Sigma filters (``sigma-filters-specification.md``): documents that add exclusions to rules.

A filter names the rules it applies to (``filter.rules``: ids or names, or ``any``), a
logsource, detections and one condition. It is applied at load time: each rule it names whose
logsource the filter's covers becomes ``rule AND filter-condition`` (as pySigma writes it).
Filters are applied in the IR, so a filter in its own file applies to rules of other files
(:class:`~matcher.sigma.loader.TreeLoad`, ``matcher scan --filter``, ``-r`` trees), and a
filter in a rule's file to the rules of that file. A reference to a rule that is not loaded
is reported (:attr:`FilterSet.unmatched`), never dropped silently; a file holding only filters
is not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from .. import ir

__all__ = ["SigmaFilterDoc", "apply_filters"]


@dataclass(frozen=True)
class SigmaFilterDoc:
    """One loaded filter: what it names, where it applies, and its condition as IR."""

    name: str  # file and id, for messages
    rules: tuple[str, ...]  # ids or names; () for ``any``
    logsource: tuple[tuple[str, str], ...]  # the keys it sets
    node: ir.Node  # its condition (already in the profile's names)
    source: Optional[str] = None

    def covers(self, logsource: dict) -> bool:
        """The filter's logsource keys all equal the rule's (pySigma's ``rule.logsource in filter.logsource``)."""
        return all(logsource.get(k) == v for k, v in self.logsource)

    def names(self, rule: Any) -> bool:
        if not self.rules:
            return True
        extra = rule.info.extra
        return any(ref in (rule.info.id, extra.get("name")) for ref in self.rules)


def apply_filters(rules: list, filters: list[SigmaFilterDoc],
                  make_rule: Callable[[Any, ir.Node], Any]) -> tuple[list, list[str]]:
    """The rules with every filter that names them applied; messages for filter references
    that name no loaded rule (or only rules outside the filter's logsource)."""
    if not filters:
        return rules, []
    out, problems = [], []
    used: dict[tuple[int, str], bool] = {}
    for rule in rules:
        if not hasattr(rule, "ir"):  # a correlation rule: filters do not apply to them (pySigma)
            out.append(rule)
            continue
        node = rule.ir
        logsource = rule.info.extra.get("logsource", {}) if rule.info.extra.get("format") == "sigma" else None
        for i, f in enumerate(filters):
            if logsource is None or not f.names(rule):
                continue
            for ref in f.rules:
                if ref in (rule.info.id, rule.info.extra.get("name")):
                    used[(i, ref)] = used.get((i, ref), False) or f.covers(logsource)
            if f.covers(logsource):
                node = ir.and_(node, f.node)
        out.append(rule if node is rule.ir else make_rule(rule, node))
    for i, f in enumerate(filters):
        for ref in f.rules:
            if (i, ref) not in used:
                problems.append(f"{f.name}: filter names rule {ref!r}, which is not loaded: not applied")
            elif not used[(i, ref)]:
                problems.append(f"{f.name}: filter names rule {ref!r}, whose logsource its logsource "
                                f"({', '.join(f'{k}={v}' for k, v in f.logsource)}) does not cover: not applied")
    return out, problems
