"""``matcher test``: run the tests that rules carry, and say per rule what was expected and what came.

Two kinds of tests (``docs/rule-cards.md``, ``docs/cli.md``):

- a rule card's ``## Tests`` section: events the rule must match (``### Match``) and must not
  (``### No match``), read by :func:`matcher.s1ql.cards.parse_rule_card` into ``info.extra["tests"]``;
- SigmaHQ's regression data (the ``regression_data/`` tree of SigmaHQ/sigma): one folder per rule
  with an ``info.yml`` naming the rule id (``rule_metadata``) and its tests
  (``regression_tests_info``: an EVTX or JSON file of events and a ``match_count``). As in
  SigmaHQ's own runner, the rule passes when it matches at least ``match_count`` of the file's
  events (at least one when no count is given); more is a note, not a failure.

Sigma rules are run with Sigma's own field names (profile ``sysmon``) on the events as
:func:`matcher.inputs.evtx_event` flattens them (``EventData`` fields, ``EventID``, ``Channel``,
``Provider``...). A verdict is the compiled core's; the first event that disagrees is shown with
:mod:`matcher.explain` (the reference), which also says whether the two agree.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from . import api, explain, inputs

__all__ = ["RegressionTest", "find_regression_tests", "Outcome", "run_card_tests", "run_regression_tests",
           "add_arguments", "run"]


@dataclass(frozen=True)
class RegressionTest:
    """One test of a SigmaHQ ``info.yml``: the rule must match at least ``match_count`` events of ``path``."""

    rule_id: str
    info: Path
    name: str
    kind: str  # "evtx", "json", ...
    path: Path
    match_count: Optional[int]


@dataclass
class Outcome:
    """The result of one rule's tests."""

    rule: api.Rule
    passed: bool
    summary: str  # expected vs got, one line
    events: int = 0
    detail: list[str] = field(default_factory=list)  # the first disagreeing event and its explanation
    notes: list[str] = field(default_factory=list)


def _resolve(start: Path, relative: str) -> Path:
    """``relative`` (a path from the SigmaHQ repository root, e.g. ``regression_data/...``) found
    from ``start`` upwards; the file of that name next to ``start`` when no ancestor has it."""
    rel = Path(relative.replace("\\", "/"))
    for base in (start, *start.parents):
        if (base / rel).exists():
            return base / rel
    return start / rel.name


def find_regression_tests(root: Path) -> tuple[dict[str, list[RegressionTest]], list[str]]:
    """Every ``info.yml`` under ``root`` (or ``root`` itself): tests by rule id, and problems
    (unreadable files, folders with no test) as messages."""
    files = [root] if root.is_file() else sorted(root.rglob("info.yml"))
    tests: dict[str, list[RegressionTest]] = {}
    problems: list[str] = []
    if not files:
        problems.append(f"{root}: no info.yml (SigmaHQ regression data) found")
    for info in files:
        try:
            doc = yaml.safe_load(info.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            problems.append(f"{info}: cannot read: {e}")
            continue
        if not isinstance(doc, dict):
            problems.append(f"{info}: not a mapping")
            continue
        ids = [str(m["id"]) for m in doc.get("rule_metadata") or [] if isinstance(m, dict) and m.get("id")]
        entries = [t for t in doc.get("regression_tests_info") or [] if isinstance(t, dict)]
        if not ids:
            problems.append(f"{info}: no rule id (rule_metadata)")
            continue
        if not entries:
            problems.append(f"{info}: rule {ids[0]} has no test (regression_tests_info is empty or commented out)")
            continue
        for rid in ids:
            for t in entries:
                count = t.get("match_count")
                tests.setdefault(rid, []).append(RegressionTest(
                    rid, info, str(t.get("name") or "unnamed test"), str(t.get("type") or "unknown"),
                    _resolve(info.parent, str(t.get("path") or "")), int(count) if count is not None else None))
    return tests, problems


def _indent(text: str, pad: str = "      ") -> list[str]:
    return [pad + line for line in text.rstrip("\n").splitlines()]


def _explained(rule: api.Rule, event: Any, where: str, expected: str) -> list[str]:
    tree = explain.explain(rule.ir, event)
    return [f"    first event that disagrees: {where} (expected {expected})",
            f"    reference: {'MATCH' if tree.result else 'NO MATCH'}"
            f" (the compiled core {'agrees' if tree.result == rule.match(event) else 'DISAGREES: a matcher bug'})",
            *_indent(explain.render(tree))]


def run_card_tests(rule: api.Rule) -> Optional[Outcome]:
    """The rule card's own tests (``info.extra["tests"]``); None when it has none."""
    tests = rule.info.extra.get("tests")
    if not tests:
        return None
    verdicts = rule.match_many([t.event for t in tests])
    wrong = [(t, bool(v)) for t, v in zip(tests, verdicts) if bool(v) != t.expect]
    n_match = sum(t.expect for t in tests)
    expected = f"{n_match} match, {len(tests) - n_match} no match"
    if not wrong:
        return Outcome(rule, True, f"{len(tests)} events as expected ({expected})", len(tests))
    first, _ = wrong[0]
    src = rule.info.source or rule.id
    out = Outcome(rule, False, f"{len(wrong)} of {len(tests)} events not as expected ({expected})", len(tests))
    out.detail = _explained(rule, first.event, f"{src}:{first.line}", "a match" if first.expect else "no match")
    return out


def _read_events(path: Path) -> tuple[list[tuple[str, Any]], list[str]]:
    """``(where, event)`` for every record of a regression file, and its bad records as messages."""
    events: list[tuple[str, Any]] = []
    bad: list[str] = []
    for item in inputs.read(inputs.Input(str(path), str(path))):
        if isinstance(item, inputs.Records):
            events.extend((f"{path.name} {item.unit} {w}", item.event(i)) for i, w in enumerate(item.where))
        elif isinstance(item, inputs.Columns):
            rows = item.batch.to_pylist()
            events.extend((f"{path.name} row {item.first_row + i}", ev) for i, ev in enumerate(rows))
        else:
            where = "" if item.where is None else f" {item.unit} {item.where}"
            bad.append(f"{path}{where}: {item.problem}")
    return events, bad


def run_regression_tests(rule: api.Rule, tests: list[RegressionTest]) -> Outcome:
    """A Sigma rule against its SigmaHQ regression tests (all must pass)."""
    parts, detail, notes = [], [], []
    passed = True
    total = 0
    for t in tests:
        if not t.path.exists():
            passed = False
            parts.append(f"{t.name}: {t.path} is missing")
            continue
        events, bad = _read_events(t.path)
        total += len(events)
        if bad:
            passed = False
            parts.append(f"{t.name}: {len(bad)} unreadable record(s) in {t.path.name} ({bad[0]})")
            continue
        verdicts = rule.match_many([ev for _, ev in events]) if events else []
        got = int(sum(bool(v) for v in verdicts))
        want = t.match_count if t.match_count is not None else 1
        ok = got >= want
        parts.append(f"{t.name}: expected at least {want} match(es) in {t.path.name}, got {got} of {len(events)}")
        if t.match_count is not None and got > t.match_count:
            notes.append(f"{t.path.name}: {got} matches, more than the {t.match_count} info.yml names")
        if not ok:
            passed = False
            miss = next(((w, ev) for (w, ev), v in zip(events, verdicts) if not v), None)
            if miss is not None and not detail:
                detail = _explained(rule, miss[1], miss[0], "a match")
    return Outcome(rule, passed, "; ".join(parts), total, detail, notes)


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rules", nargs="+", metavar="RULES",
                   help="rule files, directories of rules, or built-in rule names (as scan -r); "
                        "after them, SigmaHQ regression data: directories holding info.yml files, or info.yml files")
    p.add_argument("-v", "--verbose", action="store_true", help="list passing rules too")
    p.add_argument("--skip-bad-rules", action="store_true",
                   help="report rules that do not load without failing (exit 1 otherwise)")


def _split(specs: list[str]) -> tuple[list[str], list[Path]]:
    """Rule specs, then regression-data specs: a directory with an ``info.yml`` below it and no
    rule file other than ``info.yml`` files, or an ``info.yml`` file."""
    rules: list[str] = []
    data: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_file() and p.name == "info.yml":
            data.append(p)
        elif p.is_dir() and _only_regression_data(p):
            data.append(p)
        else:
            rules.append(spec)
    return rules, data


def _only_regression_data(p: Path) -> bool:
    found = False
    for f in p.rglob("*.yml"):
        if f.name != "info.yml":
            return False
        found = True
    return found


def run(args: argparse.Namespace) -> int:
    """``matcher test``: exit 0 every rule with tests passes, 1 one or more fail, 2 usage (nothing to test)."""
    from ._notes import say as _say
    from .api import gather_rules as _gather_rules

    rule_specs, data_specs = _split(args.rules)
    from .sigma.loader import SigmaOptions

    notes: list[str] = []  # rules of logsources the sysmon profile cannot recognise are tested unrouted
    rules, errors = _gather_rules([], rule_specs, default=False, sigma_profile="sysmon",
                                  sigma_options=SigmaOptions.of(unrouted="run"), notes=notes)
    rules = [r for r in rules if hasattr(r, "ir")]  # correlation rules have no single-event tests
    for msg in notes:
        _say(f"test: note: {msg}")
    for msg in errors:
        _say(f"test: {msg}")
    regression: dict[str, list[RegressionTest]] = {}
    for spec in data_specs:
        found, problems = find_regression_tests(spec)
        for msg in problems:
            _say(f"test: note: {msg}")
        for rid, tests in found.items():
            regression.setdefault(rid, []).extend(tests)
    outcomes: list[Outcome] = []
    untested = 0
    for rule in rules:
        outcome = run_regression_tests(rule, regression[rule.id]) if rule.id in regression else run_card_tests(rule)
        if outcome is None:
            untested += 1
        else:
            outcomes.append(outcome)
    loaded = {r.id for r in rules}
    not_loaded = sorted(set(regression) - loaded)
    out = sys.stdout
    for o in outcomes:
        if o.passed and not args.verbose:
            continue
        out.write(f"{'PASS' if o.passed else 'FAIL'}  {o.rule.id}  {o.rule.title}\n    {o.summary}\n")
        for line in o.detail + [f"    note: {n}" for n in o.notes]:
            out.write(line + "\n")
    failed = [o for o in outcomes if not o.passed]
    for rid in not_loaded:
        _say(f"test: note: regression data for rule {rid} ({regression[rid][0].info}), which is not among "
             "the rules loaded")
    _say(f"test: {len(outcomes)} rule(s) tested: {len(outcomes) - len(failed)} passed, {len(failed)} failed; "
         f"{untested} loaded rule(s) have no tests; {len(errors)} rule error(s)"
         + (f"; {len(not_loaded)} regression test(s) name rules not loaded" if not_loaded else ""))
    if not outcomes:
        _say("test: nothing was tested: give rules with a ## Tests section, or Sigma rules and their regression data")
        return 2
    return 1 if failed or (errors and not args.skip_bad_rules) else 0
