"""The reference's operator functions against oracles that share no code with them.

The core hands regexes, numeric comparisons, CIDR tests, field references and keywords back to
Python, and there it calls the very functions the reference runs (``matcher.ops.REFERENCE`` and
``EVENT_REFERENCE``): the differential tests compare them with themselves and cannot catch a
bug in them. Here each is checked against a second implementation written for the test:
integer prefix arithmetic for CIDR, exact fractions for comparisons, Python's ``re`` for
patterns both engines read alike, a dynamic-programming glob for keywords, plain loops for
field references. ``docs/semantics.md`` is what both sides implement.
"""

from __future__ import annotations

import re
from fractions import Fraction

from helpers import scaled
from hypothesis import example, given, settings
from hypothesis import strategies as st

from matcher.ir import Glob, Op, Pred, Wild
from matcher.ops import EVENT_REFERENCE, REFERENCE

# -- CIDR: integer arithmetic ----------------------------------------------------------------


def _ipv4(n: int) -> str:
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def _ipv6(n: int, compress: bool) -> str:
    groups = [(n >> s) & 0xFFFF for s in range(112, -1, -16)]
    words = [f"{g:x}" for g in groups]
    if not compress:
        return ":".join(words)
    best, start = (0, -1), None  # the longest run of zero groups (two or more) becomes "::"
    for i, g in enumerate(groups + [1]):
        if g == 0 and start is None:
            start = i
        elif g != 0 and start is not None:
            if i - start > best[0]:
                best = (i - start, start)
            start = None
    if best[0] < 2:
        return ":".join(words)
    length, at = best
    return ":".join(words[:at]) + "::" + ":".join(words[at + length:])


@settings(max_examples=scaled(300))
@given(version=st.sampled_from([4, 6]), data=st.data())
@example(version=4, data=None)
def test_cidr_is_prefix_arithmetic(version, data):
    if data is None:  # one fixed case: 10.1.2.3 in 10.0.0.0/8
        addr, net, prefix, compress = 0x0A010203, 0x0A000000, 8, False
    else:
        bits = 32 if version == 4 else 128
        net = data.draw(st.integers(0, 2**bits - 1))
        prefix = data.draw(st.integers(0, bits))
        addr = data.draw(st.integers(0, 2**bits - 1))
        if data.draw(st.booleans()):  # a near miss or a hit: share the prefix, maybe flip one bit
            keep = ((1 << prefix) - 1) << (bits - prefix)
            addr = (net & keep) | (addr & ~keep & (2**bits - 1))
            if prefix and data.draw(st.booleans()):
                addr ^= 1 << (bits - data.draw(st.integers(1, prefix)))
        compress = data.draw(st.booleans())
    bits = 32 if version == 4 else 128
    text = _ipv4(addr) if version == 4 else _ipv6(addr, compress)
    literal = (_ipv4(net) if version == 4 else _ipv6(net, not compress)) + f"/{prefix}"
    expected = (addr >> (bits - prefix)) == (net >> (bits - prefix))
    assert bool(REFERENCE[Op.CIDR](text, literal)) is expected, (text, literal)


def test_cidr_needs_exactly_one_address_of_the_network_family():
    cidr = REFERENCE[Op.CIDR]
    for text in ("", "10.1.2", "10.1.2.3.4", "10.1.2.256", "a.b.c.d", "10.1.2.3/32", "10.1.2.3 10.1.2.4",
                 "::1::", "12345::", "10.1.2.3x"):
        assert not cidr(text, "10.0.0.0/8"), text
        assert not cidr(text, "::/0"), text
    assert cidr("10.1.2.3", "0.0.0.0/0") and not cidr("10.1.2.3", "::/0")
    assert cidr("::1", "::/0") and not cidr("::1", "0.0.0.0/0")
    assert cidr("10.255.255.255", "10.1.2.3/8")  # host bits in the literal are allowed (Sigma)


# -- comparisons: exact fractions ---------------------------------------------------------------

#: Decimal texts of at most 15 significant digits, well inside the normal doubles: ``float``
#: rounds them to distinct doubles in the same order, so comparing floats is comparing fractions.
_DECIMAL = st.builds(
    lambda sign, whole, frac, exp, pad: f"{pad}{sign}{whole}{'.' + frac if frac else ''}{exp}{pad}",
    st.sampled_from(["", "-", "+"]),
    st.integers(0, 10**8).map(str),
    st.text("0123456789", max_size=6),
    st.sampled_from(["", "", "", "e3", "E-2", "e+10", "e-290", "e290"]),
    st.sampled_from(["", "", " "]),
)
_NOT_NUMBERS = ["", "abc", "1.2.3", "0x10", "--1", "1,5", "nan", "NaN", "1e", "e5"]


@settings(max_examples=scaled(400))
@given(a=_DECIMAL | st.sampled_from(_NOT_NUMBERS), b=_DECIMAL | st.sampled_from(_NOT_NUMBERS))
@example(a="10", b="9")  # text order would say otherwise
@example(a="-0", b="0")
@example(a="1.50", b="1.5")
def test_comparisons_are_exact_number_order(a, b):
    def exact(t: str):
        return None if t in _NOT_NUMBERS else Fraction(t.strip())

    x, y = exact(a), exact(b)
    for op, test in ((Op.LT, Fraction.__lt__), (Op.LE, Fraction.__le__), (Op.GT, Fraction.__gt__),
                     (Op.GE, Fraction.__ge__)):
        expected = x is not None and y is not None and test(x, y)
        assert bool(REFERENCE[op](a, b)) is expected, (a, op.name, b)


def test_comparisons_with_infinities():
    assert REFERENCE[Op.GT]("inf", "1e308") and REFERENCE[Op.LT]("-Infinity", "-1e308")
    assert not REFERENCE[Op.LT]("nan", "1") and not REFERENCE[Op.GE]("nan", "1")


# -- regular expressions: a second engine ---------------------------------------------------------

#: Patterns RE2 and Python's ``re`` read alike on ASCII text without newlines: literals,
#: classes, ``.``, ``\d``, groups, alternation, the greedy and lazy quantifiers, anchors.
_ATOMS = st.sampled_from(["a", "b", "c", "1", " ", r"\.", ".", "[ab]", "[^a]", "[a-c1]", r"\d", r"\w", r"\s", r"\b",
                          "^", "$"])
_QUANT = st.sampled_from(["", "", "", "*", "+", "?", "{2}", "{1,2}", "{0,3}", "*?", "+?"])


def _pattern(depth: int = 2):
    piece = st.tuples(_ATOMS, _QUANT).map(lambda t: t[0] + (t[1] if t[0] not in ("^", "$", r"\b") else ""))
    if depth:
        piece = piece | st.tuples(st.lists(st.deferred(lambda: _pattern(depth - 1)), min_size=1, max_size=3),
                                  _QUANT).map(lambda t: "(" + "|".join(t[0]) + ")" + t[1])
    return st.lists(piece, min_size=1, max_size=5).map("".join)


@settings(max_examples=scaled(500))
@given(pattern=_pattern(), text=st.text("abcAB1 .\t", max_size=12), flags=st.sampled_from(["", "(?i)", "(?s)"]))
@example(pattern="a.c", text="abc", flags="")
@example(pattern="^b", text="ab", flags="")
def test_regex_search_agrees_with_python_re(pattern, text, flags):
    expected = re.search(flags + pattern, text, re.ASCII) is not None
    assert bool(REFERENCE[Op.REGEX](text, flags + pattern)) is expected, (flags + pattern, text)


# -- keywords: a glob by dynamic programming over every string value -----------------------------


def _glob_dp(parts, text: str) -> bool:
    tokens: list = []
    for p in parts:
        tokens.extend(p if isinstance(p, str) else [p])
    # reach[j]: the first i tokens match text[:j]
    reach = [True] + [False] * len(text)
    for tok in tokens:
        nxt = [False] * (len(text) + 1)
        for j in range(len(text) + 1):
            if tok is Wild.ANY:
                nxt[j] = reach[j] or (j > 0 and nxt[j - 1])
            elif j > 0 and reach[j - 1] and (tok is Wild.ONE or tok == text[j - 1]):
                nxt[j] = True
        reach = nxt
    return reach[len(text)]


def _strings(v):
    if type(v) is str:
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)


_CHARS = "abAB*?\\İKσΣς"
_LEAF = st.text(_CHARS, max_size=6) | st.integers(-3, 3) | st.none() | st.booleans()
_VALUES = st.recursive(_LEAF, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from("xyz"), c, max_size=3),
                       max_leaves=8)
_GLOB_PARTS = st.lists(st.text(_CHARS, min_size=1, max_size=3) | st.sampled_from([Wild.ANY, Wild.ONE]), max_size=4)


@settings(max_examples=scaled(400))
@given(parts=_GLOB_PARTS, event=st.dictionaries(st.sampled_from(["F", "G", "H"]), _VALUES, max_size=3))
def test_keyword_is_a_glob_over_every_string_value(parts, event):
    glob = Glob.of(*parts)
    folded = [p.lower() if isinstance(p, str) else p for p in glob.parts]
    expected = any(_glob_dp(folded, s.lower()) for s in _strings(event))
    assert bool(EVENT_REFERENCE[Op.KEYWORD](event, Pred("", Op.KEYWORD, glob))) is expected


# -- field references: plain loops ----------------------------------------------------------------

_FIELDREF = {
    Op.FIELDREF: lambda a, b: a == b,
    Op.FIELDREF_CONTAINS: lambda a, b: b in a,
    Op.FIELDREF_STARTSWITH: lambda a, b: a[: len(b)] == b,
    Op.FIELDREF_ENDSWITH: lambda a, b: len(b) <= len(a) and a[len(a) - len(b):] == b,
}
_FIELD_VALUE = st.none() | st.text("abAB İK", max_size=4) | st.lists(st.text("abAB İK", max_size=4), max_size=3)


@settings(max_examples=scaled(400))
@given(op=st.sampled_from(sorted(_FIELDREF, key=lambda o: o.name)),
       event=st.dictionaries(st.sampled_from(["F", "G"]), _FIELD_VALUE, max_size=2))
@example(op=Op.FIELDREF, event={"F": "Ab", "G": ["x", "aB"]})
def test_fieldref_compares_every_pair_of_folded_texts(op, event):
    def texts(name):
        v = event.get(name)
        if v is None:
            return []
        return [v] if isinstance(v, str) else list(v)

    expected = any(_FIELDREF[op](a.lower(), b.lower()) for a in texts("F") for b in texts("G"))
    assert bool(EVENT_REFERENCE[op](event, Pred("F", op, "G"))) is expected
