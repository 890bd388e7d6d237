"""Lower the IR of many rules to one matching plan for the Cython core.

The plan is plain Python data (lists, bytes); :class:`matcher._core.Program` turns it into
C tables. What the compiler decides:

- **Predicates are shared.** Every distinct ``(field, op, folded literal)`` across all rules
  is one predicate id, i.e. one bit per event.
- **Per field, up to three probes** (DESIGN.md, "Probes"): presence (``EXISTS``/``IS NOT
  EMPTY``), a forward and a tail automaton. Every literal is a pattern over byte symbols with
  START and END markers (equality ``^v$``, prefix ``^v``, suffix ``v$``, contains ``v``);
  suffixes (and then equality) go to the tail automaton, reversed and anchored, the rest to the
  forward one. These are the *table* predicates: running a probe fires all of its predicates
  for the row at once.
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

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Callable, NamedTuple, Optional

from .errors import RegexBudgetExceeded
from .fields import ENUM_FIELDS  # fields whose values come from a short list: equality on them is not selective
from .ir import EVENT_OPS, PRESENCE_GUARDED, And, Glob, Node, Not, Op, Pred, Wild, and_, or_
from .ops import REFERENCE, compile_regex, fold, is_linear, network
from .regex_prefilter import EXTRA_FACTORS, regex_factors, regex_min_len, regex_run
from .regex_prefilter import rarity as _rarity

__all__ = ["Plan", "compile_plan", "py_callback", "TABLE", "GLOB", "PY", "FREF", "EVERY_STRING", "encode"]

# Predicate kinds (must match src/_core.pyx). Every whole-event operator (ir.EVENT_OPS) runs in
# the core: fieldrefs as FREF, keywords as table/GLOB predicates of the pseudo-field EVERY_STRING.
TABLE, GLOB, PY, FREF = 0, 1, 2, 3
# Node kinds.
N_PRED, N_AND, N_OR, N_NOT, N_ANY = 0, 1, 2, 3, 4
#: The probes of a field (the word is defined where src/_core.pyx declares them), numbered as
#: there: its presence flags, its forward automaton and its tail automaton (FieldPlan.automata
#: says which literal goes where).
P_PRESENCE, P_AUTOMATON, P_TAIL = 0, 1, 2
NPROBES = 3
#: Automaton symbols (2 bytes each, big-endian): a byte is 0x00 b; the markers before a value's
#: first byte and after its last are START (256) and END (257).
START, END = b"\x01\x00", b"\x01\x01"


def symbols(lit: bytes, start: bool = False, end: bool = False) -> bytes:
    """A literal as automaton symbols: ``^lit`` with start, ``lit$`` with end."""
    return (START if start else b"") + lit.decode("latin-1").encode("utf-16-be") + (END if end else b"")


#: ORs of at least this many table predicates become one group flag (N_ANY).
GROUP_MIN = 4
#: A field whose stage-1 automata hold at least this many literals is worth reading through a
#: dictionary when its values repeat (Plan.memo_fields): walking them costs more per row than
#: Arrow's hashing of the column; below it (the flagship rule's handful) the hashing costs more.
MEMO_MIN_LITERALS = 64
# Glob tokens (besides literal bytes 0..255).
G_ANY, G_ONE = -1, -2



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

    def automata(self) -> dict[int, tuple[bool, list[tuple[bytes, int]]]]:
        """The field's automata: probe -> (reversed, patterns). Equality is ``^v$``, prefix
        ``^v``, suffix ``v$``, contains ``v`` (START/END markers around the value).

        Suffix literals (and equality with them) go to the tail automaton, reversed
        (``^reversed(v)``, ``^reversed(v)$``): every literal of it is anchored at the start, so
        the core reads a value from its last byte and stops as soon as no literal can match (a
        path pays for its file name, not its folders). The rest (prefix, contains, and equality
        when there is no suffix literal) is the forward automaton; without contains literals it
        stops early too. A field has at most one walk over a value per direction."""
        out = {}
        eq_fwd = not self.suffix
        if self.suffix:
            out[P_TAIL] = (True, [(symbols(v[::-1], True, True), p) for v, p in self.eq]
                           + [(symbols(v[::-1], True), p) for v, p in self.suffix])
        fwd = ([(symbols(v, True, True), p) for v, p in self.eq] if eq_fwd else []) + \
            [(symbols(v, True), p) for v, p in self.prefix] + [(symbols(v), p) for v, p in self.contains]
        if fwd:
            out[P_AUTOMATON] = (False, fwd)
        return out


#: Sigma fieldref operators compared in the core (kind FREF): op -> code in src/_core.pyx fref_op.
FIELDREF_CODE = {Op.FIELDREF: 0, Op.FIELDREF_CONTAINS: 1, Op.FIELDREF_STARTSWITH: 2, Op.FIELDREF_ENDSWITH: 3}


class _EveryString(str):
    """The name of the pseudo-field whose values are every ``str`` value of an event, at any
    depth (``ops.string_values``): what a Sigma keyword (``Op.KEYWORD``) reads. Equal only to
    itself, so no field name of an event or a rule is ever taken for it."""

    __slots__ = ()
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other


EVERY_STRING = _EveryString("<every string value>")


@dataclass
class Plan:
    """Everything the core needs, as plain data."""

    fields: list[FieldPlan]
    pred_field: list[int]
    pred_kind: list[int]
    guards: list[list[int]]  # lazy pred -> table preds one of which must fire first
    groups: list[list[int]]  # N_ANY node arg -> table preds (an OR of them)
    globs: dict[int, list[int]]  # pred -> glob tokens
    py_preds: dict[int, tuple[Op, str]]  # pred -> (op, literal) for regex/comparisons
    min_len: dict[int, int]  # lazy pred -> fewest characters a value must have to match it
    runs: dict[int, tuple[bytes, int]]  # regex pred -> (byte class bitmap, k): see regex_run
    node_kind: list[int]
    node_arg: list[int]
    node_count: list[int]
    kids: list[int]
    rule_root: list[int]
    trig_start: list[int]  # CSR: pred -> rules it triggers
    trig_rules: list[int]
    always: list[int]
    preds: list[Pred] = field(default_factory=list)  # id -> IR predicate (for explain/debug)
    strings_field: int = -1  # the field EVERY_STRING (Sigma keywords), -1 when no rule reads it
    fieldrefs: dict[int, tuple[int, int]] = field(default_factory=dict)  # FREF pred -> (other field, FIELDREF_CODE)
    # What runs where, decided here (the core follows): probes are field * NPROBES + P_*.
    pred_probe: list[int] = field(default_factory=list)  # table pred -> its probe; -1 for lazy preds
    group_probes: list[list[int]] = field(default_factory=list)  # N_ANY group -> probes of its members
    eager: list[int] = field(default_factory=list)  # probes run down every row (stage 1): trigger tables
    gather: list[int] = field(default_factory=list)  # fields read up front from mappings (others on demand)
    automata: list[dict] = field(default_factory=list)  # per field: FieldPlan.automata()
    memo_fields: list[int] = field(default_factory=list)  # fields to dictionary-encode when repetitive


# Operators as module globals: in Python 3.11 each ``Op.X`` is a class-attribute lookup of about
# 0.1 us, which the per-predicate code below would pay a dozen times per predicate.
_EXISTS, _NOT_EMPTY, _EQUALS, _GLOB, _REGEX, _CIDR = Op.EXISTS, Op.NOT_EMPTY, Op.EQUALS, Op.GLOB, Op.REGEX, Op.CIDR
_STARTSWITH, _ENDSWITH, _CONTAINS = Op.STARTSWITH, Op.ENDSWITH, Op.CONTAINS
_PRESENCE = frozenset({Op.EXISTS, Op.NOT_EMPTY})
_FIXES = frozenset({Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH})
_LITERAL_OPS = _FIXES | {Op.EQUALS}

_PROBE_OF = {Op.EXISTS: "presence", Op.NOT_EMPTY: "presence", Op.EQUALS: "eq", Op.STARTSWITH: "prefix",
            Op.ENDSWITH: "suffix"}


def _estimate(p: Pred) -> float:
    """Rough probability that ``p`` holds on a typical event (only used for ordering).

    Only the order matters: which child of an AND becomes the trigger set, which tests run
    first. A wrong estimate costs time, never correctness.
    """
    op = p.op
    if op in _PRESENCE:
        return 0.9
    text = p.value if isinstance(p.value, str) else ""
    if op is _EQUALS:
        if p.field.lower() in ENUM_FIELDS:
            return 0.95
        return min(0.3, _rarity(text) * 0.1)
    if op is _STARTSWITH or op is _ENDSWITH:
        return min(0.5, _rarity(text) * 2)
    if op is _CONTAINS:
        return min(0.9, _rarity(text) * 20)
    return 0.05


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


def cidr_guard(value: str) -> tuple:
    """A table predicate implied by ``CIDR value``: the text of an IPv4 address in a /8 or
    narrower network starts with its fixed octets and a dot (``ipaddress`` reads only plain
    ASCII dotted decimals without leading zeros); else the field's presence."""
    net = network(value)
    if net.version == 4 and net.prefixlen >= 8:
        octets = str(net.network_address).split(".")[: min(net.prefixlen // 8, 3)]
        return Op.STARTSWITH, ".".join(octets) + "."
    return (Op.EXISTS,)


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


#: Relative cost of running one table of a field on every row (the AC scan reads the whole
#: value; the others a few bytes), and of evaluating a rule that became a candidate.
PROBE_COST = {"presence": 0.2, "eq": 1.0, "prefix": 1.0, "suffix": 1.0, "contains": 10.0}
EVAL_COST = 30.0


class Trigger(NamedTuple):
    """Table predicates one of which must fire for a rule (or subtree) to hold."""

    preds: frozenset
    p: float  # estimated probability that one fires
    probes: frozenset  # the tables that compute them: (field, probe name)
    cost: float  # expected work per row if this set is the rule's trigger (see make)

    @classmethod
    def make(cls, preds: frozenset, p: float, probes: frozenset) -> "Trigger":
        return cls(preds, p, probes, sum(PROBE_COST[u] for _, u in probes) + p * EVAL_COST)


_COST = attrgetter("cost")


class _Builder:
    def __init__(self) -> None:
        self.and_cands: dict[int, list[Trigger]] = {}  # AND node -> its children's triggers
        self.fields: list[FieldPlan] = []
        self.field_ids: dict[str, int] = {}
        self.pred_ids: dict[tuple, int] = {}
        self.preds: list[Pred] = []
        self.pred_field: list[int] = []
        self.pred_kind: list[int] = []
        self.guards: list[list[int]] = []
        self.groups: list[list[int]] = []
        self.pred_est: list[float] = []
        self.globs: dict[int, list[int]] = {}
        self.py_preds: dict[int, tuple[Op, str]] = {}
        self.fieldrefs: dict[int, tuple[int, int]] = {}
        self.min_len: dict[int, int] = {}
        self.runs: dict[int, tuple[bytes, int]] = {}
        self.regex_extra: dict[int, list[frozenset[str]]] = {}  # regex pred -> sets besides its guard
        self.pred_of: dict[Pred, int] = {}  # IR predicate -> id (several IR forms may share one)
        self.pred_trigger: dict[int, Trigger] = {}  # id -> the trigger of a lone predicate node
        self.expanding: set[int] = set()  # regex preds being lowered with their extra sets
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
        try:
            return self.pred_of[p]
        except KeyError:
            pid = self.pred_of[p] = self._pred(p)
            return pid

    def _pred(self, p: Pred) -> int:
        if p.op in _FIXES and p.value == "":
            p = Pred(p.field, Op.EXISTS)  # an empty literal holds for every present value
        op = p.op
        if op in _LITERAL_OPS:
            key: tuple = (p.field, op, encode(p.value))
        elif op is _GLOB:
            key = (p.field, op, tuple(_glob_tokens(p.value)))
        else:
            key = (p.field, op, p.value)
        pid = self.pred_ids.get(key)
        if pid is not None:
            return pid
        if op in FIELDREF_CODE:  # compared in the core, once field p.field is present
            guard_id = self.pred(Pred(p.field, Op.EXISTS))
            pid = self.pred_ids[key] = len(self.preds)
            self.preds.append(p)
            self.pred_field.append(self.field_id(p.field))
            self.pred_kind.append(FREF)
            self.guards.append([guard_id])
            self.pred_est.append(min(0.05, self._any_est([guard_id])))
            self.fieldrefs[pid] = (self.field_id(p.value), FIELDREF_CODE[op])
            return pid
        if op in EVENT_OPS:  # KEYWORD is lowered to EVERY_STRING before it gets here
            raise AssertionError(f"whole-event operator {op} reached the predicate table")
        fid = self.field_id(p.field)
        fp = self.fields[fid]
        guard: list[int] = []
        kind = TABLE
        if op is _GLOB:
            kind = GLOB
            g = _glob_guard(p.value)
            guard = [self.pred(Pred(p.field, g[0], g[1]) if g else Pred(p.field, Op.EXISTS))]
        elif op is _REGEX:
            kind = PY
            factors = regex_factors(p.value)
            best = sorted(factors[0]) if factors else None
            guard = [self.pred(Pred(p.field, Op.CONTAINS, x)) for x in best] if best else [self.pred(Pred(p.field, Op.EXISTS))]
            # The other required sets are tested (as table predicates) before the regex runs.
            self.regex_extra[len(self.preds)] = factors[1:1 + EXTRA_FACTORS]  # the id it gets below
        elif op in PRESENCE_GUARDED:
            kind = PY
            guard = [self.pred(Pred(p.field, Op.EXISTS))]
        elif op is _CIDR:
            kind = PY
            guard = [self.pred(Pred(p.field, *cidr_guard(p.value)))]
        pid = self.pred_ids[key] = len(self.preds)
        self.preds.append(p)
        self.pred_field.append(fid)
        self.pred_kind.append(kind)
        self.guards.append(guard)
        self.pred_est.append(_estimate(p) if kind == TABLE else min(0.05, self._any_est(guard)))
        lit = key[2] if kind == TABLE and op not in _PRESENCE else None
        if op is _EQUALS:
            fp.eq.append((lit, pid))
        elif op is _STARTSWITH:
            fp.prefix.append((lit, pid))
        elif op is _ENDSWITH:
            fp.suffix.append((lit, pid))
        elif op is _CONTAINS:
            fp.contains.append((lit, pid))
        elif op is _EXISTS:
            fp.exists = pid
        elif op is _NOT_EMPTY:
            fp.not_empty = pid
        elif op is _GLOB:
            self.globs[pid] = _glob_tokens(p.value)
        else:
            self.py_preds[pid] = (op, p.value)
            if op is _REGEX:
                self.min_len[pid] = regex_min_len(p.value)
                run = regex_run(p.value)
                if run is not None:
                    self.runs[pid] = run
        return pid

    # -- rules -------------------------------------------------------------------------------
    def probe(self, pid: int) -> tuple[int, str]:
        """The table of its field that fires table predicate ``pid``."""
        return self.pred_field[pid], _PROBE_OF.get(self.preds[pid].op, "contains")

    def trigger(self, preds) -> Trigger:
        return Trigger.make(frozenset(preds), self._any_est(preds), frozenset(map(self.probe, preds)))

    def lower(self, node: Node) -> tuple[int, float, Optional["Trigger"]]:
        """Emit ``node``; return (node index, P(true) estimate, trigger or None)."""
        if isinstance(node, Pred) and node.op is Op.KEYWORD:
            # a glob over the pseudo-field EVERY_STRING: the tables, guards and glob matcher of
            # any field then run it in the core (the core gathers its values: ops.string_values)
            g = node.value
            node = Pred(EVERY_STRING, Op.GLOB, g) if g.has_wildcards else \
                Pred(EVERY_STRING, Op.EQUALS, "".join(g.parts))  # type: ignore[arg-type]
        if isinstance(node, Pred):
            pid = self.pred(node)
            extra = self.regex_extra.get(pid)
            if extra and pid not in self.expanding:
                # A regex needs one literal of each of its required sets: AND those in front
                # of it, so it runs only when all of them are in the value.
                self.expanding.add(pid)
                try:
                    tests = [or_(*(Pred(node.field, Op.CONTAINS, x) for x in sorted(fs))) for fs in extra]
                    return self.lower(and_(*tests, node))
                finally:
                    self.expanding.discard(pid)
            idx = self._emit(N_PRED, pid, 0)
            kind = self.pred_kind[pid]
            trig = self.pred_trigger.get(pid)
            if trig is None:
                trig = self.pred_trigger[pid] = self.trigger((pid,) if kind == TABLE else self.guards[pid])
            return idx, self.pred_est[pid], trig
        if isinstance(node, Not):
            child, est, _ = self.lower(node.item)
            idx = self._emit(N_NOT, len(self.kids), 1)
            self.kids.append(child)
            return idx, 1.0 - est, None
        lowered = [self.lower(c) for c in node.items]
        lazy = [self._is_lazy(i) for i, *_ in lowered]
        if isinstance(node, And):
            order = sorted(range(len(lowered)), key=lambda k: (lazy[k], lowered[k][1]))
            est = 1.0
            for _, e, _ in lowered:
                est *= e
            cands = [t for _, _, t in lowered if t is not None]
            trig = min(cands, key=_COST) if cands else None
            kind = N_AND
        else:
            order = sorted(range(len(lowered)), key=lambda k: (lazy[k], -lowered[k][1]))
            miss = 1.0
            for _, e, _ in lowered:
                miss *= 1.0 - e
            est = 1.0 - miss
            if all(t is not None for _, _, t in lowered):
                quiet = 1.0  # P(no trigger fires), taking them as independent
                for _, _, t in lowered:
                    quiet *= 1.0 - t.p
                trig = Trigger.make(
                    frozenset().union(*(t.preds for _, _, t in lowered)),
                    1.0 - quiet,
                    frozenset().union(*(t.probes for _, _, t in lowered)),
                )
            else:
                trig = None
            kind = N_OR
            members = [self.node_arg[i] for i, *_ in lowered if self.node_kind[i] == N_PRED]
            if len(members) == len(lowered) >= GROUP_MIN and all(self.pred_kind[m] == TABLE for m in members):
                # An OR of table predicates: one flag per row, set when any member fires.
                del self.node_kind[-len(lowered):], self.node_arg[-len(lowered):], self.node_count[-len(lowered):]
                idx = self._emit(N_ANY, len(self.groups), len(members))
                self.groups.append(members)
                return idx, est, trig
        idx = self._emit(kind, len(self.kids), len(lowered))
        self.kids.extend(lowered[k][0] for k in order)
        if kind == N_AND:
            self.and_cands[idx] = cands  # each is a trigger of the AND (see _choose_triggers)
        return idx, est, trig

    def _any_est(self, preds) -> float:
        quiet = 1.0
        for g in preds:
            quiet *= 1.0 - self.pred_est[g]
        return 1.0 - quiet

    def _is_lazy(self, node_idx: int) -> bool:
        return self.node_kind[node_idx] == N_PRED and self.pred_kind[self.node_arg[node_idx]] != TABLE

    def _emit(self, kind: int, arg: int, count: int) -> int:
        self.node_kind.append(kind)
        self.node_arg.append(arg)
        self.node_count.append(count)
        return len(self.node_kind) - 1


def _choose_triggers(alternatives: list[list[Trigger]]) -> list[Optional[Trigger]]:
    """Pick each rule's trigger among the triggers of its top-level AND's children.

    Alone, each rule takes its cheapest. But a table that some rule's trigger runs on every
    row is run anyway, so for the others it costs nothing: two more rounds re-pick with the
    tables already in use counted as free (only their share of evaluations is paid).
    """
    choice = [min(alts, key=_COST) if alts else None for alts in alternatives]
    for _ in range(2):
        users: dict = {}
        for t in choice:
            for u in t.probes if t is not None else ():
                users[u] = users.get(u, 0) + 1

        def cost(t: Trigger, mine: frozenset) -> float:
            paid = sum(PROBE_COST[u[1]] for u in t.probes if users.get(u, 0) - (u in mine) <= 0)
            return paid + t.p * EVAL_COST

        for r, alts in enumerate(alternatives):
            if len(alts) > 1:
                mine = choice[r].probes if choice[r] is not None else frozenset()
                choice[r] = min(alts, key=lambda t: cost(t, mine))
    return choice


def compile_plan(rules: list[Node]) -> Plan:
    """Lower the IR of ``rules`` (in RuleSet order) to a :class:`Plan`."""
    b = _Builder()
    roots: list[int] = []
    triggers: list[Optional[frozenset[int]]] = []
    alternatives: list[list[Trigger]] = []
    for node in rules:
        root, _, trig = b.lower(node)
        roots.append(root)
        alternatives.append(b.and_cands.get(root, [trig] if trig else []))
    for r, trig in enumerate(_choose_triggers(alternatives)):
        triggers.append(trig.preds if trig is not None else None)
    npred = len(b.preds)
    pred_probe = [-1] * npred
    automata = [fp.automata() for fp in b.fields]
    for fid, fp in enumerate(b.fields):
        for pid in (fp.exists, fp.not_empty):
            if pid >= 0:
                pred_probe[pid] = fid * NPROBES + P_PRESENCE
        for probe, (_, pats) in automata[fid].items():
            for _, pid in pats:
                pred_probe[pid] = fid * NPROBES + probe
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
    # Stage 1 runs the probes of trigger predicates on every row; rules evaluated on every row
    # may read any field, so then every field is gathered up front.
    eager = sorted({pred_probe[p] for p in range(npred) if by_pred[p]})
    gather = sorted({u // NPROBES for u in eager}) if not always else list(range(len(b.fields)))
    return Plan(
        fields=b.fields,
        pred_field=b.pred_field,
        pred_kind=b.pred_kind,
        guards=b.guards,
        groups=b.groups,
        globs=b.globs,
        py_preds=b.py_preds,
        min_len=b.min_len,
        runs=b.runs,
        node_kind=b.node_kind,
        node_arg=b.node_arg,
        node_count=b.node_count,
        kids=b.kids,
        rule_root=roots,
        trig_start=trig_start,
        trig_rules=trig_rules,
        always=always,
        preds=b.preds,
        strings_field=b.field_ids.get(EVERY_STRING, -1),
        fieldrefs=b.fieldrefs,
        pred_probe=pred_probe,
        group_probes=[sorted({pred_probe[p] for p in members}) for members in b.groups],
        eager=eager,
        gather=gather,
        automata=automata,
        memo_fields=sorted(f for f in {u // NPROBES for u in eager}
                           if sum(len(pats) for _, pats in automata[f].values()) >= MEMO_MIN_LITERALS),
    )


def py_callback(plan: Plan, on_overrun: Callable[[int, int, RegexBudgetExceeded], None]) -> Callable[[int, list, int], bool]:
    """The core's callback for the Python predicates of ``plan`` (kind PY: regexes, comparisons,
    CIDR, time parts; the core's ``py_eval``): ``(pred id, the field's texts, row) -> bool``, true
    when some text holds. (PY predicates are some of the lazy ones, those not evaluated by stage 1's
    tables: globs and field references are lazy too, and evaluated in C.)
    A regex only the backtracking engine runs is searched under a budget per text; a text
    whose budget runs out counts as no match and is passed to ``on_overrun(pred id, row,
    error)`` (the caller reports it)."""
    py_preds = plan.py_preds
    budgeted = {pid: compile_regex(v).search for pid, (op, v) in py_preds.items() if op is _REGEX and not is_linear(v)}

    def py_eval(pid: int, texts: list, row: int, _py_preds=py_preds, _ref=REFERENCE) -> bool:
        search = budgeted.get(pid)
        if search is not None:
            for t in texts:
                try:
                    if search(t):
                        return True
                except RegexBudgetExceeded as e:
                    on_overrun(pid, row, e)
            return False
        op, value = _py_preds[pid]
        test = _ref[op]
        return any(test(t, value) for t in texts)

    return py_eval
