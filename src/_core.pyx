# cython: language_level=3
"""The matching core: one compiled program for one rule or thousands.

``Program(plan)`` turns a :class:`matcher.compiler.Plan` into C tables: per field up to two
automata (forward: equality, prefix, contains; tail: suffix literals, reversed) and the rule
programs. Matching works on *blocks* of up to 1,024 rows (Arrow record batches block by
block; mappings a gathered chunk of 512 at a time), with the GIL released:

- stage 1 runs each probe the compiler marked eager (the tables of trigger predicates) down
  the whole block, one probe at a time, setting a bit per (predicate, row);
- the rows where one of a rule's triggers fired become its candidate mask;
- stage 2 evaluates each candidate rule's program as bitmap operations over its mask; a
  table, glob, regex or comparison a rule needs beyond stage 1 runs only on the rows of the
  mask where it has not run yet (regexes and comparisons call back into Python, with the GIL,
  only past their guards and prefilters).

Files (one extension module; the .pxi are included here): _automaton.pxd/.pxi (the
automaton: struct, build), _fold.pxi (str.lower in C), _glob.pxi, _gather.pxi (values from
mappings), _columns.pxi (Arrow buffers, checked), _state.pxi (the block bitmaps and buffers of
a call), and this file: the Program (tables, rule programs, the walks, stage 1 and stage 2).

Nothing here imports a matcher module: the plan is plain data, and the Python callback for
lazy predicates is handed in.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from _automaton cimport LOWER, AC

import numpy as _np
from operator import itemgetter as _itemgetter

cimport numpy as cnp

cnp.import_array()

cdef extern from "stdlib.h":
    void* aligned_alloc(size_t alignment, size_t size) nogil

cdef enum:
    AC_CHUNK = 256  # one half of a split scan, and the chunk of an unsplit scan

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define MATCHER_PREFETCH(p) __builtin_prefetch((const void*)(p))
    #else
    #define MATCHER_PREFETCH(p) ((void)(p))
    #endif
    /* The key table of a dict (CPython's PyDictObject.ma_keys), only to be prefetched. */
    #define MATCHER_DICT_KEYS(d) ((const void*)((PyDictObject*)(d))->ma_keys)
    """
    void MATCHER_PREFETCH(const void* p) nogil
    int MATCHER_CTZ "__builtin_ctzll"(uint64_t x) nogil
    const void* MATCHER_DICT_KEYS(PyObject* d) nogil

cdef extern from "Python.h":
    # Borrowed-pointer forms of the str and dict calls, for the gathering fast path.
    bint _str_exact "PyUnicode_CheckExact"(PyObject* o)
    bint _str_ascii "PyUnicode_IS_ASCII"(PyObject* o)
    void* _str_data "PyUnicode_DATA"(PyObject* o)
    Py_ssize_t _str_len "PyUnicode_GET_LENGTH"(PyObject* o)
    PyObject* _dict_get "PyDict_GetItemWithError"(PyObject* d, PyObject* k)
    PyObject** PySequence_Fast_ITEMS(object o)
    Py_ssize_t PySequence_Fast_GET_SIZE(object o)
    uint32_t Py_UNICODE_TOLOWER(uint32_t ch) nogil
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_IS_ASCII(object o)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    PyObject* PyDict_GetItemWithError(object d, object k) except? NULL
    bint PyUnicode_Check(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    bint PyList_Check(object o)
    bint PyLong_Check(object o)
    bint PyFloat_Check(object o)
    bint PyBool_Check(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)

#: Tests check this to be sure the compiled core, not a fallback, ran.
CYTHON_CORE = 1

# Predicate kinds and node kinds: mirror matcher/compiler.py (checked by a test).
DEF K_TABLE = 0
DEF K_GLOB = 1
DEF K_PY = 2
DEF K_FREF = 3
DEF N_PRED = 0
DEF N_AND = 1
DEF N_OR = 2
DEF N_NOT = 3
DEF N_ANY = 4
DEF G_ANY = -1
DEF G_ONE = -2
KINDS = (K_TABLE, K_GLOB, K_PY, K_FREF)
NODES = (N_PRED, N_AND, N_OR, N_NOT, N_ANY)
GLOB_TOKENS = (G_ANY, G_ONE)

# Value encodings in a chunk.
DEF V_ASCII = 0   # bytes that are all ASCII (compact ASCII str, or checked UTF-8)
DEF V_UTF8 = 1    # UTF-8 bytes (Arrow)
DEF V_UCS1 = 2    # str data, 1/2/4 bytes per code point
DEF V_UCS2 = 3
DEF V_UCS4 = 4

DEF CHUNK = 512   # rows of mappings gathered (and matched) at a time
DEF BLOCK = 1024  # rows matched at a time (one bit each in a block bitmap)
DEF BW = 16       # words of a block bitmap: BLOCK // 64
# A probe: one of a field's lookup structures (its presence flags, its forward automaton, its tail
# automaton), run at most once per row and only when needed; running it fires all of its
# predicates for the row at once. A probe id is field * NPROBES + P_*.
DEF P_PRESENCE = 0
DEF P_AC = 1      # the field's forward automaton (compiler.P_AUTOMATON)
DEF P_TAIL = 2    # its tail automaton: suffix (and equality) literals, reversed (compiler.P_TAIL)
DEF NPROBES = 3
DEF COL_NONE = 0
DEF COL_UTF8 = 1
DEF COL_DICT = 2


ctypedef struct Val:
    const void* data   # first code unit / byte
    Py_ssize_t n       # number of code units / bytes
    int kind           # V_*
    PyObject* raw      # the str it came from (a reference the chunk owns), or NULL


ctypedef struct Field:
    AC ac[2]           # [probe - P_AC]: forward, tail
    int has_ac[2]
    int32_t exists     # predicate fired when present, or -1
    int32_t not_empty  # predicate fired when some value is not "", or -1


# A column of a record batch, read in place (no Python object per row).
ctypedef struct Col:
    int kind                 # COL_NONE, COL_UTF8 (string/large_string) or COL_DICT
    const uint8_t* validity  # null bitmap of the rows (of the indices for COL_DICT), or NULL
    Py_ssize_t voff          # bit offset of row 0 in validity
    const uint8_t* offsets   # string offsets (of the dictionary for COL_DICT)
    int owidth               # 4 or 8
    Py_ssize_t ooff          # index of row 0 (of dictionary entry 0) in offsets
    const uint8_t* data      # string bytes
    const uint8_t* idx       # COL_DICT: the indices
    int iwidth               # 1, 2, 4 or 8
    Py_ssize_t ioff          # index of row 0 in idx
    Py_ssize_t nstr          # COL_DICT: dictionary entries



include "_automaton.pxi"
include "_glob.pxi"
include "_gather.pxi"
include "_columns.pxi"

cdef class Program

include "_state.pxi"
include "_fold.pxi"



cdef class Program:
    """C tables and rule programs built from a compiler Plan (see matcher/compiler.py)."""

    cdef readonly int npred, nfields, nrules
    cdef Field* fields
    cdef int32_t* pred_field
    cdef uint8_t* pred_kind
    cdef int32_t* fref_field     # [pred]: K_FREF: the other field (Sigma fieldref's value)
    cdef uint8_t* fref_op        # [pred]: K_FREF: 0 equals, 1 contains, 2 startswith, 3 endswith
    cdef int8_t* pred_probe      # table predicates: the probe that fires them
    cdef int32_t* guard_start    # CSR: lazy pred -> table preds one of which must fire first
    cdef int32_t* guard_preds
    cdef int32_t* pgroup_start   # CSR: table pred -> OR-groups it belongs to
    cdef int32_t* pgroup_ids
    cdef int32_t* gprobe_start   # CSR: group -> probes (field * NPROBES + probe) of its members
    cdef int32_t* gprobes
    cdef readonly int ngroups
    cdef int32_t** glob_tok
    cdef int32_t* glob_len
    cdef int32_t* min_len        # lazy preds: a value with fewer characters cannot match
    cdef int32_t* run_len        # regex preds: a match spans this many bytes of run_cls in a row
    cdef uint8_t* run_cls        # [pred * 32]: byte class bitmaps (compiler.regex_run)
    cdef uint8_t* node_kind
    cdef int32_t* node_arg
    cdef int32_t* node_count
    cdef int32_t* kids
    cdef int32_t* rule_root
    cdef int32_t* trig_start
    cdef int32_t* trig_rules
    cdef int32_t* always
    cdef int32_t nalways
    cdef int32_t* eager          # probes run on every row: field * NPROBES + probe
    cdef int32_t neager
    cdef int32_t* gather         # fields gathered up front from mappings (the others lazily)
    cdef int32_t ngather
    cdef readonly tuple field_names
    cdef readonly int strings_field  # the field of every str value of an event (Sigma keywords), -1: none
    cdef PyObject** fname        # the field names (borrowed from field_names, for fast lookups)
    cdef tuple field_dotted      # per field: tuple of path parts when the name has a '.', else None
    cdef object py_eval          # callable(pred id, texts, row) -> bool: K_PY predicates get the
                                 # field's texts and the row's index in the call (for reports)
    cdef object data_error       # callable(message, field name) -> exception: bad column buffers
    cdef list pool

    def __cinit__(self):
        self.fields = NULL
        self.fname = NULL

    def __init__(self, plan, py_eval, data_error=None):
        cdef int i, f
        self.py_eval = py_eval
        self.data_error = data_error if data_error is not None else _field_value_error
        self.pool = []
        self.npred = len(plan.pred_field)
        self.nfields = len(plan.fields)
        self.nrules = len(plan.rule_root)
        self.field_names = tuple(fp.name for fp in plan.fields)
        self.strings_field = plan.strings_field
        self.fname = <PyObject**>malloc(max(self.nfields, 1) * sizeof(PyObject*))
        if not self.fname:
            raise MemoryError()
        for i in range(self.nfields):
            self.fname[i] = <PyObject*>self.field_names[i]
        self.field_dotted = tuple(tuple(n.split(".")) if "." in n else None for n in self.field_names)
        self.fields = <Field*>calloc(max(self.nfields, 1), sizeof(Field))
        self.pred_probe = <int8_t*>malloc(max(self.npred, 1))
        if not (self.fields and self.pred_probe):
            raise MemoryError()
        for i in range(self.npred):  # -1 for lazy predicates
            self.pred_probe[i] = plan.pred_probe[i] % NPROBES if plan.pred_probe[i] >= 0 else -1
        for f, fp in enumerate(plan.fields):
            self.fields[f].exists = fp.exists
            self.fields[f].not_empty = fp.not_empty
            for probe, (reverse, patterns) in plan.automata[f].items():
                ac_build(&self.fields[f].ac[probe - P_AC], patterns)
                self.fields[f].ac[probe - P_AC].reverse = reverse
                self.fields[f].has_ac[probe - P_AC] = 1
        self.pred_field = _i32(plan.pred_field)
        gs, gp = _csr(plan.guards)
        self.guard_start = _i32(gs)
        self.guard_preds = _i32(gp)
        self.ngroups = len(plan.groups)
        by_pred = [[] for _ in range(self.npred)]
        for g, members in enumerate(plan.groups):
            for p in members:
                by_pred[p].append(g)
        gs, gp = _csr(by_pred)
        self.pgroup_start = _i32(gs)
        self.pgroup_ids = _i32(gp)
        gs, gp = _csr(plan.group_probes)
        self.gprobe_start = _i32(gs)
        self.gprobes = _i32(gp)
        self.pred_kind = <uint8_t*>malloc(max(self.npred, 1))
        for i in range(self.npred):
            self.pred_kind[i] = plan.pred_kind[i]
        self.fref_field = <int32_t*>calloc(max(self.npred, 1), sizeof(int32_t))
        self.fref_op = <uint8_t*>calloc(max(self.npred, 1), 1)
        if not (self.fref_field and self.fref_op):
            raise MemoryError()
        for p, (other, code) in plan.fieldrefs.items():
            self.fref_field[p] = other
            self.fref_op[p] = code
        self.glob_tok = <int32_t**>calloc(max(self.npred, 1), sizeof(int32_t*))
        self.glob_len = <int32_t*>calloc(max(self.npred, 1), sizeof(int32_t))
        self.min_len = <int32_t*>calloc(max(self.npred, 1), sizeof(int32_t))
        for p, m in plan.min_len.items():
            self.min_len[p] = m
        self.run_len = <int32_t*>calloc(max(self.npred, 1), sizeof(int32_t))
        self.run_cls = <uint8_t*>calloc(max(self.npred, 1) * 32, 1)
        if not (self.min_len and self.run_len and self.run_cls):
            raise MemoryError()
        for p, (bitmap, k) in plan.runs.items():
            self.run_len[p] = k
            for i in range(32):
                self.run_cls[p * 32 + i] = bitmap[i]
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
        self.eager = _i32(plan.eager)  # the compiler decides what runs up front, and what is gathered
        self.neager = len(plan.eager)
        self.gather = _i32(plan.gather)
        self.ngather = len(plan.gather)

    def __dealloc__(self):
        cdef int f
        if self.fields:
            for f in range(self.nfields):
                for i in range(2):
                    if self.fields[f].has_ac[i]:
                        ac_free(&self.fields[f].ac[i])
            free(self.fields)
        if self.glob_tok:
            for f in range(self.npred):
                free(self.glob_tok[f])
            free(self.glob_tok)
        free(self.glob_len); free(self.min_len); free(self.run_len); free(self.run_cls); free(self.pred_field); free(self.guard_start); free(self.guard_preds)
        free(self.pgroup_start); free(self.pgroup_ids); free(self.gprobe_start); free(self.gprobes)
        free(self.pred_kind); free(self.fref_field); free(self.fref_op)
        free(self.pred_probe); free(self.node_kind); free(self.node_arg); free(self.node_count)
        free(self.kids); free(self.rule_root); free(self.trig_start); free(self.trig_rules)
        free(self.always); free(self.eager); free(self.gather); free(self.fname)

    def stats(self):
        """Sizes of the compiled tables, and which run on every row (for DESIGN.md and tests)."""
        cdef Field* fl
        eager = {self.eager[i] for i in range(self.neager)}
        names = ("presence", "automaton", "tail")
        out = {}
        for f in range(self.nfields):
            fl = &self.fields[f]
            out[self.field_names[f]] = {
                "ac_states": [fl.ac[i].nstates if fl.has_ac[i] else 0 for i in range(2)],
                "ac_bytes": sum(<Py_ssize_t>fl.ac[i].nstates * fl.ac[i].W * 4 if fl.has_ac[i] else 0 for i in range(2)),
                "ac_classes": [fl.ac[i].K if fl.has_ac[i] else 0 for i in range(2)],
                "eager": [names[pk] for pk in range(NPROBES) if f * NPROBES + pk in eager],
            }
        out["_always_rules"] = self.nalways
        return out

    # -- the state pool ----------------------------------------------------------------------
    cdef State acquire(self):
        if self.pool:
            return self.pool.pop()
        return State(self)

    cdef void release(self, State st):
        st.reset()
        if len(self.pool) < 8:
            self.pool.append(st)

    # -- gathering values from Python objects (GIL held) -------------------------------------
    cdef int add_scalar(self, State st, object v) except -1:
        """Append v's text as a Val if v is a scalar (see ops.scalar_text); else nothing."""
        cdef int kind
        if PyUnicode_Check(v):
            if not PyUnicode_CheckExact(v):  # a subclass counts as its str value (ops.scalar_text)
                v = str.__str__(v)
            kind = PyUnicode_KIND(v)
            if PyUnicode_IS_ASCII(v):
                st.add_val(PyUnicode_DATA(v), PyUnicode_GET_LENGTH(v), V_ASCII, <PyObject*>v)
            else:
                st.add_val(PyUnicode_DATA(v), PyUnicode_GET_LENGTH(v),
                           V_UCS1 if kind == 1 else V_UCS2 if kind == 2 else V_UCS4, <PyObject*>v)
            return 0
        if PyBool_Check(v):
            t = _TRUE if v else _FALSE
        elif PyLong_Check(v):
            try:
                t = int.__repr__(v)
            except ValueError:  # over the int/str digit limit: no text, as in the reference
                return 0
        elif PyFloat_Check(v):
            t = float.__repr__(v)
        else:
            return 0
        st.add_val(PyUnicode_DATA(t), PyUnicode_GET_LENGTH(t), V_ASCII, <PyObject*>t)
        return 0

    cdef int add_value(self, State st, object v) except -1:
        """Append the texts of a field's raw value (a scalar, or the scalars of a list)."""
        cdef Py_ssize_t k
        if v is None:
            return 0
        if PyList_Check(v):
            # No Python code runs in this loop (add_scalar calls none), so the list cannot
            # change under it; each element's str is owned by the chunk once added.
            for k in range(PyList_GET_SIZE(v)):
                self.add_scalar(st, <object>PyList_GET_ITEM(v, k))
            return 0
        return self.add_scalar(st, v)

    cdef object lookup(self, object ev, int f):
        cdef PyObject* hit
        if f == self.strings_field:
            return _string_values(ev)
        name = self.field_names[f]
        if PyDict_CheckExact(ev):
            hit = PyDict_GetItemWithError(ev, name)
            if hit != NULL:
                return <object>hit
        else:
            value = ev.get(name, _MISSING)
            if value is not _MISSING:
                return value
        parts = self.field_dotted[f]
        if parts is None:
            return None
        return _walk(ev, parts)

    cdef int prefetch_events(self, object seq, Py_ssize_t start) except -1:
        """Bring the chunk of events from start of seq (an exact list or tuple) into the cache
        (their dicts, key tables and gathered values) in three passes of independent loads, so
        that gather_event then finds them there: a million events' dicts lie far apart in
        memory, and one at a time each step of each lookup waits for memory. Plain dicts only.
        Sizes are read from the object itself (Py_SIZE), never through a __len__."""
        cdef Py_ssize_t i, n = min(<Py_ssize_t>CHUNK, PySequence_Fast_GET_SIZE(seq) - start)
        cdef int g
        cdef PyObject** items = PySequence_Fast_ITEMS(seq)
        cdef PyObject* ev
        cdef PyObject* hit
        for i in range(start, start + n):
            MATCHER_PREFETCH(items[i])
        for i in range(start, start + n):
            if PyDict_CheckExact(<object>items[i]):
                MATCHER_PREFETCH(MATCHER_DICT_KEYS(items[i]))
        for i in range(start, start + n):
            # A lookup may run a key's __eq__, which may change seq: re-read it each time.
            if i >= PySequence_Fast_GET_SIZE(seq):
                break
            ev = PySequence_Fast_ITEMS(seq)[i]
            if not PyDict_CheckExact(<object>ev):
                continue
            Py_INCREF(<object>ev)
            try:
                for g in range(self.ngather):
                    hit = _dict_get(ev, self.fname[self.gather[g]])
                    if hit != NULL:
                        MATCHER_PREFETCH(hit)
                        MATCHER_PREFETCH(<const char*>hit + 64)
                    elif PyErr_Occurred():
                        PyErr_Clear()  # gather_event meets the same error and raises it
            finally:
                Py_DECREF(<object>ev)
        return 0

    cdef int gather_event(self, State st, object ev, int row) except -1:
        """Gather the fields that every row reads; the others are read when needed.

        The chunk owns ev and each gathered str (State.add_row, State.add_val): a lookup may
        run Python code (a key's __eq__, a Mapping's get) that frees earlier rows' values."""
        cdef int f, i, nf = self.nfields
        cdef int32_t start
        cdef PyObject* hit
        cdef bint exact = PyDict_CheckExact(ev)
        if not (exact or isinstance(ev, _Mapping)):
            raise TypeError(f"an event must be a mapping, not {type(ev).__name__}")
        st.add_row(row, ev)
        for f in range(nf):
            st.vcount[row * nf + f] = -1
        for i in range(self.ngather):
            f = self.gather[i]
            start = st.nvals
            st.vstart[row * nf + f] = start
            if exact:  # fast path: a plain dict holding a plain ASCII str
                hit = _dict_get(<PyObject*>ev, self.fname[f])
                if hit != NULL and _str_exact(hit) and _str_ascii(hit):
                    st.add_val(_str_data(hit), _str_len(hit), V_ASCII, hit)
                    st.vcount[row * nf + f] = 1
                    continue
            self.add_value(st, self.lookup(ev, f))
            st.vcount[row * nf + f] = st.nvals - start
        return 0

    # -- matching one row (GIL released) -----------------------------------------------------
    cdef int32_t values(self, State st, int64_t row, int f, const Val** out) except -1 nogil:
        """The values of field f in the row: count, and *out points to the first.

        Gathered rows read a field that was not gathered up front now (taking the GIL). That
        may move st.vals: a caller holds *out only while it reads this one field.
        """
        cdef int32_t i = row * self.nfields + f
        if not st.direct:
            if st.vcount[i] < 0:
                with gil:
                    st.vstart[i] = st.nvals
                    self.add_value(st, self.lookup(<object>st.rowobj[row], f))
                    st.vcount[i] = st.nvals - st.vstart[i]
            out[0] = &st.vals[st.vstart[i]]
            return st.vcount[i]
        out[0] = &st.one[f]
        return col_value(&st.cols[f], st.row0 + row, &st.one[f])

    cdef int ensure_fold(self, State st, int64_t row, int f) except -1 nogil:
        """Fold every value of field f once for this row of the block (the buffered, exact path)."""
        cdef const Val* vs
        cdef int32_t k, cnt
        cdef Py_ssize_t n, i = row * self.nfields + f
        if st.fold_ep[i] == st.epoch:
            return 0
        st.fold_ep[i] = st.epoch
        st.ffirst[i] = st.nfv
        cnt = self.values(st, row, f, &vs)
        for k in range(cnt):
            st.reserve((4 * vs[k].n + 4) if vs[k].kind != V_UTF8 else (2 * vs[k].n + 4))
            n = fold_value(&vs[k], st.buf + st.buf_len)
            if n < 0:
                n = _fold_python(st, &vs[k])
            st.fv_off[st.nfv] = st.buf_len
            st.fv_len[st.nfv] = n
            st.nfv += 1
            st.buf_len += n
        return 0

    cdef int call_py(self, State st, int64_t row, int32_t p, const Val* vs, int32_t cnt) except -1 with gil:
        """The Python callback of a regex or comparison over the field's texts (takes the GIL
        itself: a nogil caller holding Python objects would take it again at its every exit)."""
        cdef int32_t k
        texts = []
        for k in range(cnt):
            if vs[k].raw != NULL:
                texts.append(<object>vs[k].raw)
            else:
                texts.append(PyUnicode_DecodeUTF8(<const char*>vs[k].data, vs[k].n, "replace"))
        return 1 if self.py_eval(p, texts, st.base + row) else 0

    cdef inline void fire(self, State st, int32_t p) noexcept nogil:
        """Predicate p holds in row st.cur: set its bit (and its OR-groups' bits)."""
        cdef int32_t j
        cdef uint64_t bit = (<uint64_t>1) << (st.cur & 63)
        cdef Py_ssize_t w = st.cur >> 6
        cdef uint64_t* pb = &st.pbits[<Py_ssize_t>p * BW + w]
        if pb[0] & bit:
            return
        if not st.ptouched[p]:
            st.ptouched[p] = 1
            st.plist[st.nplist] = p
            st.nplist += 1
        pb[0] |= bit
        if st.logging:  # room was reserved (State.log_reserve)
            st.log[st.nlog] = p
            st.nlog += 1
        if st.defer_groups:
            return  # stage 1: groups_from_preds sets the OR-groups' bits once per block
        for j in range(self.pgroup_start[p], self.pgroup_start[p + 1]):
            st.gbits_of(self.pgroup_ids[j])[w] |= bit

    # The scans below run one probe over one value. With ci (case-insensitive) set they read the
    # raw bytes of a value and lower ASCII on the fly, and return False as soon as they meet a
    # byte >= 0x80: that value must be folded first. ASCII text folds byte for byte whatever
    # surrounds it (only U+03A3 lowers by context), so an all-ASCII window of the raw value
    # equals the same window of its fold. Without ci they read folded bytes and return True.

    cdef inline void ac_report(self, State st, const AC* a, int32_t q) noexcept nogil:
        """Fire the output closure of accepting index q (its own preds and its dictionary chain's)."""
        cdef int32_t j, k = a.key[q]
        if k >= 0 and (st.pbits[<Py_ssize_t>k * BW + (st.cur >> 6)] >> (st.cur & 63)) & 1:
            return  # this closure already fired during this event
        for j in range(a.out_start[q], a.out_start[q + 1]):
            self.fire(st, a.out_preds[j])


    cdef bint scan_anchored_ci(self, State st, const AC* a, const uint8_t* b, Py_ssize_t n) noexcept nogil:
        """scan_ac of an automaton whose literals all start with START, over raw bytes that may
        hold non-ASCII: False at the first byte >= 0x80 on the walk (what fired before it is
        true of the fold too: an ASCII run folds byte for byte, at the same end of the value)."""
        cdef const int32_t* t = a.trans
        cdef const uint16_t* cls = &a.cls_lower[0]
        cdef int32_t sa = a.start, mm = a.match_min, fin
        cdef Py_ssize_t i
        cdef uint8_t c
        for i in range(n):
            c = b[n - 1 - i] if a.reverse else b[i]
            if c >= 0x80:
                return False
            sa = t[sa + cls[c]]
            if sa >= mm:
                self.ac_report(st, a, t[sa])
            elif sa == 0:
                return True
        fin = t[sa + a.col_end]
        if fin >= mm:
            self.ac_report(st, a, t[fin])
        return True

    cdef bint scan_ac(self, State st, const AC* a, const uint8_t* b, Py_ssize_t n,
                      bint ci, bint ascii) noexcept nogil:
        """Every literal of the field: its automaton over START, the value's bytes, END.
        With ci (raw bytes, ASCII lowered on the fly) returns False, firing nothing, if the value
        holds a byte >= 0x80: it must be folded first."""
        cdef const int32_t* t = a.trans
        cdef const uint16_t* cls = &a.cls[0]
        cdef const uint8_t* bb
        cdef int32_t sa = a.start, sb = 0, mm = a.match_min, fin
        cdef int32_t ha[2 * AC_CHUNK + 1]  # chain A may run on past the middle
        cdef int32_t hb[AC_CHUNK + 1]
        cdef Py_ssize_t i, i0, e, mid
        cdef int32_t ma = 0, mb = 0, j
        cdef uint8_t hi = 0
        if ci:
            cls = &a.cls_lower[0]
        if sa >= mm:
            self.ac_report(st, a, t[sa])
        if not a.floating:
            if ci and not ascii:
                return self.scan_anchored_ci(st, a, b, n)
            # Every literal starts with START: the walk ends when it falls back to the root.
            # A reversed automaton (compiler: suffix and equality literals only) reads the
            # value from its last byte.
            if a.reverse:
                i = n - 1
                while i >= 0:
                    sa = t[sa + cls[b[i]]]
                    if sa >= mm:
                        self.ac_report(st, a, t[sa])
                    elif sa == 0:
                        return True
                    i -= 1
            else:
                for i in range(n):
                    sa = t[sa + cls[b[i]]]
                    if sa >= mm:
                        self.ac_report(st, a, t[sa])
                    elif sa == 0:
                        return True
            fin = t[sa + a.col_end]
            if fin >= mm:
                self.ac_report(st, a, t[fin])
            return True
        if ci and not ascii:
            for i in range(n):  # vectorised by the C compiler
                hi |= b[i]
            if hi >= 0x80:
                return False
        if n < 32 or n > 2 * AC_CHUNK:
            i0 = 0
            while i0 < n:
                e = n if n < i0 + AC_CHUNK else i0 + AC_CHUNK
                ma = 0
                for i in range(i0, e):
                    sa = t[sa + cls[b[i]]]
                    ha[ma] = sa
                    ma += sa >= mm
                for j in range(ma):
                    self.ac_report(st, a, t[ha[j]])
                i0 = e
            fin = t[sa + a.col_end]
            if fin >= mm:
                self.ac_report(st, a, t[fin])
            return True
        # Two halves, two independent state chains.
        mid = n >> 1
        bb = b + mid
        for i in range(mid):
            sa = t[sa + cls[b[i]]]
            sb = t[sb + cls[bb[i]]]
            ha[ma] = sa
            ma += sa >= mm
            hb[mb] = sb
            mb += sb >= mm
        if n & 1:
            sb = t[sb + cls[bb[mid]]]
            hb[mb] = sb
            mb += sb >= mm
        # Chain A goes on while its match in progress started before mid (depth > bytes past mid):
        # from then on chain B is in the same state.
        i = mid
        while i < n and t[sa + 1] > i - mid:
            sa = t[sa + cls[b[i]]]
            ha[ma] = sa
            ma += sa >= mm
            i += 1
        fin = t[(sa if i == n else sb) + a.col_end]
        for j in range(ma):
            self.ac_report(st, a, t[ha[j]])
        for j in range(mb):
            self.ac_report(st, a, t[hb[j]])
        if fin >= mm:
            self.ac_report(st, a, t[fin])
        return True

    cdef int run_probe(self, State st, int64_t row, int f, int pk) except -1 nogil:
        """Run one table of field f over the row's values: fire what it finds."""
        cdef Field* fl = &self.fields[f]
        cdef const AC* ac
        cdef const Val* vs
        cdef int32_t k, cnt, fv
        cdef int kind
        st.prbits_of(f * NPROBES + pk)[row >> 6] |= (<uint64_t>1) << (row & 63)
        st.cur = <int>row
        cnt = self.values(st, row, f, &vs)
        if pk == P_PRESENCE:
            if cnt > 0 and fl.exists >= 0:
                self.fire(st, fl.exists)
            if fl.not_empty >= 0:
                for k in range(cnt):
                    if vs[k].n > 0:
                        self.fire(st, fl.not_empty)
                        break
            return 0
        if not fl.has_ac[pk - P_AC]:
            return 0
        ac = &fl.ac[pk - P_AC]
        for k in range(cnt):
            kind = vs[k].kind
            if (kind == V_ASCII or kind == V_UTF8) and self.scan_ac(
                    st, ac, <const uint8_t*>vs[k].data, vs[k].n, True, kind == V_ASCII):
                continue
            self.ensure_fold(st, row, f)
            fv = st.ffirst[row * self.nfields + f] + k
            self.scan_ac(st, ac, st.buf + st.fv_off[fv], st.fv_len[fv], False, False)
        return 0

    cdef inline int ensure_probe(self, State st, int64_t row, int32_t probe) except -1 nogil:
        """Run a probe over one row of the block unless it ran there already."""
        if not (st.prbits[<Py_ssize_t>probe * BW + (row >> 6)] >> (row & 63)) & 1:
            self.run_probe(st, row, probe // NPROBES, probe % NPROBES)
        return 0

    cdef int ensure_probe_mask(self, State st, int32_t probe, const uint64_t* m) except -1 nogil:
        """Run a probe over the rows of mask m where it has not run yet."""
        cdef const uint64_t* done = &st.prbits[<Py_ssize_t>probe * BW]
        cdef int w
        cdef uint64_t x
        for w in range(st.nw):
            x = m[w] & ~done[w]
            while x:
                self.run_probe(st, (w << 6) | MATCHER_CTZ(x), probe // NPROBES, probe % NPROBES)
                x &= x - 1
        return 0

    cdef inline bint has_run(self, int32_t p, const Val* v) noexcept nogil:
        """Whether v holds run_len[p] bytes of class run_cls[p] in a row (always true when the
        regex has no such requirement, or for text stored 2 or 4 bytes per character)."""
        cdef int32_t need = self.run_len[p], run = 0, found = 0
        cdef const uint8_t* cls = self.run_cls + p * 32
        cdef const uint8_t* b = <const uint8_t*>v.data
        cdef Py_ssize_t i, i0 = 0, e
        cdef uint8_t c
        if need == 0 or v.kind == V_UCS2 or v.kind == V_UCS4:
            return True
        # Branch-free: whether a byte is in the class is as random as the text, so a branch
        # on it is mispredicted about every other byte. The run length is reset by a mask.
        while i0 < v.n:
            e = min(i0 + 64, v.n)
            for i in range(i0, e):
                c = b[i]
                run = (run + 1) & -<int32_t>((cls[c >> 3] >> (c & 7)) & 1)
                found |= run >= need
            if found:
                return True
            i0 = e
        return False

    cdef int fieldref(self, State st, int64_t row, int32_t p) except -1 nogil:
        """ops._fieldref: some folded text a of field f and b of the other field with a == b,
        b in a, a.startswith(b) or a.endswith(b) (fref_op), compared as folded UTF-8 bytes
        (UTF-8 keeps substring, prefix and suffix relations between code point sequences)."""
        cdef int32_t f = self.pred_field[p], g = self.fref_field[p], i, j, na, nb
        cdef const Val* vs
        cdef const uint8_t* a
        cdef const uint8_t* b
        cdef Py_ssize_t la, lb
        cdef uint8_t op = self.fref_op[p]
        self.ensure_fold(st, row, f)
        na = self.values(st, row, f, &vs)
        self.ensure_fold(st, row, g)
        nb = self.values(st, row, g, &vs)
        for i in range(na):
            a = st.buf + st.fv_off[st.ffirst[row * self.nfields + f] + i]
            la = st.fv_len[st.ffirst[row * self.nfields + f] + i]
            for j in range(nb):
                b = st.buf + st.fv_off[st.ffirst[row * self.nfields + g] + j]
                lb = st.fv_len[st.ffirst[row * self.nfields + g] + j]
                if op == 0:
                    if la == lb and memcmp(a, b, la) == 0:
                        return 1
                elif lb <= la:
                    if op == 2:
                        if memcmp(a, b, lb) == 0:
                            return 1
                    elif op == 3:
                        if memcmp(a + la - lb, b, lb) == 0:
                            return 1
                    elif _find_bytes(a, la, b, lb):
                        return 1
        return 0

    cdef int eval_lazy(self, State st, int64_t row, int32_t p) except -1 nogil:
        """A lazy predicate on one row of the block (memoised in the lazy bitmaps)."""
        cdef int32_t f = self.pred_field[p], g, j
        cdef int32_t k, cnt
        cdef int result = 0
        cdef bint open_ = self.guard_start[p] == self.guard_start[p + 1]  # no guard: always open
        cdef const Val* vs
        cdef Py_ssize_t w = <Py_ssize_t>p * BW + (row >> 6)
        cdef uint64_t bit = (<uint64_t>1) << (row & 63)
        if st.lzdone[w] & bit:
            return (st.lzval[w] & bit) != 0
        for j in range(self.guard_start[p], self.guard_start[p + 1]):
            g = self.guard_preds[j]
            self.ensure_probe(st, row, self.pred_field[g] * NPROBES + self.pred_probe[g])
            if (st.pbits[<Py_ssize_t>g * BW + (row >> 6)] >> (row & 63)) & 1:
                open_ = True
                break
        if open_ and self.pred_kind[p] == K_FREF:
            result = self.fieldref(st, row, p)
        elif open_ and self.pred_kind[p] == K_GLOB:
            self.ensure_fold(st, row, f)
            cnt = self.values(st, row, f, &vs)
            for k in range(cnt):
                j = st.ffirst[row * self.nfields + f] + k
                if glob_match(self.glob_tok[p], self.glob_len[p], st.buf + st.fv_off[j], st.fv_len[j]):
                    result = 1
                    break
        elif open_:
            cnt = self.values(st, row, f, &vs)
            # A value's length in code units (bytes, for UTF-8) is at least its length in
            # characters: values shorter than the regex's shortest match need no Python.
            for k in range(cnt):
                if vs[k].n >= self.min_len[p] and self.has_run(p, &vs[k]):
                    result = self.call_py(st, row, p, vs, cnt)
                    break
        st.lz_touch(p)
        st.lzdone[w] |= bit
        if result:
            st.lzval[w] |= bit
        return result

    cdef int lazy_mask(self, State st, int32_t p, const uint64_t* m) except -1 nogil:
        """Evaluate lazy predicate p on the rows of mask m where it has not been evaluated."""
        cdef const uint64_t* done = &st.lzdone[<Py_ssize_t>p * BW]
        cdef int w
        cdef uint64_t x
        for w in range(st.nw):
            x = m[w] & ~done[w]
            while x:
                self.eval_lazy(st, (w << 6) | MATCHER_CTZ(x), p)
                x &= x - 1
        return 0

    cdef int eval_mask(self, State st, int32_t node, const uint64_t* m, uint64_t* out) except -1 nogil:
        """Stage 2: out = the rows of mask m where node holds (bitmap operations over the block).

        Tables and lazy predicates a node needs run only on the rows of m where they have not
        run yet, so a rule costs nothing on rows none of its triggers fired on."""
        cdef uint8_t kind = self.node_kind[node]
        cdef int32_t p, k, start, cnt, probe
        cdef int w, nw = st.nw
        cdef uint64_t a[BW]
        cdef uint64_t t[BW]
        cdef uint64_t any_ = 0
        cdef const uint64_t* src
        for w in range(nw):
            any_ |= m[w]
        if not any_:
            memset(out, 0, nw * sizeof(uint64_t))
            return 0
        if kind == N_PRED:
            p = self.node_arg[node]
            if self.pred_kind[p] != K_TABLE:
                self.lazy_mask(st, p, m)
                src = &st.lzval[<Py_ssize_t>p * BW]
            else:
                probe = self.pred_field[p] * NPROBES + self.pred_probe[p]
                self.ensure_probe_mask(st, probe, m)
                src = &st.pbits[<Py_ssize_t>p * BW]
            for w in range(nw):
                out[w] = m[w] & src[w]
            return 0
        start = self.node_arg[node]
        cnt = self.node_count[node]
        if kind == N_ANY:
            for k in range(self.gprobe_start[start], self.gprobe_start[start + 1]):
                self.ensure_probe_mask(st, self.gprobes[k], m)
            src = &st.gbits[<Py_ssize_t>start * BW]
            for w in range(nw):
                out[w] = m[w] & src[w]
            return 0
        if kind == N_AND:
            memcpy(a, m, nw * sizeof(uint64_t))
            for k in range(cnt):
                self.eval_mask(st, self.kids[start + k], a, t)
                any_ = 0
                for w in range(nw):
                    a[w] = t[w]
                    any_ |= t[w]
                if not any_:
                    break
            memcpy(out, a, nw * sizeof(uint64_t))
            return 0
        if kind == N_OR:
            memcpy(a, m, nw * sizeof(uint64_t))  # the rows not yet known to hold
            memset(out, 0, nw * sizeof(uint64_t))
            for k in range(cnt):
                self.eval_mask(st, self.kids[start + k], a, t)
                any_ = 0
                for w in range(nw):
                    out[w] |= t[w]
                    a[w] &= ~t[w]
                    any_ |= a[w]
                if not any_:
                    break
            return 0
        self.eval_mask(st, self.kids[start], m, t)
        for w in range(nw):
            out[w] = m[w] & ~t[w]
        return 0

    cdef int match_block(self, State st, int nrows) except -1 nogil:
        """Match rows 0 .. nrows - 1 of the block (nrows <= BLOCK): stage 1 runs every
        eager probe down the block one probe at a time; the rows where a rule's triggers fired
        become its candidate mask; stage 2 evaluates each candidate rule as bitmap operations
        over that mask. Matches go out in row order, then rule order."""
        cdef int32_t i, j, p, r, probe, nhits = 0
        cdef int w, nw
        cdef int64_t row
        cdef uint64_t full[BW]
        cdef uint64_t res[BW]
        cdef uint64_t hit_rows[BW]
        cdef uint64_t x
        cdef uint64_t* rb
        cdef const uint64_t* pb
        st.clear_block(self)
        nw = st.nw = (nrows + 63) >> 6
        for w in range(nw):
            full[w] = ~(<uint64_t>0)
            hit_rows[w] = 0
        if nrows & 63:
            full[nw - 1] = ((<uint64_t>1) << (nrows & 63)) - 1
        # Stage 1: the tables holding trigger predicates, a probe at a time down the block.
        st.defer_groups = True
        for i in range(self.neager):
            probe = self.eager[i]
            self.run_eager(st, probe, nrows)
        st.defer_groups = False
        self.groups_from_preds(st)
        # Candidates: the rows where one of a rule's triggers fired.
        for i in range(st.nplist):
            p = st.plist[i]
            if self.trig_start[p] == self.trig_start[p + 1]:
                continue
            pb = &st.pbits[<Py_ssize_t>p * BW]
            for j in range(self.trig_start[p], self.trig_start[p + 1]):
                rb = st.rbits_of(self.trig_rules[j])
                for w in range(nw):
                    rb[w] |= pb[w]
        for i in range(self.nalways):
            rb = st.rbits_of(self.always[i])
            memcpy(rb, full, nw * sizeof(uint64_t))
        # Stage 2: each candidate rule over its rows, in rule order.
        for r in range(self.nrules):
            if not st.rtouched[r]:
                continue
            rb = &st.rbits[<Py_ssize_t>r * BW]
            self.eval_mask(st, self.rule_root[r], rb, res)
            x = 0
            for w in range(nw):
                rb[w] = res[w]
                hit_rows[w] |= res[w]
                x |= res[w]
            if x:
                st.hits[nhits] = r
                nhits += 1
        for w in range(nw):
            x = hit_rows[w]
            while x:
                row = (w << 6) | MATCHER_CTZ(x)
                x &= x - 1
                for i in range(nhits):
                    r = st.hits[i]
                    if (st.rbits[<Py_ssize_t>r * BW + w] >> (row & 63)) & 1:
                        st.add_out(st.base + row, r)
        return 0

    cdef void groups_from_preds(self, State st) noexcept nogil:
        """After stage 1: each OR-group's bitmap is the OR of its fired members' bitmaps. A
        predicate fires on many rows of a block (a path's ".exe", a command line's " -"), so one
        pass per fired predicate costs less than setting each group's bit at each firing."""
        cdef Py_ssize_t i, j, w, nw = st.nw
        cdef int32_t p
        cdef uint64_t* gb
        cdef const uint64_t* pb
        for i in range(st.nplist):
            p = st.plist[i]
            pb = &st.pbits[<Py_ssize_t>p * BW]
            for j in range(self.pgroup_start[p], self.pgroup_start[p + 1]):
                gb = st.gbits_of(self.pgroup_ids[j])
                for w in range(nw):
                    gb[w] |= pb[w]

    cdef int run_eager(self, State st, int32_t probe, int nrows) except -1 nogil:
        """Stage 1 for one probe: run it down every row of the block. A forward automaton that
        reads whole values walks four rows at once (run_lanes); the others a row at a time."""
        cdef int64_t row
        cdef int f = probe // NPROBES, pk = probe % NPROBES
        if st.direct and st.cols[f].kind == COL_DICT and pk != P_PRESENCE and self.fields[f].has_ac[pk - P_AC]:
            return self.run_memo(st, probe, nrows)
        if pk == P_AC and self.fields[f].has_ac[0] and self.fields[f].ac[0].floating:
            return self.run_lanes(st, f, &self.fields[f].ac[0], nrows)
        for row in range(nrows):
            self.run_probe(st, row, f, pk)
        return 0

    cdef int run_memo(self, State st, int32_t probe, int nrows) except -1 nogil:
        """Stage 1 for an automaton over a dictionary-encoded column: each dictionary entry is
        walked once per call (the first row holding it), what it fired is logged, and every
        later row with the same index replays the log (the same string fires the same
        predicates). Memory: two int32 per dictionary entry, for this call."""
        cdef int f = probe // NPROBES, pk = probe % NPROBES
        cdef const Col* c = &st.cols[f]
        cdef int64_t row
        cdef Py_ssize_t i, idx, k, start
        cdef int32_t* ms = st.memo_of(probe, c.nstr)
        cdef int32_t* ml = ms + c.nstr
        for row in range(nrows):
            i = c.voff + st.row0 + row
            if c.validity != NULL and not (c.validity[i >> 3] >> (i & 7)) & 1:
                continue  # null: the probe fires nothing
            idx = _load_index(c.idx, c.iwidth, c.ioff + st.row0 + row)
            if ms[idx] < 0:
                st.log_reserve(self.npred)
                start = st.nlog
                st.logging = True
                self.run_probe(st, row, f, pk)
                st.logging = False
                ms[idx] = <int32_t>start
                ml[idx] = <int32_t>(st.nlog - start)
            else:
                st.cur = <int>row
                for k in range(ms[idx], ms[idx] + ml[idx]):
                    self.fire(st, st.log[k])
        for i in range(st.nw):
            st.prbits_of(probe)[i] = ~(<uint64_t>0)
        return 0

    cdef inline int lane_load(self, State st, int f, int* next_row, int nrows, const uint8_t** b,
                              Py_ssize_t* n, Py_ssize_t* pos) except -2 nogil:
        """The next row (from *next_row) whose value a lane can walk: one value, read raw when
        all ASCII (*pos = -1), else folded (*pos: where its folded bytes start in st.buf, which
        a later fold may move: the caller takes *b again from there). Rows before it with no
        value are skipped; rows with several values are matched on their own (run_probe).
        -1 when the block is done."""
        cdef const Val* vs
        cdef int32_t cnt, fv
        cdef int row
        cdef Py_ssize_t i
        cdef uint8_t hi
        while next_row[0] < nrows:
            row = next_row[0]
            next_row[0] = row + 1
            cnt = self.values(st, row, f, &vs)
            if cnt == 0:
                continue
            if cnt == 1 and (vs[0].kind == V_ASCII or vs[0].kind == V_UTF8):
                hi = 0
                if vs[0].kind == V_UTF8:
                    for i in range(vs[0].n):  # vectorised by the C compiler
                        hi |= (<const uint8_t*>vs[0].data)[i]
                if hi < 0x80:
                    b[0] = <const uint8_t*>vs[0].data
                    n[0] = vs[0].n
                    pos[0] = -1
                    return row
            if cnt == 1:
                # Folded bytes: ASCII is lower case already and other bytes are left as they
                # are by the lowering column map, so cls_lower reads them as cls would.
                self.ensure_fold(st, row, f)
                fv = st.ffirst[row * self.nfields + f]
                pos[0] = st.fv_off[fv]
                n[0] = st.fv_len[fv]
                b[0] = st.buf + pos[0]
                return row
            self.run_probe(st, row, f, P_AC)
        return -1

    cdef int run_lanes(self, State st, int f, const AC* a, int nrows) except -1 nogil:
        """The field's forward automaton down the block, four rows at a time: four independent
        state chains in one loop keep four table loads in flight (the walk is bound by the
        latency of loads from a table far larger than the caches). A lane that reaches the end
        of its value takes END, reports its hits and takes the next row."""
        cdef const int32_t* t = a.trans
        cdef const uint16_t* cls = &a.cls_lower[0]
        cdef int32_t mm = a.match_min, s0, s1, s2, s3, fin
        cdef const uint8_t* lb[4]
        cdef Py_ssize_t ln[4]
        cdef int32_t ls[4]
        cdef int lrow[4]
        cdef Py_ssize_t lpos[4]   # a folded value's position in st.buf, or -1 (raw bytes)
        cdef int32_t hits[4][AC_CHUNK]
        cdef int nh[4]
        cdef int k, j, next_row = 0, active = 0, w
        cdef Py_ssize_t i, steps
        cdef const uint8_t* b0
        cdef const uint8_t* b1
        cdef const uint8_t* b2
        cdef const uint8_t* b3
        cdef int n0, n1, n2, n3
        for k in range(4):
            lrow[k] = self.lane_load(st, f, &next_row, nrows, &lb[k], &ln[k], &lpos[k])
            ls[k] = a.start
            nh[k] = 0
        while lrow[0] >= 0 and lrow[1] >= 0 and lrow[2] >= 0 and lrow[3] >= 0:
            steps = AC_CHUNK
            for k in range(4):
                if lpos[k] >= 0:  # a fold since may have moved st.buf
                    lb[k] = st.buf + lpos[k]
                if ln[k] < steps:
                    steps = ln[k]
            s0, s1, s2, s3 = ls[0], ls[1], ls[2], ls[3]
            b0, b1, b2, b3 = lb[0], lb[1], lb[2], lb[3]
            n0, n1, n2, n3 = 0, 0, 0, 0
            for i in range(steps):
                s0 = t[s0 + cls[b0[i]]]
                s1 = t[s1 + cls[b1[i]]]
                s2 = t[s2 + cls[b2[i]]]
                s3 = t[s3 + cls[b3[i]]]
                hits[0][n0] = s0
                n0 += s0 >= mm
                hits[1][n1] = s1
                n1 += s1 >= mm
                hits[2][n2] = s2
                n2 += s2 >= mm
                hits[3][n3] = s3
                n3 += s3 >= mm
            ls[0], ls[1], ls[2], ls[3] = s0, s1, s2, s3
            nh[0], nh[1], nh[2], nh[3] = n0, n1, n2, n3
            for k in range(4):
                lb[k] += steps
                ln[k] -= steps
                if lpos[k] >= 0:
                    lpos[k] += steps
                st.cur = lrow[k]
                for j in range(nh[k]):
                    self.ac_report(st, a, t[hits[k][j]])
                nh[k] = 0
                if ln[k] == 0:
                    fin = t[ls[k] + a.col_end]
                    if fin >= mm:
                        self.ac_report(st, a, t[fin])
                    lrow[k] = self.lane_load(st, f, &next_row, nrows, &lb[k], &ln[k], &lpos[k])
                    ls[k] = a.start
        # Fewer than four rows left: each lane alone.
        for k in range(4):
            if lrow[k] < 0:
                continue
            st.cur = lrow[k]
            s0 = ls[k]
            b0 = <const uint8_t*>st.buf + lpos[k] if lpos[k] >= 0 else lb[k]
            for i in range(ln[k]):
                s0 = t[s0 + cls[b0[i]]]
                if s0 >= mm:
                    self.ac_report(st, a, t[s0])
            fin = t[s0 + a.col_end]
            if fin >= mm:
                self.ac_report(st, a, t[fin])
        # The probe has now run on every row of the block.
        for w in range(st.nw):
            st.prbits_of(f * NPROBES + P_AC)[w] = ~(<uint64_t>0)
        return 0

    cdef int match_rows(self, State st, int64_t nrows, int64_t base) except -1:
        """Match nrows rows block by block with the GIL released (rows of columns read in
        place, or a gathered chunk of at most CHUNK rows)."""
        cdef int64_t b0 = 0
        with nogil:
            while b0 < nrows:
                st.row0 = b0 if st.direct else 0
                st.base = base + b0
                self.match_block(st, <int>min(<int64_t>BLOCK, nrows - b0))
                b0 += BLOCK
        return 0

    # -- Python entry points -----------------------------------------------------------------
    def match_events(self, events):
        """Match an iterable of mappings; return (event indices int64, rule indices int32, count)."""
        cdef State st = self.acquire()
        cdef int row = 0
        cdef int64_t base = 0
        try:
            seq = events if type(events) is list or type(events) is tuple else None  # read ahead
            for ev in events:
                if row == 0 and seq is not None:
                    self.prefetch_events(seq, base)
                self.gather_event(st, ev, row)
                row += 1
                if row == CHUNK:
                    self.match_rows(st, row, base)
                    base += row
                    row = 0
                    st.release_chunk()
            if row:
                self.match_rows(st, row, base)
            rows, rules = _outputs(st)
            return rows, rules, base + row
        finally:
            self.release(st)

    def match_one(self, event):
        """Rule indices (a list of int) matching one mapping."""
        cdef State st = self.acquire()
        cdef Py_ssize_t i
        try:
            self.gather_event(st, event, 0)
            st.row0 = st.base = 0
            self.match_block(st, 1)  # one row: not worth releasing the GIL
            return [st.out_rule[i] for i in range(st.nout)]
        finally:
            self.release(st)

    def match_columns(self, list columns, Py_ssize_t nrows):
        """Match columnar data; return (row indices int64, rule indices int32).

        columns[f] describes field f: None (absent); ("utf8", validity, voff, offsets, owidth,
        ooff, data) or ("dict", validity, voff, indices, iwidth, ioff, dictionary length,
        offsets, owidth, ooff, data) with buffers as uint8 memoryviews (validity may be None),
        read in place with the GIL released; or ("py", list of Python values) for other column
        types, gathered like mapping values. Buffers are never trusted: every offset and index
        the rows use is checked against the buffers' sizes first (a bad one raises
        data_error(message, field name), see Program(data_error=...)).
        """
        cdef State st = self.acquire()
        cdef int f, nf = self.nfields
        cdef Py_ssize_t r0, r, nr
        cdef int32_t start
        cdef bint any_py = False
        columns = list(columns)  # ours: the buffers it holds stay alive until we return
        if len(columns) != nf:
            raise ValueError("one column descriptor per field is needed")
        try:
            for f in range(nf):
                col = columns[f]
                st.cols[f].kind = COL_NONE
                if col is not None and col[0] == "py":
                    any_py = True
                elif col is not None:
                    bad = _set_col(&st.cols[f], col, nrows)
                    if bad is not None:
                        raise self.data_error(bad, self.field_names[f])
            if not any_py:
                st.direct = True
                self.match_rows(st, nrows, 0)
                return _outputs(st)
            # Some column needs Python objects: gather all of them chunk by chunk.
            r0 = 0
            while r0 < nrows:
                nr = min(CHUNK, nrows - r0)
                st.release_chunk()
                for f in range(nf):
                    col = columns[f]
                    for r in range(nr):
                        start = st.nvals
                        if col is None:
                            pass
                        elif col[0] == "py":
                            v = col[1][r0 + r]
                            # exact scalars first: isinstance with an ABC is a Python call per row
                            if PyUnicode_CheckExact(v) or PyLong_CheckExact(v) or PyFloat_CheckExact(v) or \
                                    v is None or not isinstance(v, _Mapping):
                                self.add_value(st, v)
                        elif col_value(&st.cols[f], r0 + r, &st.one[f]):
                            st.add_val(st.one[f].data, st.one[f].n, V_UTF8, NULL)
                        st.vstart[r * nf + f] = start
                        st.vcount[r * nf + f] = st.nvals - start
                self.match_rows(st, nr, r0)
                r0 += nr
            return _outputs(st)
        finally:
            self.release(st)


cdef object _outputs(State st):
    rows = _np.empty(st.nout, dtype=_np.int64)
    rules = _np.empty(st.nout, dtype=_np.int32)
    cdef int64_t[::1] rv = rows
    cdef int32_t[::1] uv = rules
    cdef Py_ssize_t i
    for i in range(st.nout):
        rv[i] = st.out_row[i]
        uv[i] = st.out_rule[i]
    return rows, rules


def _csr(lists):
    """Compressed rows: (start offsets, concatenated items)."""
    start, items = [0], []
    for lst in lists:
        items.extend(lst)
        start.append(len(items))
    return start, items


cdef int32_t* _i32(seq) except NULL:
    cdef Py_ssize_t n = len(seq), i
    cdef int32_t* out = <int32_t*>malloc(max(n, 1) * sizeof(int32_t))
    if not out:
        raise MemoryError()
    for i in range(n):
        out[i] = seq[i]
    return out


from collections.abc import Mapping as _Mapping
