"""The whole SigmaHQ tree over a mixed log (issue 14): logsource routing lets every rule skip the
events outside its logsource, so the whole tree should cost little more than the rules of the
log's main logsource alone. Target: within 2x, with no cross-logsource match.

    pytest benchmarks/bench_routing.py --events 20000 -s --benchmark-json=routing.json

Events: ``datasets.iter_mixed`` (Sysmon process creation, network connections, DNS queries,
Windows Security logons, zeek conn records), profile ``sysmon``. Rule sets: ``whole_tree`` (every
rule the profile routes), ``process_creation`` (the Windows process_creation rules alone: the
log's main logsource), ``whole_tree_no_event_ops`` (the whole tree without the rules holding
whole-event predicates, keywords and fieldref).

Each answer is checked: the process_creation rules' matches are the same whether they run
alone or within the whole tree (a verdict never depends on the neighbours); the whole tree's
matches equal the reference evaluator's on a sample of events (every rule on each) and none
is across logsources (a zeek event matched, a Security logon matched by a Sysmon rule, a
Sysmon event by a rule of another category). ``test_routing_ratio`` times the whole tree and
the process_creation rules alternately (``--routing-rounds``, default 7) and reports the
ratio of their times: the median of the rounds' ratios (asserted below ``TARGET``) and the
ratio of the fastest runs (``-s`` prints them; the JSON keeps them in ``extra_info``).
"""

from __future__ import annotations

import statistics
import time

import pytest

import matcher
from conftest import run
from matcher import datasets, reference
from matcher.ir import EVENT_OPS, walk_preds
from matcher.mapping import SYSMON_CATEGORY_IDS
from matcher.sigma import load_sigma_tree
from shared_data import sigma_rules_path

#: The target of issue 14: the whole tree within this factor of the main logsource's rules alone.
TARGET = 2.0
#: Events of the log the reference judges against every rule of the whole tree.
REFERENCE_SAMPLE = 100


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


def _pairs(rules, rows, idx) -> set:
    return {(r, rules[k].id) for r, k in zip(rows.tolist(), idx.tolist())}


def cross_logsource(event: dict, logsource: dict) -> bool:
    """Whether a match of a rule of ``logsource`` on ``event`` (of ``iter_mixed``) is across logsources."""
    if "_path" in event:  # zeek: the sysmon profile recognises no zeek logsource
        return True
    if logsource.get("product") != "windows":
        return True
    if event.get("Channel") == "Security":
        return not (logsource.get("service") == "security" or set(logsource) == {"product"})
    cats = {c for c, ids in SYSMON_CATEGORY_IDS.items() if event.get("EventID") in ids}
    if logsource.get("category"):
        return logsource["category"] not in cats
    return logsource.get("service") not in (None, "sysmon")


@pytest.fixture(scope="module")
def alone(tree, mixed):
    proc = _sets(tree.rules)["process_creation"]
    rows, idx = matcher.RuleSet(proc).match_arrays(mixed)
    return _pairs(proc, rows, idx)


@pytest.mark.benchmark(group="routing")
@pytest.mark.parametrize("which", ["whole_tree", "process_creation", "whole_tree_no_event_ops"])
def test_routing_mixed_log(benchmark, tree, mixed, alone, which):
    rules = _sets(tree.rules)[which]
    rs = matcher.RuleSet(rules)
    benchmark.extra_info.update(events=len(mixed), rules=len(rules), set=which)
    rows, idx = run(benchmark, rs.match_arrays, mixed, rounds=3)
    got = _pairs(rules, rows, idx)
    proc = {r.id for r in _sets(tree.rules)["process_creation"]}
    both = {r.id for r in rules} & proc
    assert both and {m for m in got if m[1] in both} == {m for m in alone if m[1] in both}
    by_id = {r.id: r for r in rules}
    crossed = [(i, rid) for i, rid in got if cross_logsource(mixed[i], by_id[rid].info.extra["logsource"])]
    assert not crossed, crossed[:5]
    if which == "whole_tree":
        step = max(1, len(mixed) // REFERENCE_SAMPLE)
        for i in range(0, len(mixed), step):
            want = {r.id for r in rules if reference.evaluate(r, mixed[i])}
            assert {rid for j, rid in got if j == i} == want, i
        benchmark.extra_info["matches"] = len(got)


@pytest.mark.benchmark(group="routing-ratio")
def test_routing_ratio(benchmark, request, tree, mixed):
    """The whole tree's time over the process_creation rules' time on the same log, timed
    alternately so that the machine's load falls on both alike (each benchmark round is one
    run of each; the ratio is in ``extra_info``)."""
    sets = _sets(tree.rules)
    whole, proc = matcher.RuleSet(sets["whole_tree"]), matcher.RuleSet(sets["process_creation"])
    whole.match_arrays(mixed[:1000])  # warm up (compile, first-call costs)
    proc.match_arrays(mixed[:1000])
    rounds = request.config.getoption("--routing-rounds")
    times: dict[str, list[float]] = {"whole_tree": [], "process_creation": []}

    def one_round() -> None:
        for name, rs in (("whole_tree", whole), ("process_creation", proc)):
            t0 = time.perf_counter()
            rs.match_arrays(mixed)
            times[name].append(time.perf_counter() - t0)

    benchmark.pedantic(one_round, rounds=rounds, iterations=1, warmup_rounds=0)
    # each round's two runs are neighbours in time: the median of the rounds' ratios is the
    # estimate least moved by the load of a shared machine; the ratio of the fastest runs beside it
    paired = statistics.median(w / p for w, p in zip(times["whole_tree"], times["process_creation"]))
    ratio_min = min(times["whole_tree"]) / min(times["process_creation"])
    n = len(mixed)
    eps = {k: n / statistics.median(v) for k, v in times.items()}
    benchmark.extra_info.update(events=n, rules_whole_tree=len(whole), rules_process_creation=len(proc),
                                events_per_s=eps, ratio=paired, ratio_of_mins=ratio_min, target=TARGET,
                                seconds=times)
    print(f"\nrouting: {n:,} mixed events; whole tree {len(whole):,} rules {eps['whole_tree']:,.0f} events/s, "
          f"process_creation {len(proc):,} rules {eps['process_creation']:,.0f} events/s (medians of {rounds} "
          f"alternating rounds); ratio {paired:.2f}x (median of the rounds' ratios), {ratio_min:.2f}x (fastest "
          f"runs); target {TARGET:g}x{'' if paired < TARGET else ' MISSED'}")
    # timings are reported, never asserted (a shared machine's load would make it flaky); the
    # answers the timed sets give are checked against the reference in the tests above
