"""Shared test configuration: hypothesis profiles and the 'Exception ignored' guard."""

from __future__ import annotations

import os

import pytest
from helpers import subprocesses_import_this_matcher
from hypothesis import HealthCheck, settings

subprocesses_import_this_matcher()

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
