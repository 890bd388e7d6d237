"""Scale-out without Spark: RuleSet pickles, the Arrow array form, threads, ``scan --jobs``.

Every check compares against one process / one thread on the same data: the same verdicts, the
same output bytes, the same accounting of bad records.
"""

from __future__ import annotations

import gzip
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import matcher
from matcher import datasets, inputs, parallel
from shared_data import corpus_path

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() in a process with threads


@pytest.fixture(scope="module")
def events():
    return datasets.generate(4000, 5)


@pytest.fixture(scope="module")
def corpus_rules():
    """The corpus' Windows process-creation queries (regexes, globs, lists: every lazy path)."""
    out = []
    with open(corpus_path(), encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            ls = r["logsource"]
            if r["query"] and ls.get("product") == "windows" and ls.get("category") == "process_creation":
                out.append(matcher.compile(r["query"], id=r["id"], title=r["title"]))
    return out


def pairs(rs, data):
    rows, rules = rs.match_arrays(data) if isinstance(data, list) else rs.match_arrow_arrays(data)
    return list(zip(rows.tolist(), rules.tolist()))


# -- pickling --------------------------------------------------------------------------------------


def test_ruleset_pickle_round_trip_same_verdicts(events, corpus_rules):
    rs = matcher.RuleSet(corpus_rules)
    back = pickle.loads(pickle.dumps(rs))
    assert back is not rs and [r.id for r in back] == [r.id for r in rs] and back.fields == rs.fields
    want = pairs(rs, events)
    assert len({u for _, u in want}) > 10
    assert pairs(back, events) == want


def test_rule_pickles_without_its_program(events):
    rule = matcher.builtin()
    assert rule.match_many(events).any()  # compiles and keeps a one-rule RuleSet
    back = pickle.loads(pickle.dumps(rule))
    assert back == rule and back.source_query == rule.source_query and back._set is None
    assert (back.match_many(events) == rule.match_many(events)).all()


def test_ruleset_ships_to_a_spawned_process(events):
    """What multiprocessing, concurrent.futures, Ray and Dask do: pickle, send, rebuild."""
    import concurrent.futures as cf
    import multiprocessing

    rs = matcher.RuleSet([matcher.builtin(), matcher.compile('TgtProcCmdLine RegExp "who.mi"', id="re")])
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        got = pool.submit(_match_in_child, rs, events).result(timeout=120)
    assert got == pairs(rs, events) and got


def _match_in_child(rs, evs):
    return pairs(rs, evs)


# -- the Arrow array form and threads ----------------------------------------------------------------


def test_match_arrow_arrays_equals_match_arrays(events, corpus_rules):
    rs = matcher.RuleSet(corpus_rules)
    table = pa.Table.from_pylist(events)
    want = pairs(rs, events)
    assert pairs(rs, table) == want
    batches = table.to_batches(max_chunksize=700)
    got, base = [], 0
    for b in batches:  # one call per batch, row indices counted from the batch
        got += [(base + r, u) for r, u in pairs(rs, b)]
        base += b.num_rows
    assert got == want


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_scan_arrow_threads_same_output_in_order(events, corpus_rules, threads):
    rs = matcher.RuleSet(corpus_rules)
    table = pa.Table.from_batches(pa.Table.from_pylist(events * 3).to_batches(max_chunksize=5000))
    one = list(rs.scan_arrow(table))
    assert len(one) > 100
    assert list(rs.scan_arrow(table, threads=threads)) == one


def test_threads_share_one_ruleset_with_whole_event_checks(events):
    """Threads calling a RuleSet at once, with a regex (callback into Python) and numbers."""
    import concurrent.futures as cf

    rs = matcher.RuleSet([matcher.builtin(), matcher.compile('TgtProcCmdLine RegExp "(?i)net\\\\s+user"', id="re"),
                          matcher.compile("EventType = \"Process Creation\" AND NOT TgtProcUser containsCIS \"svc\"",
                                          id="not")])
    table = pa.Table.from_pylist(events)
    want = pairs(rs, table)
    with cf.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: pairs(rs, table), range(8)))
    assert all(g == want for g in got)


# -- scan --jobs ---------------------------------------------------------------------------------------


def _scan(*args: str, stdin: bytes = b"") -> tuple[bytes, str]:
    proc = subprocess.run([sys.executable, "-m", "matcher", "scan", "--no-progress", "-f", "jsonl", *args],
                          input=stdin, capture_output=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.stdout, proc.stderr.decode() + f"exit {proc.returncode}"


def _same_with_jobs(*args: str, stdin: bytes = b"", err: Optional[list] = None) -> bytes:
    out1, err1 = _scan("--jobs", "1", *args, stdin=stdin)
    out2, err2 = _scan("--jobs", "2", *args, stdin=stdin)
    out3, err3 = _scan("--jobs", "3", *args, stdin=stdin)
    assert out2 == out1 and err2 == err1
    assert out3 == out1 and err3 == err1
    if err is not None:
        err.append(err1)
    return out1


def _jsonl_with_bad_records(path: Path, events: list[dict]) -> None:
    lines = [json.dumps(e) for e in events]
    lines[10] = "{not json"
    lines[1500] = "[1, 2]"
    lines[2500] = ""  # a blank line is not a record
    lines[3999] = '"a string"'
    path.write_bytes(("\n".join(lines) + "\n" + json.dumps(events[0])).encode())  # last line: no newline


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, events):
    d = tmp_path_factory.mktemp("scaleout")
    big = events * 5
    _jsonl_with_bad_records(d / "a.jsonl", big)
    with gzip.open(d / "b.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in events)
        fh.write("{broken\n")
    pq.write_table(pa.Table.from_pylist(big), d / "c.parquet", row_group_size=1500)
    with open(d / "d.csv", "w", encoding="utf-8") as fh:
        fh.write("TgtProcCmdLine,SrcProcImagePath,EventType,EndpointOS,TgtProcImagePath\n")
        fh.writelines(f"{e.get('TgtProcCmdLine') or ''},{e.get('SrcProcImagePath') or ''},Process Creation,windows,"
                      f"{e.get('TgtProcImagePath') or ''}\n" for e in events[:500])
    return d


def test_plan_cuts_jsonl_by_bytes_and_parquet_by_row_groups(data_dir):
    todo, _ = inputs.expand([str(data_dir)])
    tasks = parallel.plan(todo, 2, fmt=None, fields=None)
    kinds = [(u.inp.name.rsplit("/", 1)[-1], u.kind) for u in tasks]
    assert kinds.count(("a.jsonl", "jsonl")) >= 4 and kinds.count(("c.parquet", "parquet")) >= 2
    assert ("b.jsonl.gz", "file") in kinds and ("d.csv", "file") in kinds
    a = [u for u in tasks if u.kind == "jsonl"]
    text = (data_dir / "a.jsonl").read_bytes()
    assert [u.start for u in a[1:]] == [u.end for u in a[:-1]] and a[-1].end == len(text)
    assert all(text[u.start - 1:u.start] == b"\n" and text[:u.start].count(b"\n") == u.lineno for u in a[1:])


def test_jobs_same_output_jsonl_with_bad_records(data_dir):
    out = _same_with_jobs("-r", "flagship", str(data_dir / "a.jsonl"))
    assert out.count(b"\n") > 50


def test_jobs_same_output_wide_records_decoded_in_part(data_dir, tmp_path, events):
    """Records with many keys: only the rules' fields are decoded, chosen once per file."""
    wide = [{**e, **{f"x{i}": i for i in range(30)}} for e in events * 3]
    _jsonl_with_bad_records(tmp_path / "wide.jsonl", wide)
    _same_with_jobs("-r", "flagship", str(tmp_path / "wide.jsonl"))


def test_jobs_same_output_many_files_and_formats(data_dir, corpus_rules, tmp_path):
    qfile = tmp_path / "rules"
    qfile.mkdir()
    for r in [r for r in corpus_rules if r.id != matcher.builtin().id][::15]:
        (qfile / f"{r.id}.s1ql").write_text(r.source_query, encoding="utf-8")
    out = _same_with_jobs("-r", "flagship", "-r", str(qfile), str(data_dir))
    sources = {json.loads(line)["source"].rsplit("/", 1)[-1] for line in out.splitlines()}
    assert {"a.jsonl", "b.jsonl.gz", "c.parquet", "d.csv"} <= sources


def test_jobs_same_output_parquet_row_groups(data_dir):
    out = _same_with_jobs("-r", "flagship", str(data_dir / "c.parquet"))
    rows = [json.loads(line)["row"] for line in out.splitlines()]
    assert rows == sorted(rows) and rows[-1] > 3000


def test_jobs_same_output_records_over_the_size_limit(data_dir, tmp_path, events):
    lines = [json.dumps(e) for e in events * 3]
    lines[7] = json.dumps({**events[7], "pad": "x" * 5000})
    lines[9000] = json.dumps({**events[0], "pad": "y" * 9000})
    (tmp_path / "long.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    err: list = []
    _same_with_jobs("--max-record-bytes", "4000", "-r", "flagship", str(tmp_path / "long.jsonl"), err=err)
    assert "long.jsonl:8: bad record" in err[0] and "long.jsonl:9001: bad record" in err[0]


def test_jobs_same_output_parquet_with_an_unreadable_row_group(tmp_path):
    """A damaged row group is reported and the others read, in one process and in many."""
    n = 20_000
    table = pa.table({"TgtProcCmdLine": [f"whoami {i}" if i % 7 == 0 else f"cmd {i}" for i in range(3 * n)]})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, row_group_size=n, compression="NONE")
    data = bytearray(buf.getvalue().to_pybytes())
    col = pq.ParquetFile(pa.BufferReader(bytes(data))).metadata.row_group(1).column(0)
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    data[start:start + 200] = bytes(b ^ 0x5A for b in data[start:start + 200])
    (tmp_path / "damaged.parquet").write_bytes(bytes(data))
    tasks = parallel.plan([inputs.Input(str(tmp_path / "damaged.parquet"), "d")], 2, fmt=None, fields=None)
    assert len(tasks) == 3 and all(u.kind == "parquet" for u in tasks)
    out = _same_with_jobs("-q", 'TgtProcCmdLine containsCIS "whoami"', str(tmp_path / "damaged.parquet"))
    rows = [json.loads(line)["row"] for line in out.splitlines()]
    assert rows == [i + 1 for i in range(3 * n) if i % 7 == 0 and not n <= i < 2 * n]


def test_jobs_strict_stops_at_the_same_record(data_dir):
    _, err = _scan("--jobs", "2", "--strict", "-r", "flagship", str(data_dir / "a.jsonl"))
    assert "a.jsonl:11: bad record" in err and err.endswith("exit 1")
    _same_with_jobs("--strict", "-r", "flagship", str(data_dir / "a.jsonl"))


def test_jobs_with_standard_input_and_files(data_dir, events):
    stdin = "".join(json.dumps(e) + "\n" for e in events[:800]).encode()
    out = _same_with_jobs("-r", "flagship", "-", str(data_dir / "a.jsonl"), stdin=stdin)
    assert b'"source":"<stdin>"' in out


def test_jobs_must_be_positive():
    proc = subprocess.run([sys.executable, "-m", "matcher", "scan", "--jobs", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a positive whole number: '0'" in proc.stderr


# -- matcher.spark without pyspark -------------------------------------------------------------------


def test_spark_module_without_pyspark_is_one_line():
    code = "import sys; sys.modules['pyspark'] = sys.modules['pandas'] = None\nimport matcher.spark"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ("matcher.errors.MissingDependency: matcher.spark (DataFrame.mapInArrow imports it) needs the optional "
                    "package pandas, which is not installed: pip install 'matcher[spark]' (from a source checkout: "
                    "pip install '.[spark]')"), last


# -- the recipes of docs/scale.md ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_data(events):
    """Events and a rule set with a rule that matches on an absent field (NULL in SQL)."""
    rs = matcher.RuleSet([matcher.builtin(), matcher.compile(
        'TgtProcCmdLine containsCIS "whoami" OR NOT TgtProcUser containsCIS "svc"', id="absent-user")])
    table = pa.Table.from_pylist(events)
    assert table.column("TgtProcUser").null_count > 0
    return rs, table, pairs(rs, table)


def _verdicts(rs, data):
    import numpy as np

    out = np.zeros(data.num_rows, dtype=bool)
    out[rs.match_arrow_arrays(data)[0]] = True
    return pa.array(out)


def test_recipe_duckdb_reader(recipe_data):
    duckdb = pytest.importorskip("duckdb")
    rs, table, want = recipe_data
    con = duckdb.connect()
    con.register("events", table)
    rel = con.sql("SELECT * FROM events")
    reader = rel.to_arrow_reader(1000) if hasattr(rel, "to_arrow_reader") else rel.fetch_record_batch(1000)
    got, base = [], 0
    for batch in reader:
        got += [(base + r, u) for r, u in pairs(rs, batch)]
        base += batch.num_rows
    assert got == want


def test_recipe_duckdb_udf_null_handling(recipe_data):
    """The default NULL handling drops the rows where an argument is NULL; the safe forms do not."""
    duckdb = pytest.importorskip("duckdb")
    try:
        from duckdb.sqltypes import BOOLEAN, VARCHAR
    except ImportError:  # DuckDB before 1.4
        from duckdb.typing import BOOLEAN, VARCHAR
    rs, table, want = recipe_data
    matched = len({r for r, _ in want})
    con = duckdb.connect()
    con.register("events", table)
    fields = [f for f in rs.fields if f in table.column_names]

    def count(sql: str) -> int:
        return con.execute(sql).fetchall()[0][0]

    lone = matcher.RuleSet([rs.rules[1]])  # a rule over two columns, absent users included

    def two(cmd, user):
        return _verdicts(lone, pa.table({"TgtProcCmdLine": cmd, "TgtProcUser": user}))

    for handling in ("default", "special"):
        con.create_function(f"m_{handling}", two, [VARCHAR, VARCHAR], BOOLEAN, type="arrow", null_handling=handling)
    lone_matched = len(set(lone.match_arrow_arrays(table)[0].tolist()))
    dropped = count("SELECT count(*) FROM events WHERE m_default(TgtProcCmdLine, TgtProcUser)")
    kept = count("SELECT count(*) FROM events WHERE m_special(TgtProcCmdLine, TgtProcUser)")
    assert kept == lone_matched and dropped < kept  # the trap docs/scale.md warns about
    con.create_function("matches", lambda s: _verdicts(rs, pa.Table.from_struct_array(s)),
                        [duckdb.struct_type({f: VARCHAR for f in fields})], BOOLEAN, type="arrow",
                        null_handling="special")
    packed = ", ".join(f'"{f}" := "{f}"' for f in fields)
    assert count(f"SELECT count(*) FROM events WHERE matches(struct_pack({packed}))") == matched


def test_recipe_polars_reader(recipe_data):
    pl = pytest.importorskip("polars")
    rs, table, want = recipe_data
    frame = pl.from_arrow(table)
    got, base = [], 0
    for part in frame.iter_slices(1000):
        batch = part.to_arrow()
        got += [(base + r, u) for r, u in pairs(rs, batch)]
        base += part.height
    assert got == want


def test_recipe_ray_data_map_batches(recipe_data):
    ray = pytest.importorskip("ray", reason="ray not installed (pip install 'ray[data]')")
    rs, table, want = recipe_data

    class Match:  # defined here: pickled by value (the test module is not importable in Ray's workers)
        def __init__(self, rules):
            self.rs = rules

        def __call__(self, batch):
            rows, rules = self.rs.match_arrow_arrays(batch)
            ids = pa.array([r.id for r in self.rs])
            return batch.take(pa.array(rows)).append_column("rule_id", ids.take(pa.array(rules)))

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ids = [r.id for r in rs]
        numbered = table.append_column("row", pa.array(range(table.num_rows)))
        blocks = [numbered.slice(k, 1000) for k in range(0, numbered.num_rows, 1000)]  # one block per actor task
        out = ray.data.from_arrow(blocks).map_batches(
            Match, fn_constructor_args=(rs,), batch_format="pyarrow", concurrency=2, num_cpus=0.5).to_arrow_refs()
        got = pa.concat_tables(ray.get(out))
    finally:
        ray.shutdown()
    assert sorted(zip(got.column("row").to_pylist(), got.column("rule_id").to_pylist())) == sorted(
        (r, ids[u]) for r, u in want)

