# The automata (included by _core.pyx): building one field's Aho-Corasick DFA over byte
# classes and the START/END marker symbols from the compiler's patterns (the struct is in
# _automaton.pxd). The walks over values (scan_ac, scan_anchored_ci, and run_lanes, four
# rows at a time) are Program methods in _core.pyx: they fire predicates into the block.

# ---------------------------------------------------------------------------------------------
# Table construction (GIL held; plain Python data in, C arrays out)
# ---------------------------------------------------------------------------------------------

_FIRST = _itemgetter(0)  # sort key: a (literal, pred) pair's literal

#: The most memory one field's automaton may take (rules are untrusted; docs/security.md).
cdef size_t MAX_AUTOMATON_BYTES = <size_t>1 << 30


cdef inline int32_t trie_child(const int32_t* cstart, const int32_t* ccls, const int32_t* cid,
                               int32_t s, int32_t c) noexcept nogil:
    """The child of trie state s on class c, or -1 (children are sorted by class)."""
    cdef int32_t lo = cstart[s], hi = cstart[s + 1], mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if ccls[mid] < c:
            lo = mid + 1
        else:
            hi = mid
    return cid[lo] if lo < cstart[s + 1] and ccls[lo] == c else -1


cdef inline int32_t _sym(const uint8_t* p, Py_ssize_t i) noexcept nogil:
    """Symbol i of a pattern: 2 bytes big-endian (a byte 0..255, START 256, END 257)."""
    return (<int32_t>p[2 * i] << 8) | p[2 * i + 1]


cdef int ac_build(AC* a, list patterns) except -1:
    """Aho-Corasick DFA over symbol classes. patterns: list of (non-empty symbols, pred id),
    each symbol 2 bytes big-endian (compiler.symbols), so byte order is symbol order.

    The trie is built from the literals in sorted order, so a literal shares exactly its
    common prefix with the one before it and no child lookup is needed; failure links are then
    found breadth-first over the sparse trie, and each DFA row is its failure state's row (a
    shallower state, already filled) with the state's own children written over it. No dense
    table of the trie is ever made.
    """
    cdef int32_t K = 1, W, c, s, t, f, i, j, r, d, lcp, nstates = 1, qh, qt, nplain, nacc
    cdef Py_ssize_t total = 0, n, prev_n = 0
    cdef int32_t* parent = NULL
    cdef int32_t* ecls = NULL      # class of the edge from parent into the state
    cdef int32_t* cstart = NULL    # CSR: state -> its children, sorted by class
    cdef int32_t* ccls = NULL
    cdef int32_t* cid = NULL
    cdef int32_t* path = NULL      # states along the previous literal
    cdef int32_t* fail = NULL
    cdef int32_t* dlink = NULL
    cdef int32_t* depth = NULL
    cdef int32_t* queue = NULL
    cdef int32_t* newid = NULL
    cdef uint8_t* has_own = NULL
    cdef int64_t cnt[258]
    cdef int32_t order[259]
    cdef int32_t col[259]
    cdef bytes lit
    cdef const uint8_t* p
    cdef const uint8_t* prev = NULL
    memset(cnt, 0, sizeof(cnt))
    memset(a, 0, sizeof(AC))
    for lit, _ in patterns:
        p = <const uint8_t*>PyBytes_AS_STRING(lit)
        n = PyBytes_GET_SIZE(lit) // 2
        if n == 0 or PyBytes_GET_SIZE(lit) & 1:
            raise ValueError("an automaton pattern is a non-empty sequence of 2-byte symbols")
        total += n
        for i in range(n):
            c = _sym(p, i)
            if c > 257:
                raise ValueError(f"symbol {c} out of range")
            cnt[c] += 1
        if _sym(p, 0) != 256:
            a.floating = 1
    for i in range(258):
        if cnt[i]:
            a.cls[i] = K      # provisional class: in symbol order
            K += 1
        else:
            a.cls[i] = 0
    a.K = K
    # Column of each class: by descending symbol frequency in the patterns (class 0 last).
    cdef int64_t ccnt[259]
    memset(ccnt, 0, sizeof(ccnt))
    for i in range(258):
        if a.cls[i]:
            ccnt[a.cls[i]] = cnt[i]
    for c in range(K):
        order[c] = c
    for i in range(1, K):
        j = i
        while j > 0 and ccnt[order[j]] > ccnt[order[j - 1]]:
            order[j], order[j - 1] = order[j - 1], order[j]
            j -= 1
    for c in range(K):
        col[order[c]] = 2 + c
    W = (K + 2 + 15) & ~15
    a.W = W
    if total + 1 > 0x7FFFFFFF // W:
        raise MemoryError("too many literals for one field")
    try:
        parent = <int32_t*>malloc((total + 1) * sizeof(int32_t))
        ecls = <int32_t*>malloc((total + 1) * sizeof(int32_t))
        depth = <int32_t*>malloc((total + 1) * sizeof(int32_t))
        path = <int32_t*>malloc((total + 1) * sizeof(int32_t))
        if not (parent and ecls and depth and path):
            raise MemoryError()
        parent[0] = -1
        ecls[0] = 0
        depth[0] = 0
        path[0] = 0
        # Sorted (stably: equal literals keep their order, and so their preds' order), each
        # literal's new states hang off the last state it shares with the literal before it.
        # Provisional classes follow byte order, so children are created in class order.
        own = {}  # state -> list of preds
        for lit, pred in sorted(patterns, key=_FIRST):
            p = <const uint8_t*>PyBytes_AS_STRING(lit)
            n = PyBytes_GET_SIZE(lit) // 2
            lcp = 0
            while lcp < n and lcp < prev_n and _sym(p, lcp) == _sym(prev, lcp):
                lcp += 1
            for d in range(lcp, n):
                parent[nstates] = path[d]
                ecls[nstates] = a.cls[_sym(p, d)]
                depth[nstates] = d + 1
                path[d + 1] = nstates
                nstates += 1
            own.setdefault(path[n], []).append(pred)
            prev, prev_n = p, n
        cstart = <int32_t*>calloc(nstates + 1, sizeof(int32_t))
        ccls = <int32_t*>malloc(nstates * sizeof(int32_t))
        cid = <int32_t*>malloc(nstates * sizeof(int32_t))
        fail = <int32_t*>calloc(nstates, sizeof(int32_t))
        dlink = <int32_t*>malloc(nstates * sizeof(int32_t))
        queue = <int32_t*>malloc(nstates * sizeof(int32_t))
        newid = <int32_t*>malloc(nstates * sizeof(int32_t))
        has_own = <uint8_t*>calloc(nstates, 1)
        if not (cstart and ccls and cid and fail and dlink and queue and newid and has_own):
            raise MemoryError()
        for s in own:
            has_own[s] = 1
        # Children in CSR form: states are numbered in creation order, so each state's
        # children come in class order.
        for t in range(1, nstates):
            cstart[parent[t] + 1] += 1
        for s in range(nstates):
            cstart[s + 1] += cstart[s]
        for s in range(nstates):
            path[s] = cstart[s]  # reused: next free slot of s's children
        for t in range(1, nstates):
            j = path[parent[t]]
            ccls[j] = ecls[t]
            cid[j] = t
            path[parent[t]] = j + 1
        # Breadth-first (children in class order): failure links, dictionary links, queue.
        queue[0] = 0
        qh, qt = 0, 1
        dlink[0] = -1
        while qh < qt:
            s = queue[qh]; qh += 1
            for j in range(cstart[s], cstart[s + 1]):
                t = cid[j]
                c = ccls[j]
                if s == 0:
                    fail[t] = 0
                else:
                    f = fail[s]
                    while True:
                        r = trie_child(cstart, ccls, cid, f, c)
                        if r >= 0:
                            fail[t] = r
                            break
                        if f == 0:
                            fail[t] = 0
                            break
                        f = fail[f]
                f = fail[t]
                dlink[t] = f if has_own[f] else dlink[f]
                queue[qt] = t; qt += 1
        # Renumber in BFS order: non-accepting states first, accepting ones last.
        nplain = 0
        for s in range(nstates):
            if not (has_own[s] or dlink[s] >= 0):
                nplain += 1
        nacc = 0
        r = 0
        queue_acc = []
        for i in range(nstates):
            s = queue[i]
            if has_own[s] or dlink[s] >= 0:
                newid[s] = nplain + nacc; nacc += 1
                queue_acc.append(s)
            else:
                newid[s] = r; r += 1
        a.nstates = nstates
        a.nacc = nacc
        a.match_min = nplain * W
        # Rules are untrusted: one field's automaton may take at most MAX_AUTOMATON_BYTES (a
        # dense DFA row is W * 4 bytes per state, about 1 KB per literal byte at worst), so a
        # rule pack of huge literals is refused with a reason instead of exhausting memory.
        if <size_t>nstates * W * sizeof(int32_t) > MAX_AUTOMATON_BYTES:
            raise MemoryError(f"the literals of one field need an automaton of "
                              f"{<size_t>nstates * W * sizeof(int32_t) >> 20} MiB ({nstates} states), "
                              f"over the limit of {MAX_AUTOMATON_BYTES >> 20} MiB")
        a.trans = <int32_t*>aligned_alloc(64, (<size_t>nstates * W * sizeof(int32_t) + 63) // 64 * 64)
        # Output closures, in BFS order (a state's dictionary link is shallower: already done).
        closure = {}
        for i in range(nstates):
            s = queue[i]
            if has_own[s] or dlink[s] >= 0:
                closure[s] = own.get(s, []) + (closure[dlink[s]] if dlink[s] >= 0 else [])
        npreds = sum(len(v) for v in closure.values())
        a.out_start = <int32_t*>calloc(nacc + 1, sizeof(int32_t))
        a.key = <int32_t*>malloc((nacc + 1) * sizeof(int32_t))
        a.out_preds = <int32_t*>malloc((npreds + 1) * sizeof(int32_t))
        if not (a.trans and a.out_start and a.key and a.out_preds):
            raise MemoryError()
        # Rows in BFS order: the root's goes to itself but for its children; every other
        # state's is its failure state's row (shallower, so filled already) but for its own.
        memset(a.trans, 0, W * sizeof(int32_t))
        for i in range(nstates):
            s = queue[i]
            r = newid[s] * W
            if s:
                memcpy(a.trans + r, a.trans + newid[fail[s]] * W, W * sizeof(int32_t))
            for j in range(cstart[s], cstart[s + 1]):
                a.trans[r + col[ccls[j]]] = newid[cid[j]] * W
            a.trans[r] = newid[s] - nplain if newid[s] >= nplain else -1
            a.trans[r + 1] = depth[s]
        for i in range(258):
            a.cls[i] = col[a.cls[i]]
        for i in range(256):
            a.cls_lower[i] = a.cls[LOWER[i]]
        a.start = a.trans[a.cls[256]]  # from the root
        a.col_end = a.cls[257]
        npat = {}
        for _, pred in patterns:
            npat[pred] = npat.get(pred, 0) + 1
        # key: "this pred fired during the event" implies "this whole closure fired": true when
        # the pred is the output of one literal only (it then fires only through closures that
        # contain the closure of the literal's state, which starts with it).
        j = 0
        for r in range(nacc):
            s = queue_acc[r]
            preds = closure[s]
            a.out_start[r] = j
            a.key[r] = preds[0] if npat[preds[0]] == 1 else -1
            for pr in preds:
                a.out_preds[j] = pr; j += 1
        a.out_start[nacc] = j
    except BaseException:
        ac_free(a)
        raise
    finally:
        free(parent); free(ecls); free(cstart); free(ccls); free(cid); free(path)
        free(fail); free(dlink); free(depth); free(queue); free(newid); free(has_own)
    return 0


cdef void ac_free(AC* a) noexcept:
    free(a.trans); free(a.out_start); free(a.key); free(a.out_preds)
    a.trans = NULL; a.out_start = NULL; a.key = NULL
    a.out_preds = NULL
