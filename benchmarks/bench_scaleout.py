"""Scale-out: one RuleSet alone, threads, ``matcher scan --jobs``, Spark local[2], on the same events.

    pytest benchmarks/bench_scaleout.py --events 200000 --benchmark-json=scaleout.json

Rule sets: the flagship, and the 1,648 corpus queries. Every benchmark checks its (event, rule)
pairs against ``RuleSet.match_arrays`` on the same events (itself checked against the reference
by bench_corpus.py). Besides the time, each records the CPU seconds of the round it timed
(``extra_info["cpu_s"]``: this process, the processes it waited for, and its live descendants,
i.e. the pool workers, Spark's JVM and its Python workers). The command-line runs include
starting Python and compiling the rules; Spark's include reading the Parquet file and shipping
Arrow batches to its Python workers and back (``test_spark_empty_map_in_arrow`` measures that
part alone). Spark needs pyspark and Java: those benchmarks are skipped without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import matcher
from matcher.api import gather_rules as _gather_rules
from shared_data import corpus_path

ROUNDS = 3


def cpu_seconds() -> float:
    """CPU time of this process, of the children it reaped, and of its live descendants (Linux)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    me = os.getpid()
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    for pid in parents:
        p = parents[pid]
        while p and p != me:
            p = parents.get(p, 0)
        if p == me and pid != me:
            total += ticks[pid] / tick
    return total


def timed(benchmark, fn, rounds: int = ROUNDS):
    """benchmark.pedantic with the CPU seconds of each round recorded (median in extra_info)."""
    cpus: list[float] = []

    def one():
        c0 = cpu_seconds()
        out = fn()
        cpus.append(cpu_seconds() - c0)
        return out

    result = benchmark.pedantic(one, rounds=rounds, iterations=1, warmup_rounds=1)
    timed_cpus = sorted(cpus[1:] or cpus)  # the warm-up round is not timed (none with --benchmark-disable)
    benchmark.extra_info["cpu_s"] = timed_cpus[len(timed_cpus) // 2]
    return result


# -- data and rules ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def id_events(events):
    return [{"event_id": i, **e} for i, e in enumerate(events)]


@pytest.fixture(scope="module")
def files(tmp_path_factory, id_events):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("scaleout")
    pq.write_table(pa.Table.from_pylist(id_events), d / "events.parquet", row_group_size=16_384)
    with open(d / "events.jsonl", "wb") as fh:
        import orjson

        fh.writelines(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in id_events)
    return d


@pytest.fixture(scope="module", params=["flagship", "1648"])
def rules(request, tmp_path_factory):
    """(name, RuleSet, the -r argument that loads the same rules on the command line)."""
    if request.param == "flagship":
        spec = "flagship"
    else:
        d = tmp_path_factory.mktemp("rules")
        with open(corpus_path(), encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                if r["query"]:
                    (d / f"{r['id']}.s1ql").write_text(r["query"], encoding="utf-8")
        spec = str(d)
    loaded, errors = _gather_rules([], [spec], default=False)
    assert not errors and loaded
    return request.param, matcher.RuleSet(loaded), spec


@pytest.fixture(scope="module")
def expected(rules, id_events):
    _, rs, _ = rules
    rows, ridx = rs.match_arrays(id_events)
    return sorted(zip(rows.tolist(), ridx.tolist()))


@pytest.fixture(scope="module")
def id_table(id_events):
    import pyarrow as pa

    return pa.Table.from_pylist(id_events)


def _info(benchmark, rules, n: int, how: str) -> None:
    benchmark.extra_info.update(events=n, rules=len(rules[1]), ruleset=rules[0], how=how)


# -- in one process --------------------------------------------------------------------------------


@pytest.mark.benchmark(group="scaleout")
def test_ruleset_alone(benchmark, rules, id_table, expected):
    _info(benchmark, rules, id_table.num_rows, "RuleSet.match_arrow_arrays, 1 thread")
    rows, ridx = timed(benchmark, lambda: rules[1].match_arrow_arrays(id_table))
    assert sorted(zip(rows.tolist(), ridx.tolist())) == expected


@pytest.mark.benchmark(group="scaleout")
def test_ruleset_threads_2(benchmark, rules, id_table, expected):
    _info(benchmark, rules, id_table.num_rows, "RuleSet.match_arrow_arrays(threads=2)")
    rows, ridx = timed(benchmark, lambda: rules[1].match_arrow_arrays(id_table, threads=2))
    assert sorted(zip(rows.tolist(), ridx.tolist())) == expected


# -- the command line ----------------------------------------------------------------------------------


@pytest.mark.benchmark(group="scaleout")
@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_cli_jobs(benchmark, rules, files, expected, jobs, fmt, n_events):
    _info(benchmark, rules, n_events, f"matcher scan --jobs {jobs} ({fmt})")
    cmd = [sys.executable, "-m", "matcher", "scan", "--jobs", str(jobs), "--no-progress", "-f", "jsonl",
           "-r", rules[2], str(files / f"events.{fmt}")]

    def run():
        return subprocess.run(cmd, capture_output=True, check=True).stdout

    out = timed(benchmark, run, rounds=2)
    ids = {r.id: k for k, r in enumerate(rules[1])}
    got = []
    for line in out.splitlines():
        rec = json.loads(line)
        got.append((rec["event"]["event_id"], ids[rec["rule_id"]]))
    assert sorted(got) == expected


# -- Spark local[2] ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark not installed: pip install '.[spark]'")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("Spark needs Java")
    from matcher import spark as mspark

    session = mspark.local_session("local[2]", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "10000"})
    yield session
    session.stop()


@pytest.mark.benchmark(group="scaleout")
def test_spark_scan(benchmark, spark, rules, files, expected, n_events):
    from matcher import spark as mspark

    _info(benchmark, rules, n_events, "Spark local[2] matcher.spark.scan (Parquet)")
    df = spark.read.parquet(str(files / "events.parquet"))
    ids = {r.id: k for k, r in enumerate(rules[1])}

    def run():
        return mspark.scan(df, rules[1], id_cols=["event_id"]).toArrow()

    out = timed(benchmark, run, rounds=2)
    got = sorted(zip(out.column("event_id").to_pylist(), (ids[x] for x in out.column("rule_id").to_pylist())))
    assert got == expected


@pytest.mark.benchmark(group="scaleout-spark-overhead")
def test_spark_empty_map_in_arrow(benchmark, spark, files, n_events):
    """Spark's own cost: read the Parquet file, ship every batch to Python and back, no matching."""
    benchmark.extra_info.update(events=n_events, rules=0, ruleset="none", how="Spark local[2] empty mapInArrow")
    df = spark.read.parquet(str(files / "events.parquet"))

    def _empty(batches):  # nested: cloudpickle sends it by value (this module is not importable there)
        import pyarrow as pa

        for b in batches:
            yield pa.RecordBatch.from_arrays([b.column(0).slice(0, 0)], names=["event_id"])

    out = timed(benchmark, lambda: df.mapInArrow(_empty, "event_id long").toArrow(), rounds=2)
    assert out.num_rows == 0
    counted = df.mapInArrow(lambda it: (b.select([0]) for b in it), "event_id long").count()
    assert counted == n_events  # the same plan does see every row
