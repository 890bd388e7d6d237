"""Arrow input: turn a pyarrow Table or RecordBatch into the core's column descriptors.

String columns (``string``, ``large_string``, and dictionary-encoded strings) are handed to
the core as their validity, offsets and data buffers, with no Python object per row; the core
checks every offset and index the rows use against the buffers' sizes before it reads them.
Other column types go through ``to_pylist()`` (after pyarrow's full validation) and follow the
same rules as mapping events. A dotted field name that is not a column is looked up as a path
through struct columns; a path step that meets a list column (of structs) walks into every
element, as ``ops.walk`` does on mappings, and the row's values reached form one multi-valued
field. A field name that two columns share is an error
(:class:`~matcher.errors.ArrowDataError`), never a silently absent field. pyarrow is imported
only when Arrow data is matched.
"""

from __future__ import annotations

from typing import Any, Iterator

from .errors import ArgumentError, ArrowDataError


def record_batches(data: Any) -> Iterator[Any]:
    """The record batches of a Table, a RecordBatch, or an iterable of them (a
    ``RecordBatchReader``, a generator), in order."""
    import pyarrow as pa

    if isinstance(data, pa.RecordBatch):
        yield data
    elif isinstance(data, pa.Table):
        yield from data.to_batches()
    elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise ArgumentError(f"expected a pyarrow Table or RecordBatch, not {type(data).__name__}")
    else:
        for item in data:
            if isinstance(item, pa.Table):
                yield from item.to_batches()
            elif isinstance(item, pa.RecordBatch):
                yield item
            else:
                raise ArgumentError(f"expected pyarrow RecordBatches, not {type(item).__name__}")


def validated(arr: Any, name: str, full: bool = False) -> Any:
    """arr after pyarrow's own validation (buffer sizes; with full, every offset, index and
    UTF-8 sequence), which pyarrow's own routines (flatten, to_pylist) rely on."""
    import pyarrow as pa

    try:
        arr.validate(full=full)
    except (pa.ArrowException, ValueError) as exc:
        raise ArrowDataError(str(exc), name) from None
    return arr


def _bytes_view(arr: Any) -> Any:
    """A string column as binary (large_binary for large_string): the same buffers, no copy,
    which Arrow's validation and kernels read without requiring UTF-8."""
    import pyarrow as pa

    return arr.view(pa.large_binary() if pa.types.is_large_string(arr.type) else pa.binary())


def validated_layout(arr: Any, name: str) -> Any:
    """arr after Arrow's full check of its layout (every offset and dictionary index), so that
    Arrow's own kernels (take, to_pylist, dictionary_encode) may read it; a string column's
    bytes through a binary view (no copy), so bytes that are not UTF-8 are left to the reader."""
    if _is_str(arr.type):
        validated(_bytes_view(arr), name, full=True)
        return arr
    return validated(arr, name, full=True)


def _column(fields: Any, name: str, where: str) -> int:
    """Index of the one field called name, -1 when none; an error when two share it."""
    found = fields.get_all_field_indices(name)
    if len(found) > 1:
        raise ArrowDataError(f"{len(found)} columns{where} share this name", name)
    return found[0] if found else -1


def duplicate_names(batch: Any) -> None:
    """Raise when two top-level columns share a name (a whole event could not hold both)."""
    seen: set = set()
    for name in batch.schema.names:
        if name in seen:
            raise ArrowDataError("2 or more columns share this name", name)
        seen.add(name)


def _is_list(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _path_exists(t: Any, parts: list[str]) -> bool:
    """Whether the path parts can reach a value in arrays of type t (lists walked into, as
    ops.walk does); an error when two fields of a struct on the path share a part's name."""
    import pyarrow as pa

    for part in parts:
        while _is_list(t):
            t = t.value_type
        if not pa.types.is_struct(t):
            return False
        k = _column(t, part, f" of struct {t}")
        if k < 0:
            return False
        t = t.field(k).type
    return True


def _find(batch: Any, name: str) -> Any:
    """The array of field name, None when absent, or (when the path meets a list column) the
    list of each row's value as ops.walk reaches it (a multi-valued field)."""
    import pyarrow as pa

    from .ops import walk

    idx = _column(batch.schema, name, "")
    if idx >= 0:
        return validated(batch.column(idx), name)
    if "." not in name:
        return None
    parts = name.split(".")
    idx = _column(batch.schema, parts[0], "")
    if idx < 0:
        return None
    arr = validated(batch.column(idx), parts[0])
    for i, part in enumerate(parts[1:], 1):
        if _is_list(arr.type):
            if not _path_exists(arr.type, parts[i:]):
                return None
            return [walk(v, parts[i:]) for v in validated(arr, name, full=True).to_pylist()]
        if not pa.types.is_struct(arr.type):
            return None
        k = _column(arr.type, part, f" of struct {arr.type}")
        if k < 0:
            return None
        # flatten() folds the parent's validity into the children.
        arr = arr.flatten()[k]
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


#: Rows sampled to choose whether a column is dictionary-encoded before the core reads it.
_SAMPLE = 4096


def _few_distinct(arr: Any) -> bool:
    """Whether the column's first rows hold at most one distinct value in four (image paths,
    users, event codes; on real telemetry 5-9% of image paths are distinct). Only for columns
    longer than the sample, so a small batch pays nothing."""
    import pyarrow.compute as pc

    return len(arr) > _SAMPLE and pc.count_distinct(arr.slice(0, _SAMPLE)).as_py() * 4 <= _SAMPLE


def _dictionary(arr: Any, name: str) -> Any:
    """A string column dictionary-encoded when its first rows hold few distinct values (the
    core then walks each distinct value once per call: run_memo), else None. Arrow reads it
    as bytes (a binary view, no copy) after its full check of the offsets: the core takes
    string bytes that are not UTF-8, and hostile offsets must not reach Arrow's kernels."""
    import pyarrow as pa

    if len(arr) <= _SAMPLE:
        return None
    raw = _bytes_view(arr)
    validated(raw.slice(0, _SAMPLE), name, full=True)
    if not _few_distinct(raw):
        return None
    enc = validated(raw, name, full=True).dictionary_encode()
    return pa.DictionaryArray.from_arrays(enc.indices, enc.dictionary.view(arr.type))


def _as_text(arr: Any) -> Any:
    """An integer or boolean column as strings: Arrow writes an integer in decimal and a boolean
    as true/false, the texts a Python int or bool has (ops.scalar_text), so the core reads it
    as a string column with no Python object per row. A column with few distinct values in its
    first rows (event ids, codes) is dictionary-encoded first and only the dictionary is written
    out (about 20x faster than writing every row; the core then reads each distinct value once)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def text(a: Any) -> Any:  # 32-bit offsets unless the text could pass 2 GiB (20 digits and a sign a value)
        return pc.cast(a, pa.string() if len(a) * 21 < 2**31 else pa.large_string())

    if not pa.types.is_boolean(arr.type) and _few_distinct(arr):
        enc = arr.dictionary_encode()
        return pa.DictionaryArray.from_arrays(enc.indices, text(enc.dictionary))
    return text(arr)


def _descriptor(arr: Any, name: str, memo: bool = False) -> Any:
    """The core's descriptor of a column; ``memo``: dictionary-encode a long string column of
    few distinct values first (compiler.Plan.memo_fields: fields whose walks cost more than that)."""
    import pyarrow as pa

    t = arr.type
    validity = _view(arr.buffers()[0]) if arr.null_count else None
    if _is_str(t):
        enc = _dictionary(arr, name) if memo else None
        if enc is not None:
            return _descriptor(enc, name)
        return ("utf8", validity, arr.offset) + _strings(arr)
    if pa.types.is_dictionary(t) and _is_str(t.value_type):
        if pa.types.is_signed_integer(t.index_type) and arr.dictionary.null_count == 0:
            idx = arr.indices
            return ("dict", validity, arr.offset, _view(idx.buffers()[1]), idx.type.bit_width // 8,
                    idx.offset, len(arr.dictionary)) + _strings(arr.dictionary)
        return _descriptor(validated(arr, name, full=True).dictionary_decode(), name)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return _descriptor(_as_text(validated(arr, name, full=True)), name)
    return ("py", validated(arr, name, full=True).to_pylist())


def check_whole(batch: Any) -> None:
    """Check every column before rows are read whole: no shared name, buffers fully valid."""
    duplicate_names(batch)
    for name, col in zip(batch.schema.names, batch.columns):
        validated(col, name, full=True)


def column_descriptors(batch: Any, field_names: tuple[str, ...], strings: int = -1, memo: Any = ()) -> list:
    """The core's descriptor of each field; field ``strings`` (-1: none) holds each row's
    every string value (``ops.string_values``: what Sigma keywords read); the fields in ``memo``
    are dictionary-encoded when their values repeat (``_descriptor``)."""
    from .ops import string_values

    out = []
    for i, name in enumerate(field_names):
        if i == strings:
            check_whole(batch)
            out.append(("py", [list(string_values(row)) for row in batch.to_pylist()]))
            continue
        arr = _find(batch, name)
        out.append(None if arr is None else ("py", arr) if isinstance(arr, list) else _descriptor(arr, name, i in memo))
    return out
