"""Arrow input: turn a pyarrow Table or RecordBatch into the core's column descriptors.

String columns (``string``, ``large_string``, and dictionary-encoded strings) are handed to
the core as their validity, offsets and data buffers, with no Python object per row. Other
column types go through ``to_pylist()`` and follow the same rules as mapping events. A
dotted field name that is not a column is looked up as a path through struct columns.
pyarrow is imported only when Arrow data is matched.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional


def record_batches(data: Any) -> Iterator[Any]:
    import pyarrow as pa

    if isinstance(data, pa.RecordBatch):
        yield data
    elif isinstance(data, pa.Table):
        yield from data.to_batches()
    elif isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(f"expected a pyarrow Table or RecordBatch, not {type(data).__name__}")
    else:  # an iterable of them, streamed
        for item in data:
            if not isinstance(item, (pa.RecordBatch, pa.Table)):
                raise TypeError(f"expected pyarrow Tables or RecordBatches, not {type(item).__name__}")
            yield from record_batches(item)


def _find(batch: Any, name: str) -> Optional[Any]:
    import pyarrow as pa

    schema = batch.schema
    idx = schema.get_field_index(name)
    if idx >= 0:
        return batch.column(idx)
    if "." not in name:
        return None
    parts = name.split(".")
    idx = schema.get_field_index(parts[0])
    if idx < 0:
        return None
    arr = batch.column(idx)
    for part in parts[1:]:
        if not pa.types.is_struct(arr.type) or arr.type.get_field_index(part) < 0:
            return None
        # flatten() folds the parent's validity into the children.
        arr = arr.flatten()[arr.type.get_field_index(part)]
    return arr


def _view(buf: Any) -> memoryview:
    # pyarrow exports its buffers as signed chars; the core reads unsigned bytes.
    if buf is None or buf.size == 0:
        return memoryview(b"\0")
    return memoryview(buf).cast("B")


def _is_str(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _strings(arr: Any) -> tuple:
    import pyarrow as pa

    _, offsets, data = arr.buffers()[:3]
    return _view(offsets), 4 if pa.types.is_string(arr.type) else 8, arr.offset, _view(data)


def _descriptor(arr: Any) -> Any:
    import pyarrow as pa

    t = arr.type
    validity = _view(arr.buffers()[0]) if arr.null_count else None
    if _is_str(t):
        return ("utf8", validity, arr.offset) + _strings(arr)
    if pa.types.is_dictionary(t) and _is_str(t.value_type):
        if pa.types.is_signed_integer(t.index_type) and arr.dictionary.null_count == 0:
            idx = arr.indices
            return ("dict", validity, arr.offset, _view(idx.buffers()[1]), idx.type.bit_width // 8,
                    idx.offset) + _strings(arr.dictionary)
        return _descriptor(arr.dictionary_decode())
    return ("py", arr.to_pylist())


def column_descriptors(batch: Any, field_names: tuple[str, ...]) -> list:
    out = []
    for name in field_names:
        arr = _find(batch, name)
        out.append(None if arr is None else _descriptor(arr))
    return out
