"""Chunker: the Cython kernel against its pure-Python oracle, frozen boundaries, streaming."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from hypothesis import given, strategies as st

from archivestore.chunking import GEAR, ChunkParams, find_cuts, iter_chunks, reference_cuts
from archivestore.errors import FormatError

SMALL = ChunkParams(64, 256, 1024)


def rand(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_golden_vectors():
    """Frozen: changing these changes every chunk id in every existing store."""
    assert hashlib.sha256(bytes(GEAR)).hexdigest() == \
        "4a9bc0ce0ace8d05bbf276323374d2c90c7cdf42487bcb861a028d5bf9b209a4"
    d = np.random.default_rng(12345).integers(0, 256, 300000, dtype=np.uint8).tobytes()
    cuts = reference_cuts(d, ChunkParams(256, 1024, 4096))
    assert cuts[:12] == [1284, 1161, 1591, 1088, 1106, 1176, 1131, 1274, 1184, 1298, 1134, 1337]
    assert len(cuts) == 256
    rng = np.random.default_rng(12345)
    rng.integers(0, 256, 300000, dtype=np.uint8)
    d2 = rng.integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    assert find_cuts(d2, 0, len(d2), True, ChunkParams())[0] == [1145329, 1057851, 942548]


@given(st.binary(max_size=6000), st.sampled_from([1, 2, 3, 4, 6, 8, 24]))
def test_kernel_matches_reference(data, align):
    lengths, stop = find_cuts(data, 0, len(data), True, SMALL, align)
    assert lengths == reference_cuts(data, SMALL, align)
    assert stop == len(data)


@given(st.binary(max_size=8000), st.sampled_from([1, 3, 6]))
def test_reassembly_and_bounds(data, align):
    lengths = reference_cuts(data, SMALL, align)
    assert sum(lengths) == len(data)
    for i, c in enumerate(lengths):
        assert c <= SMALL.max
        if i < len(lengths) - 1:
            assert c >= SMALL.min - align + 1 and c > 0
            if align > 1:
                assert c % align == 0


@given(st.integers(1, 5000), st.integers(0, 2**32 - 1), st.sampled_from([1, 6]))
def test_streaming_invariance(bufsize, seed, align):
    """Cut points do not depend on how the input was split into reads."""
    data = rand(20000, seed)
    expect = find_cuts(data, 0, len(data), True, SMALL, align)[0]
    chunks = list(iter_chunks(io.BytesIO(data), SMALL, align=align, bufsize=bufsize))
    assert [len(c) for c in chunks] == expect
    assert b"".join(chunks) == data


def test_length_limited_segments():
    data = rand(50000, 3)
    f = io.BytesIO(data)
    a = list(iter_chunks(f, SMALL, length=10000))
    b = list(iter_chunks(f, SMALL, length=None))
    assert sum(map(len, a)) == 10000 and b"".join(a + b) == data


def test_edit_locality():
    """Changing bytes in the middle of a 50 MiB input changes only the chunks around the edit."""
    params = ChunkParams(64 * 1024, 256 * 1024, 1024 * 1024)
    data = bytearray(rand(50 << 20, 7))
    before = find_cuts(data, 0, len(data), True, params)[0]
    mid = len(data) // 2
    data[mid:mid + 100] = rand(100, 8)
    after = find_cuts(data, 0, len(data), True, params)[0]

    def ids(lengths, buf):
        out, pos = [], 0
        for c in lengths:
            out.append(hashlib.sha256(buf[pos:pos + c]).digest())
            pos += c
        return out
    orig = bytearray(rand(50 << 20, 7))
    a, b = ids(before, orig), ids(after, data)
    changed = len(set(b) - set(a))
    assert 1 <= changed <= 3, changed
    assert len(set(a) & set(b)) >= len(a) - 3


def test_frame_shift_still_dedups():
    """Audio shifted by whole frames keeps its chunks (cut points align to frames)."""
    frame = 6
    audio = rand(600000, 11)
    audio = audio[:len(audio) // frame * frame]
    a = find_cuts(audio, 0, len(audio), True, SMALL, frame)[0]
    shifted = rand(frame * 40, 12) + audio
    b = find_cuts(shifted, 0, len(shifted), True, SMALL, frame)[0]

    def pieces(lengths, buf):
        out, pos = set(), 0
        for c in lengths:
            out.add(bytes(buf[pos:pos + c]))
            pos += c
        return out
    common = pieces(a, audio) & pieces(b, shifted)
    assert len(common) >= len(a) - 3


def test_invalid_params():
    with pytest.raises(FormatError):
        ChunkParams(100, 300, 1000)  # avg not a power of two
    with pytest.raises(FormatError):
        ChunkParams(2048, 1024, 4096)


def test_kernel_rejects_bad_ranges():
    with pytest.raises(ValueError):
        find_cuts(b"abc", 0, 10, True, SMALL)
