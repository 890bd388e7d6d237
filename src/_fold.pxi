# Folding (included by _core.pyx): exactly Python's str.lower(), to UTF-8, in C; the few
# values it defers go through Python (_fold_python).

# ---------------------------------------------------------------------------------------------
# Folding: exactly Python's str.lower(), to UTF-8 (lone surrogates encoded as surrogatepass).
# str.lower() is the simple lowercase mapping for every code point except U+0130 (two code
# points) and U+03A3 (final sigma depends on context); values holding those two fall back to
# Python. A test compares fold_char with str.lower() over all code points.
# ---------------------------------------------------------------------------------------------

cdef inline Py_ssize_t put_utf8(uint8_t* out, uint32_t cp) noexcept nogil:
    if cp < 0x80:
        out[0] = <uint8_t>cp
        return 1
    if cp < 0x800:
        out[0] = 0xC0 | (cp >> 6)
        out[1] = 0x80 | (cp & 0x3F)
        return 2
    if cp < 0x10000:
        out[0] = 0xE0 | (cp >> 12)
        out[1] = 0x80 | ((cp >> 6) & 0x3F)
        out[2] = 0x80 | (cp & 0x3F)
        return 3
    out[0] = 0xF0 | (cp >> 18)
    out[1] = 0x80 | ((cp >> 12) & 0x3F)
    out[2] = 0x80 | ((cp >> 6) & 0x3F)
    out[3] = 0x80 | (cp & 0x3F)
    return 4


cdef inline uint32_t fold_cp(uint32_t cp) noexcept nogil:
    return Py_UNICODE_TOLOWER(cp)


def fold_char(int cp):
    """The core's fold of one code point, or None where it defers to Python (for tests)."""
    if cp == 0x130 or cp == 0x3A3:
        return None
    return chr(fold_cp(cp))


cdef Py_ssize_t fold_value(const Val* v, uint8_t* out) noexcept nogil:
    """Fold v into out (capacity 4*n+4 bytes). Returns the length, or -1: defer to Python."""
    cdef Py_ssize_t i, n = v.n, o = 0
    cdef const uint8_t* b
    cdef const uint16_t* w
    cdef const uint32_t* d
    cdef uint32_t cp
    cdef uint8_t c
    if v.kind == V_ASCII:
        b = <const uint8_t*>v.data
        for i in range(n):
            out[i] = LOWER[b[i]]
        return n
    if v.kind == V_UCS1:
        b = <const uint8_t*>v.data
        for i in range(n):
            cp = b[i]
            if cp < 0x80:
                out[o] = LOWER[cp]; o += 1
            else:
                o += put_utf8(out + o, fold_cp(cp))
        return o
    if v.kind == V_UCS2:
        w = <const uint16_t*>v.data
        for i in range(n):
            cp = w[i]
            if cp < 0x80:
                out[o] = LOWER[cp]; o += 1
            elif cp == 0x130 or cp == 0x3A3:
                return -1
            else:
                o += put_utf8(out + o, fold_cp(cp))
        return o
    if v.kind == V_UCS4:
        d = <const uint32_t*>v.data
        for i in range(n):
            cp = d[i]
            if cp < 0x80:
                out[o] = LOWER[cp]; o += 1
            elif cp == 0x130 or cp == 0x3A3:
                return -1
            else:
                o += put_utf8(out + o, fold_cp(cp))
        return o
    # UTF-8 bytes.
    b = <const uint8_t*>v.data
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            out[o] = LOWER[c]; o += 1; i += 1
            continue
        if c >= 0xC2 and c < 0xE0 and i + 1 < n:
            cp = ((c & 0x1F) << 6) | (b[i + 1] & 0x3F); i += 2
        elif c >= 0xE0 and c < 0xF0 and i + 2 < n:
            cp = ((c & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F); i += 3
        elif c >= 0xF0 and c < 0xF5 and i + 3 < n:
            cp = ((c & 0x07) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F); i += 4
        else:
            return -1
        if cp == 0x130 or cp == 0x3A3:
            return -1
        o += put_utf8(out + o, fold_cp(cp))
    return o




cdef Py_ssize_t _fold_python(State st, const Val* v) except -1 with gil:
    """str.lower() of a value the C fold defers (U+0130, U+03A3, invalid UTF-8), appended to
    st.buf; its length. A function of its own that takes the GIL: ensure_fold, which calls it
    rarely, then holds no Python object and never takes the GIL on its way out."""
    if v.raw != NULL:
        text = <object>v.raw
    else:
        text = PyUnicode_DecodeUTF8(<const char*>v.data, v.n, "replace")
    folded = str.lower(text).encode("utf-8", "surrogatepass")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(folded)
    st.reserve(n)
    memcpy(st.buf + st.buf_len, PyBytes_AS_STRING(folded), n)
    return n
