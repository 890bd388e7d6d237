"""Deterministic synthetic Windows process-creation events (SentinelOne field names).

``generate(n, seed)`` is what the command line's built-in sample, the tests and the
benchmarks run on. Events look like SentinelOne Deep Visibility process-creation records:
long-tailed parent and child images, mixed-case paths, non-ASCII user names, command lines
from a few dozen to a few thousand characters, a few percent of other event types and
non-Windows endpoints, and about half a percent of true positives of the flagship rule
(plus events that hit its exclusions and near misses). Missing fields and ``None`` occur.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

__all__ = ["generate", "iter_events", "FIELDS"]

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


def _cmdline(rng: random.Random, image: str) -> str:
    n = int(rng.paretovariate(1.2) * 2)
    words = [f'"{image}"' if rng.random() < 0.5 else image]
    words += [rng.choice(_WORDS) for _ in range(min(n, 400))]
    return " ".join(words)


class _Picker:
    def __init__(self, table):
        self.names = [n for n, _ in table]
        self.weights = [w for _, w in table]

    def __call__(self, rng: random.Random) -> str:
        return rng.choices(self.names, self.weights)[0]


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
        ev["TgtProcCmdLine"] = f"{shell} /c whoami"
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
