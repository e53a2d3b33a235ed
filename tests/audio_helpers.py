"""Small, dependency-free writers for test audio files (WAV/BWF/RF64 and AIFF/AIFF-C).

`samples` is a numpy array of shape (frames,) or (frames, channels). Integer samples are
signed values in the range of `bits` (for 8-bit WAV they are offset to unsigned on write);
float samples are written as 32-bit IEEE floats.
"""
from __future__ import annotations

import struct

import numpy as np

_GUID_SUFFIX = bytes.fromhex("000000001000800000aa00389b71")


def _as_2d(samples: np.ndarray) -> np.ndarray:
    a = np.asarray(samples)
    return a.reshape(-1, 1) if a.ndim == 1 else a


def pcm_bytes(samples: np.ndarray, bits: int, float: bool = False, big_endian: bool = False,
              unsigned8: bool = True) -> bytes:
    """Interleaved PCM bytes for `samples` (see module doc)."""
    a = _as_2d(samples)
    if float:
        return a.astype(">f4" if big_endian else "<f4").tobytes()
    v = a.astype(np.int64)
    if bits == 8:
        return ((v + 128) if unsigned8 else v).astype(np.uint8 if unsigned8 else np.int8).tobytes()
    if bits == 24:
        u = (v & 0xFFFFFF).astype("<u4").reshape(-1)
        b = u.view(np.uint8).reshape(-1, 4)[:, :3]
        if big_endian:
            b = b[:, ::-1]
        return np.ascontiguousarray(b).tobytes()
    dt = {16: "i2", 32: "i4"}[bits]
    return v.astype((">" if big_endian else "<") + dt).tobytes()


def _chunk(cid: bytes, body: bytes, big: bool = False) -> bytes:
    out = cid + struct.pack(">I" if big else "<I", len(body)) + body
    return out + (b"\0" if len(body) & 1 else b"")


def bext_chunk(description: str = "", originator: str = "", time_reference: int = 0) -> bytes:
    body = (description.encode().ljust(256, b"\0")[:256] + originator.encode().ljust(32, b"\0")[:32]
            + b"\0" * 32 + b"2024-01-01" + b"12:00:00"
            + struct.pack("<II", time_reference & 0xFFFFFFFF, time_reference >> 32)
            + struct.pack("<H", 2) + b"\0" * 64 + b"\0" * 10 + b"\0" * 180)
    return _chunk(b"bext", body)


def write_wav(path, samples: np.ndarray, rate: int, bits: int, float: bool = False,
              bext: dict | None = None, rf64: bool = False, extensible: bool = False,
              extra_chunks: list[tuple[bytes, bytes]] = (), trailing_chunks=()) -> bytes:
    """Write a WAV (BWF if `bext` = dict(description=, originator=, time_reference=); RF64 with
    a ds64 chunk if `rf64`). Returns the file bytes."""
    a = _as_2d(samples)
    ch = a.shape[1]
    if float:
        bits = 32
    data = pcm_bytes(a, bits, float=float)
    align = ch * bits // 8
    tag = 3 if float else 1
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, ch, rate, rate * align, align, bits)
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + _GUID_SUFFIX
    chunks = b""
    if rf64:
        chunks += _chunk(b"ds64", struct.pack("<QQQI", 0, len(data), len(data) // align, 0))
    chunks += _chunk(b"fmt ", fmt)
    if bext is not None:
        chunks += bext_chunk(**bext)
    for cid, body in extra_chunks:
        chunks += _chunk(cid, body)
    if rf64:
        chunks += b"data" + struct.pack("<I", 0xFFFFFFFF) + data + (b"\0" if len(data) & 1 else b"")
    else:
        chunks += _chunk(b"data", data)
    for cid, body in trailing_chunks:
        chunks += _chunk(cid, body)
    if rf64:
        riff_size = 4 + len(chunks)
        # patch the ds64 riff size
        chunks = chunks[:8] + struct.pack("<Q", riff_size) + chunks[16:]
        out = b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + chunks
    else:
        out = b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
    with open(path, "wb") as f:
        f.write(out)
    return out


def _extended(rate: int) -> bytes:
    """A positive integer as an 80-bit IEEE extended (big-endian)."""
    if rate == 0:
        return b"\0" * 10
    e = rate.bit_length() - 1
    mant = rate << (63 - e)
    return struct.pack(">HQ", 16383 + e, mant)


def write_aiff(path, samples: np.ndarray, rate: int, bits: int, aifc: str | None = None,
               extra_chunks: list[tuple[bytes, bytes]] = ()) -> bytes:
    """Write AIFF (aifc=None) or AIFF-C with compression 'NONE', 'sowt' or 'fl32'."""
    a = _as_2d(samples)
    ch = a.shape[1]
    is_float = aifc == "fl32"
    if is_float:
        bits = 32
    data = pcm_bytes(a, bits, float=is_float, big_endian=aifc != "sowt", unsigned8=False)
    comm = struct.pack(">hIh", ch, a.shape[0], bits) + _extended(rate)
    if aifc is not None:
        name = b"\x0enot compressed"
        comm += aifc.encode() + name + (b"\0" if len(name) & 1 else b"")
    chunks = b""
    if aifc is not None:
        chunks += _chunk(b"FVER", struct.pack(">I", 0xA2805140), big=True)
    chunks += _chunk(b"COMM", comm, big=True)
    for cid, body in extra_chunks:
        chunks += _chunk(cid, body, big=True)
    chunks += _chunk(b"SSND", struct.pack(">II", 0, 0) + data, big=True)
    out = b"FORM" + struct.pack(">I", 4 + len(chunks)) + (b"AIFC" if aifc else b"AIFF") + chunks
    with open(path, "wb") as f:
        f.write(out)
    return out
