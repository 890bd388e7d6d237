"""Events per CPU-second of each matching path, for a machine shared with other jobs.

    python benchmarks/cpu_time.py --events 50000 --rounds 5 [--peers]

Wall-clock benchmarks (pytest-benchmark: bench_flagship.py, bench_corpus.py) move by 3x on a
2-core machine that other jobs load; the CPU time of the calling process (all its threads,
``time.process_time``) moves far less. Each figure is the median of ``--rounds`` calls after one
warm-up call, on one generated corpus. Polars is held to one thread (``POLARS_MAX_THREADS=1``) so
that the peers and matcher are compared on one core.

Every answer is checked before it is reported: each RuleSet's Arrow and mapping answers must be
equal, and equal to the reference evaluator on an evenly spaced sample of events; the flagship's
verdicts (matcher and peers) must equal the reference's on every event.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("POLARS_MAX_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE.parent / "tests")]

import numpy as np  # noqa: E402

import matcher  # noqa: E402
from matcher import datasets  # noqa: E402
from matcher.reference import evaluate  # noqa: E402

SAMPLE = 300


def _cpu(fn, rounds: int):
    out = fn()
    times = []
    for _ in range(rounds):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return sorted(times)[rounds // 2], out


def _pairs(rows, rules):
    return list(zip(np.asarray(rows).tolist(), np.asarray(rules).tolist()))


def _check_ruleset(rs, events, arrow, dicts) -> None:
    assert _pairs(*arrow) == _pairs(*dicts), "Arrow and mapping answers differ"
    step = max(1, len(events) // SAMPLE)
    got: dict = {}
    for row, rule in _pairs(*dicts):
        if row % step == 0:
            got.setdefault(row, []).append(rule)
    for i in range(0, len(events), step):
        want = [u for u, r in enumerate(rs.rules) if evaluate(r, events[i])]
        assert got.get(i, []) == want, f"event {i}: core {got.get(i, [])} != reference {want}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peers", action="store_true", help="also tuned_python and polars_tuned (flagship)")
    args = ap.parse_args()
    import pyarrow as pa
    from shared_data import corpus_path

    recs = [json.loads(line) for line in open(corpus_path(), encoding="utf-8")]
    recs = [r for r in recs if r["query"]]
    t = time.process_time()
    rules = [matcher.compile(r["query"], id=r["id"]) for r in recs]
    t_parse = time.process_time() - t
    t = time.process_time()
    rs_all = matcher.RuleSet(rules)
    t_build = time.process_time() - t
    wpc = [r for r, rec in zip(rules, recs)
           if rec["logsource"].get("product") == "windows" and rec["logsource"].get("category") == "process_creation"]
    rs_751 = matcher.RuleSet(wpc)
    events = datasets.generate(args.events, 1)
    table = pa.Table.from_pylist(events)
    results = {"events": args.events, "compile_1648_cpu_s": {"parse": t_parse, "ruleset": t_build}}
    print(f"compile {len(rules)} queries: parse {t_parse:.2f} s + RuleSet {t_build:.2f} s CPU")

    def report(name: str, seconds: float) -> None:
        results[name] = args.events / seconds
        print(f"{name:28s} {args.events / seconds:14,.0f} events per CPU-second", flush=True)

    for label, rs in ((f"{len(rs_751)} queries", rs_751), (f"{len(rs_all)} queries", rs_all)):
        ta, arrow = _cpu(lambda: rs.match_arrow_arrays(table), args.rounds)
        td, dicts = _cpu(lambda: rs.match_arrays(events), args.rounds)
        _check_ruleset(rs, events, arrow, dicts)
        report(f"{label}, Arrow", ta)
        report(f"{label}, dicts", td)
    flag = matcher.builtin("flagship")
    expected = np.fromiter((evaluate(flag, e) for e in events), dtype=bool, count=len(events))
    methods = {"flagship, Arrow": lambda: flag.match_arrow(table), "flagship, dicts": lambda: flag.match_many(events)}
    if args.peers:
        import flagship_peers as peers

        methods["flagship, tuned_python"] = lambda: peers.tuned_python(events)
        methods["flagship, polars_tuned"] = lambda: peers.polars_tuned(table)
    for name, fn in methods.items():
        secs, got = _cpu(fn, args.rounds)
        assert np.array_equal(np.asarray(got, dtype=bool), expected), f"{name}: verdicts differ from the reference"
        report(name, secs)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
