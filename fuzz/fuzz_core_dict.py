"""Fuzz target: the compiled core on mapping events, against the reference evaluator.

The rules and events come from the differential tests' hypothesis strategies
(``tests/strategies.py``), driven by the fuzzer's bytes (``fuzz_one_input``): generated rule
trees over the shared field and literal pools, events with missing keys, ``None``, numbers,
nested dicts, lone surrogates. Invariant: ``RuleSet.match``, ``scan`` and ``match_arrays`` give
the reference's verdicts (a MatcherError when compiling is allowed; nothing else).
"""

from __future__ import annotations

from _harness import instrumented, main, ruleset_and_reference

with instrumented():
    import matcher  # noqa: F401 - instrumented before the strategies import it
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import events, ir_nodes


@settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(nodes=st.lists(ir_nodes(max_leaves=8), min_size=1, max_size=3), evs=st.lists(events(), min_size=1, max_size=4))
def check(nodes, evs):
    built = ruleset_and_reference(nodes, evs)
    if built is None:
        return
    rs, want = built
    assert [(i, r) for i, ev in enumerate(evs) for r in rs.match(ev)] == want
    assert sorted(rs.scan(evs, batch=2)) == sorted(want)


test_one_input = check.hypothesis.fuzz_one_input

if __name__ == "__main__":
    main(test_one_input)
