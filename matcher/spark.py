"""Run rules on Spark DataFrames, batch or streaming: ``DataFrame.mapInArrow`` with one compiled
RuleSet per Python worker.

>>> from matcher import spark as mspark
>>> matches = mspark.scan(df, rules, id_cols=["event_id"])  # id_cols..., rule_id, title, level
>>> rows = mspark.scan_rows(df, rules)                      # the matched rows, plus rule_id

``rules`` is a list of :class:`~matcher.Rule` (what ``matcher.load_rules`` returns), a
:class:`~matcher.RuleSet`, or paths (rule files, directories of rules, built-in rule names);
``profile`` names the events' field names for rules given as paths, as on the command line.

How it runs: the function handed to ``mapInArrow`` carries the pickled rules and their digest.
Spark's Python workers import this module (cloudpickle sends functions of an importable module
by reference), so :data:`_CACHE` lives as long as the worker: the rules are compiled on a
worker's first batch and every later batch (and every later task and micro-batch served by that
worker) only matches, with :meth:`RuleSet.match_arrow_arrays` on the Arrow batch as Spark sent
it. A column the rules read that the DataFrame lacks is an absent field. Spark needs Java and
pyspark (and pandas, which ``mapInArrow`` imports): ``pip install '.[spark]'``; without them,
importing this module raises :class:`~matcher.errors.MissingDependency` (one line).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional, Union

from . import api
from ._optional import need
from .errors import MissingRuntime, RuleError

need("pandas", "matcher.spark (DataFrame.mapInArrow imports it)")
pa = need("pyarrow", "matcher.spark")
need("pyspark", "matcher.spark")
from pyspark.sql import DataFrame  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

__all__ = ["scan", "scan_rows", "ruleset", "local_session", "RULE_COLUMNS"]

#: Columns ``scan`` adds after the id columns (``scan_rows`` adds the first).
RULE_COLUMNS = ("rule_id", "title", "level")

RulesArg = Union[api.RuleSet, Sequence[api.Rule], str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]


def ruleset(rules: RulesArg, *, profile: Optional[str] = None) -> api.RuleSet:
    """``rules`` as one RuleSet: a RuleSet as it is, Rule objects compiled together, paths
    (files, directories, built-in names) loaded as ``matcher scan -r`` loads them and mapped to
    ``profile`` (the events' field names; S1 by default). A rule that does not load raises
    :class:`~matcher.RuleError` naming it."""
    if isinstance(rules, api.RuleSet):
        _no_profile(profile)
        return rules
    if isinstance(rules, api.Rule):
        rules = [rules]
    elif isinstance(rules, (str, os.PathLike)):
        rules = [rules]
    items = list(rules)
    if all(isinstance(r, api.Rule) for r in items):
        _no_profile(profile)
        return api.RuleSet(items)
    if any(isinstance(r, api.Rule) for r in items):
        raise TypeError("rules: give Rule objects or paths, not a mix of both")
    from . import mapping
    from .api import gather_rules as _gather_rules
    from .api import remap_rules as _remap

    loaded, errors = _gather_rules([], [os.fspath(p) for p in items], default=False)
    remapped, never = _remap(loaded, mapping.load_profile("s1"), mapping.load_profile(profile or "s1"))
    problems = errors + never
    if problems:
        raise RuleError("; ".join(problems))
    if not remapped:
        raise RuleError(f"no rule in {', '.join(os.fspath(p) for p in items)}")
    return api.RuleSet(remapped)


def _no_profile(profile: Optional[str]) -> None:
    if profile not in (None, "s1"):
        raise TypeError("profile= applies to rules given as paths; Rule objects and RuleSets are used as compiled")


def scan(df: DataFrame, rules: RulesArg, *, id_cols: Iterable[str] = (), profile: Optional[str] = None) -> DataFrame:
    """One row per (matched row, matching rule): ``id_cols...``, ``rule_id``, ``title``, ``level``.

    Batch or streaming ``df``; the pairs are those :meth:`RuleSet.match_arrow_arrays` gives on
    the same rows (in row order then rule order within each Arrow batch).
    """
    ids = list(id_cols)
    missing = [c for c in ids if c not in df.columns]
    if missing:
        raise KeyError(f"id_cols not in the DataFrame: {', '.join(missing)} (columns: {', '.join(df.columns)})")
    fields = [df.schema[c] for c in ids] + [T.StructField(c, T.StringType(), True) for c in RULE_COLUMNS]
    fn = _Matcher(ruleset(rules, profile=profile), ids, with_rule_meta=True)
    return df.mapInArrow(fn, T.StructType(fields))


def scan_rows(df: DataFrame, rules: RulesArg, *, profile: Optional[str] = None) -> DataFrame:
    """The matched rows themselves (every column of ``df``), plus ``rule_id``: a row matching
    two rules appears twice."""
    if "rule_id" in df.columns:
        raise KeyError("the DataFrame already has a rule_id column")
    schema = T.StructType(list(df.schema.fields) + [T.StructField("rule_id", T.StringType(), True)])
    fn = _Matcher(ruleset(rules, profile=profile), None, with_rule_meta=False)
    return df.mapInArrow(fn, schema)


# -- the worker side -------------------------------------------------------------------------------

#: digest of the pickled rules -> (RuleSet, rule ids, titles, levels as Arrow arrays); one per worker.
_CACHE: dict[str, tuple] = {}
#: digest -> how many times this process compiled those rules (tests read it: once per worker).
compiles: dict[str, int] = {}


def _compiled_rules(digest: str, payload: bytes) -> tuple:
    hit = _CACHE.get(digest)
    if hit is None:
        rs = api.RuleSet(pickle.loads(payload))
        compiles[digest] = compiles.get(digest, 0) + 1
        hit = _CACHE[digest] = (rs,) + _meta(rs)
    return hit


class _Matcher:
    """The function given to ``mapInArrow``. It pickles as the rules' bytes and digest only;
    the RuleSet is compiled from them once per worker process (:data:`_CACHE`)."""

    def __init__(self, rs: api.RuleSet, id_cols: Optional[list[str]], with_rule_meta: bool):
        self.payload = pickle.dumps(rs.rules, protocol=pickle.HIGHEST_PROTOCOL)
        self.digest = hashlib.sha256(self.payload).hexdigest()
        self.id_cols = id_cols
        self.with_rule_meta = with_rule_meta
        _CACHE.setdefault(self.digest, (rs,) + _meta(rs))  # the driver compiled it already

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        rs, ids, titles, levels = _compiled_rules(self.digest, self.payload)
        for batch in batches:
            rows, rules = rs.match_arrow_arrays(batch)
            take = pa.array(rows, pa.int64())
            which = pa.array(rules, pa.int32())
            if self.id_cols is None:
                out = batch.take(take)
                yield pa.RecordBatch.from_arrays(out.columns + [ids.take(which)],
                                                 names=out.schema.names + ["rule_id"])
            else:
                cols = [batch.column(c).take(take) for c in self.id_cols]
                yield pa.RecordBatch.from_arrays(cols + [ids.take(which), titles.take(which), levels.take(which)],
                                                 names=self.id_cols + list(RULE_COLUMNS))


def _meta(rs: api.RuleSet) -> tuple:
    return (pa.array([r.id for r in rs], pa.string()), pa.array([r.title for r in rs], pa.string()),
            pa.array([r.level or None for r in rs], pa.string()))


# -- a local session (tests, benchmarks, trying it out) ------------------------------------------------


def local_session(master: str = "local[2]", **conf: str) -> Any:
    """A Spark session in local mode bound to the loopback interface, no web UI. Raises
    :class:`~matcher.errors.MissingRuntime` in one line when Java is not installed."""
    java_home = os.environ.get("JAVA_HOME")
    if not (shutil.which("java") or (java_home and os.path.exists(os.path.join(java_home, "bin", "java")))):
        raise MissingRuntime("Spark needs Java (17 or later): install a JDK (apt-get install openjdk-17-jre-headless) "
                                "or set JAVA_HOME")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName("matcher")
    settings = {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                "spark.sql.shuffle.partitions": "4"}
    settings.update(conf)
    for k, v in settings.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()
