"""matcher: compile S1QL and Sigma detection rules into one fast matching program.

>>> import matcher
>>> rule = matcher.compile('TgtProcImagePath endswithCIS "\\\\cmd.exe"')
>>> rule.match({"TgtProcImagePath": r"C:\\Windows\\System32\\CMD.EXE"})
True
"""

from . import reference
from .api import Rule, RuleSet, builtin, builtin_names, compile, load, load_rules
from .correlation import Alert, Correlation
from .errors import MatcherError, QuerySyntaxError, RuleError, UnprintableQueryError

__all__ = [
    "Rule",
    "RuleSet",
    "compile",
    "load",
    "load_rules",
    "Correlation",
    "Alert",
    "builtin",
    "builtin_names",
    "reference",
    "MatcherError",
    "QuerySyntaxError",
    "RuleError",
    "UnprintableQueryError",
]
__version__ = "0.1.0"
