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
    else:
        raise TypeError(f"expected a pyarrow Table or RecordBatch, not {type(data).__name__}")


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


def _bytes_view(buf: Any) -> memoryview:
    # pyarrow exports its buffers as signed chars; the core reads unsigned bytes.
    return memoryview(buf).cast("B")


def _descriptor(arr: Any) -> Any:
    import pyarrow as pa

    t = arr.type
    if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        validity, offsets, data = arr.buffers()[:3]
        width = 4 if pa.types.is_string(t) else 8
        return ("utf8", _bytes_view(validity) if arr.null_count else None, _bytes_view(offsets), width,
                _bytes_view(data) if data is not None and data.size else b"\0", arr.offset)
    return ("py", arr.to_pylist())


def column_descriptors(batch: Any, field_names: tuple[str, ...]) -> list:
    out = []
    for name in field_names:
        arr = _find(batch, name)
        out.append(None if arr is None else _descriptor(arr))
    return out
