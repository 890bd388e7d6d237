"""``matcher coverage``: what the rules read against what the events hold.

Three lists, from the rules (as ``scan`` runs them: S1QL rules after the profile's renaming,
Sigma rules loaded by the Sigma front end for the events' profile, with its routing, filters,
placeholders and ``--timestamp``) and the events
(every record of the inputs, whole):

- fields the rules read that no event holds (a misspelt ``TgtProcImagPath`` shows up here);
- fields the events hold that no rule reads;
- rules that can never fire on these events: with every predicate on an absent field false (as
  ``docs/semantics.md`` says) the rule is false whatever the other fields hold. The fields whose
  absence alone decides it are named.

A field is *held* when some event gives it a text (``matcher.ops.field_texts``): a ``null``, an
empty list or an object is absence. Nested objects count under their dotted paths (``a.b``).
Keyword predicates (Sigma ``keywords``) read every field and need none.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from . import inputs
from .ir import EVENT_OPS, Node, Not, Op, Or, Pred, walk_preds
from .ops import scalar_text

__all__ = ["Coverage", "event_fields", "sample_fields", "rule_fields", "possible", "blocking_fields", "measure",
           "add_arguments", "run"]


def event_fields(event: Mapping, prefix: str = "") -> set[str]:
    """The field names ``event`` holds a text for, nested objects as dotted paths."""
    out: set[str] = set()
    stack: list[tuple[str, Any]] = [(prefix, event)]
    while stack:
        pre, node = stack.pop()
        for k, v in node.items():
            if not isinstance(k, str):
                continue
            name = f"{pre}{k}"
            if isinstance(v, Mapping):
                stack.append((name + ".", v))
            elif isinstance(v, list):
                if any(scalar_text(x) is not None for x in v):
                    out.add(name)
            elif v is not None and scalar_text(v) is not None:
                out.add(name)
    return out


def sample_fields(specs: list[str], fmt: Optional[str] = None) -> tuple[Counter, int, list[str]]:
    """The fields the events of ``specs`` (files, directories, ``-``; as ``scan`` reads them)
    hold: ``(field -> events holding it, events read, one message per bad record or input)``."""
    counts: Counter = Counter()
    n = 0
    problems: list[str] = []
    todo, _ = inputs.expand(specs)
    for inp in todo:
        for item in inputs.read(inp, fmt=fmt):
            if isinstance(item, inputs.Records):
                for i in range(len(item.events)):
                    counts.update(event_fields(item.event(i)))
                n += len(item.events)
            elif isinstance(item, inputs.Columns):
                for ev in item.batch.to_pylist():
                    counts.update(event_fields(ev))
                n += item.batch.num_rows
            else:
                where = "" if item.where is None else f":{item.where}"
                kind = "record" if item.where is not None else "input"
                problems.append(f"{inp.name}{where}: bad {kind}: {item.problem}")
    return counts, n, problems


def rule_fields(node: Node) -> set[str]:
    """The field names a rule reads (a field reference's other field too; keywords read none)."""
    out: set[str] = set()
    for p in walk_preds(node):
        if p.op is Op.KEYWORD:
            continue
        out.add(p.field)
        if p.op in EVENT_OPS:
            out.add(p.value)  # type: ignore[arg-type]
    return out


def _needs(p: Pred) -> tuple[str, ...]:
    if p.op is Op.KEYWORD:
        return ()
    return (p.field, p.value) if p.op in EVENT_OPS else (p.field,)  # type: ignore[return-value]


def possible(node: Node, absent: set[str]) -> Optional[bool]:
    """The rule's value when the fields of ``absent`` are absent: ``False``/``True`` when that
    alone decides it, ``None`` when it depends on the other fields (iterative, any depth)."""
    # post-order walk: a node's value once its children's are known
    values: dict[int, Optional[bool]] = {}
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        if isinstance(n, Pred):
            values[id(n)] = False if any(f in absent for f in _needs(n)) else None
        elif not done:
            stack.append((n, True))
            stack.extend((c, False) for c in ((n.item,) if isinstance(n, Not) else n.items))
        elif isinstance(n, Not):
            v = values[id(n.item)]
            values[id(n)] = None if v is None else not v
        else:
            vs = [values[id(c)] for c in n.items]
            decisive = isinstance(n, Or)  # True decides an OR, False an AND
            if any(v is decisive for v in vs):
                values[id(n)] = decisive
            elif all(v is (not decisive) for v in vs):
                values[id(n)] = not decisive
            else:
                values[id(n)] = None
    return values[id(node)]


def blocking_fields(node: Node, absent: set[str]) -> list[str]:
    """The absent fields each of which, alone absent, makes the rule false; all the rule's absent
    fields when no single one does."""
    mine = sorted(rule_fields(node) & absent)
    alone = [f for f in mine if possible(node, {f}) is False]
    return alone or mine


@dataclass
class Coverage:
    events: int
    bad: int
    event_field_counts: Counter  # field -> events holding it
    rule_reads: dict[str, set[str]]  # field -> ids of the rules reading it
    never: list[tuple[str, str, list[str]]]  # (rule id, title, fields whose absence decides it)

    @property
    def unseen(self) -> list[str]:
        """Fields the rules read that no event holds."""
        return sorted(f for f in self.rule_reads if f not in self.event_field_counts)

    @property
    def unread(self) -> list[str]:
        """Fields the events hold that no rule reads."""
        return sorted(f for f in self.event_field_counts if f not in self.rule_reads)


def measure(rules: list[Any], events_seen: Counter, n_events: int, bad: int = 0) -> Coverage:
    """The coverage of ``rules`` (:class:`matcher.Rule`) over events whose field counts are ``events_seen``."""
    reads: dict[str, set[str]] = {}
    for r in rules:
        for f in rule_fields(r.ir):
            reads.setdefault(f, set()).add(r.id)
    absent = {f for f in reads if f not in events_seen}
    never = [(r.id, r.title, blocking_fields(r.ir, absent)) for r in rules if possible(r.ir, absent) is False]
    return Coverage(n_events, bad, events_seen, reads, never)


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rules", metavar="RULES", help="rule file, directory of rules, or built-in rule name (as scan -r)")
    p.add_argument("events", metavar="EVENTS", nargs="+", help="event files or directories (as scan), or - for stdin")
    p.add_argument("-r", "--rule", action="append", default=[], help="more rules; repeatable")
    p.add_argument("-i", "--input-format", choices=inputs.FORMATS, default=None, help="input format (default: detected)")
    p.add_argument("-p", "--profile", default="s1",
                   help="field names of the events: s1 (default), s1ql2, sysmon, ecs, or a .json/.toml mapping file")
    p.add_argument("--rules-profile", default="s1", help="field names the rules are written in (default s1)")
    p.add_argument("--top", type=int, default=50, help="list at most this many items per section (default 50; 0: all)")
    from .sigma.options import add_arguments as _sigma_args

    _sigma_args(p)


def _listed(title: str, items: list[str], top: int) -> list[str]:
    shown = items if top <= 0 else items[:top]
    lines = [f"{title}: {len(items)}"] + [f"  {x}" for x in shown]
    if len(shown) < len(items):
        lines.append(f"  ... {len(items) - len(shown)} more (--top 0 lists all)")
    return lines


def run(args: argparse.Namespace) -> int:
    """``matcher coverage``: exit 0 (the report printed), 2 usage (no rule, a missing input, a bad rule)."""
    import os

    from . import mapping
    from ._notes import say as _say
    from .api import gather_rules as _gather_rules
    from .api import remap_rules as _remap
    from .errors import MatcherError
    from .sigma.options import from_args as _sigma_setup

    try:
        src, dst = mapping.load_profile(args.rules_profile), mapping.load_profile(args.profile)
        setup = _sigma_setup(args)
    except MatcherError as e:
        _say(f"coverage: {e}")
        return 2
    missing = [e for e in args.events if e != "-" and not os.path.lexists(e)]
    for e in missing:
        _say(f"coverage: {e}: no such file or directory")
    # Sigma rules load through the Sigma front end for the events' profile, as scan loads them
    # (routing, filters, placeholders, modifiers); _remap then leaves them as they are
    notes: list[str] = []
    rules, errors = _gather_rules([], [args.rules, *args.rule], default=False, notes=notes, **setup)
    rules = [r for r in rules if hasattr(r, "ir")]  # correlation rules read no field of their own
    for msg in notes:
        _say(f"coverage: note: {msg}")
    for msg in errors:
        _say(f"coverage: {msg}")
    if missing or errors or not rules:
        if not rules and not errors:
            _say("coverage: no rule loaded")
        return 2
    rules, skipped = _remap(rules, src, dst)
    for msg in skipped:
        _say(f"coverage: {msg}")
    counts, n, problems = sample_fields(args.events, args.input_format)
    for msg in problems:
        _say(f"coverage: {msg}")
    bad = len(problems)
    cov = measure(rules, counts, n, bad)
    from .sigma.logsource import routing_fields

    known = mapping.known_fields(src, dst) | routing_fields(src, dst)
    lines = [f"{len(rules)} rule(s) reading {len(cov.rule_reads)} field(s); {n} event(s) holding "
             f"{len(counts)} field(s); {bad} bad record(s)"]
    unseen = []
    for f in cov.unseen:
        note = f"read by {len(cov.rule_reads[f])} rule(s)"
        if f not in known:
            close = mapping.closest_fields(f, known)
            note += "; no profile knows it" + (f": did you mean {' or '.join(close)}?" if close else "")
        unseen.append(f"{f}  ({note})")
    lines += _listed("fields the rules read that no event holds", unseen, args.top)
    lines += _listed("fields the events hold that no rule reads",
                     [f"{f}  (in {counts[f]} event(s))" for f in cov.unread], args.top)
    lines += _listed("rules that can never fire on these events",
                     [f"{rid}  {title}  (needs {', '.join(fields)})" for rid, title, fields in cov.never], args.top)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
