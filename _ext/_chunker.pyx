# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""FastCDC-style content-defined chunking: the scan loop only, with the GIL released.

The Python-facing API is `find_cuts`; `archivestore.chunking` owns buffering and parameters and
keeps the pure-Python reference loop that this one must match bit for bit.
"""
from libc.stdint cimport uint8_t, uint64_t
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE


cdef inline Py_ssize_t _cut(const uint8_t* p, Py_ssize_t n, Py_ssize_t minsz, Py_ssize_t avgsz,
                            Py_ssize_t maxsz, uint64_t th_small, uint64_t th_large,
                            const uint64_t* gear) noexcept nogil:
    """Length of the chunk starting at p, given n bytes available (n >= maxsz unless at EOF)."""
    cdef Py_ssize_t i, normal
    cdef uint64_t h = 0
    if n <= minsz:
        return n
    if n > maxsz:
        n = maxsz
    normal = avgsz if n > avgsz else n
    i = minsz
    while i < normal:
        h = (h << 1) + gear[p[i]]
        if h < th_small:
            return i + 1
        i += 1
    while i < n:
        h = (h << 1) + gear[p[i]]
        if h < th_large:
            return i + 1
        i += 1
    return n


def find_cuts(data, Py_ssize_t start, Py_ssize_t end, bint eof, Py_ssize_t minsz,
              Py_ssize_t avgsz, Py_ssize_t maxsz, unsigned long long th_small,
              unsigned long long th_large, gear_table, Py_ssize_t align=1):
    """Chunk lengths for data[start:end], in order, and the offset where scanning stopped.

    A chunk is only emitted when at least `maxsz` bytes follow its start or `eof` is true, so the
    cut points do not depend on how the input was split into buffers. Inside audio data `align`
    is the frame size: every cut except the final one at EOF lands on a multiple of it.
    """
    cdef Py_buffer view, gview
    cdef const uint8_t* p
    cdef const uint64_t* gear
    cdef Py_ssize_t pos = start, n, c, count = 0, cap
    cdef Py_ssize_t[:] out
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
                    break
                c = _cut(p + pos, n, minsz, avgsz, maxsz, th_small, th_large, gear)
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
