"""The compiled core itself: that it is the engine that ran, that its constants mirror the
compiler, that its per-code-point fold is Python's ``str.lower``, that every operator is
lowered, and that its contains automaton finds what an independent Aho-Corasick finds."""

from __future__ import annotations

import importlib.machinery
import random
import string

import ahocorasick
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import matcher
import matcher._core as core
from matcher import api, compiler, ops, reference
from matcher.ir import EVENT_OPS, PRESENCE_GUARDED, NULLARY, Glob, Op, Pred, Wild
from helpers import make_rule, scaled

CMD = "TgtProcCmdLine"


# --------------------------------------------------------------------------------------------
# the compiled core is the one that runs
# --------------------------------------------------------------------------------------------


def test_compiled_core_is_loaded():
    assert core.CYTHON_CORE == 1
    # an extension module, not a pure-Python stand-in
    assert core.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), core.__file__
    assert isinstance(core.__loader__, importlib.machinery.ExtensionFileLoader)
    assert api._core is core
    assert api._core.Program is core.Program


def test_ruleset_runs_the_compiled_program():
    rs = matcher.RuleSet([matcher.compile('TgtProcCmdLine containsCIS "whoami"', id="w")])
    prog = rs._program
    assert type(prog) is core.Program
    assert isinstance(prog, matcher._core.Program)
    assert type(prog).__module__ == "matcher._core"
    assert rs._program is prog  # built once, at construction
    assert prog.field_names == (CMD,)
    assert prog.nrules == 1
    # the entry points go through that object: with its methods replaced by a stub that
    # records calls, matching must hit the stub (RuleSet holds no second engine)
    calls = []

    class Spy:
        field_names = prog.field_names
        strings_field = prog.strings_field

        def match_one(self, ev):
            calls.append("match_one")
            return prog.match_one(ev)

        def match_events(self, evs):
            calls.append("match_events")
            return prog.match_events(evs)

        def match_columns(self, cols, n):
            calls.append("match_columns")
            return prog.match_columns(cols, n)

    rs._prog = Spy()
    ev = {CMD: "x WHOAMI"}
    assert rs.match(ev) == ["w"]
    assert list(rs.scan([ev])) == [(0, "w")]
    rows, idx = rs.match_arrays([ev])
    assert rows.tolist() == [0] and idx.tolist() == [0]
    assert list(rs.scan_arrow(pa.table({CMD: ["whoami"]}))) == [(0, "w")]
    assert calls == ["match_one", "match_events", "match_events", "match_columns"]


def test_rule_match_uses_the_compiled_program():
    rule = matcher.compile('TgtProcCmdLine endswithCIS "\\cmd.exe"')
    assert rule.match({CMD: "C:\\CMD.EXE"}) is True
    assert type(rule._set._program) is core.Program


# --------------------------------------------------------------------------------------------
# constants mirror the compiler
# --------------------------------------------------------------------------------------------


def test_kinds_mirror_the_compiler():
    assert len(set(core.KINDS)) == 4
    assert core.KINDS == (compiler.TABLE, compiler.GLOB, compiler.PY, compiler.FREF)


def test_node_kinds_mirror_the_compiler():
    assert core.NODES == (compiler.N_PRED, compiler.N_AND, compiler.N_OR, compiler.N_NOT, compiler.N_ANY)


def test_glob_tokens_mirror_the_compiler():
    assert core.GLOB_TOKENS == (compiler.G_ANY, compiler.G_ONE)
    # tokens besides them are literal bytes 0..255: the wildcards must be outside that range
    assert all(t < 0 for t in core.GLOB_TOKENS)
    assert compiler._glob_tokens(Glob.of("a", Wild.ANY, "é", Wild.ONE)) == [
        ord("a"), compiler.G_ANY, *"é".encode(), compiler.G_ONE
    ]


# --------------------------------------------------------------------------------------------
# folding
# --------------------------------------------------------------------------------------------


def test_fold_char_is_str_lower_for_every_code_point():
    deferred = []
    wrong = []
    for cp in range(0x110000):
        got = core.fold_char(cp)
        if got is None:
            deferred.append(cp)
        elif got != chr(cp).lower():
            wrong.append((hex(cp), got, chr(cp).lower()))
    assert wrong == []
    assert deferred == [0x130, 0x3A3]
    # and those two are exactly the ones a per-code-point fold cannot do
    assert len("\u0130".lower()) == 2
    assert "AΣ".lower()[-1] != "Σ".lower()


# --------------------------------------------------------------------------------------------
# every operator has a meaning and a lowering
# --------------------------------------------------------------------------------------------

_OP_VALUES = {
    Op.CONTAINS: "cmd",
    Op.STARTSWITH: "c:\\",
    Op.ENDSWITH: ".exe",
    Op.EQUALS: "c:\\cmd.exe",
    Op.GLOB: Glob.of("c:", Wild.ANY, ".ex", Wild.ONE),
    Op.REGEX: "(?i)CMD\\.exe$",
    Op.NOT_EMPTY: None,
    Op.EXISTS: None,
    Op.LT: "5",
    Op.LE: "4",
    Op.GT: "3.5",
    Op.GE: "-1",
    Op.CIDR: "10.0.0.0/8",
    Op.FIELDREF: CMD,
    Op.FIELDREF_CONTAINS: CMD,
    Op.FIELDREF_STARTSWITH: CMD,
    Op.FIELDREF_ENDSWITH: CMD,
    Op.KEYWORD: Glob.of(Wild.ANY, "cmd", Wild.ANY),
    Op.TIMEPART: "hour=4",
}
_OP_EVENTS = [
    {},
    {CMD: None},
    {CMD: ""},
    {CMD: "C:\\CMD.EXE"},
    {CMD: "c:\\x\\cmd.exe"},
    {CMD: "Ä:\\CMD.EXE"},
    {CMD: 4},
    {CMD: 4.5},
    {CMD: "-2"},
    {CMD: True},
    {CMD: ["x", "C:\\cmd.exe"]},
    {CMD: [None, 3]},
    {CMD: {"x": 1}},
    {CMD: "10.1.2.3"},
    {CMD: "2026-01-01T04:00:00Z"},
    {CMD: ["2026-01-01 05:00", "2026-01-01 04:59"]},
]


def test_every_op_has_a_reference_meaning():
    assert set(ops.REFERENCE) | set(ops.EVENT_REFERENCE) == set(Op)
    assert not set(ops.REFERENCE) & set(ops.EVENT_REFERENCE)
    assert set(ops.EVENT_REFERENCE) == set(EVENT_OPS)
    assert set(_OP_VALUES) == set(Op)


@pytest.mark.parametrize("op", list(Op), ids=lambda o: o.name)
def test_every_op_is_lowered_and_agrees(op):
    pred = Pred(CMD, op, _OP_VALUES[op])
    plan = compiler.compile_plan([pred])
    # a keyword is a glob over the pseudo-field of every string value of the event
    lowered = Pred(compiler.EVERY_STRING, Op.GLOB, pred.value) if op is Op.KEYWORD else pred
    pid = plan.preds.index(lowered)
    kind = plan.pred_kind[pid]
    fp = plan.fields[plan.pred_field[pid]] if op not in EVENT_OPS else None
    if op is Op.KEYWORD:
        assert kind == compiler.GLOB and pid in plan.globs and plan.pred_field[pid] == plan.strings_field >= 0
    elif op in compiler.FIELDREF_CODE:  # compared in the core: field, other field, relation
        other = plan.fields[plan.fieldrefs[pid][0]].name
        assert kind == compiler.FREF and other == pred.value and plan.fieldrefs[pid][1] == compiler.FIELDREF_CODE[op]
    elif op in EVENT_OPS:
        raise AssertionError(f"{op} left to a whole-event callback")
    elif op is Op.GLOB:
        assert kind == compiler.GLOB and pid in plan.globs
    elif op in (Op.REGEX, Op.CIDR) or op in PRESENCE_GUARDED:
        assert kind == compiler.PY and plan.py_preds[pid] == (op, pred.value)
    else:
        assert kind == compiler.TABLE
        table = {
            Op.CONTAINS: fp.contains,
            Op.STARTSWITH: fp.prefix,
            Op.ENDSWITH: fp.suffix,
            Op.EQUALS: fp.eq,
        }.get(op)
        if op in NULLARY:
            assert (fp.exists if op is Op.EXISTS else fp.not_empty) == pid
        else:
            assert (compiler.encode(pred.value), pid) in table
    if kind != compiler.TABLE:
        assert plan.guards[pid], "a lazy predicate needs a guard"
    rule = make_rule(pred)
    neg = make_rule(matcher.ir.not_(pred), "not")
    rs = matcher.RuleSet([rule, neg])
    results = set()
    for ev in _OP_EVENTS:
        want = reference.evaluate(rule, ev)
        results.add(want)
        assert rule.match(ev) is want, ev
        assert rs.match(ev) == (["r0"] if want else ["not"]), ev
    assert results == {True, False}, "the events must tell the operator apart"


# --------------------------------------------------------------------------------------------
# the contains automaton against pyahocorasick
# --------------------------------------------------------------------------------------------


def fired_contains(literals: list[str], text: str) -> set[str]:
    """The literals whose ``containsCIS`` rule the core reports on ``text`` (ids are indices)."""
    rules = [matcher.compile(f'{CMD} containsCIS "{lit}"', id=str(i)) for i, lit in enumerate(literals)]
    rs = matcher.RuleSet(rules)
    return {literals[int(rid)] for rid in rs.match({CMD: text})}


def pyaho_found(literals: list[str], text: str) -> set[str]:
    auto = ahocorasick.Automaton()
    for lit in literals:
        key = lit.lower()
        auto.add_word(key, key)
    auto.make_automaton()
    hits = {v for _, v in auto.iter(text.lower())}
    return {lit for lit in literals if lit.lower() in hits}


def check_automaton(literals, texts):
    literals = list(dict.fromkeys(literals))
    rules = [matcher.compile(f'{CMD} containsCIS "{lit}"', id=str(i)) for i, lit in enumerate(literals)]
    rs = matcher.RuleSet(rules)
    for text in texts:
        got = {literals[int(rid)] for rid in rs.match({CMD: text})}
        want = pyaho_found(literals, text)
        assert got == want, (literals, text)
        # and both agree with the definition
        assert want == {lit for lit in literals if lit.lower() in text.lower()}


@pytest.mark.parametrize(
    "literals, text, expected",
    [
        (["he", "she", "his", "hers"], "ushers", {"he", "she", "hers"}),
        (["he", "she", "his", "hers"], "USHERS", {"he", "she", "hers"}),
        (["he", "she", "his", "hers"], "ahishers", {"he", "she", "his", "hers"}),
        (["a", "aa", "aaa"], "aaaa", {"a", "aa", "aaa"}),
        (["a", "aa", "aaa"], "AbA", {"a"}),
        (["aaa", "aa", "a"], "Äaa", {"a", "aa"}),
        (["ab", "bc", "abc", "c", "bcd"], "xabcx", {"ab", "bc", "abc", "c"}),
        (["İ", "i", "i\u0307"], "\u0130", {"İ", "i", "i\u0307"}),
        (["k", "\u212a"], "K", {"k", "\u212a"}),
    ],
)
def test_contains_automaton_known_sets(literals, text, expected):
    assert fired_contains(literals, text) == expected
    assert pyaho_found(literals, text) == expected


_AC_ALPHABET = "ahers" + "HS" + "İß\u212aſé"
_ac_literal = st.text(alphabet=_AC_ALPHABET, min_size=1, max_size=5)


@settings(max_examples=scaled(150))
@given(
    literals=st.lists(_ac_literal, min_size=1, max_size=25),
    texts=st.lists(st.text(alphabet=_AC_ALPHABET + "xX ", max_size=40), min_size=1, max_size=5),
)
@example(literals=["a", "aa", "aaa"], texts=["aaaaa", "AAaA"])
@example(literals=["he", "she", "his", "hers"], texts=["ushers", "USHERSİ"])
def test_contains_automaton_matches_pyahocorasick(literals, texts):
    check_automaton(literals, texts)


_AC_LONG_ALPHABET = "abAB"


@settings(max_examples=scaled(80))
@given(
    literals=st.lists(st.text(alphabet="abé", min_size=1, max_size=9), min_size=1, max_size=30, unique=True),
    texts=st.lists(
        st.one_of(
            st.text(alphabet=_AC_LONG_ALPHABET + "éx", min_size=25, max_size=1100),
            st.text(alphabet=_AC_LONG_ALPHABET, min_size=25, max_size=600),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_contains_automaton_on_long_values(literals, texts):
    """Values of 32..512 bytes are scanned as two halves by two state chains, longer ones in
    chunks of 256: matches straddling the middle or a chunk boundary must all be found."""
    check_automaton(literals, texts)
    # the same texts as one multi-valued field: each literal's outputs are fired once per event
    rules = [matcher.compile(f'{CMD} containsCIS "{lit}"', id=str(i)) for i, lit in enumerate(literals)]
    got = {literals[int(rid)] for rid in matcher.RuleSet(rules).match({CMD: texts})}
    assert got == set().union(*(pyaho_found(literals, t) for t in texts))


@pytest.mark.parametrize("n", [31, 32, 33, 63, 64, 255, 256, 257, 511, 512, 513, 767, 768, 1025])
@pytest.mark.parametrize("lit_len", [1, 2, 5, 17, 40])
def test_contains_automaton_match_across_the_middle_and_chunk_edges(n, lit_len):
    """A literal placed at every offset of an n-byte value (in particular across n // 2, 256
    and 512), in a sea of its own prefix so the automaton is deep when it crosses."""
    lit = "ab" * (lit_len // 2) + "c" * (lit_len % 2)
    literals = [lit, lit[:-1] or "z", "b" + lit, "zz"]
    literals = list(dict.fromkeys(literals))
    rules = [matcher.compile(f'{CMD} containsCIS "{x}"', id=str(i)) for i, x in enumerate(literals)]
    rs = matcher.RuleSet(rules)
    evs, want = [], []
    for off in sorted({0, 1, n // 2 - lit_len, n // 2 - 1, n // 2, 255, 256 - lit_len // 2, 511, n - lit_len} & set(range(0, n - lit_len + 1))):
        text = ("a" * off + lit.upper() + "a" * n)[:n]
        evs.append({CMD: text})
        want.append(pyaho_found(literals, text))
    got = [{literals[int(rid)] for rid in rs.match(ev)} for ev in evs]
    assert got == want
    table = pa.table({CMD: [ev[CMD] for ev in evs]})
    by_row = [set() for _ in evs]
    for row, rid in rs.scan_arrow(table):
        by_row[row].add(literals[int(rid)])
    assert by_row == want


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_contains_automaton_down_a_block_of_folded_and_raw_values(seed):
    """A block's values walked four at a time (run_lanes): ASCII ones raw, the others folded
    into the block's buffer, which grows (and may move) while other lanes still read from it.
    Every row's literals are pyahocorasick's, through mappings and Arrow."""
    rng = random.Random(seed)
    alphabet = "abAB" + "ſKKİé"
    literals = list(dict.fromkeys("".join(rng.choice("abſké") for _ in range(rng.randint(1, 6))) for _ in range(60)))
    texts = []
    for i in range(2500):
        n = rng.choice([0, 5, 40, 300, 900])
        pool = alphabet if i % 3 else "abAB"  # a third all ASCII: raw and folded lanes side by side
        texts.append("".join(rng.choice(pool) for _ in range(n)))
    rules = [matcher.compile(f'{CMD} containsCIS "{lit}"', id=str(i)) for i, lit in enumerate(literals)]
    rs = matcher.RuleSet(rules)
    want = [pyaho_found(literals, t) for t in texts]
    for rows, rids in (rs.match_arrays([{CMD: t} for t in texts]), rs.match_arrow_arrays(pa.table({CMD: texts}))):
        got = [set() for _ in texts]
        for r, u in zip(rows.tolist(), rids.tolist()):
            got[r].add(literals[u])
        assert got == want


def test_contains_automaton_large_random_sets():
    rng = random.Random(1234)
    for alphabet, nlit, maxlen in (("ab", 60, 8), ("abc", 300, 6), (string.ascii_lowercase, 2000, 10), ("aAbBé", 200, 7)):
        literals = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, maxlen))) for _ in range(nlit)]
        texts = ["".join(rng.choice(alphabet + "xY") for _ in range(rng.randint(0, 1200))) for _ in range(20)]
        check_automaton(literals, texts)
