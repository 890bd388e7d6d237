"""Where the third-party data lives: the S1QL corpus, the SigmaHQ rules and SigmaHQ's
regression data (all under the Detection Rule License 1.1).

That data is never committed to the project. Tests and benchmarks read it from one folder,
``$MATCHER_SHARED`` (default: ``shared/`` beside the checkout, i.e. ``../shared``), which holds
``corpus/``, ``sigma-rules/`` and ``sigma-regression/``. A test that needs it and does not find
it is skipped with a reason naming the path. Benchmarks import this module too (their conftest
puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MATCHER_SHARED") or ROOT.parent / "shared")


def shared_path(*parts: str) -> Path:
    """``$MATCHER_SHARED/<parts>``; skips the calling test (or module) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        import pytest

        pytest.skip(f"third-party data not found: {path} (set MATCHER_SHARED to the folder holding "
                    "corpus/, sigma-rules/ and sigma-regression/)", allow_module_level=True)
    return path


def corpus_path(sorted_keys: bool = False) -> Path:
    """The 1,648 S1QL queries converted from SigmaHQ (one JSON record per SigmaHQ rule)."""
    return shared_path("corpus", "sigmahq-s1ql-sortedkeys.jsonl" if sorted_keys else "sigmahq-s1ql.jsonl")


def sigma_rules_path() -> Path:
    """The SigmaHQ rules tree (``rules/``, ``rules-emerging-threats/``, ...; 3,780 files)."""
    return shared_path("sigma-rules")
