"""Deterministic synthetic Windows process-creation events (SentinelOne field names).

``generate(n, seed)`` is what the command line's built-in sample, the tests and the
benchmarks run on. Events look like SentinelOne Deep Visibility process-creation records:
long-tailed parent and child images, mixed-case paths, non-ASCII user names, command lines
from a few dozen to a few thousand characters, a few percent of other event types and
non-Windows endpoints, and about half a percent of true positives of the flagship rule
(plus events that hit its exclusions and near misses). Missing fields and ``None`` occur.

``write(path, n, seed, schema, format)`` writes them as JSON lines (optionally gzipped) or
Parquet, under SentinelOne names or Sysmon/Sigma names (``schema="sysmon"``); ``matcher
generate`` is its command line (:func:`add_generate_arguments`, :func:`run_generate`).
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import itertools
import os
import random
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from . import mapping as _mapping
from ._optional import need
from .errors import MatcherError

__all__ = [
    "FIELDS",
    "FORMATS",
    "SCHEMAS",
    "SYSMON_EVENT_IDS",
    "SYSMON_FIELDS",
    "add_generate_arguments",
    "arrow_schema",
    "generate",
    "iter_events",
    "iter_mixed",
    "MIXED_KINDS",
    "run_generate",
    "to_sysmon",
    "write",
]

FIELDS = (
    "EventType",
    "EndpointOS",
    "SrcProcImagePath",
    "SrcProcCmdLine",
    "TgtProcImagePath",
    "TgtProcCmdLine",
    "TgtProcUser",
)

_USERS = ["alice", "bob", "svc_backup", "Administrator", "jürgen", "zoë", "małgorzata", "李雷", "Ólafur", "SYSTEM"]
_SYSDIRS = ["C:\\Windows\\System32", "C:\\WINDOWS\\system32", "C:\\Windows\\SysWOW64", "c:\\windows\\system32"]
_PROGDIRS = [
    "C:\\Program Files\\Google\\Chrome\\Application",
    "C:\\Program Files (x86)\\Microsoft Office\\root\\Office16",
    "C:\\Program Files\\Mozilla Firefox",
    "C:\\Program Files\\7-Zip",
    "C:\\Program Files\\Microsoft VS Code",
]
# (image name, weight): a long tail of parents.
_PARENTS = [
    ("explorer.exe", 300), ("services.exe", 120), ("svchost.exe", 200), ("chrome.exe", 150),
    ("cmd.exe", 80), ("powershell.exe", 60), ("WINWORD.EXE", 30), ("msedge.exe", 60),
    ("taskhostw.exe", 20), ("RuntimeBroker.exe", 15), ("Code.exe", 25), ("firefox.exe", 40),
    ("wmiprvse.exe", 10), ("OUTLOOK.EXE", 12), ("java.exe", 6), ("python.exe", 5),
    ("tomcat9.exe", 2), ("node.exe", 4), ("MsMpEng.exe", 8), ("conhost.exe", 10),
] + [(f"app{i:03d}.exe", 1) for i in range(60)]
_CHILDREN = [
    ("cmd.exe", 120), ("conhost.exe", 200), ("chrome.exe", 150), ("powershell.exe", 50),
    ("svchost.exe", 80), ("whoami.exe", 5), ("net.exe", 6), ("reg.exe", 10), ("rundll32.exe", 20),
    ("notepad.exe", 15), ("msedge.exe", 60), ("git.exe", 20), ("python.exe", 10),
    ("backgroundTaskHost.exe", 30), ("SearchProtocolHost.exe", 25), ("dllhost.exe", 30),
    ("sc.exe", 4), ("wmic.exe", 3), ("certutil.exe", 2), ("cmd.exe.bak", 1), ("mycmd.exe", 1),
] + [(f"tool{i:03d}.exe", 1) for i in range(60)]
_WEB_PARENTS = [
    "C:\\inetpub\\w3wp.exe", "C:\\Windows\\System32\\inetsrv\\w3wp.exe", "C:\\Apache24\\bin\\httpd.exe",
    "C:\\nginx\\nginx.exe", "C:\\php\\php-cgi.exe", "C:\\php\\php.exe", "C:\\caddy\\caddy.exe",
    "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\UMWorkerProcess.exe",
    "C:\\Tomcat\\bin\\tomcat.exe", "C:\\Program Files\\ws_TomcatService.exe",
]
_SHELLS = [
    "arp.exe", "at.exe", "bash.exe", "bitsadmin.exe", "certutil.exe", "cmd.exe", "cscript.exe",
    "dsget.exe", "hostname.exe", "nbtstat.exe", "net.exe", "net1.exe", "netdom.exe", "netsh.exe",
    "nltest.exe", "ntdsutil.exe", "powershell_ise.exe", "powershell.exe", "pwsh.exe",
    "qprocess.exe", "query.exe", "qwinsta.exe", "reg.exe", "rundll32.exe", "sc.exe", "sh.exe",
    "wmic.exe", "wscript.exe", "wusa.exe",
]
_WORDS = [
    "--type=renderer", "/c", "-NoProfile", "-ExecutionPolicy", "Bypass", "--field-trial-handle=1234",
    "/s", "start", "echo", "%TEMP%\\x.log", "--lang=en-US", "-Embedding", "/q", "copy", "dir",
    "--enable-features=NetworkService", "C:\\Users\\Public\\file.txt", "-k", "netsvcs", "-p",
]


def _case(rng: random.Random, s: str) -> str:
    r = rng.random()
    if r < 0.15:
        return s.upper()
    if r < 0.30:
        return s.lower()
    return s


def _dir(rng: random.Random, user: str) -> str:
    r = rng.random()
    if r < 0.45:
        return rng.choice(_SYSDIRS)
    if r < 0.75:
        return rng.choice(_PROGDIRS)
    return f"C:\\Users\\{user}\\AppData\\Local\\Temp"


# Arguments are slices of one fixed random word stream (fast: one slice instead of n choices).
_STREAM_WORDS = random.Random(20190116).choices(_WORDS, k=4096)
_STREAM = " " + " ".join(_STREAM_WORDS)
_STREAM_AT = list(itertools.accumulate((len(w) + 1 for w in _STREAM_WORDS), initial=0))  # word k starts at [k]
_MAX_ARGS = 400


def _cmdline(rng: random.Random, image: str) -> str:
    # a Pareto number of arguments: most command lines are short, a few run to thousands of characters
    n = min(int(rng.paretovariate(1.2) * 2), _MAX_ARGS)
    head = f'"{image}"' if rng.random() < 0.5 else image
    if not n:
        return head
    k = rng.randrange(len(_STREAM_WORDS) - n)
    return head + _STREAM[_STREAM_AT[k] : _STREAM_AT[k + n]]


class _Picker:
    """A weighted choice (what ``rng.choices`` does, without recomputing the cumulative weights)."""

    def __init__(self, table):
        self.names = [n for n, _ in table]
        self.cum = list(itertools.accumulate(w for _, w in table))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random) -> str:
        return self.names[bisect.bisect(self.cum, rng.random() * self.total)]


_PICK_PARENT = _Picker(_PARENTS)
_PICK_CHILD = _Picker(_CHILDREN)


def _event(rng: random.Random) -> dict[str, Any]:
    user = rng.choice(_USERS)
    parent = _PICK_PARENT(rng)
    child = _PICK_CHILD(rng)
    ppath = _case(rng, f"{_dir(rng, user)}\\{parent}")
    cpath = _case(rng, f"{_dir(rng, user)}\\{child}")
    ev: dict[str, Any] = {
        "EventType": "Process Creation",
        "EndpointOS": "windows",
        "SrcProcImagePath": ppath,
        "SrcProcCmdLine": _cmdline(rng, ppath),
        "TgtProcImagePath": cpath,
        "TgtProcCmdLine": _cmdline(rng, cpath),
        "TgtProcUser": f"CORP\\{user}",
    }
    r = rng.random()
    if r < 0.005:  # true positive of the flagship rule
        shell = rng.choice(_SHELLS)
        ev["TgtProcImagePath"] = _case(rng, f"{rng.choice(_SYSDIRS)}\\{shell}")
        ev["TgtProcCmdLine"] = f"{shell} /c whoami /all"
        k = rng.random()
        if k < 0.7:
            ev["SrcProcImagePath"] = _case(rng, rng.choice(_WEB_PARENTS))
        elif k < 0.85:
            ev["SrcProcImagePath"] = _case(rng, "C:\\Program Files\\Apache\\tomcat-9.0\\bin\\" + rng.choice(["java.exe", "javaw.exe"]))
        else:
            ev["SrcProcImagePath"] = "C:\\Program Files\\Java\\jre\\bin\\java.exe"
            ev["SrcProcCmdLine"] = f"java.exe -Dcatalina.home=C:\\tc -classpath {rng.choice(['catalina.jar', 'bootstrap.jar'])}"
    elif r < 0.007:  # exclusions and near misses
        k = rng.randrange(5)
        ev["SrcProcImagePath"] = "C:\\ManageEngine\\jre\\bin\\java.exe" if k < 2 else rng.choice(_WEB_PARENTS)
        if k == 0:
            ev["SrcProcImagePath"] = "C:\\ManageEngine\\tomcat\\bin\\java.exe"
            ev["TgtProcImagePath"] = "C:\\Windows\\system32\\cmd.exe"
            ev["TgtProcCmdLine"] = 'C:\\Windows\\system32\\cmd.exe /c C:\\ManageEngine\\ADManager "Plus\\ES\\bin\\elasticsearch.bat -Enode.name=RMP-NODE1 -pelasticsearch-pid.txt'
        elif k == 1:
            ev["SrcProcImagePath"] = "C:\\ManageEngine\\tomcat\\bin\\java.exe"
            ev["TgtProcImagePath"] = "C:\\Windows\\system32\\sc.exe"
            ev["TgtProcCmdLine"] = "sc query ADManager Plus"
        elif k == 2:
            ev["TgtProcImagePath"] = "C:\\Windows\\system32\\cmd.exe.bak"
        elif k == 3:
            ev["SrcProcImagePath"] = "C:\\Program Files\\Apache\\tomcat9.exe"
            ev["TgtProcImagePath"] = "C:\\Windows\\system32\\cmd.exe"
        else:
            ev["TgtProcImagePath"] = "C:\\tools\\tomcatmycmd.exe"
    elif r < 0.04:
        ev["EventType"] = rng.choice(["File Creation", "Module Load", "IP Connect", "DNS Resolved"])
    elif r < 0.06:
        ev["EndpointOS"] = rng.choice(["linux", "osx"])
        ev["SrcProcImagePath"] = "/usr/sbin/nginx"
        ev["TgtProcImagePath"] = rng.choice(["/bin/sh", "/usr/bin/curl"])
    elif r < 0.07:
        ev.pop(rng.choice(FIELDS[2:]))
    elif r < 0.075:
        ev[rng.choice(FIELDS[2:])] = None
    return ev


def iter_events(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` events, the same for the same ``seed`` on every machine and Python version."""
    rng = random.Random(seed)
    for _ in range(n):
        yield _event(rng)


def generate(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """A list of ``n`` events (see :func:`iter_events`)."""
    return list(iter_events(n, seed))


# -- a mixed log: process creation and other logsources (Sysmon / Windows / zeek names) --------

#: The logsources of :func:`iter_mixed` other than process creation, with their share of events.
MIXED_KINDS = (("process_creation", 0.55), ("network_connection", 0.15), ("dns_query", 0.12),
               ("security_logon", 0.12), ("zeek_conn", 0.06))
_SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
_DOMAINS = ["www.google.com", "login.microsoftonline.com", "update.example.org", "cdn.jsdelivr.net",
            "github.com", "files.example.net", "abc123.ngrok.io", "pastebin.com", "api.telegram.org",
            "wpad.corp.local", "dc01.corp.local", "time.windows.com"]
_NET_IMAGES = ["C:\\Windows\\System32\\svchost.exe", "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
               "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "C:\\Windows\\explorer.exe",
               "C:\\Windows\\System32\\rundll32.exe", "C:\\Users\\Public\\tool.exe"]
_PORTS = [443, 443, 443, 80, 53, 445, 3389, 135, 22, 8080, 4444, 5985]


def _ip(rng: random.Random, internal: bool) -> str:
    if internal:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"{rng.choice([23, 52, 104, 142, 185, 203])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _time(rng: random.Random, i: int) -> str:
    return f"2026-03-{1 + i // 86400 % 28:02d} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{rng.randrange(1000):03d}"


def _other_event(kind: str, rng: random.Random, i: int) -> dict[str, Any]:
    if kind == "network_connection":
        return {"EventID": 3, "Channel": _SYSMON_CHANNEL, "UtcTime": _time(rng, i), "Image": rng.choice(_NET_IMAGES),
                "User": f"CORP\\{rng.choice(_USERS)}", "Protocol": rng.choice(["tcp", "tcp", "udp"]),
                "Initiated": rng.choice(["true", "true", "false"]), "SourceIp": _ip(rng, True),
                "SourcePort": rng.randrange(49152, 65535), "DestinationIp": _ip(rng, rng.random() < 0.3),
                "DestinationHostname": rng.choice(_DOMAINS), "DestinationPort": rng.choice(_PORTS)}
    if kind == "dns_query":
        name = rng.choice(_DOMAINS)
        return {"EventID": 22, "Channel": _SYSMON_CHANNEL, "UtcTime": _time(rng, i), "Image": rng.choice(_NET_IMAGES),
                "QueryName": name, "QueryStatus": "0", "QueryResults": f"::ffff:{_ip(rng, False)};"}
    if kind == "security_logon":
        return {"EventID": rng.choice([4624, 4624, 4624, 4625, 4634]), "Channel": "Security",
                "Provider_Name": "Microsoft-Windows-Security-Auditing", "TimeCreated": _time(rng, i),
                "TargetUserName": rng.choice(_USERS), "TargetDomainName": "CORP", "LogonType": rng.choice([2, 3, 3, 5, 10]),
                "IpAddress": _ip(rng, rng.random() < 0.8), "IpPort": rng.randrange(1024, 65535),
                "WorkstationName": f"WS{rng.randrange(100):03d}", "LogonProcessName": rng.choice(["User32", "NtLmSsp", "Kerberos"]),
                "AuthenticationPackageName": rng.choice(["Negotiate", "NTLM", "Kerberos"])}
    # zeek conn.log (JSON): the rules name the dotted keys as they are
    return {"_path": "conn", "ts": 1772323200 + i, "uid": f"C{rng.randrange(16**12):012x}",
            "id.orig_h": _ip(rng, rng.random() < 0.5), "id.orig_p": rng.randrange(1024, 65535),
            "id.resp_h": _ip(rng, rng.random() < 0.5), "id.resp_p": rng.choice(_PORTS),
            "proto": rng.choice(["tcp", "udp"]), "service": rng.choice(["ssl", "http", "dns", "rdp", "-"]),
            "duration": round(rng.random() * 30, 3), "conn_state": rng.choice(["SF", "S0", "REJ", "RSTO"])}


def iter_mixed(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` events of several logsources under Sysmon / Windows / zeek names: Sysmon process
    creation (the events of :func:`iter_events` for ``seed``, in order, as :func:`to_sysmon`
    writes them), Sysmon network connections (3) and DNS queries (22), Windows Security logons
    (4624/4625/4634) and zeek conn records; shares in :data:`MIXED_KINDS`. Deterministic."""
    procs = iter_events(n, seed)
    rng = random.Random(f"mixed-{seed}")
    kinds = [k for k, _ in MIXED_KINDS]
    weights = [w for _, w in MIXED_KINDS]
    for i in range(n):
        kind = rng.choices(kinds, weights)[0]
        yield to_sysmon(next(procs)) if kind == "process_creation" else _other_event(kind, rng, i)


# -- correlation scenarios -------------------------------------------------------------------

#: Streams for correlation rules (``docs/correlation.md``): logons and process starts with an
#: ISO 8601 ``EventTime`` and Sigma (Windows Security / Sysmon) field names.
SCENARIOS = ("brute-force", "spray", "recon", "mixed")
RECON_TOOLS = ("whoami.exe", "net.exe", "ipconfig.exe", "systeminfo.exe", "nltest.exe")
_T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms


def iter_scenario_events(n: int, seed: int = 0, scenario: str = "mixed", *, users: int = 5000,
                         hosts: int = 2000) -> Iterator[dict[str, Any]]:
    """``n`` timed events: background logons (4624), failed logons (4625) and process starts
    (Sysmon 1), with ~1% of the stream an attack of the ``scenario``: a brute force (one user,
    many failures from one address, then a success), a password spray (one address failing
    against many users), or a recon burst (one host running the :data:`RECON_TOOLS` within a
    minute); ``"mixed"`` interleaves all three. Times rise 0-20 ms per event, ISO 8601 with ``Z``."""
    import datetime as _dt

    if scenario not in SCENARIOS:
        raise MatcherError(f"unknown scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    rng = random.Random(seed)
    t = _T0
    epoch = _dt.datetime(1970, 1, 1)
    attack: list[dict[str, Any]] = []
    kinds = ("brute-force", "spray", "recon") if scenario == "mixed" else (scenario,)
    for _ in range(n):
        t += rng.randrange(21)
        if not attack and rng.random() < 0.0005:
            kind = rng.choice(kinds)
            user, host, ip = f"user{rng.randrange(users)}", f"host{rng.randrange(hosts)}", f"10.9.{rng.randrange(256)}.{rng.randrange(256)}"
            if kind == "brute-force":
                attack = [{"EventID": 4625, "TargetUserName": user, "IpAddress": ip, "Computer": host}] * 25
                attack = attack + [{"EventID": 4624, "TargetUserName": user, "IpAddress": ip, "Computer": host}]
            elif kind == "spray":
                attack = [{"EventID": 4625, "TargetUserName": f"user{rng.randrange(users)}", "IpAddress": ip,
                           "Computer": host} for _ in range(30)]
            else:
                attack = [{"EventID": 1, "Image": f"C:\\Windows\\System32\\{tool}", "User": user, "Computer": host}
                          for tool in rng.sample(RECON_TOOLS, len(RECON_TOOLS))]
            attack.reverse()
        if attack and rng.random() < 0.05:
            ev = dict(attack.pop())
        else:
            r = rng.random()
            user, host = f"user{rng.randrange(users)}", f"host{rng.randrange(hosts)}"
            if r < 0.3:
                ev = {"EventID": 4624, "TargetUserName": user, "IpAddress": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}", "Computer": host}
            elif r < 0.33:
                ev = {"EventID": 4625, "TargetUserName": user, "IpAddress": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}", "Computer": host}
            else:
                image = rng.choice(("svchost.exe", "chrome.exe", "explorer.exe", "powershell.exe", "whoami.exe"))
                ev = {"EventID": 1, "Image": f"C:\\Windows\\System32\\{image}", "User": user, "Computer": host}
        ev["EventTime"] = (epoch + _dt.timedelta(milliseconds=t)).isoformat(timespec="milliseconds") + "Z"
        yield ev


# -- schemas ---------------------------------------------------------------------------------

SCHEMAS = ("s1", "sysmon")

#: S1 Deep Visibility name -> Sysmon / Sigma name, from the ``sysmon`` field-mapping profile
#: (so generated Sysmon events are what ``matcher scan -p sysmon`` expects). ``EventType``
#: becomes Sysmon's numeric ``EventID``; ``EndpointOS`` has no Sysmon field and keeps its name.
SYSMON_FIELDS = {f: _mapping.load_profile("sysmon").from_s1(f) for f in FIELDS}
#: S1 EventType -> Sysmon EventID (the profile's table).
SYSMON_EVENT_IDS = _mapping.SYSMON_EVENT_IDS


def to_sysmon(event: dict[str, Any]) -> dict[str, Any]:
    """The same event under Sysmon / Sigma field names (``EventType`` as the numeric ``EventID``)."""
    out = {}
    for k, v in event.items():
        if k == "EventType" and v is not None:
            v = SYSMON_EVENT_IDS[v]
        out[SYSMON_FIELDS[k]] = v
    return out


def _events(n: int, seed: int, schema: str, scenario: "str | None" = None) -> Iterator[dict[str, Any]]:
    if scenario is not None:
        return iter_scenario_events(n, seed, scenario)
    if schema == "mixed":
        return iter_mixed(n, seed)
    if schema not in SCHEMAS:
        raise MatcherError(f"unknown schema {schema!r}: expected one of {', '.join(SCHEMAS)}")
    it = iter_events(n, seed)
    return map(to_sysmon, it) if schema == "sysmon" else it


def arrow_schema(schema: str = "s1"):
    """The pyarrow schema of the Parquet files :func:`write` produces (every field nullable)."""
    pa = need("pyarrow", "Parquet output")

    if schema == "sysmon":
        return pa.schema([(SYSMON_FIELDS[f], pa.int32() if f == "EventType" else pa.string()) for f in FIELDS])
    return pa.schema([(f, pa.string()) for f in FIELDS])


# -- writing ---------------------------------------------------------------------------------

FORMATS = ("jsonl", "parquet")
_BATCH = 65_536


def _format_for(path: str | os.PathLike | None) -> str:
    name = os.fspath(path).lower() if path is not None else "-"
    return "parquet" if name.endswith((".parquet", ".pq")) else "jsonl"


def _write_jsonl(fh: IO[bytes], events: Iterable[dict[str, Any]]) -> int:
    import orjson

    dumps = orjson.dumps
    count = 0
    it = iter(events)
    while True:
        chunk = list(itertools.islice(it, _BATCH))
        if not chunk:
            return count
        fh.write(b"\n".join(map(dumps, chunk)) + b"\n")
        count += len(chunk)


def _write_parquet(path: str | os.PathLike, events: Iterable[dict[str, Any]], schema: str) -> int:
    pa = need("pyarrow", "Parquet output")
    pq = need("pyarrow.parquet", "Parquet output")

    sch = arrow_schema(schema)
    count = 0
    it = iter(events)
    with pq.ParquetWriter(path, sch) as writer:  # one row group per batch: memory stays bounded
        while True:
            chunk = list(itertools.islice(it, _BATCH))
            if not chunk:
                break
            writer.write_table(pa.Table.from_pylist(chunk, schema=sch))
            count += len(chunk)
        if not count:
            writer.write_table(sch.empty_table())
    return count


def write(
    path: str | os.PathLike | None,
    n: int,
    seed: int = 0,
    schema: str = "s1",
    format: str | None = None,
    scenario: str | None = None,
) -> int:
    """Write ``n`` generated events (:func:`iter_events`) to ``path``; return the count written.

    ``format`` is ``"jsonl"`` or ``"parquet"``; by default ``.parquet``/``.pq`` paths get Parquet and
    everything else JSON lines. ``path`` ``None`` or ``"-"`` writes JSON lines to standard output; a
    ``.gz`` path gzips JSON lines. ``schema="sysmon"`` writes the same events under Sysmon names
    (:data:`SYSMON_FIELDS`); ``schema="mixed"`` writes :func:`iter_mixed` (JSON lines only);
    ``scenario`` writes :func:`iter_scenario_events` instead. Events are produced and written in
    batches, so memory stays bounded.
    In Parquet a missing field and ``None`` both read back as null.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise MatcherError(f"the number of events must be a non-negative integer, not {n!r}")
    stdout = path is None or os.fspath(path) == "-"
    fmt = format or _format_for(path)
    if fmt not in FORMATS:
        raise MatcherError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if scenario is not None and fmt == "parquet":
        raise MatcherError("correlation scenarios are written as JSON lines")
    events = _events(n, seed, schema, scenario)
    if fmt == "parquet":
        if schema == "mixed":
            raise MatcherError("the mixed log has no single column schema: write it as JSON lines")
        if stdout:
            raise MatcherError("Parquet needs an output file (-o PATH), not standard output")
        if os.fspath(path).lower().endswith(".gz"):
            raise MatcherError(".gz compresses JSON lines only; Parquet files are compressed internally")
        return _write_parquet(path, events, schema)
    if stdout:
        return _write_jsonl(sys.stdout.buffer, events)
    if os.fspath(path).lower().endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=1) as fh:
            return _write_jsonl(fh, events)
    with open(path, "wb") as fh:
        return _write_jsonl(fh, events)


# -- the ``matcher generate`` command --------------------------------------------------------


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``matcher generate`` to ``parser`` (the CLI wires it in)."""
    parser.add_argument("-n", "--events", type=int, default=100_000, help="number of events (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same events (default 0)")
    parser.add_argument("--schema", choices=SCHEMAS + ("mixed",), default="s1",
                        help="field names: SentinelOne (s1, default) or Sysmon/Sigma; mixed: Sysmon process creation "
                             "plus network, DNS, Windows Security logon and zeek conn events (JSON lines)")
    parser.add_argument(
        "--format", choices=FORMATS, default=None,
        help="output format (default: parquet for .parquet/.pq paths, otherwise JSON lines)",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default=None,
                        help="timed events for correlation rules: brute-force, spray, recon or mixed (JSON lines)")
    parser.add_argument(
        "-o", "--output", default="-",
        help="output path; '-' (default) writes JSON lines to stdout; a .gz path gzips JSON lines",
    )


def run_generate(args: argparse.Namespace) -> int:
    """Run ``matcher generate`` with parsed ``args``; return the exit code (0 ok, 2 bad usage, 1 I/O error)."""
    try:
        write(args.output, args.events, seed=args.seed, schema=args.schema, format=args.format, scenario=args.scenario)
    except MatcherError as e:
        print(f"matcher generate: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error; keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:
        print(f"matcher generate: {e}", file=sys.stderr)
        return 1
    return 0
