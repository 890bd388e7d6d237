# The per-call state (included by _core.pyx): block bitmaps (predicates, OR-groups, probes
# run, lazy predicates, candidate and matching rows of each rule), the block's folded
# values, the gathered values of a chunk of mappings and the references it owns, the output.

# ---------------------------------------------------------------------------------------------
# Per-call state: epoch-stamped arrays (no clearing per row), scratch buffers, the row source.
# One State serves one call at a time; Program keeps a pool of them (guarded by the GIL).
# ---------------------------------------------------------------------------------------------

cdef class State:
    # Block bitmaps: one bit per row of the block (BW words per bitmap). Each family has a
    # touched flag and list per id, so a block clears only what it set.
    cdef int cur               # the block row that fire() marks (set by run_probe)
    cdef bint defer_groups     # stage 1: fire() leaves the OR-groups to groups_from_preds
    cdef int nw                # words in use: (rows of the block + 63) // 64
    cdef uint64_t* pbits       # [pred * BW]: predicate fired in row
    cdef uint8_t* ptouched
    cdef int32_t* plist
    cdef int32_t nplist
    cdef uint64_t* gbits       # [group * BW]: OR-group has a fired member in row
    cdef uint8_t* gtouched
    cdef int32_t* glist
    cdef int32_t nglist
    cdef uint64_t* prbits      # [(field * NPROBES + probe) * BW]: probe processed in row
    cdef uint8_t* prtouched
    cdef int32_t* prlist
    cdef int32_t nprlist
    cdef uint64_t* lzdone      # [pred * BW]: lazy predicate evaluated in row
    cdef uint64_t* lzval       # ... and its value
    cdef uint8_t* lztouched
    cdef int32_t* lzlist
    cdef int32_t nlzlist
    cdef uint64_t* rbits       # [rule * BW]: candidate rows of a rule, then its matching rows
    cdef uint8_t* rtouched
    cdef int32_t* rlist
    cdef int32_t nrlist
    cdef int32_t* hits         # rules with a match in the block, in rule order
    # Dictionary memo (stage 1 on dictionary-encoded columns): fire() logs what it fires.
    cdef bint logging
    cdef int32_t* log
    cdef Py_ssize_t nlog, log_cap
    cdef int32_t** memo        # [probe]: per dictionary entry, its log start (-1: not walked yet),
                               # then (after nstr entries) its log length; for this call only
    # Folded values of the block: fold_ep[row * nfields + f] == epoch when folded, then the
    # row's values of f are fv_off/fv_len[ffirst[...] + k], bytes in buf.
    cdef uint32_t epoch
    cdef uint32_t* fold_ep
    cdef int32_t* ffirst
    cdef int32_t nfv
    cdef Py_ssize_t* fv_off
    cdef Py_ssize_t* fv_len
    cdef int32_t fv_cap
    cdef uint8_t* buf
    cdef Py_ssize_t buf_len, buf_cap
    # Row source 1, gathered values (mappings): CHUNK rows x nfields.
    cdef int32_t* vstart       # [row * nfields + f]: first value in vals
    cdef int32_t* vcount       # [row * nfields + f]: number of values
    cdef Val* vals
    cdef Py_ssize_t nvals, vals_cap
    # Ownership: every Val with raw != NULL and every rowobj[0:nrows] is a reference the
    # chunk owns (taken when gathered, dropped by release_chunk), so Python code that runs
    # between gathering and reading (a Mapping's methods, a dict key's __eq__, an iterator,
    # a callback, another thread while the GIL is released) cannot free what the core reads.
    cdef PyObject** rowobj     # [row]: the mapping of each gathered row (owned)
    cdef int nrows             # rows of rowobj that hold a reference
    cdef int64_t base          # index (in the call's output) of the block's first row
    cdef int64_t row0          # columns: index of the block's first row in the columns
    # Row source 2, columns read in place (Arrow string columns).
    cdef bint direct
    cdef Col* cols             # [nfields]
    cdef Py_ssize_t nfields_cap
    cdef Val* one              # [nfields]: the value of the current row, built on demand
    # Output.
    cdef int64_t* out_row
    cdef int32_t* out_rule
    cdef Py_ssize_t nout, out_cap

    def __cinit__(self, Program prog):
        cdef Py_ssize_t P = max(prog.npred, 1), R = max(prog.nrules, 1), F = max(prog.nfields, 1)
        cdef Py_ssize_t G = max(prog.ngroups, 1), PR = F * NPROBES
        self.epoch = 0
        self.pbits = <uint64_t*>calloc(P * BW, sizeof(uint64_t))
        self.ptouched = <uint8_t*>calloc(P, 1)
        self.plist = <int32_t*>malloc(P * sizeof(int32_t))
        self.gbits = <uint64_t*>calloc(G * BW, sizeof(uint64_t))
        self.gtouched = <uint8_t*>calloc(G, 1)
        self.glist = <int32_t*>malloc(G * sizeof(int32_t))
        self.prbits = <uint64_t*>calloc(PR * BW, sizeof(uint64_t))
        self.prtouched = <uint8_t*>calloc(PR, 1)
        self.prlist = <int32_t*>malloc(PR * sizeof(int32_t))
        self.lzdone = <uint64_t*>calloc(P * BW, sizeof(uint64_t))
        self.lzval = <uint64_t*>calloc(P * BW, sizeof(uint64_t))
        self.lztouched = <uint8_t*>calloc(P, 1)
        self.lzlist = <int32_t*>malloc(P * sizeof(int32_t))
        self.rbits = <uint64_t*>calloc(R * BW, sizeof(uint64_t))
        self.rtouched = <uint8_t*>calloc(R, 1)
        self.rlist = <int32_t*>malloc(R * sizeof(int32_t))
        self.hits = <int32_t*>malloc(R * sizeof(int32_t))
        self.log_cap = 1024
        self.log = <int32_t*>malloc(self.log_cap * sizeof(int32_t))
        self.memo = <int32_t**>calloc(F * NPROBES, sizeof(int32_t*))
        self.fold_ep = <uint32_t*>calloc(BLOCK * F, sizeof(uint32_t))
        self.ffirst = <int32_t*>malloc(BLOCK * F * sizeof(int32_t))
        self.fv_cap = 256
        self.fv_off = <Py_ssize_t*>malloc(self.fv_cap * sizeof(Py_ssize_t))
        self.fv_len = <Py_ssize_t*>malloc(self.fv_cap * sizeof(Py_ssize_t))
        self.buf_cap = 16384
        self.buf = <uint8_t*>malloc(self.buf_cap)
        self.vstart = <int32_t*>malloc(CHUNK * F * sizeof(int32_t))
        self.vcount = <int32_t*>malloc(CHUNK * F * sizeof(int32_t))
        self.vals_cap = CHUNK * F
        self.vals = <Val*>malloc(self.vals_cap * sizeof(Val))
        self.rowobj = <PyObject**>malloc(CHUNK * sizeof(PyObject*))
        self.cols = <Col*>calloc(F, sizeof(Col))
        self.nfields_cap = F
        self.one = <Val*>calloc(F, sizeof(Val))
        self.out_cap = 1024
        self.out_row = <int64_t*>malloc(self.out_cap * sizeof(int64_t))
        self.out_rule = <int32_t*>malloc(self.out_cap * sizeof(int32_t))
        self.nrows = 0
        if not (self.pbits and self.ptouched and self.plist and self.gbits and self.gtouched and self.glist
                and self.prbits and self.prtouched and self.prlist and self.lzdone and self.lzval
                and self.lztouched and self.lzlist and self.rbits and self.rtouched and self.rlist
                and self.hits and self.log and self.memo and self.fold_ep and self.ffirst
                and self.fv_off and self.fv_len and self.buf and self.vstart and self.vcount
                and self.vals and self.rowobj and self.cols and self.one and self.out_row and self.out_rule):
            raise MemoryError()

    def __dealloc__(self):
        self.release_chunk()
        free(self.pbits); free(self.ptouched); free(self.plist); free(self.gbits); free(self.gtouched)
        free(self.glist); free(self.prbits); free(self.prtouched); free(self.prlist); free(self.lzdone)
        free(self.lzval); free(self.lztouched); free(self.lzlist); free(self.rbits); free(self.rtouched)
        self.free_memo()
        free(self.memo)
        free(self.rlist); free(self.hits); free(self.log); free(self.fold_ep); free(self.ffirst)
        free(self.fv_off); free(self.fv_len); free(self.buf); free(self.vstart)
        free(self.vcount); free(self.vals); free(self.rowobj); free(self.cols); free(self.one); free(self.out_row)
        free(self.out_rule)

    cdef void clear_block(self, Program prog) noexcept nogil:
        """Forget the last block: zero the bitmaps it set, give its folded values back."""
        cdef Py_ssize_t i, k
        for i in range(self.nplist):
            k = self.plist[i]
            memset(&self.pbits[k * BW], 0, BW * sizeof(uint64_t))
            self.ptouched[k] = 0
        for i in range(self.nglist):
            k = self.glist[i]
            memset(&self.gbits[k * BW], 0, BW * sizeof(uint64_t))
            self.gtouched[k] = 0
        for i in range(self.nprlist):
            k = self.prlist[i]
            memset(&self.prbits[k * BW], 0, BW * sizeof(uint64_t))
            self.prtouched[k] = 0
        for i in range(self.nlzlist):
            k = self.lzlist[i]
            memset(&self.lzdone[k * BW], 0, BW * sizeof(uint64_t))
            memset(&self.lzval[k * BW], 0, BW * sizeof(uint64_t))
            self.lztouched[k] = 0
        for i in range(self.nrlist):
            k = self.rlist[i]
            memset(&self.rbits[k * BW], 0, BW * sizeof(uint64_t))
            self.rtouched[k] = 0
        self.nplist = self.nglist = self.nprlist = self.nlzlist = self.nrlist = 0
        self.epoch += 1
        if self.epoch == 0:  # wrapped: clear the stamps once every 2**32 blocks
            memset(self.fold_ep, 0, BLOCK * max(prog.nfields, 1) * sizeof(uint32_t))
            self.epoch = 1
        self.nfv = 0
        self.buf_len = 0

    cdef inline uint64_t* prbits_of(self, int32_t probe) noexcept nogil:
        if not self.prtouched[probe]:
            self.prtouched[probe] = 1
            self.prlist[self.nprlist] = probe
            self.nprlist += 1
        return &self.prbits[<Py_ssize_t>probe * BW]

    cdef inline uint64_t* gbits_of(self, int32_t g) noexcept nogil:
        if not self.gtouched[g]:
            self.gtouched[g] = 1
            self.glist[self.nglist] = g
            self.nglist += 1
        return &self.gbits[<Py_ssize_t>g * BW]

    cdef inline uint64_t* rbits_of(self, int32_t rule) noexcept nogil:
        if not self.rtouched[rule]:
            self.rtouched[rule] = 1
            self.rlist[self.nrlist] = rule
            self.nrlist += 1
        return &self.rbits[<Py_ssize_t>rule * BW]

    cdef inline void lz_touch(self, int32_t p) noexcept nogil:
        if not self.lztouched[p]:
            self.lztouched[p] = 1
            self.lzlist[self.nlzlist] = p
            self.nlzlist += 1

    cdef int32_t* memo_of(self, int32_t probe, Py_ssize_t nstr) except NULL nogil:
        """The dictionary memo of a probe for this call (made on first use: -1 starts)."""
        if self.memo[probe] == NULL:
            self.memo[probe] = <int32_t*>malloc(max(2 * nstr, 1) * sizeof(int32_t))
            if self.memo[probe] == NULL:
                with gil:
                    raise MemoryError()
            memset(self.memo[probe], 0xFF, nstr * sizeof(int32_t))
        return self.memo[probe]

    cdef void free_memo(self) noexcept nogil:
        cdef Py_ssize_t i
        if self.memo != NULL:
            for i in range(self.nfields_cap * NPROBES):
                free(self.memo[i])
                self.memo[i] = NULL

    cdef int log_reserve(self, Py_ssize_t extra) except -1 nogil:
        """Room for extra more entries in the fire log."""
        cdef int32_t* l2
        cdef Py_ssize_t cap
        if self.nlog + extra > self.log_cap:
            cap = max(2 * self.log_cap, self.nlog + extra)
            l2 = <int32_t*>realloc(self.log, cap * sizeof(int32_t))
            if not l2:
                with gil:
                    raise MemoryError()
            self.log = l2
            self.log_cap = cap
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
        if raw != NULL:
            Py_INCREF(<object>raw)
        return 0

    cdef int add_row(self, int row, object ev) except -1:
        """Hold a reference to the mapping of a gathered row (rows come in order from 0)."""
        Py_INCREF(ev)
        self.rowobj[row] = <PyObject*>ev
        self.nrows = row + 1
        return 0

    cdef void release_chunk(self) noexcept:
        """Drop the chunk's references (its values and row mappings); forget its values.

        The counts are cleared before the drops: a drop may run a finalizer."""
        cdef Py_ssize_t i, n = self.nvals, m = self.nrows
        cdef Val* vals = self.vals
        cdef PyObject** rows = self.rowobj
        self.nvals = 0
        self.nrows = 0
        for i in range(n):
            if vals[i].raw != NULL:
                Py_DECREF(<object>vals[i].raw)
        for i in range(m):
            Py_DECREF(<object>rows[i])

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

    cdef void reset(self) noexcept:
        """Forget the last call's rows and output; give back memory grown by a huge value."""
        cdef uint8_t* b2
        if self.buf_cap > (1 << 22):
            b2 = <uint8_t*>realloc(self.buf, 16384)
            if b2:
                self.buf = b2
                self.buf_cap = 16384
        self.release_chunk()
        self.nout = 0
        self.direct = False
        self.logging = False
        self.nlog = 0
        self.free_memo()
        memset(self.cols, 0, self.nfields_cap * sizeof(Col))  # never read a past call's buffers
