"""The flagship rule written by hand for each peer a user might reach for instead of matcher.

Every function takes the same corpus (a list of dict events, or an Arrow table) and returns a
numpy bool array of verdicts. The rule (see matcher/data/*.md):

    EventType = "Process Creation" AND EndpointOS = "windows"
    AND (tomcat1 OR tomcat2 OR web_server_parent) AND shell_child AND NOT exclusion

All comparisons are case-insensitive (lower-cased), an absent field makes its predicate false,
and NOT of an absent-field predicate is true: the nulls below are handled to keep that.
"""

from __future__ import annotations

import re

import numpy as np

JAVA = ("\\java.exe", "\\javaw.exe")
TOMCAT = ("-tomcat-", "\\tomcat")
CATALINA = ("catalina_home", "catalina.home", "catalina.jar")
WEB = tuple(s.lower() for s in (
    "\\caddy.exe", "\\httpd.exe", "\\nginx.exe", "\\php-cgi.exe", "\\php.exe", "\\tomcat.exe",
    "\\UMWorkerProcess.exe", "\\w3wp.exe", "\\ws_TomcatService.exe"))
CHILD = tuple("\\" + s for s in ["arp.exe", "at.exe", "bash.exe", "bitsadmin.exe", "certutil.exe", "cmd.exe", "cscript.exe", "dsget.exe", "hostname.exe", "nbtstat.exe", "net.exe", "net1.exe", "netdom.exe", "netsh.exe", "nltest.exe", "ntdsutil.exe", "powershell_ise.exe", "powershell.exe", "pwsh.exe", "qprocess.exe", "query.exe", "qwinsta.exe", "reg.exe", "rundll32.exe", "sc.exe", "sh.exe", "wmic.exe", "wscript.exe", "wusa.exe"])
EXC1 = ('Windows\\system32\\cmd.exe /c C:\\ManageEngine\\ADManager "Plus\\ES\\bin\\elasticsearch.bat '
        "-Enode.name=RMP-NODE1 -pelasticsearch-pid.txt").lower()
EXC2 = ("sc query", "admanager plus")
FIELDS = ("EventType", "EndpointOS", "SrcProcImagePath", "SrcProcCmdLine", "TgtProcImagePath", "TgtProcCmdLine")


def _s(v):
    return v if isinstance(v, str) else None


# -- pure Python -----------------------------------------------------------------------------

def naive_python(events) -> np.ndarray:
    """The rule as written, lowering a field again for every predicate."""

    def ends(v, lit):
        return v is not None and v.lower().endswith(lit)

    def has(v, lit):
        return v is not None and lit in v.lower()

    def one(e):
        et, os_, p, pc, t, tc = (_s(e.get(f)) for f in FIELDS)
        if not (et is not None and et.lower() == "process creation" and os_ is not None and os_.lower() == "windows"):
            return False
        java = any(ends(p, j) for j in JAVA)
        t1 = any(has(p, x) for x in TOMCAT) and java
        t2 = any(has(pc, x) for x in CATALINA) and java
        web = any(ends(p, w) for w in WEB)
        child = any(ends(t, c) for c in CHILD)
        excl = (ends(tc, EXC1) and ends(p, "\\java.exe")) or (has(tc, EXC2[0]) and has(tc, EXC2[1]) and ends(p, "\\java.exe"))
        return (t1 or t2 or web) and child and not excl

    return np.fromiter(map(one, events), dtype=bool, count=len(events))


def _child_and_rest(e, p: str) -> bool:
    """The tests after the parent's (p: the lower-cased parent path), most selective first."""
    t = e.get("TgtProcImagePath")
    if not isinstance(t, str) or not t.lower().endswith(CHILD):
        return False
    et, os_ = e.get("EventType"), e.get("EndpointOS")
    if not isinstance(et, str) or et.lower() != "process creation" or not isinstance(os_, str) or os_.lower() != "windows":
        return False
    if p.endswith("\\java.exe"):
        tc = e.get("TgtProcCmdLine")
        if isinstance(tc, str):
            tc = tc.lower()
            if tc.endswith(EXC1) or ("sc query" in tc and "admanager plus" in tc):
                return False
    return True


def tuned_python(events) -> np.ndarray:
    """Lower once, str.endswith(tuple), the most selective test (the parent) first."""

    def one(e):
        p = e.get("SrcProcImagePath")
        if not isinstance(p, str):
            return False
        p = p.lower()
        java = p.endswith(JAVA)
        if not p.endswith(WEB):
            if not java:
                return False
            if not ("-tomcat-" in p or "\\tomcat" in p):
                pc = e.get("SrcProcCmdLine")
                if not isinstance(pc, str):
                    return False
                pc = pc.lower()
                if not ("catalina_home" in pc or "catalina.home" in pc or "catalina.jar" in pc):
                    return False
        return _child_and_rest(e, p)

    return np.fromiter(map(one, events), dtype=bool, count=len(events))


def pyahocorasick_python(events) -> np.ndarray:
    """pyahocorasick finds the parent's contains terms; the rest is tuned Python."""
    import ahocorasick

    auto = ahocorasick.Automaton()
    for word in TOMCAT:
        auto.add_word(word, word)
    auto.make_automaton()
    iter_ = auto.iter

    def one(e):
        p = e.get("SrcProcImagePath")
        if not isinstance(p, str):
            return False
        p = p.lower()
        java = p.endswith(JAVA)
        if not p.endswith(WEB):
            if not java:
                return False
            if next(iter_(p), None) is None:
                pc = e.get("SrcProcCmdLine")
                if not isinstance(pc, str) or not any(c in pc.lower() for c in CATALINA):
                    return False
        return _child_and_rest(e, p)

    return np.fromiter(map(one, events), dtype=bool, count=len(events))


_ALT = "|".join
PARENT_RE = re.compile(r"(?:" + _ALT(re.escape(x) for x in WEB + JAVA) + r")\Z", re.IGNORECASE)
CHILD_RE = re.compile(r"(?:" + _ALT(re.escape(x) for x in CHILD) + r")\Z", re.IGNORECASE)
TOMCAT_RE = re.compile(_ALT(re.escape(x) for x in TOMCAT), re.IGNORECASE)
CATALINA_RE = re.compile(_ALT(re.escape(x) for x in CATALINA), re.IGNORECASE)
WEB_RE = re.compile(r"(?:" + _ALT(re.escape(x) for x in WEB) + r")\Z", re.IGNORECASE)


def python_re(events) -> np.ndarray:
    """Python's re: one alternation per literal list, case-insensitive search."""

    def one(e):
        p = _s(e.get("SrcProcImagePath"))
        if p is None or not PARENT_RE.search(p):
            return False
        if not WEB_RE.search(p) and not TOMCAT_RE.search(p):
            pc = _s(e.get("SrcProcCmdLine"))
            if pc is None or not CATALINA_RE.search(pc):
                return False
        t = _s(e.get("TgtProcImagePath"))
        if t is None or not CHILD_RE.search(t):
            return False
        et, os_ = _s(e.get("EventType")), _s(e.get("EndpointOS"))
        if et is None or et.lower() != "process creation" or os_ is None or os_.lower() != "windows":
            return False
        if p.lower().endswith("\\java.exe"):
            tc = _s(e.get("TgtProcCmdLine"))
            if tc is not None:
                tc = tc.lower()
                if tc.endswith(EXC1) or ("sc query" in tc and "admanager plus" in tc):
                    return False
        return True

    return np.fromiter(map(one, events), dtype=bool, count=len(events))


# -- columnar engines --------------------------------------------------------------------------

def pyarrow_compute(table) -> np.ndarray:
    """pyarrow.compute kernels: utf8_lower once per column, then ends_with / match_substring."""
    import pyarrow.compute as pc

    def low(name):
        return pc.utf8_lower(table[name]) if name in table.column_names else None

    def any_of(col, fn, lits):
        out = None
        for lit in lits:
            m = fn(col, pattern=lit)
            out = m if out is None else pc.or_(out, m)
        return pc.fill_null(out, False)

    et, os_, p, pcl, t, tc = (low(f) for f in FIELDS)
    base = pc.and_(pc.fill_null(pc.equal(et, "process creation"), False), pc.fill_null(pc.equal(os_, "windows"), False))
    java = any_of(p, pc.ends_with, JAVA)
    t1 = pc.and_(any_of(p, pc.match_substring, TOMCAT), java)
    t2 = pc.and_(any_of(pcl, pc.match_substring, CATALINA), java)
    web = any_of(p, pc.ends_with, WEB)
    child = any_of(t, pc.ends_with, CHILD)
    jexe = pc.fill_null(pc.ends_with(p, pattern="\\java.exe"), False)
    e1 = pc.and_(pc.fill_null(pc.ends_with(tc, pattern=EXC1), False), jexe)
    e2 = pc.and_(pc.and_(any_of(tc, pc.match_substring, EXC2[:1]), any_of(tc, pc.match_substring, EXC2[1:])), jexe)
    rule = pc.and_(pc.and_(pc.and_(base, pc.or_(pc.or_(t1, t2), web)), child), pc.invert(pc.or_(e1, e2)))
    return rule.to_numpy(zero_copy_only=False)


def polars_expr(table) -> np.ndarray:
    """Polars expressions, the rule split into cheap suffix tests and the rest."""
    import polars as pl

    df = pl.from_arrow(table)
    col = {f: pl.col(f).str.to_lowercase() for f in FIELDS}

    def ends(f, lits):
        return pl.any_horizontal([col[f].str.ends_with(x) for x in lits]).fill_null(False)

    def has(f, lits):
        return pl.any_horizontal([col[f].str.contains(x, literal=True) for x in lits]).fill_null(False)

    java = ends("SrcProcImagePath", JAVA)
    jexe = ends("SrcProcImagePath", ("\\java.exe",))
    rule = (
        (col["EventType"] == "process creation").fill_null(False)
        & (col["EndpointOS"] == "windows").fill_null(False)
        & ((has("SrcProcImagePath", TOMCAT) & java) | (has("SrcProcCmdLine", CATALINA) & java) | ends("SrcProcImagePath", WEB))
        & ends("TgtProcImagePath", CHILD)
        & ~((ends("TgtProcCmdLine", (EXC1,)) & jexe) | (has("TgtProcCmdLine", EXC2[:1]) & has("TgtProcCmdLine", EXC2[1:]) & jexe))
    )
    return df.select(rule.alias("m"))["m"].to_numpy()


def _sql_q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _sql_ends(c: str, lits) -> str:
    return "(" + " OR ".join(f"ends_with({c}, {_sql_q(x)})" for x in lits) + ")"


def _sql_has(c: str, lits) -> str:
    return "(" + " OR ".join(f"contains({c}, {_sql_q(x)})" for x in lits) + ")"


def duckdb_sql(table) -> np.ndarray:
    """DuckDB SQL over the Arrow table (lower() once per column in a subquery)."""
    import duckdb

    ends, has = _sql_ends, _sql_has
    java = ends("p", JAVA)
    jexe = ends("p", ("\\java.exe",))
    cond = (
        f"coalesce(et = 'process creation', false) AND coalesce(os = 'windows', false)"
        f" AND coalesce(({has('p', TOMCAT)} AND {java}) OR ({has('pc', CATALINA)} AND {java}) OR {ends('p', WEB)}, false)"
        f" AND coalesce({ends('t', CHILD)}, false)"
        f" AND NOT coalesce(({ends('tc', (EXC1,))} AND {jexe}) OR ({has('tc', EXC2[:1])} AND {has('tc', EXC2[1:])} AND {jexe}), false)"
    )
    con = duckdb.connect()
    con.register("events", table)
    sql = (
        "SELECT " + cond + " AS m FROM (SELECT lower(EventType) et, lower(EndpointOS) os, lower(SrcProcImagePath) p,"
        " lower(SrcProcCmdLine) pc, lower(TgtProcImagePath) t, lower(TgtProcCmdLine) tc FROM events)"
    )
    out = con.sql(sql).to_arrow_table()
    con.close()
    return np.asarray(out.column("m").to_numpy(zero_copy_only=False), dtype=bool)


# -- hand-tuned columnar peers: a cheap suffix stage on the last characters, the rest on survivors --

TAIL = max(len(x) for x in WEB + JAVA + CHILD)  # the longest suffix literal: only this many chars matter


def _verdicts(n: int, rows) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[np.asarray(rows, dtype=np.int64)] = True
    return out


def polars_tuned(table) -> np.ndarray:
    """Polars, hand-split: lower only the last TAIL characters of the parent and child paths and
    keep the rows whose parent ends like a web server or Java and whose child like a shell; run the
    full rule (polars_expr's expression) on those few rows only."""
    import polars as pl

    df = pl.from_arrow(table).with_row_index("__i")

    def tail_ends(f, lits):
        tail = pl.col(f).str.slice(-TAIL).str.to_lowercase()
        return pl.any_horizontal([tail.str.ends_with(x) for x in lits]).fill_null(False)

    cand = df.filter(tail_ends("SrcProcImagePath", WEB + JAVA) & tail_ends("TgtProcImagePath", CHILD))
    keep = polars_expr(cand.drop("__i").to_arrow())
    return _verdicts(len(df), cand["__i"].to_numpy()[keep])


def duckdb_tuned(table) -> np.ndarray:
    """DuckDB, hand-split: a WHERE clause whose first conjuncts test the lower-cased last TAIL
    characters of the parent and child paths (DuckDB evaluates later conjuncts only on the rows
    that pass), then the full rule; returns the matching row numbers only."""
    import duckdb
    import pyarrow as pa

    ends, has = _sql_ends, _sql_has
    p, pc_, tc = "lower(SrcProcImagePath)", "lower(SrcProcCmdLine)", "lower(TgtProcCmdLine)"
    java, jexe = ends(p, JAVA), ends(p, ("\\java.exe",))
    where = (
        f"{ends(f'lower(right(SrcProcImagePath, {TAIL}))', WEB + JAVA)}"
        f" AND {ends(f'lower(right(TgtProcImagePath, {TAIL}))', CHILD)}"
        " AND lower(EventType) = 'process creation' AND lower(EndpointOS) = 'windows'"
        f" AND (({has(p, TOMCAT)} AND {java}) OR (coalesce({has(pc_, CATALINA)}, false) AND {java}) OR {ends(p, WEB)})"
        f" AND NOT coalesce(({ends(tc, (EXC1,))} AND {jexe}) OR ({has(tc, EXC2[:1])} AND {has(tc, EXC2[1:])} AND {jexe}), false)"
    )
    con = duckdb.connect()
    con.register("events", table.append_column("__i", pa.array(np.arange(table.num_rows, dtype=np.int64))))
    rows = con.sql("SELECT __i FROM events WHERE " + where).fetchnumpy()["__i"]
    con.close()
    return _verdicts(table.num_rows, rows)


# -- hyperscan: one scan of each column's Arrow data buffer ----------------------------------------

def _hs_literal(lit: str) -> bytes:
    return "".join(c if c.isalnum() and c.isascii() else f"\\x{b:02x}" for c in lit for b in c.encode()).encode()


class Hyperscan:
    """Hyperscan (Intel's regex engine) over each column's Arrow UTF-8 buffer, scanned once.

    A pattern's matches are mapped to rows through the Arrow offsets: a suffix match must end at
    its row's end, an equality must also start at its row's start (start of match from
    HS_FLAG_SOM_LEFTMOST), a contains match must start inside its row. Caseless matching is
    ASCII-only in Hyperscan, which is exact here: every literal of the rule is ASCII.
    """

    def __init__(self):
        import hyperscan

        self.hs = hyperscan
        # field -> [(name, literal, kind)], kind: "eq" | "ends" | "has"
        spec = {
            "EventType": [("et", "process creation", "eq")],
            "EndpointOS": [("os", "windows", "eq")],
            "SrcProcImagePath": [("java", x, "ends") for x in JAVA] + [("jexe", "\\java.exe", "ends")]
            + [("tomcat", x, "has") for x in TOMCAT] + [("web", x, "ends") for x in WEB],
            "SrcProcCmdLine": [("catalina", x, "has") for x in CATALINA],
            "TgtProcImagePath": [("child", x, "ends") for x in CHILD],
            "TgtProcCmdLine": [("exc1", EXC1, "ends"), ("sc", EXC2[0], "has"), ("adm", EXC2[1], "has")],
        }
        self.dbs = {}
        for field, pats in spec.items():
            db = hyperscan.Database()
            flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SOM_LEFTMOST
            db.compile(expressions=[_hs_literal(lit) for _, lit, _ in pats], ids=list(range(len(pats))),
                       elements=len(pats), flags=[flags] * len(pats))
            self.dbs[field] = (db, pats)

    def __call__(self, table) -> np.ndarray:
        import pyarrow as pa

        n = table.num_rows
        hit = {}
        for field, (db, pats) in self.dbs.items():
            for name, _, _ in pats:
                hit.setdefault(name, np.zeros(n, dtype=bool))
            if field not in table.column_names:
                continue
            arr = table[field].combine_chunks()
            bufs = arr.buffers()
            if bufs[2] is None:
                continue
            off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
            offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset : arr.offset + n + 1].astype(np.int64)
            base = int(offsets[0])
            data = bufs[2].to_pybytes()[base : int(offsets[-1])]
            starts, ends_, ids = [], [], []

            def on_match(i, frm, to, _flags, _ctx, _s=starts.append, _e=ends_.append, _i=ids.append):
                _s(frm)
                _e(to)
                _i(i)

            db.scan(data, match_event_handler=on_match)
            if not ids:
                continue
            starts_a = np.asarray(starts, dtype=np.int64) + base
            ends_a = np.asarray(ends_, dtype=np.int64) + base
            ids_a = np.asarray(ids)
            row = np.searchsorted(offsets, ends_a, side="left") - 1  # the row whose bytes hold the match's last byte
            row_start, row_end = offsets[row], offsets[row + 1]
            for k, (name, _, kind) in enumerate(pats):
                sel = ids_a == k
                ok = starts_a[sel] >= row_start[sel]
                if kind != "has":
                    ok &= ends_a[sel] == row_end[sel]
                if kind == "eq":
                    ok &= starts_a[sel] == row_start[sel]
                hit[name][row[sel][ok]] = True
        java = hit["java"]
        parent = (hit["tomcat"] & java) | (hit["catalina"] & java) | hit["web"]
        excl = (hit["exc1"] & hit["jexe"]) | (hit["sc"] & hit["adm"] & hit["jexe"])
        return hit["et"] & hit["os"] & parent & hit["child"] & ~excl
