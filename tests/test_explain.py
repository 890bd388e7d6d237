"""``matcher explain``: the flagship rule on a true positive and on a near miss, through the real
entry point, and the explanation's verdicts against the reference evaluator."""

from __future__ import annotations

import json

import pytest
from test_cli import NET, TP, _jsonl, err, no_traceback, run

import matcher
from matcher import datasets, explain, reference

NEAR_MISS = dict(TP, TgtProcImagePath="C:\\Windows\\System32\\cmd.exe.bak")  # the child is not cmd.exe


def test_true_positive_text():
    proc = run("--event", json.dumps(TP), command="explain")
    assert proc.returncode == 0, err(proc)
    no_traceback(proc)
    out = proc.stdout.decode("utf-8")
    assert "MATCH (compiled core agrees: yes)" in out and "NO MATCH" not in out
    assert out.splitlines()[4] == "✓ AND"
    assert '✓ SrcProcImagePath endswithCIS "\\w3wp.exe"' in out or "1 of 9 hold: SrcProcImagePath endswithCIS" in out
    assert 'TgtProcImagePath endswithCIS "\\cmd.exe"' in out
    assert '(TgtProcImagePath = "C:\\Windows\\System32\\cmd.exe")' in out


def test_near_miss_from_a_file_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(_jsonl(TP, NEAR_MISS))
    proc = run(str(path), "-n", "2", command="explain")
    assert proc.returncode == 0, err(proc)
    out = proc.stdout.decode("utf-8")
    assert "NO MATCH (compiled core agrees: yes)" in out
    assert f"event {path}:2" in out
    assert "✗ any of 29 on TgtProcImagePath: none of 29 holds" in out
    assert '(TgtProcImagePath = "C:\\Windows\\System32\\cmd.exe.bak")' in out
    full = run(str(path), "-n", "2", "--all", command="explain").stdout.decode("utf-8")
    assert full.count("✗ TgtProcImagePath endswithCIS") == 29


def test_json_format_and_profile():
    ev = {"EventID": 1, "ParentImage": TP["SrcProcImagePath"], "Image": NET["TgtProcImagePath"]}
    proc = run("-p", "sysmon", "-f", "json", "-", input=_jsonl(ev), command="explain")
    assert proc.returncode == 0, err(proc)
    doc = json.loads(proc.stdout)
    assert doc["matched"] is True and doc["compiled_core"] is True and doc["profile"] == "sysmon"
    assert doc["tree"]["node"] == "and" and doc["tree"]["children"][0] == {
        "node": "pred", "result": True, "predicate": 'EventID = "1"', "field": "EventID", "values": ["1"]}


@pytest.mark.parametrize("args", [("-q", "A = "), ("-r", "flagship", "-q", 'A = "x"'), ("--event", "[1]"),
                                  ("-n", "5", "-")])
def test_errors_exit_2(args):
    proc = run(*args, input=_jsonl(TP), command="explain")
    assert proc.returncode == 2, err(proc)
    no_traceback(proc)


def test_every_node_agrees_with_the_reference():
    rule = matcher.builtin("flagship")
    for ev in datasets.generate(400, 5) + [TP, NEAR_MISS]:
        tree = explain.explain(rule.ir, ev)
        assert tree.result == reference.evaluate(rule, ev)
        stack = [(tree, rule.ir)]
        while stack:
            e, node = stack.pop()
            assert e.result == reference.evaluate_ir(node, ev)
            kids = [node.item] if e.kind == "not" else list(getattr(node, "items", ()))
            stack.extend(zip(e.children, kids))
        assert explain.render(tree)
