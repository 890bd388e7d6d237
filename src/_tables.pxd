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
    uint32_t minlen
    # Filters at depths 8, 16, 32, 64, 128 bytes: filt[k] has a bit per hash of the first
    # (prefix) or last (suffix) 8 << k bytes of every literal at least that long, hashed as the
    # scan hashes a value's head or tail. A scan that reaches depth 8 << k and finds its hash's
    # bit clear can stop: no longer literal can match. nfilt levels are in use.
    uint32_t nfilt
    uint64_t filt[5][64]
    # A bit per (hash, length) of every literal (lenbits bits): a probe of the table at a
    # head/tail length is made only when its bit is set (most lengths hold no match).
    uint64_t* lenfilt
    uint32_t lenbits


# Aho-Corasick automaton over folded bytes: a dense DFA on byte classes.
# trans rows are W int32 wide (K + 2 rounded up to 16, 64-byte aligned); state ids are
# premultiplied row offsets. Row s: [s + 0] accepting index or -1, [s + 1] trie depth,
# [s + cls[byte]] next state. Byte classes take columns by descending frequency in the
# patterns, so a row's hot transitions share its first cache lines. States are numbered in
# breadth-first order, non-accepting first, so s >= match_min spots an accepting state.
ctypedef struct AC:
    int32_t* trans         # nstates * W
    uint8_t cls[256]       # byte -> column (>= 2)
    uint8_t cls_lower[256] # byte -> column of its ASCII lower case (for unfolded ASCII input)
    int32_t K              # number of classes (distinct pattern bytes + 1)
    int32_t W              # row stride
    int32_t nstates
    int32_t nacc           # accepting states
    int32_t match_min      # premultiplied: states >= match_min are accepting
    int32_t* out_start     # nacc + 1: outputs of accepting index q: out_preds[out_start[q]:out_start[q+1]]
    int32_t* key           # per accepting index: a pred whose firing implies all of q's fired, or -1
    int32_t* out_preds     # per accepting state: its own preds, then its dictionary chain's


cdef inline uint32_t slot_of(uint64_t h, uint32_t length, uint32_t mask) noexcept nogil:
    cdef uint64_t x = h ^ (<uint64_t>length * 0x9E3779B97F4A7C15ULL)
    x ^= x >> 29
    return <uint32_t>x & mask


cdef extern from *:
    """
    static const unsigned char MATCHER_LOWER[256] = {
      0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,
      32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,
      64,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,91,92,93,94,95,
      96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127,
      128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,
      160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,
      192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,
      224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255};
    """
    # ASCII lower case of a byte; bytes >= 0x80 unchanged.
    const uint8_t* LOWER "MATCHER_LOWER"


cdef inline uint32_t filt_bit(uint64_t key) noexcept nogil:
    return <uint32_t>((key * 0x9E3779B97F4A7C15ULL) >> 52)


cdef inline bint len_maybe(const HTable* t, uint64_t h, uint32_t length) noexcept nogil:
    """Whether some literal of this length may have hash h (no: the probe can be skipped)."""
    cdef uint32_t b = <uint32_t>(((h + length) * 0xD6E8FEB86659FD93ULL) >> (64 - t.lenbits))
    return (t.lenfilt[b >> 6] >> (b & 63)) & 1


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


# The same for unfolded ASCII data: data is compared through LOWER.
cdef inline int32_t htable_find_ci(const HTable* t, uint64_t h, uint32_t length,
                                   const uint8_t* data) noexcept nogil:
    cdef uint32_t i = slot_of(h, length, t.mask), j
    cdef int32_t e
    cdef const HEntry* ent
    cdef const uint8_t* lit
    while True:
        e = t.slots[i]
        if e < 0:
            return -1
        ent = &t.entries[e]
        if ent.hash == h and ent.len == length:
            lit = t.pool + ent.off
            j = 0
            while j < length and lit[j] == LOWER[data[j]]:
                j += 1
            if j == length:
                return ent.pred
        i = (i + 1) & t.mask
