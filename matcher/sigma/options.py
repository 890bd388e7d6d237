"""The command line's Sigma options, shared by ``scan``, ``check``, ``explain`` and
``coverage``: the option group (:func:`add_arguments`) and what it reads as keywords of
:func:`matcher.api.gather_rules` (:func:`from_args`). Importing this module is cheap (no pySigma)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser, timestamp: bool = True) -> None:
    """Options of Sigma rules (docs/sigma.md): routing, filters, placeholders, timestamps
    (``timestamp=False``: the command has its own ``--timestamp``, which Sigma rules read too)."""
    g = p.add_argument_group("Sigma rules")
    g.add_argument("--logsource", metavar="KEY=VALUE,...",
                   help="load only Sigma rules of this logsource, e.g. product=windows,category=process_creation")
    g.add_argument("--unrouted", choices=("skip", "run"), default="skip",
                   help="Sigma rules whose logsource the profile cannot recognise: skip them (default) or run them "
                        "on every event; reported either way")
    g.add_argument("--filter", action="append", metavar="FILE",
                   help="a Sigma filter file to apply to the rules it names; repeatable (filters inside -r trees "
                        "apply too)")
    g.add_argument("--placeholder", action="append", metavar="NAME=VALUE,...",
                   help="values of the Sigma placeholder %%NAME%%; repeatable")
    g.add_argument("--placeholders", action="append", metavar="FILE",
                   help="a YAML file mapping placeholder names to lists of values; repeatable")
    if timestamp:
        g.add_argument("--timestamp", metavar="FIELD",
                       help="the event field Sigma's timestamp-part modifiers (|hour, |day, ...) read "
                            "(default: the field the rule names)")


def from_args(args: argparse.Namespace) -> dict:
    """The Sigma loading options of the command line (``scan``, ``check``, ``explain``,
    ``coverage``: ``--placeholder(s)``, ``--unrouted``, ``--timestamp``, ``--filter``,
    ``--logsource``, ``-p``), read off an argparse namespace, as keywords of
    :func:`matcher.api.gather_rules`; :class:`MatcherError` for a bad one."""
    from .loader import SigmaOptions  # (imports pySigma: only when rules are loaded)
    from .logsource import parse_logsource_spec
    from .placeholders import parse_placeholder_arg, read_placeholder_file

    values: dict[str, list[str]] = {}
    for f in getattr(args, "placeholders", None) or []:
        for k, v in read_placeholder_file(f).items():
            values.setdefault(k, []).extend(v)
    for text in getattr(args, "placeholder", None) or []:
        k, v = parse_placeholder_arg(text)
        values.setdefault(k, []).extend(v)
    spec = getattr(args, "logsource", None)
    return {
        "sigma_options": SigmaOptions.of(values, getattr(args, "unrouted", "skip"), getattr(args, "timestamp", None)),
        "sigma_filters": getattr(args, "filter", None) or [],
        "sigma_logsource": parse_logsource_spec(spec) if spec else None,
        "sigma_profile": args.profile,
    }
