"""Hostile inputs against the compiled core (issue 11, classes 1, 2 and 7).

Class 1: the core reads pointers into ``str`` data and into events while Python code (a
``Mapping`` method, a dict key's ``__eq__``, an iterator, a whole-event callback, another
thread) may run in between. Each test below builds one way for that Python code to free what
the core reads; the core must own a reference to everything it reads, so the verdicts equal
the reference evaluator's and nothing crashes. Crash-prone cases run in a subprocess, so a
segmentation fault fails the test instead of killing pytest.

Class 2: Arrow buffers with out-of-range offsets or dictionary indices raise
``ArrowDataError`` naming the column, never read out of bounds.

Class 7: an iterator that raises in the middle of a scan: every match found before the
failure reaches the caller, then the error does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import matcher
from matcher.errors import ArrowDataError, MatcherError

ROOT = Path(__file__).resolve().parent.parent

# Shared by every subprocess scenario: a rule set over two fields (one gathered up front, one
# read lazily by candidates only), fresh (never interned, never shared) strings, and a check
# of every verdict against the expected set of matching rows.
PRELUDE = """
import gc, sys, threading
from collections.abc import Mapping
import matcher
from matcher.ir import Pred, Op, And
from matcher.rules import RuleInfo

def fresh(s):
    # A new str object with s's text, not shared with any other value.
    return "".join(list(s))

N = 2000
RS = matcher.RuleSet([matcher.compile('TgtProcName = "proc3.exe"', id="r")])
RS2 = matcher.RuleSet([matcher.compile('TgtProcName = "proc3.exe" AND SrcProcName containsCIS "svc"', id="r2")])
EXPECT = {i for i in range(N) if i % 7 == 3}

def name(i):
    return fresh("proc%d.exe" % (i % 7))

def check(found, expect=EXPECT):
    found = set(found)
    if found != expect:
        print("WRONG", len(found), len(expect), sorted(found ^ expect)[:10])
        sys.exit(3)
    print("OK", len(found))

JUNK = []
def scribble():
    # Reuse the memory just freed: strings of the same size with other text, dicts.
    gc.collect()
    JUNK.append([fresh("zzzz%d.exe" % (i % 7)) for i in range(N)])
    JUNK.append([{"x": i} for i in range(N)])

def check_prefix(found, limit):
    # The events list was cleared mid-scan: the rows seen before are matched as they were
    # (a prefix of the expected rows, up to the row whose lookup cleared the list).
    found = set(found)
    k = max(found, default=-1) + 1
    if k > limit or found != {i for i in EXPECT if i < k}:
        print("WRONG", sorted(found)[:10])
        sys.exit(3)
    print("OK", len(found))

class Key:
    # Hashes as the field name, so every lookup of the field in a dict holding it runs __eq__.
    busy = False
    def __init__(self, action): self.action = action
    def __hash__(self): return hash("TgtProcName")
    def __eq__(self, other):
        if not Key.busy:
            Key.busy = True
            try:
                self.action()
            finally:
                Key.busy = False
        return False
"""


def run_scenario(body: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONFAULTHANDLER", "1")
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def assert_ok(body: str) -> None:
    proc = run_scenario(body)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert proc.stdout.startswith("OK"), proc.stdout


# -- class 1: every way for Python code to free what the core reads ---------------------------


def test_mapping_getitem_returns_a_new_string_each_time():
    assert_ok("""
        class Ev(Mapping):
            def __init__(self, i): self.i = i
            def __getitem__(self, k):
                if k == "TgtProcName": return name(self.i)
                raise KeyError(k)
            def __iter__(self): return iter(["TgtProcName"])
            def __len__(self): return 1
        check(i for i, _ in RS.scan([Ev(i) for i in range(N)]))
    """)


def test_list_subclass_iterator_yields_copies():
    assert_ok("""
        class Copies(list):
            def __iter__(self):
                for e in list.__iter__(self):
                    yield dict(e, TgtProcName=fresh(e["TgtProcName"]))
        events = Copies({"TgtProcName": name(i)} for i in range(N))
        check(i for i, _ in RS.scan(events))
        rows, _ = RS.match_arrays(events)
        check(rows.tolist())
    """)




def test_dict_key_eq_rewrites_earlier_events_mid_gather():
    assert_ok("""
        events = [{"TgtProcName": name(i)} for i in range(N)]
        def rewrite():
            for ev in events:
                ev["TgtProcName"] = fresh(ev["TgtProcName"])  # the old value is freed
            gc.collect()
        Key.busy = True  # disarmed while the dicts are built
        for i in range(100, N, 300):  # the key comes first, so the field's lookup meets it
            events[i] = {Key(rewrite): 1, "TgtProcName": name(i)}
        Key.busy = False
        for batch in (8192, 50):
            check(i for i, _ in RS.scan(events, batch=batch))
        rows, _ = RS.match_arrays(events)
        check(rows.tolist())
        check(i for i, _ in RS.scan(iter(events)))
    """)


def test_dict_key_eq_clears_the_list_of_events_mid_gather():
    assert_ok("""
        def make():
            events = [{"TgtProcName": name(i)} for i in range(N)]
            Key.busy = True  # disarmed while the dict is built
            events[300] = {Key(lambda: (events.clear(), scribble())): 1, "TgtProcName": name(300)}
            Key.busy = False
            return events
        rows, _ = RS.match_arrays(make())
        check_prefix(rows.tolist(), 301)
        check_prefix((i for i, _ in RS.scan(make(), batch=100)), 400)  # scan copies a batch

        class Sub(list):
            pass
        events = Sub([{"TgtProcName": name(i)} for i in range(N)])
        Key.busy = True
        events[300] = {Key(lambda: (events.clear(), scribble())): 1, "TgtProcName": name(300)}
        Key.busy = False
        rows, _ = RS.match_arrays(events)  # no read-ahead: rows 0..300 are gathered
        check(rows.tolist(), {i for i in EXPECT if i <= 300})
    """)


def test_lazy_field_read_rewrites_gathered_values():
    # SrcProcName is read only by candidates (after TgtProcName fired), with the GIL, through
    # the mapping's own get(): it rewrites every event's gathered value.
    assert_ok("""
        class Ev(dict):
            pass
        class Hostile(Mapping):
            def __init__(self, d): self.d = d
            def __getitem__(self, k):
                if k == "SrcProcName":
                    for ev in events:
                        if isinstance(ev, dict):
                            ev["TgtProcName"] = fresh(ev["TgtProcName"])
                    gc.collect()
                return self.d[k]
            def __iter__(self): return iter(self.d)
            def __len__(self): return len(self.d)
        events = [{"TgtProcName": name(i), "SrcProcName": fresh("svchost.exe")} for i in range(N)]
        events[3] = Hostile(events[3])
        check(i for i, _ in RS2.scan(events))
    """)


def test_whole_event_callback_rewrites_events():
    # A whole-event predicate (Sigma's field reference) runs Python over the event mapping.
    assert_ok("""
        pred = And((Pred("TgtProcName", Op.EQUALS, "proc3.exe"), Pred("TgtProcName", Op.FIELDREF, "Other")))
        rs = matcher.RuleSet([matcher.Rule(pred, RuleInfo(id="w", title="w"))])
        class Hostile(Mapping):
            def __init__(self, d): self.d = d
            def __getitem__(self, k):
                for ev in events:
                    if isinstance(ev, dict):
                        ev["TgtProcName"] = fresh(ev["TgtProcName"])
                        ev["Other"] = fresh(ev["Other"])
                gc.collect()
                return self.d[k]
            def __iter__(self): return iter(self.d)
            def __len__(self): return len(self.d)
        events = [{"TgtProcName": name(i), "Other": name(i)} for i in range(N)]
        for i in range(3, N, 70):
            events[i] = Hostile(events[i])
        check(i for i, _ in rs.scan(events))
    """)


def test_other_thread_replaces_values_while_the_gil_is_released():
    # Every value the other thread writes matches (case-insensitively): a verdict that is not
    # a match means the core read freed memory. A regex rule re-takes the GIL per row, which
    # lets the writer run in the middle of a chunk.
    assert_ok("""
        sys.setswitchinterval(1e-6)
        rs = matcher.RuleSet([
            matcher.compile('TgtProcName = "proc3.exe"', id="a"),
            matcher.compile('TgtProcName RegExp "^PROC3"', id="b"),
        ])
        forms = ["proc3.exe", "PROC3.EXE", "Proc3.Exe"]
        events = [{"TgtProcName": fresh("proc3.exe")} for i in range(N)]
        stop = False
        def writer():
            k = 0
            while not stop:
                for ev in events:
                    ev["TgtProcName"] = fresh(forms[k % 3])
                    k += 1
        t = threading.Thread(target=writer)
        t.start()
        try:
            for _ in range(20):
                found = [i for i, r in rs.scan(events) if r == "a"]
                check(found, set(range(N)))
        finally:
            stop = True
            t.join()
    """)
