"""Helpers shared by several test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
from hypothesis import settings

import matcher
from matcher import reference
from matcher.record import RuleInfo

ROOT = Path(__file__).resolve().parent.parent

def subprocesses_import_this_matcher() -> None:
    """Make every subprocess a test or benchmark starts (``python -m matcher``, ``python -c``)
    import the matcher this process imported: the installed package in CI, the source tree in a
    development checkout. The package's folder goes first on PYTHONPATH, and PYTHONSAFEPATH
    keeps ``-m``/``-c`` from putting the working directory (a source tree, which has no compiled
    core unless built in place) first. Called by tests/conftest.py and benchmarks/conftest.py."""
    import matcher

    here = str(Path(matcher.__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = here + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    os.environ["PYTHONSAFEPATH"] = "1"


#: What building an Arrow table from Python values may raise (lone surrogates, huge ints, ...).
ARROW_BUILD_ERRORS = (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError)


def corpus_queries(path: Path) -> dict[str, str]:
    """id -> query for every corpus record with a query."""
    out = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("query") is not None:
                out[rec["id"]] = rec["query"]
    return out


def arrow_table(events, string_type=None):
    """Events as a pyarrow Table with a ``__row__`` column (missing key -> null), or None if
    Arrow cannot hold them (lone surrogates, huge ints, mixed types, empty structs...)."""
    string_type = string_type or pa.string()
    keys: list[str] = []
    for ev in events:
        for k in ev:
            if k not in keys:
                keys.append(k)
    try:
        cols = {"__row__": pa.array(list(range(len(events))), type=pa.int64())}
        for k in keys:
            vals = [ev.get(k) for ev in events]
            if all(v is None or isinstance(v, str) for v in vals):
                cols[k] = pa.array(vals, type=string_type)
            else:
                cols[k] = pa.array(vals)
        return pa.table(cols)
    except ARROW_BUILD_ERRORS:
        return None


def scaled(n: int) -> int:
    """``n`` examples under the default ``ci`` profile (200 examples), scaled with the profile
    in use (``HYPOTHESIS_PROFILE=long`` runs 25 times as many, ``dev`` a quarter)."""
    return max(5, n * settings.default.max_examples // 200)


def short(obj, limit: int = 300) -> str:
    """``repr(obj)`` cut at ``limit`` characters (for assertion messages); never raises."""
    try:
        text = repr(obj)
    except (RecursionError, ValueError):
        return f"<{type(obj).__name__}>"
    return text if len(text) <= limit else text[:limit] + f"...<{len(text)} chars>"


def make_rule(node, rid: str = "r0") -> matcher.Rule:
    """A Rule of an IR tree, its id and title ``rid``."""
    return matcher.Rule(node, RuleInfo(id=rid, title=rid))


def utf8_ok(s: str) -> bool:
    """Whether ``s`` encodes as UTF-8 (no lone surrogates): whether Arrow can hold it."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_column(col, enc: str):
    """A string Array or ChunkedArray re-encoded as ``enc``."""
    if enc == "string":
        return col
    if enc == "large_string":
        return col.cast(pa.large_string())
    if enc == "string_view":
        return col.cast(pa.string_view())
    if enc == "dict32":
        return col.dictionary_encode()  # int32 indices
    if enc == "dict8":
        return col.cast(pa.dictionary(pa.int8(), pa.string()))
    if enc == "dict_u8":  # unsigned indices: the adapter decodes them
        return col.cast(pa.dictionary(pa.uint8(), pa.string()))
    if enc == "dict16_large":
        return col.cast(pa.dictionary(pa.int16(), pa.large_string()))
    if enc == "dict64":
        return col.cast(pa.dictionary(pa.int64(), pa.string()))
    raise ValueError(enc)


def engines(rule, event, *, arrow: "bool | str" = True) -> dict:
    """The verdict of every entry point on one event: the reference, ``Rule.match`` and
    ``match_many``, ``RuleSet.match`` and ``scan``, and ``match_arrow``: an event of UTF-8
    strings and ``None`` as string, large_string and dictionary columns, and sliced; with
    ``arrow=True`` any other event as :func:`arrow_table` builds it (when it can), with
    ``arrow="strings"`` no other (Arrow holds a tuple as a list, for one), with ``arrow=False``
    no Arrow at all."""
    out = {
        "reference": bool(reference.evaluate(rule, event)),
        "match": bool(rule.match(event)),
    }
    many = rule.match_many([event])
    assert len(many) == 1
    out["match_many"] = bool(many[0])
    rs = matcher.RuleSet([rule])
    out["RuleSet.match"] = rule.id in rs.match(event)
    out["RuleSet.scan"] = bool(list(rs.scan([event])))
    if not (arrow and isinstance(event, dict)):
        return out
    if all(type(k) is str and utf8_ok(k) for k in event) and all(
        v is None or (type(v) is str and utf8_ok(v)) for v in event.values()
    ):
        names = list(event) or ["_"]
        schema = pa.schema([(n, pa.string()) for n in names])
        row = {n: event.get(n) for n in names}
        table = pa.Table.from_pylist([row], schema=schema)
        for enc in ("string", "large_string", "dict32"):
            encoded = pa.table([encode_column(table.column(i), enc) for i in range(len(names))], names=names)
            out[f"arrow/{enc}"] = bool(rule.match_arrow(encoded)[0])
        sliced = pa.Table.from_pylist([{n: "x" for n in names}, row], schema=schema).slice(1)
        out["arrow/slice"] = bool(rule.match_arrow(sliced)[0])
        return out
    table = arrow_table([event]) if arrow != "strings" else None
    if table is not None:
        res = rule.match_arrow(table)
        assert len(res) == 1
        out["match_arrow"] = bool(res[0])
    return out
