# cython: language_level=3
"""The matching core: one compiled program for one rule or thousands.

``Program(plan)`` turns a :class:`matcher.compiler.Plan` into C tables. Matching works on
*chunks* of rows: each row's field values are first gathered as pointers into the events'
own string data (Python ``str`` objects, or Arrow buffers), then the chunk is matched with
the GIL released. Per row and per field that some rule reads, the value is folded once into
a scratch buffer and run through the field's tables: equality, prefix and suffix literals
in hashed tables, contains literals in one Aho-Corasick DFA. Fired predicates give candidate
rules through the trigger index; only candidates are evaluated, and fields that only
candidates need are read on demand. Globs run in C; regexes and numeric comparisons call
back into Python (with the GIL) only when their guard predicate fired.

Nothing here imports a matcher module: the plan is plain data, and the Python callback for
lazy predicates is handed in.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

from _tables cimport FNV_OFFSET, FNV_PRIME, AC, HEntry, HTable, htable_find, slot_of

import numpy as np

cimport numpy as cnp

cnp.import_array()

cdef extern from "Python.h":
    uint32_t Py_UNICODE_TOLOWER(uint32_t ch) nogil
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_IS_ASCII(object o)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    PyObject* PyDict_GetItemWithError(object d, object k) except? NULL
    bint PyUnicode_Check(object o)
    bint PyDict_CheckExact(object o)
    bint PyList_Check(object o)
    bint PyLong_Check(object o)
    bint PyFloat_Check(object o)
    bint PyBool_Check(object o)

#: Tests check this to be sure the compiled core, not a fallback, ran.
CYTHON_CORE = 1

# Predicate kinds and node kinds: mirror matcher/compiler.py (checked by a test).
DEF K_TABLE = 0
DEF K_GLOB = 1
DEF K_PY = 2
DEF N_PRED = 0
DEF N_AND = 1
DEF N_OR = 2
DEF N_NOT = 3
DEF G_ANY = -1
DEF G_ONE = -2
KINDS = (K_TABLE, K_GLOB, K_PY)
NODES = (N_PRED, N_AND, N_OR, N_NOT)
GLOB_TOKENS = (G_ANY, G_ONE)

# Value encodings in a chunk.
DEF V_ASCII = 0   # bytes that are all ASCII (compact ASCII str, or checked UTF-8)
DEF V_UTF8 = 1    # UTF-8 bytes (Arrow)
DEF V_UCS1 = 2    # str data, 1/2/4 bytes per code point
DEF V_UCS2 = 3
DEF V_UCS4 = 4

DEF CHUNK = 512


ctypedef struct Val:
    const void* data   # first code unit / byte
    Py_ssize_t n       # number of code units / bytes
    int kind           # V_*
    PyObject* raw      # the str it came from (borrowed, kept alive by the chunk), or NULL


ctypedef struct Field:
    HTable eq
    HTable prefix
    HTable suffix
    AC ac
    int has_eq, has_prefix, has_suffix, has_ac
    int32_t exists     # predicate fired when present, or -1
    int32_t not_empty  # predicate fired when some value is not "", or -1
    int eager          # read up front (holds trigger predicates)


cdef uint8_t LOWER[256]
for _i in range(256):
    LOWER[_i] = _i + 32 if 65 <= _i <= 90 else _i


# ---------------------------------------------------------------------------------------------
# Table construction (GIL held; plain Python data in, C arrays out)
# ---------------------------------------------------------------------------------------------

cdef uint64_t fnv(const uint8_t* p, Py_ssize_t n, bint reverse) noexcept nogil:
    cdef uint64_t h = FNV_OFFSET
    cdef Py_ssize_t i
    if reverse:
        for i in range(n - 1, -1, -1):
            h = (h ^ p[i]) * FNV_PRIME
    else:
        for i in range(n):
            h = (h ^ p[i]) * FNV_PRIME
    return h


cdef int htable_build(HTable* t, list items, bint reverse) except -1:
    """items: list of (bytes literal, pred id)."""
    cdef Py_ssize_t n = len(items), total = 0, i
    cdef uint32_t size = 8, maxlen = 0, s
    cdef bytes lit
    for lit, _ in items:
        total += len(lit)
        if <uint32_t>len(lit) > maxlen:
            maxlen = len(lit)
    while size < 2 * n + 2:
        size <<= 1
    t.entries = <HEntry*>calloc(n + 1, sizeof(HEntry))
    t.slots = <int32_t*>malloc(size * sizeof(int32_t))
    t.pool = <uint8_t*>malloc(total + 1)
    t.is_len = <uint8_t*>calloc(maxlen + 1, 1)
    if not (t.entries and t.slots and t.pool and t.is_len):
        raise MemoryError()
    memset(t.slots, 0xFF, size * sizeof(int32_t))
    t.mask = size - 1
    t.maxlen = maxlen
    t.nentries = n
    cdef uint32_t off = 0
    for i in range(n):
        lit, pred = items[i]
        memcpy(t.pool + off, PyBytes_AS_STRING(lit), len(lit))
        t.entries[i].hash = fnv(t.pool + off, len(lit), reverse)
        t.entries[i].len = len(lit)
        t.entries[i].off = off
        t.entries[i].pred = pred
        t.is_len[len(lit)] = 1
        off += len(lit)
        s = slot_of(t.entries[i].hash, len(lit), t.mask)
        while t.slots[s] >= 0:
            s = (s + 1) & t.mask
        t.slots[s] = i
    return 0


cdef void htable_free(HTable* t) noexcept:
    free(t.entries); free(t.slots); free(t.pool); free(t.is_len)


cdef int ac_build(AC* a, list patterns) except -1:
    """Aho-Corasick DFA over byte classes. patterns: list of (non-empty bytes, pred id)."""
    cdef int32_t K = 1, c, s, nxt, f, i, j, nstates = 1, cap = 64, qh, qt
    cdef int32_t* go2
    cdef Py_ssize_t total
    cdef int used[256]
    memset(used, 0, sizeof(used))
    cdef bytes lit
    cdef const uint8_t* p
    for lit, _ in patterns:
        p = <const uint8_t*>PyBytes_AS_STRING(lit)
        for i in range(len(lit)):
            used[p[i]] = 1
    for i in range(256):
        if used[i]:
            a.cls[i] = K
            K += 1
        else:
            a.cls[i] = 0
    a.K = K
    cdef int32_t* go = <int32_t*>malloc(cap * K * sizeof(int32_t))
    if not go:
        raise MemoryError()
    memset(go, 0xFF, K * sizeof(int32_t))
    own = {}  # state -> list of preds
    for lit, pred in patterns:
        p = <const uint8_t*>PyBytes_AS_STRING(lit)
        s = 0
        for i in range(len(lit)):
            c = a.cls[p[i]]
            nxt = go[s * K + c]
            if nxt < 0:
                if nstates == cap:
                    cap *= 2
                    go2 = <int32_t*>realloc(go, cap * K * sizeof(int32_t))
                    if not go2:
                        free(go)
                        raise MemoryError()
                    go = go2
                memset(go + nstates * K, 0xFF, K * sizeof(int32_t))
                nxt = nstates
                nstates += 1
                go[s * K + c] = nxt
            s = nxt
        own.setdefault(s, []).append(pred)
    # Breadth-first: failure links, DFA completion, dictionary links.
    cdef int32_t* fail = <int32_t*>calloc(nstates, sizeof(int32_t))
    cdef int32_t* dlink = <int32_t*>malloc(nstates * sizeof(int32_t))
    cdef int32_t* queue = <int32_t*>malloc(nstates * sizeof(int32_t))
    cdef uint8_t* has_own = <uint8_t*>calloc(nstates, 1)
    if not (fail and dlink and queue and has_own):
        free(go); free(fail); free(dlink); free(queue); free(has_own)
        raise MemoryError()
    for s in own:
        has_own[s] = 1
    qh = qt = 0
    dlink[0] = -1
    for c in range(K):
        nxt = go[c]
        if nxt < 0:
            go[c] = 0
        else:
            fail[nxt] = 0
            dlink[nxt] = -1
            queue[qt] = nxt; qt += 1
    while qh < qt:
        s = queue[qh]; qh += 1
        for c in range(K):
            nxt = go[s * K + c]
            f = go[fail[s] * K + c]
            if nxt < 0:
                go[s * K + c] = f
            else:
                fail[nxt] = f
                dlink[nxt] = f if has_own[f] else dlink[f]
                queue[qt] = nxt; qt += 1
    # Renumber: states with outputs (own or inherited) last, so one compare spots them.
    cdef int32_t* newid = <int32_t*>malloc(nstates * sizeof(int32_t))
    cdef int32_t nplain = 0, nacc = 0
    for s in range(nstates):
        if not (has_own[s] or dlink[s] >= 0):
            nplain += 1
    for s in range(nstates):
        if has_own[s] or dlink[s] >= 0:
            newid[s] = nplain + nacc; nacc += 1
        else:
            newid[s] = s - nacc
    a.nstates = nstates
    a.match_min = nplain * K
    a.trans = <int32_t*>malloc(nstates * K * sizeof(int32_t))
    a.out_start = <int32_t*>calloc(nstates, sizeof(int32_t))
    a.out_len = <int32_t*>calloc(nstates, sizeof(int32_t))
    a.dict_link = <int32_t*>malloc(nstates * sizeof(int32_t))
    total = sum(len(v) for v in own.values())
    a.out_preds = <int32_t*>malloc((total + 1) * sizeof(int32_t))
    if not (a.trans and a.out_start and a.out_len and a.dict_link and a.out_preds and newid):
        free(go); free(fail); free(dlink); free(queue); free(has_own); free(newid)
        raise MemoryError()
    for s in range(nstates):
        for c in range(K):
            a.trans[newid[s] * K + c] = newid[go[s * K + c]] * K
        a.dict_link[newid[s]] = newid[dlink[s]] if dlink[s] >= 0 else -1
    j = 0
    for s, preds in own.items():
        a.out_start[newid[s]] = j
        a.out_len[newid[s]] = len(preds)
        for pr in preds:
            a.out_preds[j] = pr; j += 1
    free(go); free(fail); free(dlink); free(queue); free(has_own); free(newid)
    return 0


cdef void ac_free(AC* a) noexcept:
    free(a.trans); free(a.out_start); free(a.out_len); free(a.dict_link); free(a.out_preds)


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


cdef class Program


# ---------------------------------------------------------------------------------------------
# Per-call state: epoch-stamped arrays (no clearing per row), scratch buffers, the chunk.
# One State serves one call at a time; Program keeps a pool of them (guarded by the GIL).
# ---------------------------------------------------------------------------------------------

cdef class State:
    cdef uint32_t epoch
    cdef uint32_t* pred_ep     # pred fired in this row when == epoch
    cdef uint32_t* field_ep    # field processed in this row when == epoch
    cdef uint32_t* rule_ep     # rule already a candidate in this row when == epoch
    cdef uint32_t* lazy_ep     # lazy predicate evaluated in this row when == epoch
    cdef uint8_t* lazy_val     # ... and its value
    cdef int32_t* fired        # predicates fired while reading eager fields, this row
    cdef int32_t nfired
    cdef int32_t* cand         # candidate rules, this row
    cdef int32_t* hits         # matching rules, this row
    cdef int32_t* ffirst       # per field: first folded value in fv_off/fv_len, this row
    cdef int32_t nfv
    cdef Py_ssize_t* fv_off    # folded values of this row: offset in buf
    cdef Py_ssize_t* fv_len    # ... and length
    cdef int32_t fv_cap
    cdef uint8_t* buf          # folded bytes of this row
    cdef Py_ssize_t buf_len, buf_cap
    # The chunk: values of CHUNK rows x nfields.
    cdef int32_t* vstart       # [row * nfields + f]: first value in vals
    cdef int32_t* vcount       # [row * nfields + f]: number of values
    cdef Val* vals
    cdef Py_ssize_t nvals, vals_cap
    cdef list keep             # objects the chunk's Vals point into
    # Output.
    cdef int64_t* out_row
    cdef int32_t* out_rule
    cdef Py_ssize_t nout, out_cap
    cdef int nfields

    def __cinit__(self, Program prog):
        cdef Py_ssize_t P = max(prog.npred, 1), R = max(prog.nrules, 1), F = max(prog.nfields, 1)
        self.nfields = prog.nfields
        self.epoch = 0
        self.pred_ep = <uint32_t*>calloc(P, sizeof(uint32_t))
        self.field_ep = <uint32_t*>calloc(F, sizeof(uint32_t))
        self.rule_ep = <uint32_t*>calloc(R, sizeof(uint32_t))
        self.lazy_ep = <uint32_t*>calloc(P, sizeof(uint32_t))
        self.lazy_val = <uint8_t*>calloc(P, 1)
        self.fired = <int32_t*>malloc(P * sizeof(int32_t))
        self.cand = <int32_t*>malloc(R * sizeof(int32_t))
        self.hits = <int32_t*>malloc(R * sizeof(int32_t))
        self.ffirst = <int32_t*>malloc(F * sizeof(int32_t))
        self.fv_cap = 64
        self.fv_off = <Py_ssize_t*>malloc(self.fv_cap * sizeof(Py_ssize_t))
        self.fv_len = <Py_ssize_t*>malloc(self.fv_cap * sizeof(Py_ssize_t))
        self.buf_cap = 4096
        self.buf = <uint8_t*>malloc(self.buf_cap)
        self.vstart = <int32_t*>malloc(CHUNK * F * sizeof(int32_t))
        self.vcount = <int32_t*>malloc(CHUNK * F * sizeof(int32_t))
        self.vals_cap = CHUNK * F
        self.vals = <Val*>malloc(self.vals_cap * sizeof(Val))
        self.out_cap = 1024
        self.out_row = <int64_t*>malloc(self.out_cap * sizeof(int64_t))
        self.out_rule = <int32_t*>malloc(self.out_cap * sizeof(int32_t))
        self.keep = []
        if not (self.pred_ep and self.field_ep and self.rule_ep and self.lazy_ep and self.lazy_val
                and self.fired and self.cand and self.hits and self.ffirst and self.fv_off
                and self.fv_len and self.buf and self.vstart and self.vcount and self.vals
                and self.out_row and self.out_rule):
            raise MemoryError()

    def __dealloc__(self):
        free(self.pred_ep); free(self.field_ep); free(self.rule_ep); free(self.lazy_ep)
        free(self.lazy_val); free(self.fired); free(self.cand); free(self.hits); free(self.ffirst)
        free(self.fv_off); free(self.fv_len); free(self.buf); free(self.vstart); free(self.vcount)
        free(self.vals); free(self.out_row); free(self.out_rule)

    cdef int next_epoch(self, Program prog) except -1 nogil:
        self.epoch += 1
        if self.epoch == 0:  # wrapped: clear the stamps once every 2**32 rows
            memset(self.pred_ep, 0, max(prog.npred, 1) * sizeof(uint32_t))
            memset(self.field_ep, 0, max(prog.nfields, 1) * sizeof(uint32_t))
            memset(self.rule_ep, 0, max(prog.nrules, 1) * sizeof(uint32_t))
            memset(self.lazy_ep, 0, max(prog.npred, 1) * sizeof(uint32_t))
            self.epoch = 1
        self.nfired = 0
        self.nfv = 0
        self.buf_len = 0
        return 0

    cdef int add_val(self, const void* data, Py_ssize_t n, int kind, PyObject* raw) except -1:
        cdef Val* nv
        if self.nvals == self.vals_cap:
            nv = <Val*>realloc(self.vals, 2 * self.vals_cap * sizeof(Val))
            if not nv:
                raise MemoryError()
            self.vals = nv
            self.vals_cap *= 2
        self.vals[self.nvals].data = data
        self.vals[self.nvals].n = n
        self.vals[self.nvals].kind = kind
        self.vals[self.nvals].raw = raw
        self.nvals += 1
        return 0

    cdef int add_out(self, int64_t row, int32_t rule) except -1 nogil:
        cdef int64_t* r2
        cdef int32_t* u2
        if self.nout == self.out_cap:
            r2 = <int64_t*>realloc(self.out_row, 2 * self.out_cap * sizeof(int64_t))
            if r2:
                self.out_row = r2
            u2 = <int32_t*>realloc(self.out_rule, 2 * self.out_cap * sizeof(int32_t))
            if u2:
                self.out_rule = u2
            if not (r2 and u2):
                with gil:
                    raise MemoryError()
            self.out_cap *= 2
        self.out_row[self.nout] = row
        self.out_rule[self.nout] = rule
        self.nout += 1
        return 0

    cdef int reserve(self, Py_ssize_t extra) except -1 nogil:
        """Room for extra more folded bytes and one more folded value."""
        cdef uint8_t* b2
        cdef Py_ssize_t* o2
        cdef Py_ssize_t* l2
        cdef Py_ssize_t cap
        if self.buf_len + extra > self.buf_cap:
            cap = max(2 * self.buf_cap, self.buf_len + extra)
            b2 = <uint8_t*>realloc(self.buf, cap)
            if not b2:
                with gil:
                    raise MemoryError()
            self.buf = b2
            self.buf_cap = cap
        if self.nfv == self.fv_cap:
            o2 = <Py_ssize_t*>realloc(self.fv_off, 2 * self.fv_cap * sizeof(Py_ssize_t))
            if o2:
                self.fv_off = o2
            l2 = <Py_ssize_t*>realloc(self.fv_len, 2 * self.fv_cap * sizeof(Py_ssize_t))
            if l2:
                self.fv_len = l2
            if not (o2 and l2):
                with gil:
                    raise MemoryError()
            self.fv_cap *= 2
        return 0

    def shrink(self):
        """Give back scratch memory grown by a huge value (called when returned to the pool)."""
        cdef uint8_t* b2
        if self.buf_cap > (1 << 20):
            b2 = <uint8_t*>realloc(self.buf, 4096)
            if b2:
                self.buf = b2
                self.buf_cap = 4096
        self.keep = []


cdef object _TRUE = "true"
cdef object _FALSE = "false"
cdef object _MISSING = object()


cdef class Program:
    """C tables and rule programs built from a compiler Plan (see matcher/compiler.py)."""

    cdef readonly int npred, nfields, nrules
    cdef Field* fields
    cdef int32_t* pred_field
    cdef uint8_t* pred_kind
    cdef int32_t* pred_guard
    cdef int32_t** glob_tok
    cdef int32_t* glob_len
    cdef uint8_t* node_kind
    cdef int32_t* node_arg
    cdef int32_t* node_count
    cdef int32_t* kids
    cdef int32_t* rule_root
    cdef int32_t* trig_start
    cdef int32_t* trig_rules
    cdef int32_t* always
    cdef int32_t nalways
    cdef int32_t* eager
    cdef int32_t neager
    cdef readonly tuple field_names
    cdef tuple field_dotted      # per field: tuple of path parts when the name has a '.', else None
    cdef object py_eval          # callable(pred id, list of str) -> bool, for K_PY predicates
    cdef list pool

    def __cinit__(self):
        self.fields = NULL

    def __init__(self, plan, py_eval):
        cdef int i, j, f
        self.py_eval = py_eval
        self.pool = []
        self.npred = len(plan.pred_field)
        self.nfields = len(plan.fields)
        self.nrules = len(plan.rule_root)
        self.field_names = tuple(fp.name for fp in plan.fields)
        self.field_dotted = tuple(tuple(n.split(".")) if "." in n else None for n in self.field_names)
        self.fields = <Field*>calloc(max(self.nfields, 1), sizeof(Field))
        if not self.fields:
            raise MemoryError()
        for f, fp in enumerate(plan.fields):
            prefix = list(fp.prefix) + [(b"", p) for lit, p in fp.contains if not lit]
            contains = [(lit, p) for lit, p in fp.contains if lit]
            self.fields[f].exists = fp.exists
            self.fields[f].not_empty = fp.not_empty
            self.fields[f].eager = fp.eager
            if fp.eq:
                htable_build(&self.fields[f].eq, list(fp.eq), False)
                self.fields[f].has_eq = 1
            if prefix:
                htable_build(&self.fields[f].prefix, prefix, False)
                self.fields[f].has_prefix = 1
            if fp.suffix:
                htable_build(&self.fields[f].suffix, list(fp.suffix), True)
                self.fields[f].has_suffix = 1
            if contains:
                ac_build(&self.fields[f].ac, contains)
                self.fields[f].has_ac = 1
        self.pred_field = _i32(plan.pred_field)
        self.pred_guard = _i32(plan.pred_guard)
        self.pred_kind = <uint8_t*>malloc(max(self.npred, 1))
        for i in range(self.npred):
            self.pred_kind[i] = plan.pred_kind[i]
        self.glob_tok = <int32_t**>calloc(max(self.npred, 1), sizeof(int32_t*))
        self.glob_len = <int32_t*>calloc(max(self.npred, 1), sizeof(int32_t))
        for p, toks in plan.globs.items():
            self.glob_tok[p] = _i32(toks)
            self.glob_len[p] = len(toks)
        self.node_kind = <uint8_t*>malloc(max(len(plan.node_kind), 1))
        for i in range(len(plan.node_kind)):
            self.node_kind[i] = plan.node_kind[i]
        self.node_arg = _i32(plan.node_arg)
        self.node_count = _i32(plan.node_count)
        self.kids = _i32(plan.kids)
        self.rule_root = _i32(plan.rule_root)
        self.trig_start = _i32(plan.trig_start)
        self.trig_rules = _i32(plan.trig_rules)
        self.always = _i32(plan.always)
        self.nalways = len(plan.always)
        eager = [f for f, fp in enumerate(plan.fields) if fp.eager]
        self.eager = _i32(eager)
        self.neager = len(eager)

    def __dealloc__(self):
        cdef int f
        if self.fields:
            for f in range(self.nfields):
                if self.fields[f].has_eq:
                    htable_free(&self.fields[f].eq)
                if self.fields[f].has_prefix:
                    htable_free(&self.fields[f].prefix)
                if self.fields[f].has_suffix:
                    htable_free(&self.fields[f].suffix)
                if self.fields[f].has_ac:
                    ac_free(&self.fields[f].ac)
            free(self.fields)
        if self.glob_tok:
            for f in range(self.npred):
                free(self.glob_tok[f])
            free(self.glob_tok)
        free(self.glob_len); free(self.pred_field); free(self.pred_guard); free(self.pred_kind)
        free(self.node_kind); free(self.node_arg); free(self.node_count); free(self.kids)
        free(self.rule_root); free(self.trig_start); free(self.trig_rules); free(self.always)
        free(self.eager)

    def stats(self):
        """Sizes of the compiled tables (for DESIGN.md, benchmarks and curiosity)."""
        out = {}
        for f in range(self.nfields):
            fl = &self.fields[f]
            out[self.field_names[f]] = {
                "eq": fl.eq.nentries if fl.has_eq else 0,
                "prefix": fl.prefix.nentries if fl.has_prefix else 0,
                "suffix": fl.suffix.nentries if fl.has_suffix else 0,
                "ac_states": fl.ac.nstates if fl.has_ac else 0,
                "ac_classes": fl.ac.K if fl.has_ac else 0,
                "eager": bool(fl.eager),
            }
        return out

    # -- the state pool ----------------------------------------------------------------------
    cdef State acquire(self):
        if self.pool:
            return self.pool.pop()
        return State(self)

    cdef void release(self, State st):
        st.shrink()
        st.nout = 0
        st.nvals = 0
        if len(self.pool) < 8:
            self.pool.append(st)

    # -- gathering values (GIL held) ---------------------------------------------------------
    cdef int add_scalar(self, State st, object v) except -1:
        """Append v's text as a Val if v is a scalar; return 1 if added, 0 if not a scalar."""
        cdef int kind
        if PyUnicode_Check(v):
            kind = PyUnicode_KIND(v)
            if PyUnicode_IS_ASCII(v):
                st.add_val(PyUnicode_DATA(v), PyUnicode_GET_LENGTH(v), V_ASCII, <PyObject*>v)
            else:
                st.add_val(PyUnicode_DATA(v), PyUnicode_GET_LENGTH(v),
                           V_UCS1 if kind == 1 else V_UCS2 if kind == 2 else V_UCS4, <PyObject*>v)
            return 1
        if PyBool_Check(v):
            t = _TRUE if v else _FALSE
            st.add_val(PyUnicode_DATA(t), PyUnicode_GET_LENGTH(t), V_ASCII, <PyObject*>t)
            return 1
        if PyLong_Check(v):
            try:
                t = int.__repr__(v)
            except ValueError:  # over the int/str digit limit: no text, as in the reference
                return 0
        elif PyFloat_Check(v):
            t = float.__repr__(v)
        else:
            return 0
        st.keep.append(t)
        st.add_val(PyUnicode_DATA(t), PyUnicode_GET_LENGTH(t), V_ASCII, <PyObject*>t)
        return 1

    cdef object lookup(self, object ev, int f):
        cdef PyObject* hit
        name = self.field_names[f]
        if PyDict_CheckExact(ev):
            hit = PyDict_GetItemWithError(ev, name)
            if hit != NULL:
                return <object>hit
            value = _MISSING
        else:
            value = ev.get(name, _MISSING)
            if value is not _MISSING:
                return value
        parts = self.field_dotted[f]
        if parts is None:
            return None
        node = ev
        for part in parts:
            if not isinstance(node, _Mapping):
                return None
            node = node.get(part, _MISSING)
            if node is _MISSING:
                return None
        return node

    cdef int gather_event(self, State st, object ev, int row) except -1:
        cdef int f, nf = self.nfields
        cdef int32_t start
        cdef Py_ssize_t k
        if not (PyDict_CheckExact(ev) or isinstance(ev, _Mapping)):
            raise TypeError(f"an event must be a mapping, not {type(ev).__name__}")
        st.keep.append(ev)
        for f in range(nf):
            start = st.nvals
            v = self.lookup(ev, f)
            if v is None:
                pass
            elif PyList_Check(v):
                st.keep.append(v)
                for k in range(PyList_GET_SIZE(v)):
                    self.add_scalar(st, <object>PyList_GET_ITEM(v, k))
            else:
                self.add_scalar(st, v)
            st.vstart[row * nf + f] = start
            st.vcount[row * nf + f] = st.nvals - start
        return 0

    # -- matching one row (GIL released) -----------------------------------------------------
    cdef int fold_into(self, State st, const Val* v) except -1 nogil:
        """Fold v onto the row's buffer as a new folded value."""
        cdef Py_ssize_t cap = (4 * v.n + 4) if v.kind != V_UTF8 else (2 * v.n + 4)
        cdef Py_ssize_t n
        st.reserve(cap)
        n = fold_value(v, st.buf + st.buf_len)
        if n < 0:
            with gil:
                if v.raw != NULL:
                    text = <object>v.raw
                else:
                    text = PyUnicode_DecodeUTF8(<const char*>v.data, v.n, "replace")
                folded = text.lower().encode("utf-8", "surrogatepass")
                n = PyBytes_GET_SIZE(folded)
                st.reserve(n)
                memcpy(st.buf + st.buf_len, PyBytes_AS_STRING(folded), n)
        st.fv_off[st.nfv] = st.buf_len
        st.fv_len[st.nfv] = n
        st.nfv += 1
        st.buf_len += n
        return 0

    cdef inline void fire(self, State st, int32_t p) noexcept nogil:
        if st.pred_ep[p] != st.epoch:
            st.pred_ep[p] = st.epoch
            st.fired[st.nfired] = p
            st.nfired += 1

    cdef int process_field(self, State st, int row, int f) except -1 nogil:
        """Read field f of the row: fold each value once and run it through every table."""
        cdef Field* fl = &self.fields[f]
        cdef int32_t start = st.vstart[row * self.nfields + f]
        cdef int32_t cnt = st.vcount[row * self.nfields + f]
        cdef int32_t k, p, s, j
        cdef Py_ssize_t n, i, lim
        cdef const uint8_t* b
        cdef uint64_t h
        cdef const int32_t* trans
        cdef const uint8_t* cls
        cdef int32_t match_min, K, st_idx
        st.field_ep[f] = st.epoch
        st.ffirst[f] = st.nfv
        if cnt > 0 and fl.exists >= 0:
            self.fire(st, fl.exists)
        for k in range(cnt):
            self.fold_into(st, &st.vals[start + k])
            b = st.buf + st.fv_off[st.nfv - 1]
            n = st.fv_len[st.nfv - 1]
            if n > 0 and fl.not_empty >= 0:
                self.fire(st, fl.not_empty)
            if fl.has_eq and <uint64_t>n <= fl.eq.maxlen and fl.eq.is_len[n]:
                p = htable_find(&fl.eq, fnv(b, n, False), n, b)
                if p >= 0:
                    self.fire(st, p)
            if fl.has_prefix:
                lim = n if <uint64_t>n < fl.prefix.maxlen else fl.prefix.maxlen
                h = FNV_OFFSET
                if fl.prefix.is_len[0]:
                    p = htable_find(&fl.prefix, h, 0, b)
                    if p >= 0:
                        self.fire(st, p)
                for i in range(lim):
                    h = (h ^ b[i]) * FNV_PRIME
                    if fl.prefix.is_len[i + 1]:
                        p = htable_find(&fl.prefix, h, i + 1, b)
                        if p >= 0:
                            self.fire(st, p)
            if fl.has_suffix:
                lim = n if <uint64_t>n < fl.suffix.maxlen else fl.suffix.maxlen
                h = FNV_OFFSET
                if fl.suffix.is_len[0]:
                    p = htable_find(&fl.suffix, h, 0, b + n)
                    if p >= 0:
                        self.fire(st, p)
                for i in range(lim):
                    h = (h ^ b[n - 1 - i]) * FNV_PRIME
                    if fl.suffix.is_len[i + 1]:
                        p = htable_find(&fl.suffix, h, i + 1, b + n - 1 - i)
                        if p >= 0:
                            self.fire(st, p)
            if fl.has_ac:
                trans = fl.ac.trans
                cls = fl.ac.cls
                match_min = fl.ac.match_min
                K = fl.ac.K
                s = 0
                for i in range(n):
                    s = trans[s + cls[b[i]]]
                    if s >= match_min:
                        st_idx = s // K
                        while st_idx >= 0:
                            for j in range(fl.ac.out_len[st_idx]):
                                self.fire(st, fl.ac.out_preds[fl.ac.out_start[st_idx] + j])
                            st_idx = fl.ac.dict_link[st_idx]
        return 0

    cdef int eval_lazy(self, State st, int row, int32_t p) except -1 nogil:
        cdef int32_t f = self.pred_field[p]
        cdef int32_t k, start, cnt
        cdef int result = 0
        cdef const Val* v
        if st.lazy_ep[p] == st.epoch:
            return st.lazy_val[p]
        if st.pred_ep[self.pred_guard[p]] == st.epoch:
            if self.pred_kind[p] == K_GLOB:
                for k in range(st.vcount[row * self.nfields + f]):
                    if glob_match(self.glob_tok[p], self.glob_len[p],
                                  st.buf + st.fv_off[st.ffirst[f] + k], st.fv_len[st.ffirst[f] + k]):
                        result = 1
                        break
            else:
                start = st.vstart[row * self.nfields + f]
                cnt = st.vcount[row * self.nfields + f]
                with gil:
                    texts = []
                    for k in range(cnt):
                        v = &st.vals[start + k]
                        if v.raw != NULL:
                            texts.append(<object>v.raw)
                        else:
                            texts.append(PyUnicode_DecodeUTF8(<const char*>v.data, v.n, "replace"))
                    result = 1 if self.py_eval(p, texts) else 0
        st.lazy_ep[p] = st.epoch
        st.lazy_val[p] = result
        return result

    cdef int eval_node(self, State st, int row, int32_t node) except -1 nogil:
        cdef uint8_t kind = self.node_kind[node]
        cdef int32_t p, k, start, cnt
        cdef int r
        if kind == N_PRED:
            p = self.node_arg[node]
            if st.field_ep[self.pred_field[p]] != st.epoch:
                self.process_field(st, row, self.pred_field[p])
            if self.pred_kind[p] == K_TABLE:
                return st.pred_ep[p] == st.epoch
            return self.eval_lazy(st, row, p)
        start = self.node_arg[node]
        cnt = self.node_count[node]
        if kind == N_AND:
            for k in range(cnt):
                r = self.eval_node(st, row, self.kids[start + k])
                if r == 0:
                    return 0
            return 1
        if kind == N_OR:
            for k in range(cnt):
                r = self.eval_node(st, row, self.kids[start + k])
                if r == 1:
                    return 1
            return 0
        r = self.eval_node(st, row, self.kids[start])
        return 1 - r

    cdef int match_row(self, State st, int row, int64_t out_index) except -1 nogil:
        cdef int32_t i, j, p, r, ncand = 0, nhits = 0, t
        cdef int32_t k
        st.next_epoch(self)
        for i in range(self.neager):
            self.process_field(st, row, self.eager[i])
        for i in range(st.nfired):
            p = st.fired[i]
            for j in range(self.trig_start[p], self.trig_start[p + 1]):
                r = self.trig_rules[j]
                if st.rule_ep[r] != st.epoch:
                    st.rule_ep[r] = st.epoch
                    st.cand[ncand] = r
                    ncand += 1
        for i in range(self.nalways):
            r = self.always[i]
            if st.rule_ep[r] != st.epoch:
                st.rule_ep[r] = st.epoch
                st.cand[ncand] = r
                ncand += 1
        for i in range(ncand):
            r = st.cand[i]
            if self.eval_node(st, row, self.rule_root[r]):
                # Insertion into hits, kept in rule order.
                k = nhits
                while k > 0 and st.hits[k - 1] > r:
                    st.hits[k] = st.hits[k - 1]
                    k -= 1
                st.hits[k] = r
                nhits += 1
        for i in range(nhits):
            st.add_out(out_index, st.hits[i])
        return 0

    cdef int match_chunk(self, State st, int nrows, int64_t base) except -1:
        cdef int row
        with nogil:
            for row in range(nrows):
                self.match_row(st, row, base + row)
        return 0

    # -- Python entry points -----------------------------------------------------------------
    def match_events(self, events):
        """Match an iterable of mappings; return (event indices int64, rule indices int32, count)."""
        cdef State st = self.acquire()
        cdef int row = 0
        cdef int64_t base = 0
        try:
            st.nout = 0
            st.nvals = 0
            for ev in events:
                self.gather_event(st, ev, row)
                row += 1
                if row == CHUNK:
                    self.match_chunk(st, row, base)
                    base += row
                    row = 0
                    st.nvals = 0
                    st.keep = []
            if row:
                self.match_chunk(st, row, base)
            rows, rules = _outputs(st)
            return rows, rules, base + row
        finally:
            self.release(st)

    def match_one(self, event):
        """Rule indices (a list of int) matching one mapping."""
        cdef State st = self.acquire()
        cdef Py_ssize_t i
        try:
            st.nout = 0
            st.nvals = 0
            self.gather_event(st, event, 0)
            self.match_row(st, 0, 0)  # one row: not worth releasing the GIL
            return [st.out_rule[i] for i in range(st.nout)]
        finally:
            self.release(st)

    def match_columns(self, list columns, Py_ssize_t nrows):
        """Match columnar data. columns[f] is None (field absent), or a tuple
        ("utf8", validity, offsets, offset_width, data, array_offset) built from Arrow buffers
        (validity may be None), or ("py", list of Python values) for other column types.
        Returns (row indices int64, rule indices int32)."""
        cdef State st = self.acquire()
        cdef Py_ssize_t r0, r, nr
        cdef int f, nf = self.nfields
        cdef int32_t start
        cdef const uint8_t[::1] validity
        cdef const uint8_t[::1] offsets
        cdef const uint8_t[::1] data
        cdef Py_ssize_t aoff, i, o0, o1
        cdef int width
        cdef bint has_validity
        cdef list kinds = []
        if len(columns) != nf:
            raise ValueError("one column descriptor per field is needed")
        try:
            st.nout = 0
            r0 = 0
            while r0 < nrows:
                nr = min(CHUNK, nrows - r0)
                st.nvals = 0
                st.keep = []
                for f in range(nf):
                    col = columns[f]
                    if col is None:
                        for r in range(nr):
                            st.vstart[r * nf + f] = 0
                            st.vcount[r * nf + f] = 0
                    elif col[0] == "py":
                        values = col[1]
                        for r in range(nr):
                            start = st.nvals
                            v = values[r0 + r]
                            if v is None:
                                pass
                            elif PyList_Check(v):
                                st.keep.append(v)
                                for i in range(PyList_GET_SIZE(v)):
                                    self.add_scalar(st, <object>PyList_GET_ITEM(v, i))
                            elif not isinstance(v, _Mapping):
                                self.add_scalar(st, v)
                            st.vstart[r * nf + f] = start
                            st.vcount[r * nf + f] = st.nvals - start
                    else:
                        _, vbuf, obuf, width, dbuf, aoff = col
                        has_validity = vbuf is not None
                        if has_validity:
                            validity = vbuf
                        offsets = obuf
                        data = dbuf if len(dbuf) else b"\0"
                        for r in range(nr):
                            i = aoff + r0 + r
                            start = st.nvals
                            if not has_validity or (validity[i >> 3] >> (i & 7)) & 1:
                                if width == 4:
                                    o0 = (<const int32_t*>&offsets[0])[i]
                                    o1 = (<const int32_t*>&offsets[0])[i + 1]
                                else:
                                    o0 = (<const int64_t*>&offsets[0])[i]
                                    o1 = (<const int64_t*>&offsets[0])[i + 1]
                                st.add_val(&data[0] + o0, o1 - o0, V_UTF8, NULL)
                            st.vstart[r * nf + f] = start
                            st.vcount[r * nf + f] = st.nvals - start
                self.match_chunk(st, <int>nr, r0)
                r0 += nr
            return _outputs(st)
        finally:
            self.release(st)


cdef object _outputs(State st):
    rows = np.empty(st.nout, dtype=np.int64)
    rules = np.empty(st.nout, dtype=np.int32)
    cdef int64_t[::1] rv = rows
    cdef int32_t[::1] uv = rules
    cdef Py_ssize_t i
    for i in range(st.nout):
        rv[i] = st.out_row[i]
        uv[i] = st.out_rule[i]
    return rows, rules


cdef int32_t* _i32(seq) except NULL:
    cdef Py_ssize_t n = len(seq), i
    cdef int32_t* out = <int32_t*>malloc(max(n, 1) * sizeof(int32_t))
    if not out:
        raise MemoryError()
    for i in range(n):
        out[i] = seq[i]
    return out


from collections.abc import Mapping as _Mapping
