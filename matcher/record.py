"""The rule record every front end returns: :class:`RuleInfo` (the metadata) and
:class:`RuleRecord` (metadata, IR, source text). :mod:`matcher.api` alone turns records into
:class:`~matcher.Rule` objects. Plain data: imports nothing but the IR's types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

from . import ir as _ir

__all__ = ["RuleInfo", "RuleRecord"]


@dataclass(frozen=True)
class RuleInfo:
    """Everything about a rule except its logic."""

    id: str
    title: str
    author: str = ""
    date: str = ""
    level: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    references: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    source: Optional[str] = None  # file the rule was read from
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class RuleRecord(NamedTuple):
    """One rule as a front end read it: ``(info, ir, query)``, unpacked like the tuple it is.
    ``query`` is the text the rule was written in (``Rule.source_query``)."""

    info: RuleInfo
    ir: _ir.Node
    query: str
