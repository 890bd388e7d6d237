"""``matcher`` on the command line: ``matcher scan`` runs rules over JSON-lines events.

Exit codes: 0 the scan ran (bad records, if any, were reported and counted); 1 ``--strict``
stopped at a bad record; 2 a usage error, or a rule that does not load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Optional

import orjson

from . import api, datasets
from .errors import MatcherError

SAMPLE_SIZE = 2000
SAMPLE_SEED = 7


class _Stats:
    def __init__(self) -> None:
        self.read = 0
        self.bad = 0
        self.matches = 0
        self.matched_events = 0
        self.per_rule: dict[str, int] = {}


def _records(name: str, stream: BinaryIO, stats: _Stats, strict: bool) -> Iterator[tuple[int, Any]]:
    for lineno, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        stats.read += 1
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            problem = f"not valid JSON ({e})"
        else:
            if isinstance(rec, dict):
                yield lineno, rec
                continue
            problem = f"a JSON {type(rec).__name__}, not an object"
        stats.bad += 1
        print(f"matcher: {name}:{lineno}: bad record: {problem}", file=sys.stderr)
        if strict:
            raise SystemExit(1)


def _load_rules(args: argparse.Namespace) -> api.RuleSet:
    rules = []
    for i, q in enumerate(args.query or [], 1):
        rules.append(api.compile(q, id=f"query-{i}", title=f"query {i}"))
    for spec in args.rule or []:
        if Path(spec).exists():
            rules.append(api.load(spec))
        else:
            rules.append(api.builtin(spec))
    if not rules:
        rules.append(api.builtin())
    return api.RuleSet(rules)


def _scan(args: argparse.Namespace) -> int:
    try:
        ruleset = _load_rules(args)
    except MatcherError as e:
        print(f"matcher: {e}", file=sys.stderr)
        return 2
    by_id = {r.id: r for r in ruleset}
    out = sys.stdout.buffer
    stats = _Stats()

    def emit(source: str, where: int, event: dict) -> None:
        hits = ruleset.match(event)
        if hits:
            stats.matched_events += 1
        for rid in hits:
            stats.matches += 1
            stats.per_rule[rid] = stats.per_rule.get(rid, 0) + 1
            rule = by_id[rid]
            rec = {"rule_id": rid, "rule_title": rule.title, "level": rule.level or None,
                   "author": rule.author or None, "source": source, "line": where, "event": event}
            out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))

    if not args.inputs:
        print(f"matcher: no input given: scanning the built-in sample ({SAMPLE_SIZE} generated events, "
              f"seed {SAMPLE_SEED}); give files, or - for stdin", file=sys.stderr)
        for i, ev in enumerate(datasets.iter_events(SAMPLE_SIZE, SAMPLE_SEED), 1):
            stats.read += 1
            emit("<sample>", i, ev)
    for name in args.inputs:
        try:
            if name == "-":
                for lineno, ev in _records("<stdin>", sys.stdin.buffer, stats, args.strict):
                    emit("<stdin>", lineno, ev)
            else:
                with open(name, "rb") as fh:
                    for lineno, ev in _records(name, fh, stats, args.strict):
                        emit(name, lineno, ev)
        except OSError as e:  # an unreadable input counts as one record read, and bad
            stats.read += 1
            stats.bad += 1
            print(f"matcher: {name}: cannot read: {e.strerror or e}", file=sys.stderr)
            if args.strict:
                return 1
    out.flush()
    good = stats.read - stats.bad
    print(f"matcher: {stats.read} records read = {good} matched or not + {stats.bad} bad; "
          f"{stats.matched_events} events matched, {stats.matches} matches", file=sys.stderr)
    for rid, n in sorted(stats.per_rule.items()):
        print(f"matcher:   {n:>8}  {rid}  {by_id[rid].title}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="matcher", description="Match detection rules (S1QL) against events.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan", help="run rules over JSON-lines events and print the matches as JSON lines")
    s.add_argument("inputs", nargs="*", help="JSON-lines files, or - for stdin (none: the built-in sample)")
    s.add_argument("-r", "--rule", action="append", help="a rule card, a query file, or a built-in rule name or id (default: flagship)")
    s.add_argument("-q", "--query", action="append", help="an S1QL query given as text")
    s.add_argument("--strict", action="store_true", help="stop at the first bad record (exit 1)")
    s.set_defaults(func=_scan)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
