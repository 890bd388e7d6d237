"""Shared test configuration: hypothesis profiles and the 'Exception ignored' guard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import matcher

# Every subprocess a test starts (`python -m matcher`, `python -c`) imports the matcher this
# process imported: the installed package in CI, the source tree in a development checkout. The
# package's folder goes first on PYTHONPATH, and PYTHONSAFEPATH keeps `-m`/`-c` from putting the
# working directory (the source tree, which has no compiled core unless built in place) first.
MATCHER_PATH = str(Path(matcher.__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = MATCHER_PATH + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
os.environ["PYTHONSAFEPATH"] = "1"

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _no_ignored_exceptions(capfd):
    """Fail a test if Cython swallowed an exception ('Exception ignored in ...')."""
    yield
    _, err = capfd.readouterr()
    assert "Exception ignored" not in err, err
