"""Every field-name table, in one place: plain data, importing no matcher module.

The rules' canonical names are the SentinelOne Deep Visibility (v1) names (``TgtProcImagePath``,
``SrcProcCmdLine``, ...; ``docs/s1ql-spec.md`` sections 6-7). The tables here say how other
schemas name them; :mod:`matcher.mapping` builds its profiles from them,
:mod:`matcher.sigma.logsource` and :mod:`matcher.sigma.translate` read Sigma's, :mod:`matcher.inputs`
the EVTX ones, and the compiler :data:`ENUM_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["SIGMA_TO_S1", "SIGMA_CATEGORY_ALIASES", "S1_ENUM_FIELDS", "S1QL2_FIELDS", "SYSMON_FIELDS",
           "SYSMON_EVENT_IDS", "S1_LOGSOURCES", "SYSMON_CHANNEL", "SYSMON_CATEGORY_IDS", "WINDOWS_CATEGORIES",
           "ECS_FIELDS", "SYSMON_1_TO_S1", "SECURITY_4688_TO_S1", "ENUM_FIELDS"]


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


# -- Sigma -> S1 (the SentinelOne backend) -------------------------------------------------------

#: Sigma field -> S1 DV field, per Sigma logsource category (the SentinelOne backend's tables).
_ACTOR = {
    "Image": "SrcProcImagePath",
    "CommandLine": "SrcProcCmdLine",
    "ParentImage": "SrcProcParentImagePath",
    "ParentCommandLine": "SrcProcParentCmdline",
    "User": "SrcProcUser",
}
SIGMA_TO_S1: Mapping[str, Mapping[str, str]] = _frozen({
    "process_creation": _frozen({
        "Image": "TgtProcImagePath", "CommandLine": "TgtProcCmdLine", "ParentImage": "SrcProcImagePath",
        "ParentCommandLine": "SrcProcCmdLine", "ProcessId": "TgtProcPID", "ParentProcessId": "SrcProcPID",
        "Description": "TgtProcDisplayName", "Product": "TgtProcDisplayName", "Company": "TgtProcPublisher",
        "CurrentDirectory": "TgtProcImagePath", "User": "TgtProcUser", "TerminalSessionId": "TgtProcSessionId",
        "IntegrityLevel": "TgtProcIntegrityLevel", "md5": "TgtProcMd5", "sha1": "TgtProcSha1", "sha256": "TgtProcSha256",
    }),
    "file_event": _frozen({**_ACTOR, "TargetFilename": "TgtFilePath", "SourceFilename": "TgtFileOldPath"}),
    "image_load": _frozen({**_ACTOR, "ImageLoaded": "ModulePath", "sha1": "ModuleSha1", "md5": "ModuleMd5"}),
    "pipe_creation": _frozen({**_ACTOR, "PipeName": "NamedPipeName"}),
    "registry_event": _frozen({**_ACTOR, "TargetObject": "RegistryKeyPath", "Details": "RegistryValue"}),
    "dns_query": _frozen({**_ACTOR, "QueryName": "DnsRequest", "query": "DnsRequest", "answer": "DnsResponse",
                          "record_type": "DnsResponse"}),
    "network_connection": _frozen({**_ACTOR, "DestinationHostname": "Url", "DestinationIp": "DstIP",
                                   "dst_ip": "DstIP", "DestinationPort": "DstPort", "dst_port": "DstPort",
                                   "SourceIp": "SrcIP", "src_ip": "SrcIP", "SourcePort": "SrcPort",
                                   "src_port": "SrcPort", "Protocol": "NetProtocolName"}),
})

#: S1 name -> S1QL 2.0 dotted name (the ``s1ql2`` profile).
S1QL2_FIELDS = {
    "TgtProcImagePath": "tgt.process.image.path", "TgtProcCmdLine": "tgt.process.cmdline",
    "SrcProcImagePath": "src.process.image.path", "SrcProcCmdLine": "src.process.cmdline",
    "TgtProcPID": "tgt.process.pid", "SrcProcPID": "src.process.pid",
    "TgtProcDisplayName": "tgt.process.displayName", "TgtProcPublisher": "tgt.process.publisher",
    "TgtProcUser": "tgt.process.user", "TgtProcSessionId": "tgt.process.sessionid",
    "TgtProcIntegrityLevel": "tgt.process.integrityLevel", "TgtProcMd5": "tgt.process.image.md5",
    "TgtProcSha1": "tgt.process.image.sha1", "TgtProcSha256": "tgt.process.image.sha256",
    "TgtFilePath": "tgt.file.path", "TgtFileOldPath": "tgt.file.oldPath",
    "SrcProcParentImagePath": "src.process.parent.image.path", "SrcProcParentCmdline": "src.process.parent.cmdline",
    "SrcProcUser": "src.process.user", "ModulePath": "module.path", "ModuleSha1": "module.sha1",
    "ModuleMd5": "module.md5", "NamedPipeName": "namedPipe.name", "RegistryKeyPath": "registry.keyPath",
    "RegistryValue": "registry.value", "DnsRequest": "event.dns.request", "DnsResponse": "event.dns.response",
    "Url": "url.address", "DstIP": "dst.ip.address", "DstPort": "dst.port.number", "SrcIP": "src.ip.address",
    "SrcPort": "src.port.number", "EventType": "event.type", "ObjectType": "event.category",
    "EndpointOS": "endpoint.os",
}

#: S1 name -> Sysmon / Sigma name (the ``sysmon`` profile).
SYSMON_FIELDS = {
    **{s1: sigma for sigma, s1 in SIGMA_TO_S1["process_creation"].items()
       if sigma not in ("Product", "CurrentDirectory", "md5", "sha1", "sha256")},
    "SrcProcParentImagePath": "ParentParentImage",  # not in Sysmon: kept distinct from ParentImage
    "TgtFilePath": "TargetFilename", "ModulePath": "ImageLoaded", "NamedPipeName": "PipeName",
    "RegistryKeyPath": "TargetObject", "RegistryValue": "Details", "DnsRequest": "QueryName",
    "DnsResponse": "QueryResults", "DstIP": "DestinationIp", "DstPort": "DestinationPort", "SrcIP": "SourceIp",
    "SrcPort": "SourcePort", "Url": "DestinationHostname", "NetProtocolName": "Protocol",
    "EventType": "EventID",
}
#: Sysmon event ids for the S1 event types (docs/s1ql-spec.md §6 and the Sysmon schema)
SYSMON_EVENT_IDS = {
    "Process Creation": 1, "IP Connect": 3, "Process Exit": 5, "ModuleLoad": 7, "Module Load": 7,
    "File Creation": 11, "CreateKey": 12, "DeleteKey": 12, "SetValue": 13, "Named Pipe Creation": 17,
    "DNS Resolved": 22, "File Delete": 23, "File Deletion": 23,
}

#: Sigma logsources in S1 names (the SentinelOne pipeline's conditions, ``docs/s1ql-spec.md`` §6);
#: every profile but ``sysmon`` starts from these (translated to its names).
S1_LOGSOURCES: Mapping[str, str] = _frozen({
    **{f"category={c}": f'EventType = "{t}"' for c, t in (
        ("process_creation", "Process Creation"), ("file_change", "File Modification"),
        ("file_rename", "File Rename"), ("file_delete", "File Delete"), ("image_load", "ModuleLoad"),
        ("pipe_created", "Named Pipe Creation"), ("pipe_creation", "Named Pipe Creation"))},
    **{f"category={c}": 'ObjectType = "File"' for c in ("file_event",)},
    **{f"category={c}": 'ObjectType = "Registry"'
       for c in ("registry_add", "registry_delete", "registry_event", "registry_set")},
    "category=dns_query": 'ObjectType = "DNS"',
    "category=dns": 'ObjectType = "DNS"',
    "category=network_connection": 'ObjectType In ("DNS", "Url", "IP")',
    "product=windows": 'EndpointOS = "windows"',
    "product=linux": 'EndpointOS = "linux"',
    "product=macos": 'EndpointOS = "osx"',
})

#: The channel of Sysmon's events.
SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
#: Sigma category -> Sysmon event ids (the Sysmon schema; pySigma's sysmon pipeline)
SYSMON_CATEGORY_IDS: Mapping[str, tuple[int, ...]] = _frozen({
    "process_creation": (1,), "file_change": (2,), "network_connection": (3,), "sysmon_status": (4, 16),
    "process_termination": (5,), "driver_load": (6,), "image_load": (7,), "create_remote_thread": (8,),
    "raw_access_thread": (9,), "raw_access_read": (9,), "process_access": (10,), "file_event": (11,),
    "registry_add": (12,), "registry_delete": (12,), "registry_set": (13,), "registry_rename": (14,),
    "registry_event": (12, 13, 14), "create_stream_hash": (15,), "pipe_created": (17, 18),
    "pipe_creation": (17, 18), "wmi_event": (19, 20, 21), "dns_query": (22,), "dns": (22,),
    "file_delete": (23, 26), "clipboard_change": (24,), "process_tampering": (25,),
    "file_delete_detected": (26,), "file_block_executable": (27,), "file_block_shredding": (28,),
    "file_executable_detected": (29,), "sysmon_error": (255,),
})
#: Windows categories that are not Sysmon's: channel and event ids.
WINDOWS_CATEGORIES = {
    "ps_script": ("Microsoft-Windows-PowerShell/Operational", (4104,)),
    "ps_module": ("Microsoft-Windows-PowerShell/Operational", (4103,)),
    "ps_classic_start": ("Windows PowerShell", (400,)),
    "ps_classic_provider_start": ("Windows PowerShell", (600,)),
    "ps_classic_script": ("Windows PowerShell", (800,)),
}

#: Sigma categories that share another category's field table.
SIGMA_CATEGORY_ALIASES = {
    "file_change": "file_event",
    "file_rename": "file_event",
    "file_delete": "file_event",
    "file_access": "file_event",
    "registry_add": "registry_event",
    "registry_delete": "registry_event",
    "registry_set": "registry_event",
    "registry_rename": "registry_event",
    "dns": "dns_query",
    "firewall": "network_connection",
    "pipe_created": "pipe_creation",
}

#: Fields the SentinelOne backend writes value lists on as ``In (...)`` (equality), not
#: ``In Contains AnyCase (...)`` (``docs/s1ql-spec.md`` section 6; those that Sigma maps to).
S1_ENUM_FIELDS = frozenset({"EventType", "ObjectType", "EndpointOS", "TgtProcIntegrityLevel"})


# -- profiles' field tables (S1 name -> the schema's name) ---------------------------------------

#: S1 name -> Elastic Common Schema name (the ``ecs`` profile).
ECS_FIELDS = {
    "TgtProcImagePath": "process.executable", "TgtProcCmdLine": "process.command_line",
    "SrcProcImagePath": "process.parent.executable", "SrcProcCmdLine": "process.parent.command_line",
    "TgtProcPID": "process.pid", "SrcProcPID": "process.parent.pid", "TgtProcDisplayName": "process.pe.description",
    "TgtProcPublisher": "process.pe.company", "TgtProcUser": "user.name", "SrcProcUser": "user.name",
    "TgtFilePath": "file.path", "ModulePath": "file.path", "NamedPipeName": "file.name",
    "RegistryKeyPath": "registry.path", "RegistryValue": "registry.data.strings",
    "DnsRequest": "dns.question.name", "DstIP": "destination.ip", "DstPort": "destination.port",
    "SrcIP": "source.ip", "SrcPort": "source.port", "NetProtocolName": "network.transport",
    "Url": "destination.domain", "EndpointOS": "host.os.type", "EventType": "event.action",
    "ObjectType": "event.category",
}


# -- EVTX (matcher.inputs) ------------------------------------------------------------------------

#: Sysmon event 1 and Security event 4688 fields -> S1 Deep Visibility names.
SYSMON_1_TO_S1 = {
    "Image": "TgtProcImagePath", "CommandLine": "TgtProcCmdLine", "ParentImage": "SrcProcImagePath",
    "ParentCommandLine": "SrcProcCmdLine", "ProcessId": "TgtProcPID", "ParentProcessId": "SrcProcPID",
    "User": "TgtProcUser", "IntegrityLevel": "TgtProcIntegrityLevel", "Description": "TgtProcDisplayName",
    "Company": "TgtProcPublisher", "TerminalSessionId": "TgtProcSessionId",
}
SECURITY_4688_TO_S1 = {
    "NewProcessName": "TgtProcImagePath", "CommandLine": "TgtProcCmdLine", "ParentProcessName": "SrcProcImagePath",
    "NewProcessId": "TgtProcPID", "ProcessId": "SrcProcPID",
}


# -- the compiler -------------------------------------------------------------------------------

#: Fields whose values come from a short list, so equality on them is not selective.
ENUM_FIELDS = frozenset(
    {"eventtype", "endpointos", "objecttype", "event.type", "event.category", "endpoint.os"}
)
