# cython: language_level=3, boundscheck=False, wraparound=False
"""Bulk copies between buffers, with the GIL released.

Packs and restored files are gathered into 2 MiB device buffers (`directio`), and a chunk reader
moves the unscanned tail of its buffer into the next one (`chunking`). Done by slice assignment,
those copies hold the GIL for 0.1-0.3 ms each, and every thread that comes back from its own
GIL-free work (hashing, encoding, reading) waits for them. `copy_into` is the same copy without
the GIL. `empty` is a bytearray whose pages are not touched until written. `populate` faults
in the pages of a fresh mapping without the GIL (MAP_POPULATE in `mmap.mmap` holds it: 1-10 ms
per 2 MiB device buffer on a busy VM, while every other thread waited).
"""
from libc.string cimport memmove
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytearray cimport PyByteArray_FromStringAndSize
from posix.unistd cimport sysconf, _SC_PAGESIZE

cdef extern from "<sys/mman.h>" nogil:
    int madvise(void* addr, size_t length, int advice)

cdef extern from *:
    """
    #ifndef MADV_POPULATE_WRITE
    #define MADV_POPULATE_WRITE 23
    #endif
    """
    int MADV_POPULATE_WRITE

cdef size_t PAGE = <size_t>sysconf(_SC_PAGESIZE)  # 4 KiB on x86-64; 16 or 64 KiB on some arm64

# Below this many bytes the GIL is kept: releasing and taking it back costs more than the copy.
cdef Py_ssize_t NOGIL_MIN = 65536


def copy_into(dst, Py_ssize_t at, src):
    """dst[at:at + len(src)] = src (overlap allowed); returns len(src). `dst` must be a
    writable buffer that holds those bytes, else ValueError; buffers stay exported (so neither
    can be resized or closed) while the copy runs."""
    cdef Py_buffer d, s
    cdef Py_ssize_t n
    PyObject_GetBuffer(dst, &d, PyBUF_WRITABLE)
    try:
        PyObject_GetBuffer(src, &s, PyBUF_SIMPLE)
        try:
            n = s.len
            if at < 0 or at > d.len or n > d.len - at:
                raise ValueError(f"copy of {n} bytes at {at} outside a buffer of {d.len}")
            if n >= NOGIL_MIN:
                with nogil:
                    memmove(<char*>d.buf + at, s.buf, <size_t>n)
            else:
                memmove(<char*>d.buf + at, s.buf, <size_t>n)
        finally:
            PyBuffer_Release(&s)
    finally:
        PyBuffer_Release(&d)
    return n


def empty(Py_ssize_t n):
    """A bytearray of `n` bytes with undefined contents. `bytearray(n)` zero-fills, which
    faults in every page at once; a buffer that is written before it is read (an encoder's
    output) then holds in memory only the pages it has used."""
    if n < 0:
        raise ValueError("negative size")
    return PyByteArray_FromStringAndSize(NULL, n)


def populate(buf, bint advise=True):
    """Fault in every page of the writable buffer `buf` (a fresh anonymous mapping, whose bytes
    are undefined to the caller), without the GIL: madvise(MADV_POPULATE_WRITE) where the
    kernel has it (5.14+), else one write per page (a fault each, taken from user space;
    `advise=False` takes that way, for its test)."""
    cdef Py_buffer b
    cdef size_t i, n, start, addr
    cdef char* p
    cdef int rc
    PyObject_GetBuffer(buf, &b, PyBUF_WRITABLE)
    try:
        p = <char*>b.buf
        n = <size_t>b.len
        if n == 0:
            return
        with nogil:
            addr = <size_t>p
            start = addr & ~(PAGE - 1)
            rc = madvise(<void*>start, addr + n - start, MADV_POPULATE_WRITE) if advise else -1
            if rc != 0:
                i = 0
                while i < n:
                    (<volatile char*>(p + i))[0] = 0
                    i += PAGE - ((addr + i) & (PAGE - 1))
    finally:
        PyBuffer_Release(&b)
