# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Sorted tables of chunk entries: batched exact lookups, k-way merges and checks, GIL released.

An entry is 36 bytes: a 24-byte key (compared as unsigned big-endian bytes) and a 12-byte
record. A *table* is an array of entries in strictly increasing key order. It may have a
*fence*: for `bits` = b, fence[i] (u32 little-endian) is the index of the first entry whose
key's top b bits are >= i, for i in 0 … 2^b, so fence[2^b] = n. A lookup then searches only
the entries of its key's bucket (docs/FORMAT.md section 5.2). A table with a fence may also
have *fingerprints*: byte 8 of each entry's key, one per entry, in memory; a lookup then reads
only the bucket's entries whose fingerprint matches (none for most absent keys, one for a
present key) instead of binary-searching the bucket.

Tables are given newest first: where several hold a key, the first one's record is the key's
record (a newer table overrides an older one).
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcmp, memcpy
from posix.unistd cimport pread
from libc.errno cimport errno, EINTR
from posix.types cimport off_t
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    static inline uint64_t rt_top(const uint8_t* k) {
        uint64_t v;
        memcpy(&v, k, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        return v;
    }

    static inline uint32_t rt_le32(const uint8_t* p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }

    /* -1, 0, 1 as a < b, a == b, a > b, for 24-byte keys. */
    static inline int rt_cmp(const uint8_t* a, const uint8_t* b) {
        uint64_t x = rt_top(a), y = rt_top(b);
        if (x != y) return x < y ? -1 : 1;
        int c = memcmp(a + 8, b + 8, 16);
        return (c > 0) - (c < 0);
    }

    /* Index of `key` among entries [lo, hi) of a sorted table, or -1. */
    static inline int64_t rt_search(const uint8_t* e, uint64_t lo, uint64_t hi,
                                    const uint8_t* key) {
        uint64_t kt = rt_top(key);
        while (lo < hi) {
            uint64_t mid = lo + ((hi - lo) >> 1);
            const uint8_t* m = e + mid * 36;
            uint64_t mt = rt_top(m);
            int c = mt < kt ? -1 : mt > kt ? 1 : memcmp(m + 8, key + 8, 16);
            if (c < 0) lo = mid + 1;
            else if (c > 0) hi = mid;
            else return (int64_t)mid;
        }
        return -1;
    }
    """
    uint64_t rt_top(const uint8_t* k) nogil
    uint32_t rt_le32(const uint8_t* p) nogil
    int rt_cmp(const uint8_t* a, const uint8_t* b) nogil
    int64_t rt_search(const uint8_t* e, uint64_t lo, uint64_t hi, const uint8_t* key) nogil
    void __builtin_prefetch(const void* p) nogil

cdef enum:
    KEY = 24
    REC = 12
    ENTRY = 36
    MAX_TABLES = 64

KEY_LEN = KEY
RECORD_LEN = REC
ENTRY_LEN = ENTRY


cdef struct Table:
    const uint8_t* e       # NULL with n > 0: read the entries from fd at offset base
    uint64_t n
    const uint8_t* fence   # NULL: search all n entries
    int bits
    int fd
    uint64_t base
    const uint8_t* fp      # NULL: no fingerprints


cdef inline void table_init(Table* t, uint64_t n, int bits) noexcept:
    """An in-memory table of n entries with no entries, fence or fingerprints attached yet."""
    t.n = n
    t.bits = bits
    t.e = NULL
    t.fence = NULL
    t.fd = -1
    t.base = 0
    t.fp = NULL


cdef list _tables(list tables, Table* out):
    """Fill `out` from (entries, n, fence or None, bits) tuples; returns the buffers to keep alive."""
    cdef const uint8_t[::1] ev
    cdef const uint8_t[::1] fv
    cdef Py_ssize_t t
    keep = []
    if len(tables) > MAX_TABLES:
        raise ValueError(f"at most {MAX_TABLES} tables")
    for t in range(len(tables)):
        spec = tuple(tables[t])
        if len(spec) != 4:
            raise ValueError("a table is (entries, n, fence, bits)")
        entries, n, fence, bits = spec
        if n < 0 or not 0 <= bits <= 31:
            raise ValueError("bad table")
        table_init(&out[t], n, bits)
        if n:
            ev = entries
            if <uint64_t>ev.shape[0] < <uint64_t>n * ENTRY:
                raise ValueError("table shorter than its entries")
            out[t].e = &ev[0]
            keep.append(ev)
        if fence is not None:
            fv = fence
            if <uint64_t>fv.shape[0] < ((<uint64_t>1 << bits) + 1) * 4:
                raise ValueError("fence shorter than its buckets")
            out[t].fence = &fv[0]
            keep.append(fv)
    return keep


cdef enum:
    BUCKET_MAX = 256       # entries read at once by a file search (9 KiB)
    FP_BYTE = 8            # the key byte that is an entry's fingerprint


cdef int read_at(int fd, uint8_t* buf, size_t length, uint64_t offset) noexcept nogil:
    """0 when `length` bytes at `offset` were read (retrying interrupted and partial reads),
    -1 on an error or end of file."""
    cdef ssize_t r
    while length:
        r = pread(fd, buf, length, <off_t>offset)
        if r < 0 and errno == EINTR:
            continue
        if r <= 0:
            return -1
        buf += r
        length -= r
        offset += r
    return 0


cdef int table_find(const Table* t, const uint8_t* key, uint8_t* rec, uint8_t* buf) noexcept nogil:
    """1 and the key's record in `rec` if table t holds `key`, 0 if not, -1 on a short read
    (a file search; `buf` holds BUCKET_MAX entries)."""
    cdef uint64_t lo = 0, hi = t.n, b, mid
    cdef int64_t pos
    cdef int c
    if t.n == 0:
        return 0
    if t.fence != NULL:
        b = rt_top(key) >> (64 - t.bits) if t.bits else 0
        lo = rt_le32(t.fence + 4 * b)
        hi = rt_le32(t.fence + 4 * (b + 1))
        # a damaged fence must not read outside the table (`check` reports it)
        if hi > t.n:
            hi = t.n
        if lo > hi:
            lo = hi
    if t.fp != NULL:
        for mid in range(lo, hi):
            if t.fp[mid] != key[FP_BYTE]:
                continue
            if t.e != NULL:
                if memcmp(t.e + mid * ENTRY, key, KEY) == 0:
                    memcpy(rec, t.e + mid * ENTRY + KEY, REC)
                    return 1
            else:
                if read_at(t.fd, buf, ENTRY, t.base + mid * ENTRY) != 0:
                    return -1
                if memcmp(buf, key, KEY) == 0:
                    memcpy(rec, buf + KEY, REC)
                    return 1
        return 0
    if t.e != NULL:
        pos = rt_search(t.e, lo, hi, key)
        if pos < 0:
            return 0
        memcpy(rec, t.e + pos * ENTRY + KEY, REC)
        return 1
    # from the file: halve a large range an entry at a time, then read the rest at once
    while hi - lo > BUCKET_MAX:
        mid = lo + ((hi - lo) >> 1)
        if read_at(t.fd, buf, ENTRY, t.base + mid * ENTRY) != 0:
            return -1
        c = rt_cmp(buf, key)
        if c == 0:
            memcpy(rec, buf + KEY, REC)
            return 1
        if c < 0:
            lo = mid + 1
        else:
            hi = mid
    if hi == lo:
        return 0
    if read_at(t.fd, buf, (hi - lo) * ENTRY, t.base + lo * ENTRY) != 0:
        return -1
    pos = rt_search(buf, 0, hi - lo, key)
    if pos < 0:
        return 0
    memcpy(rec, buf + pos * ENTRY + KEY, REC)
    return 1


cdef enum:
    PREFETCH = 16          # keys ahead whose fence slot is fetched; their bucket at half that
    PREFETCH_MIN = 4096    # entries: a smaller table stays in the CPU caches


cdef inline void prefetch(const Table* t, const uint8_t* kp, Py_ssize_t stride, Py_ssize_t n,
                          Py_ssize_t i, const uint8_t* found) noexcept nogil:
    """Start loading what the searches of keys i + PREFETCH (fence slot) and i + PREFETCH / 2
    (its bucket's fingerprints and first entry) will read."""
    cdef Py_ssize_t j = i + PREFETCH
    cdef uint64_t b, lo
    if j < n and not found[j]:
        b = rt_top(kp + j * stride) >> (64 - t.bits) if t.bits else 0
        __builtin_prefetch(t.fence + 4 * b)
    j = i + PREFETCH // 2
    if j < n and not found[j]:
        b = rt_top(kp + j * stride) >> (64 - t.bits) if t.bits else 0
        lo = rt_le32(t.fence + 4 * b)
        if lo < t.n:  # a damaged fence: no prefetch (the search clamps it)
            if t.fp != NULL:
                __builtin_prefetch(t.fp + lo)
            if t.e != NULL:
                __builtin_prefetch(t.e + lo * ENTRY)


cdef int _acquire(object obj, Py_buffer* view, uint64_t need, const uint8_t** out) except -1:
    """A read-only simple buffer of at least `need` bytes (released by the caller)."""
    PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    if <uint64_t>view.len < need:
        PyBuffer_Release(view)
        raise ValueError("buffer shorter than its entries or buckets")
    out[0] = <const uint8_t*>view.buf
    return 0


def find(keys, list tables, uint8_t[::1] found, uint8_t[::1] records, Py_ssize_t stride=KEY):
    """For each key in `keys` (n keys `stride` bytes apart, each taken by its first 24 bytes:
    full 32-byte ids joined work as they are): found[i] = 1 + the index of the first table
    holding it, or 0 when none does; records[12 i : 12 i + 12] = its record from that table
    (left as it was when not found). Tables are (entries, n, fence or None, bits[, fps]), or
    (None, n, fence or None, bits, fps, fd, offset) to read the entries from a file with pread
    (no mapping: a search of a few keys then maps nothing into the process); fps (n bytes, or
    None) are the fingerprints, used only with a fence. Returns the number found; raises
    OSError if a file is shorter than its entries."""
    cdef Py_buffer views[3 * MAX_TABLES + 1]  # keys; entries, fingerprints, fence per table
    cdef int held = 0
    cdef Table tab[MAX_TABLES]
    cdef const uint8_t* kp
    cdef Py_ssize_t n, i, hits = 0
    cdef int t, nt = len(tables)
    cdef int r, short = 0
    cdef bint ahead
    cdef uint64_t tn
    cdef int bits
    cdef uint8_t buf[BUCKET_MAX * ENTRY]
    if nt > MAX_TABLES:
        raise ValueError(f"at most {MAX_TABLES} tables")
    try:
        _acquire(keys, &views[0], 0, &kp)
        held = 1
        if stride < KEY or views[0].len % stride:
            raise ValueError("keys must be `stride` >= 24 bytes each")
        n = views[0].len // stride
        if found.shape[0] < n or records.shape[0] < n * REC:
            raise ValueError("output buffers too short")
        for t in range(nt):
            spec = tuple(tables[t])  # lengths checked: this module indexes without bounds checks
            if len(spec) not in (4, 5, 7) or (len(spec) == 7) != (spec[0] is None):
                raise ValueError("a table is (entries, n, fence, bits[, fps]) or "
                                 "(None, n, fence, bits, fps, fd, offset)")
            entries, tn, fence, bits = spec[0], spec[1], spec[2], spec[3]
            if not 0 <= bits <= 31:
                raise ValueError("bad table")
            table_init(&tab[t], tn, bits)
            fps = spec[4] if len(spec) > 4 else None
            if entries is None:
                tab[t].fd, tab[t].base = spec[5], spec[6]
                if tab[t].fd < 0:
                    raise ValueError("bad file")
            elif tn:
                _acquire(entries, &views[held], tn * ENTRY, &tab[t].e)
                held += 1
            if fps is not None and fence is not None and tn:
                _acquire(fps, &views[held], tn, &tab[t].fp)
                held += 1
            if fence is not None:
                _acquire(fence, &views[held], ((<uint64_t>1 << bits) + 1) * 4, &tab[t].fence)
                held += 1
        with nogil:
            for i in range(n):
                found[i] = 0
            # table by table, newest first, over the keys no newer table holds: the same answers
            # as key by key, and the next keys' fence slots and buckets can be prefetched while
            # this one is searched (a lookup in a large run is a few cache and TLB misses)
            for t in range(nt):
                ahead = tab[t].fence != NULL and tab[t].n > PREFETCH_MIN
                for i in range(n):
                    if ahead:
                        prefetch(&tab[t], kp, stride, n, i, &found[0])
                    if found[i]:
                        continue
                    r = table_find(&tab[t], kp + i * stride, &records[i * REC], buf)
                    if r < 0:
                        short = 1
                    elif r:
                        found[i] = <uint8_t>(t + 1)
                        hits += 1
    finally:
        for t in range(held):
            PyBuffer_Release(&views[t])
    if short:
        raise OSError("a chunk run file is shorter than its entries")
    return hits


def check(entries, uint64_t n, fence, int bits, fps=None):
    """The index of the first entry out of strictly increasing key order or with a wrong
    fingerprint, or of the first fence slot that disagrees with the entries (as -2 - slot);
    -1 when the table is sound."""
    cdef Table tab[1]
    cdef Py_buffer fview
    cdef const uint8_t* fp = NULL
    keep = _tables([(entries, n, fence, bits)], tab)
    if fps is not None:
        _acquire(fps, &fview, n, &fp)
    cdef uint64_t i, b, nb = (<uint64_t>1 << bits) if fence is not None else 0
    cdef uint64_t want = 0
    cdef int64_t bad = -1
    with nogil:
        for i in range(1, n):
            if rt_cmp(tab[0].e + (i - 1) * ENTRY, tab[0].e + i * ENTRY) >= 0:
                bad = <int64_t>i
                break
        if bad == -1 and fp != NULL:
            for i in range(n):
                if fp[i] != tab[0].e[i * ENTRY + FP_BYTE]:
                    bad = <int64_t>i
                    break
        if bad == -1 and tab[0].fence != NULL:
            # fence[b] must be the first entry of bucket >= b
            for b in range(nb + 1):
                while want < n and (rt_top(tab[0].e + want * ENTRY) >> (64 - bits) if bits else 0) < b:
                    want += 1
                if rt_le32(tab[0].fence + 4 * b) != (want if b < nb else n):
                    bad = -2 - <int64_t>b
                    break
    if fp != NULL:
        PyBuffer_Release(&fview)
    return bad


def fence_ok(fence, uint64_t n, int bits):
    """True when `fence` has 2^bits + 1 slots, starts at 0, never decreases and ends at n."""
    cdef Py_buffer view
    cdef const uint8_t* f
    cdef uint64_t i, slots = (<uint64_t>1 << bits) + 1
    cdef bint ok = True
    if not 0 <= bits <= 31:
        return False
    _acquire(fence, &view, 0, &f)
    try:
        if <uint64_t>view.len != 4 * slots:
            return False
        with nogil:
            if rt_le32(f) != 0 or rt_le32(f + 4 * (slots - 1)) != n:
                ok = False
            else:
                for i in range(1, slots):
                    if rt_le32(f + 4 * i) < rt_le32(f + 4 * (i - 1)):
                        ok = False
                        break
        return ok
    finally:
        PyBuffer_Release(&view)


def fence_from_counts(counts, int bits):
    """The fence (2^bits + 1 u32 LE slots) of a table whose bucket b holds counts[b] entries
    (`counts`: 2^bits native u32, as `Merger.fill` fills them)."""
    cdef Py_buffer view
    cdef const uint8_t* c
    cdef uint64_t i, nb = <uint64_t>1 << bits
    cdef uint32_t total = 0, v
    if not 0 <= bits <= 31:
        raise ValueError("bits out of range")
    _acquire(counts, &view, 4 * nb, &c)
    out = bytearray(4 * (nb + 1))
    cdef uint8_t* o = out
    try:
        with nogil:
            for i in range(nb + 1):
                o[4 * i] = total & 0xFF
                o[4 * i + 1] = (total >> 8) & 0xFF
                o[4 * i + 2] = (total >> 16) & 0xFF
                o[4 * i + 3] = total >> 24
                if i < nb:
                    memcpy(&v, c + 4 * i, 4)
                    total += v
    finally:
        PyBuffer_Release(&view)
    return bytes(out)


cdef class Merger:
    """Merges tables (newest first) into one, in key order, one key once (the newest table's
    record), a buffer at a time: `fill(out)` writes whole entries and returns how many."""

    cdef Table tab[MAX_TABLES]
    cdef uint64_t pos[MAX_TABLES]
    cdef int nt
    cdef list keep
    cdef uint8_t last[KEY]
    cdef bint started
    cdef public uint64_t written

    def __init__(self, list tables):
        self.keep = _tables([(e, n, None, 0) for e, n in tables], self.tab)
        self.nt = len(tables)
        for t in range(self.nt):
            self.pos[t] = 0
        self.started = False
        self.written = 0

    def position(self, int t) -> int:
        """Entries of table t consumed so far."""
        if not 0 <= t < self.nt:
            raise IndexError(t)
        return self.pos[t]

    def fill(self, uint8_t[::1] out, counts=None, int bits=0):
        """Write up to len(out) // 36 entries into `out`; with `counts` (a writable buffer of
        2^bits u32), count each written key in its bucket. Returns the entries written (0 once
        every table is consumed); raises ValueError on a table out of key order."""
        cdef uint32_t[::1] cv
        cdef uint32_t* cp = NULL
        cdef Py_ssize_t cap = out.shape[0] // ENTRY, w = 0
        cdef int t, best, c, bad = 0
        cdef const uint8_t* k
        cdef const uint8_t* bk
        if counts is not None:
            cv = counts
            if not 0 <= bits <= 31 or <uint64_t>cv.shape[0] < (<uint64_t>1 << bits):
                raise ValueError("counts shorter than 2^bits")
            cp = &cv[0]
        with nogil:
            while w < cap:
                best = -1
                bk = NULL
                for t in range(self.nt):
                    if self.pos[t] < self.tab[t].n:
                        k = self.tab[t].e + self.pos[t] * ENTRY
                        if best < 0 or rt_cmp(k, bk) < 0:  # ties: the newer (earlier) table
                            best = t
                            bk = k
                if best < 0:
                    break
                if self.started and rt_cmp(bk, self.last) <= 0:
                    bad = 1
                    break
                memcpy(&out[w * ENTRY], bk, ENTRY)
                memcpy(self.last, bk, KEY)
                self.started = True
                if cp != NULL:
                    cp[rt_top(bk) >> (64 - bits) if bits else 0] += 1
                w += 1
                for t in range(self.nt):  # every table's entry of this key is used up
                    if self.pos[t] < self.tab[t].n and \
                            rt_cmp(self.tab[t].e + self.pos[t] * ENTRY, self.last) == 0:
                        self.pos[t] += 1
        self.written += w
        if bad:
            raise ValueError("a table is out of key order")
        return w
