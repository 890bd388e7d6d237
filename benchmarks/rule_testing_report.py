"""matcher.testing over the 751 Windows process-creation rules both Sigma routes accept.

    PYTHONPATH=. python benchmarks/rule_testing_report.py [--budget 50] [--emu-budget 20] [--examples 10]
        [--limit N] [--json FILE] [--reuse FILE] [--skip-events]

1. Satisfiability: how many of the S1QL corpus queries ``events`` can build a matching event
   for, and how many are reported as ``UnsatisfiableRule`` (proven, or by the bounded search).
2. Events per second: ``events(rule)`` drawn by hypothesis (``--examples`` per rule), every
   event checked by the reference inside the strategy and here by the compiled core.
3. The route comparison of docs/sigma.md: for each rule, ``counterexample(Sigma rule, S1QL
   query)`` (both for S1 field names), each counterexample put down to the backend change that
   explains it; and ``counterexample(emulated backend, S1QL query)``, which must find nothing.

Figures are noisy (a shared 2-core machine). The tables are printed as markdown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import matcher  # noqa: E402
from matcher import reference, testing as mt  # noqa: E402
from matcher.ir import And, Glob, Not, Op, Or, Pred, Wild, walk_preds  # noqa: E402
from matcher.reference import predicate  # noqa: E402
from matcher.sigma import parse_sigma  # noqa: E402

from shared_data import corpus_path, sigma_rules_path  # noqa: E402


def pairs(limit: int | None = None) -> list[tuple[str, object, object, object]]:
    """(path, Sigma rule, Sigma rule as the backend reads it, S1QL rule) for the Windows
    process-creation records of the corpus, in path order."""
    root = sigma_rules_path()
    out = []
    for line in corpus_path().read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        ls = rec["logsource"] or {}
        if not (rec["query"] and ls.get("category") == "process_creation" and ls.get("product") == "windows"):
            continue
        text = (root / rec["path"]).read_text(encoding="utf-8-sig")
        (sig,) = parse_sigma(text, source=rec["path"], profile="s1")
        (emu,) = parse_sigma(text, source=rec["path"], profile="s1", s1_backend=True)
        out.append((rec["path"], sig, emu, matcher.compile(rec["query"], id=rec["id"], title=rec["title"])))
    out.sort(key=lambda t: t[0])
    return out[:limit]


# -- causes -------------------------------------------------------------------------------------

CAUSES = {
    "list": "a value list of plain values on one field becomes `In Contains AnyCase (...)`",
    "null": "`null` becomes `F IS NOT EMPTY`",
    "one": "`?` becomes `*`",
    "star": "a literal `*` (`\\*` in Sigma) is written `\\*` in an `=` value",
    "not": "`not` over a `windash`/`base64offset` expansion: the OR is written without parentheses",
    "flags": "`|re|i`/`|m`/`|s`: flags dropped",
}


_FLAGS = re.compile(r"\(\?[imsx]+\)")  # the inline flags pySigma puts in front for |i, |m, |s


def _any_glob(g: Glob) -> Glob:
    return Glob.of(*(Wild.ANY if p is Wild.ONE else p for p in g.parts))


def _null_as_backend(node):
    """The IR with Sigma's ``null`` (``NOT F IS NOT EMPTY``) as the backend writes it (``F IS NOT EMPTY``)."""
    if isinstance(node, Not):
        if isinstance(node.item, Pred) and node.item.op is Op.NOT_EMPTY:
            return node.item
        return Not(_null_as_backend(node.item))
    if isinstance(node, (And, Or)):
        return type(node)(tuple(_null_as_backend(c) for c in node.items))
    return node


def causes(sig, emu, event: dict) -> set[str]:
    """The backend changes that account for the two routes' verdicts differing on ``event``."""
    found = set()
    preds = list(walk_preds(sig.ir))
    for p in preds:
        if p.op is Op.EQUALS and not predicate(p, event) and predicate(Pred(p.field, Op.CONTAINS, p.value), event):
            found.add("list")
        if isinstance(p.value, Glob) and Wild.ONE in p.value.parts and (
                predicate(p, event) != predicate(Pred(p.field, p.op, _any_glob(p.value)), event)):
            found.add("one")
        texts = p.value.parts if isinstance(p.value, Glob) else [p.value] if isinstance(p.value, str) else []
        if p.op in (Op.EQUALS, Op.GLOB) and any(isinstance(t, str) and "*" in t for t in texts):
            found.add("star")
        if p.op is Op.REGEX and _FLAGS.match(p.value) and (
                predicate(p, event) != predicate(Pred(p.field, p.op, _FLAGS.sub("", p.value, 1)), event)):
            found.add("flags")
    if any(p.op is Op.NOT_EMPTY for p in preds) and (
            reference.evaluate(_null_as_backend(sig.ir), event) != reference.evaluate(sig, event)):
        found.add("null")
    if "Or(items=(Not(" in repr(emu.ir) and "Or(items=(Not(" not in repr(sig.ir):
        found.add("not")
    return found


# -- the three measurements -----------------------------------------------------------------------


def _sat(rule) -> bool:
    try:
        mt.witness(rule)
        return True
    except mt.UnsatisfiableRule:
        return False


def satisfiability(rules) -> tuple[int, list]:
    ok, unsat = 0, []
    for r in rules:
        try:
            mt.witness(r)
            ok += 1
        except mt.UnsatisfiableRule as e:
            unsat.append(e)
    return ok, unsat


def events_rate(rules, examples: int) -> tuple[int, float, list]:
    from hypothesis import HealthCheck, Phase, given, settings

    total, missed = 0, []
    t0 = time.perf_counter()
    for r in rules:
        try:
            strategy = mt.events(r)
        except mt.UnsatisfiableRule:
            continue
        ruleset = matcher.RuleSet([r])
        got: list = []

        @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(ev):
            got.append(ev)

        collect()
        total += len(got)
        missed += [(r.id, ev) for ev in got if not ruleset.match(ev) or not reference.evaluate(r, ev)]
    return total, time.perf_counter() - t0, missed


def route_table(ps, budget: int, emu_budget: int, reuse: dict | None = None) -> dict:
    by_cause: Counter = Counter()
    directions: Counter = Counter()
    rows, unexplained, emulation_left = [], [], []
    t0 = time.perf_counter()
    for path, sig, emu, s1 in ps:
        ev = reuse.get(path) if reuse is not None else mt.counterexample(sig, s1, budget=budget)
        assert ev is None or reference.evaluate(sig, ev) != reference.evaluate(s1, ev)
        if ev is not None:
            why = causes(sig, emu, ev)
            by_cause.update(why or {"unexplained"})
            if not why:
                unexplained.append((path, ev))
            directions["Sigma matches, S1QL does not" if reference.evaluate(sig, ev) else
                       "S1QL matches, Sigma does not"] += 1
            rows.append({"path": path, "event": ev, "causes": sorted(why)})
        left = None if reuse is not None else mt.counterexample(emu, s1, budget=emu_budget)
        if left is not None:
            emulation_left.append((path, left))
    return {"rules": len(ps), "differ": len(rows), "by_cause": by_cause, "directions": directions,
            "rows": rows, "unexplained": unexplained, "emulation_left": emulation_left,
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=mt.BUDGET, help="hypothesis examples per comparison after the structural search")
    ap.add_argument("--emu-budget", type=int, default=mt.BUDGET, help="the same for the emulated backend against S1QL")
    ap.add_argument("--examples", type=int, default=20, help="events drawn per rule for the events/s figure")
    ap.add_argument("--limit", type=int, default=None, help="only the first N rules (by path)")
    ap.add_argument("--json", help="write every counterexample found to this file")
    ap.add_argument("--reuse", help="classify the counterexamples of an earlier --json file instead of searching")
    ap.add_argument("--skip-events", action="store_true", help="leave out the satisfiability and events/s parts")
    args = ap.parse_args(argv)

    ps = pairs(args.limit)
    if not args.skip_events:
        report_events([p[3] for p in ps], args.examples)
    report_routes(ps, args)
    return 0


def report_events(s1_rules, examples: int) -> None:
    ok, unsat = satisfiability(s1_rules)
    print(f"## Satisfiability ({len(s1_rules)} S1QL queries)\n")
    lists = sum(any(isinstance(v, list) for v in mt.witness(r).values()) for r in s1_rules if _sat(r))
    print(f"{ok} satisfiable ({lists} of them only with a multi-valued field), {len(unsat)} reported UnsatisfiableRule "
          f"({sum(e.proven for e in unsat)} proven by structure, {sum(not e.proven for e in unsat)} by the bounded search)")
    for e in unsat:
        print(f"- {e}")

    n, secs, missed = events_rate(s1_rules, examples)
    print(f"\n## events(rule): {n} events over {ok} rules in {secs:.1f} s = {n / secs:,.0f} events/s "
          f"(hypothesis, {examples} examples a rule, generation phase only)")
    print(f"events the core or the reference does not match: {len(missed)}")
    for rid, ev in missed[:10]:
        print(f"- {rid}: {ev}")


def report_routes(ps, args) -> None:
    reuse = None
    if args.reuse:  # the counterexamples of an earlier --json run, classified again (no search)
        reuse = {row["path"]: row["event"] for row in json.loads(Path(args.reuse).read_text(encoding="utf-8"))}
    res = route_table(ps, args.budget, args.emu_budget, reuse)
    how = f"counterexamples of {args.reuse}" if reuse is not None else f"budget {args.budget}; {res['seconds']:.0f} s"
    print(f"\n## Route comparison: counterexample(Sigma, S1QL) over {res['rules']} rules ({how})\n")
    print("| backend change | rules with a counterexample it explains |\n| --- | ---: |")
    for key, text in CAUSES.items():
        print(f"| {text} | {res['by_cause'].get(key, 0)} |")
    if res["by_cause"].get("unexplained"):
        print(f"| none of these (unexplained) | {res['by_cause']['unexplained']} |")
    print(f"\n{res['differ']} of {res['rules']} rules have a counterexample; "
          + "; ".join(f"{k}: {v}" for k, v in res["directions"].most_common()))
    if reuse is None:
        print(f"with the backend's changes emulated (budget {args.emu_budget}): {len(res['emulation_left'])} rules still differ")
    for path, ev in res["unexplained"] + res["emulation_left"]:
        print(f"- {path}: {ev}")
    if args.json:
        Path(args.json).write_text(json.dumps(res["rows"], indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
