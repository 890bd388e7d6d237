"""Fuzz target: the compiled core on Arrow tables (``scan_arrow``), against the reference.

Rules and events as in ``fuzz_core_dict.py``; the events become a pyarrow Table (string,
large_string, string_view or dictionary columns, as the differential tests build them; events
Arrow cannot hold are skipped), scanned whole, sliced and as RecordBatches. Invariant: the
reference's verdicts on the same events.
"""

from __future__ import annotations

from _harness import instrumented, main, ruleset_and_reference

with instrumented():
    import matcher  # noqa: F401 - instrumented before the strategies import it
import pyarrow as pa
from helpers import arrow_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import events, ir_nodes

STRING_TYPES = [pa.string(), pa.large_string(), pa.string_view(), pa.dictionary(pa.int32(), pa.string())]


@settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(nodes=st.lists(ir_nodes(max_leaves=8), min_size=1, max_size=3), evs=st.lists(events(), min_size=1, max_size=6),
       string_type=st.sampled_from(STRING_TYPES), cut=st.integers(0, 6))
def check(nodes, evs, string_type, cut):
    table = arrow_table(evs, string_type)
    if table is None:
        return
    built = ruleset_and_reference(nodes, evs)
    if built is None:
        return
    rs, want = built
    assert sorted(rs.scan_arrow(table)) == sorted(want)
    cut = min(cut, len(evs))
    tail = sorted((i + cut, r) for i, r in rs.scan_arrow(table.slice(cut)))
    assert tail == sorted(p for p in want if p[0] >= cut)
    batches = table.to_batches(max_chunksize=2)
    got, base = [], 0
    for b in batches:
        got += [(i + base, r) for i, r in rs.scan_arrow(b)]
        base += b.num_rows
    assert sorted(got) == sorted(want)


test_one_input = check.hypothesis.fuzz_one_input

if __name__ == "__main__":
    main(test_one_input)
