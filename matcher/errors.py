"""The exception tree. Every error matcher raises on purpose derives from :class:`MatcherError`.

``MatcherError`` is a ``ValueError`` (as pySigma's ``SigmaError`` and msgspec's ``DecodeError``),
so callers that already catch ``ValueError`` around rule loading keep working.
"""

from __future__ import annotations

__all__ = [
    "ArrowDataError",
    "MatcherError",
    "QuerySyntaxError",
    "RuleError",
    "UnprintableQueryError",
    "UnsupportedFeature",
    "MissingDependency",
    "ArgumentError",
    "MissingRuntime",
]


class MatcherError(ValueError):
    """Root of every error raised by matcher."""


class QuerySyntaxError(MatcherError):
    """A query that does not parse, or uses an operator outside the grammar.

    ``offset`` is the 0-based character offset in the query text, ``line`` and ``column``
    are 1-based. ``str()`` shows the message, the position, the offending line and a caret.
    """

    def __init__(self, message: str, query: str, offset: int, *, source: str | None = None):
        offset = max(0, min(offset, len(query)))
        self.message = message
        self.query = query
        self.offset = offset
        self.source = source
        self.line = query.count("\n", 0, offset) + 1
        line_start = query.rfind("\n", 0, offset) + 1
        self.column = offset - line_start + 1
        super().__init__(message)

    def __str__(self) -> str:
        line_start = self.query.rfind("\n", 0, self.offset) + 1
        line_end = self.query.find("\n", self.offset)
        if line_end < 0:
            line_end = len(self.query)
        text = self.query[line_start:line_end]
        caret_col = self.column - 1
        # Keep the excerpt readable for one-line queries of many kilobytes.
        width = 100
        if len(text) > width:
            lo = max(0, caret_col - width // 2)
            hi = min(len(text), lo + width)
            lo = max(0, hi - width)
            prefix = "..." if lo > 0 else ""
            suffix = "..." if hi < len(text) else ""
            caret_col = caret_col - lo + len(prefix)
            text = prefix + text[lo:hi] + suffix
        # Control characters would shift the caret: show them as spaces.
        shown = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in text)
        where = f"{self.source}:" if self.source else ""
        return (
            f"{self.message} at {where}line {self.line}, column {self.column}\n"
            f"  {shown}\n"
            f"  {' ' * caret_col}^"
        )


class ArrowDataError(MatcherError):
    """Arrow data whose buffers contradict its own metadata (string offsets or dictionary
    indices out of range, a buffer too short for the array's length), or a field name that
    two columns share. ``column`` names the column."""

    def __init__(self, message: str, column: str):
        self.column = column
        super().__init__(f"column {column!r}: {message}")


class RuleError(MatcherError):
    """A rule document that cannot be read (missing query, bad card, unreadable file)."""


class UnprintableQueryError(MatcherError):
    """An IR value that S1QL's escaping cannot express unambiguously (see DESIGN.md)."""


class UnsupportedFeature(RuleError):
    """A rule that uses a feature matcher does not implement (e.g. Sigma placeholders).

    ``rule`` names the rule (its file or id), ``feature`` the feature, ``detail`` the text
    that uses it.
    """

    def __init__(self, rule: str, feature: str, detail: str = ""):
        self.rule = rule
        self.feature = feature
        self.detail = detail
        where = f" ({detail})" if detail else ""
        super().__init__(f"{rule}: unsupported feature: {feature}{where}")


class MissingDependency(MatcherError):
    """An optional package a feature needs is not installed (``extra`` names the pip extra).

    ``str()`` is one line naming the package and how to install it.
    """

    def __init__(self, package: str, extra: str, purpose: str):
        self.package = package
        self.extra = extra
        self.purpose = purpose
        super().__init__(f"{purpose} needs the optional package {package}, which is not installed: "
                         f"pip install 'matcher[{extra}]' (from a source checkout: pip install '.[{extra}]')")


class ArgumentError(MatcherError, TypeError):
    """An API function was given an argument of the wrong kind; the message says what was given
    and what is wanted. A ``TypeError`` too, as Python's own argument errors."""


class MissingRuntime(MatcherError):
    """A program an optional feature needs is not installed (Java for Spark); the message is
    one line saying what to install."""
