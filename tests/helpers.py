"""Helpers shared by several test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent

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
