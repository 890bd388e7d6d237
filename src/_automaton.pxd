# Header-only C contract of the core: the automaton struct and the ASCII lower-case table.
# See _core.pyx for how they are built and used; DESIGN.md for the trade-offs.

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t

# Aho-Corasick automaton over folded bytes, and two marker symbols: START (256) before a value's
# first byte and END (257) after its last, so one automaton holds every literal of a field:
# contains as is, prefix ^v (START v), suffix v$ (v END), equality ^v$ (START v END).
# A dense DFA on symbol classes. trans rows are W int32 wide (K + 2 rounded up to 16, 64-byte
# aligned); state ids are premultiplied row offsets. Row s: [s + 0] accepting index or -1,
# [s + 1] trie depth, [s + cls[symbol]] next state. Classes take columns by descending
# frequency in the patterns, so a row's hot transitions share its first cache lines. States
# are numbered in breadth-first order, non-accepting first, so s >= match_min spots an
# accepting state.
ctypedef struct AC:
    int32_t* trans         # nstates * W
    uint16_t cls[258]      # symbol -> column (>= 2)
    uint16_t cls_lower[256] # byte -> column of its ASCII lower case (for unfolded ASCII input)
    int32_t start          # the state after START (premultiplied)
    int32_t col_end        # column of END
    int32_t floating       # some literal is not anchored at the start (contains, suffix):
                           # else a walk that falls back to the root can stop
    int32_t reverse        # the literals are reversed: the value is read from its last byte
    int32_t K              # number of classes (distinct pattern symbols + 1)
    int32_t W              # row stride
    int32_t nstates
    int32_t nacc           # accepting states
    int32_t match_min      # premultiplied: states >= match_min are accepting
    int32_t* out_start     # nacc + 1: outputs of accepting index q: out_preds[out_start[q]:out_start[q+1]]
    int32_t* key           # per accepting index: a pred whose firing implies all of q's fired, or -1
    int32_t* out_preds     # per accepting state: its own preds, then its dictionary chain's


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
