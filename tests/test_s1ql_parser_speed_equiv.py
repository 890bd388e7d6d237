"""The S1QL parser's fast path reads exactly what its general code reads.

``matcher.s1ql.parser`` reads common operands with one regex match (``_OPERAND``, and
``_LIST_ITEM`` inside In-lists) and leaves the rest to the general code. Switching those two
patterns off sends every operand through the general code; the IR, or the error (message and
offset), must not change. Inputs: the corpus, and text built from the pieces where the lexical
rules L1-L3 bite (backslashes, quotes, stars, keywords, whitespace, non-ASCII letters).
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import corpus_queries
from shared_data import corpus_path
from matcher import QuerySyntaxError
from matcher.s1ql import parser

NEVER = re.compile(r"(?!)")

PIECES = [
    '"', "\\", '\\"', "\\*", "*", "(", ")", " AND ", " OR ", "NOT ", ",", "1", "-2.5", " ", "\t", "\n",
    "\f", "\v", "\u00e9", "\u017f", "\u0130", "\u0131", "\u212a", "\u2013", "and", "or", "not", "AnD",
    " In (", " In Contains AnyCase (", ' containsCIS "', ' ContainsCis "', ' endswithCIS "', ' startswithcis "',
    ' = "', " = ", ' RegExp "', " IS NOT EMPTY", " EXISTS", ">", "<=", "==", "true", "'", ".", "a.b",
    "_", "x", "Field", "TgtProcImagePath", '"a",', "Field containsCIS \"", "Field = \"", ")OR", '"AND',
    "containsCIS", "cont\u017finsCIS", "ORx", "AND(", '""',
]


def outcome(text: str):
    try:
        return repr(parser.parse(text))
    except QuerySyntaxError as e:
        return (e.message, e.offset)


def general_outcome(text: str):
    """``outcome`` with the fast path switched off."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parser, "_OPERAND", NEVER)
        mp.setattr(parser, "_LIST_ITEM", NEVER)
        return outcome(text)


def test_fast_path_is_taken():
    """The comparison below means something only if the fast path reads the common tokens."""
    m = parser._OPERAND.match('  TgtProcImagePath endswithCIS "\\w3wp.exe" OR')
    assert m is not None and m.lastgroup == "OR"
    assert m.group("field", "word", "value") == ("TgtProcImagePath", "endswithCIS", "\\w3wp.exe")


def test_corpus_fast_equals_general():
    queries = list(corpus_queries(corpus_path()).values())
    assert len(queries) == 1648
    for q in queries:
        assert outcome(q) == general_outcome(q), q


def test_corpus_mutants_fast_equal_general():
    rng = random.Random(20240601)
    queries = [q for q in corpus_queries(corpus_path()).values() if len(q) < 2000]
    for _ in range(3000):
        q = list(rng.choice(queries))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(q) + 1)
            if rng.random() < 0.3:
                del q[i : i + rng.choice((1, 2, 5))]
            else:
                q[i:i] = rng.choice(PIECES)
        text = "".join(q)
        assert outcome(text) == general_outcome(text), text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_pieces_fast_equal_general(pieces):
    text = "".join(pieces)
    assert outcome(text) == general_outcome(text), text
