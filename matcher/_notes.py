"""Notes for the person at the terminal: one line on stderr, ``matcher: ...``. Imports nothing."""

from __future__ import annotations

import sys


def say(msg: str) -> None:
    print(f"matcher: {msg}", file=sys.stderr)
