"""Sigma semantics (docs/sigma.md), feature by feature: the expected verdicts are written
out, and the compiled core, the reference evaluator and the Arrow path must all give them."""

from __future__ import annotations

import textwrap

import pyarrow as pa
import pytest

import matcher
from matcher import reference
from matcher.errors import QuerySyntaxError, RuleError, UnsupportedFeature
from matcher.ir import Op, walk_preds
from matcher.sigma import parse_sigma


def sigma(detection: str, *, logsource: str = "category: process_creation\n  product: windows", **head) -> matcher.Rule:
    extra = "".join(f"{k}: {v}\n" for k, v in head.items())
    text = (
        "title: t\nid: 11111111-2222-3333-4444-555555555555\nstatus: test\n"
        f"{extra}logsource:\n  {logsource}\ndetection:\n"
        + textwrap.indent(textwrap.dedent(detection).strip(), "  ")
        + "\n"
    )
    (rule,) = parse_sigma(text, source="test.yml")
    return rule


def verdicts(rule: matcher.Rule, events: list[dict]) -> list[bool]:
    """The core's verdicts, checked against the reference and the Arrow path on the way."""
    core = [rule.match(e) for e in events]
    ref = [reference.evaluate(rule, e) for e in events]
    assert core == ref
    assert rule.match_many(events).tolist() == core
    return core


CASES = [
    # (detection, events, expected)
    (
        "sel:\n  Image: 'C:\\Windows\\cmd.exe'\ncondition: sel",
        [{"Image": "c:\\windows\\CMD.EXE"}, {"Image": "c:\\windows\\cmd.exe.bak"}, {}],
        [True, False, False],
    ),
    (
        "sel:\n  Image|endswith: '\\cmd.exe'\ncondition: sel",
        [{"Image": "C:\\X\\CMD.exe"}, {"Image": "cmd.exe"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|contains|all: [' -enc ', 'bypass']\ncondition: sel",
        [{"CommandLine": "x -ENC y BYPASS"}, {"CommandLine": "x -enc y"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|startswith: ['a', 'b']\ncondition: sel",
        [{"CommandLine": "Bcd"}, {"CommandLine": "cab"}],
        [True, False],
    ),
    # ? is exactly one character, * any run; \* \? \\ are literal
    (
        "sel:\n  Image: 'c:\\a?c*.exe'\ncondition: sel",
        [{"Image": "C:\\ABC.exe"}, {"Image": "c:\\abcdef.EXE"}, {"Image": "c:\\ac.exe"}],
        [True, True, False],
    ),
    (
        "sel:\n  CommandLine: 'a\\*b\\?c'\ncondition: sel",
        [{"CommandLine": "a*b?c"}, {"CommandLine": "axb?c"}, {"CommandLine": "a*bxc"}],
        [True, False, False],
    ),
    (
        "sel:\n  CommandLine: 'a\\\\*'\ncondition: sel",
        [{"CommandLine": "a\\zzz"}, {"CommandLine": "a\\"}, {"CommandLine": "az"}],
        [True, True, False],
    ),
    ("sel:\n  CommandLine: '*'\ncondition: sel", [{"CommandLine": ""}, {"CommandLine": "x"}, {}], [True, True, False]),
    # cased: case-sensitive, wildcards kept
    (
        "sel:\n  CommandLine|cased|contains: 'AbC'\ncondition: sel",
        [{"CommandLine": "xAbCx"}, {"CommandLine": "xabcx"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|cased: 'A?c*'\ncondition: sel",
        [{"CommandLine": "Abcd"}, {"CommandLine": "abcd"}, {"CommandLine": "A\ncd"}],
        [True, False, True],
    ),
    # re with flags
    (
        "sel:\n  CommandLine|re: '^ab.c$'\ncondition: sel",
        [{"CommandLine": "abxc"}, {"CommandLine": "ABxC"}, {"CommandLine": "ab\nc"}],
        [True, False, False],
    ),
    (
        "sel:\n  CommandLine|re|i: '^ab.c$'\ncondition: sel",
        [{"CommandLine": "ABxC"}, {"CommandLine": "ab\nc"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|re|s: '^ab.c$'\ncondition: sel",
        [{"CommandLine": "ab\nc"}, {"CommandLine": "ABxC"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|re|m: '^c$'\ncondition: sel",
        [{"CommandLine": "ab\nc\nd"}, {"CommandLine": "abc"}],
        [True, False],
    ),
    # cidr: real membership, IPv4 and IPv6
    (
        "sel:\n  DestinationIp|cidr: ['10.0.0.0/8', 'fe80::/10']\ncondition: sel",
        [
            {"DestinationIp": "10.200.1.1"},
            {"DestinationIp": "100.0.0.1"},
            {"DestinationIp": "FE80::1"},
            {"DestinationIp": "fec0::1"},
            {"DestinationIp": "10.0.0"},
            {"DestinationIp": "::ffff:10.0.0.1"},
        ],
        [True, False, True, False, False, False],
    ),
    (
        "sel:\n  DestinationIp|cidr: '192.168.0.0/23'\ncondition: sel",
        [{"DestinationIp": "192.168.1.255"}, {"DestinationIp": "192.168.2.0"}],
        [True, False],
    ),
    # dotted names walk into lists of objects: any connection's ip (docs/semantics.md)
    (
        "sel:\n  connections.ip|cidr: '10.0.0.0/8'\ncondition: sel",
        [
            {"connections": [{"ip": "8.8.8.8"}, {"ip": "10.1.2.3"}]},
            {"connections": [{"ip": "8.8.8.8"}, {"port": "10.1.2.3"}, "10.1.2.3"]},
            {"connections": {"ip": ["8.8.8.8", "10.1.2.3"]}},
            {"connections": [{"ip": ["10.1.2.3"]}]},  # a reached list gives no text
            {"connections.ip": "8.8.8.8", "connections": [{"ip": "10.1.2.3"}]},  # exact key first
        ],
        [True, False, True, False, False],
    ),
    (
        "sel:\n  connections.ip|cidr: '10.0.0.0/8'\n  connections.port: 22\ncondition: sel",
        [
            {"connections": [{"ip": "10.1.2.3", "port": 80}, {"ip": "8.8.8.8", "port": 22}]},
            {"connections": [{"ip": "10.1.2.3", "port": 80}]},
        ],
        [True, False],  # a field is one multi-valued field: the values may come from two objects
    ),
    (
        "sel:\n  connections.src|fieldref: connections.dst\ncondition: sel",
        [
            {"connections": [{"src": "a", "dst": "b"}, {"src": "c", "dst": "A"}]},
            {"connections": [{"src": "a", "dst": "b"}]},
        ],
        [True, False],
    ),
    # windash: - / and the three Unicode dashes
    (
        "sel:\n  CommandLine|windash|contains: ' -f '\ncondition: sel",
        [
            {"CommandLine": "x /f y"},
            {"CommandLine": "x \u2013f y"},
            {"CommandLine": "x \u2015f y"},
            {"CommandLine": "x -f y"},
            {"CommandLine": "x _f y"},
        ],
        [True, True, True, True, False],
    ),
    # base64offset: the value at any of the three alignments; base64; wide
    (
        "sel:\n  CommandLine|base64offset|contains: 'http://'\ncondition: sel",
        [
            {"CommandLine": "aHR0cDovL"},
            {"CommandLine": "xodHRwOi8v"},
            {"CommandLine": "odHRwOi8v"},
            {"CommandLine": "odHRwOi9v"},
        ],
        [True, True, True, False],
    ),
    (
        "sel:\n  CommandLine|base64: 'abc'\ncondition: sel",
        [{"CommandLine": "YWJj"}, {"CommandLine": "abc"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|wide|contains: 'ab'\ncondition: sel",
        [{"CommandLine": "xa\x00b\x00"}, {"CommandLine": "ab"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|utf16be|contains: 'ab'\ncondition: sel",
        [{"CommandLine": "\x00a\x00b"}, {"CommandLine": "ab"}],
        [True, False],
    ),
    # exists, null, numbers, booleans, comparisons
    ("sel:\n  User|exists: true\ncondition: sel", [{"User": ""}, {"User": None}, {}], [True, False, False]),
    ("sel:\n  User|exists: false\ncondition: sel", [{"User": ""}, {}], [False, True]),
    (
        "sel:\n  User: null\ncondition: sel",
        [{"User": ""}, {}, {"User": None}, {"User": "x"}],
        [True, True, True, False],
    ),
    ("sel:\n  User: ''\ncondition: sel", [{"User": ""}, {}], [True, False]),
    (
        "sel:\n  EventID: 4688\ncondition: sel",
        [{"EventID": 4688}, {"EventID": "4688"}, {"EventID": 46}],
        [True, True, False],
    ),
    (
        "sel:\n  Enabled: true\ncondition: sel",
        [{"Enabled": True}, {"Enabled": "TRUE"}, {"Enabled": False}],
        [True, True, False],
    ),
    ("sel:\n  Size|gt: 10\ncondition: sel", [{"Size": 11}, {"Size": "10"}, {"Size": "x"}], [True, False, False]),
    ("sel:\n  Size|gte: 10\ncondition: sel", [{"Size": 10}, {"Size": 9.5}], [True, False]),
    ("sel:\n  Size|lt: 10\ncondition: sel", [{"Size": "9"}, {"Size": 10}], [True, False]),
    ("sel:\n  Size|lte: 10\ncondition: sel", [{"Size": "10.0"}, {"Size": 11}], [True, False]),
    # fieldref (case-insensitive equality / contains / ...)
    (
        "sel:\n  Image|fieldref: ParentImage\ncondition: sel",
        [{"Image": "C:\\A.exe", "ParentImage": "c:\\a.EXE"}, {"Image": "x", "ParentImage": "y"}, {"Image": "x"}],
        [True, False, False],
    ),
    (
        "sel:\n  CommandLine|fieldref|contains: Image\ncondition: sel",
        [{"CommandLine": "run C:\\A.exe now", "Image": "c:\\a.exe"}, {"CommandLine": "x", "Image": "c:\\a.exe"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|fieldref|startswith: Image\ncondition: sel",
        [{"CommandLine": "a.exe x", "Image": "A.EXE"}, {"CommandLine": "x a.exe", "Image": "a.exe"}],
        [True, False],
    ),
    (
        "sel:\n  CommandLine|fieldref|endswith: Image\ncondition: sel",
        [{"CommandLine": "x a.exe", "Image": "A.EXE"}, {"CommandLine": "a.exe x", "Image": "a.exe"}],
        [True, False],
    ),
    # keywords: any string value anywhere in the event, case-insensitive, contains
    (
        "keywords:\n  - 'mimikatz'\n  - 'sekur?sa'\ncondition: keywords",
        [{"a": "x MIMIKATZ y"}, {"n": {"deep": ["q", "sekurlsa::x"]}}, {"a": 5, "b": "sekursa"}, {}],
        [True, True, False, False],
    ),
    (
        "keywords:\n  '|all':\n    - 'foo'\n    - 'bar'\ncondition: keywords",
        [{"a": "foo", "b": "BAR"}, {"a": "foo"}],
        [True, False],
    ),
    # conditions: not, and/or precedence, parentheses, 1 of / all of / them, patterns
    (
        "sel1:\n  A: x\nsel2:\n  B: y\nfilter:\n  C: z\ncondition: 1 of sel* and not filter",
        [{"A": "x"}, {"B": "y", "C": "z"}, {"C": "z"}],
        [True, False, False],
    ),
    ("sel1:\n  A: x\nsel2:\n  B: y\ncondition: all of sel*", [{"A": "x", "B": "y"}, {"A": "x"}], [True, False]),
    ("sel1:\n  A: x\nsel2:\n  B: y\ncondition: 1 of them", [{"B": "Y"}, {}], [True, False]),
    (
        "a:\n  A: x\nb:\n  B: y\nc:\n  C: z\ncondition: a or b and c",
        [{"A": "x"}, {"B": "y"}, {"B": "y", "C": "z"}],
        [True, False, True],
    ),
    (
        "a:\n  A: x\nb:\n  B: y\nc:\n  C: z\ncondition: (a or b) and not c",
        [{"A": "x"}, {"A": "x", "C": "z"}],
        [True, False],
    ),
    # a list of maps is an OR of ANDs
    (
        "sel:\n  - A: x\n    B: y\n  - C: z\ncondition: sel",
        [{"A": "x", "B": "y"}, {"A": "x"}, {"C": "Z"}],
        [True, False, True],
    ),
    # several conditions are OR-ed
    ("a:\n  A: x\nb:\n  B: y\ncondition:\n  - a\n  - b", [{"B": "y"}, {}], [True, False]),
]


@pytest.mark.parametrize("detection,events,expected", CASES, ids=[c[0].split("\n")[1].strip()[:40] for c in CASES])
def test_sigma_feature(detection, events, expected):
    rule = sigma(detection)
    assert verdicts(rule, events) == expected


def test_keyword_and_fieldref_on_arrow():
    rules = matcher.RuleSet(
        [
            sigma("k:\n  - 'needle'\ncondition: k"),
            parse_sigma(sigma("s:\n  Image|fieldref: ParentImage\ncondition: s").source_query.replace("1111", "2222"))[
                0
            ],
        ]
    )
    events = [
        {"Image": "a", "ParentImage": "A", "x": "hay"},
        {"Image": "a", "ParentImage": "b", "x": "NEEDLE"},
        {"Image": None, "ParentImage": None, "x": None},
    ]
    table = pa.Table.from_pylist(events)
    got = sorted(rules.scan_arrow(table))
    want = sorted((i, r.id) for i, e in enumerate(events) for r in rules if reference.evaluate(r, e))
    assert got == want == sorted(rules.scan(events))
    assert len(want) == 2


def test_metadata_is_kept():
    rule = sigma(
        "sel:\n  Image|endswith: '\\x.exe'\ncondition: sel",
        author="Jane Doe",
        level="high",
        tags="\n  - attack.execution\n  - attack.t1059",
        references="\n  - https://example.org/a",
        falsepositives="\n  - Admins",
        description="Finds x.",
    )
    assert rule.id == "11111111-2222-3333-4444-555555555555"
    assert (rule.title, rule.level, rule.author) == ("t", "high", "Jane Doe")
    assert rule.info.tags == ("attack.execution", "attack.t1059")
    assert rule.info.references == ("https://example.org/a",)
    assert rule.info.falsepositives == ("Admins",)
    assert rule.info.description == "Finds x."
    assert rule.info.extra["status"] == "test"
    assert rule.info.extra["logsource"] == {"category": "process_creation", "product": "windows"}
    assert rule.info.source == "test.yml"


def test_lowering_uses_the_cheap_ops():
    ops = {
        p.op
        for p in walk_preds(
            sigma(
                "sel:\n  A: x\n  B|contains: y\n  C|startswith: z\n  D|endswith: w\n  E: 'a*b'\n  F: '*'\n"
                "condition: sel"
            ).ir
        )
    }
    assert ops == {Op.EQUALS, Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.GLOB, Op.EXISTS}


def test_multi_document_file_and_load(tmp_path):
    one = sigma("sel:\n  A: x\ncondition: sel").source_query
    two = one.replace("11111111", "22222222")
    (tmp_path / "one.yml").write_text(one)
    (tmp_path / "two.yaml").write_text(one + "---\n" + two)
    r1 = matcher.load(tmp_path / "one.yml", profile="sysmon")
    assert isinstance(r1, matcher.Rule) and r1.match({"A": "X", "EventID": 1})
    assert not r1.match({"A": "X"})  # routed: a Sysmon process creation event is EventID 1
    both = matcher.load(tmp_path / "two.yaml", profile="sysmon")
    assert [r.id[:8] for r in both] == ["11111111", "22222222"]
    only = matcher.load(tmp_path / "two.yaml", logsource={"category": "process_creation"})
    assert len(only) == 2
    assert matcher.load(tmp_path / "two.yaml", logsource={"category": "file_event"}) == []
    s1 = matcher.load(tmp_path / "one.yml")  # S1 names and the logsource's conditions by default
    assert s1.match({"A": "x", "EventType": "Process Creation", "EndpointOS": "windows"})
    assert not s1.match({"A": "x", "EventType": "File Creation", "EndpointOS": "windows"})


def test_s1_profile_maps_fields_per_category():
    text = sigma(
        "sel:\n  Image|endswith: '\\a.exe'\ncondition: sel", logsource="category: file_event\n  product: windows"
    ).source_query
    (rule,) = parse_sigma(text, profile="s1")
    assert {p.field for p in walk_preds(rule.ir)} == {"SrcProcImagePath", "ObjectType", "EndpointOS"}
    (rule,) = parse_sigma(text.replace("file_event", "process_creation"), profile="s1")
    assert {p.field for p in walk_preds(rule.ir)} == {"TgtProcImagePath", "EventType", "EndpointOS"}


def test_yaml_syntax_error_has_line_column_and_caret():
    with pytest.raises(QuerySyntaxError) as e:
        parse_sigma("title: t\nlogsource:\n  product: x\ndetection: [a\n  condition: x\n", source="bad.yml")
    assert e.value.line >= 4 and e.value.column >= 1
    assert "bad.yml" in str(e.value) and "^" in str(e.value)


@pytest.mark.parametrize(
    "detection,feature",
    [
        ("sel:\n  A|expand: '%x%'\ncondition: sel", "placeholders"),
        ("k:\n  - '|cased': 'X'\ncondition: k", "cased keywords"),
    ],
)
def test_unsupported_features_are_named(detection, feature):
    with pytest.raises(UnsupportedFeature) as e:
        sigma(detection)
    assert feature in e.value.feature and "test.yml" in str(e.value)
    assert isinstance(e.value, matcher.MatcherError)


def test_correlation_rules_load_as_correlations():  # their semantics: tests/test_correlation*.py
    text = (
        "title: c\nid: 33333333-2222-3333-4444-555555555555\ncorrelation:\n  type: event_count\n"
        "  rules: [r]\n  group-by: [User]\n  timespan: 1h\n  condition:\n    gte: 10\n"
    )
    (c,) = parse_sigma(text, source="corr.yml")
    assert isinstance(c, matcher.Correlation) and c.type == "event_count" and c.info.source == "corr.yml"


@pytest.mark.parametrize(
    "detection",
    [
        "sel:\n  A|nosuchmodifier: x\ncondition: sel",
        "sel:\n  A: x\ncondition: sel and nothere",
        "sel:\n  A: x\ncondition: sel and (",
        "sel:\n  A|cidr: 'not-a-net'\ncondition: sel",
        "sel:\n  A|re: '(unclosed'\ncondition: sel",
    ],
)
def test_bad_rules_are_rule_errors(detection):
    with pytest.raises(RuleError) as e:
        sigma(detection)
    assert "test.yml" in str(e.value)


def test_whole_event_predicates_over_many_arrow_rows():
    """Past the first rows, the API converts the whole batch once: same verdicts throughout."""
    rules = matcher.RuleSet(
        [
            sigma("k:\n  - 'needle'\ncondition: k"),
            parse_sigma(sigma("s:\n  Image|fieldref: ParentImage\ncondition: s").source_query.replace("1111", "2222"))[0],
        ]
    )
    events = [
        {"Image": f"p{i % 7}", "ParentImage": f"P{i % 5}", "x": "NEEDLE" if i % 3 == 0 else "hay"}
        for i in range(300)
    ]
    table = pa.Table.from_pylist(events)
    want = sorted((i, r.id) for i, e in enumerate(events) for r in rules if reference.evaluate(r, e))
    assert sorted(rules.scan_arrow(table)) == want == sorted(rules.scan(events))
    assert sorted(rules.scan_arrow(table.to_batches(max_chunksize=40)[0])) == [w for w in want if w[0] < 40]
