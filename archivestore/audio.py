"""Strict, bounded header parser for PCM audio files: WAV/BWF/RF64/BW64 and AIFF/AIFF-C.

`probe(f, size)` reads only the header region of a file (it seeks past sample data), never
allocates from a size field, reads at most `MAX_HEADER_READ` bytes and walks at most
`MAX_CHUNKS` chunks. Anything that is not a supported, well-formed PCM file gives None; bad input
never raises. (An OSError from the file object itself is not "bad input" and propagates.)

Once the format and sample-data chunks have been found, anything unparseable after them (an
appended ID3 tag, a truncated trailing chunk, more than MAX_CHUNKS chunks) ends the walk instead
of rejecting the file; before that point the parser is strict.

Policy for a sample-data chunk whose declared size runs past the end of the file (a recording
cut short, or a writer that never patched the size): the data region is clamped to what the file
holds, rounded down to whole frames. The same applies to WAV files whose data size is
0xFFFFFFFF without RF64. Trailing partial frames are never part of `data_length`.

8-bit samples: WAV stores them unsigned, AIFF signed. `pcm_format` encodes this for the codec
by convention: 8-bit with big_endian=False means unsigned (WAV), big_endian=True means signed
(AIFF, including AIFF-C 'sowt', whose byte order is meaningless for 8-bit samples).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

MAX_CHUNKS = 1000
MAX_HEADER_READ = 1 << 20  # bytes of header data read in total
MAX_CHANNELS = 256
MAX_RATE = 10_000_000

_KSDATAFORMAT_SUFFIX = bytes.fromhex("000000001000800000aa00389b71")  # GUID bytes 2..15
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True)
class AudioInfo:
    """The format and sample-data region of a PCM audio file, from its header."""

    container: str  # "wav", "bwf", "rf64", "bw64", "aiff", "aifc"
    sample_rate: int
    bits: int  # container bits per sample: 8/16/24/32
    channels: int
    frames: int
    data_offset: int  # byte offset of the first PCM sample in the file
    data_length: int  # bytes of PCM data, whole frames only (== frames * block_align)
    block_align: int  # bytes per frame
    big_endian: bool
    is_float: bool
    description: str | None = None  # BWF bext
    originator: str | None = None
    time_reference: int | None = None  # bext: samples since midnight

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def pcm_format(self) -> tuple[int, int, bool, bool]:
        """(bits, channels, big_endian, is_float): the arguments `_pcm.encode` needs."""
        return (self.bits, self.channels, self.big_endian, self.is_float)

    def to_manifest(self) -> dict:
        out = {
            "container": self.container,
            "sample_rate": self.sample_rate,
            "bits": self.bits,
            "channels": self.channels,
            "frames": self.frames,
            "duration": self.duration,
            "float": self.is_float,
        }
        if self.description is not None:
            out["description"] = self.description
        if self.originator is not None:
            out["originator"] = self.originator
        if self.time_reference is not None:
            out["time_reference"] = self.time_reference
        return out


class _Bad(Exception):
    """Internal: the input is not a supported, well-formed file."""


class _Reader:
    """Bounded reads from an open file: every byte read counts against MAX_HEADER_READ.

    Reads go through a window of READ_BLOCK bytes: a WAV's RIFF header, `fmt `, `bext` and
    `data` headers are one system call, not one seek and read each (a folder of fades)."""

    READ_BLOCK = 2048

    def __init__(self, f: BinaryIO, size: int):
        self.f = f
        self.size = size
        self.budget = MAX_HEADER_READ
        self._win = b""
        self._win_pos = 0

    def read_at(self, pos: int, n: int) -> bytes:
        if n < 0 or pos < 0 or pos + n > self.size:
            raise _Bad("read past end")
        if n > self.budget:
            raise _Bad("header read budget exhausted")
        self.budget -= n
        off = pos - self._win_pos
        if off < 0 or off + n > len(self._win):
            self.f.seek(pos)
            self._win = self.f.read(max(n, min(self.READ_BLOCK, self.size - pos)))
            self._win_pos, off = pos, 0
        b = self._win[off:off + n]
        if len(b) != n:
            raise _Bad("short read")
        return b


def _is_chunk_id(cid: bytes) -> bool:
    """Four printable ASCII characters."""
    return all(0x20 <= c < 0x7F for c in cid)


def _cstr(b: bytes) -> str:
    """A fixed-size, NUL-padded text field."""
    return b.split(b"\0", 1)[0].decode("utf-8", errors="replace").rstrip()


def probe(f: BinaryIO, size: int) -> AudioInfo | None:
    """Parse the header of an open file of `size` bytes; None if not a supported PCM file."""
    try:
        if not isinstance(size, int) or size < 12:
            return None
        r = _Reader(f, size)
        head = r.read_at(0, 12)
        magic, form = head[:4], head[8:12]
        if magic in (b"RIFF", b"RF64", b"BW64") and form == b"WAVE":
            return _probe_wav(r, magic)
        if magic == b"FORM" and form in (b"AIFF", b"AIFC"):
            return _probe_aiff(r, form == b"AIFC")
        return None
    except (_Bad, struct.error, ValueError, OverflowError, ZeroDivisionError):
        return None


def _frames_region(start: int, declared: int, size: int, block_align: int) -> tuple[int, int]:
    """Clamp a declared data region to the file and to whole frames: (length, frames)."""
    if start > size:
        raise _Bad("sample data starts past the end of the file")
    avail = max(0, size - start)
    length = min(declared, avail)
    frames = length // block_align
    return frames * block_align, frames


def _probe_wav(r: _Reader, magic: bytes) -> AudioInfo | None:
    size = r.size
    is64 = magic != b"RIFF"
    ds64_data: int | None = None
    fmt: tuple[int, int, int, int, bool] | None = None  # rate, bits, channels, align, float
    bext: tuple[str, str, int] | None = None
    data: tuple[int, int] | None = None  # offset, declared size
    pos = 12
    nchunks = 0
    while pos + 8 <= size:
        nchunks += 1
        if nchunks > MAX_CHUNKS:
            if fmt is not None and data is not None:
                break
            return None
        hdr = r.read_at(pos, 8)
        cid = hdr[:4]
        (csize,) = struct.unpack("<I", hdr[4:])
        if fmt is not None and data is not None and (csize > size or not _is_chunk_id(cid)):
            break  # trailing garbage after the audio (e.g. an appended ID3 tag): stop here
        body = pos + 8
        if cid == b"ds64":
            if not is64 or nchunks != 1 or csize < 28:
                return None
            riff64, data64, _count = struct.unpack("<QQQ", r.read_at(body, 24))
            ds64_data = data64
        elif cid == b"fmt ":
            if fmt is not None or csize < 16:
                return None
            fmt = _parse_fmt(r.read_at(body, min(csize, 40)))
            if fmt is None:
                return None
        elif cid == b"bext":
            if bext is None and csize >= 346:
                b = r.read_at(body, 346)
                lo, hi = struct.unpack("<II", b[338:346])
                bext = (_cstr(b[:256]), _cstr(b[256:288]), lo | (hi << 32))
        elif cid == b"data":
            if data is not None:
                return None
            if is64 and csize == 0xFFFFFFFF:
                if ds64_data is None:
                    return None
                csize = ds64_data
            data = (body, csize)
            if body + csize >= size:  # runs to (or past) EOF: nothing more to parse
                break
        if csize > size:  # a non-data chunk cannot be larger than the file
            return None
        pos = body + csize + (csize & 1)
    if fmt is None or data is None:
        return None
    rate, bits, channels, align, is_float = fmt
    length, frames = _frames_region(data[0], data[1], size, align)
    if bext is not None:
        container = "bw64" if magic == b"BW64" else "rf64" if magic == b"RF64" else "bwf"
    else:
        container = {b"RIFF": "wav", b"RF64": "rf64", b"BW64": "bw64"}[magic]
    return AudioInfo(
        container=container, sample_rate=rate, bits=bits, channels=channels, frames=frames,
        data_offset=data[0], data_length=length, block_align=align, big_endian=False,
        is_float=is_float,
        description=bext[0] if bext else None,
        originator=bext[1] if bext else None,
        time_reference=bext[2] if bext else None,
    )


def _parse_fmt(b: bytes) -> tuple[int, int, int, int, bool] | None:
    tag, channels, rate, _bps, align, bits = struct.unpack("<HHIIHH", b[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(b) < 40:
            return None
        cbsize, valid, _mask = struct.unpack("<HHI", b[16:24])
        guid = b[24:40]
        if cbsize < 22 or guid[2:] != _KSDATAFORMAT_SUFFIX or valid > bits:
            return None
        tag = struct.unpack("<H", guid[:2])[0]
    if tag == _WAVE_FORMAT_PCM:
        is_float = False
        bits = (bits + 7) // 8 * 8  # e.g. 20-bit samples in a 24-bit container
        if bits not in (8, 16, 24, 32):
            return None
    elif tag == _WAVE_FORMAT_IEEE_FLOAT:
        is_float = True
        if bits != 32:
            return None
    else:
        return None
    if not (1 <= channels <= MAX_CHANNELS) or not (1 <= rate <= MAX_RATE):
        return None
    if align != channels * (bits // 8):
        return None
    return rate, bits, channels, align, is_float


def _extended_to_int(b: bytes) -> int:
    """IEEE 754 80-bit extended (big-endian) to an integer sample rate; 0 if not usable."""
    se, mant = struct.unpack(">HQ", b)
    if se & 0x8000:
        return 0
    exp = (se & 0x7FFF) - 16383 - 63
    if exp >= 0:
        return 0 if exp > 40 else mant << exp
    if exp < -64:
        return 0
    return (mant + (1 << (-exp - 1))) >> -exp  # round to nearest


def _probe_aiff(r: _Reader, aifc: bool) -> AudioInfo | None:
    size = r.size
    comm: tuple[int, int, int, int, bool, bool] | None = None
    ssnd: tuple[int, int] | None = None  # offset of first sample, bytes available in chunk
    pos = 12
    nchunks = 0
    while pos + 8 <= size:
        nchunks += 1
        if nchunks > MAX_CHUNKS:
            if comm is not None and ssnd is not None:
                break
            return None
        hdr = r.read_at(pos, 8)
        cid = hdr[:4]
        (csize,) = struct.unpack(">I", hdr[4:])
        if comm is not None and ssnd is not None and (csize > size or not _is_chunk_id(cid)):
            break
        body = pos + 8
        if cid == b"COMM":
            if comm is not None:
                return None
            comm = _parse_comm(r, body, csize, aifc)
            if comm is None:
                return None
        elif cid == b"SSND":
            if ssnd is not None or csize < 8:
                return None
            offset, _blocksize = struct.unpack(">II", r.read_at(body, 8))
            if offset > csize - 8:
                return None
            ssnd = (body + 8 + offset, csize - 8 - offset)
            if body + csize >= size:
                break
        if csize > size:
            return None
        pos = body + csize + (csize & 1)
    if comm is None or ssnd is None:
        return None
    channels, nframes, bits, rate, big_endian, is_float = comm
    align = channels * (bits // 8)
    length, frames = _frames_region(ssnd[0], min(ssnd[1], nframes * align), size, align)
    return AudioInfo(
        container="aifc" if aifc else "aiff", sample_rate=rate, bits=bits, channels=channels,
        frames=frames, data_offset=ssnd[0], data_length=length, block_align=align,
        big_endian=big_endian, is_float=is_float,
    )


def _parse_comm(r: _Reader, body: int, csize: int, aifc: bool):
    if csize < (22 if aifc else 18):
        return None
    b = r.read_at(body, 22 if aifc else 18)
    channels, nframes, bits = struct.unpack(">hIh", b[:8])
    rate = _extended_to_int(b[8:18])
    big_endian, is_float = True, False
    if aifc:
        comp = b[18:22]
        if comp == b"NONE" or comp == b"twos":
            pass
        elif comp == b"sowt":
            big_endian = bits == 8  # 8-bit: signed, byte order irrelevant (see module doc)
        elif comp in (b"fl32", b"FL32"):
            is_float = True
            bits = 32
        else:
            return None
    if is_float:
        if bits != 32:
            return None
    else:
        bits = (bits + 7) // 8 * 8 if bits > 0 else 0
        if bits not in (8, 16, 24, 32):
            return None
    if not (1 <= channels <= MAX_CHANNELS) or not (1 <= rate <= MAX_RATE):
        return None
    return channels, nframes, bits, rate, big_endian, is_float
