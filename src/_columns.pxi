# Arrow columns read in place (included by _core.pyx): loads from untrusted buffers, one
# row's string, and the checks every column passes before any row is read.

# Loads from foreign (Arrow) buffers go through memcpy: nothing assumes their alignment (a
# plain load on x86-64 once compiled). _load_offset is in _offsets.pxi (matcher._correlate
# reads Arrow string offsets too).
include "_offsets.pxi"


cdef inline Py_ssize_t _load_index(const uint8_t* p, int width, Py_ssize_t i) noexcept nogil:
    cdef int8_t a
    cdef int16_t b
    cdef int32_t c
    cdef int64_t d
    if width == 1:
        memcpy(&a, p + i, 1)
        return a
    if width == 2:
        memcpy(&b, p + 2 * i, 2)
        return b
    if width == 4:
        memcpy(&c, p + 4 * i, 4)
        return c
    memcpy(&d, p + 8 * i, 8)
    return <Py_ssize_t>d


cdef inline int32_t col_value(const Col* c, int64_t row, Val* out) noexcept nogil:
    """Read the row's string from an Arrow column in place: 1 (into *out), or 0 if null/absent."""
    cdef Py_ssize_t i, o0
    if c.kind == COL_NONE:
        return 0
    if c.validity != NULL:
        i = c.voff + row
        if not (c.validity[i >> 3] >> (i & 7)) & 1:
            return 0
    i = row
    if c.kind == COL_DICT:
        i = _load_index(c.idx, c.iwidth, c.ioff + row)
    o0 = _load_offset(c.offsets, c.owidth, c.ooff + i)
    out.data = c.data + o0
    out.n = _load_offset(c.offsets, c.owidth, c.ooff + i + 1) - o0
    out.kind = V_UTF8
    out.raw = NULL
    return 1




cdef Py_ssize_t _bad_offsets(const uint8_t* offsets, Py_ssize_t olen, int owidth, Py_ssize_t ooff,
                             Py_ssize_t n, Py_ssize_t dlen) noexcept nogil:
    """Check n strings' offsets: entries ooff .. ooff + n of offsets (olen bytes) must lie in
    the buffer, start at >= 0, never decrease, and end at <= dlen (the data's bytes).
    Returns -1 when they do, else the first bad entry (relative to ooff)."""
    cdef Py_ssize_t i, prev, cur
    if ooff < 0 or (owidth != 4 and owidth != 8) or (ooff + n + 1) > olen // owidth:
        return 0
    prev = _load_offset(offsets, owidth, ooff)
    if prev < 0:
        return 0
    for i in range(1, n + 1):
        cur = _load_offset(offsets, owidth, ooff + i)
        if cur < prev:
            return i
        prev = cur
    return n if prev > dlen else -1


cdef object _set_col(Col* c, tuple col, Py_ssize_t nrows):
    """Point c at the buffers of a column descriptor (see Program.match_columns), after
    checking every offset and index the scan can read against the buffers' real sizes: one
    pass over the offsets (and indices) of the rows, so a hostile file cannot make the
    scan read out of bounds. Returns None, or a message saying what is wrong."""
    cdef const uint8_t[::1] mv
    cdef const uint8_t[::1] ov
    cdef Py_ssize_t i, bad, k, dlen, nstr = nrows
    kind = col[0]
    c.kind = COL_NONE
    if kind == "utf8":
        _, validity, voff, offsets, owidth, ooff, data = col
    elif kind == "dict":
        _, validity, voff, idx, iwidth, ioff, nstr, offsets, owidth, ooff, data = col
        if iwidth not in (1, 2, 4, 8) or ioff < 0 or (ioff + nrows) > len(idx) // iwidth:
            return f"the dictionary indices buffer ({len(idx)} bytes) is too short for {nrows} rows"
        if nstr < 0:
            return "negative dictionary length"
    else:
        raise ValueError(f"unknown column kind {kind!r}")
    if voff < 0 or (validity is not None and nrows and (voff + nrows + 7) // 8 > len(validity)):
        return f"the validity bitmap ({len(validity)} bytes) is too short for {nrows} rows"
    if validity is None:
        c.validity = NULL
    else:
        mv = validity
        c.validity = &mv[0]
    c.voff = voff
    ov = offsets
    c.offsets = &ov[0]
    c.owidth = owidth
    c.ooff = ooff
    mv = data
    c.data = &mv[0]
    dlen = len(data)
    with nogil:
        bad = _bad_offsets(c.offsets, ov.shape[0], c.owidth, c.ooff, nstr, dlen)
    if bad >= 0:
        what = "dictionary string" if kind == "dict" else "string"
        return (f"{what} offsets out of range at entry {bad} (offsets buffer {ov.shape[0]} bytes "
                f"of {owidth}-byte offsets from entry {ooff}, {nstr} strings, data buffer {dlen} bytes)")
    if kind == "dict":
        mv = idx
        c.idx = &mv[0]
        c.iwidth = iwidth
        c.ioff = ioff
        with nogil:
            bad = -1
            for i in range(nrows):
                k = c.voff + i
                if c.validity != NULL and not (c.validity[k >> 3] >> (k & 7)) & 1:
                    continue  # a null row's index is never read
                k = _load_index(c.idx, c.iwidth, c.ioff + i)
                if k < 0 or k >= nstr:
                    bad = i
                    break
        if bad >= 0:
            return (f"row {bad}: dictionary index {_load_index(c.idx, iwidth, ioff + bad)} "
                    f"out of range (dictionary of {nstr} strings)")
        c.nstr = nstr
        c.kind = COL_DICT
    else:
        c.kind = COL_UTF8
    return None


def _field_value_error(message, name):
    return ValueError(f"field {name!r}: {message}")
