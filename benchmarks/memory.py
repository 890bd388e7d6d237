"""Peak memory of each flagship method and of the corpus RuleSets, one fresh process each.

    python benchmarks/memory.py METHOD --events N [--seed S] [--cache DIR]

The process loads the method's input as the timing suite gives it (a list of dicts read from
JSON lines, an Arrow table read from Parquet, or the path of a JSON-lines file for the end-to-end
methods), then reads its resident set size (VmRSS), resets the kernel's high-water mark
(``echo 5 > /proc/self/clear_refs``, Linux 4.0+), runs the method once and reads the high-water
mark again (VmHWM). ``peak_mb`` = VmHWM - VmRSS before the run: the most memory the method held at
once beyond its input, native allocations (Arrow, DuckDB, Polars, SQLite, hyperscan) included,
which tracemalloc would miss. Rule compilation and peers' setup (pattern databases, SQL
conversion, the SQLite rows) happen before the baseline. The method's verdicts are then checked
against matcher's (which the timing suite checks against the reference): a mismatch exits 1.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))  # shared_data (after benchmarks/: its conftest wins)

import flagship_peers as peers
import sigma_sqlite

import matcher
from matcher import datasets

SEED = 1  # the timing suite's (conftest.SEED)


def _status(key: str) -> int:
    """A /proc/self/status value in KiB."""
    with open("/proc/self/status") as fh:
        return int(re.search(rf"^{key}:\s+(\d+)", fh.read(), re.MULTILINE).group(1))


def _matcher_jsonl(rule):
    from bench_flagship import matcher_jsonl

    return lambda path: matcher_jsonl(rule, path)


def _sqlite():
    sql = sigma_sqlite.flagship_sql()
    return lambda rows: sigma_sqlite.load_and_query(rows, sql, len(rows))


def methods():
    """name -> (input kind, factory returning fn(input) -> verdicts)."""
    rule = matcher.builtin("flagship")
    return {
        "matcher_dicts": ("dicts", lambda: rule.match_many),
        "matcher_arrow": ("arrow", lambda: rule.match_arrow),
        "matcher_jsonl": ("jsonl", lambda: _matcher_jsonl(rule)),
        "naive_python": ("dicts", lambda: peers.naive_python),
        "tuned_python": ("dicts", lambda: peers.tuned_python),
        "pyahocorasick_python": ("dicts", lambda: peers.pyahocorasick_python),
        "python_re": ("dicts", lambda: peers.python_re),
        "pyarrow_compute": ("arrow", lambda: peers.pyarrow_compute),
        "polars": ("arrow", lambda: peers.polars_expr),
        "polars_tuned": ("arrow", lambda: peers.polars_tuned),
        "duckdb": ("arrow", lambda: peers.duckdb_sql),
        "duckdb_tuned": ("arrow", lambda: peers.duckdb_tuned),
        "hyperscan": ("arrow", peers.Hyperscan),
        "sqlite_pysigma": ("sqlite_rows", _sqlite),
    }


def cache_files(n: int, cache: Path) -> tuple[Path, Path]:
    """The generated corpus as JSON lines and Parquet (written once per size and seed)."""
    cache.mkdir(parents=True, exist_ok=True)
    jl, pq = cache / f"events-{n}-{SEED}.jsonl", cache / f"events-{n}-{SEED}.parquet"
    for path in (jl, pq):
        if not path.exists():
            tmp = path.with_suffix(".tmp" + path.suffix)
            datasets.write(tmp, n, seed=SEED)
            tmp.rename(path)
    return jl, pq


#: The corpus RuleSets measured: name -> only the Windows process_creation queries?
RULESETS = {"ruleset_751": True, "ruleset_1648": False}
#: Events of the sample whose (event, rule) pairs are checked against the reference.
RULESET_SAMPLE = 100


def measure_ruleset(name: str, n: int, cache: Path) -> dict:
    """A corpus RuleSet over the Arrow table: the memory its compiled tables take
    (``compiled_mb``: resident size after building it, less before) and the peak of one
    ``scan_arrow`` beyond that (``peak_mb``); pairs checked against the reference on a sample."""
    import pyarrow.parquet as pq
    from bench_corpus import _records

    from matcher.reference import evaluate

    _, pqf = cache_files(n, cache)
    table = pq.read_table(pqf)
    recs = _records(RULESETS[name])
    before = _status("VmRSS")
    rules = [matcher.compile(r["query"], id=r["id"]) for r in recs]
    rs = matcher.RuleSet(rules)
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    step = max(1, n // RULESET_SAMPLE)
    npairs, got = 0, set()
    for i, rid in rs.scan_arrow(table):  # streamed: only the sample's pairs are kept
        npairs += 1
        if i % step == 0:
            got.add((i, rid))
    peak = _status("VmHWM") - base
    events = table.take(list(range(0, n, step))).to_pylist()
    want = {(k * step, r.id) for k, ev in enumerate(events) for r in rules
            if evaluate(r, {f: v for f, v in ev.items() if v is not None})}
    return {"method": name, "events": n, "rules": len(rules), "compiled_mb": round((base - before) / 1024, 1),
            "peak_mb": round(peak / 1024, 1), "pairs": npairs, "agrees": got == want, "input_mb": round(before / 1024, 1)}


def measure(name: str, n: int, cache: Path) -> dict:
    import orjson
    import pyarrow.parquet as pq

    kind, factory = methods()[name]
    jl, pqf = cache_files(n, cache)
    if kind == "arrow":
        data = pq.read_table(pqf)
    elif kind == "jsonl":
        data = jl
    else:
        with open(jl, "rb") as fh:
            data = [orjson.loads(x) for x in fh]
        if kind == "sqlite_rows":
            data = sigma_sqlite.sysmon_rows(data)
    fn = factory()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    got = np.asarray(fn(data), dtype=bool)
    peak = _status("VmHWM") - base
    rule = matcher.builtin("flagship")
    want = rule.match_arrow(pq.read_table(pqf))
    ok = got.shape == want.shape and bool((got == np.asarray(want, dtype=bool)).all())
    return {"method": name, "events": n, "input_mb": round(base / 1024, 1), "peak_mb": round(peak / 1024, 1),
            "positives": int(got.sum()), "agrees": ok}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("method", choices=sorted(methods()) + sorted(RULESETS))
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--cache", type=Path, default=Path("build/benchmarks-cache"))
    args = ap.parse_args(argv)
    if args.method in RULESETS:
        res = measure_ruleset(args.method, args.events, args.cache)
    else:
        res = measure(args.method, args.events, args.cache)
    print(json.dumps(res))
    return 0 if res["agrees"] else 1


if __name__ == "__main__":
    sys.exit(main())
