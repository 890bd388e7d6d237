"""What a regular expression requires of a value, found before it runs: the literal sets every
match contains (:func:`regex_factors`, the regex's guard and extra checks), the run of one
character class every match spans (:func:`regex_run`) and its shortest match
(:func:`regex_min_len`). The compiler turns these into table predicates and checks in the core
that skip the regex on values that cannot match; a wrong answer here would lose matches, so
``tests/test_regex_factors.py`` checks each against the regex itself.

Also the literal rarity the compiler's cost model shares with the sorting of literal sets."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple, Optional

try:  # Python 3.11+
    import re._compiler as _sre_compile  # type: ignore[import-not-found]
    import re._constants as _sre_c  # type: ignore[import-not-found]
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_compile as _sre_compile  # type: ignore[no-redef]
    import sre_constants as _sre_c  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from .ops import is_linear

__all__ = ["regex_factors", "regex_run", "regex_min_len", "rarity", "IGNORECASE_UNSAFE", "RARE_CHARS",
           "EXTRA_FACTORS", "RUN_MIN"]


@lru_cache(maxsize=1 << 16)
def rarity(text: str) -> float:
    """How unlikely a literal is to occur in a value, as a probability-like number."""
    p = 1.0
    for ch in text:
        if ch in RARE_CHARS:
            p *= 0.05
        elif ch.isascii():
            p *= 0.35 if ch.isalnum() else 0.6  # separators (\\ . space -) are common
        else:
            # Event text is mostly ASCII: a literal holding a non-ASCII character is rare, so
            # rare that an OR of a thousand of them (emoji, homoglyph lists) is still a better
            # trigger than an enumerated field's equality (independence overstates the union).
            p *= 1e-6
        if p < 1e-6:
            break
    return p



# ASCII letters that RE2, under (?i), also matches to non-ASCII code points whose str.lower()
# is not that letter (the long s; the Kelvin sign lowers to k): a literal guard taken from an
# IGNORECASE regex must not contain them. tests/test_regex_factors.py re-derives it.
IGNORECASE_UNSAFE = frozenset("sS")


def _analysable(pattern: str) -> Any:
    """Python's parse of ``pattern``, when it describes what RE2 runs; else None (no prefilter).

    The prefilters are derived from ``re``'s parser. Where RE2 and ``re`` both accept a pattern
    they read it alike, RE2 matching a subset (ASCII ``\\d``/``\\w``/``\\s``, ``$`` only at the
    end), except for the POSIX classes (``[[:alpha:]]``: ``re`` reads a set of characters), and
    the counted repetitions RE2 would read as text, which :mod:`matcher.ops` refuses. Patterns
    on the backtracking engine get no prefilter at all.
    """
    if "[:" in pattern or not is_linear(pattern):
        return None
    try:
        return _sre_parse.parse(pattern)
    except Exception:  # noqa: BLE001 - no prefilter is always safe
        return None


def regex_factors(pattern: str) -> list[frozenset[str]]:
    """Sets of ASCII literals, one of each set in every match of ``pattern``; best first.

    A small version of the trigram index of Google Code Search (Russ Cox, "Regular
    Expression Matching with a Trigram Index"): each node of the parsed pattern is described
    by the exact strings it can match (when few), else the strings its matches start and end
    with; a sequence joins neighbours' ends and starts into longer required strings. Only
    ASCII is taken and letters are lowered, so a folded (case-insensitive) contains test of
    any set is implied by a match. Sets no better than a common single character are dropped.
    Empty when nothing useful is required (then the field's presence guards the regex).
    """
    parsed = _analysable(pattern)
    if parsed is None:
        return []
    flags = parsed.state.flags
    if flags & _sre_c.SRE_FLAG_VERBOSE:
        return []
    info = _seq_info(list(parsed), bool(flags & _sre_c.SRE_FLAG_IGNORECASE))
    found: list[frozenset[str]] = []
    for fs in info.factors + [x for x in (info.exact, info.prefix, info.suffix) if x]:
        fs = frozenset(fs)
        if _useful(fs) and fs not in found:
            found.append(fs)
    found.sort(key=lambda fs: (_set_rarity(fs), sorted(fs)))
    return found


#: Single characters rare enough in event text to guard a regex on their own.
RARE_CHARS = frozenset("`^~|<>{}$%&@#!;")
#: Required literal sets of a regex tested besides its guard, at most.
EXTRA_FACTORS = 3
#: Bounds on the literal sets tracked: members per set, characters per member.
SET_MAX, LIT_MAX = 16, 32


class _Info(NamedTuple):
    exact: Optional[set[str]]  # every match is one of these (None: unknown or too many)
    prefix: Optional[set[str]]  # every match starts with one of these
    suffix: Optional[set[str]]  # every match ends with one of these
    factors: list[set[str]]  # every match contains one string of each set


_NOTHING = _Info(None, None, None, [])


def _useful(fs: frozenset[str]) -> bool:
    return bool(fs) and all(len(x) >= 2 or x in RARE_CHARS for x in fs)


def _set_rarity(fs: frozenset[str]) -> float:
    """How unlikely it is that a value contains one of ``fs`` (only the order matters)."""
    return sum(rarity(x) for x in fs)


def _cross(a: set[str], b: set[str]) -> Optional[set[str]]:
    if len(a) * len(b) > SET_MAX:
        return None
    out = {x + y for x in a for y in b}
    return out if all(len(x) <= LIT_MAX for x in out) else None


def _char(op, arg, icase: bool) -> Optional[set[str]]:
    """The lowered ASCII characters one regex item matches, if it is one such character."""
    if op is _sre_c.LITERAL:
        chars = [arg]
    elif op is _sre_c.IN and all(o is _sre_c.LITERAL for o, _ in arg) and len(arg) <= 8:
        chars = [a for _, a in arg]
    else:
        return None
    out = set()
    for c in chars:
        ch = chr(c)
        if not ch.isascii() or (icase and ch in IGNORECASE_UNSAFE):
            return None
        out.add(ch.lower())
    return out


def _seq_info(items: list, icase: bool) -> _Info:
    """Describe a sequence: exact strings while every item is exact, else joined factors."""
    exact: Optional[set[str]] = {""}
    prefix: Optional[set[str]] = None
    tail: Optional[set[str]] = {""}  # what the match so far ends with
    factors: list[set[str]] = []
    for op, arg in items:
        it = _item_info(op, arg, icase)
        factors.extend(it.factors)
        if it.exact is not None:
            if exact is not None:
                exact = _cross(exact, it.exact)
                if exact is None:  # too many: the strings so far become the prefix
                    prefix = tail
            joined = _cross(tail, it.exact) if tail is not None else None
            if joined is None:
                if tail is not None:
                    factors.append(tail)
                joined = set(it.exact)
            tail = joined
            continue
        # An inexact item: what came before, joined to its start, is required.
        start = _cross(tail, it.prefix) if tail is not None and it.prefix is not None else None
        if start is not None:
            factors.append(start)
        else:
            if tail is not None:
                factors.append(tail)
            if it.prefix is not None:
                factors.append(it.prefix)
        if exact is not None:
            prefix = start if start is not None else tail
            exact = None
        tail = it.suffix
    if exact is not None:
        return _Info(exact, exact, exact, factors)
    if tail is not None:
        factors.append(tail)
    return _Info(None, prefix or None, tail or None, factors)


def _item_info(op, arg, icase: bool) -> _Info:
    chars = _char(op, arg, icase)
    if chars is not None:
        return _Info(chars, chars, chars, [])
    if op is _sre_c.AT:  # anchors and \b match the empty string
        return _Info({""}, {""}, {""}, [])
    if op is _sre_c.SUBPATTERN:
        _group, add, remove, body = arg
        sub_icase = (icase or bool(add & _sre_c.SRE_FLAG_IGNORECASE)) and not (remove & _sre_c.SRE_FLAG_IGNORECASE)
        return _seq_info(list(body), sub_icase)
    if op is _sre_c.BRANCH:
        infos = [_seq_info(list(b), icase) for b in arg[1]]
        exact = _union([i.exact for i in infos])
        if exact is not None:
            return _Info(exact, exact, exact, [])
        # Each branch's best requirement: one of them holds whichever branch matched.
        best = []
        for i in infos:
            cands = [frozenset(x) for x in i.factors + [i.prefix, i.suffix] if x]
            cands = [c for c in cands if _useful(c)]
            if not cands:
                best = []
                break
            best.append(min(cands, key=_set_rarity))
        factors = [set().union(*best)] if best else []
        return _Info(None, _union([i.prefix for i in infos]), _union([i.suffix for i in infos]), factors)
    if op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT):
        lo, hi, body = arg
        if hi == 0:
            return _Info({""}, {""}, {""}, [])
        if lo == 0:
            return _NOTHING
        b = _seq_info(list(body), icase)
        if b.exact is not None:
            if lo == hi and lo <= 3:
                ex: Optional[set[str]] = {""}
                for _ in range(lo):
                    ex = _cross(ex, b.exact) if ex is not None else None
                if ex is not None:
                    return _Info(ex, ex, ex, [])
            return _Info(None, b.exact, b.exact, [b.exact])
        return _Info(None, b.prefix, b.suffix, b.factors)
    return _NOTHING


def _union(sets: list[Optional[set[str]]]) -> Optional[set[str]]:
    if any(s is None for s in sets):
        return None
    out: set[str] = set().union(*sets)  # type: ignore[arg-type]
    return out if len(out) <= SET_MAX else None


#: A regex that needs a run of at least this many characters of one class gets a run check.
RUN_MIN = 4


def regex_run(pattern: str) -> Optional[tuple[bytes, int]]:
    """A byte class and a length k such that every match spans k consecutive characters of
    the class, or None. The class (a 256-bit map) holds the ASCII characters the regex's
    repeated item admits and every byte >= 0x80, so a run of k such characters is a run of
    at least k such bytes in UTF-8 or Latin-1 text: the core skips the regex on a value
    without one. E.g. ``\\s[a-fA-F0-9]{64}`` needs 64 hex digits in a row.
    """
    parsed = _analysable(pattern)
    if parsed is None:
        return None
    best: Optional[tuple[bytes, int]] = None
    best_score = 0.0
    for body, k in _required_repeats(list(parsed)):
        if k < RUN_MIN:
            continue
        try:
            rx = _sre_compile.compile(_sre_parse.SubPattern(parsed.state, list(body)), parsed.state.flags)
        except Exception:  # noqa: BLE001
            continue
        members = [c for c in range(128) if rx.fullmatch(chr(c))]
        if any(rx.fullmatch(chr(c) + chr(c)) for c in range(128)):
            continue  # not a single-character item
        if len(members) > 100:
            continue
        score = k * (1.0 - len(members) / 128.0)
        if score > best_score:
            bitmap = bytearray(32)
            for c in list(members) + list(range(128, 256)):
                bitmap[c >> 3] |= 1 << (c & 7)
            best, best_score = (bytes(bitmap), k), score
    return best


def _required_repeats(items: list):
    """(body, minimum) of the repeats every match goes through (not under a branch)."""
    for op, arg in items:
        if op is _sre_c.SUBPATTERN:
            if not (arg[1] or arg[2]):  # local flags would change the class: leave those
                yield from _required_repeats(list(arg[3]))
        elif op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT) and arg[0] >= 1:
            body = list(arg[2])
            if len(body) == 1 and body[0][0] in (_sre_c.IN, _sre_c.LITERAL, _sre_c.NOT_LITERAL, _sre_c.ANY):
                yield body, arg[0]
            else:
                yield from _required_repeats(body)


def regex_min_len(pattern: str) -> int:
    """The fewest characters a match of ``pattern`` spans (0 when unknown)."""
    parsed = _analysable(pattern)
    try:
        return 0 if parsed is None else min(int(parsed.getwidth()[0]), 1 << 30)
    except Exception:  # noqa: BLE001
        return 0
