"""Blob codecs: how plain bytes become stored bytes and back. The codec byte in each blob header
names one of these (docs/FORMAT.md section 7); every decode is length-checked here and
hash-checked by the caller."""
from __future__ import annotations

import threading

import zstandard

from .errors import FormatError

RAW = 0
ZSTD = 1
PCM = 2
NAMES = {RAW: "raw", ZSTD: "zstd", PCM: "pcm"}

# zstd level 3 on session/notes/cache files; level 1 costs the same on PCM but level 3 gives
# visibly better ratios on the binary session files while staying > 300 MB/s per core.
ZSTD_LEVEL = 3
# Probe size and threshold for "incompressible": if zstd -1 cannot save 3% on the first 64 KiB,
# the chunk is stored raw (PCM audio without the audio codec, already-compressed media).
PROBE_BYTES = 64 * 1024
PROBE_MAX_RATIO = 0.97
OUT_STEP = 1 << 20

_tls_state = threading.local()


def _cctx(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_tls_state, "c", None)
    if cache is None:
        cache = _tls_state.c = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return c


def _zstd(level: int, data) -> bytes:
    """Compress with zstd. With python-zstandard 0.25 the one-shot `compress` runs without the
    GIL (two threads: 1.6x one) into one output buffer. The stream writer used before (the
    one-shot of the version measured then held the GIL) appended its output to a BytesIO piece
    by piece with the GIL held: 0.6-2 ms holds per chunk, and 192 against 257 MB/s a core."""
    return _cctx(level).compress(data)


def _dctx() -> zstandard.ZstdDecompressor:
    d = getattr(_tls_state, "d", None)
    if d is None:
        d = _tls_state.d = zstandard.ZstdDecompressor()
    return d


def encode(plain, audio_format: tuple | None = None,
           reuse: bool = False) -> tuple[int, bytes | memoryview]:
    """Choose a codec for `plain` and return (codec byte, stored bytes).

    `audio_format` = (bits, channels, big_endian, is_float) when the chunk holds whole PCM frames.
    With `reuse`, audio is encoded into this thread's output buffer and the stored bytes are a
    memoryview of it, valid until the thread's next `encode(..., reuse=True)`: for a caller that
    copies them out at once (ingest, into a pack). A fresh block per chunk was fresh memory for
    the kernel to fault in and zero: a third of a first ingest's page faults, 1-2% of its CPU.
    """
    if audio_format is not None:
        stored = _encode_pcm(plain, audio_format, reuse)
        if stored is not None and len(stored) < len(plain):
            return PCM, stored
    n = len(plain)
    if n == 0:
        return RAW, b""
    if n > 2 * PROBE_BYTES:
        probe = _zstd(1, plain[:PROBE_BYTES])
        if len(probe) > PROBE_MAX_RATIO * PROBE_BYTES:
            return RAW, bytes(plain)
    stored = _zstd(ZSTD_LEVEL, plain)
    if len(stored) >= n:
        return RAW, bytes(plain)
    return ZSTD, stored


def _encode_pcm(plain, audio_format: tuple, reuse: bool = False) -> bytes | memoryview | None:
    try:
        from . import _pcm
    except ImportError:  # the audio codec is optional until it is built
        return None
    bits, channels, big_endian, is_float = audio_format
    out = _out_buffer(_pcm.encode_bound(len(plain))) if reuse else None
    return _pcm.encode(plain, bits, channels, big_endian, is_float, out=out)


def _out_buffer(n: int) -> bytearray:
    """This thread's encoder output buffer, at least `n` bytes (grown in whole MiB)."""
    buf = getattr(_tls_state, "out", None)
    if buf is None or len(buf) < n:
        from ._bulk import empty
        buf = _tls_state.out = empty(-(-n // OUT_STEP) * OUT_STEP)
    return buf


def verify(codec: int, stored, plain) -> bool:
    """True when `stored` decodes under `codec` to exactly the bytes of `plain` (every byte is
    compared); False when it decodes to anything else or is malformed. For PCM this decodes
    block by block into a small buffer and compares, without building the decoded bytes."""
    if codec == PCM:
        try:
            from . import _pcm
        except ImportError:
            return False
        return _pcm.verify(stored, plain)
    try:
        return decode(codec, stored, len(plain)) == plain
    except FormatError:
        return False


def decode(codec: int, stored, plain_len: int) -> bytes:
    """Decode stored bytes; raises FormatError on an unknown codec or a malformed payload."""
    if codec == RAW:
        if len(stored) != plain_len:
            raise FormatError("raw blob length mismatch")
        return bytes(stored)
    if codec == ZSTD:
        try:
            out = _dctx().decompress(stored, max_output_size=plain_len)
        except zstandard.ZstdError as e:
            raise FormatError(f"zstd: {e}") from None
    elif codec == PCM:
        try:
            from . import _pcm
            out = _pcm.decode(stored, plain_len)
        except ImportError:
            raise FormatError("PCM codec not available in this build") from None
        except ValueError as e:
            raise FormatError(f"pcm: {e}") from None
    else:
        raise FormatError(f"unknown codec byte {codec}")
    if len(out) != plain_len:
        raise FormatError("decoded length mismatch")
    return out
