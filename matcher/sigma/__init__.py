"""Sigma rules as a second front end: pySigma parses, :mod:`.translate` writes matcher's IR.

Semantics, supported and unsupported features: ``docs/sigma.md``.
"""

from .loader import (SIGMA_SUFFIXES, SigmaOptions, TreeLoad, load_filters, load_sigma, load_sigma_files, load_sigma_tar,
                     load_sigma_tree, parse_sigma)
from .logsource import logsource_filter, route
from .translate import translate_rule

__all__ = ["SIGMA_SUFFIXES", "TreeLoad", "load_sigma", "load_sigma_tar", "load_sigma_tree", "parse_sigma",
           "SigmaOptions", "load_sigma_files", "load_filters", "route",
           "logsource_filter",
           "translate_rule"]
