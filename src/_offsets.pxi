# One entry of an Arrow offsets buffer (4 or 8 bytes wide), through memcpy: nothing assumes the
# buffer's alignment. Included by _columns.pxi (matcher._core) and _correlate.pyx; both need
# memcpy, int32_t and int64_t cimported.

cdef inline Py_ssize_t _load_offset(const uint8_t* p, int width, Py_ssize_t i) noexcept nogil:
    cdef int32_t a
    cdef int64_t b
    if width == 4:
        memcpy(&a, p + 4 * i, 4)
        return a
    memcpy(&b, p + 8 * i, 8)
    return <Py_ssize_t>b
