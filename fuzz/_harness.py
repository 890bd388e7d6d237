"""What every fuzz target shares: the import path, atheris setup, and the one invariant that
holds for every surface: only :class:`matcher.MatcherError` escapes (a hang, a crash, any other
exception is a finding). ``fuzz/run.py`` runs the targets; ``fuzz/README.md`` says how."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' strategies and oracles
if importlib.util.find_spec("matcher") is None:  # matcher installed (CI) or on PYTHONPATH, else this checkout
    sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402

#: Modules whose Python code is instrumented for coverage (the compiled core is not).
INSTRUMENTED = ["matcher", "sigma", "yaml"]


def instrumented():
    """A context manager: imports inside it are instrumented (``atheris.instrument_imports``)."""
    return atheris.instrument_imports(include=INSTRUMENTED)


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under libFuzzer with this process's command line (corpus
    directories or reproducer files, ``-max_total_time=``, ``-timeout=``, ...)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def ruleset_and_reference(nodes, evs):
    """The RuleSet of generated rule trees and the reference's (event index, rule id) pairs on
    ``evs``; ``None`` when the rules do not compile (a MatcherError, which is allowed)."""
    from test_differential import make_rules, reference_pairs

    import matcher
    from matcher.errors import MatcherError

    rules = make_rules(nodes)
    try:
        rs = matcher.RuleSet(rules)
    except MatcherError:
        return None
    return rs, reference_pairs(rules, evs)
