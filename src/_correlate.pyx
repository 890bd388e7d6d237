# cython: language_level=3
"""The correlation engine's windows, compiled (``matcher/correlation/engine.py`` drives it).

Per correlation, live groups are C structs in one array (interned: group key -> group id
through one dict), chained in a doubly linked list ordered by last update (the oldest first:
expired groups leave from the front, the ``max_groups`` cap evicts there). A group's window is
a buffer of ``Entry`` (time in ms, stream index, payload: rule bitmask, value id or a double),
oldest first; a window of one entry lives inside the group struct (no allocation). Counts the
condition reads (ranks present for ``temporal*``, distinct values for ``value_count``) are kept
up to date as entries come and leave.

Python objects are touched per event only to read its time and group (one dict lookup each,
ISO 8601 times parsed in C) and to intern the group key; alerts, problems and unusual values
(dotted paths, non-str group values, non-ISO times) go through the same Python helpers as the
reference correlator (``matcher/correlation/values.py``), so the meaning is shared.
"""

from cpython.dict cimport PyDict_CheckExact, PyDict_SetItem, PyDict_DelItem
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_CheckExact
from cpython.long cimport PyLong_CheckExact
from cpython.float cimport PyFloat_CheckExact, PyFloat_AS_DOUBLE
from libc.stdlib cimport malloc, calloc, realloc, free, qsort
from libc.string cimport memcpy, memcmp, memmove
from libc.stdint cimport int64_t, int32_t, uint64_t, uint8_t, INT64_MIN
from libc.math cimport floor, isfinite

import heapq
from math import fsum

import numpy as np

#: arrow_times_ms: a row whose time the C reader leaves to Python (null, or another form)
MISSING_MS = INT64_MIN

cdef extern from "Python.h":
    PyObject** PySequence_Fast_ITEMS(object o)
    int PyUnicode_IS_COMPACT_ASCII(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    long long PyLong_AsLongLongAndOverflow(object, int*) except? -1
    # declared here without Cython's error check: dict_get clears the error itself
    PyObject* PyDict_GetItemWithError(PyObject* d, PyObject* key)
    PyObject* PyErr_Occurred()
    void PyObject_GC_UnTrack(object)
    void PyErr_Clear()
    Py_hash_t PyObject_Hash(object) except -1
    int PyObject_RichCompareBool(object, object, int) except -1
    int Py_EQ

# correlation types
cdef enum:
    T_COUNT = 0
    T_DISTINCT = 1
    T_TEMPORAL = 2
    T_ORDERED = 3
    T_SUM = 4
    T_AVG = 5
    T_MIN = 6
    T_MAX = 7
    T_PCT = 8

# condition operators
cdef enum:
    OP_GT = 0
    OP_GE = 1
    OP_LT = 2
    OP_LE = 3
    OP_EQ = 4
    OP_NE = 5

_TYPES = {"event_count": T_COUNT, "value_count": T_DISTINCT, "temporal": T_TEMPORAL, "temporal_ordered": T_ORDERED,
          "value_sum": T_SUM, "value_avg": T_AVG, "value_min": T_MIN, "value_max": T_MAX,
          "value_percentile": T_PCT, "value_median": T_PCT}
_OPS = {"gt": OP_GT, "gte": OP_GE, "lt": OP_LT, "lte": OP_LE, "eq": OP_EQ, "ne": OP_NE, "neq": OP_NE}

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define MATCHER_PREFETCH(p) __builtin_prefetch((const void*)(p))
    #else
    #define MATCHER_PREFETCH(p) ((void)(p))
    #endif
    /* The key table of a dict (CPython's PyDictObject.ma_keys), only to be prefetched. */
    #define MATCHER_DICT_KEYS(d) ((const void*)((PyDictObject*)(d))->ma_keys)
    static inline int matcher_ctz64(unsigned long long m) { return __builtin_ctzll(m); }
    """
    int matcher_ctz64(unsigned long long m) nogil
    void MATCHER_PREFETCH(const void* p) nogil
    const void* MATCHER_DICT_KEYS(PyObject* d) nogil

cdef inline PyObject* dict_get(object d, object key) noexcept:
    """``PyDict_GetItem`` without its saving and restoring of the error state on every call (6% of
    the engine's instructions): an error in the lookup (a key whose ``__eq__`` raises) is dropped
    and the key is absent, as ``PyDict_GetItem`` has it."""
    cdef PyObject* v = PyDict_GetItemWithError(<PyObject*>d, <PyObject*>key)
    if v == NULL and PyErr_Occurred() != NULL:
        PyErr_Clear()
    return v


cdef inline int ctz(uint64_t m) noexcept nogil:
    return matcher_ctz64(m)


cdef struct Entry:
    int64_t t
    int64_t idx
    int64_t p  # rule bitmask (temporal*), value id (value_count), double bits (value_*)

cdef struct Group:
    int64_t newest
    Py_hash_t hash   # of its key (the key table's probe start)
    int64_t qpos     # position of its latest entry in the update queue; -1: not live
    int32_t next     # the free list
    int32_t head     # entries are buf[head:head + n]
    int32_t n
    int32_t cap      # 0: the window is `one`
    int32_t distinct  # value_count: distinct values; temporal*: ranks with an entry
    Entry* buf
    int64_t* counts  # temporal*: per-rank entry counts
    Entry one

ctypedef union DBits:
    double d
    int64_t i


cdef inline Entry* entries(Group* g) noexcept nogil:
    return g.buf if g.cap else &g.one


cdef inline int popcount(uint64_t m) noexcept nogil:
    cdef int c = 0
    while m:
        m &= m - 1
        c += 1
    return c


cdef int cmp_double(const void* a, const void* b) noexcept nogil:
    cdef double x = (<double*>a)[0], y = (<double*>b)[0]
    return (x > y) - (x < y)


cdef class CorrState:
    """One correlation's compiled form and its live groups."""
    cdef public object c
    cdef int type
    cdef int64_t span
    cdef int nrules
    cdef int nfields
    cdef double pct
    cdef int nterms
    cdef int ops[8]
    cdef double limits[8]
    cdef object cond  # Correlation.holds when more than 8 terms
    cdef list fields_by_rank   # rank -> tuple of event fields of the group-by names
    cdef list value_by_rank    # rank -> tuple (value_count) / str (value_*) / None
    cdef public list parents   # (parent correlation index, rank in its rules)
    # groups
    cdef Group* groups
    cdef int32_t alloc
    cdef int32_t used
    cdef int32_t free_head
    cdef int32_t* q            # update queue: group ids in order of update (ring buffer)
    cdef int64_t qhead
    cdef int64_t qtail
    cdef int64_t qcap
    cdef public int64_t live
    cdef int32_t* slots        # group key -> group id: open addressing, linear probing, -1 empty
    cdef int64_t smask         # slots - 1 (a power of two); at most half the slots are used
    cdef int64_t sused
    cdef list gkeys            # group id -> group key (an exact str, None, or a tuple of them)
    # value_count: values interned to ids, counted per (group, value)
    cdef dict vids
    cdef list vobjs
    cdef int32_t* vrefs
    cdef int32_t valloc
    cdef list vfree
    cdef dict pairs

    def __cinit__(self):
        self.groups = NULL
        self.vrefs = NULL
        self.q = NULL
        self.slots = NULL

    def __init__(self, c):
        self.c = c
        self.type = _TYPES[c.type]
        self.span = c.timespan
        self.nrules = len(c.rules)
        self.nfields = len(c.group_by)
        self.pct = 50.0 if c.type == "value_median" else c.percentile
        self.nterms = len(c.condition)
        self.cond = c.holds
        for i, (op, n) in enumerate(c.condition[:8]):
            self.ops[i] = _OPS[op]
            self.limits[i] = n
        self.fields_by_rank = [c.group_fields(ref) for ref in c.rules]
        if c.type == "value_count":
            self.value_by_rank = [tuple(c.aliases.get(f, {}).get(ref, f) for f in c.field) for ref in c.rules]
        elif c.field:
            self.value_by_rank = [c.aliases.get(c.field[0], {}).get(ref, c.field[0]) for ref in c.rules]
        else:
            self.value_by_rank = [None] * len(c.rules)
        self.parents = []
        self.alloc = 0
        self.used = 0
        self.free_head = -1
        self.qhead = 0
        self.qtail = 0
        self.qcap = 0
        self.live = 0
        self.smask = -1
        self.sused = 0
        self.gkeys = []
        self.vids = {}
        self.vobjs = []
        self.valloc = 0
        self.vfree = []
        self.pairs = {}

    def __dealloc__(self):
        cdef int32_t i
        if self.groups != NULL:
            for i in range(self.used):
                if self.groups[i].cap:
                    free(self.groups[i].buf)
                free(self.groups[i].counts)
            free(self.groups)
        free(self.vrefs)
        free(self.q)
        free(self.slots)

    # -- groups -------------------------------------------------------------------------------
    # -- the key table ------------------------------------------------------------------------
    # Keys are exact str, None or tuples of them (key_of makes them so): comparing two runs no
    # Python code, and str hashes are SipHash (a stream cannot choose colliding keys).
    cdef int32_t find(self, object key, Py_hash_t h) except -2:
        """The live group of ``key`` (hash ``h``), or -1."""
        cdef uint64_t i
        cdef int32_t gid
        cdef int r
        if self.sused == 0:
            return -1
        i = <uint64_t>h & <uint64_t>self.smask
        while True:
            gid = self.slots[i]
            if gid < 0:
                return -1
            if self.groups[gid].hash == h:
                r = PyObject_RichCompareBool(<object>PyList_GET_ITEM(self.gkeys, gid), key, Py_EQ)
                if r < 0:
                    return -2
                if r:
                    return gid
            i = (i + 1) & <uint64_t>self.smask

    cdef int slot_reserve(self) except -1:
        """Room for one more key (the table stays at most half full); the only step that can
        fail (MemoryError), so new_group takes it before it takes a group id."""
        cdef int64_t n, old, k
        cdef int32_t* ns
        cdef int32_t* os
        cdef uint64_t i
        if (self.sused + 1) * 2 > self.smask + 1:
            old = self.smask + 1
            n = old * 2 if old else 64
            ns = <int32_t*>malloc(n * sizeof(int32_t))
            if ns == NULL:
                raise MemoryError()
            for k in range(n):
                ns[k] = -1
            os = self.slots
            self.slots = ns
            self.smask = n - 1
            for k in range(old):
                if os[k] >= 0:
                    i = <uint64_t>self.groups[os[k]].hash & <uint64_t>self.smask
                    while ns[i] >= 0:
                        i = (i + 1) & <uint64_t>self.smask
                    ns[i] = os[k]
            free(os)
        return 0

    cdef void slot_insert(self, int32_t gid) noexcept:
        """Place ``gid`` (after slot_reserve)."""
        cdef uint64_t i = <uint64_t>self.groups[gid].hash & <uint64_t>self.smask
        while self.slots[i] >= 0:
            i = (i + 1) & <uint64_t>self.smask
        self.slots[i] = gid
        self.sused += 1

    cdef void slot_delete(self, int32_t gid) noexcept:
        """Remove ``gid`` and shift the probe chain behind it back (no tombstones)."""
        cdef uint64_t mask = <uint64_t>self.smask, i, j, k
        cdef int32_t other
        if self.sused == 0:
            return
        i = <uint64_t>self.groups[gid].hash & mask
        while self.slots[i] != gid:
            if self.slots[i] < 0:  # not in the table (never happens: callers drop live groups)
                return
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            other = self.slots[j]
            if other < 0:
                break
            k = <uint64_t>self.groups[other].hash & mask  # where its probe starts
            # it may move to i unless its start lies cyclically in (i, j]
            if (i <= j and (k <= i or k > j)) or (i > j and k <= i and k > j):
                self.slots[i] = other
                i = j
        self.slots[i] = -1
        self.sused -= 1

    cdef int32_t new_group(self, object key, Py_hash_t h) except -1:
        cdef int32_t gid
        cdef Group* g
        self.slot_reserve()
        if self.free_head >= 0:
            gid = self.free_head
            self.free_head = self.groups[gid].next
            self.gkeys[gid] = key
        else:
            if self.used == self.alloc:
                n = self.alloc * 2 if self.alloc else 64
                p = <Group*>realloc(self.groups, n * sizeof(Group))
                if p == NULL:
                    raise MemoryError()
                self.groups = p
                self.alloc = n
            gid = self.used
            self.gkeys.append(key)  # may fail: before the id is taken
            self.used += 1
        g = &self.groups[gid]
        g.n = 0
        g.head = 0
        g.cap = 0
        g.buf = NULL
        g.distinct = 0
        g.counts = NULL
        g.qpos = -1
        g.next = -1
        g.hash = h
        self.slot_insert(gid)
        self.live += 1
        return gid

    cdef int push_back(self, int32_t gid) except -1:
        """The group was just updated: it goes to the back of the queue (its older entries there
        are now stale and skipped when they reach the front)."""
        cdef int64_t ncap, k
        cdef int32_t* nq
        if self.qtail - self.qhead == self.qcap:
            ncap = self.qcap * 2 if self.qcap else 1024
            nq = <int32_t*>malloc(ncap * sizeof(int32_t))
            if nq == NULL:
                raise MemoryError()
            for k in range(self.qhead, self.qtail):
                nq[k & (ncap - 1)] = self.q[k & (self.qcap - 1)]
            free(self.q)
            self.q = nq
            self.qcap = ncap
        self.q[self.qtail & (self.qcap - 1)] = gid
        self.groups[gid].qpos = self.qtail
        self.qtail += 1
        return 0

    cdef inline int32_t front(self) noexcept:
        """The least recently updated live group, or -1."""
        cdef int32_t gid
        while self.qhead < self.qtail:
            gid = self.q[self.qhead & (self.qcap - 1)]
            if self.groups[gid].qpos == self.qhead:
                return gid
            self.qhead += 1
        return -1

    cdef object drop_group(self, int32_t gid):
        """Forget a group (expired, evicted or reset); returns its key."""
        cdef Group* g = &self.groups[gid]
        cdef Entry* e
        cdef int32_t i
        g.qpos = -1
        if self.type == T_DISTINCT:
            e = entries(g)
            for i in range(g.head, g.head + g.n):
                self.leave_value(gid, g, e[i].p)
        if g.cap:
            free(g.buf)
        free(g.counts)
        g.buf = NULL
        g.counts = NULL
        g.cap = 0
        g.n = 0
        key = self.gkeys[gid]
        self.slot_delete(gid)
        self.gkeys[gid] = None
        g.next = self.free_head
        self.free_head = gid
        self.live -= 1
        return key

    # -- value_count's values -----------------------------------------------------------------
    cdef int64_t intern_value(self, object value) except -1:
        cdef PyObject* found = dict_get(self.vids, value)
        cdef int64_t vid
        if found != NULL:
            vid = <object>found
        else:
            if self.vfree:
                vid = self.vfree.pop()
                self.vobjs[vid] = value
            else:
                vid = len(self.vobjs)
                self.vobjs.append(value)
                if vid >= self.valloc:
                    n = self.valloc * 2 if self.valloc else 64
                    p = <int32_t*>realloc(self.vrefs, n * sizeof(int32_t))
                    if p == NULL:
                        raise MemoryError()
                    self.vrefs = p
                    self.valloc = n
            self.vrefs[vid] = 0
            self.vids[value] = vid
        self.vrefs[vid] += 1
        return vid

    cdef int enter_value(self, int32_t gid, Group* g, int64_t vid) except -1:
        pk = (<int64_t>gid << 32) | vid
        cdef PyObject* found = dict_get(self.pairs, pk)
        if found == NULL:
            self.pairs[pk] = 1
            g.distinct += 1
        else:
            self.pairs[pk] = <object>found + 1
        return 0

    cdef int leave_value(self, int32_t gid, Group* g, int64_t vid) except -1:
        pk = (<int64_t>gid << 32) | vid
        n = self.pairs[pk] - 1
        if n:
            self.pairs[pk] = n
        else:
            del self.pairs[pk]
            g.distinct -= 1
        self.vrefs[vid] -= 1
        if self.vrefs[vid] == 0:
            del self.vids[self.vobjs[vid]]
            self.vobjs[vid] = None
            self.vfree.append(vid)
        return 0

    # -- windows ------------------------------------------------------------------------------
    cdef int slide(self, int32_t gid, Group* g, int64_t cutoff) except -1:
        """Entries older than ``cutoff`` leave the window."""
        cdef Entry* e = entries(g)
        cdef int32_t i = g.head, end = g.head + g.n
        cdef uint64_t m
        cdef int r
        while i < end and e[i].t < cutoff:
            if self.type == T_DISTINCT:
                self.leave_value(gid, g, e[i].p)
            elif g.counts == NULL:
                g.distinct = 0  # a window of one entry: no counts kept
            else:
                m = <uint64_t>e[i].p
                while m:
                    r = ctz(m)
                    m &= m - 1
                    g.counts[r] -= 1
                    if g.counts[r] == 0:
                        g.distinct -= 1
            i += 1
        g.n -= i - g.head
        g.head = i
        if g.n == 0:
            g.head = 0
        return 0

    cdef int append(self, int32_t gid, Group* g, int64_t ts, int64_t idx, int64_t p) except -1:
        cdef Entry* e
        cdef int32_t ncap
        cdef uint64_t m
        cdef int r
        if g.cap == 0:
            if g.n == 0:
                g.one.t = ts
                g.one.idx = idx
                g.one.p = p
                g.n = 1
                g.head = 0
                self.count_in(g, p)
                return 0
            # the second entry: a buffer
            e = <Entry*>malloc(4 * sizeof(Entry))
            if e == NULL:
                raise MemoryError()
            e[0] = g.one
            g.buf = e
            g.cap = 4
            g.head = 0
            if (self.type == T_TEMPORAL or self.type == T_ORDERED) and g.counts == NULL:
                g.counts = <int64_t*>calloc(self.nrules, sizeof(int64_t))
                if g.counts == NULL:
                    raise MemoryError()
                g.distinct = 0
                self.count_in(g, g.one.p)
        elif g.head + g.n == g.cap:
            if g.head >= g.cap // 2:
                memmove(g.buf, g.buf + g.head, g.n * sizeof(Entry))
                g.head = 0
            else:
                ncap = g.cap * 2
                e = <Entry*>realloc(g.buf, ncap * sizeof(Entry))
                if e == NULL:
                    raise MemoryError()
                g.buf = e
                g.cap = ncap
        e = g.buf + g.head + g.n
        e.t = ts
        e.idx = idx
        e.p = p
        g.n += 1
        self.count_in(g, p)
        return 0

    cdef inline void count_in(self, Group* g, int64_t p) noexcept:
        cdef uint64_t m
        cdef int r
        if g.counts == NULL:
            if self.type == T_TEMPORAL or self.type == T_ORDERED:
                g.distinct = popcount(<uint64_t>p)  # a window of one entry
        else:
            m = <uint64_t>p
            while m:
                r = ctz(m)
                m &= m - 1
                if g.counts[r] == 0:
                    g.distinct += 1
                g.counts[r] += 1

    cdef object aggregate(self, Group* g):
        """The window's aggregate (a float), or None."""
        cdef Entry* e = entries(g) + g.head
        cdef int32_t i, n = g.n
        cdef DBits b
        cdef double v, acc
        cdef double* tmp
        if self.type == T_COUNT:
            return <double>n
        if self.type == T_DISTINCT or self.type == T_TEMPORAL:
            return <double>g.distinct
        if self.type == T_ORDERED:
            if g.distinct == self.nrules and ordered(e, n, self.nrules):
                return <double>self.nrules
            return 0.0
        if self.type == T_SUM or self.type == T_AVG:
            vals = []
            for i in range(n):
                b.i = e[i].p
                vals.append(b.d)
            s = fsum(vals)
            return s if self.type == T_SUM else s / n
        if self.type == T_MIN or self.type == T_MAX:
            b.i = e[0].p
            acc = b.d
            for i in range(1, n):
                b.i = e[i].p
                v = b.d
                if (v < acc) if self.type == T_MIN else (v > acc):
                    acc = v
            return acc
        # percentile: linear interpolation between closest ranks (values.percentile)
        if n == 1:
            b.i = e[0].p
            return b.d
        tmp = <double*>malloc(n * sizeof(double))
        if tmp == NULL:
            raise MemoryError()
        for i in range(n):
            b.i = e[i].p
            tmp[i] = b.d
        qsort(tmp, n, sizeof(double), cmp_double)
        rank = self.pct / 100.0 * (n - 1)
        lo = <int32_t>floor(rank)
        hi = lo + 1 if lo + 1 < n - 1 else n - 1
        v = tmp[lo] + (tmp[hi] - tmp[lo]) * (rank - lo)
        free(tmp)
        return v

    cdef bint holds(self, double v) except -1:
        cdef int i
        cdef int op
        cdef double n
        if self.nterms > 8:
            return self.cond(v)
        for i in range(self.nterms):
            op = self.ops[i]
            n = self.limits[i]
            if op == OP_GT:
                if not v > n: return False
            elif op == OP_GE:
                if not v >= n: return False
            elif op == OP_LT:
                if not v < n: return False
            elif op == OP_LE:
                if not v <= n: return False
            elif op == OP_EQ:
                if not v == n: return False
            else:
                if not v != n: return False
        return True

    def window_members(self, key):
        """(start, stream indices) of a live group's window, for tests and alerts."""
        cdef int32_t gid = self.find(key, hash(key))
        if gid < 0:
            raise KeyError(key)
        cdef Group* g = &self.groups[gid]
        cdef Entry* e = entries(g) + g.head
        return e[0].t, tuple([e[i].idx for i in range(g.n)])


cdef inline int64_t _bit(int rank) noexcept:
    """A rank's bit in a rule bitmask: temporal* name at most 63 rules; the other types (which
    may name more) never read the mask."""
    return (<int64_t>1) << rank if rank < 63 else 0


cdef bint ordered(Entry* e, int32_t n, int nrules) noexcept:
    """temporal_ordered over a window (time order): the earliest entry of each rule, in the order
    of ``rules``, at a time no earlier than the previous rule's (ties satisfy)."""
    cdef int k
    cdef int32_t start = 0, j
    cdef int64_t prev = 0
    cdef bint have = False
    cdef uint64_t bit
    for k in range(nrules):
        bit = (<uint64_t>1) << k
        if have:
            while start < n and e[start].t < prev:
                start += 1
        j = start
        while j < n and not ((<uint64_t>e[j].p) & bit):
            j += 1
        if j == n:
            return False
        prev = e[j].t
        have = True
    return True


# -- times ----------------------------------------------------------------------------------

cdef inline int digits(const char* s, int n) noexcept nogil:
    cdef int v = 0, i
    for i in range(n):
        if s[i] < 48 or s[i] > 57:
            return -1
        v = v * 10 + (s[i] - 48)
    return v


cdef int64_t days_from_civil(int64_t y, int m, int d) noexcept nogil:
    # Howard Hinnant's algorithm: days since 1970-01-01
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef int MDAYS[16]  # 16, not 13: gcc cannot see that iso_ms checks the month first
MDAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0, 0, 0]


cdef struct TimeCache:
    # the last minute read: its text (YYYY-MM-DDTHH:MM) and its epoch ms
    char prefix[16]
    int64_t minute_ms
    bint valid


cdef inline bint iso_ms(const char* s, Py_ssize_t n, int64_t* out, TimeCache* cache) noexcept nogil:
    """``YYYY-MM-DDTHH:MM:SS`` then ``""``/``.fff``/``.ffffff``, then ``Z`` or nothing -> epoch ms
    (what TimeReader reads this way); False for anything else (read by Python instead).
    ``cache`` (or NULL) remembers the last minute read: a stream's times share it row after row."""
    cdef int y, mo, d, h, mi, sec, ms, dim
    cdef int64_t minute
    cdef Py_ssize_t k
    if n < 19 or s[16] != 58:
        return False
    if cache != NULL and cache.valid and memcmp(s, cache.prefix, 16) == 0:
        minute = cache.minute_ms
    else:
        if s[4] != 45 or s[7] != 45 or s[10] != 84 or s[13] != 58:
            return False
        y = digits(s, 4); mo = digits(s + 5, 2); d = digits(s + 8, 2)
        h = digits(s + 11, 2); mi = digits(s + 14, 2)
        if y < 1 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59:
            return False
        dim = MDAYS[mo]
        if mo == 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
            dim = 29
        if d > dim:
            return False
        minute = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60) * 1000
        if cache != NULL:
            memcpy(cache.prefix, s, 16)
            cache.minute_ms = minute
            cache.valid = True
    sec = digits(s + 17, 2)
    if sec < 0 or sec > 59:
        return False
    k = n
    if k > 19 and s[k - 1] == 90:  # Z
        k -= 1
    if k == 19:
        ms = 0
    elif s[19] == 46 and (k == 23 or k == 26):
        ms = digits(s + 20, <int>(k - 20))
        if ms < 0:
            return False
        if k == 26:
            ms //= 1000
    else:
        return False
    out[0] = minute + sec * 1000 + ms
    return True


cdef class Engine:
    """The windows of every correlation of a RuleSet, and the reorder buffer (see engine.py)."""
    cdef list corrs
    cdef object ts_field
    cdef TimeCache tcache
    cdef int64_t lateness
    cdef bint has_newest
    cdef int64_t newest
    cdef int64_t max_groups
    cdef bint reset
    cdef object stats
    cdef object read_time      # values.TimeReader
    cdef object lookup         # ops.lookup
    cdef object group_value
    cdef object count_value
    cdef object numeric_value
    cdef object Alert
    cdef public list heap
    cdef dict cols             # an Arrow batch's fields: name -> value of each row position
    # patterns: a set of base rules matched by one event -> the correlations it enters directly
    cdef dict pat_ids          # tuple of base rules -> pattern id
    cdef list pat_hits         # pattern id -> list of (ci, first rank, mask), by ci
    cdef object feeds          # base rule -> [(ci, rank)]
    cdef list rule_fields      # base rule -> the event fields its correlations read (prefetched)
    cdef int32_t* rule_pat     # base rule -> pattern id of that rule alone
    cdef int nrules
    # pending correlations of the event being processed
    cdef int ncorr
    cdef int32_t* plist
    cdef int32_t* pfirst
    cdef int64_t* pmask
    cdef char* pflag
    # counters (copied to stats by sync())
    cdef public int64_t n_correlated, n_no_timestamp, n_late, n_no_value, n_alerts
    cdef public int64_t n_expired, n_evicted, n_live, n_peak

    def __cinit__(self):
        self.tcache.valid = False
        self.rule_pat = NULL
        self.plist = NULL
        self.pfirst = NULL
        self.pmask = NULL
        self.pflag = NULL

    def __init__(self, correlations, feeds, ts_field, int64_t lateness, int64_t max_groups, bint reset, stats,
                 helpers):
        cdef int i
        self.corrs = [CorrState(c) for c in correlations]
        self.ncorr = len(self.corrs)
        self.ts_field = ts_field
        self.lateness = lateness
        self.has_newest = False
        self.newest = 0
        self.max_groups = max_groups
        self.reset = reset
        self.stats = stats
        (self.read_time, self.lookup, self.group_value, self.count_value, self.numeric_value,
         self.Alert) = helpers
        self.heap = []
        self.cols = {}
        self.feeds = feeds
        self.nrules = len(feeds)
        self.rule_fields = []
        for fl in feeds:
            names = set()
            for ci, rank in fl:
                cs = <CorrState>self.corrs[ci]
                names.update(cs.fields_by_rank[rank])
                v = cs.value_by_rank[rank]
                names.update((v,) if isinstance(v, str) else v or ())
            self.rule_fields.append(tuple(sorted(names)))
        self.pat_ids = {}
        self.pat_hits = []
        self.rule_pat = <int32_t*>malloc(max(self.nrules, 1) * sizeof(int32_t))
        n = max(self.ncorr, 1)
        self.plist = <int32_t*>malloc(n * sizeof(int32_t))
        self.pfirst = <int32_t*>malloc(n * sizeof(int32_t))
        self.pmask = <int64_t*>malloc(n * sizeof(int64_t))
        self.pflag = <char*>calloc(n, 1)
        if self.rule_pat == NULL or self.plist == NULL or self.pfirst == NULL or self.pmask == NULL or self.pflag == NULL:
            raise MemoryError()
        for i in range(self.nrules):
            self.rule_pat[i] = self.pattern((i,)) if feeds[i] else -1
        self.n_correlated = self.n_no_timestamp = self.n_late = self.n_no_value = 0
        self.n_alerts = self.n_expired = self.n_evicted = self.n_live = self.n_peak = 0

    def __dealloc__(self):
        free(self.rule_pat)
        free(self.plist)
        free(self.pfirst)
        free(self.pmask)
        free(self.pflag)

    def add_parent(self, int ci, int pci, int prank):
        (<CorrState>self.corrs[ci]).parents.append((pci, prank))

    cdef int pattern(self, tuple us) except -2:
        cdef PyObject* found = dict_get(self.pat_ids, us)
        if found != NULL:
            return <object>found
        pending = {}
        for u in us:
            for ci, rank in self.feeds[u]:
                p = pending.get(ci)
                if p is None:
                    pending[ci] = [rank, _bit(rank)]
                else:
                    p[0] = min(p[0], rank)
                    p[1] |= _bit(rank)
        pid = len(self.pat_hits)
        self.pat_hits.append([(ci, p[0], p[1]) for ci, p in sorted(pending.items())])
        self.pat_ids[us] = pid
        return pid

    def sync(self):
        """Copy the counters to the Stats object."""
        st = self.stats
        st.correlated = self.n_correlated
        st.no_timestamp = self.n_no_timestamp
        st.late = self.n_late
        st.no_value = self.n_no_value
        st.alerts = self.n_alerts
        st.expired_groups = self.n_expired
        st.evicted_groups = self.n_evicted
        st.live_groups = self.n_live
        st.peak_groups = self.n_peak

    # -- input --------------------------------------------------------------------------------
    cdef inline object get(self, object ev, object name):
        """ev.get(name) (None when absent); ``ev`` an int: the row at that position of ``cols``."""
        cdef PyObject* v
        if PyDict_CheckExact(ev):
            v = dict_get(ev, name)
            return <object>v if v != NULL else None
        if PyLong_CheckExact(ev):
            v = dict_get(self.cols, name)
            return <object>PyList_GET_ITEM(<list>v, <Py_ssize_t>ev) if v != NULL else None
        return ev.get(name)

    cdef inline object mapping(self, object ev):
        """The event as a mapping, for the helpers of values.py (a row of ``cols``: a dict of them)."""
        if PyLong_CheckExact(ev):
            return {name: col[ev] for name, col in self.cols.items()}
        return ev

    def feed(self, int64_t base, const int64_t[:] rows, const int64_t[:] rules, int64_t n_events, events,
             list out):
        """One chunk's relevant matches (``rows`` local to the chunk, sorted, with their ``rules``);
        ``events``: the chunk's events (a list), a dict row -> event, or a function of the row.
        Appends alerts to ``out``."""
        cdef Py_ssize_t i = 0, j, m = rows.shape[0], blk = 0
        cdef int64_t r, idx, ts, limit
        cdef int pid
        cdef bint is_list = type(events) is list, is_dict = type(events) is dict
        cdef bint is_cols = type(events) is tuple
        cdef Py_ssize_t pos = -1
        cdef object ev, tv
        cdef const int64_t[:] times
        cdef bint has_times = False
        ts_field = self.ts_field
        if is_cols:  # (row positions, {field: values of each position}[, times]) of an Arrow batch
            self.cols = events[1]
            for col in self.cols.values():
                if type(col) is not list or len(col) < len(events[0]):
                    raise ValueError("columns must be lists of a value per row")
            if len(events) > 2:  # epoch ms of each position (arrow_times_ms); MISSING_MS: read cols
                times = events[2]
                has_times = True
                if times.shape[0] < len(events[0]):
                    raise ValueError("times must hold one entry per row")
        while i < m:
            if is_list and i >= blk:
                blk = self.prefetch(events, rows, rules, i)
            r = rows[i]
            j = i + 1
            while j < m and rows[j] == r:
                j += 1
            if j == i + 1:
                pid = self.rule_pat[rules[i]]
            else:
                pid = self.pattern(tuple([rules[k] for k in range(i, j)]))
            i = j
            idx = base + r
            self.n_correlated += 1
            if is_list:
                ev = <object>PyList_GET_ITEM(events, r)
            elif is_cols:
                pos += 1  # rows are sorted: the position of each distinct row in turn
                ev = pos
            elif is_dict:
                ev = events[r]
            else:
                ev = events(r)
            if has_times and times[pos] != INT64_MIN:
                ts = times[pos]  # read from the Arrow string buffer (arrow_times_ms)
            else:
                tv = self.get(ev, ts_field)
                if PyUnicode_CheckExact(tv) and PyUnicode_IS_COMPACT_ASCII(tv) and \
                        iso_ms(<const char*>PyUnicode_DATA(tv), PyUnicode_GET_LENGTH(tv), &ts, &self.tcache):
                    pass
                else:
                    if tv is None:
                        tv = self.lookup(self.mapping(ev), ts_field)
                    t = self.read_time(tv)
                    if type(t) is not int:
                        self.n_no_timestamp += 1
                        self.stats.problem(idx, t)
                        continue
                    ts = t
            if self.has_newest and ts < self.newest - self.lateness:
                self.n_late += 1
                self.stats.problem(idx, f"late by {self.newest - ts} ms (lateness {self.lateness} ms)")
                continue
            if not self.has_newest or ts > self.newest:
                self.newest = ts
                self.has_newest = True
            if self.lateness == 0 and not self.heap:
                self.process(ts, idx, ev, pid, out)  # in order, nothing held
                continue
            heapq.heappush(self.heap, (ts, idx, self.mapping(ev), pid))  # held past this batch
            limit = self.newest - self.lateness
            while self.heap and self.heap[0][0] <= limit:
                t_, k_, e_, p_ = heapq.heappop(self.heap)
                self.process(t_, k_, e_, p_, out)
        self.sync()

    cdef Py_ssize_t prefetch(self, list events, const int64_t[:] rows, const int64_t[:] rules, Py_ssize_t start) except -1:
        """Bring the next rows' event dicts, their key tables and their times into the cache, in
        passes of independent loads (a million events' dicts lie far apart in memory: one at a
        time, each step of each lookup waits for memory). Returns where the block ends."""
        cdef Py_ssize_t i, end = min(start + 256, rows.shape[0]), n = len(events)
        cdef PyObject** items = PySequence_Fast_ITEMS(events)
        cdef PyObject* ev
        cdef PyObject* hit
        for i in range(start, end):
            if rows[i] < n:
                MATCHER_PREFETCH(items[rows[i]])
        for i in range(start, end):
            if rows[i] < n:
                ev = items[rows[i]]
                if PyDict_CheckExact(<object>ev):
                    MATCHER_PREFETCH(MATCHER_DICT_KEYS(ev))
        for i in range(start, end):
            if rows[i] < n:
                ev = items[rows[i]]
                if PyDict_CheckExact(<object>ev):
                    hit = dict_get(<object>ev, self.ts_field)
                    if hit != NULL:
                        MATCHER_PREFETCH(hit)
                        MATCHER_PREFETCH(<const char*>hit + 64)
                    for f in <tuple>PyList_GET_ITEM(self.rule_fields, rules[i]):
                        hit = dict_get(<object>ev, f)
                        if hit != NULL:
                            MATCHER_PREFETCH(hit)
        return end

    def flush(self, list out):
        """The end of the stream: release every held event."""
        while self.heap:
            t_, k_, e_, p_ = heapq.heappop(self.heap)
            self.process(t_, k_, e_, p_, out)
        self.sync()

    # -- windows ------------------------------------------------------------------------------
    cdef int process(self, int64_t ts, int64_t idx, object ev, int pid, list out) except -1:
        cdef int npend = 0, k = 0, ci, first, pci, prank, q
        cdef int64_t mask
        cdef CorrState cs
        for h in <list>self.pat_hits[pid]:
            ci, first, mask = h
            self.plist[npend] = ci
            self.pfirst[ci] = first
            self.pmask[ci] = mask
            self.pflag[ci] = 1
            npend += 1
        while k < npend:
            ci = self.plist[k]
            k += 1
            self.pflag[ci] = 0
            cs = <CorrState>PyList_GET_ITEM(self.corrs, ci)
            if self.enter(cs, ts, idx, ev, self.pfirst[ci], self.pmask[ci], out) and cs.parents:
                for pci, prank in cs.parents:
                    if self.pflag[pci]:
                        if prank < self.pfirst[pci]:
                            self.pfirst[pci] = prank
                        self.pmask[pci] |= _bit(prank)
                    else:  # pci > ci: insert in order among the correlations still pending
                        q = npend
                        while q > k and self.plist[q - 1] > pci:
                            self.plist[q] = self.plist[q - 1]
                            q -= 1
                        self.plist[q] = pci
                        npend += 1
                        self.pfirst[pci] = prank
                        self.pmask[pci] = _bit(prank)
                        self.pflag[pci] = 1
        return 0

    cdef object key_of(self, CorrState cs, object ev, int first):
        cdef tuple fields = <tuple>PyList_GET_ITEM(cs.fields_by_rank, first)
        cdef object v
        if cs.nfields == 1:
            f = fields[0]
            v = self.get(ev, f)
            return v if PyUnicode_CheckExact(v) else self.group_value(self.mapping(ev), f)
        ev = self.mapping(ev)
        return tuple([self.group_value(ev, f) for f in fields])

    cdef bint enter(self, CorrState cs, int64_t ts, int64_t idx, object ev, int first, int64_t mask,
                    list out) except -1:
        """One event enters a correlation's window of its group; True when the condition holds."""
        cdef int64_t payload = mask, vid = -1
        cdef int32_t gid
        cdef Group* g
        cdef Entry* e
        cdef PyObject* found
        cdef DBits b
        cdef int64_t cutoff = ts - cs.span
        cdef object value, agg, key
        cdef Py_hash_t h
        cdef bint fired = False
        if cs.type == T_DISTINCT:
            names = <tuple>PyList_GET_ITEM(cs.value_by_rank, first)
            if len(names) == 1:
                value = self.get(ev, names[0])
                if not PyUnicode_CheckExact(value):
                    value = self.count_value(self.mapping(ev), names)
                    if value is not None:
                        value = value[0]
            else:
                value = self.count_value(self.mapping(ev), names)
            if value is None:
                self.n_no_value += 1
                return False
        elif cs.type >= T_SUM:
            name = <object>PyList_GET_ITEM(cs.value_by_rank, first)
            value = self.get(ev, name)
            if PyFloat_CheckExact(value) and isfinite(PyFloat_AS_DOUBLE(value)):
                b.d = PyFloat_AS_DOUBLE(value)
            else:
                value = self.numeric_value(self.mapping(ev), name)
                if value is None:
                    self.n_no_value += 1
                    return False
                b.d = value
            payload = b.i
        key = self.key_of(cs, ev, first)
        h = PyObject_Hash(key)
        gid = cs.find(key, h)
        if gid < 0:
            gid = cs.new_group(key, h)
            self.n_live += 1
            if self.n_live > self.n_peak:
                self.n_peak = self.n_live
            g = &cs.groups[gid]
        else:
            g = &cs.groups[gid]
            cs.slide(gid, g, cutoff)
        if cs.type == T_DISTINCT:
            vid = cs.intern_value(value)
            cs.enter_value(gid, g, vid)
            payload = vid
        cs.append(gid, g, ts, idx, payload)
        g.newest = ts
        cs.push_back(gid)
        agg = cs.aggregate(g)
        if agg is not None and cs.holds(agg):
            fired = True
            c = cs.c
            e = entries(g) + g.head
            keyt = (key,) if cs.nfields == 1 else key
            group = {gn: gv for gn, gv in zip(c.group_by, keyt) if gv is not None}
            alert = self.Alert("correlation", c.id, c.title, c.level, c.type, group, e[0].t, ts, agg,
                               tuple([e[i].idx for i in range(g.n)]))
            PyObject_GC_UnTrack(alert)  # see match_alerts
            out.append(alert)
            self.n_alerts += 1
            if self.reset:  # an empty window: no group
                cs.drop_group(gid)
                self.n_live -= 1
        gid = cs.front()
        if gid >= 0 and (cs.groups[gid].newest < cutoff or cs.live > self.max_groups):
            self.expire(cs, cutoff)
        return fired

    cdef int expire(self, CorrState cs, int64_t cutoff) except -1:
        """Drop groups whose newest entry has left the window; evict past the cap."""
        cdef int32_t gid = cs.front()
        while gid >= 0 and cs.groups[gid].newest < cutoff:
            cs.drop_group(gid)
            gid = cs.front()
            self.n_live -= 1
            self.n_expired += 1
        while cs.live > self.max_groups:
            key = cs.drop_group(cs.front())
            self.n_live -= 1
            self.n_evicted += 1
            keyt = (key,) if cs.nfields == 1 else key
            self.stats.problem(None, f"correlation {cs.c.id}: group {dict(zip(cs.c.group_by, keyt))} evicted "
                                     f"(more than {self.max_groups} live groups)")
        return 0


def iso_time_ms(str text):
    """Epoch ms of ``text`` as the engine's C reader reads it, or None where it leaves the text
    to Python (``values.TimeReader``); for tests."""
    cdef int64_t ms
    if PyUnicode_IS_COMPACT_ASCII(text) and iso_ms(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), &ms, NULL):
        return ms
    return None


def iso_times_ms(list texts):
    """:func:`iso_time_ms` of each text in turn through one minute cache, as the engine reads a
    stream; for tests."""
    cdef TimeCache cache
    cdef int64_t ms
    cache.valid = False
    out = []
    for text in texts:
        if PyUnicode_IS_COMPACT_ASCII(text) and iso_ms(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text),
                                                      &ms, &cache):
            out.append(ms)
        else:
            out.append(None)
    return out


def match_alerts(Alert, int64_t base, const int64_t[::1] rows, const int64_t[::1] rules, list infos, list out):
    """Append the single-match Alert of each (row, rule) whose ``infos[rule]`` is
    ``(id, title, level)`` (None: the rule is correlation-only). The same objects as
    ``Alert("match", id, title, level, "match", events=(base + row,))``, built without the
    dataclass' Python ``__init__`` (a fifth of the cost: one stream's matches can be millions).

    Alerts are taken off the cycle collector's list, as CPython does with tuples and dicts that
    hold only atoms: an alert holds strings, numbers, a tuple of ints and a dict of group values,
    so it can be in no reference cycle (unless its owner puts one in: such a cycle is then never
    collected). A caller keeping millions of alerts would otherwise make every full collection
    walk them, and everything else the process holds (the events), again and again: a third
    of correlating 300,000 events with 90,000 single matches kept in a list."""
    cdef Py_ssize_t i, n = rows.shape[0]
    cdef object info, a
    cdef object new = object.__new__
    if rules.shape[0] != n:
        raise ValueError("rows and rules differ in length")
    for i in range(n):
        info = infos[rules[i]]
        if info is None:
            continue
        a = new(Alert)
        a.kind = "match"
        a.rule_id = (<tuple>info)[0]
        a.title = (<tuple>info)[1]
        a.level = (<tuple>info)[2]
        a.type = "match"
        a.group = {}
        a.start_ms = None
        a.end_ms = None
        a.value = None
        a.events = (base + rows[i],)
        PyObject_GC_UnTrack(a)
        out.append(a)


include "_offsets.pxi"


def arrow_times_ms(validity, Py_ssize_t voff, const uint8_t[::1] offsets, int owidth, Py_ssize_t ooff,
                   const uint8_t[::1] data, Py_ssize_t n):
    """Epoch ms of each of the n strings of an Arrow string column (its buffers as
    ``_arrow._strings`` gives them; ``validity`` None or the null bitmap, ``voff`` its bit
    offset), read from the string buffer by the same C reader as a ``str`` time; ``MISSING_MS``
    where that reader leaves the text to Python (null, or a form it does not read). No Python
    object per row. Offsets that leave the buffers are a ValueError."""
    cdef const uint8_t[::1] vb
    cdef bint has_v = validity is not None
    cdef Py_ssize_t i, j, a, b, nd = data.shape[0]
    cdef int64_t ms
    cdef TimeCache cache
    if owidth != 4 and owidth != 8:
        raise ValueError("offsets are 4 or 8 bytes wide")
    if n < 0 or ooff < 0 or voff < 0 or (ooff + n + 1) * owidth > offsets.shape[0]:
        raise ValueError("the offsets buffer is too short")
    if has_v:
        vb = validity
        if (voff + n + 7) // 8 > vb.shape[0]:
            raise ValueError("the validity buffer is too short")
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    cache.valid = False
    for i in range(n):
        j = voff + i
        if has_v and not (vb[j >> 3] >> (j & 7)) & 1:
            o[i] = INT64_MIN
            continue
        a = _load_offset(&offsets[0], owidth, ooff + i)
        b = _load_offset(&offsets[0], owidth, ooff + i + 1)
        if a < 0 or b < a or b > nd:
            raise ValueError(f"string {i}: offsets {a}..{b} leave the data buffer ({nd} bytes)")
        if not iso_ms(<const char*>&data[0] + a, b - a, &ms, &cache):
            ms = INT64_MIN
        o[i] = ms
    return out
