"""Sigma log sources: filtering rules by logsource, and running Sigma rules on S1-named events.

A Sigma rule names fields as Sysmon does (``Image``, ``CommandLine``) and says which events it
is about in its ``logsource``. To run it on events of another schema the field names are
mapped per logsource category (:data:`matcher.mapping.SIGMA_TO_S1`, the SentinelOne
backend's tables) and the logsource becomes conditions on the event type and OS, as the
SentinelOne pipeline writes them (``docs/s1ql-spec.md`` section 6); the result is in S1 names
and :func:`matcher.mapping.translate` takes it to any other profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Optional

from sigma.rule import SigmaLogSource

from .. import ir
from ..ir import Op, Pred

__all__ = ["logsource_filter", "s1_field_map", "s1_logsource_condition", "CATEGORY_ALIASES"]

#: Sigma categories that share another category's field table.
CATEGORY_ALIASES = {
    "file_change": "file_event",
    "file_rename": "file_event",
    "file_delete": "file_event",
    "file_access": "file_event",
    "registry_add": "registry_event",
    "registry_delete": "registry_event",
    "registry_set": "registry_event",
    "registry_rename": "registry_event",
    "dns": "dns_query",
    "firewall": "network_connection",
    "pipe_created": "pipe_creation",
}

_PRODUCT = {"windows": "windows", "linux": "linux", "macos": "osx"}
_EVENT_TYPE = {
    "process_creation": "Process Creation",
    "file_change": "File Modification",
    "file_rename": "File Rename",
    "file_delete": "File Delete",
    "image_load": "ModuleLoad",
    "pipe_creation": "Named Pipe Creation",
}
_OBJECT_TYPE = {
    "file_event": ("File",),
    "registry_add": ("Registry",),
    "registry_delete": ("Registry",),
    "registry_event": ("Registry",),
    "registry_set": ("Registry",),
    "dns_query": ("DNS",),
    "dns": ("DNS",),
    "network_connection": ("DNS", "Url", "IP"),
}


def logsource_filter(
    category: Optional[str] = None, product: Optional[str] = None, service: Optional[str] = None
) -> Callable[[SigmaLogSource], bool]:
    """A test for rules' log sources: every given key must equal the rule's (pySigma's rule)."""
    want = {k: v for k, v in (("category", category), ("product", product), ("service", service)) if v}

    def test(ls: SigmaLogSource) -> bool:
        return all(getattr(ls, k) == v for k, v in want.items())

    return test


def s1_field_map(logsource: SigmaLogSource) -> Callable[[str], str]:
    """Sigma field name -> S1 name for rules of this logsource (unknown names are kept)."""
    from ..mapping import SIGMA_TO_S1

    cat = logsource.category or ""
    table: Mapping[str, str] = SIGMA_TO_S1.get(CATEGORY_ALIASES.get(cat, cat), {})
    return lambda name: table.get(name, name)


def s1_logsource_condition(logsource: SigmaLogSource) -> Optional[ir.Node]:
    """The event-type and OS conditions the SentinelOne pipeline adds for this logsource."""
    items: list[ir.Node] = []
    cat = logsource.category
    if cat in _EVENT_TYPE:
        items.append(Pred("EventType", Op.EQUALS, _EVENT_TYPE[cat]))
    elif cat in _OBJECT_TYPE:
        items.append(ir.or_(*(Pred("ObjectType", Op.EQUALS, v) for v in _OBJECT_TYPE[cat])))
    if logsource.product in _PRODUCT:
        items.append(Pred("EndpointOS", Op.EQUALS, _PRODUCT[logsource.product]))
    return ir.and_(*items) if items else None
