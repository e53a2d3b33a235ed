"""Content-defined chunking: parameters, the gear table, a streaming splitter and its oracle.

The scan loop lives in `_ext/_chunker.pyx` (GIL released). This module owns buffering so that cut
points never depend on read sizes, and keeps `reference_cuts`, a plain-Python copy of the loop
that the fast one must match bit for bit. Changing the table or the loop changes every chunk id
in every store: golden vectors in tests/test_chunking.py freeze them.
"""
from __future__ import annotations

import array
import functools
import threading
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ._bulk import copy_into, empty
from .errors import FormatError

MASK64 = (1 << 64) - 1


def _gear_table() -> array.array:
    """256 pseudo-random 64-bit values from splitmix64 seeded with 0x61726368 ("arch")."""
    out = array.array("Q")
    state = 0x61726368
    for _ in range(256):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


GEAR = _gear_table()


# The chunker algorithms a store may name in its config (docs/FORMAT.md section 8). v2 is v1
# except inside 24-bit PCM data, where only the middle byte of each sample is hashed: a third of
# the scan, the same cuts in expectation (threshold x3), still content-defined on the audio.
V1 = "fastcdc-gear-v1"
V2 = "fastcdc-gear-v2"
ALGORITHMS = (V1, V2)


@dataclass(frozen=True)
class ChunkParams:
    """Chunk size bounds in bytes; `avg` must be a power of two. Recorded in the store config
    with the algorithm (new stores: v2; a store keeps the one it was created with).

    Defaults (256 KiB / 1 MiB / 4 MiB): audio dedups by whole takes and punch-ins, so small
    chunks buy little and cost index entries (20 TB at 1 MiB is 20 M entries).
    """

    min: int = 256 * 1024
    avg: int = 1024 * 1024
    max: int = 4 * 1024 * 1024
    algorithm: str = V2

    def __post_init__(self) -> None:
        if not (0 < self.min <= self.avg <= self.max) or self.avg & (self.avg - 1):
            raise FormatError(f"invalid chunk sizes min={self.min} avg={self.avg} max={self.max}")
        if self.max >= 1 << 32:
            raise FormatError("max chunk size must be below 4 GiB")
        if self.algorithm not in ALGORITHMS:
            raise FormatError(f"unknown chunker {self.algorithm!r} (made by a newer archivestore?)")

    @property
    def thresholds(self) -> tuple[int, int]:
        """Normalized chunking (level 2): harder before `avg`, easier after it."""
        bits = self.avg.bit_length() - 1
        return 1 << (64 - (bits + 2)), 1 << (64 - max(1, bits - 2))

    @functools.lru_cache(maxsize=None)  # asked once per scan and per guess; params are few
    def scan_thresholds(self, stride: int = 1) -> tuple[int, int]:
        """`thresholds` per hashed byte when one byte in `stride` is hashed: as likely a cut
        per byte of input."""
        return tuple(min(t * stride, MASK64) for t in self.thresholds)

    def stride_for(self, audio_format: tuple | None) -> int:
        """Bytes per hashed byte inside PCM data of `audio_format` (bits, channels, big endian,
        float): 3 for 24-bit integer samples under v2 (the middle byte, in either byte order),
        else 1."""
        if self.algorithm == V2 and audio_format is not None:
            bits, _channels, _big_endian, is_float = audio_format
            if bits == 24 and not is_float:
                return 3
        return 1

    def to_dict(self) -> dict:
        return {"algorithm": self.algorithm, "min": self.min, "avg": self.avg, "max": self.max}

    @classmethod
    def from_dict(cls, d: dict) -> "ChunkParams":
        return cls(d["min"], d["avg"], d["max"], d.get("algorithm", V1))


def reference_cuts(data: bytes, params: ChunkParams, align: int = 1,
                   stride: int = 1) -> list[int]:
    """Chunk lengths of `data` by the plain-Python loop: the oracle for the Cython kernel."""
    th_small, th_large = params.scan_thresholds(stride)
    phase = stride // 2
    first = params.min + (phase - params.min) % stride  # the first hashed byte at or after min
    out = []
    pos = 0
    while pos < len(data):
        n = len(data) - pos
        if n <= params.min:
            c = n
        else:
            lim = min(n, params.max)
            normal = min(params.avg, lim)
            h = 0
            c = lim
            for i in range(first, lim, stride):
                h = ((h << 1) + GEAR[data[pos + i]]) & MASK64
                if h < (th_small if i < normal else th_large):
                    c = i + 1
                    break
        if c != n and align > 1 and c > align:
            c -= c % align
        out.append(c)
        pos += c
    return out


def find_cuts(buf, start: int, end: int, eof: bool, params: ChunkParams, align: int = 1,
              stride: int = 1):
    """Fast kernel call: chunk lengths in buf[start:end] and where scanning stopped."""
    from . import _chunker
    th_small, th_large = params.scan_thresholds(stride)
    return _chunker.find_cuts(buf, start, end, eof, params.min, params.avg, params.max,
                              th_small, th_large, GEAR, align, stride)


class _BufferPool:
    """Reuses read buffers once no chunk view into them is alive.

    A fresh `bytearray(cap)` per refill cost ~20% of a re-ingest (memset and page faults). A
    bytearray that still has exported views refuses to resize, which tells us it is in use.
    """

    def __init__(self, keep: int = 16) -> None:
        self._free: list[bytearray] = []
        self._lock = threading.Lock()
        self._keep = keep

    def get(self, cap: int) -> memoryview:
        """A view of a free buffer of `cap` bytes (the view itself marks it in use)."""
        with self._lock:
            for i, b in enumerate(self._free):
                if len(b) == cap and _unexported(b):
                    del self._free[i]
                    break
            else:
                # not bytearray(cap): its zero-fill faulted in all 1,280 pages holding the GIL
                # (≈ 6 ms here); the reads that fill it fault them in without the GIL
                b = empty(cap)
            self._free.append(b)
            if len(self._free) > self._keep:
                self._free.pop(0)
            return memoryview(b)


def _unexported(b: bytearray) -> bool:
    try:
        b.append(0)
    except BufferError:
        return False
    b.pop()
    return True


_BUFFERS = _BufferPool()


READ_SIZE = 4 * 1024 * 1024  # bytes a refill reads (the default `bufsize`)


def buffer_size(params: ChunkParams, bufsize: int = READ_SIZE, align: int = 1) -> int:
    """The read buffers' size: a refill keeps the unscanned tail (< max, mostly < avg) and
    reads into the rest; a scan or a guess needs at most max + align bytes past the position.
    One size for files of every format (align < avg in any real store), so that the pool can
    share its buffers (a size per format kept buffers per format: +35 MB of a first ingest's
    peak RSS). 5 MiB by default; bufsize + max (8 MiB) cost 13-17 MB more peak RSS, for fewer
    refills (165 against 258 per first ingest, tails of 58 against 125 MB copied)."""
    return max(bufsize, params.max) + max(params.avg, align)


def read_buffer(params: ChunkParams) -> memoryview:
    """A free read buffer from the pool that the chunkers use (in use while a view of it
    lives): memory already faulted in, where a fresh buffer costs ≈ 1 ms per MiB here."""
    return _BUFFERS.get(buffer_size(params))


def iter_chunks(f: BinaryIO, params: ChunkParams, length: int | None = None, align: int = 1,
                bufsize: int = READ_SIZE, stride: int = 1) -> Iterator[memoryview]:
    """Yield the chunks of the next `length` bytes of `f` (all of it when None), streaming.

    Chunks are read-only views into a fresh buffer per refill (no per-chunk copy), so a consumer
    may hold them while later chunks are read; memory is bounded by what the consumer keeps plus
    one buffer of `max(bufsize, params.max) + max(params.avg, align)` bytes.
    """
    chunks = GuidedChunks(f, params, length, align, bufsize, stride)
    while (got := chunks.next()) is not None:
        yield got[0]


def is_cut(buf, start: int, length: int, avail: int, eof: bool, params: ChunkParams,
           align: int = 1, stride: int = 1) -> bool:
    """Whether `find_cuts` would cut the chunk at `start` after exactly `length` bytes, given
    that those bytes are a chunk it once cut elsewhere (see `_chunker.is_cut`)."""
    from . import _chunker
    th_small, th_large = params.scan_thresholds(stride)
    return _chunker.is_cut(buf, start, length, avail, eof, params.min, params.avg, params.max,
                           th_small, th_large, GEAR, align, stride)


class GuidedChunks:
    """The chunks of the next `length` bytes of `f`, exactly as a plain scan cuts them, but
    able to take an expected cut without scanning for it.

    A re-delivered file is mostly the chunks of its previous version. `next(expect)` returns
    the next `expect` bytes as one chunk when a content-defined scan of them, if they are that
    previous chunk, would cut there (`is_cut`: the last 64 + align bytes decide); the caller
    hashes it, and if the id is not the one it expected, calls `reject()` and the same bytes are
    scanned as usual. Without an expectation it is a plain scan (`iter_chunks`). Chunks are
    read-only views that stay valid while the caller holds them.
    """

    def __init__(self, f: BinaryIO, params: ChunkParams, length: int | None = None,
                 align: int = 1, bufsize: int = READ_SIZE, stride: int = 1) -> None:
        self._f = f
        self._params = params
        self._remaining = length
        self._align = align
        self._stride = stride
        self._cap = buffer_size(params, bufsize, align)
        self._view: memoryview | None = None
        self._ro: memoryview | None = None
        self._have = self._pos = 0
        self._eof = False
        self._cuts: list[int] = []   # scanned cut lengths from _pos on, in reverse
        self._last = 0               # start of the chunk returned last

    def _fill(self, need: int) -> None:
        """Keep at least `need` bytes ahead of the position (or all that is left)."""
        if self._eof or (self._view is not None and self._have - self._pos >= need):
            return
        view = _BUFFERS.get(self._cap)
        have = 0
        if self._view is not None:
            have = self._have - self._pos
            copy_into(view, 0, self._view[self._pos:self._have])  # without the GIL
        f, remaining, cap = self._f, self._remaining, self._cap
        while not self._eof and have < cap:
            want = cap - have if remaining is None else min(cap - have, remaining)
            n = f.readinto(view[have:have + want]) if want else 0
            if n:
                have += n
                if remaining is not None:
                    remaining -= n
            if not n or remaining == 0:
                self._eof = True
        self._remaining = remaining
        self._view, self._ro = view, view.toreadonly()
        self._have, self._pos = have, 0
        self._cuts = []

    def _left(self) -> int | None:
        """Bytes from the position to the end of the data, when known."""
        if self._eof:
            return self._have - self._pos
        if self._remaining is None:
            return None
        return self._have - self._pos + self._remaining

    def _guess(self, expect: int) -> tuple[memoryview, bool] | None:
        # With the length of what is left known, a guess needs only its own bytes in the buffer
        # (is_cut reads up to expect + align - 1 of them): refills then copy a tail shorter than
        # one chunk, not the scan's `max` bytes.
        left = self._left()
        self._fill(self._params.max if left is None else min(expect + self._align, left))
        left = self._left()
        pos = self._pos
        if pos >= self._have:
            return None
        avail, eof = (self._have - pos, self._eof) if left is None else (left, True)
        if not is_cut(self._view, pos, expect, avail, eof, self._params, self._align,
                      self._stride):
            return None
        self._cuts = []
        self._last, self._pos = pos, pos + expect
        return self._ro[pos:pos + expect], True

    def next(self, expect: int = 0) -> tuple[memoryview, bool] | None:
        """(chunk, guessed) or None at the end; guessed means it is the `expect` bytes."""
        if expect and (got := self._guess(expect)) is not None:
            return got
        if not self._cuts:
            # cuts found earlier in this buffer stand: refilling only once they are used up
            # copies the bytes after the last cut, not up to `max` of them (find_cuts)
            self._fill(self._params.max)
        pos, have = self._pos, self._have
        if pos >= have:
            self._view = self._ro = None  # the buffer goes back to the pool with the last chunk
            return None
        if not self._cuts:
            lengths, _stop = find_cuts(self._view, pos, have, self._eof, self._params, self._align,
                                       self._stride)
            self._cuts = lengths[::-1]
        c = self._cuts.pop()
        self._last, self._pos = pos, pos + c
        return self._ro[pos:pos + c], False

    def reject(self) -> None:
        """The chunk just returned was not the expected one: scan from its start instead."""
        self._pos = self._last
        self._cuts = []
