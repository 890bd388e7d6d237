"""Sigma's public loaders: what :mod:`.loader` reads, as :class:`~matcher.Rule` objects.

The loader returns rule records (:class:`~matcher.record.RuleRecord`); :mod:`matcher.api`
alone turns records into rules (``api._rules``), so these wrappers sit above it in the layers
(DESIGN.md, Layout). Same arguments as the loader's ``*_records`` functions; correlation rules
come through as :class:`~matcher.Correlation` objects."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from ..api import _rules
from . import loader
from .loader import LogsourceSpec, SigmaOptions, TreeLoad

__all__ = ["parse_sigma", "load_sigma", "load_sigma_files", "load_sigma_tree", "load_sigma_tar"]


def parse_sigma(text: str, *, source: Optional[str] = None, profile: Any = None, logsource: LogsourceSpec = None,
                s1_backend: bool = False, options: Optional[SigmaOptions] = None,
                into: Optional[TreeLoad] = None) -> list:
    """The rules of one Sigma YAML text (one document, or several: a list); profile, routing,
    filters and ``into``: :func:`matcher.sigma.loader.parse_sigma_records`."""
    return _rules(loader.parse_sigma_records(text, source=source, profile=profile, logsource=logsource,
                                             s1_backend=s1_backend, options=options, into=into))


def load_sigma(path: Union[str, "os.PathLike[str]"], *, profile: Any = None, logsource: LogsourceSpec = None,
               options: Optional[SigmaOptions] = None, filters: Any = None) -> list:
    """The rules of one Sigma YAML file (see :func:`parse_sigma`); ``filters``: filter files (or
    :class:`~matcher.sigma.filters.SigmaFilterDoc` objects) to apply to them as well."""
    return _rules(loader.load_sigma_records(path, profile=profile, logsource=logsource, options=options,
                                            filters=filters))


def _as_rules(load: TreeLoad) -> TreeLoad:
    load.rules = _rules(load.rules)
    return load


def load_sigma_files(paths: Any, *, profile: Any = None, logsource: LogsourceSpec = None, strict: bool = False,
                     options: Optional[SigmaOptions] = None, filters: Any = None) -> TreeLoad:
    """Sigma files as one load (:func:`matcher.sigma.loader.load_sigma_files_records`), rules as
    :class:`~matcher.Rule` objects."""
    return _as_rules(loader.load_sigma_files_records(paths, profile=profile, logsource=logsource, strict=strict,
                                                     options=options, filters=filters))


def load_sigma_tree(root: Union[str, "os.PathLike[str]"], *, profile: Any = None, logsource: LogsourceSpec = None,
                    strict: bool = False, options: Optional[SigmaOptions] = None, filters: Any = None) -> TreeLoad:
    """Every ``*.yml``/``*.yaml`` under ``root``, in path order
    (:func:`matcher.sigma.loader.load_sigma_tree_records`), rules as :class:`~matcher.Rule` objects."""
    return _as_rules(loader.load_sigma_tree_records(root, profile=profile, logsource=logsource, strict=strict,
                                                    options=options, filters=filters))


def load_sigma_tar(archive: Union[str, "os.PathLike[str]"], *, profile: Any = None, logsource: LogsourceSpec = None,
                   strict: bool = False, options: Optional[SigmaOptions] = None, filters: Any = None) -> TreeLoad:
    """Every ``*.yml``/``*.yaml`` member of a tar archive
    (:func:`matcher.sigma.loader.load_sigma_tar_records`), rules as :class:`~matcher.Rule` objects."""
    return _as_rules(loader.load_sigma_tar_records(archive, profile=profile, logsource=logsource, strict=strict,
                                                   options=options, filters=filters))
