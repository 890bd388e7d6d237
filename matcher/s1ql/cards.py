"""The S1QL rule files: rule cards, query files and JSON lines rule files -> rule records.

A *rule card* is the markdown format the flagship rule ships in (``## Title``, ``## ID``,
``## Author``, ..., the query in a fenced block under ``## SentinelOne Query``, and optional
``## Tests``); ``docs/rule-cards.md`` is its manual. A ``.jsonl`` file holds one rule a line
(``{"id", "title", "query", ...}``, the corpus format). Any other file is read as one bare S1QL
query.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

import orjson

from .._files import read_rule_bytes, read_rule_text
from ..errors import QuerySyntaxError, RuleError
from ..record import RuleInfo, RuleRecord
from .parser import parse

__all__ = ["CardTest", "parse_rule_card", "parse_rule_text", "load_path", "read_rule_lines",
           "parse_rule_lines", "builtin_rules", "default_id", "RULE_LINES_SUFFIXES", "CARD_SECTIONS"]


@dataclass(frozen=True)
class CardTest:
    """One event of a rule card's ``## Tests`` section: the rule must match it (``expect``) or not.
    ``line`` is its line in the card (1-based)."""

    expect: bool
    line: int
    event: dict


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


#: The sections a rule card may have (lower case) -> the RuleInfo attribute or ``extra`` key they
#: fill. Any other ``##`` section is kept as text in ``RuleInfo.extra`` under its lower-case name.
CARD_SECTIONS = {
    "title": "title", "id": "id", "author": "author", "date": "date", "modified": "modified",
    "status": "status", "level": "level", "tags": "tags", "description": "description",
    "references": "references", "false positives": "falsepositives", "logsource": "logsource",
    "sentinelone query": None, "tests": None,
}
_TEST_HEADING = re.compile(r"^###[ \t]+(.+?)[ \t]*$", re.M)
_TEST_KINDS = {"match": True, "no match": False}


def _card_error(source: Optional[str], text: str, offset: int, message: str) -> RuleError:
    line = text.count("\n", 0, offset) + 1
    return RuleError(f"{source or 'rule card'}:{line}: {message}")


def _logsource(body: str, source: Optional[str], text: str, start: int) -> dict[str, str]:
    """``key: value`` lines (``category: process_creation``); ``-`` bullets allowed."""
    out: dict[str, str] = {}
    for m in re.finditer(r"^[ \t]*(?:[-*][ \t]+)?([^\n]*?)[ \t]*$", body, re.M):
        line = m.group(1)
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise _card_error(source, text, start + m.start(), f"## Logsource: expected 'key: value', not {line!r}")
        out[key.strip().lower()] = value.strip()
    return out


def _card_tests(text: str, span: tuple[int, int], source: Optional[str]) -> tuple[CardTest, ...]:
    """The events of the ``## Tests`` section: ``### Match`` and ``### No match`` sub-sections, each
    with fenced blocks of JSON lines (one event, a JSON object, per line)."""
    lo, hi = span
    heads = [m for m in _TEST_HEADING.finditer(text, lo, hi)]
    if not heads:
        raise _card_error(source, text, lo, "## Tests has no '### Match' or '### No match' sub-section")
    out: list[CardTest] = []
    for i, h in enumerate(heads):
        kind = h.group(1).strip().lower()
        if kind not in _TEST_KINDS:
            raise _card_error(source, text, h.start(), f"## Tests: unknown sub-section {h.group(1)!r} "
                              "(expected '### Match' or '### No match')")
        end = heads[i + 1].start() if i + 1 < len(heads) else hi
        blocks = list(_FENCE.finditer(text, h.end(), end))
        if not blocks:
            raise _card_error(source, text, h.start(), f"### {h.group(1)} has no fenced block of JSON lines")
        for b in blocks:
            pos = b.start(2)
            for raw in b.group(2).splitlines(keepends=True):
                line_no = text.count("\n", 0, pos) + 1
                pos += len(raw)
                if not raw.strip():
                    continue
                try:
                    event = orjson.loads(raw)
                except orjson.JSONDecodeError as e:
                    raise RuleError(f"{source or 'rule card'}:{line_no}: test event is not valid JSON ({e})") from None
                if not isinstance(event, dict):
                    raise RuleError(f"{source or 'rule card'}:{line_no}: a test event must be a JSON object, "
                                    f"not {type(event).__name__}")
                out.append(CardTest(_TEST_KINDS[kind], line_no, event))
    return tuple(out)


def parse_rule_card(text: str, *, source: Optional[str] = None) -> RuleRecord:
    """Read a rule card; return (info, ir, query text). Errors name the card's line/column.

    Every section is read: those of :data:`CARD_SECTIONS` into their fields (``status``,
    ``modified``, ``logsource`` and the ``tests`` (:class:`CardTest`) into ``RuleInfo.extra``),
    any other into ``extra`` as text.
    """
    sections: dict[str, tuple[int, int]] = {}
    heads = list(_HEADING.finditer(text))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        name = m.group(1).strip().lower()
        if name in sections:
            raise _card_error(source, text, m.start(), f"a second '## {m.group(1).strip()}' section")
        sections[name] = (m.end(), end)

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
    extra: dict[str, Any] = {"format": "rule card"}
    for name in ("status", "modified"):
        if get(name):
            extra[name] = " ".join(get(name).split())
    if "logsource" in sections:
        extra["logsource"] = _logsource(get("logsource"), source, text, sections["logsource"][0])
    if "tests" in sections:
        extra["tests"] = _card_tests(text, sections["tests"], source)
    for name in sections:
        if name not in CARD_SECTIONS:
            extra[name] = get(name)
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
        extra=extra,
    )
    return RuleRecord(info, node, query)


def load_path(path: Union[str, os.PathLike]) -> RuleRecord:
    """Read a rule card (``.md`` or any text with a '## SentinelOne Query' section) or a bare query."""
    return parse_rule_text(read_rule_text(path), source=str(Path(path)))


def parse_rule_text(text: str, *, source: str) -> RuleRecord:
    """A rule card or a bare query, by ``source``'s suffix and the text (see :func:`load_path`)."""
    p = Path(source)
    if p.suffix.lower() in (".md", ".markdown") or _HEADING.search(text) and "sentinelone query" in text.lower():
        return parse_rule_card(text, source=source)
    query = text.strip()
    try:
        node = parse(text)
    except QuerySyntaxError as e:
        raise QuerySyntaxError(e.message, text, e.offset, source=source) from None
    return RuleRecord(RuleInfo(id=p.stem, title=p.stem, source=source), node, query)


#: Files of one rule a line (JSON objects with ``id``, ``title``, ``query``, ...).
RULE_LINES_SUFFIXES = (".jsonl", ".ndjson")
#: Keys of a rule line read into :class:`RuleInfo` (others go to ``extra``).
_LINE_KEYS = ("id", "title", "author", "date", "level", "tags", "description", "references", "falsepositives")


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


def read_rule_lines(path: Union[str, os.PathLike]) -> tuple[list[RuleRecord], list[str], list[str]]:
    """A JSON lines rule file (the corpus format: ``{"id", "title", "query", "level", "author", ...}``
    a line). Returns the rules, one error per bad line (file:line and why), and one note per
    record that carries no query (``"query": null``, with the converter's ``error``): those are
    reported, not rules.
    """
    return parse_rule_lines(read_rule_bytes(path), source=str(Path(path)))


def parse_rule_lines(data: bytes, *, source: str) -> tuple[list[RuleRecord], list[str], list[str]]:
    """:func:`read_rule_lines` of the bytes of a file named ``source``."""
    p = Path(source)
    rules: list[RuleRecord] = []
    errors: list[str] = []
    no_query: list[str] = []
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{source}:{n}"
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            errors.append(f"{where}: not a JSON object ({e})")
            continue
        if not isinstance(rec, dict):
            errors.append(f"{where}: a rule line must be a JSON object, not {type(rec).__name__}")
            continue
        query = rec.get("query")
        if query is None:
            no_query.append(f"{where}: rule {rec.get('id', '?')} has no query"
                            + (f" ({rec['error']})" if rec.get("error") else ""))
            continue
        if not isinstance(query, str):
            errors.append(f"{where}: 'query' must be a string, not {type(query).__name__}")
            continue
        try:
            node = parse(query)
        except QuerySyntaxError as e:
            errors.append(str(QuerySyntaxError(e.message, query, e.offset, source=f"{where} (query)")))
            continue
        fields = {k: rec.get(k) for k in _LINE_KEYS}
        info = RuleInfo(
            id=str(fields["id"]) if fields["id"] is not None else default_id(query),
            title=str(fields["title"] or fields["id"] or p.stem),
            author=str(fields["author"] or ""), date=str(fields["date"] or ""), level=str(fields["level"] or ""),
            tags=_strings(fields["tags"]), description=str(fields["description"] or ""),
            references=_strings(fields["references"]), falsepositives=_strings(fields["falsepositives"]),
            source=where,
            extra={k: v for k, v in rec.items() if k not in _LINE_KEYS and k != "query"},
        )
        rules.append(RuleRecord(info, node, query.strip()))
    return rules, errors, no_query


def builtin_rules() -> dict[str, RuleRecord]:
    """The rules shipped in ``matcher/data``, by file stem."""
    out = {}
    for entry in sorted(resources.files("matcher.data").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".md"):
            out[entry.name[:-3]] = parse_rule_card(entry.read_text(encoding="utf-8"), source=f"builtin:{entry.name}")
    return out
