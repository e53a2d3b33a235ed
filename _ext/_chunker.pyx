# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""FastCDC-style content-defined chunking: the scan loop only, with the GIL released.

The Python-facing API is `find_cuts`; `archivestore.chunking` owns buffering and parameters and
keeps the pure-Python reference loop that this one must match bit for bit.
"""
from libc.stdint cimport uint8_t, uint64_t
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE


cdef extern from *:
    """
    #include <stdint.h>

    /* h_i = 2 h_{i-1} + gear[p[i]] (mod 2^64) forgets a byte after 64 steps, so a chain started
       64 bytes before position x has the same h at x as the serial scan, provided it starts at
       or after minsz. The scan runs four such chains over adjacent segments of a window: four
       independent dependency chains instead of one.

       Positions are visits: visit k is the byte q[k * S]. S = 1 hashes every byte; S = 3 hashes
       one byte of each 24-bit sample (the caller points q at the sample's middle byte). S is a
       compile-time constant in each instance (cdc_scan1, cdc_scan3). */
    #define CDC_WARMUP 64
    #define CDC_STEP(h, byte) ((h) = ((h) << 1) + gear[byte])

    /* Steps the four chains through segments ending at visits e, e + W, e + 2W, e + 3W, from
       offset j (< 0) on, and stops after the step where a chain falls below th (later chains
       keep their previous value). Returns that offset, or 0 when no chain hit. */
    static inline __attribute__((always_inline)) Py_ssize_t cdc_segments(
            const uint8_t* e, Py_ssize_t j, const Py_ssize_t W, uint64_t* h, uint64_t th,
            const uint64_t* gear, const Py_ssize_t S) {
        const uint8_t *e1 = e + W * S, *e2 = e + 2 * W * S, *e3 = e + 3 * W * S;
        uint64_t h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3];
        for (; j < 0; j++) {
            CDC_STEP(h0, e[j * S]);
            if (h0 < th) break;
            CDC_STEP(h1, e1[j * S]);
            if (h1 < th) break;
            CDC_STEP(h2, e2[j * S]);
            if (h2 < th) break;
            CDC_STEP(h3, e3[j * S]);
            if (h3 < th) break;
        }
        h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3;
        return j;
    }

    /* Rounds of 4 segments of W visits each over [*ip, b) while a whole round fits; returns the
       first visit k with h_k < th as k + 1, or 0 with *ip and *hp (h at *ip - 1) advanced. */
    static inline __attribute__((always_inline)) Py_ssize_t cdc_rounds(
            const uint8_t* q, Py_ssize_t* ip, Py_ssize_t b, uint64_t* hp, uint64_t th,
            const uint64_t* gear, const Py_ssize_t W, const Py_ssize_t S) {
        Py_ssize_t i = *ip, j, x, stop, w;
        uint64_t h[4];
        const uint8_t* e;
        h[0] = *hp;
        while (b - i >= 4 * W) {
            e = q + (i + W) * S;
            h[1] = h[2] = h[3] = 0;
            for (w = -CDC_WARMUP; w < 0; w++) {
                CDC_STEP(h[1], e[w * S]);
                CDC_STEP(h[2], e[(w + W) * S]);
                CDC_STEP(h[3], e[(w + 2 * W) * S]);
            }
            j = cdc_segments(e, -W, W, h, th, gear, S);
            x = i + W + j;  /* the chains stopped at x, x + W, x + 2W, x + 3W */
            if (h[0] < th) return x + 1;
            if (h[1] < th) { stop = x + W; goto resolve; }
            if (h[2] < th) { stop = x + 2 * W; goto resolve; }
            if (h[3] < th) { stop = x + 3 * W; goto resolve; }
            h[0] = h[3];
            i += 4 * W;
        }
        *ip = i;
        *hp = h[0];
        return 0;
    resolve:
        /* a later segment hit at `stop`, but an earlier one may still hit after x: go on
           serially from the exact state of the first chain */
        for (x++; x < stop; x++) {
            CDC_STEP(h[0], q[x * S]);
            if (h[0] < th) return x + 1;
        }
        return stop + 1;
    }

    /* First visit k in [a, b) with h_k < th as k + 1, else 0; *hp holds h_{a-1} and gets
       h_{b-1}. Requires a >= the first visit at or after minsz. Long spans go in 16384-visit
       segments, the rest in 64-visit ones (constant sizes, so that the offsets are known to the
       compiler). */
    static inline __attribute__((always_inline)) Py_ssize_t cdc_scan_s(
            const uint8_t* q, Py_ssize_t a, Py_ssize_t b, uint64_t* hp, uint64_t th,
            const uint64_t* gear, const Py_ssize_t S) {
        Py_ssize_t r, i = a;
        uint64_t h;
        if ((r = cdc_rounds(q, &i, b, hp, th, gear, 16384, S))) return r;
        if ((r = cdc_rounds(q, &i, b, hp, th, gear, CDC_WARMUP, S))) return r;
        h = *hp;
        for (; i < b; i++) {
            CDC_STEP(h, q[i * S]);
            if (h < th) return i + 1;
        }
        *hp = h;
        return 0;
    }

    /* Aligned: the speed of the loop depends on where it lands. */
    static __attribute__((aligned(64))) Py_ssize_t cdc_scan1(
            const uint8_t* q, Py_ssize_t a, Py_ssize_t b, uint64_t* hp, uint64_t th,
            const uint64_t* gear) {
        return cdc_scan_s(q, a, b, hp, th, gear, 1);
    }

    static __attribute__((aligned(64))) Py_ssize_t cdc_scan3(
            const uint8_t* q, Py_ssize_t a, Py_ssize_t b, uint64_t* hp, uint64_t th,
            const uint64_t* gear) {
        return cdc_scan_s(q, a, b, hp, th, gear, 3);
    }

    static inline Py_ssize_t cdc_scan(const uint8_t* q, Py_ssize_t a, Py_ssize_t b, uint64_t* hp,
                                      uint64_t th, const uint64_t* gear, Py_ssize_t S) {
        return S == 3 ? cdc_scan3(q, a, b, hp, th, gear) : cdc_scan1(q, a, b, hp, th, gear);
    }
    """
    Py_ssize_t cdc_scan(const uint8_t* q, Py_ssize_t a, Py_ssize_t b, uint64_t* hp, uint64_t th,
                        const uint64_t* gear, Py_ssize_t S) noexcept nogil


cdef inline Py_ssize_t _visits(Py_ssize_t x, Py_ssize_t S, Py_ssize_t ph) noexcept nogil:
    """Visits (bytes ph, ph + S, ph + 2S, ...) before byte offset x >= ph."""
    return (x - ph + S - 1) // S


cdef inline Py_ssize_t _scan(const uint8_t* p, Py_ssize_t n, Py_ssize_t minsz, Py_ssize_t normal,
                             uint64_t th_small, uint64_t th_large, const uint64_t* gear,
                             Py_ssize_t S) noexcept nogil:
    """Cut length for the first hit in bytes [minsz, n) of the chunk at p (th_small before
    `normal`, th_large from it; h carries across), else 0. Only the visited bytes are hashed."""
    cdef Py_ssize_t ph = S // 2, r
    cdef uint64_t h = 0
    cdef const uint8_t* q = p + ph
    r = cdc_scan(q, _visits(minsz, S, ph), _visits(normal, S, ph), &h, th_small, gear, S)
    if r == 0:
        r = cdc_scan(q, _visits(normal, S, ph), _visits(n, S, ph), &h, th_large, gear, S)
    return ph + (r - 1) * S + 1 if r else 0


cdef inline Py_ssize_t _cut(const uint8_t* p, Py_ssize_t n, Py_ssize_t minsz, Py_ssize_t avgsz,
                            Py_ssize_t maxsz, uint64_t th_small, uint64_t th_large,
                            const uint64_t* gear, Py_ssize_t S) noexcept nogil:
    """Length of the chunk starting at p, given n bytes available (n >= maxsz unless at EOF).

    The threshold is th_small before `normal` and th_large from it on; h carries across.
    """
    cdef Py_ssize_t normal, r
    if n <= minsz:
        return n
    if n > maxsz:
        n = maxsz
    normal = avgsz if n > avgsz else n
    r = _scan(p, n, minsz, normal, th_small, th_large, gear, S)
    return r if r else n


cdef inline Py_ssize_t _hit(const uint8_t* p, Py_ssize_t n, Py_ssize_t minsz, Py_ssize_t avgsz,
                            uint64_t th_small, uint64_t th_large,
                            const uint64_t* gear, Py_ssize_t S) noexcept nogil:
    """Length of the chunk starting at p when n (minsz < n < maxsz) bytes, not the end of the
    data, already hold its cut, else 0. A hit before n - 1 is the cut whatever follows: hits are
    taken first come, the thresholds switch at avgsz in any case (`_cut`: normal is avgsz once
    more than avgsz bytes are there, and positions below n see th_small up to avgsz either way),
    and the frame rounding applies as to any cut short of EOF. A hit at n - 1 is not taken: had
    the data ended there, that cut would not be rounded."""
    cdef Py_ssize_t normal = avgsz if n > avgsz else n, r
    r = _scan(p, n, minsz, normal, th_small, th_large, gear, S)
    return r if r < n else 0


def find_cuts(data, Py_ssize_t start, Py_ssize_t end, bint eof, Py_ssize_t minsz,
              Py_ssize_t avgsz, Py_ssize_t maxsz, unsigned long long th_small,
              unsigned long long th_large, gear_table, Py_ssize_t align=1, Py_ssize_t stride=1):
    """Chunk lengths for data[start:end], in order, and the offset where scanning stopped.

    A chunk is only emitted when at least `maxsz` bytes follow its start, `eof` is true, or its
    cut is found before `end` (see `_hit`), so the cut points do not depend on how the input was
    split into buffers. The last lets a caller scan its buffer to the end and keep only the bytes
    after the last cut for its next read, not up to `maxsz` of them. Inside audio data `align`
    is the frame size: every cut except the final one at EOF lands on a multiple of it. With
    `stride` 3 only the middle byte of every 3 is hashed (24-bit samples; the thresholds given
    are per hashed byte).
    """
    cdef Py_buffer view, gview
    cdef const uint8_t* p
    cdef const uint64_t* gear
    cdef Py_ssize_t pos = start, n, c, count = 0, cap
    cdef Py_ssize_t[:] out
    if stride != 1 and stride != 3:
        raise ValueError("stride must be 1 or 3")
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    PyObject_GetBuffer(gear_table, &gview, PyBUF_SIMPLE)
    try:
        if end > view.len or start < 0 or start > end:
            raise ValueError("start/end outside the buffer")
        if gview.len != 256 * 8:
            raise ValueError("gear table must hold 256 uint64")
        if align < 1 or minsz < 0 or avgsz < minsz or maxsz < avgsz or maxsz < 1:
            raise ValueError("bad chunk parameters")
        p = <const uint8_t*> view.buf
        gear = <const uint64_t*> gview.buf
        cap = (end - start) // max(1, minsz - align + 1) + 2
        import array
        arr = array.array("q", bytes(8 * cap))
        out = arr
        with nogil:
            while pos < end:
                n = end - pos
                if n < maxsz and not eof:
                    c = _hit(p + pos, n, minsz, avgsz, th_small, th_large, gear,
                             stride) if n > minsz else 0
                    if c == 0:
                        break
                else:
                    c = _cut(p + pos, n, minsz, avgsz, maxsz, th_small, th_large, gear, stride)
                if not (eof and c == n) and align > 1:
                    if c > align:
                        c -= c % align
                out[count] = c
                count += 1
                pos += c
        return [out[i] for i in range(count)], pos
    finally:
        PyBuffer_Release(&gview)
        PyBuffer_Release(&view)


def is_cut(data, Py_ssize_t start, Py_ssize_t length, Py_ssize_t avail, bint eof,
           Py_ssize_t minsz, Py_ssize_t avgsz, Py_ssize_t maxsz, unsigned long long th_small,
           unsigned long long th_large, gear_table, Py_ssize_t align=1, Py_ssize_t stride=1):
    """Would `find_cuts` make its first chunk at `start` exactly `length` bytes long?

    `avail` bytes follow `start` (at least `maxsz` unless `eof`, as for find_cuts), but only
    the first `length + align - 1` of them (fewer at `avail`) need be in `data`. The caller
    vouches that no position before `start + length - 1` is a cut hit, which holds when these
    bytes are a chunk that find_cuts once cut from other data (same content, so the same hashes
    there). Only the positions from `length - 1` on, where the next bytes may differ, are
    scanned: O(64 + align), not O(length).
    """
    cdef Py_buffer view, gview
    cdef const uint8_t* p
    cdef const uint64_t* gear
    cdef Py_ssize_t n = avail, lim, normal, i0, i, s, end_i, c, k, ka, kb, ph = stride // 2
    cdef uint64_t h = 0
    cdef bint hit = False
    if stride != 1 and stride != 3:
        raise ValueError("stride must be 1 or 3")
    if length < 1 or length > avail or start < 0:
        return False
    if n <= minsz:
        return eof and length == n
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    PyObject_GetBuffer(gear_table, &gview, PyBUF_SIMPLE)
    try:
        if gview.len != 256 * 8:
            raise ValueError("gear table must hold 256 uint64")
        lim = maxsz if n > maxsz else n
        normal = avgsz if lim > avgsz else lim
        i0 = length - 1 if length - 1 > minsz else minsz
        # a hit at i >= length + align - 1 gives c >= length + align, which cannot round to length
        end_i = length + align - 1 if length + align - 1 < lim else lim
        if start + end_i > view.len:
            raise ValueError("start/length outside the buffer")
        p = <const uint8_t*> view.buf + start
        gear = <const uint64_t*> gview.buf
        c = lim
        if i0 < end_i:
            # visits: the bytes ph, ph + stride, ...; 63 of them before i0 (or all from minsz)
            ka = _visits(i0, stride, ph)
            kb = _visits(end_i, stride, ph)
            s = _visits(minsz, stride, ph)
            if ka - 63 > s:
                s = ka - 63
            for k in range(s, ka):
                h = (h << 1) + gear[p[ph + k * stride]]
            for k in range(ka, kb):
                i = ph + k * stride
                h = (h << 1) + gear[p[i]]
                if h < (th_small if i < normal else th_large):
                    c = i + 1
                    hit = True
                    break
        if not hit and end_i < lim:
            return False
        if not (eof and c == n) and align > 1:
            if c > align:
                c -= c % align
        return c == length
    finally:
        PyBuffer_Release(&gview)
        PyBuffer_Release(&view)
