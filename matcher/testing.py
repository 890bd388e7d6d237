"""Property testing for rule authors: events from rules, counterexamples between rules.

>>> from matcher import testing as mt
>>> from hypothesis import given
>>> @given(mt.events(rule))                  # events the rule matches
... def test_fires(event): assert rule.match(event)
>>> @given(mt.events(rule, matching=False))  # near misses: each breaks the rule in one place
... def test_quiet(event): assert not rule.match(event)
>>> mt.counterexample(rule_a, rule_b)        # an event on which the two disagree, or None
>>> mt.implies(rule_a, rule_b)               # an event rule_a matches and rule_b does not, or None

Events are built from the rule's IR (``matcher.ir``): a satisfying choice through the
AND/OR/NOT tree (negations pushed down to the predicates), then per field a value that
satisfies every predicate chosen on it, with folding traps where the operator folds, regexes
drawn by hypothesis' ``from_regex``, numbers inside the comparisons' bounds, addresses inside
CIDR networks, fields made equal for ``fieldref``, keyword texts, and absent fields for
negated predicates; then filler fields from the event generator (:mod:`matcher.datasets`).
Every event is checked with the reference evaluator (:mod:`matcher.reference`) before it is
yielded, so the strategies never lie. Everything hypothesis draws shrinks towards the minimal
event (first branch of every OR, no filler, literals as written). ``docs/testing.md`` is the
manual.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice, product
from typing import Any, Optional

from . import datasets
from .regex_prefilter import _sre_c, _sre_parse, regex_factors
from .errors import ArgumentError, RuleError, UnsatisfiableRule
from .ir import COMPARISONS, EVENT_OPS, And, Glob, Node, Not, Op, Or, Pred, Wild, walk_preds
from .ops import compile_regex, field_texts, fold, network, to_number
from .reference import evaluate_ir, predicate

__all__ = ["events", "counterexample", "implies", "UnsatisfiableRule", "witness", "near_misses", "sample"]

#: Conjunctions (DNF terms) looked at before a rule with no matching event found is given up on.
SEARCH_TERMS = 1000
#: Of those, the first ones tried again with multi-valued (list) fields.
LIST_TERMS = 64
#: Terms of each child kept when an AND's children are multiplied out.
CHILD_TERMS = 64
#: Examples hypothesis tries in ``counterexample``/``implies`` after the structural search.
BUDGET = 200

Lit = tuple[Pred, bool]  # a predicate and whether it must hold
_ABSENT = object()
_FOLDING = frozenset({Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.EQUALS, Op.GLOB})
#: Characters whose ``str.lower()`` is an ASCII letter (traps an ASCII-only fold misses).
_FOLDS_TO = {"k": "\u212a"}  # KELVIN SIGN
#: Characters that look like an ASCII letter but do not fold to it (near-miss traps).
_LOOKALIKE = {"i": "\u0130", "s": "\u017f", "\u03c3": "\u03c2", "\u03c2": "\u03c3"}


def _node(rule: Any) -> Node:
    if isinstance(rule, str):
        from .api import compile as _compile

        return _compile(rule).ir
    node = getattr(rule, "ir", rule)
    if not isinstance(node, (Pred, And, Or, Not)):
        raise ArgumentError(f"expected a Rule, an IR node or S1QL text, not {type(rule).__name__} "
                        "(a correlation's base rules are Rules: test each of them)")
    return node


# -- choices: minimal, fixed variants, or drawn by hypothesis ---------------------------------


class _Minimal:
    """Every choice at its simplest: what hypothesis shrinks to."""

    variant = 0

    def pick(self, options: Sequence) -> Any:
        return options[min(self.variant, len(options) - 1)]

    def index(self, n: int) -> int:
        return 0

    def integer(self, lo: int, hi: int) -> int:
        return lo

    def regex(self, pattern: str) -> Optional[str]:
        return regex_sample(pattern)


class _Variant(_Minimal):
    """The k-th option of every choice (case variants for the structural search)."""

    def __init__(self, k: int):
        self.variant = k


class _Drawn(_Minimal):
    def __init__(self, draw: Any):
        self.draw = draw

    def pick(self, options: Sequence) -> Any:
        return options[self.index(len(options))]

    def index(self, n: int) -> int:
        return 0 if n == 1 else self.draw(_integers(0, n - 1))

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(_integers(lo, hi))

    def regex(self, pattern: str) -> Optional[str]:
        strategy = _from_regex(pattern)
        if strategy is None:
            return regex_sample(pattern)
        return self.draw(strategy)


@lru_cache(maxsize=1024)
def _integers(lo: int, hi: int):
    from hypothesis import strategies as st

    return st.integers(lo, hi)


MINIMAL = _Minimal()


@lru_cache(maxsize=1024)
def _from_regex(pattern: str):
    from hypothesis import strategies as st

    try:
        # hypothesis draws from Python re's reading of the pattern; the reference (RE2) judges each event
        strategy = st.from_regex(pattern)
        strategy.validate()
    except Exception:  # a pattern hypothesis cannot generate for: the minimal sample instead
        return None
    return strategy


# -- regexes: a deterministic matching string -------------------------------------------------


def _in_class(ch: str, items: list) -> bool:
    c = ord(ch)
    for op, av in items:
        if op is _sre_c.LITERAL and av == c:
            return True
        if op is _sre_c.RANGE and av[0] <= c <= av[1]:
            return True
        if op is _sre_c.CATEGORY:
            name = str(av)
            test = (ch.isdigit() if "DIGIT" in name else ch.isspace() if "SPACE" in name
                    else (ch.isalnum() or ch == "_"))
            if test != ("NOT" in name):
                return True
    return False


def _class_char(items: list) -> str:
    negate = bool(items) and items[0][0] is _sre_c.NEGATE
    body = items[1:] if negate else items
    for ch in "xa0 A_-.\\/:Z9":
        if _in_class(ch, body) != negate:
            return ch
    if not negate:
        op, av = body[0]
        return chr(av if op is _sre_c.LITERAL else av[0] if op is _sre_c.RANGE else 48)
    return "\u00e9"


@lru_cache(maxsize=4096)
def regex_sample(pattern: str) -> Optional[str]:
    """A short string the regex finds a match in (``re.search``), or None if none was found.

    A walk over the parsed pattern takes the first branch and the fewest repetitions; lookarounds
    are ignored and the result is checked, with hypothesis' ``from_regex`` as the fallback.
    """
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:
        return None
    out: list[str] = []
    groups: dict[int, str] = {}

    def emit(items) -> None:
        for op, av in items:
            if op is _sre_c.LITERAL:
                out.append(chr(av))
            elif op is _sre_c.NOT_LITERAL:
                out.append("x" if av != ord("x") else "y")
            elif op is _sre_c.ANY:
                out.append("x")
            elif op is _sre_c.IN:
                out.append(_class_char(list(av)))
            elif op is _sre_c.BRANCH:
                emit(av[1][0])
            elif op is _sre_c.SUBPATTERN:
                start = len("".join(out))
                emit(av[-1])
                if av[0] is not None:
                    groups[av[0]] = "".join(out)[start:]
            elif op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT) or op.name == "POSSESSIVE_REPEAT":
                for _ in range(av[0]):
                    emit(av[2])
            elif op is _sre_c.GROUPREF:
                out.append(groups.get(av, ""))
            elif op.name == "ATOMIC_GROUP":
                emit(av)
            elif op is _sre_c.GROUPREF_EXISTS:
                emit(av[1])
            elif op in (_sre_c.AT, _sre_c.ASSERT, _sre_c.ASSERT_NOT):
                continue
            else:
                raise ValueError(op)

    try:
        emit(parsed)
    except (ValueError, IndexError, TypeError):
        out = None  # type: ignore[assignment]
    rx = compile_regex(pattern)
    if out is not None and rx.search("".join(out)) is not None:
        return "".join(out)
    return _regex_found(pattern)


def _regex_found(pattern: str) -> Optional[str]:
    from hypothesis import HealthCheck, Phase, find, settings

    strategy = _from_regex(pattern)
    if strategy is None:
        return None
    rx = compile_regex(pattern)
    try:
        return find(strategy, lambda s: rx.search(s) is not None,
                    settings=settings(max_examples=200, database=None, deadline=None, phases=[Phase.generate],
                                      suppress_health_check=list(HealthCheck)))
    except Exception:  # noqa: BLE001 - no sample is an answer ("none found")
        return None


# -- the vocabulary of filler values --------------------------------------------------------


@lru_cache(maxsize=1)
def _pool() -> tuple[list[dict], list[str]]:
    evs = datasets.generate(64, seed=18)
    words = sorted({w for ev in evs for v in ev.values() if isinstance(v, str) for w in v.split()[:4]})
    return evs, [""] + [" ", "x", "\\", " /c "] + words[:60]


def _sep(d: _Minimal) -> str:
    return d.pick(_pool()[1])


def _case(d: _Minimal, text: str, op: Op) -> str:
    """The literal in one of the spellings the operator must accept (folding traps included)."""
    if op not in _FOLDING:
        return text
    trap = "".join(_FOLDS_TO.get(c, c) for c in text)
    return d.pick([text, text.upper(), text.lower(), text.swapcase(), trap])


# -- DNF: conjunctions of literals ------------------------------------------------------------


class _Count:
    truncated = False


def _terms(node: Node, holds: bool, count: _Count) -> Iterator[list[Lit]]:
    """The rule as a lazy disjunction of conjunctions of literals (negations pushed down)."""
    if isinstance(node, Pred):
        yield [(node, holds)]
        return
    if isinstance(node, Not):
        yield from _terms(node.item, not holds, count)
        return
    conj = isinstance(node, And) == holds
    if not conj:
        for c in node.items:
            yield from _terms(c, holds, count)
        return
    lists = []
    for c in node.items:
        got = list(islice(_terms(c, holds, count), CHILD_TERMS + 1))
        if len(got) > CHILD_TERMS:
            count.truncated = True
            got = got[:CHILD_TERMS]
        lists.append(got)
    for combo in product(*lists):
        yield [lit for part in combo for lit in part]


def _draw_term(node: Node, holds: bool, d: _Minimal, out: list) -> None:
    """One conjunction, choosing at each OR (or negated AND) with ``d``."""
    if isinstance(node, Pred):
        out.append((node, holds))
    elif isinstance(node, Not):
        _draw_term(node.item, not holds, d, out)
    elif isinstance(node, And) == holds:
        for c in node.items:
            _draw_term(c, holds, d, out)
    else:
        _draw_term(node.items[d.index(len(node.items))], holds, d, out)


def _bounds(preds: list[Pred]) -> Optional[tuple[float, bool, float, bool]]:
    """(lo, lo_open, hi, hi_open) of the positive comparisons, or None when they exclude all."""
    lo, lo_open, hi, hi_open = -math.inf, True, math.inf, True
    for p in preds:
        v = to_number(p.value)
        if v is None or math.isnan(v):
            return None
        if p.op in (Op.GT, Op.GE) and (v > lo or (v == lo and p.op is Op.GT)):
            lo, lo_open = v, p.op is Op.GT
        if p.op in (Op.LT, Op.LE) and (v < hi or (v == hi and p.op is Op.LT)):
            hi, hi_open = v, p.op is Op.LT
    if lo > hi or (lo == hi and (lo_open or hi_open)):
        return None
    return lo, lo_open, hi, hi_open


_LITERAL_OPS = (Op.EQUALS, Op.STARTSWITH, Op.ENDSWITH, Op.CONTAINS)


def _implies(p: Pred, q: Pred) -> bool:
    """Every text ``p`` holds for, ``q`` holds for (``endswith "\\a.exe"`` implies ``contains "a.exe"``)."""
    if p.op not in _LITERAL_OPS or q.op not in _LITERAL_OPS:
        return False
    v, w = fold(p.value), fold(q.value)
    if q.op is Op.CONTAINS:
        return w in v
    if q.op is Op.STARTSWITH:
        return p.op in (Op.EQUALS, Op.STARTSWITH) and v.startswith(w)
    if q.op is Op.ENDSWITH:
        return p.op in (Op.EQUALS, Op.ENDSWITH) and v.endswith(w)
    return p.op is Op.EQUALS and v == w


def _contradiction(pos: list[Pred], neg: list[Pred], scalar: bool = False) -> bool:
    """True when these literals on one field exclude each other (a sound, partial test).

    A field may hold a list (``docs/semantics.md``: a predicate holds if it holds for any
    element), so ``x = "a" AND x = "b"`` holds for ``["a", "b"]``. The first tests hold for
    every value; with ``scalar`` the tests that hold for one text only are added.
    """
    if set(pos) & set(neg):
        return True
    if pos and any(p.op is Op.EXISTS for p in neg):
        return True
    if any(p.op is Op.NOT_EMPTY for p in neg):  # every text is "": decide the others on it
        if not all(predicate(Pred("f", p.op, p.value), {"f": ""}) for p in pos):
            return True
    for v in {p.value for p in pos if p.op is Op.EQUALS}:  # a text with fold(v) makes these hold
        if any(p.op in _FOLDING and predicate(Pred("f", p.op, p.value), {"f": v}) for p in neg):
            return True
    if any(_implies(p, q) for p in pos for q in neg):
        return True
    if not scalar:
        return False
    eqs = {fold(p.value) for p in pos if p.op is Op.EQUALS}
    if len(eqs) > 1:
        return True
    if eqs:  # the field's fold is fixed: every folding predicate on it is decided
        v = next(p.value for p in pos if p.op is Op.EQUALS)
        if any(p.op in _FOLDING and not predicate(Pred("f", p.op, p.value), {"f": v}) for p in pos):
            return True
        folded = fold(v)
        for p in pos:  # a regex match holds one literal of each required set (compiler)
            if p.op is Op.REGEX and any(not any(s in folded for s in req) for req in regex_factors(p.value)):
                return True
    heads = sorted((fold(p.value) for p in pos if p.op is Op.STARTSWITH), key=len)
    if any(not heads[-1].startswith(h) for h in heads):
        return True
    tails = sorted((fold(p.value) for p in pos if p.op is Op.ENDSWITH), key=len)
    if any(not tails[-1].endswith(t) for t in tails):
        return True
    comps = [p for p in pos if p.op in COMPARISONS]
    return bool(comps) and _bounds(comps) is None


# -- values -----------------------------------------------------------------------------------


def _number_text(x: float) -> str:
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(x)


def _number(comps: list[Pred], d: _Minimal) -> Optional[str]:
    b = _bounds(comps)
    if b is None:
        return None
    lo, lo_open, hi, hi_open = b
    if lo == -math.inf and hi == math.inf:
        return "0"
    if lo == -math.inf:
        return _number_text(hi - d.pick([1, 0, 100]) if hi_open else hi - d.pick([0, 1, 100]))
    if hi == math.inf:
        return _number_text(lo + d.pick([1, 0, 100]) if lo_open else lo + d.pick([0, 1, 100]))
    return _number_text(d.pick([(lo + hi) / 2, lo, hi]))


def _address(value: str, d: _Minimal) -> str:
    net = network(value)
    offset = d.integer(0, min(net.num_addresses - 1, 1 << 62))
    return str(net.network_address + offset)


def _fill_glob(glob: Glob, op: Op, d: _Minimal, extra: str = "", head: str = "", tail: str = "") -> str:
    """A text the glob matches; ``extra`` goes into its first ``*``, ``head`` at the start of a
    leading ``*``, ``tail`` at the end of a trailing one."""
    out = []
    last = len(glob.parts) - 1
    for i, part in enumerate(glob.parts):
        if part is Wild.ANY:
            out.append((head if i == 0 else "") + _sep(d) + extra + (tail if i == last else ""))
            extra = ""
        elif part is Wild.ONE:
            out.append(d.pick(["x", "0", " ", "\u00e9"]))
        else:
            out.append(_case(d, part, op))
    return "".join(out)


def _compose(pos: list[Pred], d: _Minimal, rx_at: int = 0) -> Optional[str]:
    """A value built to satisfy the positive predicates ``pos`` on one field (checked by the caller)."""
    by = {}
    for p in pos:
        by.setdefault(p.op, []).append(p)
    if Op.EQUALS in by:
        p = by[Op.EQUALS][0]
        return _case(d, p.value, p.op)
    if Op.GLOB in by:
        extra = [_case(d, p.value, p.op) for p in by.get(Op.CONTAINS, [])]
        extra += [s for s in (d.regex(p.value) for p in by.get(Op.REGEX, [])) if s is not None]
        heads = [_case(d, p.value, p.op) for p in by.get(Op.STARTSWITH, [])[:1]]
        tails = [_case(d, p.value, p.op) for p in by.get(Op.ENDSWITH, [])[:1]]
        return _fill_glob(by[Op.GLOB][0].value, Op.GLOB, d, " ".join(extra), "".join(heads), "".join(tails))
    if Op.CIDR in by:
        return _address(by[Op.CIDR][0].value, d)
    comps = [p for p in pos if p.op in COMPARISONS]
    if comps:
        return _number(comps, d)
    head = max(by.get(Op.STARTSWITH, []), key=lambda p: len(p.value), default=None)
    tail = max(by.get(Op.ENDSWITH, []), key=lambda p: len(p.value), default=None)
    mids = [_case(d, p.value, p.op) for p in by.get(Op.CONTAINS, [])]
    samples = [d.regex(p.value) for p in by.get(Op.REGEX, [])]
    if None in samples:
        return None
    if rx_at == 0:  # regex matches among the contains terms; 1: first (for ^), 2: last (for $)
        mids += samples
    parts = [_case(d, head.value, Op.STARTSWITH) if head else ""]
    for m in mids:
        parts += [_sep(d), m]
    parts += [_sep(d), _case(d, tail.value, Op.ENDSWITH) if tail else ""]
    value = "".join(samples + parts if rx_at == 1 else parts + samples if rx_at == 2 else parts)
    if not value and Op.NOT_EMPTY in by:
        value = d.pick(["x"] + _pool()[1][1:])
    return value


def _satisfies(name: str, value: Any, pos: list[Pred], neg: list[Pred]) -> bool:
    ev = {name: value}
    return all(predicate(p, ev) for p in pos) and not any(predicate(p, ev) for p in neg)


def _field_value(name: str, pos: list[Pred], neg: list[Pred], d: _Minimal, lists: bool = True) -> Any:
    """A value of field ``name`` for which ``pos`` hold and ``neg`` do not; ``_ABSENT``; or None."""
    if not pos:
        return _ABSENT
    if not _contradiction(pos, neg, scalar=True):
        tries = [lambda: _compose(pos, d), lambda: _compose(pos, MINIMAL)]
        if any(p.op is Op.REGEX for p in pos):
            tries += [lambda: _compose(pos, d, 1), lambda: _compose(pos, d, 2)]
        tries += [lambda p=p: _compose([p], MINIMAL) for p in pos]
        for t in tries:
            value = t()
            if value is not None and _satisfies(name, value, pos, neg):
                return value
    if not lists:
        return None
    # no one text does: a multi-valued field, one element per predicate
    elements: list[str] = []
    for p in pos:
        for dd in (d, MINIMAL):
            e = _compose([p], dd)
            if e is not None and _satisfies(name, e, [p], neg):
                if e not in elements:
                    elements.append(e)
                break
        else:
            return None
    return elements if _satisfies(name, elements, pos, neg) else None


# -- events -----------------------------------------------------------------------------------


def _rule_fields(node: Node) -> set[str]:
    out = set()
    for p in walk_preds(node):
        out.add(p.field)
        if p.op in EVENT_OPS and p.op is not Op.KEYWORD:
            out.add(p.value)
    return out


def _keyword_key(ev: Mapping, fields: set[str]) -> str:
    for k in ("Message", "Payload", "Keywords"):
        if k not in ev and k not in fields:
            return k
    i = 0
    while f"Message{i}" in ev or f"Message{i}" in fields:
        i += 1
    return f"Message{i}"


def _first_text(ev: Mapping, name: str) -> Optional[str]:
    texts = field_texts(ev, name)
    return texts[0] if texts else None


def _relate(op: Op, g: str, d: _Minimal) -> str:
    """A text standing in relation ``op`` (a fieldref operator) to ``g``."""
    g = _case(d, g, Op.EQUALS)
    if op is Op.FIELDREF_CONTAINS:
        return _sep(d) + g + _sep(d)
    if op is Op.FIELDREF_STARTSWITH:
        return g + _sep(d)
    if op is Op.FIELDREF_ENDSWITH:
        return _sep(d) + g
    return g


def _build(term: list[Lit], node: Node, d: _Minimal, filler: bool, lists: bool = True) -> Optional[dict]:
    """An event for which every literal of ``term`` holds, or None (checked by the caller)."""
    pos: dict[str, list[Pred]] = {}
    neg: dict[str, list[Pred]] = {}
    whole: list[Lit] = []
    for p, holds in term:
        if p.op in EVENT_OPS:
            whole.append((p, holds))
        else:
            (pos if holds else neg).setdefault(p.field, []).append(p)
            (neg if holds else pos).setdefault(p.field, [])
    for name in pos:
        if _contradiction(pos[name], neg.get(name, [])):
            return None
    ev: dict[str, Any] = {}
    free = set()  # fields only required to be present: a fieldref may set them
    for name in pos:
        value = _field_value(name, pos[name], neg.get(name, []), d, lists)
        if value is None:
            return None
        if value is not _ABSENT:
            ev[name] = value
            if all(p.op in (Op.EXISTS, Op.NOT_EMPTY) for p in pos[name]):
                free.add(name)
    fields = _rule_fields(node)
    for p, holds in whole:
        if not holds:
            continue
        if p.op is Op.KEYWORD:
            ev[_keyword_key(ev, fields)] = _fill_glob(p.value, Op.KEYWORD, d)
            continue
        f, g = p.field, p.value
        if f in ev and f not in free and (g not in ev or g in free):
            ev[g] = _case(d, _first_text(ev, f) or "", Op.EQUALS)
        elif g in ev and g not in free:
            ev[f] = _relate(p.op, _first_text(ev, g) or "", d)
        elif f not in ev or f in free:
            ev[g] = d.pick(["x"] + _pool()[1][5:])
            ev[f] = _relate(p.op, ev[g], d)
    if filler:
        pool = _pool()[0]
        base = pool[d.index(len(pool))]
        if fields & set(datasets.SYSMON_FIELDS.values()) - set(datasets.FIELDS):
            base = datasets.to_sysmon(base)
        in_term = {p.field for p, _ in term}
        for k, v in base.items():  # fields the chosen branch does not constrain
            if k not in in_term and k not in ev and v is not None:
                ev[k] = v
    return ev


@dataclass
class _Plan:
    node: Node
    witness: Optional[dict]  # a minimal matching event
    proven: bool  # no witness, and every conjunction was seen to be contradictory
    terms_seen: int
    witness_term: Optional[list]


def _search(node: Node, holds: bool = True) -> _Plan:
    """Conjunctions in order: one text per field first; a list per field only if none does."""
    count = _Count()
    seen = 0
    for lists in (False, True):
        for term in islice(_terms(node, holds, count), LIST_TERMS if lists else SEARCH_TERMS):
            seen += not lists
            for d in (MINIMAL, _Variant(1), _Variant(2)):
                ev = _build(term, node, d, False, lists)
                if ev is None:  # a contradiction or no value: the variants would not do better
                    break
                if evaluate_ir(node, ev) == holds:
                    return _Plan(node, ev, False, seen, term)
    exhausted = seen < SEARCH_TERMS and not count.truncated
    return _Plan(node, None, exhausted and _all_contradictory(node, holds), seen, None)


def _all_contradictory(node: Node, holds: bool) -> bool:
    for term in _terms(node, holds, _Count()):
        pos: dict[str, list[Pred]] = {}
        neg: dict[str, list[Pred]] = {}
        for p, h in term:
            if p.op not in EVENT_OPS:
                (pos if h else neg).setdefault(p.field, []).append(p)
        if not any(_contradiction(pos.get(f, []), neg.get(f, [])) for f in set(pos) | set(neg)):
            return False
    return True


@lru_cache(maxsize=256)
def _plan(node: Node, holds: bool) -> _Plan:
    return _search(node, holds)


def witness(rule: Any) -> dict:
    """A minimal event the rule matches (no filler), found without hypothesis.

    Raises :class:`UnsatisfiableRule` when the rule can match nothing (proven by its structure)
    or no matching event was found within :data:`SEARCH_TERMS` conjunctions.
    """
    node = _node(rule)
    plan = _plan(node, True)
    if plan.witness is None:
        raise UnsatisfiableRule(_name(rule), plan.proven, plan.terms_seen)
    return dict(plan.witness)


def _name(rule: Any) -> str:
    rid = getattr(rule, "id", None)
    src = getattr(getattr(rule, "info", None), "source", None)
    return str(src or rid or "the rule")


# -- near misses ------------------------------------------------------------------------------


def _edit(x: str, i: int) -> str:
    """``x`` with the character at ``i`` replaced by one that differs after folding."""
    c = x[i]
    if c.isalpha():
        r = "q" if fold(c) != "q" else "z"
    elif c.isdigit():
        r = "1" if c != "1" else "2"
    else:
        r = {"\\": "/", "/": "\\", ".": "_", " ": "_"}.get(c, "x")
    return x[:i] + r + x[i + 1:]


def _where(x: str, v: str) -> int:
    """Where literal ``v`` sits in ``x`` (case-insensitively), or -1."""
    fx = fold(x)
    return fx.find(fold(v)) if len(fx) == len(x) else -1


def _value_breaks(p: Pred, x: str) -> list[str]:
    """Minimal changes to the text ``x`` of ``p.field`` meant to make ``p`` false."""
    out = []
    v = p.value
    if p.op in (Op.EQUALS, Op.ENDSWITH):
        out.append(x + ".bak")
    if p.op is Op.STARTSWITH:
        out.append("_" + x)
    if p.op in COMPARISONS:
        n = to_number(v)
        if n is not None:
            step = 0 if p.op in (Op.GT, Op.LT) else (-1 if p.op is Op.GE else 1)
            out.append(_number_text(n + step))
    if p.op is Op.CIDR:
        net = network(v)
        for a in (int(net.broadcast_address) + 1, int(net.network_address) - 1):
            try:
                out.append(str(ipaddress.ip_address(a) if net.version == 4 and a < 2**32 else
                               ipaddress.IPv6Address(a)))
            except ValueError:
                pass
    if p.op is Op.NOT_EMPTY:
        out.append("")
    if p.op is Op.REGEX and x.swapcase() != x:
        out.append(x.swapcase())  # the wrong case where case matters
    if x:
        at = _where(x, v) if isinstance(v, str) and v else -1
        spots = [at + len(v) - 1, at, at + len(v) // 2] if at >= 0 else [len(x) - 1, 0, len(x) // 2]
        out += [_edit(x, i) for i in dict.fromkeys(spots)]
        if p.op in _FOLDING:  # look-alikes that do not fold to the letter
            for i, c in enumerate(x):
                if fold(c) in _LOOKALIKE and (at < 0 or at <= i < at + len(v)):
                    out.append(x[:i] + _LOOKALIKE[fold(c)] + x[i + 1:])
                    break
        if p.op is Op.EQUALS:
            out.append(x[:-1])
    return out


def _padded(op: Op, v: str) -> list[str]:
    """Texts ``op`` still holds for that a stricter operator on the same literal does not."""
    if op is Op.CONTAINS:
        return ["x" + v + "x", v + ".bak", "x" + v]
    if op is Op.STARTSWITH:
        return [v + ".bak"]
    if op is Op.ENDSWITH:
        return ["x" + v]
    if op is Op.EQUALS:
        return [v.upper(), v.lower()]
    return []


def _breaks(ev: dict, lit: Lit, node: Node, d: _Minimal) -> list[dict]:
    """Events that differ from ``ev`` in one place, each meant to make literal ``lit`` fail."""
    p, holds = lit
    out = []
    if not holds:  # NOT p in the chosen conjunction: make p hold
        if p.op is Op.KEYWORD:
            out.append({**ev, _keyword_key(ev, _rule_fields(node)): _fill_glob(p.value, Op.KEYWORD, d)})
        elif p.op in EVENT_OPS:
            g = _first_text(ev, p.value)
            if g is not None:
                out.append({**ev, p.field: _relate(p.op, g, d)})
        else:
            for dd in (d, MINIMAL):
                value = _compose([p], dd)
                if value is not None:
                    out.append({**ev, p.field: value})
            if value is not None:  # the literal with more around it: contains, not equal
                out += [{**ev, p.field: y} for y in _padded(p.op, value)]
        return out
    if p.op is Op.KEYWORD:
        rx_hits = [k for k, v in ev.items() if isinstance(v, str) and predicate(p, {k: v})]
        for k in rx_hits[:1]:
            out += [{**ev, k: y} for y in _value_breaks(Pred(k, Op.GLOB, p.value), ev[k])]
        out.append({k: v for k, v in ev.items() if k not in rx_hits})
        return out
    value = ev.get(p.field)
    if isinstance(value, list):  # a multi-valued field: change the element that satisfies p
        for i, e in enumerate(value):
            if predicate(p, {p.field: e}):
                rest = value[:i] + value[i + 1:]
                out += [{**ev, p.field: value[:i] + [y] + value[i + 1:]} for y in _value_breaks(p, e)]
                out.append({**ev, p.field: rest} if rest else {k: v for k, v in ev.items() if k != p.field})
                return out
    x = _first_text(ev, p.field)
    if x is not None and p.op not in (Op.EXISTS,) and p.op not in EVENT_OPS:
        out += [{**ev, p.field: y} for y in _value_breaks(p, x)]
    if x is not None and p.op in EVENT_OPS:
        out += [{**ev, p.field: y} for y in _value_breaks(Pred(p.field, Op.EQUALS, x), x)[:2]]
    out.append({k: v for k, v in ev.items() if k != p.field})  # the field removed
    return out


def near_misses(rule: Any, limit: int = 64) -> Iterator[dict]:
    """Deterministic near misses: minimal matching events, each broken in one place, that the
    rule does not match (checked with the reference). No hypothesis involved."""
    node = _node(rule)
    count = 0
    for term in islice(_terms(node, True, _Count()), 16):
        ev = _build(term, node, MINIMAL, filler=False)
        if ev is None or not evaluate_ir(node, ev):
            continue
        for lit in term:
            for miss in _breaks(ev, lit, node, MINIMAL):
                if not evaluate_ir(node, miss):
                    yield miss
                    count += 1
                    if count >= limit:
                        return


# -- the strategies -----------------------------------------------------------------------------


def _matching(draw: Any, node: Node, plan: _Plan) -> dict:
    d = _Drawn(draw)
    with_filler = bool(d.index(2))  # shrinks to no filler
    term: list = []
    _draw_term(node, True, d, term)
    for lists, t in ((False, term), (False, plan.witness_term), (True, term), (True, plan.witness_term)):
        for filler in dict.fromkeys((with_filler, False)):
            ev = _build(t, node, d, filler, lists)
            if ev is not None and evaluate_ir(node, ev):
                return ev
    return dict(plan.witness)


def _missing(draw: Any, node: Node, plan: _Plan, fallback: dict) -> dict:
    d = _Drawn(draw)
    with_filler = bool(d.index(2))
    term: list = []
    _draw_term(node, True, d, term)
    for t in (term, plan.witness_term):
        ev = _build(t, node, d, with_filler)
        if ev is None or not evaluate_ir(node, ev):
            continue
        start = d.index(len(t))
        for k in range(len(t)):  # the drawn literal first, then the others
            lit = t[(start + k) % len(t)]
            misses = [m for m in _breaks(ev, lit, node, d) if not evaluate_ir(node, m)]
            if misses:
                return misses[d.index(len(misses))]
    return dict(fallback)


def events(rule: Any, matching: bool = True):
    """A hypothesis strategy of events (dicts) that ``rule`` matches, or with ``matching=False``
    its near misses: matching events broken in one place (a one-character edit, ``cmd.exe.bak``,
    a removed field, the wrong case where case matters, a look-alike letter that does not fold),
    which the rule does not match.

    ``rule`` is a :class:`~matcher.Rule` (S1QL, Sigma, any profile), an IR node or an S1QL text.
    Every event is checked with the reference evaluator before it is yielded. Raises
    :class:`UnsatisfiableRule` when no event matches the rule (or, for near misses, when every
    event does), found structurally or by a bounded search.
    """
    from hypothesis import strategies as st

    node = _node(rule)
    plan = _plan(node, True)
    if plan.witness is None:
        raise UnsatisfiableRule(_name(rule), plan.proven, plan.terms_seen)
    if matching:
        return st.composite(lambda draw: _matching(draw, node, plan))()
    fallback = next(near_misses(node, 1), None)
    if fallback is None:
        other = _plan(node, False)
        if other.witness is None:
            raise UnsatisfiableRule(_name(rule), other.proven, other.terms_seen, always=True)
        fallback = other.witness
    return st.composite(lambda draw: _missing(draw, node, plan, fallback))()


# -- comparing rules --------------------------------------------------------------------------


def _candidates(node: Node) -> Iterator[dict]:
    """Structural candidates: minimal events of each conjunction (and case variants), near
    misses (boundary values, edits, removed fields), events of the negation."""
    for term in islice(_terms(node, True, _Count()), 64):
        for d in (MINIMAL, _Variant(1), _Variant(2), _Variant(3), _Variant(4)):
            ev = _build(term, node, d, filler=False)
            if ev is not None:
                yield ev
    yield from near_misses(node, 256)
    for term in islice(_terms(node, False, _Count()), 64):
        ev = _build(term, node, MINIMAL, filler=False)
        if ev is not None:
            yield ev


def _strategies(node: Node) -> list:
    out = []
    for matching in (True, False):
        try:
            out.append(events(node, matching))
        except UnsatisfiableRule:
            pass
    return out


def _search_pair(a: Node, b: Node, want, budget: int) -> Optional[dict]:
    for ev in _candidates(a):
        if want(ev):
            return ev
    for ev in _candidates(b):
        if want(ev):
            return ev
    strategies = _strategies(a) + _strategies(b)
    if not strategies or budget <= 0:
        return None
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    try:
        return find(st.one_of(strategies), want,
                    settings=settings(max_examples=budget, database=None, deadline=None,
                                      phases=[Phase.generate, Phase.shrink],
                                      suppress_health_check=list(HealthCheck)))
    except (NoSuchExample, Unsatisfiable):
        return None


def counterexample(rule_a: Any, rule_b: Any, *, budget: int = BUDGET) -> Optional[dict]:
    """An event on which the two rules disagree (the reference evaluator's verdicts), or None.

    None means *none found within the budget*, not that the rules are equivalent: the search is
    structural first (each rule's conjunctions built into minimal events with case variants,
    their near misses and boundary values, the negations' events), then ``budget`` hypothesis
    examples from both rules' ``events`` strategies, matching and near misses; a hypothesis
    find is shrunk. The rules may come from different front ends and profiles, but they are
    judged on the same events, so load them for one schema (e.g. both ``profile="s1"``).
    """
    a, b = _node(rule_a), _node(rule_b)
    return _search_pair(a, b, lambda ev: evaluate_ir(a, ev) != evaluate_ir(b, ev), budget)


def implies(rule_a: Any, rule_b: Any, *, budget: int = BUDGET) -> Optional[dict]:
    """An event ``rule_a`` matches and ``rule_b`` does not, or None.

    None means *none found within the budget* (the search of :func:`counterexample`), i.e.
    no evidence against "every event rule_a matches, rule_b matches too".
    """
    a, b = _node(rule_a), _node(rule_b)
    return _search_pair(a, b, lambda ev: evaluate_ir(a, ev) and not evaluate_ir(b, ev), budget)


# -- the command line: ``matcher examples`` and ``matcher diff`` (argument parsers in cli.py) --------


def _one_rule(spec: str) -> Any:
    from .api import gather_rules as _gather_rules

    rules, errors = _gather_rules([], [spec], default=False)
    if errors:
        raise RuleError("; ".join(errors))
    if len(rules) != 1:
        raise RuleError(f"{spec}: holds {len(rules)} rules; give one")
    return rules[0]


def sample(rule: Any, n: int, matching: bool = True, seed: int = 0) -> list[dict]:
    """Up to ``n`` distinct events of :func:`events` (hypothesis' generation phase, seeded), the
    simplest first."""
    import orjson
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as _seed

    strategy = events(rule, matching)
    got: dict[bytes, dict] = {}

    @_seed(seed)
    @settings(max_examples=max(2 * n, 10), database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(ev: dict) -> None:
        if len(got) < n:
            got.setdefault(orjson.dumps(ev, option=orjson.OPT_SORT_KEYS), ev)

    collect()
    return list(got.values())


def run_examples(args: Any) -> int:
    """``matcher examples RULE [-n N] [--near-misses] [--seed S]``: events as JSON lines."""
    import sys

    import orjson

    from .errors import MatcherError

    if args.events < 0:
        print("matcher examples: -n must be >= 0", file=sys.stderr)
        return 2
    try:
        rule = _one_rule(args.rule)
        evs = sample(rule, args.events, not args.near_misses, args.seed)
    except MatcherError as e:
        print(f"matcher examples: {e}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    for ev in evs:
        out.write(orjson.dumps(ev, option=orjson.OPT_APPEND_NEWLINE))
    out.flush()
    if len(evs) < args.events:
        print(f"matcher examples: {len(evs)} distinct event(s) found, not {args.events}", file=sys.stderr)
    return 0


def run_diff(args: Any) -> int:
    """``matcher diff RULE_A RULE_B``: a counterexample with both rules' explanations; exit 1 if found."""
    import sys

    import orjson

    from . import explain
    from .errors import MatcherError

    budget = BUDGET if args.budget is None else args.budget
    try:
        a, b = (_one_rule(spec) for spec in args.rules)
    except MatcherError as e:
        print(f"matcher diff: {e}", file=sys.stderr)
        return 2
    ev = counterexample(a, b, budget=budget)
    if args.format == "json":
        doc: dict[str, Any] = {"differ": ev is not None, "budget": budget, "event": ev}
        if ev is not None:
            doc["rules"] = [{"spec": spec, "rule_id": r.id, "matched": evaluate_ir(r.ir, ev),
                             "tree": explain.to_dict(explain.explain(r.ir, ev))} for spec, r in zip(args.rules, (a, b))]
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        return 1 if ev is not None else 0
    if ev is None:
        print(f"no event found on which the rules disagree (structural search, then {budget} hypothesis examples); "
              "this is not a proof that they are equivalent")
        return 0
    print("the rules disagree on this event:")
    print(orjson.dumps(ev).decode())
    for spec, r in zip(args.rules, (a, b)):
        tree = explain.explain(r.ir, ev)
        print(f"\n{spec} (rule {r.id}): {'MATCH' if tree.result else 'NO MATCH'}")
        sys.stdout.write(explain.render(tree))
    return 1
