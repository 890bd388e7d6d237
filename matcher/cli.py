"""``matcher`` on the command line: ``scan``, ``check``, ``explain`` and ``generate``.

The manual is ``docs/cli.md``. Exit codes:

- ``scan``: 0 the scan ran (bad records, if any, were reported and counted); 1 ``--strict``
  stopped at a bad record; 2 a usage error, or a rule that does not load.
- ``check``: 0 every rule parses and compiles; 1 one or more do not (each reported); 2 usage.
- ``explain``: 0 explained (whatever the verdict); 2 usage, a bad rule or no such event.
- ``generate``: 0 written; 1 an I/O error; 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

import orjson

from . import api, datasets, inputs, mapping, ops
from .errors import MatcherError, RegexBudgetExceeded, RegexBudgetWarning
from .rules import rule_files

SAMPLE_SIZE = 2000
SAMPLE_SEED = 7


def _say(msg: str) -> None:
    print(f"matcher: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------------------------


def _gather_rules(queries: Iterable[str], specs: Iterable[str], default: bool = True) -> tuple[list[api.Rule], list[str]]:
    """Rules from ``-q`` texts and ``-r`` specs (files, directories, built-in names or ids).

    Returns the rules that load and one message per rule that does not (every one, not just the first).
    """
    rules: list[api.Rule] = []
    errors: list[str] = []
    for i, q in enumerate(queries, 1):
        try:
            rules.append(api.compile(q, id=f"query-{i}", title=f"query {i}"))
        except MatcherError as e:
            errors.append(f"-q #{i}: {e}")
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            files = rule_files(p)
            if not files:
                errors.append(f"{spec}: no rule files (.md, .s1ql, .txt, .yml, .yaml) in this directory")
        elif p.exists():
            files = [p]
        else:
            try:
                rules.append(api.builtin(spec))
            except MatcherError as e:
                errors.append(f"{spec}: not a file or directory, and {e}")
            continue
        for f in files:
            try:
                loaded = api.load(f)  # a list for a multi-rule Sigma file
                rules.extend(loaded if isinstance(loaded, list) else [loaded])
            except MatcherError as e:
                msg = str(e)
                errors.append(msg if str(f) in msg else f"{f}: {msg}")
    if default and not rules and not errors:
        rules.append(api.builtin())
    seen: dict[str, api.Rule] = {}
    unique = []
    for r in rules:
        if r.id in seen:
            errors.append(f"{r.info.source or r.title}: the id {r.id!r} is already used by {seen[r.id].info.source or seen[r.id].title}")
            continue
        seen[r.id] = r
        unique.append(r)
    return unique, errors


def _remap(rules: list[api.Rule], src: mapping.Profile, dst: mapping.Profile) -> tuple[list[api.Rule], list[str]]:
    """The rules rewritten for events in ``dst`` names; messages for those the profile decides."""
    if src is dst:
        return rules, []
    out, skipped = [], []
    for r in rules:
        try:
            out.append(api.Rule(mapping.translate(r.ir, src, dst), r.info, r.source_query))
        except mapping.RuleNeverMatches as e:
            skipped.append(f"rule {r.id} ({r.title}): {e}: not run")
    return out, skipped


def _profiles(args: argparse.Namespace) -> tuple[mapping.Profile, mapping.Profile]:
    return mapping.load_profile(args.rules_profile), mapping.load_profile(args.profile)


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


class _Writer:
    """Matches to stdout as JSON lines, a JSON array, CSV, or a rich table (at the end)."""

    COLUMNS = ("rule_id", "rule_title", "level", "author", "source", "unit", "where", "event")

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.out = sys.stdout.buffer
        self.n = 0
        self.rows: list[dict] = []
        if fmt == "csv":
            self.text = io.TextIOWrapper(self.out, encoding="utf-8", newline="", write_through=True)
            self.csv = csv.writer(self.text)
            self.csv.writerow(self.COLUMNS)

    def write(self, rec: dict) -> None:
        self.n += 1
        if self.fmt == "jsonl":
            self.out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE, default=str))
        elif self.fmt == "json":
            self.out.write(b"[\n" if self.n == 1 else b",\n")
            self.out.write(orjson.dumps(rec, default=str))
        elif self.fmt == "csv":
            unit = "line" if "line" in rec else "row" if "row" in rec else "record"
            self.csv.writerow([rec["rule_id"], rec["rule_title"], rec["level"] or "", rec["author"] or "",
                               rec["source"], unit, rec[unit], orjson.dumps(rec["event"], default=str).decode()])
        else:
            self.rows.append(rec)

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write(b"[]\n" if self.n == 0 else b"\n]\n")
        elif self.fmt == "csv":
            self.text.flush()
            self.text.detach()
        elif self.fmt == "table":
            from rich.console import Console
            from rich.table import Table

            table = Table(title=f"{self.n} matches", show_lines=False)
            for col in ("rule", "level", "where", "event"):
                table.add_column(col, overflow="fold")
            for rec in self.rows:
                unit = "line" if "line" in rec else "row" if "row" in rec else "record"
                ev = orjson.dumps(rec["event"], default=str).decode()
                table.add_row(rec["rule_title"], rec["level"] or "", f"{rec['source']}:{rec[unit]}",
                              ev if len(ev) <= 300 else ev[:297] + "...")
            Console().print(table)
        self.out.flush()


# --------------------------------------------------------------------------------------------
# scan
# --------------------------------------------------------------------------------------------


class _Stats:
    def __init__(self) -> None:
        self.read = 0
        self.bad = 0
        self.matches = 0
        self.matched_events = 0
        self.per_rule: dict[str, int] = {}
        self.inputs = 0


class _Strict(Exception):
    pass


class _Progress:
    """A rich progress line on a terminal's stderr (records, bad, matches, rate); nothing otherwise."""

    def __init__(self, enabled: bool, n_inputs: int):
        self.p = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("inputs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.task = self.p.add_task("", total=max(n_inputs, 1))
        self.t0 = time.perf_counter()
        self.p.start()

    def update(self, st: _Stats, advance: int = 0) -> None:
        if self.p is None:
            return
        rate = st.read / max(time.perf_counter() - self.t0, 1e-9)
        self.p.update(self.task, advance=advance,
                      description=f"{st.read:,} records  {st.bad:,} bad  {st.matches:,} matches  {rate:,.0f} records/s")

    def stop(self) -> None:
        if self.p is not None:
            self.p.stop()


def _scan(args: argparse.Namespace) -> int:
    try:
        src, dst = _profiles(args)
    except MatcherError as e:
        _say(str(e))
        return 2
    rules, errors = _gather_rules(args.query or [], args.rule or [])
    for msg in errors:
        _say(msg)
    if errors and not args.skip_bad_rules:
        _say(f"{len(errors)} rule error(s); nothing scanned (--skip-bad-rules scans with the rules that load)")
        return 2
    rules, skipped = _remap(rules, src, dst)
    for msg in skipped:
        _say(msg)
    if not rules:
        _say("no rule to run")
        return 2
    try:
        t_compile = time.perf_counter()
        ruleset = api.RuleSet(rules)
        t_compile = time.perf_counter() - t_compile
    except MatcherError as e:
        _say(str(e))
        return 2
    by_id = {r.id: r for r in ruleset}
    ids = [r.id for r in ruleset]
    fmt = args.format if args.format != "auto" else ("table" if sys.stdout.isatty() else "jsonl")
    writer = _Writer(fmt)
    stats = _Stats()
    fields = ruleset.fields if args.decode == "auto" else None

    def emit(source: str, unit: str, where: int, event: Any, rids: list[str]) -> None:
        stats.matched_events += 1
        for rid in rids:
            stats.matches += 1
            stats.per_rule[rid] = stats.per_rule.get(rid, 0) + 1
            rule = by_id[rid]
            writer.write({"rule_id": rid, "rule_title": rule.title, "level": rule.level or None,
                          "author": rule.author or None, "source": source, unit: where, "event": event})

    def run_records(source: str, item: inputs.Records) -> None:
        stats.read += len(item.events)
        with _overruns_reported(source, lambda r: f":{item.where[r]}" if item.unit == "line" else f": {item.unit} {item.where[r]}"):
            rows, ridx = ruleset.match_arrays(item.events)
        i = 0
        rows_l, ridx_l = rows.tolist(), ridx.tolist()
        while i < len(rows_l):
            r = rows_l[i]
            j = i
            while j < len(rows_l) and rows_l[j] == r:
                j += 1
            emit(source, item.unit, item.where[r], item.event(r), [ids[u] for u in ridx_l[i:j]])
            i = j

    def run_columns(source: str, item: inputs.Columns) -> None:
        batch = item.batch
        stats.read += batch.num_rows
        pending: Optional[int] = None
        rids: list[str] = []
        with _overruns_reported(source, lambda r: f": row {item.first_row + r}"):
            found = list(ruleset.scan_arrow(batch))
        for r, rid in found:
            if r != pending and pending is not None:
                emit(source, "row", item.first_row + pending, batch.slice(pending, 1).to_pylist()[0], rids)
                rids = []
            pending = r
            rids.append(rid)
        if pending is not None:
            emit(source, "row", item.first_row + pending, batch.slice(pending, 1).to_pylist()[0], rids)

    def bad(source: str, item: inputs.Bad) -> None:
        stats.read += 1
        stats.bad += 1
        where = "" if item.where is None else (f":{item.where}" if item.unit == "line" else f":{item.unit} {item.where}")
        _say(f"{source}{where}: bad {'record' if item.where is not None else 'input'}: {item.problem}")
        if args.strict:
            raise _Strict

    specs = args.inputs
    t0 = time.perf_counter()
    if not specs:
        _say(f"no input given: scanning the built-in sample ({SAMPLE_SIZE} generated events, seed {SAMPLE_SEED}); "
             "give files or directories, or - for stdin")
        todo: list[inputs.Input] = []
    else:
        todo, passed = inputs.expand(specs)
        for f in passed:
            _say(f"{f}: passed over: not a known log extension (.jsonl .ndjson .json .csv .parquet .pq .evtx, "
                 "optionally .gz); name the file to read it")
    progress = _Progress(sys.stderr.isatty() and not args.no_progress, len(todo))
    code = 0
    try:
        if not specs:
            evs = datasets.generate(SAMPLE_SIZE, SAMPLE_SEED)
            run_records("<sample>", inputs.Records("line", list(range(1, len(evs) + 1)), evs))
        for inp in todo:
            for item in inputs.read(inp, fmt=args.input_format, fields=fields):
                if isinstance(item, inputs.Records):
                    run_records(inp.name, item)
                elif isinstance(item, inputs.Columns):
                    run_columns(inp.name, item)
                else:
                    bad(inp.name, item)
                progress.update(stats)
            progress.update(stats, advance=1)
    except _Strict:
        code = 1
    finally:
        progress.stop()
        writer.close()
    elapsed = time.perf_counter() - t0
    good = stats.read - stats.bad
    _say(f"{stats.read} records read = {good} matched or not + {stats.bad} bad; "
         f"{stats.matched_events} events matched, {stats.matches} matches"
         + (" (stopped at the first bad record: --strict)" if code == 1 else ""))
    if ruleset.regex_overruns:
        _say(f"{ruleset.regex_overruns} regex budget overrun(s) (--regex-budget {ops.BACKTRACK_BUDGET:g} s): "
             "each a backtracking regex taken as false on one value, reported above")
    if skipped or errors:
        _say(f"{len(errors)} rule(s) did not load, {len(skipped)} rule(s) cannot match under profile {dst.name!r}; "
             f"{len(ruleset)} rule(s) run")
    for rid, n in sorted(stats.per_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        _say(f"  {n:>8}  {rid}  {by_id[rid].title}")
    if args.stats:
        _say(f"stats: {len(ruleset)} rules compiled in {t_compile:.3f} s; {stats.read} records in {elapsed:.3f} s = "
             f"{stats.read / max(elapsed, 1e-9):,.0f} records/s; profile {dst.name}; "
             f"JSON lines decoding {'auto' if fields is not None else 'whole records'}")
    return code


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    try:
        src, dst = _profiles(args)
    except MatcherError as e:
        _say(str(e))
        return 2
    if not args.rules and not args.query:
        _say("check: give rule files, directories, built-in names, or -q QUERY")
        return 2
    rules, errors = _gather_rules(args.query or [], args.rules, default=False)
    remapped, never = _remap(rules, src, dst)
    ok = 0
    for r in remapped:  # compile each on its own, so every failing rule is named
        try:
            api.RuleSet([r])
            ok += 1
        except MatcherError as e:
            errors.append(f"{r.info.source or r.id}: does not compile: {e}")
    for msg in errors:
        print(f"matcher check: {msg}", file=sys.stderr)
    for msg in never:
        print(f"matcher check: warning: {msg}", file=sys.stderr)
    print(f"matcher check: {ok} rule(s) ok, {len(errors)} error(s)"
          + (f", {len(never)} rule(s) that cannot match under profile {dst.name!r}" if never else ""), file=sys.stderr)
    return 1 if errors else 0


# --------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    from . import explain

    try:
        src, dst = _profiles(args)
    except MatcherError as e:
        _say(str(e))
        return 2
    rules, errors = _gather_rules(args.query or [], args.rule or [])
    for msg in errors:
        _say(msg)
    if errors:
        return 2
    if len(rules) != 1:
        _say(f"explain takes one rule, not {len(rules)}")
        return 2
    rule = rules[0]
    try:
        node = mapping.translate(rule.ir, src, dst)
    except mapping.RuleNeverMatches as e:
        _say(f"rule {rule.id}: {e}")
        return 2
    if args.event is not None:
        try:
            event = orjson.loads(args.event)
        except orjson.JSONDecodeError as e:
            _say(f"--event: not valid JSON ({e})")
            return 2
        where = "--event"
        if not isinstance(event, dict):
            _say("--event: not a JSON object")
            return 2
    else:
        event = None
        inp = args.input
        todo, _ = inputs.expand([inp])
        for one in todo[:1]:
            for item in inputs.read(one, fmt=args.input_format):
                if isinstance(item, inputs.Bad):
                    if item.where == args.line or item.where is None:
                        _say(f"{one.name}: {item.problem}")
                        return 2
                    continue
                if isinstance(item, inputs.Columns):
                    lo = item.first_row
                    if lo <= args.line < lo + item.batch.num_rows:
                        event = item.batch.slice(args.line - lo, 1).to_pylist()[0]
                elif args.line in item.where:
                    event = item.event(item.where.index(args.line))
                if event is not None:
                    break
        where = f"{'<stdin>' if inp == '-' else inp}:{args.line}"
        if event is None:
            _say(f"{where}: no record there")
            return 2
    tree = explain.explain(node, event)
    compiled = bool(api.RuleSet([api.Rule(node, rule.info)]).match(event))
    if args.format == "json":
        doc = {"rule_id": rule.id, "rule_title": rule.title, "profile": dst.name, "event_source": where,
               "matched": tree.result, "compiled_core": compiled, "tree": explain.to_dict(tree), "event": event}
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE, default=str))
    else:
        head = f"rule {rule.id}: {rule.title}\nevent {where}" + (f" (profile {dst.name})" if dst.name != "s1" else "")
        verdict = "MATCH" if tree.result else "NO MATCH"
        sys.stdout.write(f"{head}\n{verdict} (compiled core agrees: {'yes' if compiled == tree.result else 'NO'})\n\n")
        sys.stdout.write(explain.render(tree, full=args.all))
    return 0


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _overruns_reported(source: str, where: Any) -> Any:
    """Report the RegexBudgetWarnings of the block on stderr as ``source<where(event)>: ...``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RegexBudgetWarning)
        yield
    for w in caught:
        if isinstance(w.message, RegexBudgetWarning):
            _say(f"{source}{where(w.message.event)}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _regex_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--regex", choices=ops.ENGINES, default=ops.LINEAR,
                   help="re2 (default): every RegExp/|re runs in linear time, and a pattern RE2 cannot run "
                        "(backreference, lookaround) is a rule error; backtracking: run those on a backtracking "
                        "engine under --regex-budget (docs/semantics.md)")
    p.add_argument("--regex-budget", type=float, default=None, metavar="SECONDS",
                   help=f"time a backtracking regex may spend on one value (default {ops.BACKTRACK_BUDGET:g}); "
                        "an overrun is reported and counted, the predicate taken as false")


def _profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--profile", default="s1",
                   help="field names of the events: s1 (default), s1ql2, sysmon, ecs, or a .json/.toml mapping file")
    p.add_argument("--rules-profile", default="s1", help="field names the rules are written in (default s1)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="matcher", description="Match detection rules (S1QL) against events. Manual: docs/cli.md")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("scan", help="run rules over log files and print the matches")
    s.add_argument("inputs", nargs="*",
                   help="files or directories (JSON lines, JSON, CSV, Parquet, EVTX, optionally .gz), or - for stdin "
                        "(none: the built-in sample)")
    s.add_argument("-r", "--rule", action="append",
                   help="a rule card (.md), a query file, a directory of rules, or a built-in rule name or id "
                        "(default: flagship); repeatable")
    s.add_argument("-q", "--query", action="append", help="an S1QL query given as text; repeatable")
    s.add_argument("-f", "--format", choices=("auto", "jsonl", "json", "csv", "table"), default="auto",
                   help="output format (default: a table on a terminal, JSON lines otherwise)")
    s.add_argument("-i", "--input-format", choices=inputs.FORMATS, default=None,
                   help="input format for every input (default: detected from the content, then the extension)")
    _profile_args(s)
    _regex_args(s)
    s.add_argument("--strict", action="store_true", help="stop at the first bad record (exit 1)")
    s.add_argument("--skip-bad-rules", action="store_true", help="report rules that do not load and scan with the others")
    s.add_argument("--stats", action="store_true", help="print timings and events/s on stderr")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown only on a terminal)")
    s.add_argument("--decode", choices=("auto", "whole"), default="auto",
                   help="JSON lines: decode only the fields the rules read when records are wide (auto, default), "
                        "or always whole records")
    s.set_defaults(func=_scan)

    c = sub.add_parser("check", help="parse and compile rules; report every error (exit 1 if any)")
    c.add_argument("rules", nargs="*", help="rule files, directories of rules, or built-in rule names")
    c.add_argument("-q", "--query", action="append", help="an S1QL query given as text; repeatable")
    _profile_args(c)
    _regex_args(c)
    c.set_defaults(func=_check)

    e = sub.add_parser("explain", help="show why one rule matches one event or not: the rule's tree with each value")
    e.add_argument("input", nargs="?", default="-", help="the file holding the event (default: stdin)")
    e.add_argument("-r", "--rule", action="append", help="the rule: a file or a built-in name or id (default: flagship)")
    e.add_argument("-q", "--query", action="append", help="the rule as S1QL text")
    e.add_argument("-n", "--line", type=int, default=1, help="the event's line (JSON lines, CSV) or row (JSON array, "
                   "Parquet) or EventRecordID (EVTX) in the input (default 1)")
    e.add_argument("--event", help="the event as JSON text (instead of an input)")
    e.add_argument("-i", "--input-format", choices=inputs.FORMATS, default=None, help="input format (default: detected)")
    e.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format (default text)")
    e.add_argument("--all", action="store_true", help="list every item of value lists (default: folded to one line)")
    _profile_args(e)
    _regex_args(e)
    e.set_defaults(func=_explain)

    g = sub.add_parser("generate", help="write deterministic synthetic events (JSON lines or Parquet)")
    datasets.add_generate_arguments(g)
    g.set_defaults(func=datasets.run_generate)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "regex_budget", None) is not None:
        if not args.regex_budget > 0:
            _say("--regex-budget: give a positive number of seconds")
            return 2
        ops.BACKTRACK_BUDGET = args.regex_budget
    try:
        with ops.regex_engine(getattr(args, "regex", ops.LINEAR)):
            return args.func(args)
    except RegexBudgetExceeded as e:  # the reference evaluator (explain) gives no verdict
        _say(str(e))
        return 2
    except BrokenPipeError:
        try:  # keep Python from complaining when it flushes a closed stdout at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
