"""matcher.spark in Spark local mode: the (row, rule) pairs equal RuleSet's on the same data,
batch and streaming, S1QL and Sigma rules, mixed schemas.

Needs pyspark, pandas and Java; skipped with the reason otherwise. Its own CI step:

    pytest tests/test_spark.py -m spark -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("pyspark", reason="pyspark not installed: pip install '.[spark]'")
pytest.importorskip("pandas", reason="pandas not installed: pip install '.[spark]'")
if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("Spark needs Java: no java on PATH and no JAVA_HOME", allow_module_level=True)

import pyarrow as pa  # noqa: E402

import matcher  # noqa: E402
from matcher import datasets  # noqa: E402
from matcher import spark as mspark  # noqa: E402
from matcher.errors import MissingRuntime  # noqa: E402
from shared_data import corpus_path, sigma_rules_path  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]

N = 3000


@pytest.fixture(scope="module")
def spark():
    session = mspark.local_session("local[2]", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "500"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def events():
    evs = datasets.generate(N, 11)
    return [{"event_id": i, **ev} for i, ev in enumerate(evs)]


@pytest.fixture(scope="module")
def s1ql_rules():
    """The flagship and 300 corpus queries (every 5th record, so every logsource takes part)."""
    with open(corpus_path(), encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    picked = [r for r in recs if r["query"]][::5][:300]
    return [matcher.builtin()] + [matcher.compile(r["query"], id=r["id"], title=r["title"]) for r in picked]


def expected_pairs(rs: matcher.RuleSet, events: list[dict]) -> list[tuple[int, str]]:
    rows, rules = rs.match_arrays(events)
    ids = [r.id for r in rs]
    return sorted((events[i]["event_id"], ids[u]) for i, u in zip(rows.tolist(), rules.tolist()))


def got_pairs(df) -> list[tuple[int, str]]:
    return sorted((r["event_id"], r["rule_id"]) for r in df.collect())


def test_scan_s1ql_same_pairs_as_ruleset(spark, events, s1ql_rules):
    rs = matcher.RuleSet(s1ql_rules)
    want = expected_pairs(rs, events)
    assert len({p[1] for p in want}) > 5  # many rules match: the comparison means something
    df = spark.createDataFrame(pa.Table.from_pylist(events)).repartition(4)
    out = mspark.scan(df, s1ql_rules, id_cols=["event_id"])
    assert out.columns == ["event_id", "rule_id", "title", "level"]
    got = out.collect()
    assert sorted((r["event_id"], r["rule_id"]) for r in got) == want
    by_id = {r.id: r for r in rs}
    assert all(r["title"] == by_id[r["rule_id"]].title and r["level"] == (by_id[r["rule_id"]].level or None) for r in got)


def test_scan_takes_a_ruleset_and_paths(spark, events, tmp_path):
    card = tmp_path / "cmd.s1ql"
    card.write_text('TgtProcCmdLine containsCIS "whoami"', encoding="utf-8")
    rs = matcher.RuleSet([matcher.builtin(), matcher.load(card)])
    df = spark.createDataFrame(pa.Table.from_pylist(events))
    want = expected_pairs(rs, events)
    assert {p[1] for p in want} == {r.id for r in rs}
    assert got_pairs(mspark.scan(df, rs, id_cols=["event_id"])) == want
    assert got_pairs(mspark.scan(df, ["flagship", str(card)], id_cols=["event_id"])) == want


def test_scan_sigma_rules(spark, events):
    """SigmaHQ process-creation rules loaded from their files (paths given to scan)."""
    folder = sigma_rules_path() / "rules" / "windows" / "process_creation"
    paths = sorted(folder.glob("*.yml"))[::10]
    rs = mspark.ruleset(paths)
    assert len(rs) > 50
    want = expected_pairs(rs, events)
    assert want
    df = spark.createDataFrame(pa.Table.from_pylist(events)).repartition(3)
    assert got_pairs(mspark.scan(df, [str(p) for p in paths], id_cols=["event_id"])) == want


def test_scan_rows_gives_the_matched_rows(spark, events):
    rs = matcher.RuleSet([matcher.builtin()])
    df = spark.createDataFrame(pa.Table.from_pylist(events))
    out = mspark.scan_rows(df, rs)
    assert out.columns == df.columns + ["rule_id"]
    rows = out.collect()
    assert sorted((r["event_id"], r["rule_id"]) for r in rows) == expected_pairs(rs, events)
    for r in rows[:50]:
        original = events[r["event_id"]]
        assert {k: r[k] for k in original} == original


def test_mixed_schemas_missing_columns_are_absent_fields(spark, events, s1ql_rules, tmp_path):
    """JSON lines whose records lack some keys, and a column the rules read that the
    DataFrame does not have at all (TgtProcUser): absent fields, as for RuleSet on dicts."""
    trimmed = []
    for i, ev in enumerate(events):
        ev = {k: v for k, v in ev.items() if v is not None and k != "TgtProcUser"}
        if i % 3 == 0:
            ev.pop("SrcProcCmdLine", None)
        if i % 7 == 0:
            ev["Extra"] = i
        trimmed.append(ev)
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in trimmed), encoding="utf-8")
    df = spark.read.json(str(path))
    assert "TgtProcUser" not in df.columns
    rs = matcher.RuleSet(s1ql_rules)
    assert "TgtProcUser" in rs.fields
    want = expected_pairs(rs, trimmed)
    assert want
    assert got_pairs(mspark.scan(df, rs, id_cols=["event_id"])) == want


def test_streaming_file_source(spark, events, s1ql_rules, tmp_path):
    """readStream over a folder of JSON lines, each file a micro-batch; a memory sink."""
    src = tmp_path / "in"
    src.mkdir()
    step = 1000
    for k in range(0, len(events), step):
        (src / f"part-{k:06d}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[k:k + step]),
                                                  encoding="utf-8")
    schema = spark.read.json(str(src)).schema
    stream = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).json(str(src))
    rs = matcher.RuleSet(s1ql_rules)
    q = (mspark.scan(stream, rs, id_cols=["event_id"]).writeStream.format("memory").queryName("matcher_stream")
         .outputMode("append").trigger(availableNow=True).option("checkpointLocation", str(tmp_path / "ckpt")).start())
    q.awaitTermination(300)
    assert q.exception() is None
    assert len(q.recentProgress) >= len(events) // step  # one micro-batch per file
    assert got_pairs(spark.sql("SELECT * FROM matcher_stream")) == expected_pairs(rs, events)


def test_streaming_foreach_batch(spark, events, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    schema = spark.read.json(str(src)).schema
    seen: list = []
    rs = matcher.RuleSet([matcher.builtin()])

    def sink(batch_df, batch_id):
        seen.extend((r["event_id"], r["rule_id"]) for r in batch_df.collect())

    q = (mspark.scan(spark.readStream.schema(schema).json(str(src)), rs, id_cols=["event_id"]).writeStream
         .foreachBatch(sink).trigger(availableNow=True).option("checkpointLocation", str(tmp_path / "ckpt")).start())
    q.awaitTermination(300)
    assert q.exception() is None
    assert sorted(seen) == expected_pairs(rs, events)


def test_rules_compiled_once_per_worker(spark, events, s1ql_rules):
    """After a scan of many Arrow batches (500 rows each, 8 partitions, so several tasks per
    worker), each Python worker has compiled the rules once (matcher.spark.compiles)."""
    rs = matcher.RuleSet(s1ql_rules[:50] + [matcher.compile('TgtProcCmdLine containsCIS "whoami"', id="once")])
    digest = mspark._Matcher(rs, [], with_rule_meta=True).digest
    df = spark.createDataFrame(pa.Table.from_pylist(events)).repartition(8)
    assert mspark.scan(df, rs, id_cols=["event_id"]).count() > 0

    def report(batches):
        import os as _os

        import matcher.spark as ms

        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist([{"pid": _os.getpid(), "n": ms.compiles.get(digest, 0)}])

    stats = spark.range(0, 8, numPartitions=8).mapInArrow(report, "pid long, n long").collect()
    per_worker = {r["pid"]: r["n"] for r in stats}
    assert max(per_worker.values()) == 1, per_worker  # workers are reused: the report ran where the scan did


def test_worker_function_compiles_once_for_many_batches(events):
    """The function given to mapInArrow, called as a fresh worker would (empty cache)."""
    rs = matcher.RuleSet([matcher.builtin()])
    fn = mspark._Matcher(rs, ["event_id"], with_rule_meta=True)
    mspark._CACHE.clear()
    before = mspark.compiles.get(fn.digest, 0)
    table = pa.Table.from_pylist(events)
    out = pa.Table.from_batches(list(fn(iter(table.to_batches(max_chunksize=100)))))
    out2 = list(fn(iter(table.to_batches(max_chunksize=700))))
    assert mspark.compiles[fn.digest] == before + 1
    assert sorted(zip(out.column("event_id").to_pylist(), out.column("rule_id").to_pylist())) == expected_pairs(rs, events)
    assert sum(b.num_rows for b in out2) == out.num_rows


def test_no_java_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MissingRuntime, match="Spark needs Java"):
        mspark.local_session()


def test_profile_applies_to_paths_only():
    with pytest.raises(TypeError, match="profile= applies to rules given as paths"):
        mspark.ruleset([matcher.builtin()], profile="sysmon")
    assert mspark.ruleset(["flagship"], profile="sysmon").fields != mspark.ruleset(["flagship"]).fields
