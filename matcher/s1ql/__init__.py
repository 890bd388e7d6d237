"""The S1QL front end: ``parse`` (text -> IR) and ``to_s1ql`` (IR -> canonical text)."""

from .parser import parse
from .printer import to_s1ql

__all__ = ["parse", "to_s1ql"]
