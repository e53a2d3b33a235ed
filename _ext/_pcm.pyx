# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Lossless PCM codec (FLAC-like design, own format): the hot loops run with the GIL released.

Payload layout (all multi-byte header fields little-endian):

    0   u8   version (2; version 1 payloads are still read, see below)
    1   u8   format: bits code (0:8 1:16 2:24 3:32) | big_endian << 2 | is_float << 3
    2   u8   channels (1..255)
    3   u16  block size in frames (1..16384)
    5   u64  number of frames
    13  ...  one LSB-first bitstream, zero padded to a whole byte

Per block: [float only: 2 bits float mode, then for modes 1 and 2 a 9 bit exponent E + 256]
[stereo only: 2 bits channel mode: 0 L/R, 1 L/S, 2 S/R, 3 M/S] then one subframe per channel:

    2 bits type (0 constant, 1 verbatim, 2 fixed predictor, 3 LPC), 6 bits wasted low bits w
    constant: value (sbits bits)            verbatim: n samples of (sbits - w) bits
    fixed: 3 bits order (0..4), warm-up samples, residual
    LPC: 5 bits order-1 (orders 1..8 are valid), 4 bits precision-1, 5 bits shift,
         order coefficients (precision bits each), warm-up, residual
    residual: 4 bits partition order P, then 2**P partitions of n / 2**P residuals each (the
              first one order fewer), each: 6 bits Rice parameter k (0..56), then its codes,
              u = zigzag(residual) = 2r (r >= 0) or -2r - 1, q = u >> k:
        version 2: first the unary stream of all the partition's codes (per code q zero bits,
              then a one bit; q <= 63, anything longer is corrupt), then their k low bits
              (u mod 2**k) one after the other, k bits each (nothing when k = 0)
        version 1: per code q zero bits, a one bit, its k low bits (q not bounded)
              The two take the same number of bits; nothing else differs between them.

sbits is the sample width: bits (8..32), +1 for a side channel, 25 for float mode 2.

Float modes (32-bit IEEE, always bit-exact, NaN payloads and -0.0 included):
  0  the bit pattern as an int32 that orders like the value (used when a block has inf/NaN)
  1  every sample is v * 2**-E with integer |v| < 2**31 (e.g. 24-bit audio stored as float):
     the integers are coded, nothing else
  2  any finite floats: v = x * 2**E with max |v| in [2**23, 2**24); trunc(v) is coded like
     integer PCM, then per channel (after that channel's subframe; after both for stereo) the
     mantissa bits below it, raw: 23 - floor(log2 |trunc(v)|) bits, or for trunc(v) == 0 one
     flag bit (0: +0.0, 1: followed by the 32-bit pattern).

Decoding allocates the output (plain_len), a padded copy of the end of the payload (its last
64 KiB, or from the start of a block that runs into its last 64 bytes; the rest is read in
place) and two blocks of int64 scratch (<= 256 KiB), whatever the header says; verify()
allocates one block of output instead of plain_len. The version 2 residual reader keeps a
partition's quotients in 16 KiB of stack.

Implementation notes (none of this is format): version 2 residuals are read in two passes
per partition: the unary stream a 64-bit word at a time (set bits to quotients: tzcnt/blsr, or
vpcompressb over a byte ramp in the AVX-512 clone), then the low parts at the fixed bit offsets
i * k, joined with the quotients and unzigzagged (four or eight at a time in the AVX2 clone,
from 64-bit loads or gathers; eight per vpermb and vpsrlvq of k bytes in the AVX-512 one); no
chain runs through the code lengths. They are written in two packing passes (16 unary codes
and 2-8 low parts a put; the AVX-512 clone packs both with pext: codes as bytes or words 1 << q,
their q + 1 bits masked by one subtraction). For version 1 payloads the decoder reads each
subframe's residuals with a 64-bit register bit reader, refilled once per group of 1-8 codes (by k) which is decoded
without per-code checks and redone with them when it did not fit, into 2 * zigzag + 1 (a
vector pass turns that into the residuals); then the predictor runs over them in a second
pass, one function per order, unrolled by eight with the history in registers (LPC orders
5..8: taps 4..8 in double precision, exact). Each pass is bound by the instructions it issues
more than by its serial chain (bit position; predictor history), so interleaving the two (in
groups, or in one loop) measured slower. The version 1 writer (encode(..., version=1), kept for
comparisons) puts 2-4 Rice codes per store when they fit in 56 bits (16 residuals a step in
the AVX2 clone). The encoder's vector loops, the residual reader, the predictor and the interleaving
stores are compiled twice (baseline x86-64 and AVX2 / BMI2 / FMA clones, picked at import;
the version 2 residual reader and writer also an AVX-512 F/BW/DQ/VL/VBMI/VBMI2 clone)
with the same integer results, so a payload does not depend on the CPU that wrote it and
decodes the same everywhere (tests/test_pcm.py checks). The LPC analysis' autocorrelation is
worked out in float lanes (the same float operations in every clone), and again in double for
very predictable blocks, where float's rounding costs size.

8-bit samples with big_endian=False are unsigned (WAV); with big_endian=True signed (AIFF).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int8_t, int16_t, int32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset, memcmp
from libc.math cimport log2, frexp, cos, ldexp
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline uint64_t pcm_ld64(const uint8_t* p) {
        uint64_t v; memcpy(&v, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        return v;
    }
    static inline void pcm_st64(uint8_t* p, uint64_t v) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        memcpy(p, &v, 8);
    }
    static inline int pcm_ctz64(uint64_t v) { return __builtin_ctzll(v); }
    static inline int pcm_bitlen(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }
    static inline uint32_t pcm_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
    static inline float pcm_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

    /* Autocorrelation R[0..9] of x[0..n) in one pass with independent accumulators (lags are
       stored reversed so that the inner loop is a contiguous multiply-add the compiler
       vectorises). Deterministic: the summation order is fixed by this code. */
    static inline __attribute__((always_inline)) void pcm_autocorr10_body(const double* x, int n, double* R) {
        double a[10] = {0}, b[10] = {0};
        int i, j;
        for (i = 0; i < n && i < 9; i++)
            for (j = 0; j <= i; j++) a[9 - j] += x[i] * x[i - j];
        for (; i + 1 < n; i += 2) {
            const double xi = x[i], xk = x[i + 1];
            const double* p = x + i - 9;
            const double* q = x + i - 8;
            for (j = 0; j < 10; j++) a[j] += xi * p[j];
            for (j = 0; j < 10; j++) b[j] += xk * q[j];
        }
        for (; i < n; i++) {
            const double* p = x + i - 9;
            for (j = 0; j < 10; j++) a[j] += x[i] * p[j];
        }
        for (j = 0; j < 10; j++) R[9 - j] = a[j] + b[j];
    }
    /* De-interleave one channel of n samples (stride bytes apart) into int64, and back. The
       switch sits outside the loops so that each loop is specialised. 8-bit: unsigned when
       little-endian (WAV), signed when big-endian (AIFF). */
    static void pcm_load(const uint8_t* p, int stride, int n, int bits, int be, int64_t* x) {
        int i;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* little-endian 16/24-bit mono and stereo: word loads with a constant stride (a 24-bit
           sample is the low 3 bytes of a 4-byte load; the last one is read byte by byte so
           that nothing past the input is touched) */
        if (!be && n > 0 && bits == 24 && (stride == 3 || stride == 6)) {
            if (stride == 3)
                for (i = 0; i < n - 1; i++) { uint32_t v; memcpy(&v, p + 3 * (size_t)i, 4); x[i] = (int32_t)(v << 8) >> 8; }
            else
                for (i = 0; i < n - 1; i++) { uint32_t v; memcpy(&v, p + 6 * (size_t)i, 4); x[i] = (int32_t)(v << 8) >> 8; }
            p += (size_t)stride * (n - 1);
            x[n - 1] = ((int32_t)(((uint32_t)p[2] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[0] << 8))) >> 8;
            return;
        }
        if (!be && bits == 16 && (stride == 2 || stride == 4)) {
            if (stride == 2) for (i = 0; i < n; i++) { int16_t v; memcpy(&v, p + 2 * (size_t)i, 2); x[i] = v; }
            else for (i = 0; i < n; i++) { int16_t v; memcpy(&v, p + 4 * (size_t)i, 2); x[i] = v; }
            return;
        }
    #endif
        switch (bits * 2 + be) {
        case 16: for (i = 0; i < n; i++, p += stride) x[i] = (int64_t)p[0] - 128; break;
        case 17: for (i = 0; i < n; i++, p += stride) x[i] = (int8_t)p[0]; break;
        case 32: for (i = 0; i < n; i++, p += stride) x[i] = (int16_t)(p[0] | (p[1] << 8)); break;
        case 33: for (i = 0; i < n; i++, p += stride) x[i] = (int16_t)((p[0] << 8) | p[1]); break;
        case 48: for (i = 0; i < n; i++, p += stride)
                     x[i] = ((int32_t)(((uint32_t)p[2] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[0] << 8))) >> 8;
                 break;
        case 49: for (i = 0; i < n; i++, p += stride)
                     x[i] = ((int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8))) >> 8;
                 break;
        case 64: for (i = 0; i < n; i++, p += stride)
                     x[i] = (int32_t)(((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0]);
                 break;
        default: for (i = 0; i < n; i++, p += stride)
                     x[i] = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
        }
    }
    static void pcm_load_u32(const uint8_t* p, int count, int be, uint32_t* out) {
        int i;
        if (be) for (i = 0; i < count; i++, p += 4)
            out[i] = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        else for (i = 0; i < count; i++, p += 4)
            out[i] = ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
    }
    static void pcm_store(uint8_t* p, int stride, int n, int bits, int be, const int64_t* x) {
        int i;
        uint32_t u;
        switch (bits * 2 + be) {
        case 16: for (i = 0; i < n; i++, p += stride) p[0] = (uint8_t)(x[i] + 128); break;
        case 17: for (i = 0; i < n; i++, p += stride) p[0] = (uint8_t)x[i]; break;
        case 32: for (i = 0; i < n; i++, p += stride) { u = (uint32_t)x[i]; p[0] = u; p[1] = u >> 8; } break;
        case 33: for (i = 0; i < n; i++, p += stride) { u = (uint32_t)x[i]; p[0] = u >> 8; p[1] = u; } break;
        case 48: for (i = 0; i < n; i++, p += stride) { u = (uint32_t)x[i]; p[0] = u; p[1] = u >> 8; p[2] = u >> 16; } break;
        case 49: for (i = 0; i < n; i++, p += stride) { u = (uint32_t)x[i]; p[0] = u >> 16; p[1] = u >> 8; p[2] = u; } break;
        case 64: for (i = 0; i < n; i++, p += stride) { u = (uint32_t)x[i]; p[0] = u; p[1] = u >> 8; p[2] = u >> 16; p[3] = u >> 24; } break;
        default: for (i = 0; i < n; i++, p += stride) { u = (uint32_t)x[i]; p[0] = u >> 24; p[1] = u >> 16; p[2] = u >> 8; p[3] = u; }
        }
    }
    /* LPC residual: r[i] = x[i] - (sum q[j] x[i-1-j]) >> sh, for i in [m, n). */
    #define PCM_RES_CASE(M) case M: \\
        for (i = M; i < n; i++) { int64_t s = 0; \\
            for (j = 0; j < M; j++) s += (int64_t)q[j] * x[i - 1 - j]; \\
            r[i] = x[i] - (s >> sh); } break;
    static void pcm_lpc_residual(const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh) {
        int i, j;
        switch (m) {
            PCM_RES_CASE(1) PCM_RES_CASE(2) PCM_RES_CASE(3) PCM_RES_CASE(4)
            PCM_RES_CASE(5) PCM_RES_CASE(6) PCM_RES_CASE(7) PCM_RES_CASE(8)
            PCM_RES_CASE(9) PCM_RES_CASE(10) PCM_RES_CASE(11) PCM_RES_CASE(12)
            default:
                for (i = m; i < n; i++) { int64_t s = 0;
                    for (j = 0; j < m; j++) s += (int64_t)q[j] * x[i - 1 - j];
                    r[i] = x[i] - (s >> sh); }
        }
    }
    /* The same residual computed in double precision, which SSE2 vectorises (it has no 64-bit
       integer multiply): exact when |x| < 2**31, since |q| < 2**13, m <= 8, so every partial
       sum is an integer below 2**47, and a double integer |s| < 2**51 converts to int64
       exactly by the 1.5 * 2**52 bias trick. xd = (double)x. */
    #define PCM_RESD_CASE(M) case M: \
        for (i = M; i < n; i++) { double s = 0.0; \
            for (j = 0; j < M; j++) s += qd[j] * xd[i - 1 - j]; \
            double v = s + PCM_BIAS; \
            int64_t b; memcpy(&b, &v, 8); \
            r[i] = x[i] - ((b - PCM_BIAS_BITS) >> sh); } break;
    #define PCM_BIAS 6755399441055744.0
    #define PCM_BIAS_BITS 0x4338000000000000LL
    static inline __attribute__((always_inline)) int pcm_lpc_residual_d_body(const double* xd, const int64_t* x, int64_t* r, int n,
                                  const int32_t* q, int m, int sh) {
        int i, j;
        double qd[8];
        if (m > 8) return -1;
        for (j = 0; j < m; j++) qd[j] = (double)q[j];
        switch (m) {
            PCM_RESD_CASE(1) PCM_RESD_CASE(2) PCM_RESD_CASE(3) PCM_RESD_CASE(4)
            PCM_RESD_CASE(5) PCM_RESD_CASE(6) PCM_RESD_CASE(7) PCM_RESD_CASE(8)
        }
        return 0;
    }
    /* Estimated sums of zigzag residuals of the fixed predictors of orders 0..4 over x[4..n),
       for x of sbits <= 26 bits: each is 2 * sum |residual|, which is the zigzag sum plus the
       number of negative residuals (about n / 2 for every order, so nearly the same choices:
       corpus +0.001%, plucks +0.08%; for half the vector work of a zigzag where abs is one
       instruction, the AVX2 clone). In 32-bit lanes, exact as
       every residual of order j is then below 2**(sbits-1+j) in magnitude. The samples are
       first narrowed to int32 (so the shifted views are plain loads); each lane of the 8-wide
       uint32 accumulators takes at most 2**(28-sbits) magnitudes (each < 2**(sbits+3)) before
       it is added into 64-bit lanes, so no lane wraps. Integer sums: the result does not
       depend on the order of addition, so the clones agree. */
    typedef int32_t pcm_v8i __attribute__((vector_size(32)));
    typedef uint32_t pcm_v8u __attribute__((vector_size(32)));
    typedef uint64_t pcm_v4q __attribute__((vector_size(32)));
    #define PCM_FS_MAX 4096
    #define PCM_FS_F(sbits) ((sbits) >= 19 ? 8 << (28 - (sbits)) : PCM_FS_MAX)  /* samples per flush */
    #define PCM_ABS8(v) ((pcm_v8u)(((pcm_v8i)(v) ^ ((pcm_v8i)(v) >> 31)) - ((pcm_v8i)(v) >> 31)))
    #define PCM_ABS1(v) ((uint32_t)((v) < 0 ? -(v) : (v)))
    /* samples [i, n) one by one, then the sums (doubled) into S */
    static inline __attribute__((always_inline)) void pcm_fixed_sums_tail(const int32_t* y, int i, int n,
                                                                          uint64_t* s, uint64_t* S) {
        for (; i < n; i++) {
            int32_t a = y[i], b = y[i - 1], c = y[i - 2], d = y[i - 3], f = y[i - 4];
            int32_t d1 = a - b, e1 = b - c, g1 = c - d, h1 = d - f;
            int32_t d2 = d1 - e1, e2 = e1 - g1, g2 = g1 - h1;
            int32_t d3 = d2 - e2, e3 = e2 - g2;
            int32_t d4 = d3 - e3;
            s[0] += PCM_ABS1(a); s[1] += PCM_ABS1(d1); s[2] += PCM_ABS1(d2);
            s[3] += PCM_ABS1(d3); s[4] += PCM_ABS1(d4);
        }
        S[0] = 2 * s[0]; S[1] = 2 * s[1]; S[2] = 2 * s[2]; S[3] = 2 * s[3]; S[4] = 2 * s[4];
    }
    static void pcm_fixed_sums_i32_base(const int32_t* y, int n, int sbits, uint64_t* S) {
        const pcm_v4q lo32 = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
        const int F = PCM_FS_F(sbits);
        pcm_v4q t0 = {0}, t1 = {0}, t2 = {0}, t3 = {0}, t4 = {0};
        uint64_t s[5] = {0, 0, 0, 0, 0};
        int i = 4, j;
        while (i + 8 <= n) {
            pcm_v8u a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0};
            int lim = n - i > F ? i + F : n;
            for (; i + 8 <= lim; i += 8) {
                pcm_v8u a, b, c, d, f;
                memcpy(&a, y + i, 32); memcpy(&b, y + i - 1, 32); memcpy(&c, y + i - 2, 32);
                memcpy(&d, y + i - 3, 32); memcpy(&f, y + i - 4, 32);
                pcm_v8u d1 = a - b, e1 = b - c, g1 = c - d, h1 = d - f;
                pcm_v8u d2 = d1 - e1, e2 = e1 - g1, g2 = g1 - h1;
                pcm_v8u d3 = d2 - e2, e3 = e2 - g2;
                pcm_v8u d4 = d3 - e3;
                a0 += PCM_ABS8(a); a1 += PCM_ABS8(d1); a2 += PCM_ABS8(d2);
                a3 += PCM_ABS8(d3); a4 += PCM_ABS8(d4);
            }
            t0 += ((pcm_v4q)a0 & lo32) + ((pcm_v4q)a0 >> 32);
            t1 += ((pcm_v4q)a1 & lo32) + ((pcm_v4q)a1 >> 32);
            t2 += ((pcm_v4q)a2 & lo32) + ((pcm_v4q)a2 >> 32);
            t3 += ((pcm_v4q)a3 & lo32) + ((pcm_v4q)a3 >> 32);
            t4 += ((pcm_v4q)a4 & lo32) + ((pcm_v4q)a4 >> 32);
        }
        for (j = 0; j < 4; j++) { s[0] += t0[j]; s[1] += t1[j]; s[2] += t2[j]; s[3] += t3[j]; s[4] += t4[j]; }
        pcm_fixed_sums_tail(y, i, n, s, S);
    }
    static int pcm_avx2;
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #include <immintrin.h>
    static __attribute__((target("avx2"))) void pcm_fixed_sums_i32_avx2(const int32_t* y, int n, int sbits, uint64_t* S) {
        const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFF), zero = _mm256_setzero_si256();
        const int F = PCM_FS_F(sbits);
        __m256i t[5];
        uint64_t s[5] = {0, 0, 0, 0, 0}, q[4] __attribute__((aligned(32)));
        int i = 4, j, l;
        for (l = 0; l < 5; l++) t[l] = zero;
        while (i + 8 <= n) {
            __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero;
            int lim = n - i > F ? i + F : n;
            for (; i + 8 <= lim; i += 8) {
                __m256i a = _mm256_loadu_si256((const __m256i*)(y + i)), b = _mm256_loadu_si256((const __m256i*)(y + i - 1)),
                        c = _mm256_loadu_si256((const __m256i*)(y + i - 2)), d = _mm256_loadu_si256((const __m256i*)(y + i - 3)),
                        f = _mm256_loadu_si256((const __m256i*)(y + i - 4));
                __m256i d1 = _mm256_sub_epi32(a, b), e1 = _mm256_sub_epi32(b, c), g1 = _mm256_sub_epi32(c, d),
                        h1 = _mm256_sub_epi32(d, f);
                __m256i d2 = _mm256_sub_epi32(d1, e1), e2 = _mm256_sub_epi32(e1, g1), g2 = _mm256_sub_epi32(g1, h1);
                __m256i d3 = _mm256_sub_epi32(d2, e2), e3 = _mm256_sub_epi32(e2, g2);
                __m256i d4 = _mm256_sub_epi32(d3, e3);
                a0 = _mm256_add_epi32(a0, _mm256_abs_epi32(a));
                a1 = _mm256_add_epi32(a1, _mm256_abs_epi32(d1));
                a2 = _mm256_add_epi32(a2, _mm256_abs_epi32(d2));
                a3 = _mm256_add_epi32(a3, _mm256_abs_epi32(d3));
                a4 = _mm256_add_epi32(a4, _mm256_abs_epi32(d4));
            }
            #define PCM_FS_FLUSH(L, A) t[L] = _mm256_add_epi64(t[L], _mm256_add_epi64(_mm256_and_si256(A, lo32), _mm256_srli_epi64(A, 32)));
            PCM_FS_FLUSH(0, a0) PCM_FS_FLUSH(1, a1) PCM_FS_FLUSH(2, a2) PCM_FS_FLUSH(3, a3) PCM_FS_FLUSH(4, a4)
            #undef PCM_FS_FLUSH
        }
        for (l = 0; l < 5; l++) {
            _mm256_store_si256((__m256i*)q, t[l]);
            for (j = 0; j < 4; j++) s[l] += q[j];
        }
        pcm_fixed_sums_tail(y, i, n, s, S);
    }
    #endif
    static void pcm_fixed_sums_i32(const int32_t* y, int n, int sbits, uint64_t* S) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2) { pcm_fixed_sums_i32_avx2(y, n, sbits, S); return; }
    #endif
        pcm_fixed_sums_i32_base(y, n, sbits, S);
    }
    static inline __attribute__((always_inline)) void pcm_fixed_sums32_body(const int64_t* x, int n, int sbits, uint64_t* S) {
        int32_t y[PCM_FS_MAX];
        int i;
        if (n > PCM_FS_MAX) n = 0;  /* not used (blocks are smaller): all sums 0 */
        for (i = 0; i < n; i++) y[i] = (int32_t)x[i];
        pcm_fixed_sums_i32(y, n, sbits, S);
    }
    /* pcm_fixed_sums32 and pcm_stereo_sums of int32 copies of the samples (pcm_load_block's y;
       n <= PCM_FS_MAX); the stereo one overwrites yl and yr with M and S. */
    static inline __attribute__((always_inline)) void pcm_fixed_sums_y_body(const int32_t* y, int n, int sbits, uint64_t* S) {
        pcm_fixed_sums_i32(y, n, sbits, S);
    }
    static inline __attribute__((always_inline)) int pcm_stereo_sums_y_body(int32_t* yl, int32_t* yr, int n, int sbits, uint64_t* S) {
        int i;
        if (sbits > 25) return -1;
        pcm_fixed_sums_i32(yl, n, sbits, S);
        pcm_fixed_sums_i32(yr, n, sbits, S + 5);
        for (i = 0; i < n; i++) { int32_t l = yl[i], r = yr[i]; yl[i] = (l + r) >> 1; yr[i] = l - r; }
        pcm_fixed_sums_i32(yr, n, sbits + 1, S + 10);
        pcm_fixed_sums_i32(yl, n, sbits, S + 15);
        return 0;
    }
    /* The sums of L, R, S = L - R and M = (L + R) >> 1 (S[0..4], S[5..9], ...) for a stereo
       block of sbits <= 25 bits, where L + R and L - R are exact in int32; -1 if n is too
       large (the caller then works them out one by one). */
    static inline __attribute__((always_inline)) int pcm_stereo_sums_body(const int64_t* L, const int64_t* R, int n, int sbits, uint64_t* S) {
        int32_t yl[PCM_FS_MAX], yr[PCM_FS_MAX];
        int i;
        if (n > PCM_FS_MAX || n < 1 || sbits > 25) return -1;
        for (i = 0; i < n; i++) { yl[i] = (int32_t)L[i]; yr[i] = (int32_t)R[i]; }
        return pcm_stereo_sums_y_body(yl, yr, n, sbits, S);
    }
    /* Window a block for LPC analysis: xd = (double)x (x must fit in int32), xw = xd * win. */
    static inline __attribute__((always_inline))
    void pcm_window_body(const int64_t* x, int n, const double* win, double* xd, double* xw) {
        int i;
        for (i = 0; i < n; i++) {
            double v = (double)(int32_t)x[i];
            xd[i] = v;
            xw[i] = v * win[i];
        }
    }
    #define PCM_ZZ(v) (((uint64_t)(v) << 1) ^ (uint64_t)((int64_t)(v) >> 63))  /* zigzag */
    /* The encoder's residual arrays, once their partition sums are worked out, hold the
       zigzags of the residuals (as uint64 in int64 slots): the Rice writers code them as they
       are, instead of each working them out again. */
    #define PCM_RZ(v) ((uint64_t)(v))
    /* Per-partition sums and ORs of zigzag(r[i]) over 2**P partitions of n/2**P samples (the
       first starts at `order`), for the Rice parameter choice; r[i] becomes zigzag(r[i]). */
    static inline __attribute__((always_inline))
    void pcm_zz_sums_body(int64_t* r, int n, int order, int P, uint64_t* sums, uint64_t* ors) {
        int j, i, ps = n >> P;
        for (j = 0; j < (1 << P); j++) {
            uint64_t s = 0, o = 0;
            for (i = j ? j * ps : order; i < (j + 1) * ps; i++) {
                uint64_t u = PCM_ZZ(r[i]);
                r[i] = (int64_t)u;
                s += u;
                o |= u;
            }
            sums[j] = s;
            ors[j] = o;
        }
    }
    /* The fixed predictor's residual of `order` (0..4) over x[order..n), zigzagged, into r,
       with the per-partition sums and ORs (as pcm_zz_sums of it) in the same pass. */
    static inline __attribute__((always_inline)) int64_t pcm_fixed_res1(const int O, const int64_t* x, int i) {
        if (O == 0) return x[i];
        if (O == 1) return x[i] - x[i - 1];
        if (O == 2) return x[i] - 2 * x[i - 1] + x[i - 2];
        if (O == 3) return x[i] - 3 * x[i - 1] + 3 * x[i - 2] - x[i - 3];
        return x[i] - 4 * x[i - 1] + 6 * x[i - 2] - 4 * x[i - 3] + x[i - 4];
    }
    #define PCM_FRZ_LOOP(O) for (; i < e; i++) { int64_t v = pcm_fixed_res1(O, x, i); \
            uint64_t u = PCM_ZZ(v); r[i] = (int64_t)u; s += u; o |= u; } break;
    static inline __attribute__((always_inline))
    void pcm_fixed_residual_zz_body(const int64_t* x, int64_t* r, int n, int order, int P,
                                    uint64_t* sums, uint64_t* ors) {
        int j, i, e, ps = n >> P;
        for (j = 0; j < (1 << P); j++) {
            uint64_t s = 0, o = 0;
            i = j ? j * ps : order;
            e = (j + 1) * ps;
            switch (order) {
            case 0: PCM_FRZ_LOOP(0)
            case 1: PCM_FRZ_LOOP(1)
            case 2: PCM_FRZ_LOOP(2)
            case 3: PCM_FRZ_LOOP(3)
            default: PCM_FRZ_LOOP(4)
            }
            sums[j] = s;
            ors[j] = o;
        }
    }
    #undef PCM_FRZ_LOOP
    /* OR of x[0..n) and OR of x[i] ^ x[0], for the wasted low bits (ctz of the first) and a
       constant block (second == 0): both are settled once the first is odd and the second
       non-zero, so the scan stops there (at a 64-sample boundary) with partial ORs. */
    static inline __attribute__((always_inline))
    void pcm_or_diff_body(const int64_t* x, int n, uint64_t* orv, uint64_t* diff) {
        uint64_t o = 0, d = 0, v0 = (uint64_t)x[0];
        int i = 0, e;
        while (i < n) {
            e = n - i > 64 ? i + 64 : n;
            for (; i < e; i++) { o |= (uint64_t)x[i]; d |= (uint64_t)x[i] ^ v0; }
            if ((o & 1) && d) break;
        }
        *orv = o;
        *diff = d;
    }
    /* pcm_bitlen(s / c) for c > 0 without a division: with b = bitlen(s) - bitlen(c) the
       quotient q satisfies 2**(b-1) <= q < 2**(b+1) (s >= c), so its bit length is b + 1 when
       q >= 2**b, i.e. when s >> b >= c, and b otherwise. */
    static inline int pcm_bitlen_div(uint64_t s, uint64_t c) {
        int b;
        if (s < c) return 0;
        b = pcm_bitlen(s) - pcm_bitlen(c);
        return (s >> b) >= c ? b + 1 : b;
    }
    /* The encoder's vectorisable loops are compiled twice, for the baseline target and for
       AVX2, and picked at run time (pcm_cpu_init at import). Same arithmetic in the same order
       either way (no FMA: every lane does what the scalar code does), so the encoded bytes do
       not depend on the machine. */
    static int pcm_avx2 = 0, pcm_bmi2 = 0, pcm_has_avx2 = 0, pcm_has_bmi2 = 0, pcm_has_fma = 0;
    /* AVX-512 clones (version 2 residuals), used only together with the AVX2 and BMI2 ones */
    static int pcm_avx512 = 0, pcm_has_avx512 = 0;
    /* The AVX2 version 2 writer that packs with pext (pcm_rice2_codes_avx2p): only where pext
       is fast (Intel's BMI2 CPUs, AMD from family 19h, Zen 3; before that it is microcoded,
       tens of cycles); pcm_has_pext: the CPU has it at all (tests can force the clone on) */
    static int pcm_fast_pext = 0, pcm_has_pext = 0;
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #include <immintrin.h>
    #include <cpuid.h>
    #define PCM_AVX2 __attribute__((target("avx2")))
    static void pcm_cpu_init(void) {
        unsigned int a, b, c, d, fam = 0;
        __builtin_cpu_init();
        pcm_has_avx2 = pcm_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
        pcm_has_bmi2 = pcm_bmi2 = __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") ? 1 : 0;
        pcm_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;
        pcm_has_pext = pcm_has_avx2 && pcm_has_bmi2 && __builtin_cpu_supports("popcnt");
        if (__get_cpuid(1, &a, &b, &c, &d)) {
            fam = (a >> 8) & 0xF;
            if (fam == 0xF) fam += (a >> 20) & 0xFF;
        }
        pcm_fast_pext = pcm_has_pext && (__builtin_cpu_is("intel") || (__builtin_cpu_is("amd") && fam >= 0x19));
    #if defined(__x86_64__)
        pcm_has_avx512 = pcm_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi")
            && __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("popcnt")
            && __builtin_cpu_supports("bmi2") ? 1 : 0;
    #endif
    }
    #else
    #define PCM_AVX2
    static void pcm_cpu_init(void) { pcm_avx2 = 0; pcm_bmi2 = 0; }
    #endif
    /* tests: switch the AVX2 / BMI2 clones off (or back on where the CPU has them) */
    static void pcm_set_features(int avx2, int bmi2, int avx512, int fast_pext) {
        pcm_avx2 = avx2 && pcm_has_avx2;
        pcm_bmi2 = bmi2 && pcm_has_bmi2;
        pcm_avx512 = avx512 && pcm_has_avx512;
        pcm_fast_pext = fast_pext && pcm_has_pext;
    }
    #define PCM_DISPATCH(ret, name, params, args) \
        static PCM_AVX2 ret name##_avx2 params { return name##_body args; } \
        static ret name##_base params { return name##_body args; } \
        static ret name params { return pcm_avx2 ? name##_avx2 args : name##_base args; }
    /* pcm_lpc_residual_d with FMA, four samples a step, all in double precision: the
       coefficients are pre-scaled by 2**-sh, so the sum is s * 2**-sh, exactly (every partial
       sum is an integer below 2**47 times a power of two, so fused or not, in any order, no
       rounding happens); floor() of it is s >> sh, and x - that is an integer below 2**48 that
       the bias trick turns into int64. Same integers as the other clones, fewer instructions
       (AVX2 has no 64-bit arithmetic shift). */
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #define PCM_RESF_CASE(M) case M: \
        for (; i + 4 <= n; i += 4) { \
            __m256d s = _mm256_mul_pd(qv[0], _mm256_loadu_pd(xd + i - 1)), s2 = _mm256_setzero_pd(); \
            for (j = 1; j < M; j += 2) s2 = _mm256_fmadd_pd(qv[j], _mm256_loadu_pd(xd + i - 1 - j), s2); \
            for (j = 2; j < M; j += 2) s = _mm256_fmadd_pd(qv[j], _mm256_loadu_pd(xd + i - 1 - j), s); \
            s = _mm256_add_pd(s, s2); \
            __m256d d = _mm256_sub_pd(_mm256_loadu_pd(xd + i), \
                                      _mm256_round_pd(s, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)); \
            __m256i b = _mm256_castpd_si256(_mm256_add_pd(d, bias)); \
            _mm256_storeu_si256((__m256i*)(r + i), _mm256_sub_epi64(b, biasb)); \
        } break;
    static __attribute__((target("avx2,fma"))) int pcm_lpc_residual_d_fma(
            const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh) {
        const __m256d bias = _mm256_set1_pd(PCM_BIAS);
        const __m256i biasb = _mm256_set1_epi64x(PCM_BIAS_BITS);
        const double scale = 1.0 / (double)((uint64_t)1 << sh);  /* sh <= 31: exact */
        __m256d qv[8];
        int i = m, j;
        if (m > 8 || m < 1) return -1;
        for (j = 0; j < m; j++) qv[j] = _mm256_set1_pd((double)q[j] * scale);
        switch (m) {
            PCM_RESF_CASE(1) PCM_RESF_CASE(2) PCM_RESF_CASE(3) PCM_RESF_CASE(4)
            PCM_RESF_CASE(5) PCM_RESF_CASE(6) PCM_RESF_CASE(7) PCM_RESF_CASE(8)
        }
        for (; i < n; i++) {  /* the last 0-3 samples as pcm_lpc_residual does it */
            int64_t s = 0;
            for (j = 0; j < m; j++) s += (int64_t)q[j] * x[i - 1 - j];
            r[i] = x[i] - (s >> sh);
        }
        return 0;
    }
    /* The fused residual loops' vector step: zigzag the four residuals b into the partition's
       sum and OR lanes, and return the zigzags (what r holds); and the lanes' total and OR at
       the partition's end. */
    static inline __attribute__((always_inline, target("avx2"))) __m256i pcm_zz_acc4(__m256i b, __m256i* S, __m256i* O) {
        __m256i u = _mm256_xor_si256(_mm256_add_epi64(b, b), _mm256_cmpgt_epi64(_mm256_setzero_si256(), b));
        *S = _mm256_add_epi64(*S, u);
        *O = _mm256_or_si256(*O, u);
        return u;
    }
    static inline __attribute__((always_inline, target("avx2"))) void pcm_zz_lanes(__m256i S, __m256i O, uint64_t* su, uint64_t* ou) {
        uint64_t t4[4] __attribute__((aligned(32)));
        _mm256_store_si256((__m256i*)t4, S);
        *su = (t4[0] + t4[1]) + (t4[2] + t4[3]);
        _mm256_store_si256((__m256i*)t4, O);
        *ou = t4[0] | t4[1] | t4[2] | t4[3];
    }
    /* pcm_lpc_residual_d_fma with the per-partition zigzag sums and ORs of the residual (as
       pcm_zz_sums of it) worked out in the same pass: the same vector step per four samples,
       partition by partition (2**P of n >> P samples, the first from m), each partition's last
       0-3 samples in integers as pcm_lpc_residual. */
    static inline __attribute__((always_inline, target("avx2,fma"))) void pcm_resf_zz(
            const int M, const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q,
            int sh, const __m256d* qv, int P, uint64_t* sums, uint64_t* ors) {
        const __m256d bias = _mm256_set1_pd(PCM_BIAS);
        const __m256i biasb = _mm256_set1_epi64x(PCM_BIAS_BITS), zero = _mm256_setzero_si256();
        int i, j, t, e, ps = n >> P;
        for (j = 0; j < (1 << P); j++) {
            __m256i S = zero, O = zero;
            uint64_t su, ou;
            i = j ? j * ps : M;
            e = (j + 1) * ps;
            for (; i + 4 <= e; i += 4) {
                __m256d s = _mm256_mul_pd(qv[0], _mm256_loadu_pd(xd + i - 1)), s2 = _mm256_setzero_pd();
                for (t = 1; t < M; t += 2) s2 = _mm256_fmadd_pd(qv[t], _mm256_loadu_pd(xd + i - 1 - t), s2);
                for (t = 2; t < M; t += 2) s = _mm256_fmadd_pd(qv[t], _mm256_loadu_pd(xd + i - 1 - t), s);
                s = _mm256_add_pd(s, s2);
                __m256d d = _mm256_sub_pd(_mm256_loadu_pd(xd + i),
                                          _mm256_round_pd(s, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
                __m256i b = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(d, bias)), biasb);
                _mm256_storeu_si256((__m256i*)(r + i), pcm_zz_acc4(b, &S, &O));
            }
            pcm_zz_lanes(S, O, &su, &ou);
            for (; i < e; i++) {
                int64_t sv = 0, v;
                uint64_t u;
                for (t = 0; t < M; t++) sv += (int64_t)q[t] * x[i - 1 - t];
                v = x[i] - (sv >> sh);
                u = PCM_ZZ(v);
                r[i] = (int64_t)u;
                su += u;
                ou |= u;
            }
            sums[j] = su;
            ors[j] = ou;
        }
    }
    #define PCM_RESFZ_CASE(M) case M: pcm_resf_zz(M, xd, x, r, n, q, sh, qv, P, sums, ors); break;
    static __attribute__((target("avx2,fma"))) int pcm_lpc_residual_zz_fma(
            const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh,
            int P, uint64_t* sums, uint64_t* ors) {
        const double scale = 1.0 / (double)((uint64_t)1 << sh);  /* sh <= 31: exact */
        __m256d qv[8];
        int j;
        if (m > 8 || m < 1) return -1;
        for (j = 0; j < m; j++) qv[j] = _mm256_set1_pd((double)q[j] * scale);
        switch (m) {
            PCM_RESFZ_CASE(1) PCM_RESFZ_CASE(2) PCM_RESFZ_CASE(3) PCM_RESFZ_CASE(4)
            PCM_RESFZ_CASE(5) PCM_RESFZ_CASE(6) PCM_RESFZ_CASE(7) PCM_RESFZ_CASE(8)
        }
        return 0;
    }
    #endif
    /* The LPC residual (as pcm_lpc_residual_d) and its partition sums (as pcm_zz_sums) in one
       pass where the CPU has FMA; -1 (nothing done) otherwise. */
    static int pcm_lpc_residual_zz(const double* xd, const int64_t* x, int64_t* r, int n,
                                   const int32_t* q, int m, int sh, int P, uint64_t* sums,
                                   uint64_t* ors) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2 && pcm_has_fma) return pcm_lpc_residual_zz_fma(xd, x, r, n, q, m, sh, P, sums, ors);
    #endif
        return -1;
    }
    static PCM_AVX2 int pcm_lpc_residual_d_avx2(const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh)
        { return pcm_lpc_residual_d_body(xd, x, r, n, q, m, sh); }
    static int pcm_lpc_residual_d_base(const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh)
        { return pcm_lpc_residual_d_body(xd, x, r, n, q, m, sh); }
    static int pcm_lpc_residual_d(const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2 && pcm_has_fma) return pcm_lpc_residual_d_fma(xd, x, r, n, q, m, sh);
    #endif
        return pcm_avx2 ? pcm_lpc_residual_d_avx2(xd, x, r, n, q, m, sh) : pcm_lpc_residual_d_base(xd, x, r, n, q, m, sh);
    }
    PCM_DISPATCH(void, pcm_fixed_sums32, (const int64_t* x, int n, int sbits, uint64_t* S), (x, n, sbits, S))
    PCM_DISPATCH(int, pcm_stereo_sums, (const int64_t* L, const int64_t* R, int n, int sbits, uint64_t* S), (L, R, n, sbits, S))
    PCM_DISPATCH(void, pcm_fixed_sums_y, (const int32_t* y, int n, int sbits, uint64_t* S), (y, n, sbits, S))
    PCM_DISPATCH(int, pcm_stereo_sums_y, (int32_t* yl, int32_t* yr, int n, int sbits, uint64_t* S), (yl, yr, n, sbits, S))
    PCM_DISPATCH(void, pcm_window, (const int64_t* x, int n, const double* win, double* xd, double* xw), (x, n, win, xd, xw))
    PCM_DISPATCH(void, pcm_zz_sums, (int64_t* r, int n, int order, int P, uint64_t* sums, uint64_t* ors), (r, n, order, P, sums, ors))
    PCM_DISPATCH(void, pcm_or_diff, (const int64_t* x, int n, uint64_t* orv, uint64_t* diff), (x, n, orv, diff))
    static void pcm_fixed_residual_zz_base(const int64_t* x, int64_t* r, int n, int order, int P,
                                           uint64_t* sums, uint64_t* ors)
        { pcm_fixed_residual_zz_body(x, r, n, order, P, sums, ors); }
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* AVX2: four residuals a step from shifted loads of x (the same wrapping int64 arithmetic
       as the scalar loop, so the same integers), partition by partition; each partition's last
       0-3 samples by the scalar loop. */
    static inline __attribute__((always_inline, target("avx2"))) __m256i pcm_fres4(const int O, const int64_t* x) {
        __m256i a = _mm256_loadu_si256((const __m256i*)x), b, c, d, f, t;
        if (O == 0) return a;
        b = _mm256_loadu_si256((const __m256i*)(x - 1));
        if (O == 1) return _mm256_sub_epi64(a, b);
        c = _mm256_loadu_si256((const __m256i*)(x - 2));
        if (O == 2) return _mm256_add_epi64(_mm256_sub_epi64(a, _mm256_slli_epi64(b, 1)), c);
        d = _mm256_loadu_si256((const __m256i*)(x - 3));
        if (O == 3) {  /* (a - d) + 3 (c - b) */
            t = _mm256_sub_epi64(c, b);
            return _mm256_add_epi64(_mm256_sub_epi64(a, d), _mm256_add_epi64(_mm256_slli_epi64(t, 1), t));
        }
        f = _mm256_loadu_si256((const __m256i*)(x - 4));  /* (a + f) - 4 (b + d) + 6 c */
        return _mm256_add_epi64(_mm256_sub_epi64(_mm256_add_epi64(a, f), _mm256_slli_epi64(_mm256_add_epi64(b, d), 2)),
                                _mm256_add_epi64(_mm256_slli_epi64(c, 2), _mm256_slli_epi64(c, 1)));
    }
    static inline __attribute__((always_inline, target("avx2"))) void pcm_frz_avx2(
            const int O, const int64_t* x, int64_t* r, int n, int P, uint64_t* sums, uint64_t* ors) {
        const __m256i zero = _mm256_setzero_si256();
        int i, j, e, ps = n >> P;
        for (j = 0; j < (1 << P); j++) {
            __m256i S = zero, O4 = zero;
            uint64_t su, ou;
            i = j ? j * ps : O;
            e = (j + 1) * ps;
            for (; i + 4 <= e; i += 4) {
                __m256i b = pcm_fres4(O, x + i);
                _mm256_storeu_si256((__m256i*)(r + i), pcm_zz_acc4(b, &S, &O4));
            }
            pcm_zz_lanes(S, O4, &su, &ou);
            for (; i < e; i++) {
                int64_t v = pcm_fixed_res1(O, x, i);
                uint64_t u = PCM_ZZ(v);
                r[i] = (int64_t)u;
                su += u;
                ou |= u;
            }
            sums[j] = su;
            ors[j] = ou;
        }
    }
    static __attribute__((target("avx2"))) void pcm_fixed_residual_zz_avx2(
            const int64_t* x, int64_t* r, int n, int order, int P, uint64_t* sums, uint64_t* ors) {
        switch (order) {
        case 0: pcm_frz_avx2(0, x, r, n, P, sums, ors); break;
        case 1: pcm_frz_avx2(1, x, r, n, P, sums, ors); break;
        case 2: pcm_frz_avx2(2, x, r, n, P, sums, ors); break;
        case 3: pcm_frz_avx2(3, x, r, n, P, sums, ors); break;
        default: pcm_frz_avx2(4, x, r, n, P, sums, ors);
        }
    }
    #endif
    static void pcm_fixed_residual_zz(const int64_t* x, int64_t* r, int n, int order, int P,
                                      uint64_t* sums, uint64_t* ors) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2) { pcm_fixed_residual_zz_avx2(x, r, n, order, P, sums, ors); return; }
    #endif
        pcm_fixed_residual_zz_base(x, r, n, order, P, sums, ors);
    }
    /* AVX2: four frames per step, the low bytes of the int64 samples gathered with byte
       shuffles (only whole steps whose vector store stays inside the output; the rest is left
       to the scalar loop). Return the number of frames written. */
    #if defined(__GNUC__) && defined(__x86_64__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define PCM_HAVE_STORE_AVX2 1
    static __attribute__((target("avx2"))) int pcm_store_stereo_avx2(uint8_t* p, int n, int bits,
                                                                    const int64_t* L, const int64_t* R) {
        int i = 0;
        if (bits == 24) {
            const __m256i s0 = _mm256_setr_epi8(0, 1, 2, 8, 9, 10, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                0, 1, 2, 8, 9, 10, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
            const __m256i s1 = _mm256_setr_epi8(-1, -1, -1, -1, -1, -1, 0, 1, 2, 8, 9, 10, -1, -1, -1, -1,
                                                -1, -1, -1, -1, -1, -1, 0, 1, 2, 8, 9, 10, -1, -1, -1, -1);
            const __m256i pm = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
            for (; i + 6 <= n; i += 4) {
                __m256i l = _mm256_loadu_si256((const __m256i*)(L + i));
                __m256i r = _mm256_loadu_si256((const __m256i*)(R + i));
                __m256i v = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_unpacklo_epi64(l, r), s0),
                                            _mm256_shuffle_epi8(_mm256_unpackhi_epi64(l, r), s1));
                _mm256_storeu_si256((__m256i*)(p + 6 * (size_t)i), _mm256_permutevar8x32_epi32(v, pm));
            }
        } else if (bits == 16) {
            const __m256i s0 = _mm256_setr_epi8(0, 1, 8, 9, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                0, 1, 8, 9, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
            const __m256i s1 = _mm256_setr_epi8(-1, -1, -1, -1, 0, 1, 8, 9, -1, -1, -1, -1, -1, -1, -1, -1,
                                                -1, -1, -1, -1, 0, 1, 8, 9, -1, -1, -1, -1, -1, -1, -1, -1);
            const __m256i pm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
            for (; i + 4 <= n; i += 4) {
                __m256i l = _mm256_loadu_si256((const __m256i*)(L + i));
                __m256i r = _mm256_loadu_si256((const __m256i*)(R + i));
                __m256i v = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_unpacklo_epi64(l, r), s0),
                                            _mm256_shuffle_epi8(_mm256_unpackhi_epi64(l, r), s1));
                _mm_storeu_si128((__m128i*)(p + 4 * (size_t)i),
                                 _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, pm)));
            }
        }
        return i;
    }
    static __attribute__((target("avx2"))) int pcm_store_mono_avx2(uint8_t* p, int n, int bits,
                                                                  const int64_t* x) {
        int i = 0;
        if (bits == 24) {
            const __m128i s0 = _mm_setr_epi8(0, 1, 2, 8, 9, 10, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
            const __m128i s1 = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 0, 1, 2, 8, 9, 10, -1, -1, -1, -1);
            for (; i + 6 <= n; i += 4) {
                __m256i v = _mm256_loadu_si256((const __m256i*)(x + i));
                __m128i w = _mm_or_si128(_mm_shuffle_epi8(_mm256_castsi256_si128(v), s0),
                                         _mm_shuffle_epi8(_mm256_extracti128_si256(v, 1), s1));
                _mm_storeu_si128((__m128i*)(p + 3 * (size_t)i), w);
            }
        } else if (bits == 16) {
            const __m256i s0 = _mm256_setr_epi8(0, 1, 8, 9, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                0, 1, 8, 9, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
            const __m256i pm = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
            for (; i + 4 <= n; i += 4) {
                __m256i v = _mm256_permutevar8x32_epi32(
                    _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i*)(x + i)), s0), pm);
                _mm_storel_epi64((__m128i*)(p + 2 * (size_t)i), _mm256_castsi256_si128(v));
            }
        }
        return i;
    }
    #endif
    /* Load one block of little-endian 24-bit mono or stereo frames into per-channel int64
       (x0, x1): 8 (mono) or 4 (stereo) frames per step from two 16-byte loads that stay
       inside the n frames; returns the number of frames done, the caller loads the rest. */
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static PCM_AVX2 int pcm_load24_avx2(const uint8_t* p, int n, int ch, int64_t* x0, int64_t* x1,
                                        int32_t* y0, int32_t* y1) {
        int i = 0;
        if (ch == 1) {
            const __m256i m = _mm256_setr_epi8(-1, 0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11,
                                               -1, 0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11);
            for (; 3 * (size_t)i + 28 <= 3 * (size_t)n; i += 8) {
                __m128i lo = _mm_loadu_si128((const __m128i*)(p + 3 * (size_t)i));
                __m128i hi = _mm_loadu_si128((const __m128i*)(p + 3 * (size_t)i + 12));
                __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
                v = _mm256_srai_epi32(_mm256_shuffle_epi8(v, m), 8);
                _mm256_storeu_si256((__m256i*)(x0 + i), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)));
                _mm256_storeu_si256((__m256i*)(x0 + i + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
                if (y0) _mm256_storeu_si256((__m256i*)(y0 + i), v);
            }
        } else if (ch == 2) {
            /* per 128-bit lane: two frames -> L, L', R, R' */
            const __m256i m = _mm256_setr_epi8(-1, 0, 1, 2, -1, 6, 7, 8, -1, 3, 4, 5, -1, 9, 10, 11,
                                               -1, 0, 1, 2, -1, 6, 7, 8, -1, 3, 4, 5, -1, 9, 10, 11);
            for (; 6 * (size_t)i + 28 <= 6 * (size_t)n; i += 4) {
                __m128i lo = _mm_loadu_si128((const __m128i*)(p + 6 * (size_t)i));
                __m128i hi = _mm_loadu_si128((const __m128i*)(p + 6 * (size_t)i + 12));
                __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
                v = _mm256_srai_epi32(_mm256_shuffle_epi8(v, m), 8);
                v = _mm256_permute4x64_epi64(v, 0xD8);  /* L0 L1 L2 L3 R0 R1 R2 R3 */
                _mm256_storeu_si256((__m256i*)(x0 + i), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)));
                _mm256_storeu_si256((__m256i*)(x1 + i), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
                if (y0) {
                    _mm_storeu_si128((__m128i*)(y0 + i), _mm256_castsi256_si128(v));
                    _mm_storeu_si128((__m128i*)(y1 + i), _mm256_extracti128_si256(v, 1));
                }
            }
        }
        return i;
    }
    /* pcm_autocorr10 for AVX2: the same 20 accumulators a[0..9] (even i) and b[0..9] (odd i)
       fed the same products in the same order, so the same R; they are packed into five
       vectors (a0-3, a4-7, a8 a9 b0 b1, b2-5, b6-9) instead of six. */
    static inline __attribute__((always_inline)) PCM_AVX2 void pcm_window2_avx2(
            const int64_t* x, const double* win, double* xd, double* xw, int i) {
        __m128d v = _mm_cvtepi32_pd(_mm_shuffle_epi32(_mm_loadu_si128((const __m128i*)(x + i)), 0x08));
        _mm_storeu_pd(xd + i, v);
        _mm_storeu_pd(xw + i, _mm_mul_pd(v, _mm_loadu_pd(win + i)));
    }
    /* pcm_window then pcm_autocorr10 of xw, with the window worked out PCM_WIN_AHEAD samples
       ahead of the products inside their loop (which waits on its add latency anyway). */
    #define PCM_WIN_AHEAD 24
    static PCM_AVX2 void pcm_autocorr10_avx2(const double* x, int n, double* R) { pcm_autocorr10_body(x, n, R); }
    static PCM_AVX2 void pcm_window_autocorr10_avx2(const int64_t* xi64, int n, const double* win,
                                                    double* xd, double* x, double* R) {
        double a[10] = {0}, b[10] = {0};
        int i, j, D = n < PCM_WIN_AHEAD ? n : PCM_WIN_AHEAD;
        for (j = 0; j < D; j++) {
            double v = (double)(int32_t)xi64[j];
            xd[j] = v;
            x[j] = v * win[j];
        }
        for (i = 0; i < n && i < 9; i++)
            for (j = 0; j <= i; j++) a[9 - j] += x[i] * x[i - j];
        if (i + 1 < n) {
            __m256d A0 = _mm256_loadu_pd(a), A1 = _mm256_loadu_pd(a + 4),
                    AB = _mm256_setr_pd(a[8], a[9], 0.0, 0.0),
                    B1 = _mm256_setzero_pd(), B2 = _mm256_setzero_pd();
            double t[4];
            for (; i + 1 < n; i += 2) {
                const double* p = x + i - 9;
                const double* q = x + i - 8;
                if (D + 2 <= n) {
                    pcm_window2_avx2(xi64, win, xd, x, D);
                    D += 2;
                } else if (D < n) {
                    double v = (double)(int32_t)xi64[D];
                    xd[D] = v;
                    x[D] = v * win[D];
                    D++;
                }
                __m256d xi = _mm256_broadcast_sd(x + i), xk = _mm256_broadcast_sd(x + i + 1);
                __m256d xik = _mm256_blend_pd(xi, xk, 0xC);
                __m256d pq = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(p + 8)), _mm_loadu_pd(q), 1);
                A0 = _mm256_add_pd(A0, _mm256_mul_pd(xi, _mm256_loadu_pd(p)));
                A1 = _mm256_add_pd(A1, _mm256_mul_pd(xi, _mm256_loadu_pd(p + 4)));
                AB = _mm256_add_pd(AB, _mm256_mul_pd(xik, pq));
                B1 = _mm256_add_pd(B1, _mm256_mul_pd(xk, _mm256_loadu_pd(q + 2)));
                B2 = _mm256_add_pd(B2, _mm256_mul_pd(xk, _mm256_loadu_pd(q + 6)));
            }
            _mm256_storeu_pd(a, A0);
            _mm256_storeu_pd(a + 4, A1);
            _mm256_storeu_pd(t, AB);
            a[8] = t[0]; a[9] = t[1]; b[0] = t[2]; b[1] = t[3];
            _mm256_storeu_pd(b + 2, B1);
            _mm256_storeu_pd(b + 6, B2);
        }
        for (; D < n; D++) {
            double v = (double)(int32_t)xi64[D];
            xd[D] = v;
            x[D] = v * win[D];
        }
        for (; i < n; i++) {
            const double* p = x + i - 9;
            for (j = 0; j < 10; j++) a[j] += x[i] * p[j];
        }
        for (j = 0; j < 10; j++) R[9 - j] = a[j] + b[j];
    }
    #endif
    static void pcm_autocorr10_base(const double* x, int n, double* R) { pcm_autocorr10_body(x, n, R); }
    static void pcm_autocorr10(const double* x, int n, double* R) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2) { pcm_autocorr10_avx2(x, n, R); return; }
    #endif
        pcm_autocorr10_base(x, n, R);
    }
    /* xd = (double)x (x must fit in int32), xw = xd * win, and R = autocorrelation of xw */
    static void pcm_window_autocorr10(const int64_t* x, int n, const double* win, double* xd,
                                      double* xw, double* R) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2) { pcm_window_autocorr10_avx2(x, n, win, xd, xw, R); return; }
    #endif
        pcm_window(x, n, win, xd, xw);
        pcm_autocorr10_base(xw, n, R);
    }
    /* LPC analysis input in single precision (as libFLAC's reference encoder): xd = (double)x
       (x must fit in int32) for the residual, xf = (float)(xd * win) and R[0..8] = its
       autocorrelation (what orders up to 8 need; R[9] is left alone), lag by lag over 8 float
       lanes (lane j sums the products at i = 8t + j).
       Each lane adds the products of four steps as (p0 + p1) + (p2 + p3) into its float sum,
       which after PCM_ACF_FLUSH steps (4 such groups) is added into two 4-wide double
       accumulators; the lanes are summed in a fixed order at the end. Float sums lose size when
       they grow long (one product a step flushed every 16 steps: +0.1% on 16-bit mono music,
       every 8: +0.03%, these grouped sums: +/-0.004%), and float itself loses on very
       predictable blocks (a 96 kHz sweep +6%, plucks +1%), which lpc_analyze therefore redoes
       in double precision (pcm_window_autocorr10). xf must have room for
       n + 32 floats; its first 16 are zeros (x[-16..-1]) and the products of the padding after
       n are zeros. The same vector code is compiled for every clone (no FMA contraction: the
       clones' targets have none), so R does not depend on the CPU. */
    typedef float pcm_v8f __attribute__((vector_size(32)));
    typedef float pcm_v4f __attribute__((vector_size(16)));
    typedef double pcm_v4d __attribute__((vector_size(32)));
    #define PCM_ACF_FLUSH 16
    static inline __attribute__((always_inline))
    void pcm_window_acf9f_body(const int64_t* x, const int32_t* y, int n, const double* win, int flat,
                               double* xd, float* xf0, double* R) {
        float* xf = xf0 + 16;
        int i, l, t, nv = (n + 7) >> 3;
        pcm_v4d dl[9], dh[9];
        for (l = 0; l < 16; l++) xf0[l] = 0.0f;
        /* win[i] == 1.0 for flat <= i < n - flat: there (float)(v * 1.0) is (float)v, converted
           from the int32 directly (one rounding of the same value either way). The samples are
           read from y (int32) when the caller has them there. */
        if (flat < 0 || 2 * flat > n) flat = n;
        #define PCM_WIN_LOOPS(SRC) \
            for (i = 0; i < flat; i++) { double v = (double)(SRC); xd[i] = v; xf[i] = (float)(v * win[i]); } \
            for (; i < n - flat; i++) { int32_t v = (SRC); xd[i] = (double)v; xf[i] = (float)v; } \
            for (; i < n; i++) { double v = (double)(SRC); xd[i] = v; xf[i] = (float)(v * win[i]); }
        if (y) { PCM_WIN_LOOPS(y[i]) } else { PCM_WIN_LOOPS((int32_t)x[i]) }
        #undef PCM_WIN_LOOPS
        for (; i < 8 * nv; i++) xf[i] = 0.0f;
        for (l = 0; l < 9; l++) { dl[l] = (pcm_v4d){0.0, 0.0, 0.0, 0.0}; dh[l] = dl[l]; }
        for (t = 0; t < nv; ) {
            int e = nv - t > PCM_ACF_FLUSH ? t + PCM_ACF_FLUSH : nv;
            pcm_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0},
                    a5 = {0}, a6 = {0}, a7 = {0}, a8 = {0};
            for (; t + 4 <= e; t += 4) {
                const float* p = xf + 8 * t;
                pcm_v8f v, w, v2, w2, v3, w3, v4, w4;
                memcpy(&v, p, 32); memcpy(&v2, p + 8, 32); memcpy(&v3, p + 16, 32); memcpy(&v4, p + 24, 32);
                #define PCM_ACF_LAG(L) memcpy(&w, p - L, 32); memcpy(&w2, p + 8 - L, 32); \
                    memcpy(&w3, p + 16 - L, 32); memcpy(&w4, p + 24 - L, 32); a##L += (v * w + v2 * w2) + (v3 * w3 + v4 * w4);
                PCM_ACF_LAG(0) PCM_ACF_LAG(1) PCM_ACF_LAG(2) PCM_ACF_LAG(3) PCM_ACF_LAG(4)
                PCM_ACF_LAG(5) PCM_ACF_LAG(6) PCM_ACF_LAG(7) PCM_ACF_LAG(8)
                #undef PCM_ACF_LAG
            }
            for (; t < e; t++) {
                const float* p = xf + 8 * t;
                pcm_v8f v, w;
                memcpy(&v, p, 32);
                #define PCM_ACF_LAG(L) memcpy(&w, p - L, 32); a##L += v * w;
                PCM_ACF_LAG(0) PCM_ACF_LAG(1) PCM_ACF_LAG(2) PCM_ACF_LAG(3) PCM_ACF_LAG(4)
                PCM_ACF_LAG(5) PCM_ACF_LAG(6) PCM_ACF_LAG(7) PCM_ACF_LAG(8)
                #undef PCM_ACF_LAG
            }
            #define PCM_ACF_FL(L) { \
                pcm_v4f lo = {a##L[0], a##L[1], a##L[2], a##L[3]}, hi = {a##L[4], a##L[5], a##L[6], a##L[7]}; \
                dl[L] += __builtin_convertvector(lo, pcm_v4d); dh[L] += __builtin_convertvector(hi, pcm_v4d); }
            PCM_ACF_FL(0) PCM_ACF_FL(1) PCM_ACF_FL(2) PCM_ACF_FL(3) PCM_ACF_FL(4)
            PCM_ACF_FL(5) PCM_ACF_FL(6) PCM_ACF_FL(7) PCM_ACF_FL(8)
            #undef PCM_ACF_FL
        }
        for (l = 0; l < 9; l++) {
            pcm_v4d s = dl[l] + dh[l];
            R[l] = (s[0] + s[1]) + (s[2] + s[3]);
        }
    }
    PCM_DISPATCH(void, pcm_window_acf9f,
                 (const int64_t* x, const int32_t* y, int n, const double* win, int flat, double* xd, float* xf, double* R),
                 (x, y, n, win, flat, xd, xf, R))
    /* Ask for the next block's input while this one is being encoded. */
    static void pcm_prefetch(const uint8_t* p, size_t len) {
        size_t off;
        for (off = 0; off < len; off += 64) __builtin_prefetch(p + off, 0, 3);
    }
    /* De-interleave a block of n frames into channel c at x + c * cstride, and with y (integer
       PCM of at most 24 bits) the same values as int32 at y + c * cstride, for the analysis
       (pcm_fixed_sums_y, pcm_stereo_sums_y, pcm_window_acf9f), which then need not narrow
       them itself. */
    static void pcm_load_block(const uint8_t* p, int n, int bits, int be, int ch, int64_t* x, int cstride,
                               int32_t* y) {
        int c, i, i0 = 0, bps = bits / 8, align = ch * (bits / 8);
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && \
        defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (pcm_avx2 && bits == 24 && !be && (ch == 1 || ch == 2))
            i0 = pcm_load24_avx2(p, n, ch, x, x + cstride, y, y ? y + cstride : NULL);
    #endif
        for (c = 0; c < ch; c++) {
            pcm_load(p + (size_t)i0 * align + c * bps, align, n - i0, bits, be, x + (size_t)c * cstride + i0);
            if (y) {
                const int64_t* xc = x + (size_t)c * cstride;
                int32_t* yc = y + (size_t)c * cstride;
                for (i = i0; i < n; i++) yc[i] = (int32_t)xc[i];
            }
        }
    }
    /* Encoder bit writer: the low nb (< 8) bits of acc are pending, written (with zeros
       above) at out[pos]; a put stores 8 bytes there and advances by whole bytes. */
    typedef struct { uint8_t* out; size_t pos; uint64_t acc; int nb; int bad; } pcm_bw;  /* bad: see pcm_put_unary */
    static inline __attribute__((always_inline)) void pcm_put(pcm_bw* w, uint64_t v, int k) {
        w->acc |= v << w->nb;
        w->nb += k;
        pcm_st64(w->out + w->pos, w->acc);
        w->pos += (size_t)(w->nb >> 3);
        w->acc >>= (w->nb & ~7);
        w->nb &= 7;
    }
    static inline __attribute__((always_inline)) void pcm_put_rice1(pcm_bw* w, uint64_t u, int k) {
        uint64_t q = u >> k;
        if (q + 1 + k <= 56) {
            pcm_put(w, (((u & ((((uint64_t)1) << k) - 1)) << 1) | 1) << q, (int)(q + 1 + k));
        } else {
            while (q >= 56) { pcm_put(w, 0, 56); q -= 56; }
            pcm_put(w, ((uint64_t)1) << q, (int)q + 1);
            pcm_put(w, u & ((((uint64_t)1) << k) - 1), k);
        }
    }
    /* Rice codes (parameter k) of the zigzags r[i] (PCM_RZ), i in [i, end): G consecutive codes (G from k,
       so that a group usually fits) are joined into one put when together they are at most
       56 bits long; the bitstream is the same as one put per code. */
    #define PCM_RC(j) uint64_t u##j = PCM_RZ(r[i + j]), q##j = u##j >> k, \
                      c##j = (((u##j & mk) << 1) | 1)
    static inline __attribute__((always_inline))
    void pcm_rice_codes_body(pcm_bw* bw, const int64_t* r, int i, int end, int k) {
        pcm_bw w = *bw;  /* in locals: stores through out could alias *bw */
        const uint64_t mk = (((uint64_t)1) << k) - 1;
        const uint64_t k1 = (uint64_t)k + 1;
        if (k <= 10) {
            for (; i + 4 <= end; i += 4) {
                PCM_RC(0); PCM_RC(1); PCM_RC(2); PCM_RC(3);
                uint64_t l0 = q0 + k1, l1 = q1 + k1, l2 = q2 + k1, l3 = q3 + k1;
                if (((q0 | q1 | q2 | q3) < 64) & (l0 + l1 + l2 + l3 <= 56)) {
                    uint64_t a = l0 + l1;
                    pcm_put(&w, (c0 << q0) | (c1 << (q1 + l0)) | (c2 << (q2 + a)) | (c3 << (q3 + a + l2)),
                            (int)(a + l2 + l3));
                } else {
                    pcm_put_rice1(&w, u0, k); pcm_put_rice1(&w, u1, k);
                    pcm_put_rice1(&w, u2, k); pcm_put_rice1(&w, u3, k);
                }
            }
        } else if (k <= 14) {
            for (; i + 3 <= end; i += 3) {
                PCM_RC(0); PCM_RC(1); PCM_RC(2);
                uint64_t l0 = q0 + k1, l1 = q1 + k1, l2 = q2 + k1;
                if (((q0 | q1 | q2) < 64) & (l0 + l1 + l2 <= 56)) {
                    pcm_put(&w, (c0 << q0) | (c1 << (q1 + l0)) | (c2 << (q2 + l0 + l1)), (int)(l0 + l1 + l2));
                } else {
                    pcm_put_rice1(&w, u0, k); pcm_put_rice1(&w, u1, k); pcm_put_rice1(&w, u2, k);
                }
            }
        } else if (k <= 26) {
            for (; i + 2 <= end; i += 2) {
                PCM_RC(0); PCM_RC(1);
                uint64_t l0 = q0 + k1, l1 = q1 + k1;
                if (((q0 | q1) < 64) & (l0 + l1 <= 56)) {
                    pcm_put(&w, (c0 << q0) | (c1 << (q1 + l0)), (int)(l0 + l1));
                } else {
                    pcm_put_rice1(&w, u0, k); pcm_put_rice1(&w, u1, k);
                }
            }
        }
        for (; i < end; i++) pcm_put_rice1(&w, PCM_RZ(r[i]), k);
        *bw = w;
    }
    static void pcm_rice_codes_base(pcm_bw* bw, const int64_t* r, int i, int end, int k) {
        pcm_rice_codes_body(bw, r, i, end, k);
    }
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static __attribute__((target("bmi,bmi2"))) void pcm_rice_codes_bmi2(
            pcm_bw* bw, const int64_t* r, int i, int end, int k) {
        pcm_rice_codes_body(bw, r, i, end, k);
    }
    #endif
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* AVX2: the codes of the 4 zigzag residuals in u_ (every quotient below 64), joined in
       pairs: lanes 0 and 2 of PC hold codes 0|1 and 2|3, of PL their lengths. */
    #define PCM_PAIRS4(u_, PC, PL) do { \
            __m256i q_ = _mm256_srl_epi64(u_, kc); \
            __m256i c_ = _mm256_sllv_epi64(_mm256_or_si256(_mm256_slli_epi64(_mm256_and_si256(u_, mkv), 1), one), q_); \
            __m256i l_ = _mm256_add_epi64(q_, k1v); \
            PC = _mm256_or_si256(c_, _mm256_sllv_epi64(_mm256_shuffle_epi32(c_, 0x4E), l_)); \
            PL = _mm256_add_epi64(l_, _mm256_shuffle_epi32(l_, 0x4E)); \
        } while (0)
    /* four of a residual array's zigzags (PCM_RZ) */
    #define PCM_ZZ4(ptr) _mm256_loadu_si256((const __m256i*)(ptr))
    /* Codes of 16 residuals at a time are worked out 4 per vector and joined in pairs; the
       pairs are then written one put each (a pair longer than 56 bits: one code at a time;
       16 residuals with a quotient of 64 or more: the scalar writer). */
    static __attribute__((target("avx2,bmi,bmi2"))) void pcm_rice_codes_avx2(
            pcm_bw* bw, const int64_t* r, int i, int end, int k) {
        const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi64x(1),
                      mkv = _mm256_set1_epi64x((long long)((((uint64_t)1) << k) - 1)),
                      k1v = _mm256_set1_epi64x(k + 1), c56 = _mm256_set1_epi64x(56);
        const __m128i kc = _mm_cvtsi32_si128(k), kc6 = _mm_cvtsi32_si128(k + 6);
        uint64_t pc[8] __attribute__((aligned(32))), pl[8] __attribute__((aligned(32)));
        uint64_t qc[4] __attribute__((aligned(32))), ql[4] __attribute__((aligned(32)));
        pcm_bw w = *bw;
        int h, j;
        for (; i + 16 <= end; i += 16) {
            __m256i big = zero, cv[2], lv[2], u[4];
            u[0] = PCM_ZZ4(r + i); u[1] = PCM_ZZ4(r + i + 4);
            u[2] = PCM_ZZ4(r + i + 8); u[3] = PCM_ZZ4(r + i + 12);
            __m256i uo = _mm256_srl_epi64(_mm256_or_si256(_mm256_or_si256(u[0], u[1]), _mm256_or_si256(u[2], u[3])), kc6);
            if (__builtin_expect(!_mm256_testz_si256(uo, uo), 0)) {
                pcm_rice_codes_body(&w, r, i, i + 16, k);
                continue;
            }
            for (h = 0; h < 2; h++) {
                __m256i ca, la, cb, lb;
                PCM_PAIRS4(u[2 * h], ca, la);
                PCM_PAIRS4(u[2 * h + 1], cb, lb);
                cv[h] = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(ca, cb), 0xD8);
                lv[h] = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(la, lb), 0xD8);
                big = _mm256_or_si256(big, _mm256_cmpgt_epi64(lv[h], c56));
                _mm256_store_si256((__m256i*)(pc + 4 * h), cv[h]);
                _mm256_store_si256((__m256i*)(pl + 4 * h), lv[h]);
            }
            if (__builtin_expect(_mm256_testz_si256(big, big), 1)) {  /* every pair fits */
                if (k <= 11) {  /* short codes: pairs of pairs, where they fit in 56 bits */
                    __m256i qv[2], qlv[2];
                    for (h = 0; h < 2; h++) {
                        qv[h] = _mm256_or_si256(cv[h], _mm256_sllv_epi64(_mm256_shuffle_epi32(cv[h], 0x4E), lv[h]));
                        qlv[h] = _mm256_add_epi64(lv[h], _mm256_shuffle_epi32(lv[h], 0x4E));
                    }
                    __m256i q4 = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(qv[0], qv[1]), 0xD8);
                    __m256i l4 = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(qlv[0], qlv[1]), 0xD8);
                    _mm256_store_si256((__m256i*)qc, q4);
                    _mm256_store_si256((__m256i*)ql, l4);
                    __m256i long4 = _mm256_cmpgt_epi64(l4, c56);
                    if (_mm256_testz_si256(long4, long4)) {
                        for (j = 0; j < 4; j++) pcm_put(&w, qc[j], (int)ql[j]);
                    } else {
                        for (j = 0; j < 4; j++) {
                            if (ql[j] <= 56) pcm_put(&w, qc[j], (int)ql[j]);
                            else { pcm_put(&w, pc[2 * j], (int)pl[2 * j]); pcm_put(&w, pc[2 * j + 1], (int)pl[2 * j + 1]); }
                        }
                    }
                    continue;
                }
                for (j = 0; j < 8; j++) pcm_put(&w, pc[j], (int)pl[j]);
                continue;
            }
            for (j = 0; j < 8; j++) {
                if (pl[j] <= 56) {
                    pcm_put(&w, pc[j], (int)pl[j]);
                } else {
                    pcm_put_rice1(&w, PCM_RZ(r[i + 2 * j]), k);
                    pcm_put_rice1(&w, PCM_RZ(r[i + 2 * j + 1]), k);
                }
            }
        }
        *bw = w;
        pcm_rice_codes_body(bw, r, i, end, k);
    }
    #endif
    static void pcm_rice_codes(pcm_bw* bw, const int64_t* r, int i, int end, int k) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2 && pcm_bmi2) { pcm_rice_codes_avx2(bw, r, i, end, k); return; }
        if (pcm_bmi2) { pcm_rice_codes_bmi2(bw, r, i, end, k); return; }
    #endif
        pcm_rice_codes_base(bw, r, i, end, k);
    }
    /* Version 2 partition writer: the unary stream (1 << q, q + 1 bits, for each code: eight
       codes joined into one put when together they fit in 56 bits, which with the encoder's
       k they nearly always do), then the k-bit low parts, 56 / k (at most 8) to a put. The
       encoder keeps every q below 64 (choose_k's kmin); every path that could write a longer
       one (which the decoder rejects) goes through pcm_put_unary, which flags it (w->bad):
       encode() then returns None rather than a payload that does not decode. */
    /* Append len (<= 120) bits, lo then hi, like pcm_put: two 8-byte stores; the pending
       bits are then the low bits of the byte at bit t & ~7 of the 128 stored ones (the bits
       above t are zero), which lies in one of the two words. */
    static inline __attribute__((always_inline)) void pcm_put128(pcm_bw* w, uint64_t lo, uint64_t hi, int len) {
        const uint64_t nb = (uint64_t)w->nb;
        const uint64_t l2 = w->acc | (lo << nb);
        const uint64_t h2 = (hi << nb) | ((lo >> 1) >> (63 - nb));
        const uint64_t t = nb + (uint64_t)len, b = t & 120;
        pcm_st64(w->out + w->pos, l2);
        pcm_st64(w->out + w->pos + 8, h2);
        w->pos += (size_t)(t >> 3);
        w->acc = ((b & 64) ? h2 : l2) >> (b & 63);
        w->nb = (int)(t & 7);
    }
    static inline __attribute__((always_inline)) void pcm_put_unary(pcm_bw* w, uint64_t q) {
        w->bad |= q > 63;  /* a version 2 payload cannot hold it */
        while (q >= 56) { pcm_put(w, 0, 56); q -= 56; }
        pcm_put(w, ((uint64_t)1) << q, (int)q + 1);
    }
    static inline __attribute__((always_inline))
    void pcm_rice2_codes_body(pcm_bw* bw, const int64_t* r, int i0, int end, int k) {
        pcm_bw w = *bw;  /* in locals: stores through out could alias *bw */
        const uint64_t mk = (((uint64_t)1) << k) - 1;
        int i, j, G;
        for (i = i0; i + 8 <= end; i += 8) {
            uint64_t q[8], pos[8], s = 0, v = 0;
            for (j = 0; j < 8; j++) { q[j] = PCM_RZ(r[i + j]) >> k; pos[j] = s + q[j]; s += q[j] + 1; }
            if (__builtin_expect(s <= 56, 1)) {
                for (j = 0; j < 8; j++) v |= ((uint64_t)1) << pos[j];
                pcm_put(&w, v, (int)s);
            } else {
                for (j = 0; j < 8; j++) pcm_put_unary(&w, q[j]);
            }
        }
        for (; i < end; i++) pcm_put_unary(&w, PCM_RZ(r[i]) >> k);
        if (k) {
            G = 56 / k;
            if (G > 8) G = 8;
            i = i0;
            if (G == 8) {
                for (; i + 8 <= end; i += 8) {
                    uint64_t v = 0;
                    for (j = 0; j < 8; j++) v |= (PCM_RZ(r[i + j]) & mk) << (j * k);
                    pcm_put(&w, v, 8 * k);
                }
            } else if (G >= 2) {
                for (; i + G <= end; i += G) {
                    uint64_t v = 0;
                    for (j = 0; j < G; j++) v |= (PCM_RZ(r[i + j]) & mk) << (j * k);
                    pcm_put(&w, v, G * k);
                }
            }
            for (; i < end; i++) pcm_put(&w, PCM_RZ(r[i]) & mk, k);
        }
        *bw = w;
    }
    static void pcm_rice2_codes_base(pcm_bw* bw, const int64_t* r, int i, int end, int k) {
        pcm_rice2_codes_body(bw, r, i, end, k);
    }
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* AVX2: as the AVX-512 clone below, in 4-lane vectors */
    #define PCM_PSUM4(c) do { \
            c = _mm256_add_epi64(c, _mm256_blend_epi32(_mm256_permute4x64_epi64(c, 0x90), zero, 0x03)); \
            c = _mm256_add_epi64(c, _mm256_blend_epi32(_mm256_permute4x64_epi64(c, 0x40), zero, 0x0F)); \
        } while (0)
    #define PCM_BCAST3(c) _mm256_permute4x64_epi64(c, 0xFF)
    static __attribute__((target("avx2,bmi,bmi2"))) inline uint64_t pcm_or4(__m256i v) {
        __m128i x = _mm_or_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        return (uint64_t)_mm_cvtsi128_si64(_mm_or_si128(x, _mm_unpackhi_epi64(x, x)));
    }
    /* the unary codes of the 16 quotients q[0..3] (four a vector), placed by a prefix sum of
       q + 1: one put where every q < 64 and together they fit in 120 bits */
    static __attribute__((target("avx2,bmi,bmi2"))) inline __attribute__((always_inline))
    void pcm_unary16_avx2(pcm_bw* w, __m256i* q) {
        const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi64x(1), c65 = _mm256_set1_epi64x(65);
        uint64_t a[16] __attribute__((aligned(32)));
        __m256i c[4], lo = zero, hi = zero;
        int j, h;
        for (h = 0; h < 4; h++) {
            c[h] = _mm256_add_epi64(q[h], one);
            PCM_PSUM4(c[h]);
        }
        c[1] = _mm256_add_epi64(c[1], PCM_BCAST3(c[0]));
        c[2] = _mm256_add_epi64(c[2], PCM_BCAST3(c[1]));
        c[3] = _mm256_add_epi64(c[3], PCM_BCAST3(c[2]));
        uint64_t tot = (uint64_t)_mm256_extract_epi64(c[3], 3);
        __m256i qo = _mm256_or_si256(_mm256_or_si256(q[0], q[1]), _mm256_or_si256(q[2], q[3]));
        int big = !_mm256_testz_si256(qo, _mm256_set1_epi64x(~(long long)63));
        if (__builtin_expect((tot <= 120) & !big, 1)) {
            for (h = 0; h < 4; h++) {
                lo = _mm256_or_si256(lo, _mm256_sllv_epi64(one, _mm256_sub_epi64(c[h], one)));
                hi = _mm256_or_si256(hi, _mm256_sllv_epi64(one, _mm256_sub_epi64(c[h], c65)));
            }
            pcm_put128(w, pcm_or4(lo), pcm_or4(hi), (int)tot);
        } else {
            for (h = 0; h < 4; h++) _mm256_store_si256((__m256i*)(a + 4 * h), q[h]);
            for (j = 0; j < 16; j++) pcm_put_unary(w, a[j]);
        }
    }
    /* the k-bit low parts of r[i0..end), eight a step joined in registers (two, four or eight
       to a put, by k); both AVX2 writers */
    static __attribute__((target("avx2,bmi,bmi2"))) inline __attribute__((always_inline))
    void pcm_low2_avx2(pcm_bw* pw, const int64_t* r, int i0, int end, int k) {
        const __m256i mkv = _mm256_set1_epi64x((long long)((((uint64_t)1) << k) - 1));
        const __m128i kc = _mm_cvtsi32_si128(k), k2c = _mm_cvtsi32_si128(2 * k);
        uint64_t a[8] __attribute__((aligned(32)));
        pcm_bw w = *pw;
        int i, j;
        if (k) {
            for (i = i0; i + 8 <= end; i += 8) {
                __m256i A = _mm256_and_si256(PCM_ZZ4(r + i), mkv), B = _mm256_and_si256(PCM_ZZ4(r + i + 4), mkv);
                if (k > 28) {
                    _mm256_store_si256((__m256i*)a, A);
                    _mm256_store_si256((__m256i*)(a + 4), B);
                    for (j = 0; j < 8; j += 2) pcm_put128(&w, a[j] | (a[j + 1] << k), a[j + 1] >> (64 - k), 2 * k);
                    continue;
                }
                /* pairs in lanes 0 and 2 */
                A = _mm256_or_si256(A, _mm256_sll_epi64(_mm256_srli_si256(A, 8), kc));
                B = _mm256_or_si256(B, _mm256_sll_epi64(_mm256_srli_si256(B, 8), kc));
                if (k > 15) {
                    _mm256_store_si256((__m256i*)a, A);
                    _mm256_store_si256((__m256i*)(a + 4), B);
                    pcm_put128(&w, a[0] | (a[2] << (2 * k)), a[2] >> (64 - 2 * k), 4 * k);
                    pcm_put128(&w, a[4] | (a[6] << (2 * k)), a[6] >> (64 - 2 * k), 4 * k);
                    continue;
                }
                /* fours in lane 0 */
                A = _mm256_or_si256(A, _mm256_sll_epi64(_mm256_permute4x64_epi64(A, 0x02), k2c));
                B = _mm256_or_si256(B, _mm256_sll_epi64(_mm256_permute4x64_epi64(B, 0x02), k2c));
                uint64_t fa = (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(A));
                uint64_t fb = (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(B));
                if (k > 7) pcm_put128(&w, fa | (fb << (4 * k)), fb >> (64 - 4 * k), 8 * k);
                else pcm_put(&w, fa | (fb << (4 * k)), 8 * k);
            }
            for (; i < end; i++) pcm_put(&w, PCM_RZ(r[i]) & (((uint64_t)1 << k) - 1), k);
        }
        *pw = w;
    }
    static __attribute__((target("avx2,bmi,bmi2"))) void pcm_rice2_codes_avx2(
            pcm_bw* bw, const int64_t* r, int i0, int end, int k) {
        const __m128i kc = _mm_cvtsi32_si128(k);
        pcm_bw w = *bw;
        int i, h;
        for (i = i0; i + 16 <= end; i += 16) {
            __m256i q[4];
            for (h = 0; h < 4; h++) q[h] = _mm256_srl_epi64(PCM_ZZ4(r + i + 4 * h), kc);
            pcm_unary16_avx2(&w, q);
        }
        for (; i < end; i++) pcm_put_unary(&w, PCM_RZ(r[i]) >> k);
        pcm_low2_avx2(&w, r, i0, end, k);
        *bw = w;
    }
    /* AVX2 where pext is fast (pcm_fast_pext): as the AVX-512 clone, sixteen codes a step of
       the unary stream where every q < 8: the quotients narrowed to bytes (vpackssdw twice,
       vpackuswb), 1 << q from a vpshufb table, the code masks B | (B - 1) (per byte: no
       borrow), and pext packs eight codes into popcount(mask) bits; other steps as
       pcm_rice2_codes_avx2. Low parts with k <= 15: sixteen a step narrowed to bytes (k <= 8)
       or words, pext-packed eight or four at a time. */
    /* two words of unary codes as bytes 1 << q (B) with their q + 1 bits marked (M): pext
       packs each into popcount(M) bits, one put where both fit in 56 (the pext writers) */
    static __attribute__((target("bmi,bmi2,popcnt"))) inline __attribute__((always_inline))
    void pcm_put_pext2(pcm_bw* w, uint64_t B0, uint64_t M0, uint64_t B1, uint64_t M1) {
        uint64_t v0 = _pext_u64(B0, M0), v1 = _pext_u64(B1, M1);
        int l0 = (int)_mm_popcnt_u64(M0), l1 = (int)_mm_popcnt_u64(M1);
        if (__builtin_expect(l0 + l1 <= 56, 1)) pcm_put(w, v0 | (v1 << l0), l0 + l1);
        else { pcm_put128(w, v0, 0, l0); pcm_put128(w, v1, 0, l1); }
    }
    #define PCM_AVX2P __attribute__((target("avx2,bmi,bmi2,popcnt")))
    /* sixteen quadwords below 2**15 in four vectors as words, the pairs of each 128-bit lane
       as dwords: a01 b01 c01 d01 | a23 b23 c23 d23 */
    static PCM_AVX2P inline __attribute__((always_inline)) __m256i pcm_pack16(__m256i a, __m256i b, __m256i c, __m256i d) {
        return _mm256_packs_epi32(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    }
    /* the same below 2**8, as sixteen bytes in order */
    static PCM_AVX2P inline __attribute__((always_inline)) __m128i pcm_bytes16(__m256i a, __m256i b, __m256i c, __m256i d) {
        __m256i x = pcm_pack16(a, b, c, d);
        x = _mm256_packus_epi16(x, x);  /* per lane: a01 b01 c01 d01 (bytes) twice */
        return _mm_unpacklo_epi16(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    }
    static PCM_AVX2P void pcm_rice2_codes_avx2p(pcm_bw* bw, const int64_t* r, int i0, int end, int k) {
        const __m256i not7 = _mm256_set1_epi64x(~(long long)7);
        const __m256i mkv = _mm256_set1_epi64x((long long)((((uint64_t)1) << k) - 1));
        const __m128i kc = _mm_cvtsi32_si128(k);
        const __m128i pow2 = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, (char)128, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m128i m1 = _mm_set1_epi8(-1);
        uint64_t a[8] __attribute__((aligned(32)));
        pcm_bw w = *bw;
        int i, h;
        for (i = i0; i + 16 <= end; i += 16) {
            __m256i q[4];
            for (h = 0; h < 4; h++) q[h] = _mm256_srl_epi64(PCM_ZZ4(r + i + 4 * h), kc);
            __m256i qo = _mm256_or_si256(_mm256_or_si256(q[0], q[1]), _mm256_or_si256(q[2], q[3]));
            if (__builtin_expect(_mm256_testz_si256(qo, not7), 1)) {
                __m128i B = _mm_shuffle_epi8(pow2, pcm_bytes16(q[0], q[1], q[2], q[3]));
                __m128i M = _mm_or_si128(B, _mm_add_epi8(B, m1));
                uint64_t B0 = (uint64_t)_mm_cvtsi128_si64(B), B1 = (uint64_t)_mm_extract_epi64(B, 1);
                uint64_t M0 = (uint64_t)_mm_cvtsi128_si64(M), M1 = (uint64_t)_mm_extract_epi64(M, 1);
                pcm_put_pext2(&w, B0, M0, B1, M1);
            } else {
                pcm_unary16_avx2(&w, q);
            }
        }
        for (; i < end; i++) pcm_put_unary(&w, PCM_RZ(r[i]) >> k);
        if (k && k <= 8) {
            const uint64_t m8 = 0x0101010101010101ULL * ((((uint64_t)1) << k) - 1);
            for (i = i0; i + 16 <= end; i += 16) {
                __m128i L = pcm_bytes16(_mm256_and_si256(PCM_ZZ4(r + i), mkv), _mm256_and_si256(PCM_ZZ4(r + i + 4), mkv),
                                        _mm256_and_si256(PCM_ZZ4(r + i + 8), mkv), _mm256_and_si256(PCM_ZZ4(r + i + 12), mkv));
                uint64_t L0 = (uint64_t)_mm_cvtsi128_si64(L), L1 = (uint64_t)_mm_extract_epi64(L, 1);
                if (k < 8) {
                    uint64_t p0 = _pext_u64(L0, m8), p1 = _pext_u64(L1, m8);
                    pcm_put128(&w, p0 | (p1 << (8 * k)), p1 >> (64 - 8 * k), 16 * k);
                } else {
                    pcm_put128(&w, L0, 0, 64);
                    pcm_put128(&w, L1, 0, 64);
                }
            }
            for (; i < end; i++) pcm_put(&w, PCM_RZ(r[i]) & (((uint64_t)1 << k) - 1), k);
            k = 0;  /* done */
        } else if (k > 8 && k < 16) {
            const uint64_t m16 = 0x0001000100010001ULL * ((((uint64_t)1) << k) - 1);
            const __m256i ord = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for (i = i0; i + 16 <= end; i += 16) {
                __m256i L = pcm_pack16(_mm256_and_si256(PCM_ZZ4(r + i), mkv), _mm256_and_si256(PCM_ZZ4(r + i + 4), mkv),
                                       _mm256_and_si256(PCM_ZZ4(r + i + 8), mkv), _mm256_and_si256(PCM_ZZ4(r + i + 12), mkv));
                _mm256_store_si256((__m256i*)a, _mm256_permutevar8x32_epi32(L, ord));
                uint64_t p0 = _pext_u64(a[0], m16), p1 = _pext_u64(a[1], m16);
                uint64_t p2 = _pext_u64(a[2], m16), p3 = _pext_u64(a[3], m16);
                pcm_put128(&w, p0 | (p1 << (4 * k)), p1 >> (64 - 4 * k), 8 * k);
                pcm_put128(&w, p2 | (p3 << (4 * k)), p3 >> (64 - 4 * k), 8 * k);
            }
            for (; i < end; i++) pcm_put(&w, PCM_RZ(r[i]) & (((uint64_t)1 << k) - 1), k);
            k = 0;  /* done */
        }
        if (k) pcm_low2_avx2(&w, r, i0, end, k);  /* k > 15 */
        *bw = w;
    }
    static __attribute__((target("bmi,bmi2"))) void pcm_rice2_codes_bmi2(
            pcm_bw* bw, const int64_t* r, int i, int end, int k) {
        pcm_rice2_codes_body(bw, r, i, end, k);
    }
    #endif
    #if defined(__GNUC__) && defined(__x86_64__)
    static void pcm_rice2_codes_avx512(pcm_bw* bw, const int64_t* r, int i0, int end, int k);
    #endif
    static void pcm_rice2_codes(pcm_bw* bw, const int64_t* r, int i, int end, int k) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #if defined(__x86_64__)
        if (pcm_avx512 && pcm_avx2 && pcm_bmi2) { pcm_rice2_codes_avx512(bw, r, i, end, k); return; }
    #endif
        if (pcm_avx2 && pcm_bmi2) {
            if (pcm_fast_pext) pcm_rice2_codes_avx2p(bw, r, i, end, k);
            else pcm_rice2_codes_avx2(bw, r, i, end, k);
            return;
        }
        if (pcm_bmi2) { pcm_rice2_codes_bmi2(bw, r, i, end, k); return; }
    #endif
        pcm_rice2_codes_base(bw, r, i, end, k);
    }
    /* Float mode 2 encoder: the mantissa bits below trunc(v) of n samples (stride apart),
       v = |x| * scale (an exact power of two; |v| < 2**24 by the choice of scale), four
       samples at a time: their codes are worked out first and written with one put when
       together they fit in 56 bits (the same bits as one put per code). A sample with
       trunc(v) == 0 is a flag bit (0: +0.0; 1: followed by the 32-bit pattern: one 33-bit
       code). */
    static inline __attribute__((always_inline))
    uint64_t pcm_fx_code(uint32_t f, double scale, uint64_t* len) {
        /* |x| with a mask, not a branch on the sign (a coin toss in music); a -0.0 that
           "if (a < 0) a = -a" kept has iv == 0 either way */
        double a = __builtin_fabs((double)pcm_u2f(f) * scale);
        int64_t iv = (int64_t)a;  /* below 2**24 */
        int ne;
        if (iv == 0) {
            *len = f == 0 ? 1 : 33;
            return f == 0 ? 0 : (((uint64_t)f << 1) | 1);
        }
        ne = 24 - pcm_bitlen((uint64_t)iv);
        *len = (uint64_t)ne;
        return (uint64_t)(int64_t)((a - (double)iv) * (double)((uint64_t)1 << ne));
    }
    static void pcm_float_extras_write(pcm_bw* bw, const uint32_t* fb, int n, int stride,
                                       double scale) {
        pcm_bw w = *bw;  /* in locals: stores through out could alias *bw */
        uint64_t l0, l1, l2, l3;
        int i;
        for (i = 0; i + 4 <= n; i += 4) {
            const uint32_t* q = fb + (size_t)i * stride;
            uint64_t c0 = pcm_fx_code(q[0], scale, &l0), c1 = pcm_fx_code(q[stride], scale, &l1),
                     c2 = pcm_fx_code(q[2 * stride], scale, &l2), c3 = pcm_fx_code(q[3 * stride], scale, &l3);
            uint64_t a01 = l0 + l1;
            if (a01 + l2 + l3 <= 56) {
                pcm_put(&w, c0 | (c1 << l0) | (c2 << a01) | (c3 << (a01 + l2)), (int)(a01 + l2 + l3));
            } else {
                pcm_put(&w, c0, (int)l0); pcm_put(&w, c1, (int)l1);
                pcm_put(&w, c2, (int)l2); pcm_put(&w, c3, (int)l3);
            }
        }
        for (; i < n; i++) {
            uint64_t c = pcm_fx_code(fb[(size_t)i * stride], scale, &l0);
            pcm_put(&w, c, (int)l0);
        }
        *bw = w;
    }
    /* Float modes 1 and 2: channel c of n frames (ch channels) as trunc(x * dv), dv an exact
       power of two with |x * dv| < 2**31 (mode 1) or < 2**24 (mode 2), so the conversion
       through int32 is exact and the same as through int64 (and vectorises). */
    static inline __attribute__((always_inline))
    void pcm_float_to_int_body(const uint32_t* fb, int n, int ch, int c, double dv, int64_t* out) {
        int i;
        for (i = 0; i < n; i++) out[i] = (int64_t)(int32_t)((double)pcm_u2f(fb[(size_t)i * ch + c]) * dv);
    }
    /* The largest |x| as a bit pattern (sign bit cleared) of count floats. */
    static inline __attribute__((always_inline)) uint32_t pcm_float_absmax_body(const uint32_t* u, size_t count) {
        uint32_t mx = 0;
        size_t i;
        for (i = 0; i < count; i++) { uint32_t a = u[i] & 0x7FFFFFFF; mx = a > mx ? a : mx; }
        return mx;
    }
    /* Float mode 1 test over count floats: the lowest set bit's exponent e and the top
       (x < 2**top) of every nonzero value, as min(e) and max(top) into *emin and *topmax;
       returns 1 if a -0.0, inf or NaN is among them. */
    static int pcm_float_span_base(const uint32_t* u, int count, int* emin, int* topmax) {
        int i, mn = *emin, mx = *topmax;
        for (i = 0; i < count; i++) {
            uint32_t f = u[i], mag = f & 0x7FFFFFFF, ef = mag >> 23, m;
            int e, top;
            if (mag == 0) {
                if (f != 0) return 1;
                continue;
            }
            if (ef == 0xFF) return 1;
            m = ef ? ((mag & 0x7FFFFF) | 0x800000) : mag;
            e = (ef ? (int)ef - 150 : -149) + pcm_ctz64(m);
            top = (ef ? (int)ef - 150 : -149) + pcm_bitlen(m);  /* = e + bitlen(m >> ctz) */
            mn = e < mn ? e : mn;
            mx = top > mx ? top : mx;
        }
        *emin = mn;
        *topmax = mx;
        return 0;
    }
    /* AVX2: eight at a time, ctz and bitlen from the exponents of exact int -> float
       conversions (m < 2**24): the same integers. */
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static PCM_AVX2 int pcm_float_span_avx2(const uint32_t* u, int count, int* emin, int* topmax) {
        const __m256i z = _mm256_setzero_si256(), m7f = _mm256_set1_epi32(0x7FFFFFFF),
                      m7ff = _mm256_set1_epi32(0x7FFFFF), imp = _mm256_set1_epi32(0x800000),
                      neg0 = _mm256_set1_epi32((int)0x80000000u), ff = _mm256_set1_epi32(0xFF),
                      c150 = _mm256_set1_epi32(150), c149 = _mm256_set1_epi32(-149),
                      c127 = _mm256_set1_epi32(127), c126 = _mm256_set1_epi32(126);
        __m256i vmn = _mm256_set1_epi32(*emin), vmx = _mm256_set1_epi32(*topmax), bad = z;
        int i = 0, t[8], k, mn, mx;
        for (; i + 8 <= count; i += 8) {
            __m256i f = _mm256_loadu_si256((const __m256i*)(u + i));
            __m256i mag = _mm256_and_si256(f, m7f), ef = _mm256_srli_epi32(mag, 23);
            __m256i isn = _mm256_cmpgt_epi32(ef, z), isz = _mm256_cmpeq_epi32(mag, z);
            bad = _mm256_or_si256(bad, _mm256_or_si256(_mm256_cmpeq_epi32(f, neg0), _mm256_cmpeq_epi32(ef, ff)));
            __m256i m = _mm256_blendv_epi8(mag, _mm256_or_si256(_mm256_and_si256(mag, m7ff), imp), isn);
            __m256i base = _mm256_blendv_epi8(c149, _mm256_sub_epi32(ef, c150), isn);
            __m256i low = _mm256_and_si256(m, _mm256_sub_epi32(z, m));
            __m256i fl = _mm256_castps_si256(_mm256_cvtepi32_ps(low)), fm = _mm256_castps_si256(_mm256_cvtepi32_ps(m));
            __m256i e = _mm256_add_epi32(base, _mm256_sub_epi32(_mm256_srli_epi32(fl, 23), c127));
            __m256i top = _mm256_add_epi32(base, _mm256_sub_epi32(_mm256_srli_epi32(fm, 23), c126));
            vmn = _mm256_min_epi32(vmn, _mm256_blendv_epi8(e, vmn, isz));
            vmx = _mm256_max_epi32(vmx, _mm256_blendv_epi8(top, vmx, isz));
        }
        if (!_mm256_testz_si256(bad, bad)) return 1;
        _mm256_storeu_si256((__m256i*)t, vmn);
        for (mn = t[0], k = 1; k < 8; k++) mn = t[k] < mn ? t[k] : mn;
        _mm256_storeu_si256((__m256i*)t, vmx);
        for (mx = t[0], k = 1; k < 8; k++) mx = t[k] > mx ? t[k] : mx;
        *emin = mn;
        *topmax = mx;
        return pcm_float_span_base(u + i, count - i, emin, topmax);
    }
    #endif
    static int pcm_float_span(const uint32_t* u, int count, int* emin, int* topmax) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2) return pcm_float_span_avx2(u, count, emin, topmax);
    #endif
        return pcm_float_span_base(u, count, emin, topmax);
    }
    /* Float mode 1 decoding: x * dv as 32-bit floats at p, stride bytes apart (byte-swapped
       for big-endian output on a little-endian host and the reverse). */
    static inline __attribute__((always_inline))
    void pcm_int_to_float_body(const int64_t* x, int n, double dv, uint8_t* p, int stride, int be) {
        int i;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        const int swap = !be;
    #else
        const int swap = be;
    #endif
        for (i = 0; i < n; i++) {
            uint32_t f = pcm_f2u((float)((double)x[i] * dv));
            if (swap) f = __builtin_bswap32(f);
            memcpy(p + (size_t)i * stride, &f, 4);
        }
    }
    PCM_DISPATCH(void, pcm_int_to_float, (const int64_t* x, int n, double dv, uint8_t* p, int stride, int be), (x, n, dv, p, stride, be))
    PCM_DISPATCH(void, pcm_float_to_int, (const uint32_t* fb, int n, int ch, int c, double dv, int64_t* out), (fb, n, ch, c, dv, out))
    PCM_DISPATCH(uint32_t, pcm_float_absmax, (const uint32_t* u, size_t count), (u, count))
    /* Fast interleaving for little-endian 16/24-bit PCM on a little-endian host: whole-word
       stores (a 24-bit frame is written with one 4- or 8-byte store whose extra bytes the next
       frame overwrites; the last frame is written byte by byte). Return -1 when not handled
       (the caller then uses pcm_store). */
    static int pcm_store_mono_le(uint8_t* p, int n, int bits, const int64_t* x) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        int i = 0;
        if (n <= 0) return 0;
        if (bits != 16 && bits != 24) return -1;
    #ifdef PCM_HAVE_STORE_AVX2
        if (pcm_avx2) i = pcm_store_mono_avx2(p, n, bits, x);
    #endif
        if (bits == 16) {
            for (; i < n; i++) { uint16_t v = (uint16_t)x[i]; memcpy(p + 2 * (size_t)i, &v, 2); }
            return 0;
        }
        for (; i < n - 1; i++) { uint32_t v = (uint32_t)x[i]; memcpy(p + 3 * (size_t)i, &v, 4); }
        uint32_t u = (uint32_t)x[n - 1];
        uint8_t* q = p + 3 * (size_t)(n - 1);
        q[0] = (uint8_t)u; q[1] = (uint8_t)(u >> 8); q[2] = (uint8_t)(u >> 16);
        return 0;
    #endif
        return -1;
    }
    static int pcm_store_stereo_le(uint8_t* p, int n, int bits, const int64_t* L, const int64_t* R) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        int i = 0;
        if (n <= 0) return 0;
        if (bits != 16 && bits != 24) return -1;
    #ifdef PCM_HAVE_STORE_AVX2
        if (pcm_avx2) i = pcm_store_stereo_avx2(p, n, bits, L, R);
    #endif
        if (bits == 16) {
            for (; i < n; i++) {
                uint32_t v = (uint32_t)(uint16_t)L[i] | ((uint32_t)(uint16_t)R[i] << 16);
                memcpy(p + 4 * (size_t)i, &v, 4);
            }
            return 0;
        }
        for (; i < n - 1; i++) {
            uint64_t v = ((uint64_t)L[i] & 0xFFFFFF) | (((uint64_t)R[i] & 0xFFFFFF) << 24);
            memcpy(p + 6 * (size_t)i, &v, 8);
        }
        uint64_t v = ((uint64_t)L[n - 1] & 0xFFFFFF) | (((uint64_t)R[n - 1] & 0xFFFFFF) << 24);
        memcpy(p + 6 * (size_t)(n - 1), &v, 6);
        return 0;
    #endif
        return -1;
    }
    #define PCM_U(v) ((uint64_t)(v))
    /* One Rice code bit by bit from *ppos (for unary parts longer than the bit buffer). */
    static int pcm_slow_rice(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int k, uint64_t* out) {
        uint64_t pos = *ppos, q = 0, w;
        for (;;) {
            if (pos > nbits) return -1;
            int valid = 64 - (int)(pos & 7);
            w = pcm_ld64(buf + (pos >> 3)) >> (pos & 7);
            if (w == 0) { q += valid; pos += valid; }
            else { int t = pcm_ctz64(w); q += t; pos += t + 1; break; }
        }
        w = pcm_ld64(buf + (pos >> 3)) >> (pos & 7);
        *out = (q << k) | (w & ((((uint64_t)1) << k) - 1));
        *ppos = pos + k;
        return 0;
    }
    /* Bit reader of the residual decoder: the bits not yet consumed are the low `cnt` bits of
       `bb`; `p` points at the first byte not yet loaded (bits above `cnt` in `bb` are zero or
       copies of the stream bits at `p`, so OR-ing a reload in is harmless). A refill tops it
       up to >= 56 bits; its load address was fixed at the previous refill, so the load is not
       on the dependency chain of the symbols decoded in between. */
    typedef struct { const uint8_t* p; uint64_t bb; int cnt; } pcm_br;
    static inline __attribute__((always_inline)) void pcm_br_refill(pcm_br* r) {
        r->bb |= pcm_ld64(r->p) << r->cnt;
        r->p += (63 - r->cnt) >> 3;
        r->cnt |= 56;
    }
    static inline void pcm_br_seek(pcm_br* r, const uint8_t* buf, uint64_t pos) {
        r->p = buf + (pos >> 3);
        r->bb = 0;
        r->cnt = 0;
        pcm_br_refill(r);
        r->bb >>= (pos & 7);
        r->cnt -= (int)(pos & 7);
    }
    static inline uint64_t pcm_br_pos(const pcm_br* r, const uint8_t* buf) {
        return (uint64_t)(r->p - buf) * 8 - (uint64_t)r->cnt;
    }
    /* One Rice code (parameter k) from the reader: the common case decodes from the register;
       codes longer than what is buffered take a refill, and codes of 57+ bits the slow path. */
    static inline __attribute__((always_inline))
    int pcm_br_rice(pcm_br* r, const uint8_t* buf, uint64_t nbits, int k, uint64_t mk, uint64_t* out) {
        int t = r->bb ? pcm_ctz64(r->bb) : 64;
        int len = t + 1 + k;
        if (__builtin_expect(len > r->cnt, 0)) {
            pcm_br_refill(r);
            t = r->bb ? pcm_ctz64(r->bb) : 64;
            len = t + 1 + k;
            if (len > r->cnt) {
                uint64_t pos = pcm_br_pos(r, buf);
                if (pcm_slow_rice(buf, &pos, nbits, k, out) || pos > nbits) return -1;
                pcm_br_seek(r, buf, pos);
                return 0;
            }
        }
        *out = ((r->bb >> (t + 1)) & mk) | ((uint64_t)t << k);
        r->bb >>= len;
        r->cnt -= len;
        return 0;
    }
    /* Pass 1 of a predicted subframe: Rice-decode the residuals of all 2**P partitions into
       x[order..n) as y = 2 * zigzag(residual) + 1, which pcm_unzigzag then turns into the
       residuals (vectorised). Each refill (to >= 56 bits) is followed by a group of G codes,
       G chosen from k so that a group usually fits: the group is decoded without checks, and
       when it did not fit (cnt went negative) it is decoded again from the saved buffer with
       a check per code (a code that does not fit takes one more refill, or the slow path). A
       sentinel bit above the buffer keeps the count of trailing zeros below 64 without a
       branch: a code reaching it is longer than cnt. */
    #define PCM_SENT ((uint64_t)1 << 63)
    /* BMI clone: tzcnt (64 for 0, so no sentinel) and bzhi, as asm so that neither is UB */
    #if defined(__GNUC__) && defined(__x86_64__)
    static inline __attribute__((always_inline)) uint64_t pcm_tzcnt(uint64_t v) {
        uint64_t t; __asm__("tzcnt %1, %0" : "=r"(t) : "r"(v) : "cc"); return t;
    }
    static inline __attribute__((always_inline)) uint64_t pcm_bzhi(uint64_t v, uint64_t k) {
        uint64_t r; __asm__("bzhi %2, %1, %0" : "=r"(r) : "r"(v), "r"(k) : "cc"); return r;
    }
    #define PCM_TZ(v) (BMI ? pcm_tzcnt(v) : (uint64_t)pcm_ctz64((v) | PCM_SENT))
    #define PCM_LOW(v) (BMI ? pcm_bzhi(v, k1) : ((v) & mk1))
    #else
    #define PCM_TZ(v) ((uint64_t)pcm_ctz64((v) | PCM_SENT))
    #define PCM_LOW(v) ((v) & mk1)
    #endif
    /* One code of a group of G. Short codes (G >= 5, k <= 8) are bound by the chain from one
       code's start to the next, so there bb >> k1 is taken before t is known and the chain is
       tzcnt and one shift: (bb >> k1) >> t == bb >> (t + k1) (t == 64 only when bb == 0,
       which gives 0 either way; cnt then goes negative and the group is redone). Longer codes
       are bound by the two shift ports instead, where the extra shift costs: 10% faster for
       k <= 8, the same for k 9-10 and 5% slower for k >= 11 (rdtsc microbenchmark). */
    #define PCM_RICE_FAST(G) do { \
            t = PCM_TZ(bb); \
            if (G >= 5) { \
                bk = bb >> k1; \
                *xp++ = (int64_t)((t << k1) + PCM_LOW(bb >> (t & 63))); \
                bb = bk >> (t & 63); \
            } else { \
                bs = bb >> (t & 63); \
                *xp++ = (int64_t)((t << k1) + PCM_LOW(bs)); \
                bb = bs >> k1; \
            } \
            cnt -= (int64_t)(t + k1); \
        } while (0)
    #define PCM_RICE_ONE() do { \
            t = PCM_TZ(bb); \
            len = (int64_t)(t + k1); \
            if (__builtin_expect(len <= cnt, 1)) { \
                bs = bb >> t; \
                *xp++ = (int64_t)((t << k1) + PCM_LOW(bs)); \
                bb = bs >> k1; \
                cnt -= len; \
            } else { \
                r.bb = bb; r.cnt = (int)cnt; r.p = p; \
                if (pcm_br_rice(&r, buf, nbits, k, mk1 >> 1, &u)) return -1; \
                bb = r.bb; cnt = r.cnt; p = r.p; \
                *xp++ = (int64_t)((u << 1) | 1); \
            } \
        } while (0)
    #define PCM_REFILL_LOCAL() do { bb |= pcm_ld64(p) << cnt; p += (cnt ^ 63) >> 3; cnt |= 56; } while (0)
    #define PCM_RICE_GROUP(G) do { \
            PCM_REFILL_LOCAL(); \
            bb1 = bb; cnt1 = cnt; \
            for (g = 0; g < G; g++) PCM_RICE_FAST(G); \
            if (__builtin_expect(cnt < 0, 0)) { \
                bb = bb1; cnt = cnt1; xp -= G; \
                for (g = 0; g < G; g++) PCM_RICE_ONE(); \
            } \
            if (p > pend) return -1; \
        } while (0)
    /* groups: G codes of k + 1 bits and their unary parts usually fit in 56 bits */
    #define PCM_RICE_LOOPS(G) while (xe - xp >= G) PCM_RICE_GROUP(G)
    static inline __attribute__((always_inline))
    int pcm_read_residuals_body(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                                int n, int P, int order, const int BMI) {
        int j, k, g, nparts = 1 << P, ps = n >> P;
        int64_t cnt, cnt1, len;
        const uint8_t* pend = buf + (nbits >> 3) + 8;
        uint64_t mk1, u, bb, bb1, bs, bk, t, k1;
        const uint8_t* p;
        int64_t* xp;
        int64_t* xe;
        pcm_br r;
        pcm_br_seek(&r, buf, *ppos);
        for (j = 0; j < nparts; j++) {
            pcm_br_refill(&r);
            k = (int)(r.bb & 63);
            r.bb >>= 6;
            r.cnt -= 6;
            if (k > 56 || r.p > pend) return -1;
            k1 = (uint64_t)k + 1;
            mk1 = (((uint64_t)2) << k) - 1;
            xp = x + (j ? j * ps : order);
            xe = x + (j + 1) * ps;
            bb = r.bb; cnt = r.cnt; p = r.p;
            if (k <= 4) PCM_RICE_LOOPS(8);
            else if (k <= 6) PCM_RICE_LOOPS(6);
            else if (k <= 8) PCM_RICE_LOOPS(5);
            else if (k <= 10) PCM_RICE_LOOPS(4);
            else if (k <= 14) PCM_RICE_LOOPS(3);
            else if (k <= 22) PCM_RICE_LOOPS(2);
            while (xp < xe) {
                PCM_REFILL_LOCAL();
                PCM_RICE_ONE();
                if (p > pend) return -1;
            }
            r.bb = bb; r.cnt = (int)cnt; r.p = p;
        }
        *ppos = pcm_br_pos(&r, buf);
        return *ppos > nbits ? -1 : 0;
    }
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static __attribute__((target("bmi,bmi2"))) int pcm_read_residuals_bmi2(
            const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x, int n, int P, int order) {
        return pcm_read_residuals_body(buf, ppos, nbits, x, n, P, order, 1);
    }
    #endif
    static int pcm_read_residuals_base(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                                       int n, int P, int order) {
        return pcm_read_residuals_body(buf, ppos, nbits, x, n, P, order, 0);
    }
    static int pcm_read_residuals(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                                  int n, int P, int order) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_bmi2) return pcm_read_residuals_bmi2(buf, ppos, nbits, x, n, P, order);
    #endif
        return pcm_read_residuals_base(buf, ppos, nbits, x, n, P, order);
    }
    /* Version 2 residual partitions: k, then the unary stream of the partition's codes (q
       zero bits then a one bit each, q <= 63), then their k-bit low parts packed LSB-first.
       Pass 1 reads the unary stream a 64-bit word at a time (from any bit position: two
       loads and a funnel shift), turning its set bits into quotients: q = position - previous
       position - 1. Only a word's first quotient can exceed 63 (the zeros carried over from
       the words before plus its own leading zeros), so it is the only one checked; a word
       without a one is always corrupt (a quotient of 64 or more). While 64 or more codes are
       left, a word's quotients are written a byte of the word at a time from a table (pcm_bitq),
       without a check per bit (the qb array has 64 bytes of room past the partition); the
       last words stop at the n-th one.
       Pass 2 puts the quotients and the low parts (independent loads at bit offsets i * k)
       together and unzigzags them into the residuals. */
    #define PCM_Q2_SLACK 64
    /* per byte value v: its ones' quotients as a unary stream would give them (the first
       one's position, then each gap between ones less one; a byte each, LSB first, the rest
       0), how many ones, and the highest one's position; filled once by pcm_tables_init */
    static uint64_t pcm_bitq[256];
    static uint8_t pcm_bitcnt[256], pcm_bithi[256];
    static void pcm_tables_init(void) {
        int v, b, c, last;
        for (v = 0; v < 256; v++) {
            uint64_t e = 0;
            for (b = c = 0, last = -1; b < 8; b++)
                if ((v >> b) & 1) { e |= (uint64_t)(b - last - 1) << (8 * c++); last = b; }
            pcm_bitq[v] = e;
            pcm_bitcnt[v] = (uint8_t)c;
            pcm_bithi[v] = (uint8_t)(last < 0 ? 0 : last);
        }
    }
    #if defined(__GNUC__) && defined(__x86_64__)
    #define PCM_TZ0(v) (BMI ? pcm_tzcnt(v) : ((v) ? (uint64_t)pcm_ctz64(v) : 64))
    #else
    #define PCM_TZ0(v) ((v) ? (uint64_t)pcm_ctz64(v) : 64)
    #endif
    static inline __attribute__((always_inline)) uint64_t pcm_word_at(const uint8_t* buf, uint64_t pos) {
        const uint8_t* p = buf + (pos >> 3);
        int s = (int)(pos & 7);
        return (pcm_ld64(p) >> s) | ((pcm_ld64(p + 8) << 1) << (63 - s));
    }
    static inline __attribute__((always_inline))
    int pcm_unary2_body(const uint8_t* buf, uint64_t pos, uint64_t nbits, int n, uint8_t* qb,
                        uint64_t* pend, const int BMI) {
        int i = 0;
        int64_t prev = -1;  /* position of the last one, relative to the word at pos */
        while (i < n) {
            uint64_t w, w0;
            int64_t t;
            int c, j;
            if (pos > nbits) return -1;
            w0 = w = pcm_word_at(buf, pos);
            if (w == 0) return -1;
            t = (int64_t)pcm_ctz64(w);
            if (t - prev - 1 > 63) return -1;
            c = __builtin_popcountll(w);
            if (n - i >= 64) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                /* the word's quotients a byte of the word at a time, from a table: its first
                   one's position (plus the zeros before the byte since the last one), then
                   the gaps between its ones less one; 8-byte stores, the next one at + count */
                uint8_t* o = qb + i;
                int64_t last = prev;
                for (j = 0; j < 8; j++) {
                    unsigned v = (unsigned)(w >> (8 * j)) & 255u;
                    uint64_t e = pcm_bitq[v] + (uint64_t)(8 * j - last - 1);
                    memcpy(o, &e, 8);
                    o += pcm_bitcnt[v];
                    last = v ? 8 * j + pcm_bithi[v] : last;
                }
                (void)BMI;
    #else
                uint8_t* o = qb + i;
                for (j = 0; j < c; j += 8) {
                    int u;
                    for (u = 0; u < 8; u++) {
                        t = (int64_t)PCM_TZ0(w);
                        o[j + u] = (uint8_t)(t - prev - 1);
                        prev = t;
                        w &= w - 1;
                    }
                }
    #endif
                i += c;
                prev = 63 - __builtin_clzll(w0);
            } else {
                while (w && i < n) {
                    t = (int64_t)pcm_ctz64(w);
                    qb[i++] = (uint8_t)(t - prev - 1);
                    prev = t;
                    w &= w - 1;
                }
            }
            if (i == n) { *pend = pos + (uint64_t)(prev + 1); return 0; }
            prev -= 64;
            pos += 64;
        }
        *pend = pos;
        return 0;
    }
    /* low parts: G = 57 / k (at most 8) of them from each 64-bit load (at least 57 of its
       bits are valid); one loop per G so that the group is unrolled */
    static inline __attribute__((always_inline))
    int pcm_combine2_g(const uint8_t** pp, int* ps, const uint8_t* qb, int n, int k, int64_t* x, const int G) {
        const uint64_t mk = (((uint64_t)1) << k) - 1;
        const uint8_t* p = *pp;
        int s = *ps, i = 0, j;
        for (; i + G <= n; i += G) {
            uint64_t v = pcm_ld64(p) >> s;
            for (j = 0; j < G; j++) {
                uint64_t u = ((uint64_t)qb[i + j] << k) | ((v >> (j * k)) & mk);
                x[i + j] = (int64_t)((u >> 1) ^ (0 - (u & 1)));
            }
            s += G * k;
            p += s >> 3;
            s &= 7;
        }
        *pp = p;
        *ps = s;
        return i;
    }
    static inline __attribute__((always_inline))
    void pcm_combine2_body(const uint8_t* buf, uint64_t pos, const uint8_t* qb, int n, int k, int64_t* x) {
        const uint64_t mk = (((uint64_t)1) << k) - 1;
        const uint8_t* p = buf + (pos >> 3);
        int s = (int)(pos & 7), i;
        if (k <= 7) i = pcm_combine2_g(&p, &s, qb, n, k, x, 8);
        else if (k == 8) i = pcm_combine2_g(&p, &s, qb, n, k, x, 7);
        else if (k == 9) i = pcm_combine2_g(&p, &s, qb, n, k, x, 6);
        else if (k <= 11) i = pcm_combine2_g(&p, &s, qb, n, k, x, 5);
        else if (k <= 14) i = pcm_combine2_g(&p, &s, qb, n, k, x, 4);
        else if (k <= 19) i = pcm_combine2_g(&p, &s, qb, n, k, x, 3);
        else if (k <= 28) i = pcm_combine2_g(&p, &s, qb, n, k, x, 2);
        else i = pcm_combine2_g(&p, &s, qb, n, k, x, 1);
        for (; i < n; i++) {
            uint64_t low = (pcm_ld64(p) >> s) & mk;
            uint64_t u = ((uint64_t)qb[i] << k) | low;
            x[i] = (int64_t)((u >> 1) ^ (0 - (u & 1)));
            s += k;
            p += s >> 3;
            s &= 7;
        }
    }
    #if defined(__GNUC__) && defined(__x86_64__)
    /* AVX2 clone of pass 2: eight codes a step, which take k whole bytes at a bit offset that
       is the same for every step. Codes 2h and 2h + 1 come from one 16-byte load at the byte of
       code 2h (code 2h + 1 starts at most 7 bytes further); a constant byte shuffle puts each
       code's eight bytes in its own 64-bit lane, a constant variable shift aligns it. */
    static __attribute__((target("avx2,bmi,bmi2"))) void pcm_combine2_avx2(
            const uint8_t* buf, uint64_t pos, const uint8_t* qb, int n, int k, int64_t* x) {
        const uint8_t* p = buf + (pos >> 3);
        const int s = (int)(pos & 7);
        const __m256i one = _mm256_set1_epi64x(1), zero = _mm256_setzero_si256();
        const __m256i vmk = _mm256_set1_epi64x((long long)((((uint64_t)1) << k) - 1));
        const __m128i kc = _mm_cvtsi32_si128(k);
        int b[8], i, j, h;
        uint8_t ctl[2][32];
        long long sh[2][4];
        __m256i vctl[2], vsh[2];
        for (j = 0; j < 8; j++) b[j] = (s + j * k) >> 3;
        for (h = 0; h < 2; h++) {
            for (j = 0; j < 4; j++) {
                int c = 4 * h + j, d = b[c] - b[c & ~1];  /* from the lane's load at code c & ~1 */
                int u;
                for (u = 0; u < 8; u++) ctl[h][8 * j + u] = (uint8_t)(d + u);
                sh[h][j] = (s + c * k) & 7;
            }
            vctl[h] = _mm256_loadu_si256((const __m256i*)ctl[h]);
            vsh[h] = _mm256_loadu_si256((const __m256i*)sh[h]);
        }
        for (i = 0; i + 8 <= n; i += 8, p += k) {
            for (h = 0; h < 2; h++) {
                __m256i lw = _mm256_inserti128_si256(
                    _mm256_castsi128_si256(_mm_loadu_si128((const __m128i*)(p + b[4 * h]))),
                    _mm_loadu_si128((const __m128i*)(p + b[4 * h + 2])), 1);
                lw = _mm256_and_si256(_mm256_srlv_epi64(_mm256_shuffle_epi8(lw, vctl[h]), vsh[h]), vmk);
                uint32_t q4;
                memcpy(&q4, qb + i + 4 * h, 4);
                __m256i q = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128((int)q4));
                __m256i u = _mm256_or_si256(_mm256_sll_epi64(q, kc), lw);
                __m256i r = _mm256_xor_si256(_mm256_srli_epi64(u, 1), _mm256_sub_epi64(zero, _mm256_and_si256(u, one)));
                _mm256_storeu_si256((__m256i*)(x + i + 4 * h), r);
            }
        }
        if (i < n) pcm_combine2_body(buf, pos + (uint64_t)i * (uint64_t)k, qb + i, n - i, k, x + i);
    }
    #endif
    #if defined(__GNUC__) && defined(__x86_64__)
    /* the AVX-512 clones (defined below with their target) */
    static int pcm_unary2_avx512(const uint8_t* buf, uint64_t pos, uint64_t nbits, int n, uint8_t* qb,
                                 uint64_t* pend);
    static void pcm_combine2_avx512(const uint8_t* buf, uint64_t pos, const uint8_t* qb, int n, int k,
                                    int64_t* x);
    #endif
    /* The partition walk of every clone; AVX512 only from the AVX-512 clone. */
    static inline __attribute__((always_inline))
    int pcm_read_residuals2_body(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                                 int n, int P, int order, const int BMI, const int AVX2,
                                 const int AVX512) {
        uint8_t qb[16384 + PCM_Q2_SLACK];
        int j, k, np, nparts = 1 << P, ps = n >> P;
        uint64_t pos = *ppos, end;
        if (ps > 16384) return -1;
        for (j = 0; j < nparts; j++) {
            int64_t* xp = x + (j ? j * ps : order);
            np = (int)(x + (j + 1) * ps - xp);
            if (pos > nbits) return -1;
            k = (int)(pcm_ld64(buf + (pos >> 3)) >> (pos & 7)) & 63;
            pos += 6;
            if (k > 56) return -1;
            if (np == 0) continue;
    #if defined(__GNUC__) && defined(__x86_64__)
            if (AVX512) { if (pcm_unary2_avx512(buf, pos, nbits, np, qb, &end)) return -1; } else
    #endif
            if (pcm_unary2_body(buf, pos, nbits, np, qb, &end, BMI)) return -1;
            pos = end + (uint64_t)np * (uint64_t)k;
            if (pos > nbits) return -1;
    #if defined(__GNUC__) && defined(__x86_64__)
            if (AVX512) pcm_combine2_avx512(buf, end, qb, np, k, xp); else
            if (AVX2) pcm_combine2_avx2(buf, end, qb, np, k, xp); else
    #endif
            pcm_combine2_body(buf, end, qb, np, k, xp);
        }
        *ppos = pos;
        return pos > nbits ? -1 : 0;  /* (a last partition of no codes: its k alone) */
    }
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static __attribute__((target("avx2,bmi,bmi2,popcnt,lzcnt"))) int pcm_read_residuals2_avx2(
            const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x, int n, int P, int order) {
        return pcm_read_residuals2_body(buf, ppos, nbits, x, n, P, order, 1, 1, 0);
    }
    static __attribute__((target("bmi,bmi2,popcnt,lzcnt"))) int pcm_read_residuals2_bmi2(
            const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x, int n, int P, int order) {
        return pcm_read_residuals2_body(buf, ppos, nbits, x, n, P, order, 1, 0, 0);
    }
    #endif
    static int pcm_read_residuals2_base(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                                        int n, int P, int order) {
        return pcm_read_residuals2_body(buf, ppos, nbits, x, n, P, order, 0, 0, 0);
    }
    /* AVX-512 (F, BW, DQ, VL, VBMI, VBMI2) clones of the version 2 partition reader and writer.
       Reader: each 64-bit word of the unary stream goes through vpcompressb (the positions of
       its set bits, from a 0..63 byte ramp) and one byte subtraction; eight codes' low parts
       are k whole bytes at a bit offset that is the same for every group of eight, so one
       64-byte load and a constant vpermb/vpsrlvq pick them out. Writer: eight codes a step,
       the unary stream's bit positions from an in-register prefix sum, the low parts joined
       in pairs / fours / eights in registers. Same bits and values as the other clones. */
    #if defined(__GNUC__) && defined(__x86_64__)
    #define PCM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,avx512vbmi2,bmi,bmi2,popcnt,lzcnt")))
    #define PCM_HAVE_AVX512 1
    static PCM_AVX512 int pcm_unary2_avx512(const uint8_t* buf, uint64_t pos, uint64_t nbits,
                                            int n, uint8_t* qb, uint64_t* pend) {
        const __m512i ramp = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48,
                                             47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32,
                                             31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                             15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        /* byte j-1 to byte j (byte 0 from byte 64 of the pair: the previous position) */
        const __m512i prev_idx = _mm512_add_epi8(ramp, _mm512_set1_epi8(63));
        const __m512i ones = _mm512_set1_epi8(1);
        int i = 0;
        int64_t prev = -1;
        while (i < n) {
            uint64_t w;
            int64_t t;
            int c;
            if (pos > nbits) return -1;
            w = pcm_word_at(buf, pos);
            if (w == 0) return -1;
            t = (int64_t)_tzcnt_u64(w);
            if (t - prev - 1 > 63) return -1;
            if (n - i < 64) {
                int m = n - i;
                c = (int)_mm_popcnt_u64(w);
                if (c > m) w = _pdep_u64((((uint64_t)1) << m) - 1, w);
            }
            c = (int)_mm_popcnt_u64(w);
            __m512i p = _mm512_maskz_compress_epi8((__mmask64)w, ramp);
            __m512i pv = _mm512_permutex2var_epi8(_mm512_set1_epi8((char)prev), prev_idx, p);
            __m512i q = _mm512_sub_epi8(_mm512_sub_epi8(p, pv), ones);
            _mm512_storeu_si512((void*)(qb + i), q);
            i += c;
            prev = 63 - (int64_t)_lzcnt_u64(w);
            if (i == n) { *pend = pos + (uint64_t)(prev + 1); return 0; }
            prev -= 64;
            pos += 64;
        }
        *pend = pos;
        return 0;
    }
    static PCM_AVX512 void pcm_combine2_avx512(const uint8_t* buf, uint64_t pos, const uint8_t* qb,
                                               int n, int k, int64_t* x) {
        int i;
        const uint8_t* p = buf + (pos >> 3);
        /* lane j: bit offset o = (pos & 7) + j * k, bytes o / 8 .. o / 8 + 7, shifted by o & 7 */
        const __m512i off = _mm512_add_epi64(_mm512_set1_epi64((long long)(pos & 7)),
                                             _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0),
                                                                _mm512_set1_epi64(k)));
        const __m512i vsh = _mm512_and_si512(off, _mm512_set1_epi64(7));
        const __m512i vidx = _mm512_add_epi8(
            _mm512_mullo_epi64(_mm512_srli_epi64(off, 3), _mm512_set1_epi64(0x0101010101010101LL)),
            _mm512_set1_epi64(0x0706050403020100LL));
        const __m512i vmk = _mm512_set1_epi64((long long)((((uint64_t)1) << k) - 1));
        const __m512i one = _mm512_set1_epi64(1);
        const __m128i kc = _mm_cvtsi32_si128(k);
        for (i = 0; i + 8 <= n; i += 8, p += k) {
            __m512i lw = _mm512_srlv_epi64(_mm512_permutexvar_epi8(vidx, _mm512_loadu_si512(p)), vsh);
            __m512i q = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i*)(qb + i)));
            __m512i u = _mm512_ternarylogic_epi64(lw, vmk, _mm512_sll_epi64(q, kc), 0xEA);  /* (a & b) | c */
            /* unzigzag: u >> 1, complemented where u is odd */
            __m512i h = _mm512_srli_epi64(u, 1);
            _mm512_storeu_si512((void*)(x + i), _mm512_mask_ternarylogic_epi64(h, _mm512_test_epi64_mask(u, one), h, h, 0x55));
        }
        if (i < n) pcm_combine2_body(buf, pos + (uint64_t)i * (uint64_t)k, qb + i, n - i, k, x + i);
    }
    static PCM_AVX512 int pcm_read_residuals2_avx512(const uint8_t* buf, uint64_t* ppos, uint64_t nbits,
                                                     int64_t* x, int n, int P, int order) {
        return pcm_read_residuals2_body(buf, ppos, nbits, x, n, P, order, 1, 1, 1);
    }
    static PCM_AVX512 inline uint64_t pcm_lane7(__m512i v) {
        return (uint64_t)_mm_extract_epi64(_mm512_extracti32x4_epi32(v, 3), 1);
    }
    #define PCM_ZZ8(ptr) _mm512_loadu_si512((const void*)(ptr))  /* eight zigzags (PCM_RZ) */
    /* eight codes of the unary stream: where every q < 8, each code 1 << q is a byte (bytes
       B), its q + 1 bits the mask B | (B - 1) (per byte: no borrow), and pext packs them into
       popcount(mask) bits; where every q < 16, the same in 16-bit words, four to a pext */
    static PCM_AVX512 inline __attribute__((always_inline)) void pcm_unary8_avx512(pcm_bw* w, __m512i q) {
        const __m512i one = _mm512_set1_epi64(1);
        if (__builtin_expect(_mm512_test_epi64_mask(q, _mm512_set1_epi64(~(long long)7)) == 0, 1)) {
            uint64_t B = (uint64_t)_mm_cvtsi128_si64(_mm512_cvtepi64_epi8(_mm512_sllv_epi64(one, q)));
            uint64_t M = B | (B - 0x0101010101010101ULL);
            pcm_put128(w, _pext_u64(B, M), 0, (int)_mm_popcnt_u64(M));
        } else if (__builtin_expect(_mm512_test_epi64_mask(q, _mm512_set1_epi64(~(long long)15)) == 0, 1)) {
            __m128i W = _mm512_cvtepi64_epi16(_mm512_sllv_epi64(one, q));
            uint64_t B0 = (uint64_t)_mm_cvtsi128_si64(W), B1 = (uint64_t)_mm_extract_epi64(W, 1);
            uint64_t M0 = B0 | (B0 - 0x0001000100010001ULL), M1 = B1 | (B1 - 0x0001000100010001ULL);
            pcm_put128(w, _pext_u64(B0, M0), 0, (int)_mm_popcnt_u64(M0));
            pcm_put128(w, _pext_u64(B1, M1), 0, (int)_mm_popcnt_u64(M1));
        } else {
            uint64_t a[8] __attribute__((aligned(64)));
            int j;
            _mm512_store_si512((void*)a, q);
            for (j = 0; j < 8; j++) pcm_put_unary(w, a[j]);
        }
    }
    static PCM_AVX512 void pcm_rice2_codes_avx512(pcm_bw* bw, const int64_t* r, int i0, int end, int k) {
        const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
        const __m512i not7 = _mm512_set1_epi64(~(long long)7);
        const __m512i mkv = _mm512_set1_epi64((long long)((((uint64_t)1) << k) - 1));
        const __m128i kc = _mm_cvtsi32_si128(k), k2c = _mm_cvtsi32_si128(2 * k), k4c = _mm_cvtsi32_si128(4 * k);
        const uint64_t ones8 = 0x0101010101010101ULL;
        uint64_t a[16] __attribute__((aligned(64)));
        pcm_bw w = *bw;
        int i, j;
        /* the unary stream, sixteen codes a step where every q < 8 (see pcm_unary8_avx512),
           one put where they fit in 56 bits */
        for (i = i0; i + 16 <= end; i += 16) {
            __m512i q0 = _mm512_srl_epi64(PCM_ZZ8(r + i), kc), q1 = _mm512_srl_epi64(PCM_ZZ8(r + i + 8), kc);
            if (__builtin_expect(_mm512_test_epi64_mask(_mm512_or_si512(q0, q1), not7) == 0, 1)) {
                uint64_t B0 = (uint64_t)_mm_cvtsi128_si64(_mm512_cvtepi64_epi8(_mm512_sllv_epi64(one, q0)));
                uint64_t B1 = (uint64_t)_mm_cvtsi128_si64(_mm512_cvtepi64_epi8(_mm512_sllv_epi64(one, q1)));
                uint64_t M0 = B0 | (B0 - ones8), M1 = B1 | (B1 - ones8);
                pcm_put_pext2(&w, B0, M0, B1, M1);
            } else {
                pcm_unary8_avx512(&w, q0);
                pcm_unary8_avx512(&w, q1);
            }
        }
        for (; i + 8 <= end; i += 8) pcm_unary8_avx512(&w, _mm512_srl_epi64(PCM_ZZ8(r + i), kc));
        for (; i < end; i++) pcm_put_unary(&w, PCM_RZ(r[i]) >> k);
        /* the low parts, eight a step: for k <= 15 the low bytes (words) of the eight
           zigzagged residuals, their low k bits packed by pext */
        if (k && k <= 8) {
            const uint64_t m8 = ones8 * ((((uint64_t)1) << k) - 1);
            for (i = i0; i + 8 <= end; i += 8) {
                uint64_t L = (uint64_t)_mm_cvtsi128_si64(_mm512_cvtepi64_epi8(PCM_ZZ8(r + i)));
                if (k < 8) pcm_put(&w, _pext_u64(L, m8), 8 * k);
                else pcm_put128(&w, L, 0, 64);
            }
            for (; i < end; i++) pcm_put(&w, PCM_RZ(r[i]) & (((uint64_t)1 << k) - 1), k);
            k = 0;  /* done */
        } else if (k > 8 && k < 16) {
            const uint64_t m16 = 0x0001000100010001ULL * ((((uint64_t)1) << k) - 1);
            for (i = i0; i + 8 <= end; i += 8) {
                __m128i L = _mm512_cvtepi64_epi16(PCM_ZZ8(r + i));
                uint64_t p0 = _pext_u64((uint64_t)_mm_cvtsi128_si64(L), m16);
                uint64_t p1 = _pext_u64((uint64_t)_mm_extract_epi64(L, 1), m16);
                pcm_put128(&w, p0 | (p1 << (4 * k)), p1 >> (64 - 4 * k), 8 * k);
            }
            for (; i < end; i++) pcm_put(&w, PCM_RZ(r[i]) & (((uint64_t)1 << k) - 1), k);
            k = 0;  /* done */
        }
        /* k > 15: the low parts, eight a step, joined in registers into puts of up to 120 bits */
        if (k) {
            for (i = i0; i + 8 <= end; i += 8) {
                __m512i lo = _mm512_and_si512(PCM_ZZ8(r + i), mkv);
                if (k > 28) {  /* two a put */
                    _mm512_store_si512((void*)a, lo);
                    for (j = 0; j < 8; j += 2) pcm_put128(&w, a[j] | (a[j + 1] << k), a[j + 1] >> (64 - k), 2 * k);
                    continue;
                }
                /* pairs in lanes 0, 2, 4, 6 */
                lo = _mm512_or_si512(lo, _mm512_sll_epi64(_mm512_alignr_epi64(zero, lo, 1), kc));
                if (k > 15) {  /* four a put */
                    uint64_t a0 = (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(lo));
                    uint64_t a2 = (uint64_t)_mm_cvtsi128_si64(_mm512_extracti32x4_epi32(lo, 1));
                    uint64_t a4 = (uint64_t)_mm_cvtsi128_si64(_mm512_extracti32x4_epi32(lo, 2));
                    uint64_t a6 = (uint64_t)_mm_cvtsi128_si64(_mm512_extracti32x4_epi32(lo, 3));
                    pcm_put128(&w, a0 | (a2 << (2 * k)), a2 >> (64 - 2 * k), 4 * k);
                    pcm_put128(&w, a4 | (a6 << (2 * k)), a6 >> (64 - 2 * k), 4 * k);
                    continue;
                }
                /* fours in lanes 0, 4 */
                lo = _mm512_or_si512(lo, _mm512_sll_epi64(_mm512_alignr_epi64(zero, lo, 2), k2c));
                if (k > 7) {  /* eight a put */
                    uint64_t a0 = (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(lo));
                    uint64_t a4 = (uint64_t)_mm_cvtsi128_si64(_mm512_extracti32x4_epi32(lo, 2));
                    pcm_put128(&w, a0 | (a4 << (4 * k)), a4 >> (64 - 4 * k), 8 * k);
                    continue;
                }
                lo = _mm512_or_si512(lo, _mm512_sll_epi64(_mm512_alignr_epi64(zero, lo, 4), k4c));
                pcm_put(&w, (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(lo)), 8 * k);
            }
            for (; i < end; i++) pcm_put(&w, PCM_RZ(r[i]) & (((uint64_t)1 << k) - 1), k);
        }
        *bw = w;
    }
    #endif
    static int pcm_read_residuals2(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                                   int n, int P, int order) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #ifdef PCM_HAVE_AVX512
        if (pcm_avx512 && pcm_avx2 && pcm_bmi2) return pcm_read_residuals2_avx512(buf, ppos, nbits, x, n, P, order);
    #endif
        if (pcm_avx2 && pcm_bmi2) return pcm_read_residuals2_avx2(buf, ppos, nbits, x, n, P, order);
        if (pcm_bmi2) return pcm_read_residuals2_bmi2(buf, ppos, nbits, x, n, P, order);
    #endif
        return pcm_read_residuals2_base(buf, ppos, nbits, x, n, P, order);
    }
    /* Pass 2: x[i] = residual x[i] + prediction from x[i-M..i-1], in place, for i in [M, n).
       Orders are compile-time constants at each call site (FIXED: polynomial order M 0..4;
       else LPC order M 1..8). TRICK (LPC, bits + sh <= 62): x = ((r << sh) + sum q*h) >> sh,
       which equals r + (sum >> sh) whenever the result fits in bits, so only
       multiply-add-shift sits on the history chain; for orders 5..8 taps 4..8 then run in
       double precision (exact: that partial sum is an integer below 2**51 in a valid stream, so
       FMA or not, and the summation order, make no difference) on the FP units, which leaves
       three integer multiplies per sample. Returns -1 when a value leaves the bits-bit range. */
    static inline __attribute__((always_inline))
    int pcm_restore(int64_t* x, int n, const int32_t* q, int sh, int bits, const int M,
                    const int FIXED, const int TRICK, const int FMA) {
        uint64_t half = (uint64_t)1 << (bits - 1), bad = 0, s;
        int i;
        int64_t h1 = M >= 1 ? x[M - 1] : 0, h2 = M >= 2 ? x[M - 2] : 0, h3 = M >= 3 ? x[M - 3] : 0,
                h4 = M >= 4 ? x[M - 4] : 0, h5 = M >= 5 ? x[M - 5] : 0, h6 = M >= 6 ? x[M - 6] : 0,
                h7 = M >= 7 ? x[M - 7] : 0, h8 = M >= 8 ? x[M - 8] : 0;
        uint64_t c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0, c6 = 0, c7 = 0, c8 = 0;
        double f4 = 0, f5 = 0, f6 = 0, f7 = 0, f8 = 0;
        double d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0, d8 = 0;
        /* TRICK with M >= 5: taps FT..M in double precision */
        const int FP = TRICK && M >= 5, FT = 4;
        if (!FIXED) {
            c1 = PCM_U((int64_t)q[0]);
            if (M >= 2) c2 = PCM_U((int64_t)q[1]);
            if (M >= 3) c3 = PCM_U((int64_t)q[2]);
            if (M >= 4) c4 = PCM_U((int64_t)q[3]);
            if (M >= 5) c5 = PCM_U((int64_t)q[4]);
            if (M >= 6) c6 = PCM_U((int64_t)q[5]);
            if (M >= 7) c7 = PCM_U((int64_t)q[6]);
            if (M >= 8) c8 = PCM_U((int64_t)q[7]);
            if (FP) {
                f4 = (double)q[3]; f5 = (double)q[4];
                if (M >= 6) f6 = (double)q[5];
                if (M >= 7) f7 = (double)q[6];
                if (M >= 8) f8 = (double)q[7];
                d1 = (double)h1; d2 = (double)h2; d3 = (double)h3; d4 = (double)h4; d5 = (double)h5;
                d6 = (double)h6; d7 = (double)h7; d8 = (double)h8;
            }
        }
        if (FIXED && M == 0) {
            for (i = 0; i < n; i++) bad |= PCM_U(x[i]) + half;
            return (bad >> bits) != 0 ? -1 : 0;
        }
        /* One sample with the history in H1..H8 (newest first; D1..D8: the same as doubles);
           the new value goes into H8 and D8, so the next sample's history is the same names
           rotated by one: unrolled by eight below, the rotation costs no register moves. */
        #define PCM_FTAP(J, F, D) if (M >= J && J >= FT) { if (FMA) bv = __builtin_fma(F, D, bv); else fs += F * D; }
        #define PCM_ITAP(J, C, H) if (M >= J && !(FP && J >= FT)) s += C * PCM_U(H);
        #define PCM_STEP(O, H1, H2, H3, H4, H5, H6, H7, H8, D1, D2, D3, D4, D5, D6, D7, D8) do { \
            int64_t v = xp[O]; \
            if (FIXED) { \
                if (M == 1) s = PCM_U(H1); \
                else if (M == 2) s = 2 * PCM_U(H1) - PCM_U(H2); \
                else if (M == 3) s = 3 * (PCM_U(H1) - PCM_U(H2)) + PCM_U(H3); \
                else s = 4 * (PCM_U(H1) + PCM_U(H3)) - 6 * PCM_U(H2) - PCM_U(H4); \
                v = (int64_t)(PCM_U(v) + s); \
            } else if (TRICK) { \
                s = PCM_U(v) << sh; \
                if (FP) { \
                    double bv = PCM_BIAS, fs = 0.0; \
                    PCM_FTAP(8, f8, D8) PCM_FTAP(7, f7, D7) PCM_FTAP(6, f6, D6) \
                    PCM_FTAP(5, f5, D5) PCM_FTAP(4, f4, D4) \
                    if (!FMA) bv = fs + PCM_BIAS; \
                    int64_t bi; memcpy(&bi, &bv, 8); \
                    s += PCM_U(bi - PCM_BIAS_BITS); \
                } \
                PCM_ITAP(4, c4, H4) PCM_ITAP(3, c3, H3) PCM_ITAP(2, c2, H2) \
                __asm__("" : "+r"(s)); \
                v = ((int64_t)(s + c1 * PCM_U(H1))) >> sh; \
            } else { \
                s = 0; \
                if (M >= 8) s += c8 * PCM_U(H8); \
                if (M >= 7) s += c7 * PCM_U(H7); \
                if (M >= 6) s += c6 * PCM_U(H6); \
                if (M >= 5) s += c5 * PCM_U(H5); \
                if (M >= 4) s += c4 * PCM_U(H4); \
                if (M >= 3) s += c3 * PCM_U(H3); \
                if (M >= 2) s += c2 * PCM_U(H2); \
                s += c1 * PCM_U(H1); \
                s = PCM_U(((int64_t)s) >> sh); \
                v = (int64_t)(PCM_U(v) + s); \
            } \
            bad |= PCM_U(v) + half; \
            xp[O] = v; \
            H8 = v; \
            if (FP) D8 = (double)v; \
        } while (0)
        /* (TRICK: everything but the newest tap is summed before it arrives, which keeps the
           history chain at multiply, add, shift) */
        int64_t* xp = x + M;
        int64_t* const xe = x + n;
        for (; xe - xp >= 8; xp += 8) {
            PCM_STEP(0, h1, h2, h3, h4, h5, h6, h7, h8, d1, d2, d3, d4, d5, d6, d7, d8);
            PCM_STEP(1, h8, h1, h2, h3, h4, h5, h6, h7, d8, d1, d2, d3, d4, d5, d6, d7);
            PCM_STEP(2, h7, h8, h1, h2, h3, h4, h5, h6, d7, d8, d1, d2, d3, d4, d5, d6);
            PCM_STEP(3, h6, h7, h8, h1, h2, h3, h4, h5, d6, d7, d8, d1, d2, d3, d4, d5);
            PCM_STEP(4, h5, h6, h7, h8, h1, h2, h3, h4, d5, d6, d7, d8, d1, d2, d3, d4);
            PCM_STEP(5, h4, h5, h6, h7, h8, h1, h2, h3, d4, d5, d6, d7, d8, d1, d2, d3);
            PCM_STEP(6, h3, h4, h5, h6, h7, h8, h1, h2, d3, d4, d5, d6, d7, d8, d1, d2);
            PCM_STEP(7, h2, h3, h4, h5, h6, h7, h8, h1, d2, d3, d4, d5, d6, d7, d8, d1);
        }
        for (; xp < xe; xp++) {
            int64_t t8 = h8;
            double e8 = d8;
            PCM_STEP(0, h1, h2, h3, h4, h5, h6, h7, t8, d1, d2, d3, d4, d5, d6, d7, e8);
            h8 = h7; h7 = h6; h6 = h5; h5 = h4; h4 = h3; h3 = h2; h2 = h1; h1 = t8;
            d8 = d7; d7 = d6; d6 = d5; d5 = d4; d4 = d3; d3 = d2; d2 = d1; d1 = e8;
        }
        #undef PCM_FTAP
        #undef PCM_ITAP
        #undef PCM_STEP
        for (i = 0; i < M; i++) bad |= PCM_U(x[i]) + half;  /* warm-up samples */
        return (bad >> bits) != 0 ? -1 : 0;
    }
    /* Each order is a function of its own (its own register allocation), compiled for the
       baseline and for AVX2 + BMI2 (three-operand VEX double arithmetic, shlx/sarx). */
    typedef int (*pcm_restore_fn)(int64_t* x, int n, const int32_t* q, int sh, int bits);
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #define PCM_RESTORE_FN(NAME, M, FIXED, TRICK) \
        static __attribute__((noinline)) int NAME##_base(int64_t* x, int n, const int32_t* q, int sh, int bits) \
            { return pcm_restore(x, n, q, sh, bits, M, FIXED, TRICK, 0); } \
        static __attribute__((noinline, target("avx2,fma,bmi,bmi2"))) int NAME##_bmi2(int64_t* x, int n, const int32_t* q, int sh, int bits) \
            { return pcm_restore(x, n, q, sh, bits, M, FIXED, TRICK, 1); }
    #else
    #define PCM_RESTORE_FN(NAME, M, FIXED, TRICK) \
        static int NAME##_base(int64_t* x, int n, const int32_t* q, int sh, int bits) \
            { return pcm_restore(x, n, q, sh, bits, M, FIXED, TRICK, 0); } \
        static int NAME##_bmi2(int64_t* x, int n, const int32_t* q, int sh, int bits) \
            { return pcm_restore(x, n, q, sh, bits, M, FIXED, TRICK, 0); }
    #endif
    PCM_RESTORE_FN(pcm_rs_f0, 0, 1, 0) PCM_RESTORE_FN(pcm_rs_f1, 1, 1, 0)
    PCM_RESTORE_FN(pcm_rs_f2, 2, 1, 0) PCM_RESTORE_FN(pcm_rs_f3, 3, 1, 0)
    PCM_RESTORE_FN(pcm_rs_f4, 4, 1, 0)
    PCM_RESTORE_FN(pcm_rs_t1, 1, 0, 1) PCM_RESTORE_FN(pcm_rs_t2, 2, 0, 1)
    PCM_RESTORE_FN(pcm_rs_t3, 3, 0, 1) PCM_RESTORE_FN(pcm_rs_t4, 4, 0, 1)
    PCM_RESTORE_FN(pcm_rs_t5, 5, 0, 1) PCM_RESTORE_FN(pcm_rs_t6, 6, 0, 1)
    PCM_RESTORE_FN(pcm_rs_t7, 7, 0, 1) PCM_RESTORE_FN(pcm_rs_t8, 8, 0, 1)
    PCM_RESTORE_FN(pcm_rs_l1, 1, 0, 0) PCM_RESTORE_FN(pcm_rs_l2, 2, 0, 0)
    PCM_RESTORE_FN(pcm_rs_l3, 3, 0, 0) PCM_RESTORE_FN(pcm_rs_l4, 4, 0, 0)
    PCM_RESTORE_FN(pcm_rs_l5, 5, 0, 0) PCM_RESTORE_FN(pcm_rs_l6, 6, 0, 0)
    PCM_RESTORE_FN(pcm_rs_l7, 7, 0, 0) PCM_RESTORE_FN(pcm_rs_l8, 8, 0, 0)
    #define PCM_RS_ROW(C) { \
        pcm_rs_f0_##C, pcm_rs_f1_##C, pcm_rs_f2_##C, pcm_rs_f3_##C, pcm_rs_f4_##C, \
        pcm_rs_t1_##C, pcm_rs_t2_##C, pcm_rs_t3_##C, pcm_rs_t4_##C, \
        pcm_rs_t5_##C, pcm_rs_t6_##C, pcm_rs_t7_##C, pcm_rs_t8_##C, \
        pcm_rs_l1_##C, pcm_rs_l2_##C, pcm_rs_l3_##C, pcm_rs_l4_##C, \
        pcm_rs_l5_##C, pcm_rs_l6_##C, pcm_rs_l7_##C, pcm_rs_l8_##C }
    static const pcm_restore_fn pcm_rs_table[2][21] = {PCM_RS_ROW(base), PCM_RS_ROW(bmi2)};
    static int pcm_restore_any(int64_t* x, int n, const int32_t* q, int order, int sh, int bits,
                               int fixed) {
        int v;
        if (fixed) {
            if (order > 4) return -2;
            v = order;
        } else {
            if (order < 1 || order > 8) return -2;
            v = (bits + sh <= 62 ? 4 : 12) + order;
        }
        return pcm_rs_table[pcm_avx2 && pcm_bmi2 && pcm_has_fma ? 1 : 0][v](x, n, q, sh, bits);
    }
    /* Four blocks' LPC predictions at once, one in each 64-bit lane of an AVX2 register
       (orders 1..8, taken as M with the missing coefficients zero; bits <= 32 and sh <= 30).
       One block's history chain (multiply, add, shift: about 5 cycles a sample in
       pcm_restore) leaves the core idle most of the time; here four chains share each
       instruction, and the taps are vpmuldq (two a cycle) instead of imul (one). The
       history is kept as u = x + 2**(62 - sh): then x = s >> sh (arithmetic, which AVX2
       lacks for 64-bit lanes) is u = (s + 2**62) >> sh (logical; |s| < 2**62 when x fits,
       and a sum outside that gives an x out of range, which the range check reports, as
       pcm_restore's does), and u's low 32 bits are x's (2**(62 - sh) has none), the operand
       vpmuldq multiplies. Same integers as pcm_restore on each block. Lanes count..3 repeat
       lane 0 (the same values stored twice): the vector loop computes them, the scalar
       parts do not. */
    #if defined(__GNUC__) && defined(__x86_64__)
    #define PCM_HAVE_GROUP 1
    static inline __attribute__((always_inline, target("avx2,bmi,bmi2")))
    void pcm_transpose4(__m256i* r0, __m256i* r1, __m256i* r2, __m256i* r3) {
        __m256i t0 = _mm256_unpacklo_epi64(*r0, *r1), t1 = _mm256_unpackhi_epi64(*r0, *r1);
        __m256i t2 = _mm256_unpacklo_epi64(*r2, *r3), t3 = _mm256_unpackhi_epi64(*r2, *r3);
        *r0 = _mm256_permute2x128_si256(t0, t2, 0x20);
        *r1 = _mm256_permute2x128_si256(t1, t3, 0x20);
        *r2 = _mm256_permute2x128_si256(t0, t2, 0x31);
        *r3 = _mm256_permute2x128_si256(t1, t3, 0x31);
    }
    static inline __attribute__((always_inline, target("avx2,bmi,bmi2")))
    int pcm_restore4(int64_t* const* xs, int count, int n, const int32_t* const* qs,
                     const int* shs, const int* bitss, const int M) {
        int64_t *x0 = xs[0], *x1 = xs[1], *x2 = xs[2], *x3 = xs[3];
        const __m256i sh = _mm256_set_epi64x(shs[3], shs[2], shs[1], shs[0]);
        const __m256i k = _mm256_set_epi64x((int64_t)1 << (62 - shs[3]), (int64_t)1 << (62 - shs[2]),
                                            (int64_t)1 << (62 - shs[1]), (int64_t)1 << (62 - shs[0]));
        const __m256i b62 = _mm256_set1_epi64x((int64_t)1 << 62);
        const __m256i hk = _mm256_sub_epi64(_mm256_set_epi64x(
            (int64_t)1 << (bitss[3] - 1), (int64_t)1 << (bitss[2] - 1),
            (int64_t)1 << (bitss[1] - 1), (int64_t)1 << (bitss[0] - 1)), k);
        const __m256i z = _mm256_setzero_si256();
        __m256i bad = z;
        __m256i c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z;
        __m256i u1 = z, u2 = z, u3 = z, u4 = z, u5 = z, u6 = z, u7 = z, u8 = z;
        uint64_t badl[4] = {0, 0, 0, 0};
        int i, j, l;
        #define PCM_VINIT(J, C, U) if (M >= J) { \
            C = _mm256_set_epi64x(qs[3][J - 1], qs[2][J - 1], qs[1][J - 1], qs[0][J - 1]); \
            U = _mm256_add_epi64(_mm256_set_epi64x(x3[M - J], x2[M - J], x1[M - J], x0[M - J]), k); }
        PCM_VINIT(1, c1, u1) PCM_VINIT(2, c2, u2) PCM_VINIT(3, c3, u3) PCM_VINIT(4, c4, u4)
        PCM_VINIT(5, c5, u5) PCM_VINIT(6, c6, u6) PCM_VINIT(7, c7, u7) PCM_VINIT(8, c8, u8)
        #undef PCM_VINIT
        #define PCM_VTAP(J, C, U) if (M >= J) acc = _mm256_add_epi64(acc, _mm256_mul_epi32(C, U));
        #define PCM_VSTEP(R, U1, U2, U3, U4, U5, U6, U7, U8) do { \
            __m256i acc = _mm256_add_epi64(_mm256_sllv_epi64(R, sh), b62); \
            PCM_VTAP(8, c8, U8) PCM_VTAP(7, c7, U7) PCM_VTAP(6, c6, U6) PCM_VTAP(5, c5, U5) \
            PCM_VTAP(4, c4, U4) PCM_VTAP(3, c3, U3) PCM_VTAP(2, c2, U2) \
            __asm__("" : "+x"(acc)); \
            U8 = _mm256_srlv_epi64(_mm256_add_epi64(acc, _mm256_mul_epi32(c1, U1)), sh); \
            bad = _mm256_or_si256(bad, _mm256_add_epi64(U8, hk)); \
        } while (0)
        /* samples O .. O + 3 of the four blocks: one load and one store per block */
        #define PCM_VSTEP4(O, U1, U2, U3, U4, U5, U6, U7, U8) do { \
            __m256i r0 = _mm256_loadu_si256((const __m256i*)(p0 + O)); \
            __m256i r1 = _mm256_loadu_si256((const __m256i*)(p1 + O)); \
            __m256i r2 = _mm256_loadu_si256((const __m256i*)(p2 + O)); \
            __m256i r3 = _mm256_loadu_si256((const __m256i*)(p3 + O)); \
            pcm_transpose4(&r0, &r1, &r2, &r3); \
            PCM_VSTEP(r0, U1, U2, U3, U4, U5, U6, U7, U8); \
            PCM_VSTEP(r1, U8, U1, U2, U3, U4, U5, U6, U7); \
            PCM_VSTEP(r2, U7, U8, U1, U2, U3, U4, U5, U6); \
            PCM_VSTEP(r3, U6, U7, U8, U1, U2, U3, U4, U5); \
            r0 = _mm256_sub_epi64(U8, k); r1 = _mm256_sub_epi64(U7, k); \
            r2 = _mm256_sub_epi64(U6, k); r3 = _mm256_sub_epi64(U5, k); \
            pcm_transpose4(&r0, &r1, &r2, &r3); \
            _mm256_storeu_si256((__m256i*)(p0 + O), r0); \
            _mm256_storeu_si256((__m256i*)(p1 + O), r1); \
            _mm256_storeu_si256((__m256i*)(p2 + O), r2); \
            _mm256_storeu_si256((__m256i*)(p3 + O), r3); \
        } while (0)
        int64_t *p0 = x0 + M, *p1 = x1 + M, *p2 = x2 + M, *p3 = x3 + M;
        int64_t* const pe = x0 + n;
        for (; pe - p0 >= 8; p0 += 8, p1 += 8, p2 += 8, p3 += 8) {
            PCM_VSTEP4(0, u1, u2, u3, u4, u5, u6, u7, u8);
            PCM_VSTEP4(4, u5, u6, u7, u8, u1, u2, u3, u4);
        }
        #undef PCM_VTAP
        #undef PCM_VSTEP
        #undef PCM_VSTEP4
        for (l = 0; l < count; l++) {
            int64_t* x = xs[l];
            const int32_t* q = qs[l];
            const int s = shs[l];
            const uint64_t half = (uint64_t)1 << (bitss[l] - 1);
            /* the last n - M mod 8 samples, as pcm_restore computes them */
            for (i = (int)(p0 - x0); i < n; i++) {
                uint64_t acc = PCM_U(x[i]) << s;
                for (j = 1; j <= M; j++) acc += PCM_U((int64_t)q[j - 1]) * PCM_U(x[i - j]);
                x[i] = ((int64_t)acc) >> s;
                badl[l] |= PCM_U(x[i]) + half;
            }
            for (i = 0; i < M; i++) badl[l] |= PCM_U(x[i]) + half;  /* warm-up samples */
        }
        badl[0] |= (uint64_t)_mm256_extract_epi64(bad, 0);
        badl[1] |= (uint64_t)_mm256_extract_epi64(bad, 1);
        badl[2] |= (uint64_t)_mm256_extract_epi64(bad, 2);
        badl[3] |= (uint64_t)_mm256_extract_epi64(bad, 3);
        for (l = 0; l < 4; l++) if (badl[l] >> bitss[l]) return -1;
        return 0;
    }
    typedef int (*pcm_restore4_fn)(int64_t* const* xs, int count, int n,
                                   const int32_t* const* qs, const int* shs, const int* bitss);
    #define PCM_RESTORE4_FN(M) \
        static __attribute__((noinline, target("avx2,bmi,bmi2"))) int pcm_rs4_##M( \
                int64_t* const* xs, int count, int n, const int32_t* const* qs, \
                const int* shs, const int* bitss) \
            { return pcm_restore4(xs, count, n, qs, shs, bitss, M); }
    PCM_RESTORE4_FN(1) PCM_RESTORE4_FN(2) PCM_RESTORE4_FN(3) PCM_RESTORE4_FN(4)
    PCM_RESTORE4_FN(5) PCM_RESTORE4_FN(6) PCM_RESTORE4_FN(7) PCM_RESTORE4_FN(8)
    static const pcm_restore4_fn pcm_rs4_table[8] = {
        pcm_rs4_1, pcm_rs4_2, pcm_rs4_3, pcm_rs4_4, pcm_rs4_5, pcm_rs4_6, pcm_rs4_7, pcm_rs4_8};
    #endif
    /* The predictions of count (<= 4) subframes of n samples each, as pcm_restore_any on
       each: the LPC ones of at most 32 bits with sh <= 30 together (pcm_restore4) on a CPU
       with the AVX2 clone, two or more of them, the lower orders' first samples restored on
       their own so that all run at the highest order. 0 ok, -1 out of range, -2 order not
       handled. */
    static int pcm_restore_group(int64_t* const* xs, int count, int n, const int32_t* const* qs,
                                 const int* orders, const int* shs, const int* bitss,
                                 const int* fixeds) {
        int g = 0, i, rc = 0, r;
        int in[4] = {0, 0, 0, 0};  /* run by pcm_restore4 */
    #ifdef PCM_HAVE_GROUP
        int64_t* gx[4];
        const int32_t* gq[4];
        int gsh[4], gbits[4], M = 0, j;
        int32_t cq[4][8];
        if (pcm_avx2 && pcm_bmi2 && n >= 16) {
            for (i = 0; i < count; i++) {
                in[i] = !fixeds[i] && orders[i] >= 1 && orders[i] <= 8 && bitss[i] <= 32
                        && shs[i] <= 30;
                g += in[i];
            }
            if (g < 2) {  /* a lone one runs by itself */
                g = 0;
                for (i = 0; i < count; i++) in[i] = 0;
            }
        }
        if (g) {
            for (i = 0; i < count; i++) if (in[i] && orders[i] > M) M = orders[i];
            g = 0;
            for (i = 0; i < count; i++) {
                if (!in[i]) continue;
                if (orders[i] < M && pcm_restore_any(xs[i], M, qs[i], orders[i], shs[i], bitss[i], 0) != 0)
                    return -1;
                for (j = 0; j < 8; j++) cq[g][j] = j < orders[i] ? qs[i][j] : 0;
                gx[g] = xs[i]; gq[g] = cq[g]; gsh[g] = shs[i]; gbits[g] = bitss[i];
                g++;
            }
            for (i = g; i < 4; i++) {
                gx[i] = gx[0]; gq[i] = gq[0]; gsh[i] = gsh[0]; gbits[i] = gbits[0];
            }
            rc = pcm_rs4_table[M - 1](gx, g, n, gq, gsh, gbits);
        }
    #endif
        for (i = 0; i < count; i++) {
            if (in[i]) continue;
            r = pcm_restore_any(xs[i], n, qs[i], orders[i], shs[i], bitss[i], fixeds[i]);
            if (r == -2 || rc == 0) rc = r;
        }
        return rc;
    }
    /* y = 2 * zigzag(r) + 1 (as pass 1 stores it) back to r, in place. */
    static inline __attribute__((always_inline)) void pcm_unzigzag_body(int64_t* x, int n) {
        int i;
        for (i = 0; i < n; i++) {
            uint64_t y = (uint64_t)x[i];
            x[i] = (int64_t)((y >> 2) ^ (0 - ((y >> 1) & 1)));
        }
    }
    PCM_DISPATCH(void, pcm_unzigzag, (int64_t* x, int n), (x, n))
    /* Float mode 2: the raw mantissa bits below trunc(v) for the n samples of a channel, from
       bit *ppos, written as 32-bit floats at p (stride bytes apart). The bit position depends
       only on the decoded integers, so this is a loop without a chain through the bits. */
    static inline __attribute__((always_inline))
    int pcm_float_extras_body(const uint8_t* buf, uint64_t* ppos, uint64_t nbits,
                              const int64_t* x, int n, double scale, uint8_t* p, int stride,
                              int be) {
        uint64_t pos = *ppos;
        double sc[24];
        int i;
        /* scale is 2**-E with |E| <= 256: sc[ne] = scale / 2**ne is exact, and so is
           v * sc[ne] (v < 2**24), the same double as v * scale / 2**ne in two steps */
        for (i = 0; i < 24; i++) sc[i] = scale / (double)((uint64_t)1 << i);
        for (i = 0; i < n; i++) {
            int64_t iv = x[i];
            uint64_t w = pcm_ld64(buf + (pos >> 3)) >> (pos & 7);
            uint32_t f;
            if (iv == 0) {
                if (w & 1) { f = (uint32_t)(w >> 1); pos += 33; }
                else { f = 0; pos += 1; }
            } else {
                uint64_t a = iv < 0 ? (uint64_t)0 - (uint64_t)iv : (uint64_t)iv;
                int ne = 24 - pcm_bitlen(a);
                if (ne < 0) return -1;
                pos += (uint64_t)ne;
                /* below 2**24: converted as signed (no branch for the unsigned range) */
                double dv = (double)(int64_t)((a << ne) | (w & ((((uint64_t)1) << ne) - 1))) * sc[ne];
                /* the sign as a bit, not a branch (the sign of music is a coin toss): the same
                   bits as (float)(-dv), as rounding to nearest is symmetric and dv > 0 */
                f = pcm_f2u((float)dv) | ((uint32_t)((uint64_t)iv >> 63) << 31);
            }
            if (pos > nbits) return -1;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            if (!be) f = __builtin_bswap32(f);
    #else
            if (be) f = __builtin_bswap32(f);
    #endif
            memcpy(p + (size_t)i * stride, &f, 4);
        }
        *ppos = pos;
        return 0;
    }
    #define PCM_FX_PARAMS (const uint8_t* buf, uint64_t* ppos, uint64_t nbits, const int64_t* x, int n, \
                           double scale, uint8_t* p, int stride, int be)
    #define PCM_FX_ARGS (buf, ppos, nbits, x, n, scale, p, stride, be)
    static int pcm_float_extras_base PCM_FX_PARAMS { return pcm_float_extras_body PCM_FX_ARGS; }
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static __attribute__((target("avx2,bmi,bmi2"))) int pcm_float_extras_bmi2 PCM_FX_PARAMS {
        return pcm_float_extras_body PCM_FX_ARGS;
    }
    #endif
    static int pcm_float_extras PCM_FX_PARAMS {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        if (pcm_avx2 && pcm_bmi2) return pcm_float_extras_bmi2 PCM_FX_ARGS;
    #endif
        return pcm_float_extras_base PCM_FX_ARGS;
    }
    /* Stereo decorrelation of a block (mode 1 L/S, 2 S/R, 3 M/S), vectorised. */
    static inline __attribute__((always_inline))
    void pcm_decorrelate_body(int64_t* L, int64_t* R, int n, int mode) {
        int i;
        if (mode == 1) for (i = 0; i < n; i++) R[i] = (int64_t)(PCM_U(L[i]) - PCM_U(R[i]));
        else if (mode == 2) for (i = 0; i < n; i++) L[i] = (int64_t)(PCM_U(L[i]) + PCM_U(R[i]));
        else if (mode == 3) for (i = 0; i < n; i++) {
            int64_t s = R[i], m2 = (int64_t)(PCM_U(L[i]) << 1) | (s & 1);
            L[i] = ((int64_t)(PCM_U(m2) + PCM_U(s))) >> 1;
            R[i] = ((int64_t)(PCM_U(m2) - PCM_U(s))) >> 1;
        }
    }
    PCM_DISPATCH(void, pcm_decorrelate, (int64_t* L, int64_t* R, int n, int mode), (L, R, n, mode))
    /* The residuals of x[order..n) (P: partitions, v2: the version 2 layout) read from bit
       *ppos into x, for pcm_restore_any or pcm_restore_group: 0 ok, -1 corrupt. */
    static int pcm_read_predicted(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                                  int n, int P, int order, int v2) {
        if (v2) return pcm_read_residuals2(buf, ppos, nbits, x, n, P, order) ? -1 : 0;
        if (pcm_read_residuals(buf, ppos, nbits, x, n, P, order)) return -1;
        pcm_unzigzag(x + order, n - order);
        return 0;
    }
    """
    uint64_t pcm_ld64(const uint8_t* p) nogil
    void pcm_st64(uint8_t* p, uint64_t v) nogil
    int pcm_ctz64(uint64_t v) nogil
    int pcm_bitlen(uint64_t v) nogil
    uint32_t pcm_f2u(float f) nogil
    float pcm_u2f(uint32_t u) nogil
    void pcm_load(const uint8_t* p, int stride, int n, int bits, int be, int64_t* x) nogil
    void pcm_load_u32(const uint8_t* p, int count, int be, uint32_t* out) nogil
    void pcm_load_block(const uint8_t* p, int n, int bits, int be, int ch, int64_t* x, int cstride, int32_t* y) nogil
    void pcm_prefetch(const uint8_t* p, size_t len) nogil
    void pcm_store(uint8_t* p, int stride, int n, int bits, int be, const int64_t* x) nogil
    void pcm_autocorr10(const double* x, int n, double* R) nogil
    void pcm_window_autocorr10(const int64_t* x, int n, const double* win, double* xd, double* xw, double* R) nogil
    void pcm_window_acf9f(const int64_t* x, const int32_t* y, int n, const double* win, int flat, double* xd, float* xf, double* R) nogil
    void pcm_fixed_sums32(const int64_t* x, int n, int sbits, uint64_t* S) nogil
    int pcm_stereo_sums(const int64_t* L, const int64_t* R, int n, int sbits, uint64_t* S) nogil
    void pcm_fixed_sums_y(const int32_t* y, int n, int sbits, uint64_t* S) nogil
    int pcm_stereo_sums_y(int32_t* yl, int32_t* yr, int n, int sbits, uint64_t* S) nogil
    void pcm_cpu_init()
    void pcm_tables_init()
    uint64_t PCM_ZZ(int64_t v) nogil
    void pcm_set_features(int avx2, int bmi2, int avx512, int fast_pext)
    int pcm_avx2
    int pcm_bmi2
    int pcm_avx512
    int pcm_fast_pext
    int pcm_store_mono_le(uint8_t* p, int n, int bits, const int64_t* x) nogil
    int pcm_store_stereo_le(uint8_t* p, int n, int bits, const int64_t* L, const int64_t* R) nogil
    void pcm_zz_sums(int64_t* r, int n, int order, int P, uint64_t* sums, uint64_t* ors) nogil
    void pcm_fixed_residual_zz(const int64_t* x, int64_t* r, int n, int order, int P, uint64_t* sums, uint64_t* ors) nogil
    int pcm_lpc_residual_zz(const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh, int P, uint64_t* sums, uint64_t* ors) nogil
    void pcm_or_diff(const int64_t* x, int n, uint64_t* orv, uint64_t* diff) nogil
    int pcm_bitlen_div(uint64_t s, uint64_t c) nogil
    void pcm_lpc_residual(const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh) nogil
    ctypedef struct pcm_bw:
        uint8_t* out
        size_t pos
        uint64_t acc
        int nb
        int bad
    void pcm_rice_codes(pcm_bw* bw, const int64_t* r, int i, int end, int k) nogil
    void pcm_rice2_codes(pcm_bw* bw, const int64_t* r, int i, int end, int k) nogil
    void pcm_float_extras_write(pcm_bw* bw, const uint32_t* fb, int n, int stride, double scale) nogil
    void pcm_float_to_int(const uint32_t* fb, int n, int ch, int c, double dv, int64_t* out) nogil
    uint32_t pcm_float_absmax(const uint32_t* u, size_t count) nogil
    void pcm_int_to_float(const int64_t* x, int n, double dv, uint8_t* p, int stride, int be) nogil
    int pcm_float_span(const uint32_t* u, int count, int* emin, int* topmax) nogil
    int pcm_lpc_residual_d(const double* xd, const int64_t* x, int64_t* r, int n, const int32_t* q, int m, int sh) nogil
    int pcm_float_extras(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, const int64_t* x,
                         int n, double scale, uint8_t* p, int stride, int be) nogil
    void pcm_decorrelate(int64_t* L, int64_t* R, int n, int mode) nogil
    int pcm_read_predicted(const uint8_t* buf, uint64_t* ppos, uint64_t nbits, int64_t* x,
                           int n, int P, int order, int v2) nogil
    int pcm_restore_any(int64_t* x, int n, const int32_t* q, int order, int sh, int bits,
                        int fixed) nogil
    int pcm_restore_group(int64_t* const* xs, int count, int n, const int32_t* const* qs,
                          const int* orders, const int* shs, const int* bitss,
                          const int* fixeds) nogil

DEF VERSION = 2
DEF HDR = 13
DEF BLOCK = 4096
DEF MAXBLOCK = 16384
DEF GROUP = 4  # subframes predicted together (in the lanes of an AVX2 register)
DEF MAXLPC = 8
DEF MAXLPC_DEC = 8  # the decoder rejects higher orders (the format could hold 32)
DEF LPC_PREC = 14
DEF MAXPO = 6
DEF RICE_PATIENCE = 2  # rice_plan_sums: levels costed past the best one before it stops
DEF RICE_SPREAD = 4  # rice_plan_sums: the finest level is costed when its sums differ this much
DEF ACF_REDO = 1e-5  # LPC analysis: redo the autocorrelation in double below this error ratio
DEF PAD = 64
DEF TAIL = 65536  # decoding reads the payload in place up to its last TAIL bytes
# enc_subframe estimates the fixed predictor next to a usable LPC one only for blocks shorter
# than FIXED_SHORT, blocks that LPC codes in under FIXED_GATE bits a sample, or where the best
# fixed predictor's error is under FIXED_GAP times LPC's (lpc_analyze's fixed_gap)
DEF FIXED_SHORT = 512
DEF FIXED_GATE = 8
DEF FIXED_GAP = 1.3
DEF FIXED_TRY_NUM = 101  # try the fixed predictor when its estimate < LPC's one-partition
DEF FIXED_TRY_DEN = 100  # cost * NUM / DEN
DEF INT64_MAX_ = 0x7FFFFFFFFFFFFFFF

pcm_cpu_init()
pcm_tables_init()


def _cpu_features(avx2=None, bmi2=None, avx512=None, fast_pext=None):
    """Which run-time clones are in use, as (avx2, bmi2, avx512, fast_pext); with arguments,
    first switch them (a clone the CPU lacks stays off; the AVX-512 ones only run with avx2
    and bmi2 on; fast_pext picks the AVX2 version 2 writer that packs with pext, on by default
    only where pext is fast, and can be forced on wherever the CPU has it). For tests: every
    path must give the same bytes."""
    if avx2 is not None or bmi2 is not None or avx512 is not None or fast_pext is not None:
        pcm_set_features(pcm_avx2 if avx2 is None else bool(avx2),
                         pcm_bmi2 if bmi2 is None else bool(bmi2),
                         pcm_avx512 if avx512 is None else bool(avx512),
                         pcm_fast_pext if fast_pext is None else bool(fast_pext))
    return bool(pcm_avx2), bool(pcm_bmi2), bool(pcm_avx512), bool(pcm_fast_pext)


def _rice2_codes(r, int k):
    """For tests: a version 2 partition of Rice parameter k (0..56) coding the residuals r (a
    buffer of int64) with the writer the current features pick, as (bytes, bad): bad when a
    quotient is above 63 (the bytes then do not decode)."""
    cdef const int64_t[::1] rv = r
    cdef Py_ssize_t n = rv.shape[0], i
    cdef uint64_t bits = 0, q
    cdef uint8_t[::1] ob
    cdef int64_t* zz
    cdef pcm_bw w
    if not 0 <= k <= 56 or n >= 1 << 24:
        raise ValueError("k or length out of range")
    for i in range(n):
        q = PCM_ZZ(rv[i]) >> k
        if q > 1 << 16:
            raise ValueError("quotient out of range")
        bits += q + 1 + <uint64_t>k
    ob = bytearray(bits // 8 + 64)  # and the writer's 16-byte stores
    w.out = &ob[0]
    w.pos = 0
    w.acc = 0
    w.nb = 0
    w.bad = 0
    if n:
        zz = <int64_t*>malloc(sizeof(int64_t) * n)
        if zz == NULL:
            raise MemoryError()
        for i in range(n):
            zz[i] = <int64_t>PCM_ZZ(rv[i])  # what the encoder's residual arrays hold
        pcm_rice2_codes(&w, zz, 0, <int>n, k)
        free(zz)
    # a put leaves the pending bits stored at out[pos] (as encode relies on at its end)
    return bytes(ob[:w.pos + (1 if w.nb else 0)]), bool(w.bad)


FORMAT_VERSION = VERSION  # first byte of every payload
BLOCK_FRAMES = BLOCK  # frames per block written by encode()

# ------------------------------------------------------------------------------------------
# encoder

cdef struct Enc:
    uint8_t* out
    size_t cap
    bint borrowed  # out is the result's own bytes object (not ours to realloc or free)
    size_t pos
    uint64_t acc
    int nb
    int err
    int64_t* sig
    int64_t* resa
    int64_t* resb
    double* xw
    double* xd
    double* win
    int win_n
    double win_sum2
    uint32_t* fbuf
    int64_t* sbuf
    int64_t* mbuf
    int32_t* y32  # int32 copies of the block's channels (pcm_load_block), BLOCK apart
    int acf_dbl  # lpc_analyze: start with the double-precision autocorrelation
    # the samples of the block being encoded fit in (sbits - vshrink)-bit signed integers
    # (float mode 1: known from the exponents; else 0): only picks the faster exact paths
    int vshrink
    int v2  # write version 2 (two-stream) residual partitions


cdef inline void put(Enc* e, uint64_t v, int k) noexcept nogil:
    """Append the k (<= 56) low bits of v (which must have no higher bits set)."""
    e.acc |= v << e.nb
    e.nb += k
    pcm_st64(e.out + e.pos, e.acc)
    e.pos += e.nb >> 3
    e.acc >>= (e.nb & ~7)
    e.nb &= 7


cdef inline uint64_t mask(int k) noexcept nogil:
    return ((<uint64_t>1) << k) - 1


cdef inline bint ensure(Enc* e, size_t extra) noexcept nogil:
    cdef size_t need = e.pos + extra + PAD
    cdef size_t ncap
    cdef uint8_t* p
    if need <= e.cap:
        return True
    ncap = e.cap * 2
    if ncap < need:
        ncap = need
    if e.borrowed:  # outgrew the result object: go on in memory of our own
        p = <uint8_t*>malloc(ncap)
        if p != NULL:
            memcpy(p, e.out, e.pos + 1)
            e.borrowed = False
    else:
        p = <uint8_t*>realloc(e.out, ncap)
    if p == NULL:
        e.err = 1
        return False
    e.out = p
    e.cap = ncap
    return True


cdef inline int choose_k(uint64_t s, int64_t cnt, uint64_t mx, int64_t* cost) noexcept nogil:
    cdef int k0, k, best_k = 0, kmin
    cdef int64_t c, best = -1
    if cnt <= 0:
        cost[0] = 0
        return 0
    k0 = pcm_bitlen_div(s, <uint64_t>cnt) - 1
    if k0 < 0:
        k0 = 0
    kmin = pcm_bitlen(mx) - 6  # keeps every quotient below 64
    if kmin < 0:
        kmin = 0
    for k in range(k0 - 1, k0 + 2):
        if k < kmin:
            continue
        if k > 56:
            break
        # sum(u >> k) ~ (s - cnt * (2**k - 1) / 2) / 2**k: low bits average half their range
        c = cnt * (k + 1) + <int64_t>(s >> k) - (
            ((cnt * ((<int64_t>1 << k) - 1)) >> (k + 1)) if k < 32 else (cnt >> 1))
        if best < 0 or c < best:
            best = c
            best_k = k
    if best < 0:
        best_k = kmin if kmin <= 56 else 56
        best = cnt * (best_k + 1) + <int64_t>(s >> best_k)
    cost[0] = best
    return best_k


cdef inline int rice_levels(int n, int order) noexcept nogil:
    """The finest partition order rice_plan_sums considers: at most MAXPO, dividing n, and every
    partition longer than the warm-up."""
    cdef int P = 0
    while P < MAXPO and (n % (1 << (P + 1))) == 0 and (n >> (P + 1)) > order:
        P += 1
    return P


cdef inline int64_t level_cost(const uint64_t* sums, const uint64_t* ors, int n, int order, int p,
                               uint8_t* tk) noexcept nogil:
    """Estimated bits of the residual with 2**p partitions (their sums and ORs at [2**p..)),
    and each one's Rice parameter into tk[2**p..)."""
    cdef int j, k, base = 1 << p
    cdef int64_t cost = 4, c
    for j in range(base):
        k = choose_k(sums[base + j], (n >> p) - (order if j == 0 else 0), ors[base + j], &c)
        tk[base + j] = <uint8_t>k
        cost += 6 + c
    return cost


cdef inline int climb(const uint64_t* sums, const uint64_t* ors, int n, int order, int p, int stop,
                      int step, int64_t* best, int* bp, uint8_t* tk) noexcept nogil:
    """Cost levels p, p + step, ... up to stop (not costed) while they pay: the search ends
    once RICE_PATIENCE levels in a row were no cheaper than *best. Of equal costs the coarser
    level wins. Updates *best and *bp; returns the last level costed (p - step if none)."""
    cdef int worse = 0, last = p - step
    cdef int64_t cost
    while p != stop:
        cost = level_cost(sums, ors, n, order, p, tk)
        last = p
        if cost < best[0] or (cost == best[0] and step < 0):
            best[0] = cost
            bp[0] = p
            worse = 0
        else:
            worse += 1
            if worse >= RICE_PATIENCE:
                break
        p += step
    return last


cdef int64_t rice_plan_sums(uint64_t* sums, uint64_t* ors, int n, int order, int P, int* p_out,
                            uint8_t* ks, int64_t* cost0) noexcept nogil:
    """Choose the partition order and Rice parameters from the zigzag sums and ORs of the 2**P
    finest partitions, at sums[2**P..) and ors[2**P..) (the coarser levels are summed into
    sums[2**p..), p < P); returns the estimated residual bits (and in cost0 the estimate with
    one partition). On equal costs the coarser level wins.

    Not every level is costed: from one partition up, the search stops once RICE_PATIENCE
    finer levels in a row were not cheaper than the best so far; then, if the finest
    partitions' sums differ by more than RICE_SPREAD times, the finest level is costed too,
    and only if it is cheaper the levels above it, down to where they stop improving. The
    cost over the levels usually has one dip, near the coarse end on the benchmark corpus, but
    signals with rare spikes (a square wave, a sweep) have a second one at the fine end: a
    search from one end only cost them +45% and +1.3%."""
    cdef uint8_t tk[128]
    cdef int p, j, bp = 0, base, last
    cdef int64_t cost, best
    cdef uint64_t smin = sums[1 << P], smax = sums[1 << P]
    for j in range((1 << P) + 1, 2 << P):
        if sums[j] < smin:
            smin = sums[j]
        if sums[j] > smax:
            smax = sums[j]
    p = P - 1
    while p >= 0:
        base = 1 << p
        for j in range(base):
            sums[base + j] = sums[2 * base + 2 * j] + sums[2 * base + 2 * j + 1]
            ors[base + j] = ors[2 * base + 2 * j] | ors[2 * base + 2 * j + 1]
        p -= 1
    cost0[0] = level_cost(sums, ors, n, order, 0, tk)
    best = cost0[0]
    last = climb(sums, ors, n, order, 1, P + 1, 1, &best, &bp, tk)
    if last < P and smax > RICE_SPREAD * smin:
        cost = level_cost(sums, ors, n, order, P, tk)
        if cost < best:
            best = cost
            bp = P
            climb(sums, ors, n, order, P - 1, last, -1, &best, &bp, tk)
    p_out[0] = bp
    memcpy(ks, tk + (1 << bp), 1 << bp)
    return best


cdef void write_residual(Enc* e, const int64_t* r, int n, int order, int P,
                         const uint8_t* ks) noexcept nogil:
    cdef int j, k, nparts = 1 << P, ps = n >> P
    cdef pcm_bw w
    put(e, <uint64_t>P, 4)
    for j in range(nparts):
        k = ks[j]
        put(e, <uint64_t>k, 6)
        w.out = e.out
        w.pos = e.pos
        w.acc = e.acc
        w.nb = e.nb
        w.bad = 0
        if e.v2:
            pcm_rice2_codes(&w, r, order if j == 0 else j * ps, (j + 1) * ps, k)
            if w.bad:  # a quotient above 63 (choose_k never leaves one): no payload
                e.err = 2
        else:
            pcm_rice_codes(&w, r, order if j == 0 else j * ps, (j + 1) * ps, k)
        e.pos = w.pos
        e.acc = w.acc
        e.nb = w.nb


cdef inline uint64_t best_fixed(const uint64_t* S, int* order) noexcept nogil:
    """The smallest of the sums S[0..4] of the fixed predictors of orders 0..4, and its order
    (the lowest order on ties)."""
    cdef uint64_t b = S[0]
    cdef int j, o = 0
    for j in range(1, 5):
        if S[j] < b:
            b = S[j]
            o = j
    order[0] = o
    return b


cdef uint64_t fixed_sums(const int64_t* x, const int32_t* y, int n, int* order, int sbits) noexcept nogil:
    """Estimated zigzag sum of the best fixed predictor's residual (order 0..4), as
    2 * sum |residual| (see pcm_fixed_sums_i32), and that order; x holds sbits-bit signed values
    (y: NULL or the same as int32)."""
    cdef uint64_t S[5]
    cdef int64_t d0, d1, d2, d3, d4
    cdef int i
    if sbits <= 26 and y != NULL:
        pcm_fixed_sums_y(y, n, sbits, S)
        return best_fixed(S, order)
    if sbits <= 26:
        pcm_fixed_sums32(x, n, sbits, S)
        return best_fixed(S, order)
    S[0] = S[1] = S[2] = S[3] = S[4] = 0
    for i in range(4, n):
        d0 = x[i]
        d1 = d0 - x[i - 1]
        d2 = d1 - (x[i - 1] - x[i - 2])
        d3 = d2 - (x[i - 1] - 2 * x[i - 2] + x[i - 3])
        d4 = d3 - (x[i - 1] - 3 * x[i - 2] + 3 * x[i - 3] - x[i - 4])
        S[0] += 2 * <uint64_t>(d0 if d0 >= 0 else -d0)
        S[1] += 2 * <uint64_t>(d1 if d1 >= 0 else -d1)
        S[2] += 2 * <uint64_t>(d2 if d2 >= 0 else -d2)
        S[3] += 2 * <uint64_t>(d3 if d3 >= 0 else -d3)
        S[4] += 2 * <uint64_t>(d4 if d4 >= 0 else -d4)
    return best_fixed(S, order)


cdef inline int64_t rice_estimate(uint64_t s, int64_t cnt) noexcept nogil:
    cdef int64_t c
    choose_k(s, cnt, 0, &c)
    return c


cdef void make_window(double* w, int n) noexcept nogil:
    """Tukey(0.5) window: 1.0 on [n // 4, n - n // 4), which pcm_window_acf9f is told."""
    cdef int i, t = n // 4
    for i in range(n):
        w[i] = 1.0
    if t > 0:
        for i in range(t):
            w[i] = 0.5 - 0.5 * cos(3.141592653589793 * i / t)
            w[n - 1 - i] = w[i]


# the window of a whole block, made once (every encode would otherwise make it again: 1,024
# cos() calls a chunk)
cdef double BLOCK_WIN[BLOCK]
cdef double BLOCK_WIN_SUM2 = 0.0
make_window(BLOCK_WIN, BLOCK)
for _i in range(BLOCK):
    BLOCK_WIN_SUM2 += BLOCK_WIN[_i] * BLOCK_WIN[_i]
del _i


cdef int lpc_analyze(Enc* e, const int64_t* x, const int32_t* y, int n, int bits, int32_t* qc,
                     int* shift_out, int vbits, double* fixed_gap) noexcept nogil:
    """Quantized LPC coefficients for x; returns the order (0 when LPC is not usable). x
    holds vbits-bit signed values (vbits <= bits); y: NULL or the same values as int32.
    fixed_gap: how many times the chosen order's prediction error the best fixed
    predictor's is, both from the windowed autocorrelation (an estimate, for enc_subframe)."""
    cdef double R[10]
    cdef double a[MAXLPC]
    cdef double tmp[MAXLPC]
    cdef double coefs[MAXLPC][MAXLPC]
    cdef double errs[MAXLPC]
    cdef double err, acc, k, cmax, wsum2 = 0.0, est, best_est, v, qerr, fe
    cdef int i, j, m, lag, best_m, ex, sh, maxq
    cdef int64_t qi
    cdef double* xw = e.xw
    cdef double* win
    cdef bint redo
    if n == BLOCK:
        win = BLOCK_WIN
        wsum2 = BLOCK_WIN_SUM2
    else:
        if e.win_n != n:
            make_window(e.win, n)
            e.win_n = n
            e.win_sum2 = 0.0
            for i in range(n):
                e.win_sum2 += e.win[i] * e.win[i]
        win = e.win
        wsum2 = e.win_sum2
    # The autocorrelation in float lanes (vbits <= 31), unless the last block analysed was very
    # predictable: when the order-8 error is below ACF_REDO of the energy, float's rounding
    # costs size (a 96 kHz sweep +6%), so such a block is worked out again in double precision,
    # and so are the next ones until one is not (e.acf_dbl). Deterministic: the same on every
    # clone (the float sums are).
    redo = vbits > 31 or e.acf_dbl
    while True:
        if redo:
            if vbits <= 31:  # int32 -> double converts in SIMD; int64 -> double does not (SSE2)
                pcm_window_autocorr10(x, n, win, e.xd, xw, R)
            else:
                for i in range(n):
                    xw[i] = <double>x[i] * win[i]
                pcm_autocorr10(xw, n, R)
        else:
            pcm_window_acf9f(x, y, n, win, n // 4, e.xd, <float*>xw, R)
        if R[0] <= 0.0:
            return 0
        R[0] *= 1.0 + 1e-9  # a little regularisation
        err = R[0]
        for m in range(MAXLPC):
            acc = R[m + 1]
            for j in range(m):
                acc -= a[j] * R[m - j]
            k = acc / err
            for j in range(m):
                tmp[j] = a[j] - k * a[m - 1 - j]
            for j in range(m):
                a[j] = tmp[j]
            a[m] = k
            err *= 1.0 - k * k
            if err <= 0.0:
                err = 1e-30
            for j in range(m + 1):
                coefs[m][j] = a[j]
            errs[m] = err
        if redo:
            if vbits <= 31:
                e.acf_dbl = err < R[0] * ACF_REDO
            break
        if err >= R[0] * ACF_REDO:
            break
        redo = True
        e.acf_dbl = 1
    # the fixed predictors' residual energies: sum c_i c_j R[|i - j|] over their coefficients
    # c (1 -1; 1 -2 1; 1 -3 3 -1; 1 -4 6 -4 1)
    fe = R[0]
    fe = min(fe, 2.0 * (R[0] - R[1]))
    fe = min(fe, 6.0 * R[0] - 8.0 * R[1] + 2.0 * R[2])
    fe = min(fe, 20.0 * R[0] - 30.0 * R[1] + 12.0 * R[2] - 2.0 * R[3])
    fe = min(fe, 70.0 * R[0] - 112.0 * R[1] + 56.0 * R[2] - 16.0 * R[3] + 2.0 * R[4])
    best_m = 0
    best_est = 0.0
    for m in range(1, MAXLPC + 1):
        v = errs[m - 1] / wsum2
        est = 0.5 * log2(v) if v > 1e-9 else -15.0
        est = est * (n - m) + m * (LPC_PREC + bits)
        if best_m == 0 or est < best_est:
            best_est = est
            best_m = m
    # (the fixed energies cancel to noise where the prediction gain is high: no estimate)
    fixed_gap[0] = fe / errs[best_m - 1] if errs[best_m - 1] > R[0] * 1e-3 else 1e30
    m = best_m
    cmax = 0.0
    for j in range(m):
        v = coefs[m - 1][j]
        if v < 0:
            v = -v
        if v > cmax:
            cmax = v
    if cmax <= 0.0:
        return 0
    frexp(cmax, &ex)
    sh = LPC_PREC - 1 - ex
    if sh > 31:
        sh = 31
    if sh < 0:
        return 0
    maxq = (1 << (LPC_PREC - 1)) - 1
    qerr = 0.0
    for j in range(m):
        qerr += coefs[m - 1][j] * (1 << sh)
        qi = <int64_t>(qerr + 0.5 if qerr >= 0 else qerr - 0.5)
        if qi > maxq:
            qi = maxq
        elif qi < -maxq - 1:
            qi = -maxq - 1
        qc[j] = <int32_t>qi
        qerr -= <double>qi
    shift_out[0] = sh
    return m


cdef void enc_verbatim(Enc* e, const int64_t* x, int n, int eff, int w) noexcept nogil:
    cdef int i
    cdef uint64_t mk = mask(eff)
    put(e, 1 | (<uint64_t>w << 2), 8)
    for i in range(n):
        put(e, <uint64_t>(x[i] >> w) & mk, eff)


cdef void enc_subframe(Enc* e, const int64_t* x, const int32_t* y, int n, int sbits, int pre_fo,
                       int64_t pre_est) noexcept nogil:
    """pre_fo >= 0: the caller already found the best fixed order of x and its estimated Rice
    cost pre_est (used if no wasted bits). y: NULL or x as int32 (only for the analysis)."""
    cdef int64_t v0 = x[0]
    cdef uint64_t orv = 0, diff = 0, mk
    cdef int i, w, eff, veff, fo, m = 0, sh = 0, P_f = 0, P_l = 0, P
    cdef int32_t qc[MAXLPC]
    cdef uint64_t sums[128]
    cdef uint64_t ors[128]
    cdef int64_t cost_l0 = 0, c0
    cdef uint8_t ks_f[64]
    cdef uint8_t ks_l[64]
    cdef int64_t cost_f = -1, cost_l = -1, verb, est_f
    cdef double fixed_gap = 0.0
    cdef const int64_t* s
    cdef size_t save_pos
    cdef uint64_t save_acc
    cdef int save_nb
    if not ensure(e, <size_t>n * 16 + 1024):
        return
    pcm_or_diff(x, n, &orv, &diff)
    if diff == 0:
        put(e, 0, 8)
        put(e, <uint64_t>v0 & mask(sbits), sbits)
        return
    w = pcm_ctz64(orv)  # orv != 0 since not constant
    if w >= sbits:
        w = sbits - 1
    eff = sbits - w
    veff = eff - e.vshrink  # the bits the values of s really need (paths only, not format)
    if veff < 1:
        veff = 1
    if w > 0:
        for i in range(n):
            e.sig[i] = x[i] >> w
        s = e.sig
        y = NULL
    else:
        s = x
    verb = <int64_t>n * eff
    if n <= 8:
        enc_verbatim(e, x, n, eff, w)
        return
    save_pos = e.pos
    save_acc = e.acc
    save_nb = e.nb
    if n >= 32 and eff > 2:
        m = lpc_analyze(e, s, y, n, eff, qc, &sh, veff, &fixed_gap)
        if m > 0:
            # the residual and its partition sums in one pass where the CPU has FMA
            P = rice_levels(n, m)
            if veff > 31 or pcm_lpc_residual_zz(e.xd, s, e.resa, n, qc, m, sh, P, sums + (1 << P),
                                                ors + (1 << P)) != 0:
                if veff > 31 or pcm_lpc_residual_d(e.xd, s, e.resa, n, qc, m, sh) != 0:
                    pcm_lpc_residual(s, e.resa, n, qc, m, sh)
                pcm_zz_sums(e.resa, n, m, P, sums + (1 << P), ors + (1 << P))
            cost_l = rice_plan_sums(sums, ors, n, m, P, &P_l, ks_l, &cost_l0) + m * (eff + LPC_PREC) + 14
            cost_l0 += m * (eff + LPC_PREC) + 14
    # The fixed predictor is estimated only where it may win: LPC not usable, a short block,
    # few bits a sample (exactly polynomial signals, which quantised LPC only approximates),
    # or an error estimate near LPC's (where LPC's coefficients cost more than they gain);
    # elsewhere the estimate was 10% of encoding for 0.034% of the payload on the bench
    # corpus. It is worked out in full only when its one-partition estimate comes near LPC's
    # (partitioning gains about as much for either).
    if w == 0 and pre_fo >= 0:
        fo = pre_fo
        est_f = pre_est + fo * eff
    elif cost_l < 0 or n < FIXED_SHORT or cost_l0 < <int64_t>n * FIXED_GATE or fixed_gap < FIXED_GAP:
        est_f = rice_estimate(fixed_sums(s, y, n, &fo, veff), n - 4) + fo * eff
    else:
        est_f = -1
    if cost_l < 0 or (est_f >= 0 and est_f * FIXED_TRY_DEN < cost_l0 * FIXED_TRY_NUM):
        P = rice_levels(n, fo)
        pcm_fixed_residual_zz(s, e.resb, n, fo, P, sums + (1 << P), ors + (1 << P))
        cost_f = rice_plan_sums(sums, ors, n, fo, P, &P_f, ks_f, &c0) + fo * eff
    else:
        cost_f = INT64_MAX_
    if cost_f >= verb and (cost_l < 0 or cost_l >= verb):
        enc_verbatim(e, x, n, eff, w)
        return
    mk = mask(eff)
    if cost_l >= 0 and cost_l < cost_f:
        put(e, 3 | (<uint64_t>w << 2), 8)
        put(e, <uint64_t>(m - 1), 5)
        put(e, <uint64_t>(LPC_PREC - 1), 4)
        put(e, <uint64_t>sh, 5)
        for i in range(m):
            put(e, <uint64_t><int64_t>qc[i] & mask(LPC_PREC), LPC_PREC)
        for i in range(m):
            put(e, <uint64_t>s[i] & mk, eff)
        write_residual(e, e.resa, n, m, P_l, ks_l)
    else:
        put(e, 2 | (<uint64_t>w << 2), 8)
        put(e, <uint64_t>fo, 3)
        for i in range(fo):
            put(e, <uint64_t>s[i] & mk, eff)
        write_residual(e, e.resb, n, fo, P_f, ks_f)
    if (e.pos - save_pos) * 8 + e.nb - save_nb > verb + 8:
        e.pos = save_pos
        e.acc = save_acc
        e.nb = save_nb
        enc_verbatim(e, x, n, eff, w)


cdef inline void store_sample(uint8_t* p, int64_t v, int bits, bint be) noexcept nogil:
    cdef uint32_t u = <uint32_t>v
    if bits == 16:
        if be:
            p[0] = <uint8_t>(u >> 8)
            p[1] = <uint8_t>u
        else:
            p[0] = <uint8_t>u
            p[1] = <uint8_t>(u >> 8)
    elif bits == 24:
        if be:
            p[0] = <uint8_t>(u >> 16)
            p[1] = <uint8_t>(u >> 8)
            p[2] = <uint8_t>u
        else:
            p[0] = <uint8_t>u
            p[1] = <uint8_t>(u >> 8)
            p[2] = <uint8_t>(u >> 16)
    elif bits == 32:
        if be:
            p[0] = <uint8_t>(u >> 24)
            p[1] = <uint8_t>(u >> 16)
            p[2] = <uint8_t>(u >> 8)
            p[3] = <uint8_t>u
        else:
            p[0] = <uint8_t>u
            p[1] = <uint8_t>(u >> 8)
            p[2] = <uint8_t>(u >> 16)
            p[3] = <uint8_t>(u >> 24)
    else:
        if be:
            p[0] = <uint8_t>u
        else:
            p[0] = <uint8_t>(u + 128)


cdef inline int64_t float_ordered(uint32_t u) noexcept nogil:
    """Float bit pattern -> int32 that orders like the float value (an involution)."""
    cdef int32_t s = <int32_t>u
    if s < 0:
        s ^= 0x7FFFFFFF
    return s


cdef int float_scale(const uint32_t* u, Py_ssize_t count, int* E_out, int* R_out) noexcept nogil:
    """If every value is exactly v * 2**-E with integer |v| < 2**31 (no NaN/inf/-0.0), store E
    and return 1."""
    cdef Py_ssize_t i = 0
    cdef int emin = 100000, topmax = -100000, c
    while i < count:
        c = <int>min(count - i, <Py_ssize_t>64)
        if pcm_float_span(u + i, c, &emin, &topmax):  # -0.0, inf or NaN
            return 0
        # topmax only grows and emin only shrinks: once the span is too wide it stays so
        # (music floats usually get there within the first samples of a block)
        if topmax - emin > 31:
            return 0
        i += c
    if emin == 100000:
        E_out[0] = 0
        R_out[0] = 31
        return 1
    # v = value * 2**-emin; |v| < 2**(topmax - emin) must be < 2**31
    if topmax - emin > 31 or emin < -255 or emin > 255:
        return 0
    E_out[0] = -emin
    R_out[0] = topmax - emin  # every |v| < 2**R_out
    return 1


cdef int float_split(const uint32_t* u, Py_ssize_t count, int* E_out) noexcept nogil:
    """Mode 2 (any finite floats): v = x * 2**E with max |v| in [2**23, 2**24); the integer
    part trunc(v) goes through the predictor, the mantissa bits below it are stored raw."""
    cdef uint32_t mx = pcm_float_absmax(u, <size_t>count)
    cdef int emax
    if mx >= 0x7F800000:  # inf or NaN present
        return 0
    if mx == 0:
        E_out[0] = 0
        return 1
    if mx >> 23:
        emax = <int>(mx >> 23) - 127
    else:
        emax = pcm_bitlen(mx) - 1 - 149
    E_out[0] = 23 - emax
    return 1


cdef void write_float_extras(Enc* e, const uint32_t* fbuf, int n, int stride, int E) noexcept nogil:
    """Float mode 2: the mantissa bits below trunc(v) of one channel (pcm_float_extras_write)."""
    cdef pcm_bw w
    w.out = e.out
    w.pos = e.pos
    w.acc = e.acc
    w.nb = e.nb
    # ldexp(1.0, E): an exact power of two, so the products are exact
    pcm_float_extras_write(&w, fbuf, n, stride, ldexp(1.0, E))
    e.pos = w.pos
    e.acc = w.acc
    e.nb = w.nb


cdef int encode_all(Enc* e, const uint8_t* src, int64_t frames, int bits, int channels, bint be,
                    bint flt, int64_t* chbuf) noexcept nogil:
    cdef int64_t start
    cdef int n, c, i, align = channels * (bits // 8), sbits, mode, E = 0
    cdef int fmode = 0, Rb = 31
    cdef const uint8_t* p
    cdef int64_t* L
    cdef int64_t* R
    cdef int64_t l, r, sd
    cdef uint64_t sL, sR, sS, sM, best
    cdef uint64_t fsums[20]
    cdef int64_t cL, cR, cS, cM, bestc
    cdef int oL, oR, oS, oM
    cdef int64_t* S
    cdef uint32_t fu
    cdef uint32_t* fbuf = e.fbuf
    cdef double dv
    cdef int32_t* y32
    start = 0
    while start < frames:
        n = BLOCK if frames - start > BLOCK else <int>(frames - start)
        p = src + start * align
        if not flt:
            y32 = e.y32 if bits <= 24 and channels <= 2 else NULL
            pcm_load_block(p, n, bits, be, channels, chbuf, BLOCK, y32)
            if start + n < frames:
                pcm_prefetch(p + <size_t>n * align, <size_t>(
                    min(frames - start - n, <int64_t>BLOCK) * align))
        else:
            y32 = NULL
            pcm_load_u32(p, n * channels, be, fbuf)
            if start + n < frames:
                pcm_prefetch(p + <size_t>n * align, <size_t>(
                    min(frames - start - n, <int64_t>BLOCK) * align))
            fmode = float_scale(fbuf, <Py_ssize_t>n * channels, &E, &Rb)
            e.vshrink = 32 - (Rb + 1) if fmode else 0
            if not fmode:
                fmode = 2 * float_split(fbuf, <Py_ssize_t>n * channels, &E)
            if not ensure(e, 8):
                return -1
            put(e, <uint64_t>fmode, 2)
            if fmode:
                put(e, <uint64_t>(E + 256), 9)
                dv = ldexp(1.0, E)
                for c in range(channels):
                    # exact (power-of-two scale); the cast truncates toward zero
                    pcm_float_to_int(fbuf, n, channels, c, dv, chbuf + c * BLOCK)
            else:
                for c in range(channels):
                    for i in range(n):
                        chbuf[c * BLOCK + i] = float_ordered(fbuf[i * channels + c])
        sbits = 25 if flt and fmode == 2 else bits
        if channels == 2:
            L = chbuf
            R = chbuf + BLOCK
            # estimated bits of each candidate: Rice cost of its best fixed-predictor residual
            # (from y32, which then holds M and S instead of L and R)
            if y32 != NULL and pcm_stereo_sums_y(y32, y32 + BLOCK, n, sbits - e.vshrink, fsums) != 0:
                y32 = NULL
            if y32 != NULL or pcm_stereo_sums(L, R, n, sbits - e.vshrink, fsums) == 0:
                cL = rice_estimate(best_fixed(fsums, &oL), n - 4)
                cR = rice_estimate(best_fixed(fsums + 5, &oR), n - 4)
                cS = rice_estimate(best_fixed(fsums + 10, &oS), n - 4)
                cM = rice_estimate(best_fixed(fsums + 15, &oM), n - 4)
            else:
                S = e.sbuf
                for i in range(n):
                    S[i] = L[i] - R[i]
                    e.mbuf[i] = (L[i] + R[i]) >> 1
                cL = rice_estimate(fixed_sums(L, NULL, n, &oL, sbits - e.vshrink), n - 4)
                cR = rice_estimate(fixed_sums(R, NULL, n, &oR, sbits - e.vshrink), n - 4)
                cS = rice_estimate(fixed_sums(S, NULL, n, &oS, sbits + 1 - e.vshrink), n - 4)
                cM = rice_estimate(fixed_sums(e.mbuf, NULL, n, &oM, sbits - e.vshrink), n - 4)
            mode = 0
            bestc = cL + cR
            if cL + cS < bestc:
                bestc = cL + cS
                mode = 1
            if cS + cR < bestc:
                bestc = cS + cR
                mode = 2
            if cM + cS < bestc:
                mode = 3
            if not ensure(e, 8):
                return -1
            put(e, <uint64_t>mode, 2)
            if mode == 1:
                for i in range(n):
                    R[i] = L[i] - R[i]
                enc_subframe(e, L, NULL, n, sbits, oL, cL)
                enc_subframe(e, R, y32 + BLOCK if y32 != NULL else NULL, n, sbits + 1, oS, cS)
            elif mode == 2:
                for i in range(n):
                    L[i] = L[i] - R[i]
                enc_subframe(e, L, y32 + BLOCK if y32 != NULL else NULL, n, sbits + 1, oS, cS)
                enc_subframe(e, R, NULL, n, sbits, oR, cR)
            elif mode == 3:
                for i in range(n):
                    l = L[i]
                    r = R[i]
                    L[i] = (l + r) >> 1
                    R[i] = l - r
                enc_subframe(e, L, y32, n, sbits, oM, cM)
                enc_subframe(e, R, y32 + BLOCK if y32 != NULL else NULL, n, sbits + 1, oS, cS)
            else:
                enc_subframe(e, L, NULL, n, sbits, oL, cL)
                enc_subframe(e, R, NULL, n, sbits, oR, cR)
        else:
            for c in range(channels):
                enc_subframe(e, chbuf + c * BLOCK, y32 + c * BLOCK if y32 != NULL else NULL, n, sbits, -1, 0)
                if flt and fmode == 2:
                    if not ensure(e, <size_t>n * 5 + 64):
                        return -1
                    write_float_extras(e, fbuf + c, n, channels, E)
        if flt and fmode == 2 and channels == 2:
            for c in range(2):
                if not ensure(e, <size_t>n * 5 + 64):
                    return -1
                write_float_extras(e, fbuf + c, n, channels, E)
        if e.err:
            return -1
        start += n
    return 0


cdef inline Py_ssize_t _out_bound(Py_ssize_t n) noexcept:
    return n + n // 8 + 16 * BLOCK + 8192


def encode_bound(Py_ssize_t n):
    """The smallest `out` buffer `encode` takes for `n` bytes of PCM: room for its payload at
    9/8 of the input, and for the bits its last subframe might need (one that outgrows even
    this, white noise at full scale, is copied out to bytes: correct, only slower)."""
    return _out_bound(n)


def encode(data, int bits, int channels, bint big_endian, bint is_float, *, int version=VERSION,
           out=None):
    """Compress interleaved PCM frames; None if the format is unsupported or `data` is not a
    whole number of frames (or, never with this encoder's Rice parameters, when a version 2
    quotient would exceed 63: the caller then stores the chunk another way). `version` 1
    writes the old one-stream residual partitions (for tests and comparisons: the same bit
    count as version 2, which is what the store writes).

    With `out`, a writable buffer of at least `encode_bound(len(data))` bytes, the payload is
    written there and a memoryview of it is returned (a payload that outgrows `out` comes back
    as bytes): a caller that encodes chunk after chunk reuses memory that is already mapped
    instead of faulting in a fresh block per chunk."""
    cdef Py_buffer view
    cdef Py_buffer oview
    cdef bint have_out = False
    cdef Enc e
    cdef int code, rc, align
    cdef int64_t frames
    cdef int64_t* chbuf = NULL
    cdef size_t total
    cdef PyObject* raw = NULL
    result = None
    if version not in (1, 2):
        raise ValueError("unknown PCM payload version")
    if bits not in (8, 16, 24, 32) or not (1 <= channels <= 255) or (is_float and bits != 32):
        return None
    align = channels * (bits // 8)
    memset(&e, 0, sizeof(Enc))
    e.v2 = version >= 2
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len % align:
            return None
        frames = view.len // align
        # encoded straight into the bytes object that is returned (shrunk to fit at the end;
        # a shrinking realloc does not move it): no copy of the payload
        e.cap = <size_t>view.len + <size_t>view.len // 8 + 4096
        if out is not None:
            PyObject_GetBuffer(out, &oview, PyBUF_WRITABLE)
            have_out = True
            if oview.len < _out_bound(view.len):
                raise ValueError("out is smaller than encode_bound(len(data))")
            e.cap = <size_t>oview.len
            e.out = <uint8_t*>oview.buf
        else:
            result = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>e.cap)
            e.out = <uint8_t*>PyBytes_AS_STRING(result)
        e.borrowed = True
        chbuf = <int64_t*>malloc(sizeof(int64_t) * BLOCK * channels)
        e.sig = <int64_t*>malloc(sizeof(int64_t) * BLOCK)
        e.resa = <int64_t*>malloc(sizeof(int64_t) * BLOCK)
        e.resb = <int64_t*>malloc(sizeof(int64_t) * BLOCK)
        e.xw = <double*>malloc(sizeof(double) * BLOCK)
        e.xd = <double*>malloc(sizeof(double) * BLOCK)
        e.win = <double*>malloc(sizeof(double) * BLOCK)
        e.y32 = <int32_t*>malloc(sizeof(int32_t) * BLOCK * 2)
        if channels == 2:
            e.sbuf = <int64_t*>malloc(sizeof(int64_t) * BLOCK * 2)
            if e.sbuf == NULL:
                raise MemoryError()
            e.mbuf = e.sbuf + BLOCK
        if is_float:
            e.fbuf = <uint32_t*>malloc(sizeof(uint32_t) * BLOCK * channels)
            if e.fbuf == NULL:
                raise MemoryError()
        if (e.out == NULL or chbuf == NULL or e.sig == NULL or e.resa == NULL or e.resb == NULL
                or e.xw == NULL or e.xd == NULL or e.win == NULL or e.y32 == NULL):
            raise MemoryError()
        code = (bits // 8 - 1) | (4 if big_endian else 0) | (8 if is_float else 0)
        e.out[0] = <uint8_t>version
        e.out[1] = <uint8_t>code
        e.out[2] = <uint8_t>channels
        e.out[3] = BLOCK & 0xFF
        e.out[4] = BLOCK >> 8
        pcm_st64(e.out + 5, <uint64_t>frames)
        e.pos = HDR
        with nogil:
            rc = encode_all(&e, <const uint8_t*>view.buf, frames, bits, channels, big_endian,
                            is_float, chbuf)
        if rc != 0:
            if e.err == 2:
                return None
            raise MemoryError()
        total = e.pos + (1 if e.nb else 0)
        if not e.borrowed:
            return PyBytes_FromStringAndSize(<char*>e.out, total)
        if have_out:
            PyBuffer_Release(&oview)
            have_out = False
            return memoryview(out)[:total]
        raw = <PyObject*>result  # _PyBytes_Resize needs the only reference: raw's
        Py_INCREF(result)
        result = None
        _PyBytes_Resize(&raw, <Py_ssize_t>total)  # on failure it frees the object and raises
        out = <object>raw  # a new reference; drop the one `raw` held
        Py_DECREF(out)
        return out
    finally:
        PyBuffer_Release(&view)
        if have_out:
            PyBuffer_Release(&oview)
        if not e.borrowed:
            free(e.out)
        free(chbuf)
        free(e.sig)
        free(e.resa)
        free(e.resb)
        free(e.xw)
        free(e.xd)
        free(e.win)
        free(e.y32)
        free(e.fbuf)
        free(e.sbuf)


# ------------------------------------------------------------------------------------------
# decoder

cdef struct Dec:
    const uint8_t* buf
    uint64_t pos
    uint64_t nbits
    # Where buf is: the payload itself (in place) until the blocks near its end, then a padded
    # copy of the rest (see decode_all); base: bit offset of buf[0] in the payload body.
    uint64_t base
    const uint8_t* body
    size_t blen
    uint8_t* tail
    uint64_t switch_at
    int v2  # payload version 2: two-stream residual partitions


cdef inline uint64_t getb(Dec* d, int k) noexcept nogil:
    """Read k (<= 56) bits; the caller checks d.pos against d.nbits afterwards."""
    cdef uint64_t w = pcm_ld64(d.buf + (d.pos >> 3)) >> (d.pos & 7)
    d.pos += k
    return w & mask(k)


cdef inline int64_t sext(uint64_t v, int bits) noexcept nogil:
    cdef int sh = 64 - bits
    return (<int64_t>(v << sh)) >> sh


cdef struct Sub:
    # a subframe read by sub_read, for sub_finish_group: typ 0 constant, 1 verbatim (both whole
    # already), 2 fixed, 3 LPC (predictions still to add); w: wasted low bits to shift back
    int typ
    int w
    int eff
    int order
    int sh
    int32_t qc[MAXLPC_DEC]


cdef int sub_read(Dec* d, int64_t* x, int n, int sbits, Sub* s) noexcept nogil:
    """A subframe's bits from d.pos into x: the header, warm-up samples and residuals (0, or -1
    corrupt). Reading is apart from the prediction so that several subframes' predictions can
    run together (sub_finish_group)."""
    cdef int typ, w, eff, i, order, prec, P
    cdef int64_t v
    cdef uint64_t hdr
    hdr = getb(d, 8)
    typ = <int>(hdr & 3)
    w = <int>(hdr >> 2)
    s.typ = typ
    s.w = w
    if typ == 0:
        if w != 0:
            return -1
        v = sext(getb(d, sbits), sbits)
        if d.pos > d.nbits:
            return -1
        for i in range(n):
            x[i] = v
        return 0
    if w >= sbits:
        return -1
    eff = sbits - w
    s.eff = eff
    if typ == 1:
        for i in range(n):
            x[i] = sext(getb(d, eff), eff)
            if d.pos > d.nbits:
                return -1
        return 0
    if typ == 2:
        order = <int>getb(d, 3)
        if order > 4 or order > n:
            return -1
        s.sh = 0
    else:
        order = <int>getb(d, 5) + 1
        prec = <int>getb(d, 4) + 1
        s.sh = <int>getb(d, 5)
        if order > MAXLPC_DEC or order > n:
            return -1
        for i in range(order):
            s.qc[i] = <int32_t>sext(getb(d, prec), prec)
    s.order = order
    for i in range(order):
        x[i] = sext(getb(d, eff), eff)
    if d.pos > d.nbits:
        return -1
    P = <int>getb(d, 4)
    if P > 8 or n % (1 << P) != 0 or (n >> P) < order or d.pos > d.nbits:
        return -1
    return pcm_read_predicted(d.buf, &d.pos, d.nbits, x, n, P, order, d.v2)


cdef inline void sub_unwaste(int64_t* x, int n, const Sub* s) noexcept nogil:
    cdef int i
    if s.w:
        for i in range(n):
            x[i] = <int64_t>(<uint64_t>x[i] << s.w)


cdef int sub_finish_group(int64_t** xs, int count, int n, const Sub* subs) noexcept nogil:
    """The predictions of count (<= GROUP) subframes that sub_read left in xs (n samples each),
    run together, and their wasted bits shifted back: 0, or -1 corrupt."""
    cdef const int32_t* qs[GROUP]
    cdef int orders[GROUP]
    cdef int shs[GROUP]
    cdef int bitss[GROUP]
    cdef int fixeds[GROUP]
    cdef int i, g = 0
    cdef int64_t* gx[GROUP]
    for i in range(count):
        if subs[i].typ >= 2:
            gx[g] = xs[i]
            qs[g] = subs[i].qc
            orders[g] = subs[i].order
            shs[g] = subs[i].sh
            bitss[g] = subs[i].eff
            fixeds[g] = subs[i].typ == 2
            g += 1
    if g and pcm_restore_group(gx, g, n, qs, orders, shs, bitss, fixeds) != 0:
        return -1
    for i in range(count):
        sub_unwaste(xs[i], n, &subs[i])
    return 0


cdef inline int side_bit(int mode, int c) noexcept nogil:
    """1 when channel c (0 left, 1 right) of a stereo block in this mode is the side channel,
    which takes a bit more than the samples (1 L/S, 2 S/R, 3 M/S)."""
    if c == 0:
        return mode == 2
    return mode == 1 or mode == 3


cdef inline int read_float_extras(Dec* d, const int64_t* x, int n, int E, uint8_t* p, int stride,
                                  bint be) noexcept nogil:
    return pcm_float_extras(d.buf, &d.pos, d.nbits, x, n, ldexp(1.0, -E), p, stride, be)


cdef int store_channel(Dec* d, const int64_t* L, int n, uint8_t* p, int align, int bits, bint be,
                       bint flt, int fmode, int E) noexcept nogil:
    """Write one decoded channel of a block into the interleaved output."""
    cdef int i
    if not flt:
        if be or align != bits // 8 or pcm_store_mono_le(p, n, bits, L) != 0:
            pcm_store(p, align, n, bits, be, L)
    elif fmode == 2:
        return read_float_extras(d, L, n, E, p, align, be)
    elif fmode:
        pcm_int_to_float(L, n, ldexp(1.0, -E), p, align, be)
    else:
        for i in range(n):
            store_sample(p + <Py_ssize_t>i * align, <uint32_t>float_ordered(<uint32_t>L[i]), 32, be)
    return 0


cdef int to_tail(Dec* d) noexcept nogil:
    """Go on from a padded copy of the rest of the payload body (from the byte of d.pos)."""
    cdef size_t b0 = <size_t>((d.base + d.pos) >> 3)
    d.tail = <uint8_t*>malloc(d.blen - b0 + PAD)
    if d.tail == NULL:
        return -1
    memcpy(d.tail, d.body + b0, d.blen - b0)
    memset(d.tail + d.blen - b0, 0, PAD)
    d.pos = d.base + d.pos - <uint64_t>b0 * 8
    d.base = <uint64_t>b0 * 8
    d.buf = d.tail
    d.nbits = <uint64_t>(d.blen - b0) * 8
    return 0


cdef int decode_all(Dec* d, uint8_t* dst, int64_t frames, int bits, int channels, bint be,
                    bint flt, int bsize, int64_t* chbuf, const uint8_t* ref) noexcept nogil:
    """Decode every block into dst; or, with ref, each block into dst (one block of room) and
    compare it with the same bytes of ref (-3 at the first difference); -4: out of memory.

    The readers may load up to PAD bytes past d.nbits / 8 (never further: the bit position
    is checked against d.nbits at least that often), which the padded copy allows for.
    Copying the whole payload cost ~4% of decoding, so blocks are read from the payload in
    place while d.nbits is PAD bytes short of its end, which keeps every load inside it;
    such a block can only fail or decode exactly as from the copy (every bit it consumes
    lies below d.nbits, the same bytes). A block that fails there (it runs into the last PAD
    bytes, or is corrupt) is decoded again from a padded copy of the rest, as is every block
    that starts in the last TAIL bytes."""
    cdef int64_t start = 0
    cdef int n, rc, nb, attempt
    cdef uint64_t pos0
    # integer PCM, one or two channels: whole blocks go GROUP channels at a time
    # (decode_group)
    cdef int per = GROUP // channels if channels <= 2 and not flt else 1
    while start < frames:
        n = bsize if frames - start > bsize else <int>(frames - start)
        nb = <int>max(1, min((frames - start) // bsize, per))  # 0: the short last block
        if d.tail == NULL and d.pos >= d.switch_at and to_tail(d) < 0:
            return -4
        pos0 = d.pos
        for attempt in range(2):
            if nb > 1:
                rc = decode_group(d, dst, start, n, nb, bits, channels, be, chbuf, ref)
            else:
                rc = decode_block(d, dst, start, n, bits, channels, be, flt, bsize, chbuf, ref)
            if rc != -1 or d.tail != NULL:
                break
            d.pos = pos0
            if to_tail(d) < 0:
                return -4
        if rc != 0:
            return rc
        start += n * nb
    return 0


cdef int decode_group(Dec* d, uint8_t* dst, int64_t start, int n, int count, int bits,
                      int channels, bint be, int64_t* chbuf, const uint8_t* ref) noexcept nogil:
    """count consecutive blocks of n frames of integer PCM, one or two channels (count *
    channels <= GROUP), from d.pos (see decode_all), their predictions run together: 0, -1
    corrupt, -3 differs from ref (dst: count blocks of room with ref)."""
    cdef int align = channels * (bits // 8), k, c, j = 0, mode
    cdef int modes[GROUP]
    cdef uint8_t* p
    cdef Sub s[GROUP]
    cdef int64_t* xs[GROUP]
    for k in range(count):
        mode = 0
        if channels == 2:
            mode = <int>getb(d, 2)
        modes[k] = mode
        if d.pos > d.nbits:
            return -1
        for c in range(channels):
            xs[j] = chbuf + j * n
            if sub_read(d, xs[j], n, bits + side_bit(mode, c), &s[j]) < 0:
                return -1
            j += 1
    if sub_finish_group(xs, j, n, s) < 0:
        return -1
    for k in range(count):
        p = dst + (k * n if ref != NULL else start + k * n) * align
        if channels == 2:
            pcm_decorrelate(xs[2 * k], xs[2 * k + 1], n, modes[k])
            if be or pcm_store_stereo_le(p, n, bits, xs[2 * k], xs[2 * k + 1]) != 0:
                pcm_store(p, align, n, bits, be, xs[2 * k])
                pcm_store(p + bits // 8, align, n, bits, be, xs[2 * k + 1])
        elif be or pcm_store_mono_le(p, n, bits, xs[k]) != 0:
            pcm_store(p, align, n, bits, be, xs[k])
        if ref != NULL and memcmp(p, ref + (start + k * n) * align, <size_t>n * align) != 0:
            return -3
    return 0


cdef int decode_block(Dec* d, uint8_t* dst, int64_t start, int n, int bits, int channels,
                      bint be, bint flt, int bsize, int64_t* chbuf,
                      const uint8_t* ref) noexcept nogil:
    """One block of n frames from d.pos (see decode_all): 0, -1 corrupt, -3 differs from ref."""
    cdef int c, mode, fmode = 0, E = 0, bpsamp = bits // 8, align = channels * (bits // 8)
    cdef int sb
    cdef int64_t* L
    cdef int64_t* R
    cdef uint8_t* p
    cdef Sub sl[GROUP]
    cdef int64_t* xs[GROUP]
    cdef int g, k
    sb = bits
    if flt:
        fmode = <int>getb(d, 2)
        if fmode == 3:
            return -1
        if fmode:
            E = <int>getb(d, 9) - 256
        if fmode == 2:
            sb = 25
    if channels == 2:
        mode = <int>getb(d, 2)
        L = chbuf
        R = chbuf + bsize
        if d.pos > d.nbits:
            return -1
        if sub_read(d, L, n, sb + side_bit(mode, 0), &sl[0]) < 0:
            return -1
        if sub_read(d, R, n, sb + side_bit(mode, 1), &sl[1]) < 0:
            return -1
        xs[0] = L
        xs[1] = R
        if sub_finish_group(xs, 2, n, sl) < 0:
            return -1
        pcm_decorrelate(L, R, n, mode)
        p = dst if ref != NULL else dst + start * align
        if flt or be or pcm_store_stereo_le(p, n, bits, L, R) != 0:
            for c in range(2):
                if store_channel(d, chbuf + c * bsize, n, p + c * bpsamp, align, bits, be, flt,
                                 fmode, E) < 0:
                    return -1
    else:
        if d.pos > d.nbits:
            return -1
        p = dst if ref != NULL else dst + start * align
        # channels GROUP at a time, predicted together (float: one at a time, since mode 2
        # reads each channel's mantissa bits as it stores it)
        c = 0
        while c < channels:
            g = 1 if flt else min(GROUP, channels - c)
            for k in range(g):
                xs[k] = chbuf + k * bsize
                if sub_read(d, xs[k], n, sb, &sl[k]) < 0:
                    return -1
            if sub_finish_group(xs, g, n, sl) < 0:
                return -1
            for k in range(g):
                if store_channel(d, xs[k], n, p + (c + k) * bpsamp, align, bits, be, flt, fmode,
                                 E) < 0:
                    return -1
            c += g
    if ref != NULL and memcmp(p, ref + start * align, <size_t>n * align) != 0:
        return -3
    return 0


def decode(payload, Py_ssize_t plain_len):
    """Reproduce the PCM bytes that `encode` compressed; ValueError on a malformed payload."""
    return _decode(payload, plain_len, NULL)


def verify(payload, plain):
    """True when `payload` decodes to exactly the bytes of `plain` (every byte is compared,
    block by block, without building the decoded bytes); False when it decodes to anything
    else or is malformed."""
    cdef Py_buffer pv
    PyObject_GetBuffer(plain, &pv, PyBUF_SIMPLE)
    try:
        try:
            return _decode(payload, pv.len, <const uint8_t*>pv.buf)
        except ValueError:
            return False
    finally:
        PyBuffer_Release(&pv)


cdef object _decode(payload, Py_ssize_t plain_len, const uint8_t* ref):
    """decode(); with ref (plain_len bytes) verify(): True/False instead of the bytes."""
    cdef Py_buffer view
    cdef const uint8_t* src
    cdef uint8_t* buf = NULL
    cdef int64_t* chbuf = NULL
    cdef int bits, channels, bsize, align, rc
    cdef bint be, flt
    cdef uint64_t frames
    cdef Dec d
    cdef Py_ssize_t body
    cdef uint8_t* dst = NULL
    if plain_len < 0:
        raise ValueError("negative length")
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        src = <const uint8_t*>view.buf
        if view.len < HDR or not (1 <= src[0] <= VERSION) or src[1] & 0xF0 or src[2] == 0:
            raise ValueError("bad PCM payload header")
        bits = (src[1] & 3) * 8 + 8
        be = (src[1] >> 2) & 1
        flt = (src[1] >> 3) & 1
        channels = src[2]
        bsize = src[3] | (src[4] << 8)
        frames = pcm_ld64(src + 5)
        if flt and bits != 32:
            raise ValueError("bad PCM payload format")
        if bsize == 0 or bsize > MAXBLOCK:
            raise ValueError("bad PCM block size")
        align = channels * (bits // 8)
        if frames != <uint64_t>(plain_len // align) or plain_len % align:
            raise ValueError("PCM payload length mismatch")
        if frames == 0:
            if view.len != HDR:
                raise ValueError("trailing bytes in PCM payload")
            return True if ref != NULL else b""
        if ref != NULL:
            out = None
            dst = <uint8_t*>malloc(<size_t>min(GROUP * <uint64_t>bsize, frames) * align)
            if dst == NULL:
                raise MemoryError()
        else:
            out = PyBytes_FromStringAndSize(NULL, plain_len)
            dst = <uint8_t*>PyBytes_AS_STRING(out)
        body = view.len - HDR
        if bsize > <int>frames:
            bsize = <int>frames
        # GROUP subframes of a block's length (one block's channels, or a group's)
        chbuf = <int64_t*>malloc(sizeof(int64_t) * bsize * max(2, GROUP))
        if chbuf == NULL:
            raise MemoryError()
        # in place while PAD bytes short of the end, a padded copy for the last TAIL bytes
        # (all of a payload of less than TAIL + PAD bytes); see decode_all
        d.body = src + HDR
        d.blen = <size_t>body
        d.tail = NULL
        d.v2 = src[0] >= 2
        d.base = 0
        d.pos = 0
        d.buf = d.body
        d.nbits = <uint64_t>(body - PAD) * 8 if body > TAIL + PAD else 0
        d.switch_at = <uint64_t>(body - TAIL) * 8 if body > TAIL + PAD else 0
        with nogil:  # the padded copy too: two decoding threads must not queue on it
            rc = decode_all(&d, dst, frames, bits, channels, be, flt, bsize, chbuf, ref)
        buf = d.tail
        if rc == -4:
            raise MemoryError()
        if rc == -3:
            return False
        if rc != 0 or d.pos > d.nbits:
            raise ValueError("corrupt PCM payload")
        if (d.base + d.pos + 7) // 8 != <uint64_t>body:
            raise ValueError("trailing bytes in PCM payload")
        return True if ref != NULL else out
    finally:
        PyBuffer_Release(&view)
        free(buf)
        free(chbuf)
        if ref != NULL:
            free(dst)
