"""Why a rule matches an event or not: the rule's tree with each node's verdict and the values seen.

Verdicts come from the reference evaluator's predicate function
(:func:`matcher.reference.predicate`), so an explanation is exactly what the rule means
(``docs/semantics.md``): a predicate on an absent field is false, ``NOT`` negates it.

>>> tree = explain(rule.ir, event)
>>> print(render(tree))          # ✓/✗ per node, field values shown once per predicate
>>> to_dict(tree)                # the same as plain data (``matcher explain --format json``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field as _field
from typing import Any, Optional

from .errors import UnprintableQueryError
from .ir import EVENT_OPS, And, Glob, Node, Not, Op, Or, Pred, Wild
from .ops import _glob_regex, field_texts, fold, string_values
from .reference import predicate
from .s1ql import to_s1ql

__all__ = ["Explained", "explain", "render", "to_dict", "pred_text", "pattern_text"]

MAX_SHOWN = 160  # characters of a value shown in text output


@dataclass
class Explained:
    """One node of a rule with its verdict on one event."""

    kind: str  # "pred", "and", "or", "not"
    result: bool
    text: str = ""  # the predicate in S1QL (predicates only)
    field: Optional[str] = None
    values: Optional[list[str]] = None  # the field's texts in the event; None: absent
    children: list["Explained"] = _field(default_factory=list)
    ref_field: Optional[str] = None  # fieldref predicates: the other field, and its texts
    ref_values: Optional[list[str]] = None


#: How predicates S1QL cannot write are shown (the Sigma operators, and values S1QL's escaping
#: cannot express): ``field WORD value``.
_WORDS = {
    Op.CONTAINS: "containsCIS", Op.STARTSWITH: "startswithCIS", Op.ENDSWITH: "endswithCIS", Op.EQUALS: "=",
    Op.GLOB: "=", Op.REGEX: "RegExp", Op.NOT_EMPTY: "IS NOT EMPTY", Op.EXISTS: "EXISTS", Op.LT: "<", Op.LE: "<=",
    Op.GT: ">", Op.GE: ">=", Op.CIDR: "in network", Op.FIELDREF: "= field", Op.FIELDREF_CONTAINS: "containsCIS field",
    Op.FIELDREF_STARTSWITH: "startswithCIS field", Op.FIELDREF_ENDSWITH: "endswithCIS field",
    Op.KEYWORD: "=", Op.TIMEPART: "timestamp part",
}
KEYWORD_FIELD = "any field"  # how a keyword predicate's (empty) field is shown


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def pattern_text(glob: Glob) -> str:
    """A Glob as a pattern: ``*`` any run, ``?`` one character; a literal ``*``, ``?`` or ``\\``
    is escaped with ``\\`` (Sigma's notation)."""
    out = []
    for p in glob.parts:
        if isinstance(p, Wild):
            out.append(p.value)
        else:
            out.append(p.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?"))
    return _quoted("".join(out))


def pred_text(p: Pred) -> str:
    """One predicate as text: canonical S1QL when S1QL can write it, else ``field operator value``
    with the operator in words (``in network``, ``= field``) and a keyword's field as ``any field``."""
    try:
        return to_s1ql(p)
    except UnprintableQueryError:
        pass
    name = p.field or KEYWORD_FIELD
    word = _WORDS[p.op]
    if p.value is None:
        return f"{name} {word}"
    if isinstance(p.value, Glob):
        return f"{name} {word} {pattern_text(p.value)}"
    if p.op in EVENT_OPS:  # a field reference
        return f"{name} {word} {p.value}"
    return f"{name} {word} {_quoted(p.value)}"


def _keyword_hits(p: Pred, event: Mapping) -> Optional[list[str]]:
    rx = _glob_regex(p.value)
    hits = [s for s in string_values(event) if rx.fullmatch(fold(s)) is not None]
    return hits or None


def _explain_pred(p: Pred, event: Mapping) -> Explained:
    verdict = predicate(p, event)
    if p.op is Op.KEYWORD:  # the values shown: the event's strings that match, if any
        return Explained("pred", verdict, pred_text(p), KEYWORD_FIELD, _keyword_hits(p, event))
    out = Explained("pred", verdict, pred_text(p), p.field, field_texts(event, p.field))
    if p.op in EVENT_OPS:
        out.ref_field, out.ref_values = p.value, field_texts(event, p.value)
    return out


def explain(node: Node, event: Mapping) -> Explained:
    """The verdict of every node of ``node`` on ``event`` (all children evaluated, no short cut)."""
    if isinstance(node, Pred):
        return _explain_pred(node, event)
    if isinstance(node, Not):
        child = explain(node.item, event)
        return Explained("not", not child.result, children=[child])
    if isinstance(node, (And, Or)):
        kids = [explain(c, event) for c in node.items]
        res = all(k.result for k in kids) if isinstance(node, And) else any(k.result for k in kids)
        return Explained("and" if isinstance(node, And) else "or", res, children=kids)
    raise TypeError(f"not an IR node: {node!r}")


def to_dict(e: Explained) -> dict[str, Any]:
    d: dict[str, Any] = {"node": e.kind, "result": e.result}
    if e.kind == "pred":
        d.update(predicate=e.text, field=e.field, values=e.values)
        if e.ref_field is not None:
            d.update(ref_field=e.ref_field, ref_values=e.ref_values)
    else:
        d["children"] = [to_dict(c) for c in e.children]
    return d


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _shown(values: Optional[list[str]]) -> str:
    if values is None:
        return "absent"
    out = []
    for v in values:
        r = '"' + "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in v) + '"'
        out.append(r if len(r) <= MAX_SHOWN else r[: MAX_SHOWN - 4] + '..."')
    return out[0] if len(out) == 1 else "[" + ", ".join(out) + "]"


def _runs(children: list[Explained]) -> list[list[Explained]]:
    """Children in runs: consecutive predicates on one field together, anything else alone."""
    runs: list[list[Explained]] = []
    for c in children:
        if runs and c.kind == "pred" and runs[-1][0].kind == "pred" and runs[-1][0].field == c.field:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


def render(e: Explained, *, full: bool = False) -> str:
    """The tree as indented text. Three or more predicates in a row on one field inside an OR (an
    ``In`` list) are one line naming the items that hold, unless ``full``. A field's value is
    shown at its first predicate."""
    lines: list[str] = []
    shown_fields: set[str] = set()

    def value_note(fieldname: Optional[str], values: Optional[list[str]]) -> str:
        if fieldname == KEYWORD_FIELD:  # each keyword's own hits
            return "    (no value matches)" if values is None else f"    (matching: {_shown(values)})"
        if fieldname in shown_fields:
            return ""
        shown_fields.add(fieldname or "")
        return f"    ({fieldname} = {_shown(values)})"

    def walk(n: Explained, depth: int) -> None:
        pad = "  " * depth
        if n.kind == "pred":
            note = value_note(n.field, n.values)
            if n.ref_field is not None:
                note += value_note(n.ref_field, n.ref_values)
            lines.append(f"{pad}{_mark(n.result)} {n.text}{note}")
            return
        runs = _runs(n.children) if n.kind == "or" and not full else [[c] for c in n.children]
        inner = pad + "  "
        if len(runs) == 1 and len(runs[0]) >= 3:  # the whole OR is one list: one line
            inner = pad
        else:
            lines.append(f"{pad}{_mark(n.result)} {n.kind.upper()}")
        for run in runs:
            if len(run) < 3:
                for c in run:
                    walk(c, depth + 1)
                continue
            hits = [c.text for c in run if c.result]
            what = f"{len(hits)} of {len(run)} hold: " + "; ".join(hits) if hits else f"none of {len(run)} holds"
            lines.append(f"{inner}{_mark(bool(hits))} any of {len(run)} on {run[0].field}: {what}"
                         f"{value_note(run[0].field, run[0].values)}")

    walk(e, 0)
    return "\n".join(lines) + "\n"
