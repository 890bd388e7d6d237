"""Integer and boolean Arrow columns (issue 12): the core reads them as the texts Arrow casts them
to (decimal, true/false), not as a Python object per row; every verdict is the one the same
values give as Python ints and bools in mappings (``ops.scalar_text``: the reference's reading)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import matcher

RULES = [
    'N = "0"', 'N = "-5"', 'N = "9223372036854775807"', 'N = "18446744073709551615"', 'N > "100"', 'N <= "-1"',
    'N ContainsCIS "12"', 'N StartsWithCIS "-"', 'N EndsWithCIS "5"', 'N In Contains AnyCase ("7", "255")',
    'B = "true"', 'B = "false"', 'B ContainsCIS "ru"', 'NOT B = "true"', 'N = "1" AND B = "true"',
]

TYPES = {
    pa.int8(): (-2**7, 2**7 - 1), pa.int16(): (-2**15, 2**15 - 1), pa.int32(): (-2**31, 2**31 - 1),
    pa.int64(): (-2**63, 2**63 - 1), pa.uint8(): (0, 2**8 - 1), pa.uint16(): (0, 2**16 - 1),
    pa.uint32(): (0, 2**32 - 1), pa.uint64(): (0, 2**64 - 1),
}


def _pairs(found) -> set:
    rows, rules = found
    return set(zip(np.asarray(rows).tolist(), np.asarray(rules).tolist()))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), t=st.sampled_from(sorted(TYPES, key=str)), dictionary=st.booleans())
def test_integer_and_boolean_columns_match_as_python_values(data, t, dictionary):
    lo, hi = TYPES[t]
    ints = st.one_of(st.none(), st.integers(lo, hi), st.sampled_from([v for v in (0, 1, -1, 5, 12, 100, 101, 255, lo, hi)
                                                                        if lo <= v <= hi]))
    n = data.draw(st.integers(1, 40))
    ns = data.draw(st.lists(ints, min_size=n, max_size=n))
    bs = data.draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n))
    col = pa.array(ns, type=t)
    if dictionary:
        col = col.dictionary_encode()
    table = pa.table({"N": col, "B": pa.array(bs, type=pa.bool_())})
    rs = matcher.RuleSet([matcher.compile(q, id=str(i)) for i, q in enumerate(RULES)])
    events = [{k: v for k, v in (("N", a), ("B", b)) if v is not None} for a, b in zip(ns, bs)]
    assert _pairs(rs.match_arrow_arrays(table)) == _pairs(rs.match_arrays(events))


def test_the_texts_are_python_texts():
    """Spot values: the verdicts a reader can check by eye."""
    table = pa.table({"N": pa.array([2**64 - 1, 0, None], pa.uint64()), "B": pa.array([True, None, False])})
    rs = matcher.RuleSet([matcher.compile('N = "18446744073709551615"', id="max"),
                          matcher.compile('B = "true"', id="t"), matcher.compile('B = "false"', id="f")])
    assert sorted((r, rs.rules[u].id) for r, u in _pairs(rs.match_arrow_arrays(table))) == [(0, "max"), (0, "t"),
                                                                                           (2, "f")]


def test_long_columns_both_ways():
    """Past the 4,096-row sample a column of few distinct integers is dictionary-encoded before it
    is written out, one of many distinct integers is written row by row: the same verdicts."""
    rng = np.random.default_rng(7)
    n = 10_000
    few = rng.choice([4624, 4625, 4688, -1, 0], n).tolist()
    many = (rng.integers(-(2**62), 2**62, n)).tolist()
    for i in range(0, n, 97):
        few[i] = None
        many[i] = None
    many[5000] = 4625  # one hit far from the sample
    rs = matcher.RuleSet([matcher.compile('N = "4625"', id="eq"), matcher.compile('N EndsWithCIS "88"', id="end"),
                          matcher.compile('N StartsWithCIS "-"', id="neg"), matcher.compile('N > "4624"', id="gt")])
    for values in (few, many, few[:4096] + many[4096:]):
        table = pa.table({"N": pa.array(values, pa.int64())})
        events = [{"N": v} if v is not None else {} for v in values]
        assert _pairs(rs.match_arrow_arrays(table)) == _pairs(rs.match_arrays(events))
    from matcher._arrow import _as_text

    assert pa.types.is_dictionary(_as_text(pa.array(few, pa.int64())).type)
    assert _as_text(pa.array(many, pa.int64())).type == pa.string()
