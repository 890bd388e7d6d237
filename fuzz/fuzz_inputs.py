"""Fuzz target: the JSON-lines, JSON-array and CSV readers (``matcher.inputs.read``).

Invariants: reading never raises; for JSON lines every line holding more than whitespace is
accounted for exactly once, as a record or as a bad record, and each record equals what the
one-line decoder makes of that line (the batch path and the per-line path agree); for CSV and
JSON arrays the records and bad records come in increasing order, never twice.
"""

from __future__ import annotations

import atexit
import gzip
import os
import tempfile

from _harness import instrumented, main

with instrumented():
    from matcher import inputs

FORMATS = ("jsonl", "jsonl", "csv", "json")
FIELDS = (None, ("a", "b.c"), ("a",))
_fd, PATH = tempfile.mkstemp(prefix="matcher-fuzz-", suffix=".log")
os.close(_fd)
atexit.register(os.unlink, PATH)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    fmt, fields = FORMATS[data[0] % 4], FIELDS[data[1] % 3]
    packed = data[0] & 0x80
    body = data[2:]
    with open(PATH, "wb") as fh:
        fh.write(gzip.compress(body, mtime=0) if packed else body)
    items = list(inputs.read(inputs.Input(PATH, "fuzz"), fmt=fmt, fields=fields, chunk=3))
    seen: list[int] = []
    for it in items:
        if isinstance(it, inputs.Records):
            assert len(it.where) == len(it.events), it
            seen.extend(it.where)
        elif isinstance(it, inputs.Bad) and it.where is not None:
            seen.append(it.where)
    assert seen == sorted(set(seen)), f"records out of order or twice: {seen}"
    if fmt != "jsonl":
        return
    lines = body.split(b"\n")
    assert seen == [i + 1 for i, line in enumerate(lines) if line.strip()], f"lines lost or invented: {seen}"
    decoders = [inputs.JsonLinesDecoder(None), inputs.JsonLinesDecoder(fields)]  # whole, or the rules' fields
    for it in items:
        if isinstance(it, inputs.Records):
            for w, ev in zip(it.where, it.events):
                assert any(ev == _decode(d, lines[w - 1]) for d in decoders), \
                    f"line {w}: batch {ev!r} != one-line decode"


def _decode(dec, raw: bytes):
    try:
        return dec.decode(raw)
    except ValueError as e:
        return e


if __name__ == "__main__":
    main(test_one_input)
