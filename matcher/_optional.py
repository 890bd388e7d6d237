"""Optional dependencies: the one place that knows which pip extra provides which package.

``need("pyarrow", "Parquet output")`` imports and returns the module, or raises
:class:`~matcher.errors.MissingDependency`, whose message is one line naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependency

__all__ = ["EXTRAS", "need"]

#: top-level module -> (pip distribution, extra of pyproject.toml that installs it)
EXTRAS = {
    "pyarrow": ("pyarrow", "arrow"),
    "evtx": ("evtx", "evtx"),
    "pyspark": ("pyspark", "spark"),
    "pandas": ("pandas", "spark"),
}


def need(module: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingDependency` when it cannot be imported."""
    top = module.split(".", 1)[0]
    package, extra = EXTRAS[top]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(package, extra, purpose) from None
