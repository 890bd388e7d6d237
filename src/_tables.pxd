# Header-only C contract of the core: table structs and inline primitives (no runtime module).
# See _core.pyx for how they are built and used; DESIGN.md for the trade-offs.

from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp

cdef extern from *:
    """
    #define MATCHER_FNV_OFFSET 1469598103934665603ULL
    #define MATCHER_FNV_PRIME 1099511628211ULL
    """
    uint64_t FNV_OFFSET "MATCHER_FNV_OFFSET"
    uint64_t FNV_PRIME "MATCHER_FNV_PRIME"


# One literal of a hashed table (equality, prefix or suffix literals of one field).
ctypedef struct HEntry:
    uint64_t hash      # FNV-1a of the literal (over its bytes reversed, in suffix tables)
    uint32_t len       # literal length in bytes
    uint32_t off       # offset of the literal in the table's pool
    int32_t pred       # predicate fired when the literal is found


# Open-addressing hash table keyed by (hash, len), plus the set of literal lengths.
ctypedef struct HTable:
    HEntry* entries    # nentries literals
    uint32_t nentries
    int32_t* slots     # mask+1 slots: entry index, or -1 when empty
    uint32_t mask
    uint8_t* pool      # literal bytes
    uint8_t* is_len    # is_len[L] != 0 when some literal has length L (0..maxlen)
    uint32_t maxlen


# Aho-Corasick automaton over folded bytes: a dense DFA on byte classes.
ctypedef struct AC:
    int32_t* trans     # nstates*K; entry = next state * K (premultiplied)
    uint8_t cls[256]   # byte -> class
    int32_t K          # number of classes (distinct pattern bytes + 1)
    int32_t nstates
    int32_t match_min  # premultiplied: states >= match_min have outputs (own or inherited)
    int32_t* out_start # per state: start of its own outputs in out_preds
    int32_t* out_len   # per state: number of its own outputs
    int32_t* dict_link # per state: next state on the failure chain with own outputs, or -1
    int32_t* out_preds # predicates fired by each pattern


cdef inline uint32_t slot_of(uint64_t h, uint32_t length, uint32_t mask) noexcept nogil:
    cdef uint64_t x = h ^ (<uint64_t>length * 0x9E3779B97F4A7C15ULL)
    x ^= x >> 29
    return <uint32_t>x & mask


# Predicate of the literal equal to bytes[0:length] whose hash is h, or -1.
cdef inline int32_t htable_find(const HTable* t, uint64_t h, uint32_t length,
                                const uint8_t* data) noexcept nogil:
    cdef uint32_t i = slot_of(h, length, t.mask)
    cdef int32_t e
    cdef const HEntry* ent
    while True:
        e = t.slots[i]
        if e < 0:
            return -1
        ent = &t.entries[e]
        if ent.hash == h and ent.len == length and memcmp(t.pool + ent.off, data, length) == 0:
            return ent.pred
        i = (i + 1) & t.mask
