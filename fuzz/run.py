"""Run every fuzz target (or those named) for a bounded time; exit 1 on any finding.

    python fuzz/run.py [TARGET ...]

Environment: ``FUZZ_SECONDS`` per target (default 60), ``FUZZ_TIMEOUT`` seconds one input may
take before it counts as a hang (10), ``FUZZ_RSS_MB`` memory limit (2048). Targets run one at a
time. Each starts from its committed seeds (``fuzz/seeds/<target>/``, never written) and a work
corpus (``fuzz/.corpus/<target>/``, kept between runs, not committed); a finding is written to
``fuzz/findings/`` and printed with the command that reproduces it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("s1ql", "sigma", "inputs", "core_dict", "core_arrow")
#: hypothesis-driven targets need room for the choices that build rules and events
MAX_LEN = {"core_dict": 4096, "core_arrow": 4096, "sigma": 8192, "inputs": 8192, "s1ql": 4096}


def _matcher_home() -> str:
    """The folder holding the matcher this Python imports: the installed package (CI), else the
    source tree (a development checkout built in place). Never the source tree ahead of an
    installed package: the tree has no compiled core unless it was built in place."""
    spec = importlib.util.find_spec("matcher")
    return str(Path(spec.origin).resolve().parent.parent) if spec and spec.origin else str(HERE.parent)


def run(target: str, seconds: int, timeout: int, rss_mb: int) -> bool:
    work = HERE / ".corpus" / target
    work.mkdir(parents=True, exist_ok=True)
    findings = HERE / "findings"
    findings.mkdir(exist_ok=True)
    before = set(findings.iterdir())
    cmd = [sys.executable, str(HERE / f"fuzz_{target}.py"), str(work), str(HERE / "seeds" / target),
           f"-max_total_time={seconds}", f"-timeout={timeout}", f"-rss_limit_mb={rss_mb}",
           f"-max_len={MAX_LEN[target]}", f"-artifact_prefix={findings}/{target}-", "-print_final_stats=1"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_matcher_home(), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    log = proc.stdout + proc.stderr
    done = [ln for ln in log.splitlines() if re.match(r"#\d+\s+DONE", ln)]
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    rate = re.search(r"stat::average_exec_per_sec:\s*(\d+)", log)
    new = sorted(set(findings.iterdir()) - before)
    ok = proc.returncode == 0 and not new
    print(f"fuzz {target}: {'ok' if ok else 'FINDING'}: {execs.group(1) if execs else '?'} inputs, "
          f"{rate.group(1) if rate else '?'} exec/s, {done[-1].split('DONE', 1)[1].strip() if done else ''}")
    if not ok:
        lines = log.splitlines()
        start = next((i for i, ln in enumerate(lines) if "Uncaught Python exception" in ln), None)
        if start is not None:  # the Python traceback, up to libFuzzer's own report
            end = next((i for i in range(start, len(lines)) if lines[i].startswith(("INFO:", "=="))), len(lines))
            shown = lines[start:end]
        else:
            shown = [ln for ln in lines if not re.match(r"#\d+\s", ln)][-30:]
        print("--- the fuzzer's report (exit %d):\n%s\n---" % (proc.returncode, "\n".join(shown)))
        for f in new:
            data = f.read_bytes()
            print(f"reproducer: {f} ({len(data)} bytes): {data[:400]!r}")
            print(f"  rerun: python {HERE / f'fuzz_{target}.py'} {f}")
    return ok


def main(argv: list[str]) -> int:
    targets = argv or list(TARGETS)
    unknown = set(targets) - set(TARGETS)
    if unknown:
        print(f"unknown targets {sorted(unknown)}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    seconds = int(os.environ.get("FUZZ_SECONDS", "60"))
    timeout = int(os.environ.get("FUZZ_TIMEOUT", "10"))
    rss = int(os.environ.get("FUZZ_RSS_MB", "2048"))
    results = [run(t, seconds, timeout, rss) for t in targets]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
