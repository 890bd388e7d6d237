"""The pySigma + SQLite route, as the Zircolite tool runs Sigma rules.

A Sigma rule (YAML) is converted to SQL by pysigma-backend-sqlite; the events (Sysmon field
names, :func:`matcher.datasets.to_sysmon`) are loaded into an in-memory ``sqlite3`` table
``logs`` with one TEXT column per field (Zircolite flattens each event into such a table, with a
``row_id`` key); the query runs and its rows are the matches.

The backend has no notion of a log source, so, as Sysmon pipelines do, a processing pipeline
adds the log source's condition to every ``windows``/``process_creation`` rule: ``EventID = 1``
and ``EndpointOS = 'windows'`` (the S1QL queries test ``EventType`` and ``EndpointOS``).
"""

from __future__ import annotations

import re
import sqlite3

import numpy as np

from matcher import datasets
from shared_data import sigma_rules_path

FLAGSHIP_PATH = "rules/windows/process_creation/proc_creation_win_webshell_susp_process_spawned_from_webserver.yml"


def sigma_texts(paths) -> list[str]:
    """The YAML texts of SigmaHQ rules (paths as in the corpus records) from the shared tree."""
    tree = sigma_rules_path()
    return [(tree / p).read_text(encoding="utf-8") for p in paths]
COLUMNS = tuple(datasets.SYSMON_FIELDS[f] for f in datasets.FIELDS)


def pipeline():
    from sigma.processing.conditions import LogsourceCondition
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import AddConditionTransformation

    return ProcessingPipeline(
        name="process_creation log source as EventID 1 on a Windows endpoint",
        priority=10,
        items=[ProcessingItem(
            identifier="logsource_process_creation",
            transformation=AddConditionTransformation({"EventID": 1, "EndpointOS": "windows"}),
            rule_conditions=[LogsourceCondition(category="process_creation", product="windows")],
        )],
    )


def convert(yaml_texts) -> list[str]:
    """SQL queries (one per rule) for Sigma YAML documents, by pysigma-backend-sqlite."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    backend = sqliteBackend(pipeline())
    out = []
    for text in yaml_texts:
        out.extend(backend.convert(SigmaCollection.from_yaml(text)))
    return out


def sysmon_rows(events) -> list[tuple]:
    """The events as table rows (Sysmon names, row_id first); done once, outside the timing."""
    get = [datasets.SYSMON_FIELDS[f] for f in datasets.FIELDS]
    return [(i, *(ev.get(c) for c in get)) for i, ev in enumerate(map(datasets.to_sysmon, events))]


def _fields(item, out: set) -> None:
    """Field names a Sigma detection (tree) tests."""
    if hasattr(item, "detection_items"):
        for sub in item.detection_items:
            _fields(sub, out)
    elif getattr(item, "field", None):
        out.add(item.field)


def convert_corpus(texts) -> tuple[dict[str, list[str]], list[str]]:
    """rule id -> SQL queries, and every field name the rules test (the table needs a column for
    each: an event without the field holds NULL there). Texts are Sigma YAML documents."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    backend = sqliteBackend(pipeline())
    queries, fields = {}, set()
    for text in texts:
        coll = SigmaCollection.from_yaml(text)
        for rule in coll.rules:
            for det in rule.detection.detections.values():
                _fields(det, fields)
        queries[str(coll.rules[0].id)] = backend.convert(coll)
    return queries, sorted(fields)


def _regexp(pattern: str, value) -> int:
    """SQLite's REGEXP operator, as Zircolite registers it (Python's re.search)."""
    return 0 if value is None else int(re.search(pattern, str(value)) is not None)


def load(rows, extra_columns=()) -> sqlite3.Connection:
    """A new in-memory database holding the rows in table ``logs`` (extra columns all NULL)."""
    con = sqlite3.connect(":memory:")
    con.create_function("regexp", 2, _regexp, deterministic=True)
    seen = {c.lower() for c in COLUMNS}
    extra = [c for c in extra_columns if c.lower() not in seen and not seen.add(c.lower())]
    cols = ", ".join(f'"{c}" {"INTEGER" if c == "EventID" else "TEXT"}' for c in (*COLUMNS, *extra))
    con.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY, {cols})")
    con.executemany(f"INSERT INTO logs ({', '.join(['row_id', *COLUMNS])}) VALUES (?{', ?' * len(COLUMNS)})", rows)
    return con


def run(con: sqlite3.Connection, sql: str) -> np.ndarray:
    """Row ids the query matches (the query's ``SELECT *`` rows, as Zircolite fetches them)."""
    return np.array([r[0] for r in con.execute(sql)], dtype=np.int64)


def flagship_sql() -> str:
    (sql,) = convert(sigma_texts([FLAGSHIP_PATH]))
    return sql


def load_and_query(rows, sql: str, n: int) -> np.ndarray:
    """The whole route for one rule: load the table, run the query, verdicts as a bool array."""
    con = load(rows)
    try:
        out = np.zeros(n, dtype=bool)
        out[run(con, sql)] = True
        return out
    finally:
        con.close()
