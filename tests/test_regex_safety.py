"""Rule text is untrusted: no regex in a rule may make matching super-linear (issue 11, class 3).

- Catastrophic patterns (``(a+)+$``, Sigma ``(a|aa)+$``) finish at once on 40 and 100,000
  characters, through the API, the reference and the command line. Each runs in a subprocess
  with a timeout, so a hang fails the test instead of hanging pytest.
- RE2's meaning, where it differs from Python's ``re``, is pinned case by case (and
  ``docs/semantics.md`` lists the same cases).
- A pattern RE2 cannot run, and any pattern that does not compile, is a positioned
  ``QuerySyntaxError`` / ``RuleError``, also through ``matcher check``, which catches whatever
  ``matcher scan`` would stop on.
- Opted in (``regex="backtracking"``), such a pattern runs under a budget per value; an
  overrun is counted on the RuleSet and warned with the rule, the event and the field.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings

import pyarrow as pa
import pytest

import matcher
from matcher import ops, reference
from matcher.errors import MatcherError, QuerySyntaxError, RegexBudgetExceeded, RegexBudgetWarning, RuleError
from matcher.ir import walk_preds

CMD = "TgtProcCmdLine"
HANG = 120  # seconds: far above what linear matching needs, far below "forever"


def run(args: list[str], *, stdin: str | None = None, timeout: float = HANG) -> subprocess.CompletedProcess:
    """A subprocess (inheriting PYTHONPATH); a timeout is a hang, and fails the test."""
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: {' '.join(args)[:200]} ran past {timeout} s")


def run_python(code: str) -> subprocess.CompletedProcess:
    proc = run([sys.executable, "-c", textwrap.dedent(code)])
    assert proc.returncode == 0, proc.stderr
    return proc


def sigma_rule(pattern: str, modifier: str = "re") -> str:
    return textwrap.dedent(f"""\
        title: catastrophic
        id: 4f1e7c0e-94a4-4a4f-9d59-0d0f2b1c0a11
        logsource: {{category: process_creation, product: windows}}
        detection:
          sel:
            CommandLine|{modifier}: {json.dumps(pattern)}
          condition: sel
        """)


# -- catastrophic patterns finish ------------------------------------------------------------

VALUES = {"40": "a" * 39 + "!", "100k": "a" * 100_000 + "!"}


@pytest.mark.parametrize("size", sorted(VALUES))
def test_s1ql_catastrophic_pattern_is_linear(size):
    out = run_python(f"""
        import matcher, pyarrow as pa
        from matcher import reference
        rule = matcher.compile('TgtProcCmdLine RegExp "(a+)+$"')
        value = {VALUES[size]!r}
        ev = {{"TgtProcCmdLine": value}}
        rs = matcher.RuleSet([rule])
        verdicts = [rs.match(ev), list(rs.scan([ev, {{"TgtProcCmdLine": value[:-1]}}])),
                    list(rs.scan_arrow(pa.table({{"TgtProcCmdLine": [value, value[:-1]]}}))),
                    reference.evaluate(rule, ev)]
        print(repr(verdicts))
    """)
    rid = matcher.compile('TgtProcCmdLine RegExp "(a+)+$"').id
    assert out.stdout.strip() == repr([[], [(1, rid)], [(1, rid)], False])


@pytest.mark.parametrize("size", sorted(VALUES))
def test_sigma_catastrophic_pattern_is_linear(size, tmp_path):
    path = tmp_path / "rule.yml"
    path.write_text(sigma_rule("(a|aa)+$"))
    out = run_python(f"""
        import matcher
        from matcher import reference
        rule = matcher.load({str(path)!r}, profile=None)
        value = {VALUES[size]!r}
        rs = matcher.RuleSet([rule])
        evs = [{{"CommandLine": value}}, {{"CommandLine": value[:-1]}}]
        print(repr([list(rs.scan(evs)), [reference.evaluate(rule, e) for e in evs]]))
    """)
    rid = matcher.load(path, profile=None).id
    assert out.stdout.strip() == repr([[(1, rid)], [False, True]])


def test_cli_scan_with_catastrophic_patterns_finishes(tmp_path):
    rule = tmp_path / "rule.yml"
    rule.write_text(sigma_rule("(a|aa)+$"))
    events = tmp_path / "events.jsonl"
    base = {"EventType": "Process Creation", "EndpointOS": "windows"}  # the Sigma rule's logsource
    events.write_text("".join(json.dumps({**base, CMD: v}) + "\n" for v in VALUES.values()))
    for how in (["-q", 'TgtProcCmdLine RegExp "(a+)+$"'], ["-r", str(rule)]):
        proc = run([sys.executable, "-m", "matcher", "scan", *how, str(events)])
        assert proc.returncode == 0 and "2 records read" in proc.stderr and proc.stdout == "", proc.stderr


# -- RE2's meaning, where it is not Python's re's ----------------------------------------------

KELVIN = "\u212a"

#: (pattern, value, RE2's verdict, Python re's verdict or "error"): docs/semantics.md lists them.
DIFFERENCES = [
    (r"^\d$", "\u0663", False, True),  # \d is ASCII [0-9]
    (r"^\w+$", "jürgen", False, True),  # \w is ASCII [0-9A-Za-z_]
    (r"\s", "\u00a0", False, True),  # \s is [\t\n\f\r ]: no NBSP ...
    (r"\s", "\x0b", False, True),  # ... and no vertical tab
    (r"x\b", "xé", True, False),  # \b is between ASCII word and non-word characters
    (r"(?i)i", "\u0130", False, True),  # (?i) is Unicode simple case folding: İ is not i ...
    (r"(?i)i", "\u0131", False, True),  # ... nor is ı
    (r"(?i)s", "\u017f", True, True),  # ſ folds to s in both
    (r"(?i)k", KELVIN, True, True),  # the Kelvin sign folds to k in both
    (r"a.c", "a\nc", False, False),  # . does not match a newline ...
    (r"(?s)a.c", "a\nc", True, True),  # ... unless s
    (r"a$", "a\n", False, True),  # $ is the end of the text, not before a final newline
    (r"(?m)a$", "a\nb", True, True),  # under m, the end of any line
    (r"a\z", "a", True, "error"),  # RE2's end of text; Python spells it \Z (refused by RE2)
    (r"[[:alpha:]]+", "abc", True, False),  # a POSIX class; Python's re reads a set and a ']'
    (r"\pL", "é", True, "error"),  # Unicode classes
    (r"\Q.*\E", ".*", True, "error"),  # literal text
    (r"\x{41}", "A", True, "error"),
    (r"a(?i)b", "aB", True, "error"),  # flags anywhere, to the end of the group
    (r"(?U)a+", "a", True, "error"),  # ungreedy: the verdict of a search does not change
    (r"^.$", "\ud800", True, True),  # a lone surrogate in a value is one character
    (r"(?i)ß", "\u1e9e", True, True),
]


@pytest.mark.parametrize("pattern, value, re2_verdict, re_verdict", DIFFERENCES)
def test_re2_semantics_pinned(pattern, value, re2_verdict, re_verdict):
    rule = matcher.compile(f'{CMD} RegExp "{pattern}"'.replace("\\", "\\\\"))
    assert rule.ir.value == pattern
    ev = {CMD: value}
    assert reference.evaluate(rule, ev) is re2_verdict
    assert rule.match(ev) is re2_verdict
    assert matcher.RuleSet([rule]).match({CMD: ["", value]}) == ([rule.id] if re2_verdict else [])
    if re_verdict == "error":
        with pytest.raises(re.error):
            re.compile(pattern)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            assert (re.search(pattern, value) is not None) is re_verdict


#: Patterns RE2 refuses: (pattern, what is in the message); the backtracking engine runs them.
REFUSED = [
    (r"(a)\1", "invalid escape sequence"),  # backreference
    (r"x(?=y)", "invalid perl operator"),  # lookahead
    (r"(?<=x)y", "invalid perl operator"),  # lookbehind
    (r"(?!x)y", "invalid perl operator"),
    (r"(?>ab)c", "invalid perl operator"),  # atomic group
    (r"a*+b", "bad repetition operator"),  # possessive
    (r"a\Z", "invalid escape sequence"),  # write \z
    (r"(?x) a b", "invalid perl operator"),  # verbose
    (r"(?a)\w", "invalid perl operator"),  # ASCII flag (RE2 is ASCII already)
    (r"a{,3}", "literal text"),  # RE2 reads {,3} as text, re as {0,3}: refused
    (r"a{1001}", "above 1000"),
]


@pytest.mark.parametrize("pattern, words", REFUSED)
def test_patterns_re2_refuses_are_errors_unless_opted_in(pattern, words):
    second = f'  AND {CMD} RegExp "{pattern}"'.replace("\\", "\\\\")
    query = 'EventType = "x"\n' + second
    with pytest.raises(QuerySyntaxError) as info:
        matcher.compile(query)
    err = info.value
    assert words in err.message and (err.line, err.column) == (2, second.index('"') + 1)
    assert "^" in str(err) and isinstance(err, MatcherError)
    rule = matcher.compile(query, regex="backtracking")
    assert pattern in {p.value for p in walk_preds(rule.ir)}
    with pytest.raises(QuerySyntaxError):  # the opt-in does not outlive the call
        matcher.compile(query)


@pytest.mark.parametrize("pattern", [
    "a{4294967296}",  # OverflowError in Python's re
    "(" * 1000 + r"\1" + ")" * 1000,  # RecursionError in the regex module
    "(a{1000}){1000}",  # the regex module would compile for seconds
    "(",
    "[a-",
    "a{2,1}",
    "x\\",
])
@pytest.mark.parametrize("engine", ["re2", "backtracking"])
def test_compile_failures_are_positioned_errors(pattern, engine):
    query = f'{CMD} RegExp "{pattern}"'.replace("\\", "\\\\")
    with pytest.raises(QuerySyntaxError) as info:
        matcher.compile(query, regex=engine)
    assert (info.value.line, info.value.column) == (1, len(CMD) + 9)  # the string's quote
    assert "regular expression" in info.value.message


def test_lone_surrogate_in_pattern_is_an_error_for_re2():
    with pytest.raises(QuerySyntaxError, match="lone surrogate"):
        matcher.compile(f'{CMD} RegExp "a\ud800"')


def test_deep_nesting_runs_on_re2():
    rule = matcher.compile(f'{CMD} RegExp "{"(" * 1000 + "a" + ")" * 1000}"')
    assert rule.match({CMD: "xay"}) and not rule.match({CMD: "xy"})


def test_sigma_regex_errors_name_the_rule(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(sigma_rule(r"(a)\1"))
    with pytest.raises(RuleError) as info:
        matcher.load(path)
    msg = str(info.value)
    assert str(path) in msg and "4f1e7c0e" in msg and "regex=\"backtracking\"" in msg and "^" in msg
    rule = matcher.load(path, regex="backtracking", profile=None)
    assert rule.match({"CommandLine": "xaa"}) and not rule.match({"CommandLine": "xab"})


def test_sigma_flags_run_on_re2(tmp_path):
    path = tmp_path / "flags.yml"
    path.write_text(sigma_rule("^who.mi$", "re|i|m|s"))
    rule = matcher.load(path, profile=None)
    assert rule.ir.value == "(?ims)^who.mi$"
    assert rule.match({"CommandLine": "x\nWHO\nMI\ny"})  # i, s (. takes \n), m (^ $ at lines)
    assert not rule.match({"CommandLine": "x\nWHO\nMI y"})


def test_sigma_cased_strings_run_on_re2(tmp_path):
    path = tmp_path / "cased.yml"
    path.write_text(sigma_rule("Who Am I?\n(*)", "cased"))
    rule = matcher.load(path, profile=None)
    assert ops.is_linear(rule.ir.value)
    assert rule.match({"CommandLine": "Who Am I!\n(x)"})
    assert not rule.match({"CommandLine": "who Am I!\n(x)"}) and not rule.match({"CommandLine": "Who Am I!\n(x)\n"})


# -- matcher check catches what scan would stop on ----------------------------------------------

HOSTILE = [
    r"(a+)+$", r"(a|aa)+$", r"(a)\1", r"x(?=y)", "a{4294967296}", "(" * 1000 + ")" * 1000,
    "(" * 1000 + r"\1" + ")" * 1000, "(a{1000}){1000}", "[", "a{,3}", r"\pL+", "[[:alpha:]]",
]


@pytest.mark.slow  # ~100 subprocesses: about 4 minutes on a shared machine
@pytest.mark.parametrize("kind", ["s1ql", "sigma"])
@pytest.mark.parametrize("engine", ["re2", "backtracking"])
def test_check_catches_what_scan_would_stop_on(kind, engine, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({CMD: "a" * 50 + "!", "CommandLine": "a" * 50 + "!"}) + "\n")
    for i, pattern in enumerate(HOSTILE):
        if kind == "s1ql":
            rule = tmp_path / f"r{i}.s1ql"
            rule.write_text(f'{CMD} RegExp "{pattern}"'.replace("\\", "\\\\"))
        else:
            rule = tmp_path / f"r{i}.yml"
            rule.write_text(sigma_rule(pattern))
        check = run([sys.executable, "-m", "matcher", "check", "--regex", engine, str(rule)])
        scan = run([sys.executable, "-m", "matcher", "scan", "--regex", engine, "--regex-budget", "0.05",
                    "-r", str(rule), str(events)])
        for proc in (check, scan):
            assert "Traceback" not in proc.stderr, (pattern, proc.stderr)
        assert check.returncode in (0, 1), (pattern, check.stderr)
        if check.returncode == 0:
            assert scan.returncode == 0, (pattern, scan.stderr)
        else:
            assert "regular expression" in check.stderr.lower() and str(rule) in check.stderr
            assert scan.returncode == 2, (pattern, scan.stderr)


@pytest.mark.parametrize("pattern", ["a{4294967296}", "(" * 1000 + r"\1" + ")" * 1000])
def test_check_and_scan_report_compile_failures(pattern, tmp_path):
    rule = tmp_path / "r.yml"
    rule.write_text(sigma_rule(pattern))
    query = f'{CMD} RegExp "{pattern}"'.replace("\\", "\\\\")
    for how in (["-q", query], [str(rule)]):
        check = run([sys.executable, "-m", "matcher", "check", "--regex", "backtracking", *how])
        assert check.returncode == 1 and "regular expression" in check.stderr and "Traceback" not in check.stderr
    scan = run([sys.executable, "-m", "matcher", "scan", "-q", query, "-"], stdin="{}\n")
    assert scan.returncode == 2 and "regular expression" in scan.stderr and "Traceback" not in scan.stderr


def test_check_reports_the_refused_pattern_with_a_caret():
    proc = run([sys.executable, "-m", "matcher", "check", "-q", f'{CMD} RegExp "(a)\\\\1"'])
    assert proc.returncode == 1
    assert "line 1, column 23" in proc.stderr and "--regex backtracking" in proc.stderr and "^" in proc.stderr
    proc = run([sys.executable, "-m", "matcher", "check", "--regex", "backtracking", "-q", f'{CMD} RegExp "(a)\\\\1"'])
    assert proc.returncode == 0, proc.stderr


# -- the opted-in engine's budget ---------------------------------------------------------------

SLOW = r"(a|aa)+\1$"  # backtracks for ever on a run of a's followed by another character
HOSTILE_VALUE = "a" * 40 + "b"


@pytest.fixture
def short_budget(monkeypatch):
    monkeypatch.setattr(ops, "BACKTRACK_BUDGET", 0.05)


def test_overrun_is_counted_and_warned_with_rule_event_and_field(short_budget):
    rule = matcher.compile(f'{CMD} RegExp "{SLOW}"'.replace("\\", "\\\\"), regex="backtracking", id="slow")
    other = matcher.compile(f'{CMD} containsCIS "b"', id="other")
    rs = matcher.RuleSet([rule, other])
    evs = [{CMD: "aa"}, {CMD: "x"}, {CMD: HOSTILE_VALUE}, {CMD: ["aa", HOSTILE_VALUE]}]
    with pytest.warns(RegexBudgetWarning) as caught:
        found = list(rs.scan(evs, batch=2))  # the event index counts across batches
    assert found == [(0, "slow"), (2, "other"), (3, "slow"), (3, "other")]  # another text of event 3 matched
    assert rs.regex_overruns == 1
    [w] = [w.message for w in caught]
    assert (w.rules, w.event, w.field) == (("slow",), 2, CMD)
    assert "slow" in str(w) and "event 2" in str(w) and CMD in str(w)


def test_overrun_in_arrow_rows_and_under_not(short_budget):
    rule = matcher.compile(f'NOT {CMD} RegExp "{SLOW}"'.replace("\\", "\\\\"), regex="backtracking", id="not-slow")
    rs = matcher.RuleSet([rule])
    table = pa.table({CMD: ["aa", HOSTILE_VALUE, "ab"]})
    with pytest.warns(RegexBudgetWarning) as caught:
        found = list(rs.scan_arrow(table))
    # an overrun takes the predicate as false, so its NOT matches: reported, not silent
    assert found == [(1, "not-slow"), (2, "not-slow")]
    assert [w.message.event for w in caught] == [1] and rs.regex_overruns == 1


def test_reference_raises_on_overrun(short_budget):
    rule = matcher.compile(f'{CMD} RegExp "{SLOW}"'.replace("\\", "\\\\"), regex="backtracking")
    assert reference.evaluate(rule, {CMD: "aa"})
    with pytest.raises(RegexBudgetExceeded) as info:
        reference.evaluate(rule, {CMD: HOSTILE_VALUE})
    assert info.value.length == len(HOSTILE_VALUE) and isinstance(info.value, MatcherError)


def test_cli_reports_and_counts_overruns(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({CMD: v}) + "\n" for v in ["aa", HOSTILE_VALUE, "x", HOSTILE_VALUE]))
    query = f'{CMD} RegExp "{SLOW}"'.replace("\\", "\\\\")
    proc = run([sys.executable, "-m", "matcher", "scan", "--regex", "backtracking", "--regex-budget", "0.05",
                "-q", query, str(events)])
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [1]
    assert "regex budget overrun: rule query-1: event 1:" in proc.stderr  # lines 2 and 4
    assert "regex budget overrun: rule query-1: event 3:" in proc.stderr
    assert "2 regex budget overrun(s)" in proc.stderr
    proc = run([sys.executable, "-m", "matcher", "explain", "--regex", "backtracking", "--regex-budget", "0.05",
                "-q", query, "-n", "2", str(events)])
    assert proc.returncode == 2 and "budget" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_engine_is_an_error():
    with pytest.raises(MatcherError):
        matcher.compile(f'{CMD} RegExp "a"', regex="pcre")
