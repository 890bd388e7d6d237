"""Run the benchmark suite at a chosen size and write docs/benchmarks.md and docs/benchmarks.png.

    python -m benchmarks.report --events 1000000            # from the repository root
    python -m benchmarks.report --from-json DIR              # re-render from an earlier run's JSON

Steps: pytest-benchmark runs bench_flagship.py at ``--events`` and bench_corpus.py at
``--corpus-events`` (each benchmark checks its answer against the reference), then memory.py
measures each flagship method's peak memory in a fresh process; the JSON of all three is kept
in ``--json-dir``. Events per second use each benchmark's median time and the number of events it
ran on (``extra_info["events"]``; the slow reference and baselines run on a slice). Ratios are
against naive pure Python and against the fastest peer (every method that is neither matcher nor
the reference) of the same run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = ("matcher", "numpy", "orjson", "pyarrow", "polars", "duckdb", "pyahocorasick", "hyperscan", "pySigma",
            "pysigma-backend-sqlite", "pytest-benchmark", "matplotlib")


# -- running -------------------------------------------------------------------------------------

def _pytest(files: list[str], n: int, out: Path) -> None:
    cmd = [sys.executable, "-m", "pytest", *files, "--events", str(n), f"--benchmark-json={out}",
           "-p", "no:cacheprovider", "-q", "-rs"]
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def _memory(n: int, cache: Path, out: Path) -> None:
    sys.path.insert(0, str(HERE))
    import memory

    results = []
    for name in list(memory.methods()) + list(memory.RULESETS):
        cmd = [sys.executable, str(HERE / "memory.py"), name, "--events", str(n), "--cache", str(cache)]
        print("+", shlex.join(cmd), flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            # a peer that is not installed (or failed) is reported as such, never dropped silently
            results.append({"method": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]})
            print(proc.stderr, file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout))
    out.write_text(json.dumps(results, indent=1))


# -- reading -------------------------------------------------------------------------------------

def _name(b: dict) -> str:
    name = b["name"].removeprefix("test_")
    for wrapper in ("python_peer[", "arrow_peer["):
        if name.startswith(wrapper):
            return name[len(wrapper):-1]
    return name


def flagship_rows(data: dict) -> list[dict]:
    out = []
    for b in data["benchmarks"]:
        if b.get("group") != "flagship" or not b.get("extra_info", {}).get("events"):
            continue
        n, med = b["extra_info"]["events"], b["stats"]["median"]
        out.append({"method": _name(b), "events": n, "median": med, "eps": n / med})
    return sorted(out, key=lambda r: -r["eps"])


def is_peer(name: str) -> bool:
    return not name.startswith("matcher") and name != "reference"


def corpus_rows(data: dict) -> list[dict]:
    out = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if b.get("group") not in ("corpus", "corpus-baselines") or not info.get("events"):
            continue
        name = _name(b).split("[")[0]
        out.append({"method": name, "corpus": info["corpus"], "rules": info["rules"], "events": info["events"],
                    "median": b["stats"]["median"], "eps": info["events"] / b["stats"]["median"]})
    return sorted(out, key=lambda r: (r["rules"], -r["eps"]))


def compile_rows(data: dict) -> list[dict]:
    out = [{"rules": b["extra_info"]["rules"], "median": b["stats"]["median"]}
           for b in data["benchmarks"] if b.get("group") == "compile"]
    return sorted(out, key=lambda r: r["rules"])


# -- writing -------------------------------------------------------------------------------------

def scaleout_rows(data: dict) -> list[dict]:
    out = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if b.get("group") not in ("scaleout", "scaleout-spark-overhead") or not info.get("events"):
            continue
        n, med = info["events"], b["stats"]["median"]
        out.append({"ruleset": info["ruleset"], "rules": info["rules"], "how": info["how"], "events": n,
                    "median": med, "eps": n / med, "cpu_s": info.get("cpu_s")})
    return sorted(out, key=lambda r: (r["rules"], -r["eps"]))


def scaleout_table(rows: list[dict]) -> str:
    lines = ["| rules | how | events | wall (median) | events/s | CPU seconds | CPU µs / event |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cpu = r["cpu_s"]
        lines.append(f"| {r['rules']:,} | {r['how']} | {r['events']:,} | {r['median']:.2f} s | {_fmt_eps(r['eps'])} | "
                     + (f"{cpu:.2f} | {cpu / r['events'] * 1e6:.2f} |" if cpu is not None else " | |"))
    return "\n".join(lines)


def routing_lines(data: dict) -> list[str]:
    """The routing section (``bench_routing.py``): the three rule sets, then the ratio."""
    sets, ratio = [], None
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if b.get("group") == "routing" and info.get("events"):
            sets.append((info["rules"], info["set"], info["events"] / b["stats"]["median"]))
        elif b.get("group") == "routing-ratio":
            ratio = info
    names = {"process_creation": "the Windows process_creation rules alone",
             "whole_tree_no_event_ops": "the whole routed tree without its whole-event rules (keywords, fieldref)",
             "whole_tree": "the whole routed tree"}
    lines = ["| rule set | rules | events/s (median) |", "|---|---:|---:|"]
    lines += [f"| {names.get(w, w)} | {n:,} | {_fmt_eps(eps)} |" for n, w, eps in sorted(sets)]
    if ratio:
        lines += ["", f"Whole tree over the process_creation rules, timed alternately: **{ratio['ratio']:.2f}x** "
                  f"(median of the rounds' ratios; {ratio['ratio_of_mins']:.2f}x between the fastest runs; "
                  f"target {ratio['target']:g}x)."]
    return lines


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mem_total_gb() -> str:
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        return f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, ValueError, IndexError):
        return "?"


def versions() -> str:
    import sqlite3

    parts = [f"Python {platform.python_version()}"]
    for pkg in PACKAGES:
        try:
            parts.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{pkg} (not installed)")
    parts.append(f"SQLite {sqlite3.sqlite_version}")
    return ", ".join(parts)


def _fmt_eps(x: float) -> str:
    return f"{x:,.0f}"


def flagship_table(rows: list[dict], memory: list[dict]) -> str:
    naive = next((r["eps"] for r in rows if r["method"] == "naive_python"), None)
    peers = [r for r in rows if is_peer(r["method"])]
    best = max(peers, key=lambda r: r["eps"]) if peers else None
    mem = {m["method"]: m for m in memory if not m["method"].startswith("ruleset_")}  # those have their own table
    lines = ["| method | events/s (median) | × naive Python | × best peer | peak memory beyond input | events timed |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = mem.get(r["method"])
        peak = "" if m is None else (f"{m['peak_mb']:,.1f} MB" if "peak_mb" in m else f"failed: {m['error']}")
        lines.append(
            f"| {r['method']} | {_fmt_eps(r['eps'])} | {r['eps'] / naive:.1f} | {r['eps'] / best['eps']:.2f} | {peak} | {r['events']:,} |"
            if naive and best else f"| {r['method']} | {_fmt_eps(r['eps'])} | | | {peak} | {r['events']:,} |"
        )
    if best:
        lines.append("")
        lines.append(f"Best peer: **{best['method']}** ({_fmt_eps(best['eps'])} events/s).")
    missing = sorted(set(mem) - {r["method"] for r in rows})
    if missing:
        lines.append(f"Measured for memory but not timed (skipped in the timing run): {', '.join(missing)}.")
    return "\n".join(lines)


def corpus_table(rows: list[dict]) -> str:
    lines = ["| rules | method | events timed | events/s (median) | × per-rule reference loop |", "|---:|---|---:|---:|---:|"]
    ref = {r["rules"]: r["eps"] for r in rows if r["method"] == "reference_per_rule_loop"}
    for r in rows:
        base = ref.get(r["rules"])
        lines.append(f"| {r['rules']:,} | {r['method']} | {r['events']:,} | {_fmt_eps(r['eps'])} | "
                     f"{r['eps'] / base:,.0f} |" if base else f"| {r['rules']:,} | {r['method']} | {r['events']:,} | {_fmt_eps(r['eps'])} | |")
    return "\n".join(lines)


def compile_table(rows: list[dict]) -> str:
    lines = ["| rules | compile time (median) |", "|---:|---:|"]
    lines += [f"| {r['rules']:,} | {r['median'] * 1000:,.1f} ms |" for r in rows]
    return "\n".join(lines)


def chart(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["eps"])
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.4), dpi=110)
    colors = ["#d62728" if r["method"].startswith("matcher") else ("#7f7f7f" if r["method"] == "reference" else "#1f77b4")
              for r in rows]
    ax.barh([r["method"] for r in rows], [r["eps"] for r in rows], color=colors)
    ax.set_xscale("log")
    ax.set_xlabel("events per second (median, log scale)")
    ax.set_title(title, fontsize=10)
    for i, r in enumerate(rows):
        ax.text(r["eps"] * 1.08, i, _fmt_eps(r["eps"]), va="center", fontsize=7)
    ax.set_xlim(right=max(r["eps"] for r in rows) * 8)
    ax.grid(axis="x", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render(json_dir: Path, out_dir: Path, command: str, elapsed: float | None) -> None:
    flag = json.loads((json_dir / "flagship.json").read_text())
    corp = json.loads((json_dir / "corpus.json").read_text()) if (json_dir / "corpus.json").exists() else None
    mem = json.loads((json_dir / "memory.json").read_text()) if (json_dir / "memory.json").exists() else []
    frows = flagship_rows(flag)
    n = max((r["events"] for r in frows), default=0)
    when = flag.get("datetime", _dt.datetime.now(_dt.timezone.utc).isoformat())[:19].replace("T", " ")
    machine = f"{cpu_model()}, {os.cpu_count()} logical CPUs, {mem_total_gb()} RAM, Linux {platform.release()}"
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {when} UTC" + (f" in {elapsed / 60:.0f} minutes." if elapsed else "."),
        "",
        f"Machine: {machine}. The machine was shared with other jobs; figures are medians.",
        "",
        f"Versions: {versions()}.",
        "",
        f"## The flagship rule, {n:,} generated events (`matcher.datasets`, seed 1)",
        "",
        "Every method's verdicts equal the reference evaluator's on every event (asserted by the suite).",
        "Peak memory: the rise of the process's high-water mark (VmHWM) over its resident size with the",
        "input loaded, one fresh process per method (`benchmarks/memory.py`).",
        "",
        flagship_table(frows, mem),
        "",
        "![events per second, log scale](benchmarks.png)",
        "",
    ]
    if corp:
        crows = corpus_rows(corp)
        parts += [
            "## Many rules: the SigmaHQ corpus in S1QL",
            "",
            "751 = the Windows process_creation queries, 1,648 = all queries. (event, rule) pairs are checked against",
            "the reference on a sample of events; the reference loop and the one-rule-at-a-time baseline run on a slice.",
            "",
            corpus_table(crows),
            "",
            "Compile time (parse + compile to one RuleSet):",
            "",
            compile_table(compile_rows(corp)),
            "",
        ]
        rmem = [m for m in mem if m.get("method", "").startswith("ruleset_") and "error" not in m]
        if rmem:
            parts += [
                f"Memory of the RuleSets ({rmem[0]['events']:,} events over Arrow, a fresh process each): the resident",
                "size their compiled tables add, and the peak of one `scan_arrow` beyond that.",
                "",
                "| rules | compiled RuleSet | scan peak beyond it |",
                "|---:|---:|---:|",
                *(f"| {m['rules']:,} | {m['compiled_mb']:,.1f} MB | {m['peak_mb']:,.1f} MB |" for m in rmem),
                "",
            ]
    if (json_dir / "scaleout.json").exists():
        srows = scaleout_rows(json.loads((json_dir / "scaleout.json").read_text()))
        parts += [
            "## Scale-out: threads, `scan --jobs`, Spark local[2] (`benchmarks/bench_scaleout.py`)",
            "",
            "The same events and the same (event, rule) pairs in every row (asserted). CPU seconds: this process, the",
            "processes it waited for and its live descendants (pool workers, Spark's JVM and Python workers). The",
            "command-line rows include starting Python, compiling the rules and writing the matches as JSON lines;",
            "the Spark rows reading Parquet and moving Arrow batches between the JVM and Python (the empty",
            "`mapInArrow` row is that cost alone). See docs/scale.md for what a 2-core machine cannot show.",
            "",
            scaleout_table(srows) if srows else "(not run)",
            "",
        ]
    if (json_dir / "routing.json").exists():
        parts += [
            "## The whole SigmaHQ tree over a mixed log (`benchmarks/bench_routing.py`)",
            "",
            "Profile `sysmon`, `datasets.iter_mixed` (Sysmon process creation, network, DNS, Security logons, zeek",
            "conn). Logsource routing lets each rule skip the events outside its logsource; every answer is checked",
            "(no cross-logsource match, the reference on a sample, the same process_creation matches alone and in",
            "the tree). Details: docs/sigma.md, Speed.",
            "",
            *routing_lines(json.loads((json_dir / "routing.json").read_text())),
            "",
        ]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmarks.md").write_text("\n".join(parts))
    chart(frows, out_dir / "benchmarks.png", f"Flagship rule, {n:,} events — {cpu_model()}")
    print(f"wrote {out_dir / 'benchmarks.md'} and {out_dir / 'benchmarks.png'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the benchmarks and write the Markdown report and chart.")
    ap.add_argument("--events", type=int, default=100_000, help="events for the flagship benchmarks (default 100000)")
    ap.add_argument("--corpus-events", type=int, default=None, help="events for the corpus benchmarks (default: --events)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="where benchmarks.md and benchmarks.png go")
    ap.add_argument("--json-dir", type=Path, default=ROOT / "build" / "benchmarks-report", help="where the raw JSON is kept")
    ap.add_argument("--from-json", type=Path, default=None, help="only render from an earlier run's JSON directory")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    ap.add_argument("--scaleout-events", type=int, default=None,
                    help="events for the scale-out benchmarks (default: --events; 0 skips them)")
    ap.add_argument("--routing-events", type=int, default=20_000,
                    help="events for the routing benchmark (the whole SigmaHQ tree; default 20000; 0 skips it)")
    args = ap.parse_args(argv)
    command = "python -m benchmarks.report " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.from_json:
        render(args.from_json, args.out, command, None)
        return 0
    t0 = time.perf_counter()
    args.json_dir.mkdir(parents=True, exist_ok=True)
    _pytest(["benchmarks/bench_flagship.py"], args.events, args.json_dir / "flagship.json")
    _pytest(["benchmarks/bench_corpus.py"], args.corpus_events or args.events, args.json_dir / "corpus.json")
    scale_n = args.events if args.scaleout_events is None else args.scaleout_events
    if scale_n:
        _pytest(["benchmarks/bench_scaleout.py"], scale_n, args.json_dir / "scaleout.json")
    if args.routing_events:
        _pytest(["benchmarks/bench_routing.py"], args.routing_events, args.json_dir / "routing.json")
    if not args.no_memory:
        _memory(args.events, args.json_dir / "cache", args.json_dir / "memory.json")
    render(args.json_dir, args.out, command, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
