"""The rule IR: the hub between front ends (S1QL, later Sigma), the compiler and the reference.

A rule is a tree of :class:`And`, :class:`Or`, :class:`Not` over :class:`Pred` leaves.
Invariants, kept by the constructors :func:`and_`, :func:`or_` and checked by :func:`validate`:

- ``And``/``Or`` have at least two items, and no item of an ``And`` is an ``And`` (likewise
  ``Or``): nesting of one kind is flattened, because it is associative.
- Every ``Pred`` tests one field with one operator and at most one literal. S1QL's
  ``In (...)`` and ``In Contains AnyCase (...)`` are an ``Or`` of single predicates.
- The logical depth is at most :data:`MAX_DEPTH`, so every recursive walk stays far below
  Python's recursion limit.

Literals are kept as written (case preserved): folding is the engines' business, and the
printer needs the original text. What each operator means is in ``docs/semantics.md``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Union

__all__ = [
    "Op",
    "Wild",
    "Glob",
    "Pred",
    "And",
    "Or",
    "Not",
    "Node",
    "and_",
    "or_",
    "not_",
    "MAX_DEPTH",
    "depth",
    "validate",
    "canonical",
    "walk_preds",
]

#: Deepest And/Or/Not nesting a rule may have (the corpus peaks at 8).
MAX_DEPTH = 200


class Op(str, enum.Enum):
    """Predicate operators. The value is the stable name used in programs and messages."""

    CONTAINS = "contains"  # fold(v) in fold(x)
    STARTSWITH = "startswith"  # fold(x).startswith(fold(v))
    ENDSWITH = "endswith"  # fold(x).endswith(fold(v))
    EQUALS = "equals"  # fold(x) == fold(v)
    GLOB = "glob"  # fold(x) matches the Glob as a whole
    REGEX = "regex"  # re.search(v, x) on the raw text
    NOT_EMPTY = "not_empty"  # text != ""
    EXISTS = "exists"  # field present
    LT = "lt"  # float(x) < float(v)
    LE = "le"
    GT = "gt"
    GE = "ge"
    # Sigma (docs/sigma.md)
    CIDR = "cidr"  # the text is an IP address inside the network v (IPv4 or IPv6)
    FIELDREF = "fieldref"  # fold(x) == fold(text of field v), whole event
    FIELDREF_CONTAINS = "fieldref_contains"  # fold(text of field v) in fold(x)
    FIELDREF_STARTSWITH = "fieldref_startswith"
    FIELDREF_ENDSWITH = "fieldref_endswith"
    KEYWORD = "keyword"  # some field's text matches the Glob v (field is ""), whole event
    TIMEPART = "timepart"  # v is "part=n": that part of the timestamp x (ops.timestamp_part) == n

    def __repr__(self) -> str:
        return f"Op.{self.name}"


#: Operators that take no literal.
NULLARY = frozenset({Op.NOT_EMPTY, Op.EXISTS})
#: Numeric comparisons.
COMPARISONS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
#: Operators run as Python callbacks guarded by the field's presence alone.
PRESENCE_GUARDED = COMPARISONS | {Op.TIMEPART}
#: Whole-event operators: their predicates read more than one field (or every field), so
#: ``ops.EVENT_REFERENCE[op](event, pred)`` decides them from the whole event mapping.
EVENT_OPS: frozenset[Op] = frozenset(
    {Op.FIELDREF, Op.FIELDREF_CONTAINS, Op.FIELDREF_STARTSWITH, Op.FIELDREF_ENDSWITH, Op.KEYWORD}
)
#: Operators whose literal is a :class:`Glob`.
GLOB_OPS = frozenset({Op.GLOB, Op.KEYWORD})


class Wild(enum.Enum):
    """Wildcards inside a :class:`Glob`."""

    ANY = "*"  # any run of characters, possibly empty
    ONE = "?"  # exactly one character (Sigma; S1QL has none)

    def __repr__(self) -> str:
        return f"Wild.{self.name}"


@dataclass(frozen=True, slots=True)
class Glob:
    """A whole-value pattern: literal text runs and wildcards, in order.

    Adjacent literal runs are merged and ``ANY ANY`` collapses to ``ANY`` by :meth:`of`.
    """

    parts: tuple[Union[str, Wild], ...]

    @classmethod
    def of(cls, *parts: Union[str, Wild]) -> "Glob":
        out: list[Union[str, Wild]] = []
        for p in parts:
            if isinstance(p, str):
                if not p:
                    continue
                if out and isinstance(out[-1], str):
                    out[-1] = out[-1] + p
                    continue
            elif p is Wild.ANY and out and out[-1] is Wild.ANY:
                continue
            out.append(p)
        return cls(tuple(out))

    @property
    def has_wildcards(self) -> bool:
        return any(isinstance(p, Wild) for p in self.parts)

    def regex(self) -> str:
        """The pattern as a Python regex for ``re.fullmatch`` with ``re.DOTALL``.

        Literal runs are passed through ``fold`` by the caller before this is used.
        """
        out = []
        for p in self.parts:
            if p is Wild.ANY:
                out.append(".*")
            elif p is Wild.ONE:
                out.append(".")
            else:
                out.append(re.escape(p))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class Pred:
    """One test of one field: ``field op value``."""

    field: str
    op: Op
    value: Union[str, Glob, None] = None

    def __post_init__(self) -> None:
        if self.op in NULLARY:
            if self.value is not None:
                raise ValueError(f"{self.op.name} takes no value")
        elif self.op in GLOB_OPS:
            if not isinstance(self.value, Glob):
                raise ValueError(f"{self.op.name} takes a Glob value")
        elif not isinstance(self.value, str):
            raise ValueError(f"{self.op.name} takes a str value")


@dataclass(frozen=True, slots=True)
class And:
    items: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: "Node"


Node = Union[Pred, And, Or, Not]


def _join(kind: type, items: tuple) -> "Node":
    flat: list = []
    for it in items:
        if type(it) is kind:
            flat.extend(it.items)
        else:
            flat.append(it)
    if not flat:
        raise ValueError(f"{kind.__name__} of nothing")
    if len(flat) == 1:
        return flat[0]
    return kind(tuple(flat))


def and_(*items: "Node") -> "Node":
    """Conjunction, flattened; a single item is returned as it is."""
    return _join(And, items)


def or_(*items: "Node") -> "Node":
    """Disjunction, flattened; a single item is returned as it is."""
    return _join(Or, items)


def not_(item: "Node") -> Not:
    return Not(item)


def depth(node: "Node") -> int:
    """Logical depth: 0 for a predicate, +1 per And/Or/Not level (iterative)."""
    best = 0
    stack = [(node, 0)]
    while stack:
        n, d = stack.pop()
        if isinstance(n, Pred):
            best = max(best, d)
        elif isinstance(n, Not):
            stack.append((n.item, d + 1))
        else:
            stack.extend((c, d + 1) for c in n.items)
    return best


def validate(node: "Node") -> None:
    """Raise ``ValueError`` if ``node`` breaks an invariant of the module docstring."""
    stack = [(node, 0)]  # one walk: structure and depth together
    while stack:
        n, d = stack.pop()
        if isinstance(n, Pred):
            continue
        if d >= MAX_DEPTH:
            raise ValueError(f"rule nesting deeper than {MAX_DEPTH}")
        if isinstance(n, Not):
            stack.append((n.item, d + 1))
            continue
        if not isinstance(n, (And, Or)):
            raise ValueError(f"not an IR node: {n!r}")
        if len(n.items) < 2:
            raise ValueError(f"{type(n).__name__} needs two or more items")
        for c in n.items:
            if type(c) is type(n):
                raise ValueError(f"nested {type(n).__name__} must be flattened")
            stack.append((c, d + 1))


def walk_preds(node: "Node"):
    """Every predicate of ``node``, left to right (duplicates included)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Pred):
            yield n
        elif isinstance(n, Not):
            stack.append(n.item)
        else:
            stack.extend(reversed(n.items))


def _sort_key(node: "Node") -> str:
    return repr(node)


def canonical(node: "Node") -> "Node":
    """The same rule with the operands of every And/Or in a fixed order (for comparisons)."""
    if isinstance(node, Pred):
        return node
    if isinstance(node, Not):
        return Not(canonical(node.item))
    items = sorted((canonical(c) for c in node.items), key=_sort_key)
    return type(node)(tuple(items))
