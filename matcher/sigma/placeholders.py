"""Sigma placeholders: ``%name%`` in values of the ``expand`` modifier, filled from user lists.

``placeholders={"Admins_Workstations": ["ws-1*", "ws-2"]}`` (API), ``--placeholder
name=value,...`` or ``--placeholders FILE`` (a YAML mapping of names to lists; command line).
A value is read as a Sigma string (``*`` and ``?`` are wildcards, ``\\`` escapes them), so a
placeholder stands for the OR of its values, as pySigma's ``ValueListPlaceholderTransformation``
writes it. A string with several placeholders stands for every combination. A placeholder
with no value makes its rule an :class:`~matcher.errors.UnsupportedFeature` (reported and
counted, never run with the placeholder taken literally).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Sequence, Union

from sigma.types import Placeholder, SigmaString

from ..errors import MatcherError, UnsupportedFeature

__all__ = ["FEATURE", "expand_parts", "no_value", "placed", "check_placeholders", "parse_placeholder_arg",
           "read_placeholder_file"]

#: The feature name a rule whose placeholder has no value fails with.
FEATURE = "placeholders (the expand modifier)"

Placeholders = Mapping[str, Sequence[str]]


def check_placeholders(values: Optional[Placeholders]) -> dict[str, tuple[str, ...]]:
    """``values`` as a dict of tuples; :class:`MatcherError` for anything but names -> lists of strings."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise MatcherError(f"placeholders must map names to lists of strings, not {type(values).__name__}")
    out = {}
    for k, v in values.items():
        if isinstance(v, (str, int, float)):
            v = [v]
        if not isinstance(k, str) or not isinstance(v, Sequence) or not all(isinstance(x, (str, int, float)) for x in v):
            raise MatcherError(f"placeholder {k!r}: expected a list of strings, not {v!r}")
        out[k] = tuple(str(x) for x in v)
    return out


def expand_parts(parts: Sequence, values: Mapping[str, Sequence[str]], rule: str) -> list[list]:
    """A SigmaString's parts with its placeholders replaced: one parts list per combination of
    values. Raises :class:`UnsupportedFeature` for a placeholder without values."""
    choices: list[list[list]] = []
    for p in parts:
        if isinstance(p, Placeholder):
            vals = values.get(p.name)
            if not vals:
                raise no_value(rule, p.name)
            choices.append([list(SigmaString(v).s) for v in vals])
        else:
            choices.append([[p]])
    return [[x for chunk in combo for x in chunk] for combo in itertools.product(*choices)]


def no_value(rule: str, name: str) -> UnsupportedFeature:
    """The error of a placeholder without a value (``.placeholder``: its name, for the loader to place it)."""
    return placed(UnsupportedFeature(rule, FEATURE, f"%{name}% has no value (give placeholders={{{name!r}: [...]}} "
                                     f"or --placeholder {name}=...)"), name)


def placed(error: UnsupportedFeature, name: str) -> UnsupportedFeature:
    """``error`` marked as being about placeholder ``name``: the loader adds the line and column
    of the first detection value holding ``%name%``."""
    error.placeholder = name  # type: ignore[attr-defined]
    error.yaml_text = f"%{name}%"  # type: ignore[attr-defined]
    return error


def parse_placeholder_arg(text: str) -> tuple[str, list[str]]:
    """``name=value,value`` (``--placeholder``) -> ``(name, [values])``."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip():
        raise MatcherError(f"--placeholder {text!r}: expected name=value[,value...]")
    return name.strip(), [v for v in rest.split(",") if v != ""]


def read_placeholder_file(path: Union[str, Path]) -> dict[str, tuple[str, ...]]:
    """A YAML file mapping placeholder names to lists of values (``--placeholders``)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise MatcherError(f"{path}: cannot read the placeholders file: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise MatcherError(f"{path}: not valid YAML: {e}") from None
    try:
        return check_placeholders(doc or {})
    except MatcherError as e:
        raise MatcherError(f"{path}: {e}") from None
