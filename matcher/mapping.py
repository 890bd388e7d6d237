"""Field-mapping profiles: run the same rule over events written in another schema.

The rules' canonical field names are the SentinelOne Deep Visibility (v1) names
(``TgtProcImagePath``, ``SrcProcCmdLine``, ...). A :class:`Profile` says how another schema
names them. Rules are remapped, not events (:func:`remap` renames the fields of an IR tree),
so matching stays as fast as on native events and Arrow columns are still read in place.

Built-in profiles (tables from ``docs/s1ql-spec.md`` §6-7):

``s1``      identity: S1 Deep Visibility names.
``s1ql2``   S1QL 2.0 dotted names (``src.process.image.path``); ``EventType`` is ``event.type``
            (``ModuleLoad`` is written ``Module Load``), ``ObjectType`` is ``event.category``.
``sysmon``  Sysmon / Sigma names as a Sysmon *process creation* event (event 1) holds them:
            ``Image``, ``CommandLine``, ``ParentImage``, ``ParentCommandLine``, ``User``, ...;
            the object fields of the other Sysmon events (``TargetFilename``, ``ImageLoaded``,
            ``TargetObject``, ``QueryName``, ``DestinationIp``, ...); ``EventType = "Process
            Creation"`` becomes ``EventID = "1"`` (likewise for the other event types Sysmon
            has), and every event is a Windows one (``EndpointOS = "windows"`` holds,
            ``"linux"`` never does). In the other Sysmon events the *acting* process is
            ``Image`` (S1 ``SrcProcImagePath``), which this profile names ``ParentImage``: rules
            on file, registry or network events that test the acting process need a user
            mapping (:data:`SIGMA_TO_S1` has the per-category Sigma tables).
``ecs``     Elastic Common Schema (``process.executable``, ``process.parent.executable``, ...);
            ``EventType = "Process Creation"`` becomes ``event.category = "process" AND
            event.type = "start"``, ``EndpointOS`` is ``host.os.type`` (``osx`` is ``macos``).

A user profile is a JSON or TOML file (see ``docs/cli.md``)::

    base = "sysmon"                      # optional: start from a built-in profile
    [fields]                             # S1 name = the name in your events
    TgtProcImagePath = "proc.path"
    [values.EventType]                   # S1 value = S1QL in your names (for = and In)
    "Process Creation" = 'evt.kind = "exec"'
    [constants]                          # S1 fields every event of yours holds, with their value
    EndpointOS = "windows"
    [aliases]                            # more names of yours read back by to_s1()
    "proc.exe" = "TgtProcImagePath"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Union

from .errors import MatcherError, QuerySyntaxError
from .fields import (
    ECS_FIELDS,
    S1_LOGSOURCES,
    S1QL2_FIELDS,
    SIGMA_TO_S1,
    SYSMON_CATEGORY_IDS,
    SYSMON_CHANNEL,
    SYSMON_EVENT_IDS,
    SYSMON_FIELDS,
    WINDOWS_CATEGORIES,
)
from .ir import EVENT_OPS, And, Node, Not, Op, Pred, and_, or_
from .ops import REFERENCE, fold

__all__ = ["Profile", "ProfileError", "RuleNeverMatches", "load_profile", "remap", "PROFILES", "SIGMA_TO_S1",
           "known_fields", "unknown_field_warnings", "closest_fields", "S1_LOGSOURCES", "SYSMON_CATEGORY_IDS",
           "parse_condition"]


class ProfileError(MatcherError):
    """A profile that does not exist or a mapping file that cannot be read."""


class RuleNeverMatches(MatcherError):
    """A rule that, under a profile's constants, is always false (or always true)."""

    def __init__(self, message: str, always: bool):
        super().__init__(message)
        self.always = always


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Profile:
    """How one schema names the S1 fields.

    ``fields``: S1 name -> this schema's name. ``values``: S1 field -> {S1 value (any case) ->
    S1QL text in this schema's names}, applied to ``=`` predicates (and so to ``In`` lists).
    ``constants``: S1 field -> the value every event of this schema has (predicates on them
    are decided when a rule is remapped). ``aliases``: further names of this schema that
    :meth:`to_s1` reads back (several names may stand for one S1 field).
    """

    name: str
    fields: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: Sigma logsource -> how this schema recognises its events: ``"category=process_creation"``
    #: or ``"product=windows,service=security"`` -> S1QL in this schema's names (``""``: every
    #: event of the schema is of it). See :func:`matcher.sigma.logsource.route`.
    logsources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _frozen(self.fields))
        object.__setattr__(self, "logsources", _frozen(self.logsources))
        object.__setattr__(self, "values", _frozen({k: _frozen({fold(v): q for v, q in m.items()}) for k, m in self.values.items()}))
        object.__setattr__(self, "constants", _frozen(self.constants))
        back = {v: k for k, v in self.fields.items()}
        back.update(self.aliases)
        object.__setattr__(self, "aliases", _frozen(self.aliases))
        object.__setattr__(self, "_back", back)

    def from_s1(self, name: str) -> str:
        """This schema's name for the S1 field ``name`` (unknown names pass through)."""
        return self.fields.get(name, name)

    def to_s1(self, name: str) -> str:
        """The S1 name of this schema's field ``name`` (unknown names pass through)."""
        return self._back.get(name, name)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# tables (docs/s1ql-spec.md §6-7)
# --------------------------------------------------------------------------------------------

def _sysmon_logsources() -> dict[str, str]:
    from sigma.pipelines.common import windows_logsource_mapping as channels

    def one_of(field: str, values) -> str:
        items = [f'{field} = "{v}"' for v in values]
        return items[0] if len(items) == 1 else "(" + " OR ".join(items) + ")"

    # An event of a channel: its Channel, or no Channel field at all (events exported without
    # it, like ``matcher generate --schema sysmon``: the channel cannot be told, the rule's own
    # conditions, EventID first, decide). Sysmon categories: the event id as well.
    def channel(names) -> str:
        names = [names] if isinstance(names, str) else names
        return "(" + " OR ".join([f'Channel = "{n}"' for n in names] + ["NOT Channel EXISTS"]) + ")"

    out = {f"category={c}": f'{one_of("EventID", ids)} AND {channel(SYSMON_CHANNEL)}'
           for c, ids in SYSMON_CATEGORY_IDS.items()}
    out.update({f"category={c}": f'{channel(ch)} AND {one_of("EventID", ids)}'
                for c, (ch, ids) in WINDOWS_CATEGORIES.items()})
    out.update({f"product=windows,service={s}": channel(ch) for s, ch in channels.items()})
    out["product=windows"] = ""  # every event of this profile is a Windows one
    return out


PROFILES: Mapping[str, Profile] = _frozen({
    "s1": Profile("s1"),
    "s1ql2": Profile("s1ql2", S1QL2_FIELDS, values={"EventType": {"ModuleLoad": 'event.type = "Module Load"'}}),
    "sysmon": Profile(
        "sysmon",
        SYSMON_FIELDS,
        values={"EventType": {k: f'EventID = "{v}"' for k, v in SYSMON_EVENT_IDS.items()}},
        constants={"EndpointOS": "windows"},
        aliases={"Product": "TgtProcDisplayName"},
        logsources=_sysmon_logsources(),
    ),
    "ecs": Profile(
        "ecs",
        ECS_FIELDS,
        values={
            "EventType": {
                "Process Creation": 'event.category = "process" AND event.type = "start"',
                "Process Exit": 'event.category = "process" AND event.type = "end"',
                "File Creation": 'event.category = "file" AND event.type = "creation"',
                "File Delete": 'event.category = "file" AND event.type = "deletion"',
                "File Deletion": 'event.category = "file" AND event.type = "deletion"',
                "ModuleLoad": 'event.category = "library"',
                "Module Load": 'event.category = "library"',
                "DNS Resolved": 'event.category = "network" AND dns.question.name EXISTS',
                "IP Connect": 'event.category = "network" AND event.type = "connection"',
            },
            "EndpointOS": {"osx": 'host.os.type = "macos"'},
            "ObjectType": {"DNS": 'event.category = "network" AND dns.question.name EXISTS',
                           "IP": 'event.category = "network"', "Registry": 'event.category = "registry"',
                           "File": 'event.category = "file"'},
        },
        aliases={"process.pe.product": "TgtProcDisplayName", "process.working_directory": "TgtProcImagePath",
                 "user.name": "TgtProcUser", "file.path": "TgtFilePath"},
        logsources={"product=windows,service=security": 'winlog.channel = "Security"',
                    "product=windows,service=system": 'winlog.channel = "System"',
                    "product=windows,service=powershell": 'winlog.channel = "Microsoft-Windows-PowerShell/Operational"',
                    "category=ps_script": 'winlog.channel = "Microsoft-Windows-PowerShell/Operational" AND event.code = "4104"',
                    "category=ps_module": 'winlog.channel = "Microsoft-Windows-PowerShell/Operational" AND event.code = "4103"'},
    ),
})


def _read_file(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ProfileError(f"{path}: cannot read the mapping file: {e.strerror or e}") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            return tomllib.loads(data.decode("utf-8"))
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:  # json, tomllib and utf-8 errors are ValueErrors
        raise ProfileError(f"{path}: not a valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'} mapping file: {e}") from None


def _table(doc: dict, key: str, path: Path, nested: bool = False) -> dict:
    t = doc.get(key, {})
    ok = isinstance(t, dict) and all(
        isinstance(k, str) and (isinstance(v, dict) and all(isinstance(a, str) and isinstance(b, str) for a, b in v.items())
                                if nested else isinstance(v, str))
        for k, v in t.items()
    )
    if not ok:
        shape = "tables of strings" if nested else "a table of strings"
        raise ProfileError(f"{path}: '{key}' must be {shape}")
    return t


def load_profile(name_or_path: Union[str, Path, Profile]) -> Profile:
    """A built-in profile by name (``s1``, ``s1ql2``, ``sysmon``, ``ecs``) or a mapping file."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    key = str(name_or_path)
    if key in PROFILES:
        return PROFILES[key]
    path = Path(key)
    if not path.suffix and not path.exists():
        raise ProfileError(f"no profile named {key!r}; built-in: {', '.join(PROFILES)}; or give a .json/.toml mapping file")
    doc = _read_file(path)
    if not isinstance(doc, dict):
        raise ProfileError(f"{path}: a mapping file holds one object/table")
    unknown = set(doc) - {"name", "base", "fields", "values", "constants", "aliases", "logsources"}
    if unknown:
        raise ProfileError(f"{path}: unknown keys {sorted(unknown)}; expected name, base, fields, values, constants, "
                           "aliases, logsources")
    base = doc.get("base")
    if base is not None and base not in PROFILES:
        raise ProfileError(f"{path}: base {base!r} is not a built-in profile ({', '.join(PROFILES)})")
    b = PROFILES[base] if base else PROFILES["s1"]
    values = {k: dict(v) for k, v in b.values.items()}
    for k, v in _table(doc, "values", path, nested=True).items():
        values.setdefault(k, {}).update({fold(a): q for a, q in v.items()})
    prof = Profile(
        name=str(doc.get("name") or path.stem),
        fields={**b.fields, **_table(doc, "fields", path)},
        values=values,
        constants={**b.constants, **_table(doc, "constants", path)},
        aliases={**b.aliases, **_table(doc, "aliases", path)},
        logsources={**b.logsources, **_table(doc, "logsources", path)},
    )
    for f, table in prof.values.items():  # every value mapping must parse now, not mid-scan
        for v, q in table.items():
            _parse_value_query(q, f"{path}: values.{f}.{v!r}")
    for key, q in _table(doc, "logsources", path).items():
        if q:
            _parse_value_query(q, f"{path}: logsources.{key!r}")
    return prof


def _parse_value_query(query: str, where: str) -> Node:
    from .s1ql import parse

    try:
        return parse(query)
    except QuerySyntaxError as e:
        raise ProfileError(f"{where}: {e}") from None


# --------------------------------------------------------------------------------------------
# remap
# --------------------------------------------------------------------------------------------

def _to_s1(node: Node, src: Profile) -> Node:
    if isinstance(node, Pred):
        name = src.to_s1(node.field)
        value = src.to_s1(node.value) if node.op in _FIELDREF_OPS else node.value  # type: ignore[arg-type]
        return node if (name, value) == (node.field, node.value) else Pred(name, node.op, value)
    if isinstance(node, Not):
        return Not(_to_s1(node.item, src))
    return type(node)(tuple(_to_s1(c, src) for c in node.items))


def _from_s1(node: Node, dst: Profile) -> Union[Node, bool]:
    """The tree in ``dst`` names, with predicates on ``dst``'s constants decided (True/False)."""
    if isinstance(node, Pred):
        if node.field in dst.constants:
            return bool(REFERENCE[node.op](dst.constants[node.field], node.value))
        table = dst.values.get(node.field)
        if table is not None and node.op is Op.EQUALS and fold(node.value) in table:
            return _parse_value_query(table[fold(node.value)], f"profile {dst.name}: values.{node.field}")
        name = dst.from_s1(node.field)
        value = dst.from_s1(node.value) if node.op in _FIELDREF_OPS else node.value  # type: ignore[arg-type]
        return node if (name, value) == (node.field, node.value) else Pred(name, node.op, value)
    if isinstance(node, Not):
        item = _from_s1(node.item, dst)
        return (not item) if isinstance(item, bool) else Not(item)
    is_and = isinstance(node, And)
    kept: list[Node] = []
    for c in node.items:
        r = _from_s1(c, dst)
        if isinstance(r, bool):
            if r is not is_and:  # a False inside AND, a True inside OR decides the node
                return r
            continue
        kept.append(r)
    if not kept:
        return is_and
    return and_(*kept) if is_and else or_(*kept)


def remap(node: Node, src: Union[str, Profile], dst: Union[str, Profile]) -> Node:
    """The rule ``node`` (written in ``src`` names) rewritten for events in ``dst`` names.

    Raises :class:`RuleNeverMatches` when ``dst``'s constants decide the whole rule (e.g. a
    Linux rule under the ``sysmon`` profile, whose events are all Windows ones).
    """
    src, dst = load_profile(src), load_profile(dst)
    s1 = _to_s1(node, src) if src.fields or src.aliases else node
    out = _from_s1(s1, dst)
    if isinstance(out, bool):
        const = ", ".join(f"{k} = {v!r}" for k, v in dst.constants.items())
        raise RuleNeverMatches(
            f"under profile {dst.name!r} ({const}) the rule is always {'true' if out else 'false'}", always=out
        )
    return out


def in_profile(node: Node, profile: Union[None, str, Profile]) -> Node:
    """A rule read in S1 names (by a front end: S1QL, Sigma translated for an S1-named profile)
    for events in ``profile``'s names: ``node`` itself for ``None`` and the ``s1`` profile, else
    :func:`remap` from ``s1``. The one place a profile is applied to a rule as read."""
    if profile is None or profile is PROFILES["s1"] or (isinstance(profile, str) and profile == "s1"):
        return node
    return remap(node, "s1", profile)



# --------------------------------------------------------------------------------------------
# field names no profile knows (``matcher check``, ``matcher coverage``)
# --------------------------------------------------------------------------------------------


def known_fields(*extra: Profile) -> frozenset[str]:
    """Every field name a built-in profile (or one of ``extra``) knows, in any of its schemas:
    S1 names, their S1QL 2.0, Sysmon/Sigma and ECS names, aliases, and the Sigma tables'."""
    names: set[str] = set()
    for p in (*PROFILES.values(), *extra):
        names.update(p.fields, p.fields.values(), p.aliases, p.aliases.values(), p.constants, p.values)
    for table in SIGMA_TO_S1.values():
        names.update(table, table.values())
    return frozenset(names)


def unknown_field_warnings(node: Node, known: frozenset[str]) -> list[str]:
    """One message per field of ``node`` that is not in ``known``, with the closest known names
    (a misspelt ``TgtProcImagPath`` is "did you mean TgtProcImagePath?")."""
    from .ir import walk_preds

    out = []
    seen: set[str] = set()
    for p in walk_preds(node):
        for name in (p.field, p.value if p.op in _FIELDREF_OPS else None):
            if not name or name in known or name in seen:
                continue
            seen.add(name)
            close = closest_fields(name, known)
            out.append(f"field {name!r} is known to no profile" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    return out


def closest_fields(name: str, known: frozenset[str]) -> list[str]:
    """Up to two known names close to ``name`` (``difflib``, similarity 0.8 or more)."""
    import difflib

    return difflib.get_close_matches(name, sorted(known), n=2, cutoff=0.8)


_FIELDREF_OPS = EVENT_OPS - {Op.KEYWORD}  # their value is another field's name


#: The old name of :func:`remap` ("translate" is the Sigma front end's word: pySigma rule -> IR).
translate = remap

#: An S1QL condition of a profile table (values, logsources): ``parse_condition(text, where)``,
#: a :class:`ProfileError` naming ``where`` when it does not parse.
parse_condition = _parse_value_query
