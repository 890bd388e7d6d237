"""``matcher`` on the command line: ``scan``, ``check``, ``explain``, ``test``, ``coverage``, ``generate``,
``examples`` and ``diff``.

The manual is ``docs/cli.md``. Exit codes:

- ``scan``: 0 the scan ran (bad records, if any, were reported and counted); 1 ``--strict``
  stopped at a bad record; 2 a usage error, a missing input, or a rule that does not load; 130
  Ctrl-C (the matches found so far written, the summary printed).
- ``test``, ``coverage``: see :mod:`matcher.selftest` and :mod:`matcher.coverage`.
- any command: 2 when an optional dependency it needs is missing (one line names the extra).
- ``check``: 0 every rule parses and compiles; 1 one or more do not (each reported); 2 usage.
- ``explain``: 0 explained (whatever the verdict); 2 usage, a bad rule or no such event.
- ``generate``: 0 written; 1 an I/O error; 2 usage.
- ``examples``: 0 printed; 2 usage, a bad rule, or a rule no event can match.
- ``diff``: 0 no disagreement found within the budget; 1 a counterexample was found; 2 usage or a bad rule.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import stat
import sys
import time
import warnings
from functools import partial
from typing import Any, Optional

from . import __version__, api, coverage, datasets, inputs, jsonio, mapping, ops, parallel, selftest
from ._notes import say as _say
from .api import gather_rules as _gather_rules
from .api import loaded_for as _loaded_for
from .api import remap_rules as _remap
from .errors import MatcherError, RegexBudgetWarning
from .sigma.options import add_arguments as _sigma_args
from .sigma.options import from_args as _sigma_setup

SAMPLE_SIZE = 2000
SAMPLE_SEED = 7


# --------------------------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------------------------


def _gather_for(args: argparse.Namespace, rule_args: list[str], **kw: Any) -> Optional[tuple[list, list, list]]:
    """The rules of ``-q``/``-r`` (or ``rules``) with the command's Sigma options:
    ``(rules, errors, notes)``, or None once a bad Sigma option has been reported."""
    notes: list[str] = []
    try:
        setup = _sigma_setup(args)
    except MatcherError as e:
        _say(str(e))
        return None
    rules, errors = _gather_rules(args.query or [], rule_args, notes=notes, **kw, **setup)
    return rules, errors, notes


def _profiles(args: argparse.Namespace) -> tuple[mapping.Profile, mapping.Profile]:
    return mapping.load_profile(args.rules_profile), mapping.load_profile(args.profile)


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


class _Writer:
    """Matches to stdout as JSON lines, a JSON array, CSV, or a table, each written as it comes.

    Any event a reader gives can be written (:func:`matcher.jsonio.dumps`: any depth, integers
    of any size, non-finite floats as strings); the table shows values as plain text, never as
    rich markup. :meth:`write` raises ``ValueError`` for a match it cannot write, having written
    nothing of it.
    """

    COLUMNS = ("rule_id", "rule_title", "level", "author", "source", "unit", "where", "event")

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.out = sys.stdout.buffer
        self.n = 0
        if fmt == "csv":
            self.text = io.TextIOWrapper(self.out, encoding="utf-8", newline="", write_through=True)
            self.csv = csv.writer(self.text)
            self.csv.writerow(self.COLUMNS)
        elif fmt == "table":
            from rich.console import Console

            self.console = Console(highlight=False, emoji=False, markup=False, soft_wrap=False)

    def write(self, rec: dict) -> None:
        unit = "line" if "line" in rec else "row" if "row" in rec else "record"
        try:
            if self.fmt in ("jsonl", "json"):
                line = jsonio.dumps(rec)
                self.out.write((b"" if self.fmt == "jsonl" else b"[\n" if self.n == 0 else b",\n") + line
                               + (b"\n" if self.fmt == "jsonl" else b""))
            elif self.fmt == "csv":
                event = jsonio.dumps(rec["event"]).decode()
                self.csv.writerow([rec["rule_id"], rec["rule_title"], rec["level"] or "", rec["author"] or "",
                                   rec["source"], unit, rec[unit], event])
            else:
                self._table_row(rec, unit, jsonio.dumps(rec["event"]))
        except OSError:  # a closed stdout ends the command (main)
            raise
        except Exception as e:  # noqa: BLE001 - whatever a value holds, the scan goes on
            raise ValueError(f"{type(e).__name__}: {e}") from None
        self.n += 1

    def _table_row(self, rec: dict, unit: str, event: bytes) -> None:
        """One line: rule, level, where, then the event cut to the terminal's width."""
        from rich.text import Text

        line = Text(no_wrap=True, overflow="ellipsis", end="\n")
        line.append(rec["rule_title"], style="bold")
        if rec["level"]:
            line.append(f"  {rec['level']}", style="yellow")
        line.append(f"  {rec['source']}:{rec[unit]}  ", style="cyan")
        width = self.console.width
        text = event[: 4 * width].decode("utf-8", "replace")  # no more than a line can show
        line.append(text)
        line.truncate(width, overflow="ellipsis")
        self.console.print(line)
        self.console.file.flush()  # a line a match, as it comes

    def flush(self) -> None:
        if self.fmt == "csv":
            self.text.flush()
        elif self.fmt == "table":
            self.console.file.flush()
        self.out.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write(b"[]\n" if self.n == 0 else b"\n]\n")
        elif self.fmt == "table":
            from rich.text import Text

            self.console.print(Text(f"{self.n} match{'' if self.n == 1 else 'es'}", style="dim"))
        self.flush()
        if self.fmt == "csv":
            self.text.detach()


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
        self.unwritten = 0  # matches the output format could not write (reported)
        self.passed_over = 0  # directory entries not read (reported)


class _Strict(Exception):
    pass


class _Progress:
    """A rich progress line on a terminal's stderr, one step at a time: loading rules (files),
    compiling them, then scanning (bytes of the inputs, records, bad, matches, rate); nothing
    when not on a terminal."""

    def __init__(self, enabled: bool):
        self.p = None
        self.task = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("{task.fields[step]}"), BarColumn(), TextColumn("{task.fields[count]}"),
                          TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=Console(stderr=True), transient=True)
        self.p.start()

    def start(self, step: str, total: Optional[int], unit: str) -> None:
        """A new step of ``total`` ``unit`` (``"bytes"`` shows sizes; None: unknown total)."""
        if self.p is None:
            return
        if self.task is not None:
            self.p.remove_task(self.task)
        self.unit, self.total, self.done = unit, total, 0.0
        self.t0 = time.perf_counter()
        self.task = self.p.add_task("", total=total, step=step, count=self._count())
        self.p.refresh()  # every step is seen, however short

    def _count(self) -> str:
        if not self.unit:
            return ""
        if self.unit == "bytes":
            return _size(self.done) + (f"/{_size(self.total)}" if self.total is not None else "")
        return f"{self.done:,.0f}" + (f"/{self.total:,.0f}" if self.total is not None else "") + f" {self.unit}"

    def advance(self, n: float) -> None:
        if self.p is None or self.task is None:
            return
        self.done += n
        self.p.update(self.task, completed=self.done, count=self._count())

    def scanned(self, st: "_Stats", done: int) -> None:
        """Scan step: ``done`` bytes of the inputs read so far."""
        if self.p is None or self.task is None:
            return
        rate = st.read / max(time.perf_counter() - self.t0, 1e-9)
        self.done = done
        self.p.update(self.task, completed=done, count=self._count(),
                      description=f"{st.read:,} records  {st.bad:,} bad  {st.matches:,} matches  {rate:,.0f} records/s")

    def stop(self) -> None:
        if self.p is not None:
            self.p.stop()
            self.p = None


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def _stdin_is_input() -> bool:
    """Whether standard input is data to read when no input is named: anything but a terminal."""
    try:
        return not sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or absent
        return False


def _scan(args: argparse.Namespace) -> int:
    try:
        src, dst = _profiles(args)
    except MatcherError as e:
        _say(str(e))
        return 2
    missing = [spec for spec in args.inputs if spec != "-" and not os.path.lexists(spec)]
    for spec in missing:
        _say(f"{spec}: no such file or directory")
    if missing:
        _say(f"{len(missing)} input(s) not found; nothing scanned")
        return 2
    progress = _Progress(sys.stderr.isatty() and not args.no_progress)
    try:
        return _scan_with(args, src, dst, progress)
    finally:
        progress.stop()


def _scan_with(args: argparse.Namespace, src: mapping.Profile, dst: mapping.Profile, progress: _Progress) -> int:
    loaded = _scan_rules(args, src, dst, progress)
    if isinstance(loaded, int):
        return loaded
    ruleset, errors, skipped, t_compile = loaded
    fmt = args.format if args.format != "auto" else ("table" if sys.stdout.isatty() and not args.timestamp else "jsonl")
    if args.timestamp and fmt not in ("jsonl", "json"):
        _say("--timestamp writes JSON records (-f jsonl or json)")
        return 2
    if ruleset.correlations and not args.timestamp:
        _say(f"{len(ruleset.correlations)} correlation rule(s) not run: give --timestamp FIELD")
    writer = _Writer(fmt)
    corr = None
    if args.timestamp:
        from .correlation.cli import ScanCorrelator

        try:
            corr = ScanCorrelator(ruleset, args.timestamp, args.lateness, args.max_groups, writer.write, _say)
        except MatcherError as e:
            _say(str(e))
            return 2
    sink = _ScanSink(ruleset, writer, corr, args.strict)
    fields = ruleset.fields if args.decode == "auto" else None
    if fields is not None and corr is not None:
        fields = tuple(dict.fromkeys(fields + corr.fields))
    t0 = time.perf_counter()
    code, formats = _scan_inputs(args, ruleset, sink, fields, progress)
    elapsed = time.perf_counter() - t0
    _scan_summary(args, ruleset, sink.stats, code, errors, skipped, dst)
    if args.stats:
        _say(f"stats: {len(ruleset)} rules compiled in {t_compile:.3f} s; {sink.stats.read} records in {elapsed:.3f} s = "
             f"{sink.stats.read / max(elapsed, 1e-9):,.0f} records/s; profile {dst.name}")
        for name, kind, by_field in formats:
            _say(f"stats: {name}: {_how_read(kind, by_field)}")
    return code


def _scan_rules(args: argparse.Namespace, src: mapping.Profile, dst: mapping.Profile, progress: _Progress) -> Any:
    """``scan``'s rules, remapped for the events' profile and compiled: ``(ruleset, load errors,
    rules the profile decides, compile time)``, or the exit code (2) when there is nothing to run."""
    got = _gather_for(args, args.rule or [], progress=progress)
    if got is None:
        return 2
    rules, errors, notes = got
    for msg in notes:
        _say(msg)
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
        progress.start(f"compiling {len(rules):,} rule(s)", None, "")
        t_compile = time.perf_counter()
        ruleset = api.RuleSet(rules)
        t_compile = time.perf_counter() - t_compile
    except MatcherError as e:
        _say(str(e))
        return 2
    return ruleset, errors, skipped, t_compile


class _ScanSink:
    """Where ``scan``'s results go: matches to the writer (and the correlator), bad records to
    stderr, and every count to :class:`_Stats`."""

    def __init__(self, ruleset: api.RuleSet, writer: _Writer, corr: Any, strict: bool):
        self.stats = _Stats()
        self.by_id = {r.id: r for r in ruleset}
        self.ids = [r.id for r in ruleset]
        self.writer = writer
        self.corr = corr
        self.strict = strict

    def emit(self, source: str, unit: str, where: int, get_event: Any, rids: list[str]) -> None:
        stats, corr = self.stats, self.corr
        stats.matched_events += 1
        problem: Optional[str] = None
        try:
            event = get_event()
        except Exception as e:  # noqa: BLE001 - the rules' fields were read; the whole record, for the output, not
            event = None
            problem = f"the whole record could not be read for the output ({type(e).__name__}: {e})"
        for rid in rids:
            stats.matches += 1
            stats.per_rule[rid] = stats.per_rule.get(rid, 0) + 1
            if corr is not None and rid in corr.hidden:
                continue  # named by a generate: false correlation
            rule = self.by_id[rid]
            try:
                if problem is not None:
                    raise ValueError(problem)
                self.writer.write({**({"kind": "match"} if corr is not None else {}), "rule_id": rid,
                                   "rule_title": rule.title, "level": rule.level or None, "author": rule.author or None,
                                   "source": source, unit: where, "event": event})
            except ValueError as e:
                stats.unwritten += 1
                _say(f"{source}:{'' if unit == 'line' else unit + ' '}{where}: the match of rule {rid} could not be "
                     f"written as {self.writer.fmt} ({e}); counted, not written")

    def run(self, source: str, done: parallel.Matched) -> None:
        self.stats.read += done.read
        if self.corr is not None:
            self.corr.matched(source, done)
        ids = self.ids
        for where, event, rules in done.hits:
            self.emit(source, done.unit, where, partial(parallel.record, event), [ids[u] for u in rules])

    def bad(self, source: str, item: inputs.Bad) -> None:
        stats = self.stats
        stats.read += item.records
        stats.bad += item.records
        where = "" if item.where is None else (f":{item.where}" if item.unit == "line" else f":{item.unit} {item.where}")
        what = "record" if item.where is not None else "input" if item.records == 1 else f"input ({item.records:,} records)"
        _say(f"{source}{where}: bad {what}: {item.problem}")
        if self.strict:
            raise _Strict


def _scan_inputs(args: argparse.Namespace, ruleset: api.RuleSet, sink: _ScanSink, fields: Any,
                 progress: _Progress) -> tuple[int, list[tuple[str, Optional[str], bool]]]:
    """Every input of ``scan`` (or the built-in sample) matched into ``sink``: the exit code so
    far (0, 1 after --strict stopped, 130 interrupted) and how each input was read."""
    stats = sink.stats
    specs = args.inputs
    sample = not specs and not _stdin_is_input()
    if sample:
        _say(f"no input given: scanning the built-in sample ({SAMPLE_SIZE} generated events, seed {SAMPLE_SEED}); "
             "give files or directories, or pipe events in")
        todo: list[inputs.Input] = []
    else:
        todo, passed = inputs.expand(specs or ["-"])  # nothing named, stdin not a terminal: read it
        stats.passed_over = len(passed)
        for f, why in passed:
            _say(f"{f}: passed over: {why}")
    sizes = [_file_size(inp.path) for inp in todo]
    progress.start("scanning", None if None in sizes else sum(sizes), "bytes")  # type: ignore[arg-type]
    formats: list[tuple[str, Optional[str], bool]] = []  # (input, format read, by field) for --stats
    code = 0
    try:
        if sample:
            evs = datasets.generate(SAMPLE_SIZE, SAMPLE_SEED)
            sink.run("<sample>", parallel.match_item(ruleset, inputs.Records("line", list(range(1, len(evs) + 1)), evs)))
            formats.append(("<sample>", None, False))
        before = 0
        # one process or --jobs N: the same items in the same order (matcher/parallel.py)
        for i, result, done in parallel.scan_items(todo, ruleset, jobs=args.jobs, fmt=args.input_format,
                                                   fields=fields, max_record=args.max_record_bytes):
            if isinstance(result, parallel.InputDone):
                before += sizes[i] or 0
                formats.append((todo[i].name, result.format, result.selected))
                progress.scanned(stats, before)
                continue
            if isinstance(result, inputs.Bad):
                sink.bad(todo[i].name, result)
            else:
                sink.run(todo[i].name, result)
            if sizes[i] is None:  # a pipe or a terminal: matches go out as they are found
                sink.writer.flush()
            progress.scanned(stats, before + done)
    except _Strict:
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        progress.stop()
        if sink.corr is not None:
            sink.corr.finish()
        sink.writer.close()
    return code, formats


def _scan_summary(args: argparse.Namespace, ruleset: api.RuleSet, stats: _Stats, code: int, errors: list[str],
                  skipped: list[str], dst: mapping.Profile) -> None:
    """``scan``'s closing lines on stderr: the counts, what did not load or run, the rules' hits."""
    good = stats.read - stats.bad
    _say(f"{stats.read} records read = {good} matched or not + {stats.bad} bad; "
         f"{stats.matched_events} events matched, {stats.matches} matches"
         + (f" ({stats.unwritten} not written: see above)" if stats.unwritten else "")
         + (" (stopped at the first bad record: --strict)" if code == 1 else "")
         + (" (interrupted: the matches found so far were written)" if code == 130 else ""))
    if stats.passed_over:
        _say(f"{stats.passed_over} director{'y entry' if stats.passed_over == 1 else 'y entries'} passed over (see above)")
    if ruleset.regex_overruns:
        _say(f"{ruleset.regex_overruns} regex budget overrun(s) (--regex-budget {ops.BACKTRACK_BUDGET:g} s): "
             "each a backtracking regex taken as false on one value, reported above")
    if skipped or errors:
        _say(f"{len(errors)} rule(s) did not load, {len(skipped)} rule(s) cannot match under profile {dst.name!r}; "
             f"{len(ruleset)} rule(s) run")
    ids = [r.id for r in ruleset]
    by_id = {r.id: r for r in ruleset}
    silent = [rid for rid in ids if rid not in stats.per_rule]
    shown = sorted(stats.per_rule.items(), key=lambda kv: (-kv[1], kv[0])) + \
        ([(rid, 0) for rid in silent] if args.stats else [])
    for rid, n in shown:
        _say(f"  {n:>8}  {rid}  {by_id[rid].title}")
    if silent:
        _say(f"{len(silent)} of {len(ids)} rule(s) loaded and never fired"
             + ("" if args.stats else " (--stats lists them)"))


def _file_size(path: str) -> Optional[int]:
    """Size of a regular file, else None (standard input, a pipe, a missing file)."""
    if path == "-":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return 0  # reported as a bad input when read
    if stat.S_ISDIR(st.st_mode):
        return 0  # a directory with no log file: reported when read
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _how_read(kind: Optional[str], only_fields: bool) -> str:
    """How one input was read, for ``--stats`` (``only_fields``: JSON lines decoded by field)."""
    if kind is None:
        return "generated events (the built-in sample)"
    name = inputs.FORMAT_NAMES.get(kind, kind)
    if kind == "jsonl":
        return f"{name}, " + ("decoding only the fields the rules read (wide records)" if only_fields
                              else "decoding whole records")
    if kind == "parquet":
        return f"{name}, columnar (Arrow record batches)"
    return f"{name}, whole records"


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
    got = _gather_for(args, args.rules, default=False)
    if got is None:
        return 2
    rules, errors, notes = got
    for msg in notes:
        print(f"matcher check: note: {msg}", file=sys.stderr)
    remapped, never = _remap(rules, src, dst)
    sample = None
    if args.sample:
        missing = [f for f in args.sample if f != "-" and not os.path.lexists(f)]
        if missing:
            _say(f"check: --sample {missing[0]}: no such file or directory")
            return 2
        sample, n_sample, problems = coverage.sample_fields(args.sample)
        for msg in problems:
            print(f"matcher check: note: --sample {msg}", file=sys.stderr)
        print(f"matcher check: note: the sample holds {len(sample)} field name(s) in {n_sample} event(s)",
              file=sys.stderr)
    ok = 0
    together: Optional[MatcherError] = None  # correlations are checked against all the rules
    if any(not isinstance(r, api.Rule) for r in remapped):
        try:
            api.RuleSet(remapped)
        except MatcherError as e:
            together = e
    for r in remapped:  # compile each on its own, so every failing rule is named
        try:
            if isinstance(r, api.Rule):
                api.RuleSet([r])
            elif together is not None and repr(r.id) in str(together):
                raise together  # a correlation naming what is not there (the error names it)
            ok += 1
        except MatcherError as e:
            errors.append(f"{r.info.source or r.id}: does not compile: {e}")
    for msg in errors:
        print(f"matcher check: {msg}", file=sys.stderr)
    for msg in never:
        print(f"matcher check: warning: {msg}", file=sys.stderr)
    unknown = _unknown_fields(rules, sample, src, dst)
    for msg in unknown:
        print(f"matcher check: warning: {msg}", file=sys.stderr)
    print(f"matcher check: {ok} rule(s) ok, {len(errors)} error(s)"
          + (f", {len(never)} rule(s) that cannot match under profile {dst.name!r}" if never else "")
          + (f", {len(unknown)} field name(s) no profile knows" if unknown else ""), file=sys.stderr)
    return 1 if errors else 0


def _unknown_fields(rules: list[api.Rule], sample: Optional[Any], *profiles: mapping.Profile) -> list[str]:
    """Warnings for misspelt or unknown field names (``docs/cli.md``, check).

    A field is unknown when no loaded profile knows it (:func:`matcher.mapping.known_fields`,
    and the fields of the profiles' logsource conditions) and, given ``sample`` (the fields a
    sample of the events holds), no event of the sample holds it. Without a sample, an S1QL
    rule's unknown fields are all reported; a Sigma rule's only when one edit (a letter added,
    dropped, changed, or two swapped) away from a known name: Sigma's names are open-ended
    (every log source has its own), so an unknown one alone says little. A Sigma field is
    reported at the line and column of its key in the YAML."""
    from .sigma.loader import field_positions
    from .sigma.logsource import routing_fields

    known = mapping.known_fields(*profiles) | routing_fields(*profiles)
    near: dict[str, bool] = {}  # name -> one edit away from a known name
    out = []
    for r in rules:
        if not isinstance(r, api.Rule):
            continue  # correlations: no IR
        sigma = r.info.extra.get("format") == "sigma"
        names = sorted(coverage.rule_fields(r.ir) - known)  # (a name no profile knows is the same in every profile)
        if sample is not None:
            names = [f for f in names if f not in sample]
        elif sigma:
            for f in names:
                if f not in near:
                    near[f] = any(_one_edit(f, k) for k in known)
            names = [f for f in names if near[f]]
        if not names:
            continue
        if sigma:
            places = field_positions(r.source_query, r.id) if r.source_query else {}
        else:
            places = _query_positions(r, names)
        names.sort(key=lambda f: places.get(f, (1 << 30, 0)))  # in the order of the YAML
        why = " and no event of the sample holds it" if sample is not None else ""
        for f in names:
            close = mapping.closest_fields(f, known)
            at = (f"{r.info.source}:line {places[f][0]}, column {places[f][1]}: rule {r.id}" if f in places
                  else f"rule {r.id} ({r.info.source or r.title})")
            out.append(f"{at}: field {f!r} is known to no profile{why}"
                       + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    return out


def _query_positions(rule: api.Rule, names: list[str]) -> dict[str, tuple[int, int]]:
    """Where each of ``names`` first stands in an S1QL rule's file (a query file, a card): the
    query is found in the file as written, the name in the query as a whole word. ``{}`` for a
    rule not read from a file (``-q``, built-in) or a query not found there verbatim."""
    import re

    from ._files import read_rule_text

    src, query = rule.info.source, rule.source_query
    if not src or not query or not os.path.isfile(src):
        return {}
    try:
        text = read_rule_text(src)
    except (MatcherError, OSError):
        return {}
    base = text.find(query)
    if base < 0:
        return {}
    out = {}
    for name in names:
        m = re.search(r"(?<![\w.$])" + re.escape(name) + r"(?![\w.])", query)
        if m:
            at = base + m.start()
            out[name] = (text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at))
    return out


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one letter added, dropped or changed, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((i for i in range(len(short)) if short[i] != long_[i]), len(short))
    return short[i:] == long_[i + 1:]


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
    got = _gather_for(args, args.rule or [])
    if got is None:
        return 2
    rules, errors, notes = got
    for msg in notes + errors:
        _say(msg)
    if errors:
        return 2
    if len(rules) != 1:
        _say(f"explain takes one rule, not {len(rules)}")
        return 2
    rule = rules[0]
    if not isinstance(rule, api.Rule):
        _say(f"explain shows single-event rules; {rule.id} is a correlation rule (docs/correlation.md)")
        return 2
    try:
        node = rule.ir if _loaded_for(rule, dst) else mapping.remap(rule.ir, src, dst)
    except mapping.RuleNeverMatches as e:
        _say(f"rule {rule.id}: {e}")
        return 2
    if args.event is not None:
        try:
            event = jsonio.loads(args.event)
        except ValueError as e:
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
                        event = item.row(args.line - lo)
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
        sys.stdout.buffer.write(jsonio.dumps(doc, indent=True) + b"\n")
    else:
        head = f"rule {rule.id}: {rule.title}\nevent {where}" + (f" (profile {dst.name})" if dst.name != "s1" else "")
        verdict = "MATCH" if tree.result else "NO MATCH"
        sys.stdout.write(f"{head}\n{verdict} (compiled core agrees: {'yes' if compiled == tree.result else 'NO'})\n\n")
        sys.stdout.write(explain.render(tree, full=args.all))
    return 0


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------


def _testing(name: str, args: argparse.Namespace) -> int:
    from . import testing  # imports hypothesis: only for these commands

    return getattr(testing, name)(args)


def _regex_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--regex", choices=ops.ENGINES, default=ops.LINEAR,
                   help="re2 (default): every RegExp/|re runs in linear time, and a pattern RE2 cannot run "
                        "(backreference, lookaround) is a rule error; backtracking: run those on a backtracking "
                        "engine under --regex-budget (docs/semantics.md)")
    p.add_argument("--regex-budget", type=float, default=None, metavar="SECONDS",
                   help=f"time a backtracking regex may spend on one value (default {ops.BACKTRACK_BUDGET:g}); "
                        "an overrun is reported and counted, the predicate taken as false")


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None,
                  _default: Any = warnings.showwarning) -> None:
    """Budget overruns on stderr as matcher's own messages (also from --jobs workers)."""
    if isinstance(message, RegexBudgetWarning):
        _say(f"regex budget overrun: {message}")
    else:
        _default(message, category, filename, lineno, file, line)


def _profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--profile", default="s1",
                   help="field names of the events: s1 (default), s1ql2, sysmon, ecs, or a .json/.toml mapping file")
    p.add_argument("--rules-profile", default="s1", help="field names the rules are written in (default s1)")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="matcher",
        description="Match detection rules (S1QL and Sigma) against events. The manual is docs/cli.md "
                    "in the source distribution (sdist) and on the project page.")
    p.add_argument("-V", "--version", action="version", version=f"matcher {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("scan", help="run rules over log files and print the matches")
    s.add_argument("inputs", nargs="*",
                   help="files or directories (JSON lines, JSON, CSV, Parquet, EVTX, optionally .gz), or - for stdin "
                        "(none: standard input when it is piped or redirected, the built-in sample on a terminal)")
    s.add_argument("-r", "--rule", action="append",
                   help="a rule card (.md), a query file, Sigma YAML, a JSON lines rule file (.jsonl: one "
                        "{id, title, query, ...} a line), a directory of rules, or a built-in rule name or id "
                        "(default: flagship); repeatable")
    s.add_argument("-q", "--query", action="append", help="an S1QL query given as text; repeatable")
    s.add_argument("-f", "--format", choices=("auto", "jsonl", "json", "csv", "table"), default="auto",
                   help="output format (default: a table on a terminal, JSON lines otherwise)")
    s.add_argument("-i", "--input-format", choices=inputs.FORMATS, default=None,
                   help="input format for every input (default: detected from the content, then the extension)")
    _profile_args(s)
    _regex_args(s)
    _sigma_args(s, timestamp=False)
    s.add_argument("--strict", action="store_true", help="stop at the first bad record (exit 1)")
    s.add_argument("--skip-bad-rules", action="store_true", help="report rules that do not load and scan with the others")
    s.add_argument("--stats", action="store_true",
                   help="print timings, events/s, how each input was read, and every rule's match count on stderr")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown only on a terminal)")
    s.add_argument("--timestamp", metavar="FIELD",
                   help="run the correlation rules among the rules, with FIELD as event time; alerts and matches "
                        "are written as JSON records with a 'kind' field (docs/correlation.md); Sigma's "
                        "timestamp-part modifiers (|hour, |day, ...) read FIELD too")
    s.add_argument("--lateness", default="0s", help="with --timestamp: how far out of order events may come "
                   "(a timespan such as 30s or 5m; default 0s); later ones are reported and counted")
    s.add_argument("--max-groups", type=int, default=1_000_000,
                   help="with --timestamp: live groups kept per correlation (default 1,000,000); evictions are reported")
    s.add_argument("-j", "--jobs", type=_positive, default=None, metavar="N",
                   help="processes (default: the machine's cores when the inputs hold 8 MiB or more, else 1); "
                        "files, Parquet row groups and byte ranges of JSON lines files are shared out, and the "
                        "output is the same as one process's, in the same order")
    s.add_argument("--max-record-bytes", type=_positive, default=inputs.MAX_RECORD_BYTES, metavar="N",
                   help="a JSON line or CSV record longer than this is a bad record, skipped without being held in "
                        f"memory (default {inputs.MAX_RECORD_BYTES:,} = 64 MiB)")
    s.add_argument("--decode", choices=("auto", "whole"), default="auto",
                   help="JSON lines: decode only the fields the rules read when records are wide (auto, default), "
                        "or always whole records")
    s.set_defaults(func=_scan)

    c = sub.add_parser("check", help="parse and compile rules; report every error (exit 1 if any)")
    c.add_argument("rules", nargs="*", help="rule files, directories of rules, or built-in rule names")
    c.add_argument("-q", "--query", action="append", help="an S1QL query given as text; repeatable")
    c.add_argument("--sample", action="append", metavar="EVENTS",
                   help="a file or directory of events (any input format; - for stdin): a field no profile knows "
                        "is reported unless some event of the sample holds it; repeatable")
    _profile_args(c)
    _regex_args(c)
    _sigma_args(c)
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
    _sigma_args(e)
    e.set_defaults(func=_explain)

    t = sub.add_parser("test", help="run the tests rules carry (rule cards' ## Tests, SigmaHQ regression data); "
                       "exit 1 if any fails")
    selftest.add_arguments(t)
    t.set_defaults(func=selftest.run)

    v = sub.add_parser("coverage", help="which fields the rules read and the events hold, and which rules can never "
                       "fire on the events")
    coverage.add_arguments(v)
    v.set_defaults(func=coverage.run)

    g = sub.add_parser("generate", help="write deterministic synthetic events (JSON lines or Parquet)")
    datasets.add_generate_arguments(g)
    g.set_defaults(func=datasets.run_generate)

    x = sub.add_parser("examples", help="print events a rule matches (or its near misses) as JSON lines")
    x.add_argument("rule", help="a rule file (S1QL, rule card, Sigma) or a built-in rule name or id")
    x.add_argument("-n", "--events", type=int, default=10, help="number of events (default 10)")
    x.add_argument("--near-misses", action="store_true", help="events the rule must not match, each broken in one place")
    x.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    x.set_defaults(func=lambda a: _testing("run_examples", a))

    d = sub.add_parser("diff", help="search an event on which two rules disagree (exit 1 when one is found)")
    d.add_argument("rules", nargs=2, metavar="RULE", help="rule files or built-in rule names or ids")
    d.add_argument("--budget", type=int, default=None, help="hypothesis examples after the structural search (default 200)")
    d.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format (default text)")
    d.set_defaults(func=lambda a: _testing("run_diff", a))
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "regex_budget", None) is not None:
        if not args.regex_budget > 0:
            _say("--regex-budget: give a positive number of seconds")
            return 2
        ops.BACKTRACK_BUDGET = args.regex_budget
    warnings.showwarning = _show_warning
    try:
        with ops.regex_engine(getattr(args, "regex", ops.LINEAR)):
            return args.func(args)
    except KeyboardInterrupt:  # scan handles its own (flushes, summarizes); elsewhere: quietly
        _say("interrupted")
        return 130
    except MatcherError as e:  # a missing optional dependency, or any error a command did not report
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
