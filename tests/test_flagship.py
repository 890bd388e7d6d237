"""The flagship rule: Suspicious Process By Web Server Process (8202070f-...).

Every verdict is computed by the reference evaluator (the oracle), the compiled core
(``rule.match``), ``rule.match_many`` and ``rule.match_arrow``; all must give the expected
verdict. The rule text is in
``matcher/data/proc_creation_win_webshell_susp_process_spawned_from_webserver.md``.
"""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest

import matcher
from helpers import arrow_table, engines, short
from matcher import datasets, reference
from matcher.ir import Op, Pred

RULE_ID = "8202070f-edeb-4d31-a010-a26c72ac5600"

WEB_PARENTS = {
    "w3wp": "C:\\inetpub\\w3wp.exe",
    "w3wp-inetsrv": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
    "httpd": "C:\\Apache24\\bin\\httpd.exe",
    "nginx": "C:\\nginx\\nginx.exe",
    "php-cgi": "C:\\php\\php-cgi.exe",
    "php": "C:\\php\\php.exe",
    "caddy": "C:\\caddy\\caddy.exe",
    "tomcat": "C:\\Tomcat\\bin\\tomcat.exe",
    "UMWorkerProcess": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\UMWorkerProcess.exe",
    "ws_TomcatService": "C:\\Program Files\\ws_TomcatService.exe",
}

CHILDREN = [
    "arp.exe", "at.exe", "bash.exe", "bitsadmin.exe", "certutil.exe", "cmd.exe", "cscript.exe",
    "dsget.exe", "hostname.exe", "nbtstat.exe", "net.exe", "net1.exe", "netdom.exe", "netsh.exe",
    "nltest.exe", "ntdsutil.exe", "powershell_ise.exe", "powershell.exe", "pwsh.exe",
    "qprocess.exe", "query.exe", "qwinsta.exe", "reg.exe", "rundll32.exe", "sc.exe", "sh.exe",
    "wmic.exe", "wscript.exe", "wusa.exe",
]

# Exclusion 1, copied from the card: in the S1QL text `\"Plus` is an escaped quote, so the
# value holds a literal `"` before `Plus`.
EXCLUSION_1_SUFFIX = (
    'Windows\\system32\\cmd.exe /c C:\\ManageEngine\\ADManager "Plus\\ES\\bin\\elasticsearch.bat '
    "-Enode.name=RMP-NODE1 -pelasticsearch-pid.txt"
)
EXCLUSION_1_CMDLINE = "C:\\" + EXCLUSION_1_SUFFIX
TOMCAT_JAVA = "C:\\ManageEngine\\ADManager Plus\\tomcat\\bin\\java.exe"  # tomcat branch 1
TOMCAT_JAVAW = "C:\\ManageEngine\\ADManager Plus\\tomcat\\bin\\javaw.exe"
CMD = "C:\\Windows\\System32\\cmd.exe"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def rule():
    return matcher.builtin("flagship")


def verdicts(rule, event) -> bool:
    """All engines must agree; return the verdict."""
    v = engines(rule, event)
    assert len(set(v.values())) == 1, f"engines disagree on {short(event)}: {v}"
    return v["reference"]


def check(rule, event, expected: bool) -> None:
    v = engines(rule, event)
    wrong = {k: x for k, x in v.items() if x != expected}
    assert not wrong, f"flagship on {short(event)}: expected {expected}, got {v}"


def event(parent, child, **extra):
    ev = {
        "EventType": "Process Creation",
        "EndpointOS": "windows",
        "SrcProcImagePath": parent,
        "SrcProcCmdLine": f'"{parent}" -k',
        "TgtProcImagePath": child,
        "TgtProcCmdLine": f"{child} /c whoami",
    }
    for k, v in extra.items():
        if v is _DROP:
            ev.pop(k, None)
        else:
            ev[k] = v
    return ev


_DROP = object()


# --------------------------------------------------------------------------------------------
# the rule itself
# --------------------------------------------------------------------------------------------


def test_builtin_identity(rule):
    assert rule.id == RULE_ID
    assert rule.title == "Suspicious Process By Web Server Process"
    assert matcher.builtin(RULE_ID) == rule
    assert matcher.builtin("proc_creation_win_webshell_susp_process_spawned_from_webserver") == rule


def _preds(node):
    if isinstance(node, Pred):
        yield node
    else:
        for child in getattr(node, "items", ()) or (node.item,):
            yield from _preds(child)


def test_rule_lists_exactly_these_children_and_parents(rule):
    children = {p.value for p in _preds(rule.ir) if p.field == "TgtProcImagePath" and p.op is Op.ENDSWITH}
    assert children == {"\\" + c for c in CHILDREN}
    assert len(CHILDREN) == 29
    parents = {p.value.lower() for p in _preds(rule.ir) if p.field == "SrcProcImagePath" and p.op is Op.ENDSWITH}
    for path in WEB_PARENTS.values():
        assert "\\" + path.rsplit("\\", 1)[1].lower() in parents
    excl = [p for p in _preds(rule.ir) if p.field == "TgtProcCmdLine" and p.op is Op.ENDSWITH]
    assert [p.value for p in excl] == [EXCLUSION_1_SUFFIX]


# --------------------------------------------------------------------------------------------
# true positives: every web server x every child
# --------------------------------------------------------------------------------------------

ALL_PAIRS = list(itertools.product(WEB_PARENTS, CHILDREN))


@pytest.mark.parametrize("parent, child", ALL_PAIRS, ids=[f"{p}-{c}" for p, c in ALL_PAIRS])
def test_web_server_spawns_listed_child(rule, parent, child):
    check(rule, event(WEB_PARENTS[parent], f"C:\\Windows\\System32\\{child}"), True)


def test_all_pairs_in_one_batch(rule):
    events = [event(WEB_PARENTS[p], f"C:\\Windows\\System32\\{c}") for p, c in ALL_PAIRS]
    # interleave near misses so a batch holds both verdicts
    misses = [event(WEB_PARENTS[p], f"C:\\Windows\\System32\\{c}.bak") for p, c in ALL_PAIRS]
    batch = [e for pair in zip(events, misses) for e in pair]
    want = [reference.evaluate(rule, e) for e in batch]
    assert want == [True, False] * len(events)
    assert [bool(x) for x in rule.match_many(batch)] == want
    assert [bool(x) for x in rule.match_many(iter(batch))] == want
    for st in (pa.string(), pa.large_string()):
        table = arrow_table(batch, st)
        assert [bool(x) for x in rule.match_arrow(table)] == want, st
        assert [bool(x) for x in rule.match_arrow(table.to_batches()[0])] == want, st
        # several record batches: row indices continue across batches
        chunked = pa.Table.from_batches(table.to_batches(max_chunksize=7))
        assert chunked.num_rows == len(batch)
        assert [bool(x) for x in rule.match_arrow(chunked)] == want, st
    dict_table = arrow_table(batch)
    dict_table = pa.table({n: (c.dictionary_encode() if pa.types.is_string(c.type) else c)
                           for n, c in zip(dict_table.column_names, dict_table.columns)})
    assert [bool(x) for x in rule.match_arrow(dict_table)] == want
    # sliced arrays (non-zero offsets)
    sliced = arrow_table(batch).slice(3, 100)
    assert [bool(x) for x in rule.match_arrow(sliced)] == want[3:103]


# --------------------------------------------------------------------------------------------
# the Tomcat branches: only with a java.exe / javaw.exe parent
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parent, expected",
    [
        ("C:\\apache-tomcat-9.0.71\\bin\\java.exe", True),  # contains -tomcat-
        ("C:\\apache-tomcat-9.0.71\\bin\\javaw.exe", True),
        ("D:\\srv\\Apache-TOMCAT-10\\jre\\bin\\JAVA.EXE", True),
        ("C:\\Tomcat9\\bin\\java.exe", True),  # contains \tomcat
        ("C:\\Program Files\\Apache\\tomcat\\jre\\bin\\javaw.exe", True),
        ("C:\\TOMCAT\\JAVAW.EXE", True),
        ("C:\\apache-tomcat-9.0.71\\bin\\node.exe", False),
        ("C:\\apache-tomcat-9.0.71\\bin\\java.exe.old", False),
        ("C:\\apache-tomcat-9.0.71\\bin\\myjava.exe", False),
        ("C:\\Tomcat9\\bin\\tomcat9.exe", False),
        ("C:\\Tomcat9\\bin\\tomcat9w.exe", False),
        ("C:\\apache_tomcat_9\\bin\\java.exe", False),  # neither -tomcat- nor \tomcat
        ("C:\\mytomcat\\bin\\java.exe", False),
        ("C:\\Program Files\\Java\\bin\\java.exe", False),  # java, but no tomcat marker
    ],
)
def test_tomcat_branch_1_parent_path(rule, parent, expected):
    check(rule, event(parent, CMD, SrcProcCmdLine=f'"{parent}" -Xmx512m'), expected)


@pytest.mark.parametrize(
    "parent, cmdline, expected",
    [
        ("C:\\Program Files\\Java\\bin\\java.exe", "java.exe -DCATALINA_HOME=C:\\tc org.Bootstrap", True),
        ("C:\\Program Files\\Java\\bin\\java.exe", "java.exe -Dcatalina.home=C:\\tc org.Bootstrap", True),
        ("C:\\Program Files\\Java\\bin\\javaw.exe", "javaw.exe -cp C:\\tc\\lib\\CATALINA.JAR x", True),
        ("C:\\Program Files\\Java\\bin\\JAVAW.EXE", "javaw -Dcatalina_home=x", True),
        ("C:\\Program Files\\Java\\bin\\java.exe", "java.exe -cp bootstrap.jar org.Bootstrap", False),
        ("C:\\Program Files\\Java\\bin\\java.exe", "java.exe -Dcatalina.base=C:\\tc", False),
        ("C:\\Program Files\\Java\\bin\\java.exe", _DROP, False),
        ("C:\\Program Files\\Java\\bin\\java.exe", None, False),
        ("C:\\Program Files\\nodejs\\node.exe", "node -Dcatalina.home=C:\\tc", False),
        ("C:\\Program Files\\Java\\bin\\java.exe.exe", "java -Dcatalina.home=C:\\tc", False),
        ("C:\\Program Files\\Java\\bin\\wjava.exe", "java -Dcatalina.home=C:\\tc", False),
        ("C:\\Program Files\\Java\\bin\\java.exe", ["x", "-Dcatalina.home=C:\\tc"], True),
    ],
)
def test_tomcat_branch_2_parent_cmdline(rule, parent, cmdline, expected):
    check(rule, event(parent, CMD, SrcProcCmdLine=cmdline), expected)


# --------------------------------------------------------------------------------------------
# the ManageEngine exclusions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parent, child, cmdline, expected",
    [
        # exclusion 1: suppressed only with a \java.exe parent
        (TOMCAT_JAVA, CMD, EXCLUSION_1_CMDLINE, False),
        (TOMCAT_JAVA, CMD, EXCLUSION_1_SUFFIX, False),
        (TOMCAT_JAVA, CMD, "D:\\" + EXCLUSION_1_SUFFIX.upper(), False),
        (TOMCAT_JAVA, CMD, ["x", EXCLUSION_1_CMDLINE], False),  # any element
        (TOMCAT_JAVAW, CMD, EXCLUSION_1_CMDLINE, True),
        (TOMCAT_JAVA, CMD, EXCLUSION_1_CMDLINE + " ", True),
        (TOMCAT_JAVA, CMD, EXCLUSION_1_CMDLINE.replace('"Plus', "Plus"), True),  # the quote matters
        (TOMCAT_JAVA, CMD, EXCLUSION_1_CMDLINE.replace('"Plus', '\\"Plus'), True),
        (TOMCAT_JAVA, CMD, EXCLUSION_1_SUFFIX[1:], True),
        # exclusion 2: 'sc query' and 'ADManager Plus', java.exe parent
        (TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe", "sc query ADManager Plus", False),
        (TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe", 'C:\\Windows\\system32\\sc.exe SC QUERY "admanager plus"', False),
        (TOMCAT_JAVA, CMD, "cmd /c sc query x & echo ADManager Plus", False),
        (TOMCAT_JAVAW, "C:\\Windows\\System32\\sc.exe", "sc query ADManager Plus", True),
        (TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe", "sc query ADManager", True),
        (TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe", "sc  query ADManager Plus", True),
        (TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe", "sc qc ADManager Plus", True),
        (TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe", ["sc query", "ADManager Plus"], False),  # each predicate: any element
        # the exclusions need a java.exe parent: a web server parent is not excluded
        ("C:\\inetpub\\w3wp.exe", CMD, EXCLUSION_1_CMDLINE, True),
        ("C:\\inetpub\\w3wp.exe", "C:\\Windows\\System32\\sc.exe", "sc query ADManager Plus", True),
        # missing / None / dict command line: the NOT holds, the rule matches
        (TOMCAT_JAVA, CMD, _DROP, True),
        (TOMCAT_JAVA, CMD, None, True),
        (TOMCAT_JAVA, CMD, {"x": EXCLUSION_1_CMDLINE}, True),
        (TOMCAT_JAVA, CMD, [], True),
        (TOMCAT_JAVA, CMD, "", True),
    ],
)
def test_manageengine_exclusions(rule, parent, child, cmdline, expected):
    check(rule, event(parent, child, TgtProcCmdLine=cmdline), expected)


# --------------------------------------------------------------------------------------------
# near misses, case, non-ASCII
# --------------------------------------------------------------------------------------------

W3WP = WEB_PARENTS["w3wp"]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, True),
        ({"TgtProcImagePath": "C:\\Windows\\System32\\cmd.exe.bak"}, False),
        ({"TgtProcImagePath": "C:\\tools\\mycmd.exe"}, False),
        ({"TgtProcImagePath": "C:\\tools\\tomcatmycmd.exe"}, False),
        ({"TgtProcImagePath": "cmd.exe"}, False),  # no backslash at all
        ({"TgtProcImagePath": "C:/Windows/System32/cmd.exe"}, False),
        ({"TgtProcImagePath": "C:\\Windows\\System32\\cmd.exe "}, False),
        ({"TgtProcImagePath": "C:\\Windows\\System32\\cmd.exe\x00"}, False),
        ({"TgtProcImagePath": "\\cmd.exe"}, True),
        ({"TgtProcImagePath": "C:\\Windows\\System32\\notepad.exe"}, False),
        ({"TgtProcImagePath": "C:\\Windows\\System32\\ssh.exe"}, False),  # not \sh.exe
        ({"TgtProcImagePath": "C:\\Windows\\System32\\nett.exe"}, False),
        ({"SrcProcImagePath": "C:\\Program Files\\Apache\\tomcat9.exe"}, False),
        ({"SrcProcImagePath": "C:\\inetpub\\w3wp.exe.bak"}, False),
        ({"SrcProcImagePath": "C:\\inetpub\\notw3wp.exe"}, False),
        ({"SrcProcImagePath": "C:\\nginx\\nginx"}, False),
        ({"EventType": "Process Termination"}, False),
        ({"EventType": "Process Creation "}, False),
        ({"EventType": "Process"}, False),
        ({"EventType": "PROCESS CREATION"}, True),  # = folds case
        ({"EndpointOS": "linux"}, False),
        ({"EndpointOS": "osx"}, False),
        ({"EndpointOS": "windows10"}, False),
        ({"EndpointOS": "WINDOWS"}, True),
        ({"EndpointOS": ["linux", "windows"]}, True),
        ({"EventType": ["Process Termination"]}, False),
        # mixed case
        ({"TgtProcImagePath": "C:\\WINDOWS\\SYSTEM32\\CMD.EXE"}, True),
        ({"TgtProcImagePath": "c:\\windows\\system32\\Cmd.Exe"}, True),
        ({"SrcProcImagePath": "C:\\INETPUB\\W3WP.EXE"}, True),
        ({"SrcProcImagePath": "C:\\x\\UMWORKERPROCESS.EXE"}, True),
        ({"SrcProcImagePath": "C:\\x\\WS_TOMCATSERVICE.EXE"}, True),
        ({"SrcProcImagePath": "C:\\INETPUB\\W3WP.EXE", "TgtProcImagePath": "C:\\WINDOWS\\SYSTEM32\\POWERSHELL_ISE.EXE"}, True),
    ],
)
def test_near_misses_and_case(rule, overrides, expected):
    check(rule, event(W3WP, CMD, **overrides), expected)


KELVIN = "\u212a"  # lower() -> "k"
I_DOT = "\u0130"  # lower() -> "i" + U+0307


@pytest.mark.parametrize(
    "parent, child, expected",
    [
        ("C:\\Users\\jürgen\\nginx\\nginx.exe", "C:\\Users\\JÜRGEN\\AppData\\cmd.exe", True),
        ("C:\\Users\\JÜRGEN\\php\\PHP.EXE", "C:\\Users\\jürgen\\Tools\\NET.EXE", True),
        ("C:\\Users\\李雷\\caddy.exe", "C:\\Users\\Ólafur\\wscript.exe", True),
        (f"C:\\{I_DOT}netpub\\w3wp.exe", f"C:\\Users\\{I_DOT}{I_DOT}\\cmd.exe", True),
        ("C:\\inetpub\\w3wp.exe", f"C:\\x\\{I_DOT}\\CMD.EXE", True),
        # 'İ' lowers to 'i' + U+0307, so it never stands in for 'I'
        (f"C:\\x\\WS_TOMCATSERV{I_DOT}CE.EXE", CMD, False),
        ("C:\\inetpub\\w3wp.exe", f"C:\\Windows\\B{I_DOT}TSADM{I_DOT}N.EXE", False),
        ("C:\\inetpub\\w3wp.exe", f"C:\\Windows\\W{I_DOT}MIC.EXE", False),
        (f"C:\\PHP-CG{I_DOT}\\PHP-CGI.EXE", CMD, True),
        # KELVIN SIGN lowers to ASCII 'k'
        (f"C:\\x\\UMWOR{KELVIN}ERPROCESS.EXE", CMD, True),
        (f"C:\\x\\umwor{KELVIN}erprocess.exe", "C:\\Windows\\System32\\net1.exe", True),
        # long s (U+017F) lowers to itself, not to 's'
        ("C:\\inetpub\\w3wp.exe", "C:\\Windows\\\u017fc.exe", False),
        ("C:\\inetpub\\w3wp.exe", "C:\\Windows\\\u017fh.exe", False),
        # no Unicode normalisation
        ("C:\\inetpub\\w3wp.exe", "C:\\Windows\\\uff43md.exe", False),  # fullwidth c
        # a length-changing lower() before the match must not shift the suffix test
        (f"C:\\{I_DOT * 50}\\httpd.exe", f"C:\\{I_DOT * 50}\\reg.exe", True),
        (f"C:\\{I_DOT * 50}\\httpd.ex", CMD, False),
        ("C:\\inetpub\\w3wp.exe", f"{I_DOT}\\sc.exe", True),
        ("C:\\inetpub\\w3wp.exe", f"\\s{I_DOT}.exe", False),
    ],
)
def test_non_ascii_paths(rule, parent, child, expected):
    check(rule, event(parent, child), expected)


def test_non_ascii_tomcat_branches(rule):
    check(rule, event(f"C:\\Program Files\\jürgen-TOMCAT-{I_DOT}\\bin\\java.exe", CMD), True)
    check(rule, event(f"C:\\{I_DOT}\\\\TOMCAT\\JAVA.EXE", CMD), True)
    check(rule, event("C:\\Program Files\\Java\\bin\\java.exe", CMD,
                      SrcProcCmdLine=f"java -D{KELVIN}=1 -Dcatalina.home=C:\\Users\\jürgen"), True)
    check(rule, event("C:\\Program Files\\Java\\bin\\java.exe", CMD,
                      SrcProcCmdLine=f"java -Dcatal{I_DOT}na.home=C:\\x"), False)


def test_non_ascii_exclusions(rule):
    check(rule, event(TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe",
                      TgtProcCmdLine=f"jürgen: sc query \"ADMANAGER PLUS\" {I_DOT}"), False)
    check(rule, event(TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe",
                      TgtProcCmdLine="sc query ADMANAGER PLUS"), False)
    check(rule, event(TOMCAT_JAVA, "C:\\Windows\\System32\\sc.exe",
                      TgtProcCmdLine="sc query ADMANAGER PLU\u017f"), True)


# --------------------------------------------------------------------------------------------
# missing fields and None
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("absent", [_DROP, None, {}, {"a": "C:\\Windows\\System32\\cmd.exe"}, [], [None]],
                         ids=["missing", "None", "empty dict", "dict", "empty list", "list of None"])
@pytest.mark.parametrize(
    "field, expected",
    [
        ("TgtProcCmdLine", True),  # NOT (exclusion) holds when the cmdline is absent
        ("SrcProcCmdLine", True),  # not needed for a w3wp parent
        ("TgtProcImagePath", False),
        ("SrcProcImagePath", False),
        ("EventType", False),
        ("EndpointOS", False),
    ],
)
def test_absent_fields(rule, field, absent, expected):
    check(rule, event(W3WP, CMD, **{field: absent}), expected)


def test_only_the_needed_fields(rule):
    ev = {"EventType": "Process Creation", "EndpointOS": "windows",
          "SrcProcImagePath": W3WP, "TgtProcImagePath": CMD}
    check(rule, ev, True)
    check(rule, {}, False)
    check(rule, {"EventType": "Process Creation"}, False)


def test_absent_fields_with_java_parent(rule):
    # Exclusion 1 with the cmdline missing: not excluded, the Tomcat branch matches.
    check(rule, event(TOMCAT_JAVA, CMD, TgtProcCmdLine=_DROP), True)
    check(rule, event(TOMCAT_JAVA, CMD, TgtProcCmdLine=None), True)
    # Branch 2 needs the parent cmdline: absent -> no match for a plain java.exe
    check(rule, event("C:\\Java\\bin\\java.exe", CMD, SrcProcCmdLine=_DROP), False)
    check(rule, event("C:\\Java\\bin\\java.exe", CMD, SrcProcCmdLine={"x": "catalina.jar"}), False)


def test_non_string_values(rule):
    check(rule, event(W3WP, CMD, TgtProcCmdLine=12345), True)
    check(rule, event(W3WP, CMD, TgtProcCmdLine=True), True)
    check(rule, event(W3WP, CMD, TgtProcImagePath=1.5), False)
    check(rule, event(W3WP, CMD, EventType=0), False)
    check(rule, event(W3WP, ["C:\\x\\notepad.exe", 7, None, CMD]), True)
    check(rule, event([None, W3WP], CMD), True)


def test_odd_values_never_crash(rule):
    check(rule, event(W3WP, CMD, TgtProcCmdLine="\ud800 sc query ADManager Plus \x00"), True)
    check(rule, event(TOMCAT_JAVA, CMD, TgtProcCmdLine="\ud800 sc query ADManager Plus \x00"), False)
    check(rule, event(W3WP, "C:\\\ud800\\cmd.exe"), True)
    check(rule, event(W3WP + "\x00", CMD), False)
    check(rule, event(W3WP, CMD, TgtProcCmdLine="A" * (10 * 1024 * 1024)), True)


def test_dotted_and_extra_keys_are_ignored(rule):
    ev = event(W3WP, CMD)
    ev.update({"src": {"process": {"image": {"path": "x"}}}, "Extra.Field": [1, 2], "": None})
    check(rule, ev, True)


def test_not_a_mapping(rule):
    for bad in (None, "event", ["EventType", "Process Creation"], 3):
        with pytest.raises(TypeError):
            rule.match(bad)
        with pytest.raises(TypeError):
            reference.evaluate(rule, bad)


# --------------------------------------------------------------------------------------------
# the generated dataset: every engine agrees with the reference
# --------------------------------------------------------------------------------------------


def test_generated_events_all_engines_agree(rule):
    events = datasets.generate(20000, 11)
    want = [reference.evaluate(rule, e) for e in events]
    assert 20 < sum(want) < 1000
    core = [rule.match(e) for e in events]
    bad = [i for i, (a, b) in enumerate(zip(want, core)) if a != b]
    assert not bad, f"core disagrees with the reference on {len(bad)} events, e.g. {short(events[bad[0]])}"
    many = [bool(x) for x in rule.match_many(events)]
    bad = [i for i, (a, b) in enumerate(zip(want, many)) if a != b]
    assert not bad, f"match_many disagrees on {len(bad)} events, e.g. {short(events[bad[0]])}"
    table = arrow_table(events)
    arrow = [bool(x) for x in rule.match_arrow(table)]
    bad = [i for i, (a, b) in enumerate(zip(want, arrow)) if a != b]
    assert not bad, f"match_arrow disagrees on {len(bad)} events, e.g. {short(events[bad[0]])}"
    scanned = [i for i, rid in matcher.RuleSet([rule]).scan(events, batch=997)]
    assert scanned == [i for i, w in enumerate(want) if w]
    # per event, through every engine (Arrow via Table.from_pylist)
    positives = [e for e, w in zip(events, want) if w][:100]
    for ev in positives + events[:200]:
        assert verdicts(rule, ev) == reference.evaluate(rule, ev)


def test_verdict_does_not_depend_on_neighbour_rules(rule):
    other = matcher.compile('TgtProcImagePath endswithCIS "\\cmd.exe"', id="other")
    neg = matcher.compile('NOT TgtProcCmdLine containsCIS "sc query"', id="neg")
    rs = matcher.RuleSet([other, rule, neg])
    events = datasets.generate(3000, 5) + [event(W3WP, CMD), event(TOMCAT_JAVA, CMD, TgtProcCmdLine=EXCLUSION_1_CMDLINE)]
    for ev in events:
        hits = rs.match(ev)
        assert (RULE_ID in hits) == reference.evaluate(rule, ev), short(ev)
        assert ("other" in hits) == reference.evaluate(other, ev), short(ev)
        assert ("neg" in hits) == reference.evaluate(neg, ev), short(ev)
