"""Malformed Sigma (issue 11, class 8): every bad document is a RuleError naming the file, the
rule id when it has one, and the line and column; nothing else escapes, nothing hangs, and
``matcher check DIR`` reports every bad file and goes on."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sigma.exceptions import SigmaError

import matcher
from matcher.errors import MatcherError, RuleError, RuleSyntaxError, UnsupportedFeature
from matcher.sigma import load_sigma_tree, parse_sigma
from matcher.sigma.loader import MAX_CONDITION_DEPTH, MAX_CONDITION_TOKENS, MAX_YAML_DEPTH
from shared_data import sigma_rules_path
from test_cli import err, no_traceback, run

RID = "0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
GOOD = f"""title: Whoami
id: {RID}
logsource:
    category: process_creation
    product: windows
detection:
    sel:
        Image|endswith: '\\whoami.exe'
    condition: sel
level: high
"""


def bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def deep(n: int) -> str:
    return "[" * n + "]" * n


ALIAS_BOMB = "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, k in zip([None, *"abcdefgh"], "abcdefghi")
)

# name -> (text, line, column, words in the message); line/column 1-based; None: not checked
CASES = {
    "condition_int": (bad("condition: sel", "condition: 5"), 9, 16, "condition is a string"),
    "condition_null": (bad("condition: sel", "condition:"), 9, 15, "condition is a string"),
    "condition_map": (bad("condition: sel", "condition: {a: b}"), 9, 16, "not a map"),
    "condition_list_of_int": (bad("condition: sel", "condition: [sel, 7]"), 9, 22, "not a number"),
    "field_name_int": (bad("Image|endswith", "123"), 8, 9, "field names are strings"),
    "field_name_bool": (bad("Image|endswith", "true"), 8, 9, "not a boolean"),
    "field_name_date": (bad("Image|endswith", "2020-01-01"), 8, 9, "not a date"),
    "detection_name_int": (bad("    sel:", "    5:").replace("condition: sel", "condition: '5'"), 7, 5,
                           "detection names are strings"),
    "not_300": (bad("condition: sel", "condition: " + "not " * 300 + "sel"), 9, 16, "nested deeper"),
    "parentheses_300": (bad("condition: sel", "condition: " + "(" * 300 + "sel" + ")" * 300), 9, 16,
                        "nested deeper"),
    "condition_too_long": (bad("condition: sel", "condition: " + " or ".join(["sel"] * 3000)), 9, 16,
                           "more than"),
    "map_for_value_list": (bad("'\\whoami.exe'", "{a: b}"), 8, 25, "value or a list of values"),
    "list_for_map": (bad("        Image|endswith: '\\whoami.exe'", "        - [a, {b: c}]"), 8, 15,
                     "keyword is a value"),
    "map_in_value_list": (bad("'\\whoami.exe'", "[x, {b: c}]"), 8, 29, "not a map"),
    # found by test_mutated_sigmahq_rules_fail_cleanly in CI: pySigma reads these with an AttributeError
    "re_null": (bad("Image|endswith: '\\whoami.exe'", "Image|re: null"), 8, 19, "re modifier takes"),
    "re_number": (bad("Image|endswith: '\\whoami.exe'", "Image|re: 5"), 8, 19, "not a number"),
    "re_alias_of_a_number": (bad("        Image|endswith: '\\whoami.exe'", "        a: &n 5\n        Image|re: *n"), 8, 12,
                             "not a number"),  # placed at the value, where the alias points
    "re_list_with_boolean": (bad("Image|endswith: '\\whoami.exe'", "Image|re|i: ['a', true]"), 8, 27,
                             "not a boolean"),
    "title_int": (bad("title: Whoami", "title: 5"), 1, 8, "title must be a string"),
    "title_list": (bad("title: Whoami", "title: [a, b]"), 1, 8, "title must be a string"),
    "id_int": (bad(f"id: {RID}", "id: 5"), 2, 5, "id must be a string"),
    "id_map": (bad(f"id: {RID}", "id: {a: 1}"), 2, 5, "id must be a string"),
    "detection_missing": (GOOD[: GOOD.index("detection:")] + "level: high\n", 1, 1, "detection"),
    "detection_scalar": (GOOD[: GOOD.index("detection:")] + "detection: 5\n", 6, 12, "detection"),
    "detection_list": (GOOD[: GOOD.index("detection:")] + "detection: [a]\n", 6, 12, "detection"),
    "level_list": (bad("level: high", "level: [high]"), 10, 8, "level"),
    "unknown_modifier": (bad("Image|endswith", "Image|bogus"), 8, 9, "bogus"),
    "bad_regex": (bad("Image|endswith: '\\whoami.exe'", "Image|re: '('"), 8, 19, "("),
    "bad_cidr": (bad("Image|endswith: '\\whoami.exe'", "Ip|cidr: 'zz'"), 8, 18, "zz"),
    # pySigma's messages about a modifier that quote no value: at the key holding the modifier
    "windash_too_many_dashes": (bad("Image|endswith: '\\whoami.exe'", "Image|windash: '-a -b -c -d'"), 8, 9,
                                "at most three"),
    "re_after_another_modifier": (bad("Image|endswith", "Image|expand|re"), 8, 9, "Regular expression modifier"),
    "base64_of_a_wildcard": (bad("Image|endswith: '\\whoami.exe'", "Image|base64: 'a*'"), 8, 9, "Base64"),
    "condition_syntax": (bad("condition: sel", "condition: sel and or sel"), 9, 27, "Expected"),
    "undefined_selection": (bad("condition: sel", "condition: sel and nope"), 9, 16, "nope"),
    "unknown_action": ("action: explode\n---\n" + GOOD, 1, 1, "explode"),
    "action_int": ("action: 5\n---\n" + GOOD, 1, 9, "action must be a string"),
    # found by fuzz/fuzz_sigma.py: pySigma merged a map into a string (AttributeError)
    "global_merges_map_into_string": ("action: global\ntitle: g\nlogsource: {product: windows}\n"
                                      "detection: {sel: {a: b}, condition: sel}\n---\ndetection: oops\n",
                                      6, 12, "is a map in the document merged into this one"),
    # found by fuzz/fuzz_sigma.py: a repeat right after the global document changes the global one
    "repeat_after_global_merges_map_into_string": (
        "action: global\ntitle: g\n---\naction: repeat\ndetection: {a: {b: c}}\nlogsource: {product: x}\n"
        "---\ndetection: oops\n", 8, 12, "is a map"),
    "repeat_merges_map_into_string": (GOOD + "---\naction: repeat\nlevel: {a: 1}\n", 10, 8, "is a map"),
    "alias_bomb": (ALIAS_BOMB + GOOD, 1, 1, "aliases"),
    # column MAX_YAML_DEPTH + 1 where our composer counts first; libyaml >= 0.2.6 (PyYAML 6.0.4)
    # refuses in its scanner at its own limit, 1,000 levels, and the position is that one
    "deep_flow_yaml": (deep(100_000), 1, (MAX_YAML_DEPTH + 1, 1001), "nesting deeper"),
    "deep_block_yaml": ("a:\n" + "".join(" " * i + "- \n" for i in range(1, 60)), None, None, "nesting deeper"),
    "deep_maps_yaml": ("a: " + "{a: " * 5000 + "1" + "}" * 5000, 1, None, "nesting deeper"),
    "tab_indentation": ("title: t\n\tdetection: x\n", 2, 1, "YAML"),
    "invalid_yaml": ("title: [unclosed\n", 2, 1, "YAML"),
    "binary_junk": ("\x00\x01\x02junk\x7f", 1, 1, "YAML"),
    "lone_surrogate_escape": ('title: "\\ud800"\n', 1, 11, "YAML"),
    "impossible_date": (bad("level: high", "date: 2020-13-45"), 10, 7, "month must be in 1..12"),
    "impossible_timestamp": (bad("level: high", "modified: 2020-01-01T10:00:00+99:00"), 10, 11, "offset"),
    "tagged_float": (bad("'\\whoami.exe'", "!!float abc"), 8, 25, "cannot read the value"),
    "tagged_int": (bad("'\\whoami.exe'", "!!int 0x"), 8, 25, "cannot read the value"),
    "python_tag": (bad("'\\whoami.exe'", "!!python/object:os.system x"), 8, 25, "constructor"),
    "only_dashes": ("---\n", None, None, "no Sigma rule"),
    "empty": ("", None, None, "no Sigma rule"),
    "null_document": ("---\n~\n", None, None, "no Sigma rule"),
    "string_document": ("just words\n", 1, 1, "not a string"),
    "scalar_document": ("5\n", 1, 1, "not a number"),
    "list_document": ("- a\n- b\n", 1, 1, "not a list"),
    "deep_list_document": (deep(20), 1, 1, "not a list"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_is_a_positioned_rule_error(name):
    text, line, column, words = CASES[name]
    with pytest.raises(RuleError) as info:
        parse_sigma(text, source=f"{name}.yml")
    e = info.value
    assert f"{name}.yml" in str(e), str(e)
    assert words in str(e), str(e)
    if line is not None:
        assert isinstance(e, RuleSyntaxError), repr(e)
        assert e.source == f"{name}.yml"
        assert e.line == line, str(e)
        if isinstance(column, tuple):
            assert e.column in column, str(e)
        elif column is not None:
            assert e.column == column, str(e)
    # the rule id is known once the YAML reads (not for YAML errors)
    if isinstance(e, RuleSyntaxError) and f"id: {RID}" in text and line is not None and line > 2 \
            and not e.message.startswith("YAML"):
        assert e.rule_id == RID and RID in str(e)


@pytest.mark.parametrize("selection, feature", [("'|cased': [Foo]", "cased keywords"),
                                                ("'|re': 'a.b'", "keywords of type SigmaRegularExpression")])
def test_an_unsupported_keyword_is_placed_at_its_key(selection, feature):
    text = bad("        Image|endswith: '\\whoami.exe'", "        " + selection)
    with pytest.raises(UnsupportedFeature) as info:
        parse_sigma(text, source="kw.yml")
    assert (info.value.feature, info.value.line, info.value.column) == (feature, 8, 9)
    assert "line 8, column 9" in str(info.value)


def test_limits_leave_room_for_real_rules():
    """The limits are far above what rules need: depth just under them loads."""
    cond = "not (" * (MAX_CONDITION_DEPTH // 2) + "sel" + ")" * (MAX_CONDITION_DEPTH // 2)
    assert parse_sigma(bad("condition: sel", f"condition: {cond}"))
    words = " or ".join(["sel"] * ((MAX_CONDITION_TOKENS - 1) // 2))
    assert parse_sigma(bad("condition: sel", f"condition: {words}"))
    nested = "[" * (MAX_YAML_DEPTH - 3) + "x" + "]" * (MAX_YAML_DEPTH - 3)
    assert parse_sigma(GOOD + f"x-extra: {nested}\n")


def test_pysigma_errors_keep_their_message_and_rule_id():
    with pytest.raises(RuleSyntaxError) as info:
        parse_sigma(bad("level: high", "level: extreme"), source="r.yml")
    assert info.value.rule_id == RID and "extreme" in str(info.value)
    assert (info.value.line, info.value.column) == (10, 8)


def test_second_document_error_is_placed_in_it():
    text = GOOD + "---\n" + bad("condition: sel", "condition: 5").replace(RID, RID[:-1] + "5")
    with pytest.raises(RuleSyntaxError) as info:
        parse_sigma(text, source="two.yml")
    assert info.value.line == GOOD.count("\n") + 1 + 9
    assert info.value.rule_id == RID[:-1] + "5"


def test_global_action_error_points_into_the_global_document():
    text = "action: global\ntitle: [not, a, string]\nlogsource: {product: windows}\n---\n" + \
        "detection:\n  sel: {a: b}\n  condition: sel\n"
    with pytest.raises(RuleSyntaxError) as info:
        parse_sigma(text, source="g.yml")
    assert (info.value.line, info.value.column) == (2, 8)


def test_load_and_tree_report_every_bad_file(tmp_path):
    for name, (text, *_rest) in CASES.items():
        (tmp_path / f"{name}.yml").write_text(text, encoding="utf-8")
    (tmp_path / "good.yml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "latin1.yml").write_bytes(b"title: caf\xe9\n")
    with pytest.raises(RuleError):
        matcher.load(tmp_path / "condition_int.yml")
    tree = load_sigma_tree(tmp_path)
    assert tree.files == len(CASES) + 2
    assert [r.id for r in tree.rules] == [RID]
    assert sorted(Path(n).stem for n, _ in tree.failures) == sorted([*CASES, "latin1"])
    assert all(isinstance(e, RuleError) for _, e in tree.failures)


@pytest.mark.parametrize("suffix", [".yml", ".md", ".s1ql", ".jsonl"])
def test_a_fifo_is_reported_not_read(tmp_path, suffix):
    """A FIFO named like a rule file of any kind is a RuleError, through the API and through
    `matcher check` (which reports it beside the good rule and exits 1), never a hang."""
    d = tmp_path / "rules"
    d.mkdir()
    fifo = d / f"pipe{suffix}"
    os.mkfifo(fifo)
    (d / "good.yml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(RuleError, match="not a regular file"):
        matcher.load_rules(fifo)
    proc = run(str(fifo), str(d / "good.yml"), command="check")
    no_traceback(proc)
    assert proc.returncode == 1 and f"pipe{suffix}: cannot read rule file: not a regular file" in err(proc)


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def rule_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    for name, (text, *_rest) in CASES.items():
        (d / f"{name}.yml").write_text(text, encoding="utf-8")
    (d / "good.yml").write_text(GOOD, encoding="utf-8")
    return d


def test_check_reports_every_bad_file_and_goes_on(rule_dir):
    proc = run(str(rule_dir), command="check")
    no_traceback(proc)
    assert proc.returncode == 1, err(proc)
    text = err(proc)
    for name, (_t, line, _c, _w) in CASES.items():
        assert f"{name}.yml" in text, name
        if line is not None:
            assert f"{name}.yml:line {line}," in text, name
    assert f"1 rule(s) ok, {len(CASES)} error(s)" in text


def test_scan_stops_on_bad_rules_or_skips_them_counted(rule_dir, tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_text('{"EventType": "Process Creation", "EndpointOS": "windows", '
                      '"TgtProcImagePath": "C:\\\\Windows\\\\whoami.exe"}\n', encoding="utf-8")
    proc = run("-r", str(rule_dir), str(events))
    no_traceback(proc)
    assert proc.returncode == 2 and f"{len(CASES)} rule error(s)" in err(proc)
    assert proc.stdout == b""
    proc = run("-r", str(rule_dir), "--skip-bad-rules", str(events))
    no_traceback(proc)
    assert proc.returncode == 0, err(proc)
    assert RID.encode() in proc.stdout
    assert "deep_flow_yaml.yml" in err(proc)


# -- members of the class found by mutation ----------------------------------------------------

_HOSTILE = st.one_of(
    st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=20),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.recursive(st.text(max_size=3), lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=3), c, max_size=2),
                 max_leaves=6),
    st.sampled_from(["not " * 40 + "sel", "(" * 40 + "x" + ")" * 40, "1 of them", "all of sel*", "sel |",
                     "Image|re", "Image|base64offset|contains", "Image|expand", "|", "*", "?", "\\", ""]),
)


def _sample_rules(k: int = 200) -> list[str]:
    files = sorted(sigma_rules_path().rglob("*.yml"))
    return [p.read_text(encoding="utf-8") for p in random.Random(11).sample(files, min(k, len(files)))]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _assert_only_rule_errors(text: str) -> None:
    try:
        rules = parse_sigma(text, source="mutant.yml")
    except RuleError as e:
        # a crash inside pySigma is turned into a RuleError at the boundary, but keeps its cause:
        # each is a case the loader's own checks should name precisely
        assert e.__cause__ is None or isinstance(e.__cause__, SigmaError), repr(e.__cause__)
        return
    try:
        matcher.RuleSet(rules)
    except MatcherError:
        pass


_SIGMAHQ: list = []


def _sigmahq() -> list:
    """The sampled rules as documents, read once (a module list, not a fixture: hypothesis prints a
    failing case's arguments, and 200 rules make a 250 kB repr that it refuses with a warning)."""
    if not _SIGMAHQ:
        _SIGMAHQ.extend(yaml.safe_load(t) for t in _sample_rules())
    return _SIGMAHQ


_KEYS = st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=12))


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(which=st.integers(0, 1 << 16),
       plan=st.lists(st.tuples(st.integers(0, 1 << 16), st.booleans(), _KEYS, _HOSTILE), min_size=1, max_size=3))
def test_mutated_sigmahq_rules_fail_cleanly(which, plan):
    """Replace one node of a real rule (any depth: metadata, selections, values, conditions,
    field names) with a hostile value, or rename its key; the loader returns rules or raises a
    RuleError."""
    sigmahq = _sigmahq()
    doc = yaml.safe_load(yaml.safe_dump(sigmahq[which % len(sigmahq)]))
    for where, rename, key, value in plan:
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = paths[where % len(paths)]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if rename and isinstance(parent, dict):
            parent[key] = parent.pop(path[-1])
        else:
            parent[path[-1]] = value
    _assert_only_rule_errors(yaml.safe_dump(doc, sort_keys=False))


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_text_mutations_of_sigmahq_rules_fail_cleanly(data):
    """Cut, repeat, splice bytes of a real rule's text: YAML errors and rule errors only."""
    texts = _TEXTS or _TEXTS.extend(_sample_rules(100)) or _TEXTS
    text = data.draw(st.sampled_from(texts))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 40)))
        how = data.draw(st.sampled_from(["cut", "repeat", "insert"]))
        if how == "cut":
            text = text[:i] + text[j:]
        elif how == "repeat":
            text = text[:j] + text[i:j] * data.draw(st.integers(2, 50)) + text[j:]
        else:
            text = text[:i] + data.draw(st.sampled_from(["\t", "&a ", "*a", "- ", "{", "[", "]", ": ", "'", '"',
                                                         "!!binary ", "!!python/object ", "<<: ", "\x00", "\n  ",
                                                         "\\ud800", "---\n", "? "])) + text[i:]
    _assert_only_rule_errors(text)


_TEXTS: list[str] = []
