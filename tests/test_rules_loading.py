"""Rules: rule cards, bare query files, built-ins, ids and RuleSet bookkeeping."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

import matcher
from matcher import MatcherError, QuerySyntaxError, RuleError, RuleSet, ir
from matcher.ir import Op, Pred
from matcher.s1ql import parse

ROOT = Path(__file__).resolve().parent.parent
SEED_STEM = "proc_creation_win_webshell_susp_process_spawned_from_webserver"
SEED_CARD = ROOT / "matcher" / "data" / f"{SEED_STEM}.md"
SEED_ID = "8202070f-edeb-4d31-a010-a26c72ac5600"


@pytest.fixture(scope="module")
def seed() -> matcher.Rule:
    return matcher.load(SEED_CARD)


# -- the seed card -------------------------------------------------------------------------------


def test_seed_metadata(seed):
    assert seed.id == SEED_ID
    assert seed.title == "Suspicious Process By Web Server Process"
    assert "Florian Roth" in seed.author
    assert "Thomas Patzke" in seed.author
    info = seed.info
    assert info.date == "2019-01-16"
    assert "attack.t1505.003" in info.tags
    assert set(info.tags) == {"attack.persistence", "attack.t1505.003", "attack.t1190"}
    assert info.description.startswith("Detects potentially suspicious processes being spawned by a web server")
    assert info.references == (
        "https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF",
    )
    assert info.falsepositives == ("Particular web applications may spawn a shell process legitimately",)
    assert info.source is not None and info.source.endswith(f"{SEED_STEM}.md")


def test_seed_query_and_ir(seed):
    assert seed.ir == parse(seed.source_query)
    assert seed.source_query.startswith('EventType = "Process Creation" AND (EndpointOS = "windows"')
    assert seed.source_query.endswith(')))))')
    assert parse(seed.query) == seed.ir  # canonical text reads back


def test_seed_matches_a_webshell_spawn_and_not_a_benign_event(seed):
    hit = {
        "EventType": "Process Creation",
        "EndpointOS": "windows",
        "SrcProcImagePath": "C:\\Windows\\System32\\inetsrv\\W3WP.EXE",
        "TgtProcImagePath": "C:\\Windows\\System32\\cmd.exe",
        "TgtProcCmdLine": "cmd /c whoami",
    }
    assert seed.match(hit)
    assert not seed.match({**hit, "TgtProcImagePath": "C:\\Windows\\notepad.exe"})
    assert not seed.match({**hit, "EndpointOS": "linux"})


# -- built-ins -----------------------------------------------------------------------------------


def test_builtin_by_alias_id_and_stem_agree(seed):
    by_alias = matcher.builtin("flagship")
    by_default = matcher.builtin()
    by_id = matcher.builtin(SEED_ID)
    by_stem = matcher.builtin(SEED_STEM)
    assert by_alias == by_id == by_stem == by_default
    assert by_alias.id == SEED_ID
    assert by_alias.ir == seed.ir
    assert by_alias.title == seed.title
    assert by_alias.info.tags == seed.info.tags
    assert SEED_STEM in matcher.builtin_names()


def test_unknown_builtin_raises_rule_error():
    with pytest.raises(RuleError) as info:
        matcher.builtin("no-such-rule")
    assert isinstance(info.value, MatcherError)
    assert "no-such-rule" in str(info.value)


# -- cards without a query, bare query files -----------------------------------------------------

CARD_WITHOUT_QUERY = """# some_rule

## Title
Some rule

## ID
aaaaaaaa-0000-0000-0000-000000000000

## Description
No query here.
"""


def test_card_without_query_section_raises_rule_error(tmp_path):
    path = tmp_path / "some_rule.md"
    path.write_text(CARD_WITHOUT_QUERY, encoding="utf-8")
    with pytest.raises(RuleError):
        matcher.load(path)


def test_card_with_query_section_but_no_fence_raises_rule_error(tmp_path):
    path = tmp_path / "some_rule.md"
    path.write_text(CARD_WITHOUT_QUERY + "\n## SentinelOne Query\nTgtProcCmdLine containsCIS \"x\"\n", encoding="utf-8")
    with pytest.raises(RuleError):
        matcher.load(path)


def test_missing_file_raises_rule_error(tmp_path):
    with pytest.raises(RuleError):
        matcher.load(tmp_path / "nope.s1ql")


def test_minimal_card(tmp_path):
    card = (
        "# my_rule\n\n## Title\nMy rule\n\n## ID\nmy-id\n\n## Tags\na.b, c.d\n\n"
        "## SentinelOne Query\n```s1ql\nTgtProcCmdLine containsCIS \"x\"\n```\n"
    )
    path = tmp_path / "my_rule.md"
    path.write_text(card, encoding="utf-8")
    rule = matcher.load(path)
    assert (rule.id, rule.title) == ("my-id", "My rule")
    assert rule.info.tags == ("a.b", "c.d")
    assert rule.ir == Pred("TgtProcCmdLine", Op.CONTAINS, "x")


def test_bare_query_file_gets_the_file_stem_as_id(tmp_path):
    path = tmp_path / "detect_cmd.s1ql"
    path.write_text('TgtProcImagePath endswithCIS "\\cmd.exe"\n', encoding="utf-8")
    rule = matcher.load(path)
    assert rule.id == "detect_cmd"
    assert rule.ir == Pred("TgtProcImagePath", Op.ENDSWITH, "\\cmd.exe")
    assert rule.match({"TgtProcImagePath": "C:\\Windows\\System32\\CMD.EXE"})


def test_bare_query_file_with_syntax_error(tmp_path):
    path = tmp_path / "bad.s1ql"
    path.write_text("TgtProcImagePath endswithCIS", encoding="utf-8")
    with pytest.raises(QuerySyntaxError):
        matcher.load(path)


# -- compile: ids --------------------------------------------------------------------------------

Q1 = 'TgtProcCmdLine containsCIS "whoami"'
Q2 = 'TgtProcCmdLine containsCIS "whoami" OR TgtProcCmdLine containsCIS "net user"'


def test_compile_default_id_is_stable():
    a, b = matcher.compile(Q1), matcher.compile(Q1)
    assert a.id == b.id
    assert a.id and isinstance(a.id, str)
    assert matcher.compile(Q2).id != a.id
    assert a.title == a.id  # no title given
    assert a == b


def test_compile_default_id_is_stable_across_processes():
    code = f"import matcher; print(matcher.compile({Q1!r}).id)"
    ids = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        # run outside the checkout: `-c` puts the working directory first on sys.path
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                             cwd=tempfile.gettempdir())
        ids.add(out.stdout.strip())
    assert ids == {matcher.compile(Q1).id}


def test_compile_explicit_id_and_title():
    rule = matcher.compile(Q1, id="r1", title="Whoami")
    assert (rule.id, rule.title) == ("r1", "Whoami")
    assert rule.source_query == Q1
    assert rule.query == Q1


def test_compile_keeps_ir_valid():
    rule = matcher.compile(Q2)
    ir.validate(rule.ir)
    assert rule.ir == ir.or_(Pred("TgtProcCmdLine", Op.CONTAINS, "whoami"), Pred("TgtProcCmdLine", Op.CONTAINS, "net user"))


# -- RuleSet -------------------------------------------------------------------------------------


def test_ruleset_rejects_duplicate_ids():
    with pytest.raises(MatcherError):
        RuleSet([matcher.compile(Q1, id="dup"), matcher.compile(Q2, id="dup")])
    with pytest.raises(MatcherError):
        RuleSet([Q1, Q1])  # the same text twice gets the same default id
    with pytest.raises(MatcherError):
        RuleSet([matcher.builtin("flagship"), matcher.load(SEED_CARD)])


def test_ruleset_with_distinct_ids():
    rs = RuleSet([matcher.compile(Q1, id="a"), matcher.compile(Q2, id="b")])
    assert len(rs) == 2
    assert rs.match({"TgtProcCmdLine": "NET USER admin"}) == ["b"]
    assert rs.match({"TgtProcCmdLine": "whoami /all"}) == ["a", "b"]
