"""Fuzz target: the Sigma loader (YAML text -> rules) and the compiler after it.

Invariants: any text gives rules or a RuleError; a RuleError made of a crash inside pySigma (its
``__cause__`` is not a pySigma error) is a finding too: the loader's own checks must name that
case; the rules compile (or raise a MatcherError) and match an empty event without crashing.
"""

from __future__ import annotations

from _harness import instrumented, main

with instrumented():
    import matcher
    from matcher.errors import MatcherError, RuleError
    from matcher.sigma import parse_sigma
    from sigma.exceptions import SigmaError

PROFILES = (None, "s1")


def test_one_input(data: bytes) -> None:
    profile = PROFILES[data[0] % 2] if data else None
    text = data[1:].decode("utf-8", "replace")
    try:
        rules = parse_sigma(text, source="fuzz.yml", profile=profile)
    except RuleError as e:
        if e.__cause__ is not None and not isinstance(e.__cause__, SigmaError):
            raise AssertionError(f"pySigma crashed and the loader did not name the case: {e}") from e.__cause__
        return
    try:
        rs = matcher.RuleSet(rules)
    except MatcherError:
        return
    rs.match({})


if __name__ == "__main__":
    main(test_one_input)
