"""The exception tree. Every error matcher raises on purpose derives from :class:`MatcherError`.

``MatcherError`` is a ``ValueError`` (as pySigma's ``SigmaError`` and msgspec's ``DecodeError``),
so callers that already catch ``ValueError`` around rule loading keep working.
"""

from __future__ import annotations

__all__ = [
    "ArrowDataError",
    "MatcherError",
    "QuerySyntaxError",
    "RegexBudgetExceeded",
    "RegexBudgetWarning",
    "RegexError",
    "RuleError",
    "RuleSyntaxError",
    "UnprintableQueryError",
    "UnsatisfiableRule",
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


class RuleSyntaxError(QuerySyntaxError, RuleError):
    """A rule document that is malformed at a known place: a YAML syntax error, or a Sigma
    document whose shape or values are wrong. Both a :class:`QuerySyntaxError` (``offset``,
    ``line``, ``column``, ``source``, a caret under the place) and a :class:`RuleError`.
    ``rule_id`` is the rule's ``id`` when the document has a readable one, else ``None``.
    """

    def __init__(self, message: str, text: str, offset: int, *, source: str | None = None,
                 rule_id: str | None = None):
        self.rule_id = rule_id
        super().__init__(f"rule {rule_id}: {message}" if rule_id else message, text, offset, source=source)


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


class UnsatisfiableRule(MatcherError):
    """A rule no event can match (``matcher.testing``), or with ``always`` one every event matches.

    ``proven`` is True when the rule's structure shows it (every conjunction of its predicates
    contradicts itself, e.g. ``x EXISTS AND NOT x EXISTS``), False when a bounded search over
    ``searched`` conjunctions found no event.
    """

    def __init__(self, rule: str, proven: bool, searched: int, *, always: bool = False):
        self.rule = rule
        self.proven = proven
        self.searched = searched
        self.always = always
        what = "every event matches it" if always else "no event can match it"
        how = ("its predicates contradict each other in every branch" if proven
               else f"none found in a search of {searched} branch(es)")
        super().__init__(f"{rule}: {what} ({how})")


class RegexError(RuleError):
    """A regular expression that cannot run (``docs/semantics.md``, section RegExp).

    ``pattern`` is the expression, ``offset`` the 0-based offset in it where the problem is
    (best effort: RE2 names the offending text, not its position), ``reason`` the engine's
    message. ``backtracking`` is true when the backtracking engine could run the pattern (a
    backreference or a lookaround), i.e. when the caller may opt in with
    ``regex="backtracking"``. ``str()`` shows the pattern with a caret.
    """

    def __init__(self, reason: str, pattern: str, offset: int = 0, *, backtracking: bool = False):
        self.reason = reason
        self.pattern = pattern
        self.offset = max(0, min(offset, len(pattern)))
        self.backtracking = backtracking
        hint = (" (it needs a backtracking engine: opt in with regex=\"backtracking\", "
                "or --regex backtracking on the command line)") if backtracking else ""
        super().__init__(f"invalid regular expression: {reason}{hint}")

    def excerpt(self) -> str:
        """The pattern (at most ~100 characters around the offset) and a caret line."""
        lo = max(0, self.offset - 50)
        hi = min(len(self.pattern), lo + 100)
        shown = "".join(ch if ch.isprintable() else "?" for ch in self.pattern[lo:hi])
        pre = "..." if lo else ""
        return f"  {pre}{shown}{'...' if hi < len(self.pattern) else ''}\n  {' ' * (len(pre) + self.offset - lo)}^"

    def __str__(self) -> str:
        return f"{self.args[0]} at offset {self.offset} of the pattern\n{self.excerpt()}"


class RegexBudgetExceeded(MatcherError):
    """A backtracking regex (opted in) ran past its time budget on one value: no verdict.

    Raised by the reference evaluator; the compiled core counts it instead (``RuleSet.regex_overruns``)
    and warns with :class:`RegexBudgetWarning`.
    """

    def __init__(self, pattern: str, length: int, budget: float):
        self.pattern = pattern
        self.length = length
        self.budget = budget
        super().__init__(f"regex {pattern!r} ran past its budget of {budget:g} s on a value of "
                         f"{length} characters: no verdict")


class RegexBudgetWarning(RuntimeWarning):
    """A backtracking regex ran past its budget while a RuleSet matched: the predicate was taken
    as false for that event (so a rule may have missed, or under NOT matched). ``rules`` are
    the ids of the rules using it, ``event`` the event's index in the call (``scan``: in the
    whole stream; Arrow: the row), ``field`` the field; the message names them all."""

    def __init__(self, message: str, *, rules: tuple = (), event: int = -1, field: str = ""):
        super().__init__(message)
        self.rules = rules
        self.event = event
        self.field = field


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
