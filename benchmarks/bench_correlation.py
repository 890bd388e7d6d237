"""Correlation rules: cost against the single-event scan of the same base rules, and memory.

Streams: :func:`matcher.datasets.iter_scenario_events` (brute force, password spray, recon
burst, mixed), at ``--events``. Each benchmark first checks the fast engine's alerts against
the reference correlator on a sample (the first ``SAMPLE`` events). Run alone for a table:

    PYTHONPATH=. python benchmarks/bench_correlation.py --events 1000000

Times there are CPU seconds (``time.process_time``), the best of 3 rounds (``--rounds``); the
Arrow columns compare ``correlate_arrow`` with ``match_arrow_arrays`` (the array core) and with
``scan_arrow`` (the single-event scan, a Python pair per match) on the same stream as one
pyarrow Table.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import pytest

import matcher
from matcher import datasets
from matcher.correlation import parse_correlation, reference

SEED = 5
SAMPLE = 20_000

BASE = {
    "failed_logon": 'EventID = "4625"',
    "successful_logon": 'EventID = "4624"',
    **{f"recon_{t[:-4]}": f'EventID = "1" AND Image endswithCIS "\\{t}"' for t in datasets.RECON_TOOLS},
}

CORRELATIONS = [
    {"title": "Brute force", "id": "brute", "correlation": {
        "type": "event_count", "rules": ["failed_logon"], "group-by": ["TargetUserName"], "timespan": "5m",
        "condition": {"gte": 20}}},
    {"title": "Brute force then success", "id": "brute_success", "level": "high", "correlation": {
        "type": "temporal_ordered", "rules": ["brute", "successful_logon"], "group-by": ["TargetUserName"],
        "timespan": "5m"}},
    {"title": "Password spray", "id": "spray", "correlation": {
        "type": "value_count", "rules": ["failed_logon"], "group-by": ["IpAddress"], "timespan": "10m",
        "condition": {"field": "TargetUserName", "gte": 20}}},
    {"title": "Recon burst", "id": "recon", "correlation": {
        "type": "temporal", "rules": [f"recon_{t[:-4]}" for t in datasets.RECON_TOOLS], "group-by": ["Computer"],
        "timespan": "1m"}},
]


def base_rules() -> list:
    return [matcher.compile(q, id=i, title=i) for i, q in BASE.items()]


def correlations() -> list:
    return [parse_correlation(d, where=d["id"]) for d in CORRELATIONS]


def stream(n: int, scenario: str) -> list[dict]:
    return list(datasets.iter_scenario_events(n, SEED, scenario))


def check_sample(rs: matcher.RuleSet, events: list[dict]) -> int:
    """The fast engine's alerts on the sample == the reference's; returns how many."""
    sample = events[:SAMPLE]
    fast = [a for a in rs.correlate(sample, timestamp="EventTime") if a.kind == "correlation"]
    ref, _ = reference.correlate(list(rs.rules), list(rs.correlations), sample, "EventTime")
    assert fast == ref
    return len(fast)


def time_once(fn) -> float:
    """CPU seconds of this process (a shared machine's waits for a core are left out)."""
    gc.collect()
    t = time.process_time()
    fn()
    return time.process_time() - t


ARROW_SCHEMA_FIELDS = ("TargetUserName", "IpAddress", "Computer", "Image", "User", "EventTime")


def arrow_table(events: list[dict]):
    import pyarrow as pa

    schema = pa.schema([("EventID", pa.int64())] + [(f, pa.string()) for f in ARROW_SCHEMA_FIELDS])
    return pa.Table.from_pylist(events, schema=schema)


def measure(n: int, scenario: str, rounds: int = 3, chain: bool = True, arrow: bool = False) -> dict:
    """``chain=False`` leaves out the brute-force-then-success correlation, which names the
    successful logons (30% of the stream): the share of events correlated drops."""
    events = stream(n, scenario)
    base = matcher.RuleSet(base_rules())
    rs = matcher.RuleSet(base_rules() + [c for c in correlations() if chain or c.id != "brute_success"])
    sample_alerts = check_sample(rs, events)
    t_base = min(time_once(lambda: base.match_arrays(events)) for _ in range(rounds))
    t_scan = min(time_once(lambda: list(base.scan(events))) for _ in range(rounds))
    alerts = []
    t_corr = min(time_once(lambda: alerts.append([a for a in rs.correlate(events, timestamp="EventTime")])) for _ in range(rounds))
    run = rs.correlate(events, timestamp="EventTime")
    n_alerts = sum(1 for a in run if a.kind == "correlation")
    out = {"scenario": scenario, "events": n, "base_s": t_base, "scan_s": t_scan, "correlate_s": t_corr,
           "ratio_vs_core": t_corr / t_base, "ratio_vs_scan": t_corr / t_scan, "alerts": n_alerts,
           "correlated": run.stats.correlated, "sample_alerts": sample_alerts}
    if arrow:
        table = arrow_table(events)
        del events, alerts
        a_base = min(time_once(lambda: base.match_arrow_arrays(table)) for _ in range(rounds))
        a_scan = min(time_once(lambda: list(base.scan_arrow(table))) for _ in range(rounds))
        got = []
        a_corr = min(time_once(lambda: got.append(list(rs.correlate_arrow(table, timestamp="EventTime"))))
                     for _ in range(rounds))
        assert sum(1 for a in got[-1] if a.kind == "correlation") == n_alerts
        out.update(arrow_base_s=a_base, arrow_scan_s=a_scan, arrow_correlate_s=a_corr, arrow_ratio=a_corr / a_base,
                   arrow_scan_ratio=a_corr / a_scan)
    return out


def live_groups_memory(n: int) -> dict:
    """Peak memory while ``n`` failed logons of ``n`` distinct users are live in one 5-minute
    window (every group alive at the end; 10,000 events a second), streamed from a generator:
    the growth of the process's peak resident size (``VmHWM``, else ``ru_maxrss``), which
    includes what the allocator keeps, so an upper bound."""
    import resource

    rs = matcher.RuleSet(base_rules() + correlations()[:1])

    def gen():
        for i in range(n):
            yield {"EventID": 4625, "TargetUserName": f"u{i}", "EventTime": 1_704_067_200 + i // 10_000}

    def peak_rss() -> int:
        # VmHWM: this process image's own peak (ru_maxrss also counts a forking parent's)
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    gc.collect()
    before = peak_rss()
    run = rs.correlate(gen(), timestamp="EventTime")
    for _ in run:
        pass
    peak = peak_rss() - before
    assert run.stats.live_groups == n, run.stats.summary()
    return {"groups": n, "peak_mb": peak / 2**20, "bytes_per_group": peak / n}


# -- pytest-benchmark ---------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["brute-force", "spray", "recon", "mixed"])
def scenario(request, n_events):
    events = stream(n_events, request.param)
    rs = matcher.RuleSet(base_rules() + correlations())
    check_sample(rs, events)
    return request.param, events, rs


def test_base_scan(benchmark, scenario):
    _, events, _ = scenario
    base = matcher.RuleSet(base_rules())
    benchmark.pedantic(base.match_arrays, args=(events,), rounds=3, iterations=1)


def test_correlate(benchmark, scenario):
    _, events, rs = scenario
    out = benchmark.pedantic(lambda: [a for a in rs.correlate(events, timestamp="EventTime")], rounds=3, iterations=1)
    assert any(a.kind == "correlation" for a in out) or len(events) < 5000


def test_live_groups_memory(n_events):
    res = live_groups_memory(min(n_events, 200_000))
    assert res["groups"] == min(n_events, 200_000) and res["peak_mb"] >= 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=None, help="live groups for the memory figure (default: --events)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-arrow", action="store_true", help="leave out the Arrow columns")
    ap.add_argument("--memory-only", action="store_true")
    args = ap.parse_args()
    if args.memory_only:
        memory_report(args.groups or args.events)
        return
    print(f"{'scenario':<20} {'events':>8} {'core s':>8} {'scan s':>8} {'corr s':>8} {'x core':>7} {'x scan':>7} "
          f"{'alerts':>7} {'correlated':>14} {'arrow core s':>12} {'arrow scan s':>12} {'arrow corr s':>12} "
          f"{'x arrow core':>12} {'x arrow scan':>12}")
    for sc, chain in (("brute-force", True), ("spray", True), ("recon", True), ("mixed", True), ("mixed", False)):
        r = measure(args.events, sc, rounds=args.rounds, chain=chain, arrow=not args.no_arrow)
        name = sc if chain else f"{sc} (no chain)"
        arrow = (f" {r['arrow_base_s']:>12.3f} {r['arrow_scan_s']:>12.3f} {r['arrow_correlate_s']:>12.3f} "
                 f"{r['arrow_ratio']:>12.2f} {r['arrow_scan_ratio']:>12.2f}" if "arrow_ratio" in r else "")
        print(f"{name:<20} {r['events']:>8} {r['base_s']:>8.3f} {r['scan_s']:>8.3f} {r['correlate_s']:>8.3f} "
              f"{r['ratio_vs_core']:>7.2f} {r['ratio_vs_scan']:>7.2f} {r['alerts']:>7} "
              f"{r['correlated']:>8} ({100 * r['correlated'] / r['events']:.0f}%){arrow}", flush=True)
    memory_report(args.groups or args.events)


def memory_report(groups: int) -> None:
    """The live-groups figure, in a fresh process (this one's peak is already high)."""
    import json
    import subprocess
    import sys

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import bench_correlation as b; "
            "print(json.dumps(b.live_groups_memory(int(sys.argv[2]))))")
    here = str(Path(__file__).resolve().parent)
    m = json.loads(subprocess.run([sys.executable, "-c", code, here, str(groups)], check=True, capture_output=True,
                                  text=True).stdout)
    print(f"live groups: {m['groups']}: peak resident size grew {m['peak_mb']:.1f} MB, {m['bytes_per_group']:.0f} bytes/group")


if __name__ == "__main__":
    main()
