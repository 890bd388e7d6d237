"""Lower the IR of many rules to one matching plan for the Cython core.

The plan is plain Python data (lists, bytes); :class:`matcher._core.Program` turns it into
C tables. What the compiler decides:

- **Predicates are shared.** Every distinct ``(field, op, folded literal)`` across all rules
  is one predicate id, i.e. one bit per event.
- **Per field, one table per operator family.** Equality, prefix and suffix literals go to
  hashed tables (prefix/suffix probed once per distinct literal length, hashing the value's
  head/tail incrementally); contains literals go to one Aho-Corasick automaton per field.
  ``EXISTS``/``IS NOT EMPTY`` are flags. These are the *table* predicates: processing a field
  fires all of them at once.
- **Lazy predicates** (globs, regexes, numeric comparisons) are only evaluated when a rule
  that survived the cheap tests asks for them, and each has a *guard*: a table predicate
  that must hold for it to hold (a glob's literal head, tail or longest run; the longest
  ASCII literal a regex requires; the field's presence for a comparison).
- **Rule index.** Each rule gets a *trigger set*: table predicates at least one of which must
  fire for the rule to match (an AND takes its cheapest child's set, an OR the union, a NOT
  none). Only the tables holding trigger predicates are run up front; a rule none of whose
  triggers fired is never touched; other tables and fields are read when a surviving rule
  needs them.
  Rules with no trigger set (e.g. ``NOT x`` alone) are evaluated on every event.
- **Order inside a rule.** AND children most-likely-false first, OR children
  most-likely-true first, lazy predicates last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

try:  # Python 3.11+
    import re._parser as _sre_parse  # type: ignore[import-not-found]
    import re._constants as _sre_c  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_c  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from .ir import COMPARISONS, And, Glob, Node, Not, Op, Or, Pred, Wild
from .ops import fold

__all__ = ["Plan", "compile_plan", "TABLE", "GLOB", "PY", "encode"]

# Predicate kinds (must match src/_core.pyx).
TABLE, GLOB, PY = 0, 1, 2
# Node kinds.
N_PRED, N_AND, N_OR, N_NOT = 0, 1, 2, 3
# Glob tokens (besides literal bytes 0..255).
G_ANY, G_ONE = -1, -2

#: Fields whose values come from a short list, so equality on them is not selective.
ENUM_FIELDS = frozenset(
    {"eventtype", "endpointos", "objecttype", "event.type", "event.category", "endpoint.os"}
)


def encode(s: str) -> bytes:
    """Folded literal bytes: UTF-8 with lone surrogates kept (the engines' byte form)."""
    return fold(s).encode("utf-8", "surrogatepass")


@dataclass
class FieldPlan:
    name: str
    eq: list[tuple[bytes, int]] = field(default_factory=list)
    prefix: list[tuple[bytes, int]] = field(default_factory=list)
    suffix: list[tuple[bytes, int]] = field(default_factory=list)
    contains: list[tuple[bytes, int]] = field(default_factory=list)
    exists: int = -1
    not_empty: int = -1


@dataclass
class Plan:
    """Everything the core needs, as plain data."""

    fields: list[FieldPlan]
    pred_field: list[int]
    pred_kind: list[int]
    pred_guard: list[int]
    globs: dict[int, list[int]]  # pred -> glob tokens
    py_preds: dict[int, tuple[Op, str]]  # pred -> (op, literal) for regex/comparisons
    node_kind: list[int]
    node_arg: list[int]
    node_count: list[int]
    kids: list[int]
    rule_root: list[int]
    trig_start: list[int]  # CSR: pred -> rules it triggers
    trig_rules: list[int]
    always: list[int]
    preds: list[Pred] = field(default_factory=list)  # id -> IR predicate (for explain/debug)


def _estimate(p: Pred) -> float:
    """Rough probability that ``p`` holds on a typical event (only used for ordering)."""
    op = p.op
    n = len(p.value) if isinstance(p.value, str) else 0
    if op in (Op.EXISTS, Op.NOT_EMPTY):
        return 0.9
    if op is Op.EQUALS:
        return 0.5 if p.field.lower() in ENUM_FIELDS else (0.2 if n <= 2 else 0.02)
    if op in (Op.STARTSWITH, Op.ENDSWITH):
        return 0.3 if n <= 1 else 0.1 if n <= 3 else 0.01 if n <= 6 else 0.003
    if op is Op.CONTAINS:
        return 0.6 if n <= 1 else 0.3 if n <= 2 else 0.1 if n <= 4 else 0.02 if n <= 8 else 0.005
    return 0.05


def _regex_literal(pattern: str) -> Optional[str]:
    """The longest run of ASCII literal characters every match of ``pattern`` contains."""
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:  # noqa: BLE001 - no guard is always safe
        return None
    # Under IGNORECASE, ASCII letters also match non-ASCII look-alikes ('k' matches the Kelvin
    # sign, 's' the long s) that fold() does not map to ASCII: no literal guard then.
    if parsed.state.flags & (_sre_c.SRE_FLAG_IGNORECASE | _sre_c.SRE_FLAG_VERBOSE):
        return None
    best, run = "", []
    for op, arg in parsed:
        if op is _sre_c.LITERAL and arg < 128:
            run.append(chr(arg))
            continue
        if len("".join(run)) > len(best):
            best = "".join(run)
        run = []
    if len("".join(run)) > len(best):
        best = "".join(run)
    return best if len(best) >= 2 else None


def _glob_guard(g: Glob) -> tuple[Op, str] | None:
    parts = g.parts
    if isinstance(parts[0], str):
        return Op.STARTSWITH, parts[0]
    if isinstance(parts[-1], str):
        return Op.ENDSWITH, parts[-1]
    runs = [p for p in parts if isinstance(p, str)]
    if runs:
        return Op.CONTAINS, max(runs, key=len)
    return None


def _glob_tokens(g: Glob) -> list[int]:
    out: list[int] = []
    for p in g.parts:
        if p is Wild.ANY:
            out.append(G_ANY)
        elif p is Wild.ONE:
            out.append(G_ONE)
        else:
            out.extend(encode(p))
    return out


class _Builder:
    def __init__(self) -> None:
        self.fields: list[FieldPlan] = []
        self.field_ids: dict[str, int] = {}
        self.pred_ids: dict[tuple, int] = {}
        self.preds: list[Pred] = []
        self.pred_field: list[int] = []
        self.pred_kind: list[int] = []
        self.pred_guard: list[int] = []
        self.pred_est: list[float] = []
        self.globs: dict[int, list[int]] = {}
        self.py_preds: dict[int, tuple[Op, str]] = {}
        self.node_kind: list[int] = []
        self.node_arg: list[int] = []
        self.node_count: list[int] = []
        self.kids: list[int] = []

    def field_id(self, name: str) -> int:
        fid = self.field_ids.get(name)
        if fid is None:
            fid = self.field_ids[name] = len(self.fields)
            self.fields.append(FieldPlan(name))
        return fid

    def pred(self, p: Pred) -> int:
        """The id of ``p``, creating it (and its table entry or guard) on first sight."""
        op = p.op
        if op in (Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.EQUALS):
            key: tuple = (p.field, op, encode(p.value))
        elif op is Op.GLOB:
            key = (p.field, op, tuple(_glob_tokens(p.value)))
        else:
            key = (p.field, op, p.value)
        pid = self.pred_ids.get(key)
        if pid is not None:
            return pid
        fid = self.field_id(p.field)
        fp = self.fields[fid]
        guard, kind = -1, TABLE
        if op is Op.GLOB:
            kind = GLOB
            g = _glob_guard(p.value)
            guard = self.pred(Pred(p.field, g[0], g[1])) if g else self.pred(Pred(p.field, Op.EXISTS))
        elif op is Op.REGEX:
            kind = PY
            lit = _regex_literal(p.value)
            guard = self.pred(Pred(p.field, Op.CONTAINS, lit)) if lit else self.pred(Pred(p.field, Op.EXISTS))
        elif op in COMPARISONS:
            kind = PY
            guard = self.pred(Pred(p.field, Op.EXISTS))
        pid = self.pred_ids[key] = len(self.preds)
        self.preds.append(p)
        self.pred_field.append(fid)
        self.pred_kind.append(kind)
        self.pred_guard.append(guard)
        self.pred_est.append(_estimate(p) if kind == TABLE else min(0.05, self.pred_est[guard]))
        lit = key[2] if kind == TABLE and op not in (Op.EXISTS, Op.NOT_EMPTY) else None
        if op is Op.EQUALS:
            fp.eq.append((lit, pid))
        elif op is Op.STARTSWITH:
            fp.prefix.append((lit, pid))
        elif op is Op.ENDSWITH:
            fp.suffix.append((lit, pid))
        elif op is Op.CONTAINS:
            fp.contains.append((lit, pid))
        elif op is Op.EXISTS:
            fp.exists = pid
        elif op is Op.NOT_EMPTY:
            fp.not_empty = pid
        elif op is Op.GLOB:
            self.globs[pid] = _glob_tokens(p.value)
        else:
            self.py_preds[pid] = (op, p.value)
        return pid

    # -- rules -------------------------------------------------------------------------------
    def lower(self, node: Node) -> tuple[int, float, Optional[frozenset[int]], float]:
        """Emit ``node``; return (node index, P(true) estimate, trigger set, trigger cost)."""
        if isinstance(node, Pred):
            pid = self.pred(node)
            idx = self._emit(N_PRED, pid, 0)
            est = self.pred_est[pid]
            trig = pid if self.pred_kind[pid] == TABLE else self.pred_guard[pid]
            return idx, est, frozenset((trig,)), self.pred_est[trig]
        if isinstance(node, Not):
            child, est, _, _ = self.lower(node.item)
            idx = self._emit(N_NOT, len(self.kids), 1)
            self.kids.append(child)
            return idx, 1.0 - est, None, 1.0
        lowered = [self.lower(c) for c in node.items]
        lazy = [self._is_lazy(i) for i, *_ in lowered]
        if isinstance(node, And):
            order = sorted(range(len(lowered)), key=lambda k: (lazy[k], lowered[k][1]))
            est = 1.0
            for _, e, _, _ in lowered:
                est *= e
            cands = [(t, c) for _, _, t, c in lowered if t is not None]
            trig, cost = min(cands, key=lambda tc: (tc[1], len(tc[0]))) if cands else (None, 1.0)
            kind = N_AND
        else:
            order = sorted(range(len(lowered)), key=lambda k: (lazy[k], -lowered[k][1]))
            miss = 1.0
            for _, e, _, _ in lowered:
                miss *= 1.0 - e
            est = 1.0 - miss
            if all(t is not None for _, _, t, _ in lowered):
                trig = frozenset().union(*(t for _, _, t, _ in lowered))
                cost = min(1.0, sum(c for _, _, _, c in lowered))
            else:
                trig, cost = None, 1.0
            kind = N_OR
        idx = self._emit(kind, len(self.kids), len(lowered))
        self.kids.extend(lowered[k][0] for k in order)
        return idx, est, trig, cost

    def _is_lazy(self, node_idx: int) -> bool:
        return self.node_kind[node_idx] == N_PRED and self.pred_kind[self.node_arg[node_idx]] != TABLE

    def _emit(self, kind: int, arg: int, count: int) -> int:
        self.node_kind.append(kind)
        self.node_arg.append(arg)
        self.node_count.append(count)
        return len(self.node_kind) - 1


def compile_plan(rules: list[Node]) -> Plan:
    """Lower the IR of ``rules`` (in RuleSet order) to a :class:`Plan`."""
    b = _Builder()
    roots: list[int] = []
    triggers: list[Optional[frozenset[int]]] = []
    for node in rules:
        root, _, trig, _ = b.lower(node)
        roots.append(root)
        triggers.append(trig)
    npred = len(b.preds)
    by_pred: list[list[int]] = [[] for _ in range(npred)]
    always: list[int] = []
    for r, trig in enumerate(triggers):
        if trig is None:
            always.append(r)
            continue
        for p in trig:
            by_pred[p].append(r)
    trig_start, trig_rules = [0], []
    for lst in by_pred:
        trig_rules.extend(sorted(lst))
        trig_start.append(len(trig_rules))
    return Plan(
        fields=b.fields,
        pred_field=b.pred_field,
        pred_kind=b.pred_kind,
        pred_guard=b.pred_guard,
        globs=b.globs,
        py_preds=b.py_preds,
        node_kind=b.node_kind,
        node_arg=b.node_arg,
        node_count=b.node_count,
        kids=b.kids,
        rule_root=roots,
        trig_start=trig_start,
        trig_rules=trig_rules,
        always=always,
        preds=b.preds,
    )
