"""Sigma log sources: filtering rules by logsource, and running Sigma rules on S1-named events.

A Sigma rule names fields as Sysmon does (``Image``, ``CommandLine``) and says which events it
is about in its ``logsource``. To run it on events of another schema the field names are
mapped per logsource category (:data:`matcher.mapping.SIGMA_TO_S1`, the SentinelOne
backend's tables) and the logsource becomes conditions on the event type and OS, as the
SentinelOne pipeline writes them (``docs/s1ql-spec.md`` section 6); the result is in S1 names
and :func:`matcher.mapping.remap` takes it to any other profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Optional

from sigma.rule import SigmaLogSource

from .. import ir
from ..errors import MatcherError
from ..fields import SIGMA_CATEGORY_ALIASES

__all__ = ["logsource_filter", "s1_field_map", "route", "routing_fields",
           "logsource_key", "parse_logsource_spec", "UNROUTED_MODES",
           "CATEGORY_ALIASES"]

#: Sigma categories that share another category's field table (:mod:`matcher.fields`).
CATEGORY_ALIASES = SIGMA_CATEGORY_ALIASES


def logsource_filter(
    category: Optional[str] = None, product: Optional[str] = None, service: Optional[str] = None
) -> Callable[[SigmaLogSource], bool]:
    """A test for rules' log sources: every given key must equal the rule's (pySigma's rule)."""
    want = {k: v for k, v in (("category", category), ("product", product), ("service", service)) if v}

    def test(ls: SigmaLogSource) -> bool:
        return all(getattr(ls, k) == v for k, v in want.items())

    return test


def s1_field_map(logsource: SigmaLogSource) -> Callable[[str], str]:
    """Sigma field name -> S1 name for rules of this logsource (unknown names are kept)."""
    from ..fields import SIGMA_TO_S1

    cat = logsource.category or ""
    table: Mapping[str, str] = SIGMA_TO_S1.get(CATEGORY_ALIASES.get(cat, cat), {})
    return lambda name: table.get(name, name)


#: What a rule of a logsource the profile cannot recognise becomes: not loaded (``"skip"``,
#: the default) or run on every event (``"run"``); either way it is reported.
UNROUTED_MODES = ("skip", "run")

_KEYS = ("category", "product", "service")


def logsource_key(ls: "SigmaLogSource | Mapping[str, str]") -> str:
    """``product=windows,category=process_creation``: the rule's logsource as routing tables
    and messages write it (keys in the order product, category, service)."""
    get = ls.get if isinstance(ls, Mapping) else (lambda k: getattr(ls, k, None))
    return ",".join(f"{k}={get(k)}" for k in ("product", "category", "service") if get(k))


def parse_logsource_spec(text: str) -> dict[str, str]:
    """``product=windows,category=process_creation`` -> a dict (``--logsource``, table keys)."""
    out: dict[str, str] = {}
    for item in text.split(","):
        k, sep, v = item.partition("=")
        k, v = k.strip(), v.strip()
        if not sep or k not in _KEYS or not v:
            raise MatcherError(f"logsource {text!r}: expected key=value pairs separated by commas, with keys "
                               f"category, product, service (e.g. product=windows,category=process_creation)")
        out[k] = v
    return out


def _table(profile: Any) -> list[tuple[dict[str, str], str, Any]]:
    """The profile's routing entries: (pairs, S1QL text, the profile whose names the text uses)."""
    from ..fields import S1_LOGSOURCES
    from ..mapping import PROFILES, load_profile

    prof = load_profile(profile)
    out = {k: (q, prof) for k, q in prof.logsources.items()}
    if prof is not PROFILES["sysmon"]:  # the Sigma-named profile has its own full table
        for k, q in S1_LOGSOURCES.items():
            out.setdefault(k, (q, PROFILES["s1"]))
    return [(parse_logsource_spec(k), q, p) for k, (q, p) in out.items()]


def route(logsource: SigmaLogSource, profile: Any) -> tuple[bool, Optional[ir.Node]]:
    """How ``profile`` recognises events of ``logsource``: ``(recognised, condition)``.

    The entries of the profile's table (:attr:`matcher.mapping.Profile.logsources`, then
    :data:`matcher.mapping.S1_LOGSOURCES` for profiles other than ``sysmon``) whose pairs all
    hold for the rule apply; of those, an entry whose pairs are a strict subset of another's is
    dropped (``product=windows,service=security`` is more specific than ``product=windows``).
    The logsource is recognised when every key it sets (category, product, service) is named
    by an applying entry; the condition is the AND of the applying entries' conditions, in the
    profile's names (``None``: no condition needed).
    """
    from ..mapping import load_profile, parse_condition, remap

    prof = load_profile(profile)
    have = {k: getattr(logsource, k) for k in _KEYS if getattr(logsource, k, None)}
    if not have:
        return False, None
    hits = [(pairs, q, p) for pairs, q, p in _table(prof) if all(have.get(k) == v for k, v in pairs.items())]
    hits = [h for h in hits if not any(set(h[0].items()) < set(o[0].items()) for o in hits)]
    named = {k for pairs, _, _ in hits for k in pairs}
    if not set(have) <= named:
        return False, None
    conds = []
    for pairs, q, p in sorted(hits, key=lambda h: sorted(h[0].items())):
        if not q:
            continue
        node = parse_condition(q, f"profile {p.name}: logsources.{logsource_key(pairs)}")
        if p is not prof:
            node = remap(node, p, prof)
        conds.append(node)
    return True, (ir.and_(*conds) if conds else None)




def routing_fields(*profiles: Any) -> frozenset[str]:
    """The field names the routing conditions of the built-in profiles (and of ``profiles``)
    read: ``Channel``, ``EventID``, ``EventType``, ``winlog.channel``, ... (field names a
    routed rule reads that no profile's field table need name)."""
    from ..ir import walk_preds
    from ..mapping import PROFILES, load_profile, parse_condition, translate

    out: set[str] = set()
    for prof in {id(p): p for p in (*PROFILES.values(), *(load_profile(x) for x in profiles))}.values():
        for pairs, q, p in _table(prof):
            if q:
                node = parse_condition(q, f"profile {p.name}: logsources.{logsource_key(pairs)}")
                out.update(x.field for x in walk_preds(translate(node, p, prof) if p is not prof else node))
    return frozenset(out)
