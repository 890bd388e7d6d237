# Globs and byte search (included by _core.pyx).

# ---------------------------------------------------------------------------------------------
# Glob: '*' any run of characters, '?' one character, other tokens literal bytes.
# ---------------------------------------------------------------------------------------------

cdef inline Py_ssize_t charlen(const uint8_t* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    cdef uint8_t c = s[i]
    cdef Py_ssize_t k = 1 if c < 0xC0 else 2 if c < 0xE0 else 3 if c < 0xF0 else 4
    return k if i + k <= n else n - i


cdef bint glob_match(const int32_t* tok, Py_ssize_t m, const uint8_t* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t p = 0, i = 0, star_p = -1, star_i = 0
    while i < n:
        if p < m and tok[p] == G_ANY:
            star_p = p; star_i = i; p += 1
        elif p < m and tok[p] == G_ONE:
            i += charlen(s, i, n); p += 1
        elif p < m and tok[p] >= 0 and tok[p] == s[i]:
            i += 1; p += 1
        elif star_p >= 0:
            star_i += charlen(s, star_i, n)
            i = star_i
            p = star_p + 1
        else:
            return False
    while p < m and tok[p] == G_ANY:
        p += 1
    return p == m


cdef inline bint _find_bytes(const uint8_t* h, Py_ssize_t n, const uint8_t* x, Py_ssize_t m) noexcept nogil:
    """Whether x[:m] occurs in h[:n]."""
    cdef Py_ssize_t i
    if m == 0:
        return True
    for i in range(n - m + 1):
        if h[i] == x[0] and memcmp(h + i, x, m) == 0:
            return True
    return False
