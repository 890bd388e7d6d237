"""Sigma rules as a second front end: pySigma parses, :mod:`.translate` writes matcher's IR.

Semantics, supported and unsupported features: ``docs/sigma.md``. The loaders that return
:class:`~matcher.Rule` objects (``parse_sigma``, ``load_sigma``, ``load_sigma_*``) are
:mod:`.public`, above :mod:`matcher.api`; they are imported on first use, so that importing the
front end (:mod:`.loader`, which returns rule records) does not import the api.
"""

from typing import Any

from .loader import SIGMA_SUFFIXES, SigmaOptions, TreeLoad, load_filters
from .logsource import logsource_filter, route
from .translate import translate_rule

_RULES = ("parse_sigma", "load_sigma", "load_sigma_files", "load_sigma_tree", "load_sigma_tar")

__all__ = ["SIGMA_SUFFIXES", "TreeLoad", "load_sigma", "load_sigma_tar", "load_sigma_tree", "parse_sigma",
           "SigmaOptions", "load_sigma_files", "load_filters", "route",
           "logsource_filter",
           "translate_rule"]


def __getattr__(name: str) -> Any:
    if name in _RULES:
        from . import public

        return getattr(public, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_RULES))
