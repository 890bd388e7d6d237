"""Rules: an IR tree plus its metadata, read from rule cards, query files or query text.

A *rule card* is the markdown format the flagship rule ships in (``## Title``, ``## ID``,
``## Author``, ..., and the query in a fenced block under ``## SentinelOne Query``). Any
other file is read as one bare S1QL query.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

from . import ir as _ir
from .errors import QuerySyntaxError, RuleError
from .s1ql import parse

__all__ = ["RuleInfo", "parse_rule_card", "parse_rule_text", "load_path", "builtin_rules", "default_id", "rule_files", "RULE_SUFFIXES"]


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


def default_id(query: str) -> str:
    """A stable id for a rule given only as text: a hash of the query."""
    return "s1ql-" + hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t]*$", re.M)
_FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def _items(text: str, sep: str = "lines") -> tuple[str, ...]:
    text = text.strip()
    if not text:
        return ()
    if sep == "comma":
        parts = re.split(r"[,\n]", text)
    else:
        parts = text.splitlines()
    return tuple(p.strip().lstrip("-*").strip() for p in parts if p.strip().lstrip("-*").strip())


def parse_rule_card(text: str, *, source: Optional[str] = None) -> tuple[RuleInfo, _ir.Node, str]:
    """Read a rule card; return (info, ir, query text). Errors name the card's line/column."""
    sections: dict[str, tuple[int, int]] = {}
    heads = list(_HEADING.finditer(text))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        sections[m.group(1).strip().lower()] = (m.end(), end)

    def get(name: str) -> str:
        span = sections.get(name)
        return text[span[0] : span[1]].strip() if span else ""

    qspan = sections.get("sentinelone query")
    if qspan is None:
        raise RuleError(f"{source or 'rule card'}: no '## SentinelOne Query' section")
    fence = _FENCE.search(text, qspan[0], qspan[1])
    if fence is None:
        raise RuleError(f"{source or 'rule card'}: the '## SentinelOne Query' section has no fenced query")
    query = fence.group(2)
    start = fence.start(2)
    try:
        node = parse(query)
    except QuerySyntaxError as e:  # re-anchor the position in the card
        raise QuerySyntaxError(e.message, text, start + e.offset, source=source) from None
    query = query.strip()
    first = re.match(r"#[ \t]+(.+)", text)
    title = get("title") or (first.group(1).strip() if first else "") or (Path(source).stem if source else "")
    info = RuleInfo(
        id=get("id") or default_id(query),
        title=title,
        author=" ".join(get("author").split()),
        date=get("date"),
        level=get("level"),
        tags=_items(get("tags"), "comma"),
        description=" ".join(get("description").split()),
        references=_items(get("references")),
        falsepositives=_items(get("false positives")),
        source=source,
    )
    return info, node, query


def load_path(path: Union[str, os.PathLike]) -> tuple[RuleInfo, _ir.Node, str]:
    """Read a rule card (``.md`` or any text with a '## SentinelOne Query' section) or a bare query."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the query
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(f"{p}: cannot read rule file: {e}") from None
    return parse_rule_text(text, source=str(p))


def parse_rule_text(text: str, *, source: str) -> tuple[RuleInfo, _ir.Node, str]:
    """A rule card or a bare query, by ``source``'s suffix and the text (see :func:`load_path`)."""
    p = Path(source)
    if p.suffix.lower() in (".md", ".markdown") or _HEADING.search(text) and "sentinelone query" in text.lower():
        return parse_rule_card(text, source=source)
    query = text.strip()
    try:
        node = parse(text)
    except QuerySyntaxError as e:
        raise QuerySyntaxError(e.message, text, e.offset, source=source) from None
    return RuleInfo(id=p.stem, title=p.stem, source=source), node, query


#: Rule file extensions a directory of rules is searched for: rule cards, S1QL query files, Sigma.
RULE_SUFFIXES = (".md", ".markdown", ".s1ql", ".txt", ".yml", ".yaml")


def rule_files(directory: Union[str, os.PathLike]) -> list[Path]:
    """The rule files under ``directory`` (recursive, sorted, hidden entries and README files left
    out), by :data:`RULE_SUFFIXES`."""
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if not f.startswith(".") and Path(f).suffix.lower() in RULE_SUFFIXES and not f.upper().startswith("README"):
                out.append(Path(root) / f)
    return out


def builtin_rules() -> dict[str, tuple[RuleInfo, _ir.Node, str]]:
    """The rules shipped in ``matcher/data``, by file stem."""
    out = {}
    for entry in sorted(resources.files("matcher.data").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".md"):
            info, node, query = parse_rule_card(entry.read_text(encoding="utf-8"), source=f"builtin:{entry.name}")
            out[entry.name[:-3]] = (info, node, query)
    return out
