"""The whole SigmaHQ tree over a mixed log (issue 14): logsource routing lets every rule skip the
events outside its logsource, so the whole tree should cost little more than the rules of the
log's main logsource alone.

    pytest benchmarks/bench_routing.py --events 20000 --benchmark-json=routing.json

Events: ``datasets.iter_mixed`` (Sysmon process creation, network connections, DNS queries,
Windows Security logons, zeek conn records), profile ``sysmon``. Rule sets: ``whole_tree`` (every
rule the profile routes), ``process_creation`` (the Windows process_creation rules alone: the
log's main logsource), ``whole_tree_no_event_ops`` (the whole tree without the rules holding
whole-event predicates, keywords and fieldref, which run in Python per event until the core
runs them). Each answer is checked: the process_creation rules' matches are the same whether
they run alone or within the whole tree (a verdict never depends on the neighbours).
"""

from __future__ import annotations

import pytest

import matcher
from conftest import run
from matcher import datasets
from matcher.ir import EVENT_OPS, walk_preds
from matcher.sigma import load_sigma_tree
from shared_data import sigma_rules_path


@pytest.fixture(scope="module")
def tree():
    return load_sigma_tree(sigma_rules_path(), profile="sysmon")


@pytest.fixture(scope="module")
def mixed(n_events):
    return list(datasets.iter_mixed(n_events, seed=0))


def _sets(rules):
    proc = [r for r in rules if r.info.extra["logsource"] == {"category": "process_creation", "product": "windows"}]
    plain = [r for r in rules if not any(p.op in EVENT_OPS for p in walk_preds(r.ir))]
    return {"whole_tree": rules, "process_creation": proc, "whole_tree_no_event_ops": plain}


@pytest.fixture(scope="module")
def alone(tree, mixed):
    proc = _sets(tree.rules)["process_creation"]
    rows, rules = matcher.RuleSet(proc).match_arrays(mixed)
    return {(r, proc[k].id) for r, k in zip(rows.tolist(), rules.tolist())}


@pytest.mark.benchmark(group="routing")
@pytest.mark.parametrize("which", ["whole_tree", "process_creation", "whole_tree_no_event_ops"])
def test_routing_mixed_log(benchmark, tree, mixed, alone, which):
    rules = _sets(tree.rules)[which]
    rs = matcher.RuleSet(rules)
    benchmark.extra_info.update(events=len(mixed), rules=len(rules), set=which)
    rows, idx = run(benchmark, rs.match_arrays, mixed, rounds=3)
    both = {r.id for r in rules} & {r.id for r in _sets(tree.rules)["process_creation"]}
    got = {(r, rules[k].id) for r, k in zip(rows.tolist(), idx.tolist()) if rules[k].id in both}
    assert both and got == {m for m in alone if m[1] in both}
