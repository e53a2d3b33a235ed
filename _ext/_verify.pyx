# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CRC-32 (zlib polynomial) for blob verification, computed with the GIL released.

`crc32(data, value=0)` returns exactly what `zlib.crc32(data, value)` returns. On x86-64 CPUs
with PCLMULQDQ it folds 64 bytes per step with carry-less multiplies (about 5x zlib 1.2.13's
speed on the build machine), and with VPCLMULQDQ and AVX2 128 bytes per step, two folds per
instruction (9.7 -> 19-20 GB/s on data in cache there); elsewhere it runs a slice-by-8 table
loop.

How the folding works (reflected CRC, so the first bit of the message is the highest power of
x). A 16-byte lane loaded little-endian holds a 128-bit polynomial X = H * x^64 + L, H being the
low 8 bytes (earlier in the message). Moving X forward by d bits (so that it lines up with the
lane d bits later, to be XORed into it) needs X * x^d mod P only up to congruence, because the
CRC is (message * x^32) mod P. A carry-less multiply of two 64-bit reflected values gives the
127-bit reflected product, i.e. the 128-bit reflected product times x, so
    clmul(H, rev64(x^(d+63) mod P)) ^ clmul(L, rev64(x^(d-1) mod P))
is congruent to X * x^d and fits in 128 bits. The constants below are those residues for
d = 1024 (eight lanes in flight, VPCLMULQDQ), d = 512 (four lanes) and d = 128 (one lane);
`tests/test_verify.py` recomputes them from the polynomial. What is left after folding (one
lane and fewer than 16 tail bytes) runs through the table loop with a zero register: that is
the remainder of the folded polynomial.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    static uint32_t vfy_table[8][256];

    static void vfy_init_tables(void) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            vfy_table[0][n] = c;
        }
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = vfy_table[0][n];
            for (int t = 1; t < 8; t++) {
                c = vfy_table[0][c & 0xFF] ^ (c >> 8);
                vfy_table[t][n] = c;
            }
        }
    }

    /* Raw register update (no pre/post inversion): slice-by-8. */
    static uint32_t vfy_crc_table(uint32_t c, const uint8_t* p, size_t n) {
        while (n && ((uintptr_t)p & 7)) { c = vfy_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8); n--; }
        while (n >= 8) {
            uint32_t a, b;
            memcpy(&a, p, 4); memcpy(&b, p + 4, 4);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            a = __builtin_bswap32(a); b = __builtin_bswap32(b);
    #endif
            a ^= c;
            c = vfy_table[7][a & 0xFF] ^ vfy_table[6][(a >> 8) & 0xFF] ^
                vfy_table[5][(a >> 16) & 0xFF] ^ vfy_table[4][a >> 24] ^
                vfy_table[3][b & 0xFF] ^ vfy_table[2][(b >> 8) & 0xFF] ^
                vfy_table[1][(b >> 16) & 0xFF] ^ vfy_table[0][b >> 24];
            p += 8; n -= 8;
        }
        while (n--) c = vfy_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        return c;
    }

    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #define VFY_HAVE_CLMUL 1
    /* rev64(x^(d+63) mod P) in the low half, rev64(x^(d-1) mod P) in the high half. */
    static const uint64_t VFY_K512[2] = {0x653d982200000000ull, 0xcad38e8f00000000ull};
    static const uint64_t VFY_K128[2] = {0x65673b4600000000ull, 0x9ba54c6f00000000ull};

    __attribute__((target("pclmul,sse2")))
    static inline __m128i vfy_fold(__m128i x, __m128i k) {
        return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
    }

    /* The end of both folding loops: the last lane x takes the rest 16 bytes at a time, and
       what is left (x and fewer than 16 bytes) goes through the table loop. */
    __attribute__((target("pclmul,sse2")))
    static inline uint32_t vfy_clmul_finish(__m128i x, __m128i k128, const uint8_t* p, size_t n) {
        uint8_t lane[16];
        while (n >= 16) {
            x = _mm_xor_si128(vfy_fold(x, k128), _mm_loadu_si128((const __m128i*)p));
            p += 16; n -= 16;
        }
        _mm_storeu_si128((__m128i*)lane, x);
        return vfy_crc_table(vfy_crc_table(0, lane, 16), p, n);
    }

    /* Raw register update for n >= 64 bytes. */
    __attribute__((target("pclmul,sse2")))
    static uint32_t vfy_crc_clmul(uint32_t c, const uint8_t* p, size_t n) {
        const __m128i k512 = _mm_loadu_si128((const __m128i*)VFY_K512);
        const __m128i k128 = _mm_loadu_si128((const __m128i*)VFY_K128);
        __m128i x0 = _mm_loadu_si128((const __m128i*)(p + 0));
        __m128i x1 = _mm_loadu_si128((const __m128i*)(p + 16));
        __m128i x2 = _mm_loadu_si128((const __m128i*)(p + 32));
        __m128i x3 = _mm_loadu_si128((const __m128i*)(p + 48));
        x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)c));
        p += 64; n -= 64;
        while (n >= 64) {
            x0 = _mm_xor_si128(vfy_fold(x0, k512), _mm_loadu_si128((const __m128i*)(p + 0)));
            x1 = _mm_xor_si128(vfy_fold(x1, k512), _mm_loadu_si128((const __m128i*)(p + 16)));
            x2 = _mm_xor_si128(vfy_fold(x2, k512), _mm_loadu_si128((const __m128i*)(p + 32)));
            x3 = _mm_xor_si128(vfy_fold(x3, k512), _mm_loadu_si128((const __m128i*)(p + 48)));
            p += 64; n -= 64;
        }
        x1 = _mm_xor_si128(x1, vfy_fold(x0, k128));
        x2 = _mm_xor_si128(x2, vfy_fold(x1, k128));
        x3 = _mm_xor_si128(x3, vfy_fold(x2, k128));
        return vfy_clmul_finish(x3, k128, p, n);
    }

    /* The same folding eight lanes at a time, two in each 256-bit register (VPCLMULQDQ: two
       carry-less multiplies per instruction, where the CPU issues them at the rate of one
       128-bit one), d = 1024; the eight lanes are then folded into one in message order with
       the d = 128 constants and the rest goes through vfy_clmul_finish. Raw update for
       n >= 128. */
    static const uint64_t VFY_K1024[2] = {0x7d657a1000000000ull, 0x7406fa9500000000ull};

    __attribute__((target("vpclmulqdq,pclmul,avx2")))
    static inline __m256i vfy_fold2(__m256i y, __m256i k) {
        return _mm256_xor_si256(_mm256_clmulepi64_epi128(y, k, 0x00), _mm256_clmulepi64_epi128(y, k, 0x11));
    }

    __attribute__((target("vpclmulqdq,pclmul,avx2")))
    static uint32_t vfy_crc_vclmul(uint32_t c, const uint8_t* p, size_t n) {
        const __m256i k1024 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)VFY_K1024));
        const __m128i k128 = _mm_loadu_si128((const __m128i*)VFY_K128);
        __m256i y0 = _mm256_loadu_si256((const __m256i*)(p + 0));
        __m256i y1 = _mm256_loadu_si256((const __m256i*)(p + 32));
        __m256i y2 = _mm256_loadu_si256((const __m256i*)(p + 64));
        __m256i y3 = _mm256_loadu_si256((const __m256i*)(p + 96));
        y0 = _mm256_xor_si256(y0, _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, (int)c));
        p += 128; n -= 128;
        while (n >= 128) {
            y0 = _mm256_xor_si256(vfy_fold2(y0, k1024), _mm256_loadu_si256((const __m256i*)(p + 0)));
            y1 = _mm256_xor_si256(vfy_fold2(y1, k1024), _mm256_loadu_si256((const __m256i*)(p + 32)));
            y2 = _mm256_xor_si256(vfy_fold2(y2, k1024), _mm256_loadu_si256((const __m256i*)(p + 64)));
            y3 = _mm256_xor_si256(vfy_fold2(y3, k1024), _mm256_loadu_si256((const __m256i*)(p + 96)));
            p += 128; n -= 128;
        }
        __m128i x = _mm256_castsi256_si128(y0);
        x = _mm_xor_si128(_mm256_extracti128_si256(y0, 1), vfy_fold(x, k128));
        x = _mm_xor_si128(_mm256_castsi256_si128(y1), vfy_fold(x, k128));
        x = _mm_xor_si128(_mm256_extracti128_si256(y1, 1), vfy_fold(x, k128));
        x = _mm_xor_si128(_mm256_castsi256_si128(y2), vfy_fold(x, k128));
        x = _mm_xor_si128(_mm256_extracti128_si256(y2, 1), vfy_fold(x, k128));
        x = _mm_xor_si128(_mm256_castsi256_si128(y3), vfy_fold(x, k128));
        x = _mm_xor_si128(_mm256_extracti128_si256(y3, 1), vfy_fold(x, k128));
        return vfy_clmul_finish(x, k128, p, n);
    }

    static int vfy_use_clmul = -1, vfy_use_vclmul = 0;
    static int vfy_clmul_available(void) {
        if (vfy_use_clmul < 0) {
            __builtin_cpu_init();
            vfy_use_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
            vfy_use_vclmul = vfy_use_clmul && __builtin_cpu_supports("vpclmulqdq") &&
                             __builtin_cpu_supports("avx2");
        }
        return vfy_use_clmul;
    }
    static int vfy_vclmul_available(void) { return vfy_clmul_available() && vfy_use_vclmul; }
    #else
    #define VFY_HAVE_CLMUL 0
    static uint32_t vfy_crc_clmul(uint32_t c, const uint8_t* p, size_t n) { return vfy_crc_table(c, p, n); }
    static uint32_t vfy_crc_vclmul(uint32_t c, const uint8_t* p, size_t n) { return vfy_crc_table(c, p, n); }
    static int vfy_clmul_available(void) { return 0; }
    static int vfy_vclmul_available(void) { return 0; }
    #endif

    /* tests: 1 the table loop, 2 the 128-bit folding only, 0 the fastest the CPU has */
    static int vfy_force = 0;

    static uint32_t vfy_crc32(uint32_t value, const uint8_t* p, size_t n) {
        uint32_t c = ~value;
        if (n >= 128 && vfy_force == 0 && vfy_vclmul_available())
            c = vfy_crc_vclmul(c, p, n);
        else if (n >= 64 && vfy_force != 1 && vfy_clmul_available())
            c = vfy_crc_clmul(c, p, n);
        else
            c = vfy_crc_table(c, p, n);
        return ~c;
    }
    """
    void vfy_init_tables() nogil
    uint32_t vfy_crc32(uint32_t value, const uint8_t* p, size_t n) nogil
    int vfy_clmul_available() nogil
    int vfy_vclmul_available() nogil
    int vfy_force

vfy_init_tables()
vfy_clmul_available()  # the CPU checks once, at import (not raced by the first two callers)

# Below this many bytes the GIL is kept: releasing it costs more than the work.
cdef Py_ssize_t NOGIL_MIN = 16384


def crc32(data, unsigned long value=0):
    """zlib.crc32(data, value), computed without the GIL for large buffers."""
    cdef Py_buffer view
    cdef uint32_t c = <uint32_t>(value & 0xFFFFFFFF)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len >= NOGIL_MIN:
            with nogil:
                c = vfy_crc32(c, <const uint8_t*>view.buf, <size_t>view.len)
        else:
            c = vfy_crc32(c, <const uint8_t*>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return c


def blob_crc(data, Py_ssize_t start, Py_ssize_t stored_len):
    """(stored CRC field, computed CRC) of the blob at data[start:]: the CRC covers header bytes
    0..47 then the `stored_len` bytes after the 52-byte header. The caller has checked that
    data holds start + 52 + stored_len bytes."""
    cdef Py_buffer view
    cdef const uint8_t* p
    cdef uint32_t c, field
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if start < 0 or stored_len < 0 or start + 52 + stored_len > view.len:
            raise ValueError("blob range outside the buffer")
        p = <const uint8_t*>view.buf + start
        field = <uint32_t>p[48] | (<uint32_t>p[49] << 8) | (<uint32_t>p[50] << 16) | (<uint32_t>p[51] << 24)
        with nogil:
            c = vfy_crc32(0, p, 48)
            c = vfy_crc32(c, p + 52, <size_t>stored_len)
    finally:
        PyBuffer_Release(&view)
    return field, c


def clmul_available():
    """True when the carry-less multiply path is in use on this CPU."""
    return bool(vfy_clmul_available())


def vclmul_available():
    """True when the 256-bit carry-less multiply path (VPCLMULQDQ) is in use on this CPU."""
    return bool(vfy_vclmul_available())


def _force_path(str path):
    """Tests: "table", "clmul" (the 128-bit folding even where VPCLMULQDQ is), or "auto"."""
    global vfy_force
    vfy_force = {"auto": 0, "table": 1, "clmul": 2}[path]
