"""Fuzz target: the S1QL parser (``matcher.compile``) and what a parsed query feeds.

Invariants: any text gives a Rule or a MatcherError (a QuerySyntaxError for text that does not
parse); a rule that parses compiles in a RuleSet and gives the reference's verdict on an empty
event and on an event holding each predicate's own literal.
"""

from __future__ import annotations


from _harness import instrumented, main

with instrumented():
    import matcher
    from matcher import ir, reference
    from matcher.errors import MatcherError


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")  # bad bytes become lone surrogates
    try:
        rule = matcher.compile(text, id="fuzz")
    except MatcherError:
        return
    try:
        rs = matcher.RuleSet([rule])
    except MatcherError:
        return
    event = {}
    for p in ir.walk_preds(rule.ir):
        if isinstance(p.value, str):
            event.setdefault(p.field, p.value)
    for ev in ({}, event):
        got = bool(rs.match(ev))
        want = reference.evaluate(rule, ev)
        assert got == want, f"core {got}, reference {want} on {ev!r} for {text!r}"


if __name__ == "__main__":
    main(test_one_input)
