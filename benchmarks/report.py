"""Turn a pytest-benchmark JSON file into the Markdown table the README shows.

    pytest benchmarks/bench_flagship.py --events 1000000 --benchmark-json=flagship.json
    python benchmarks/report.py flagship.json

Events per second use each benchmark's median time and the number of events it ran on
(``extra_info["events"]``). Ratios are against naive pure Python and against the fastest
peer (every method that is not matcher) in the same run.
"""

from __future__ import annotations

import json
import platform
import sys


def rows(data: dict) -> list[tuple[str, float, float]]:
    out = []
    for b in data["benchmarks"]:
        n = b.get("extra_info", {}).get("events")
        if not n:
            continue
        med = b["stats"]["median"]
        out.append((b["name"].removeprefix("test_"), n / med, med))
    return sorted(out, key=lambda r: -r[1])


def table(data: dict) -> str:
    rs = rows(data)
    naive = next((eps for name, eps, _ in rs if "naive" in name), None)
    peers = [eps for name, eps, _ in rs if not name.startswith("matcher") and "reference" not in name]
    best = max(peers) if peers else None
    lines = [
        "| method | events/s (median) | × naive Python | × best peer |",
        "|---|---:|---:|---:|",
    ]
    for name, eps, _ in rs:
        lines.append(
            f"| {name} | {eps:,.0f} | {eps / naive:.1f} | {eps / best:.2f} |" if naive and best else f"| {name} | {eps:,.0f} | | |"
        )
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {}).get("brand_raw", platform.processor())
    lines.append("")
    lines.append(f"Machine: {cpu}, {info.get('cpu', {}).get('count', '?')} cores, Python {info.get('python_version', '?')}.")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        print(table(json.load(fh)))
