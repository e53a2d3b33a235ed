"""Chunker: the Cython kernel against its pure-Python oracle, frozen boundaries, streaming."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from archivestore import hashing
from archivestore.chunking import (GEAR, ChunkParams, GuidedChunks, find_cuts, is_cut,
                                   iter_chunks, reference_cuts)
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


@given(st.integers(0, 2**32 - 1), st.integers(0, 6000), st.sampled_from([1, 2, 3, 6, 24]))
def test_cuts_short_of_the_end_are_final(seed, end, align):
    """Without EOF, every chunk find_cuts emits from part of the data (those whose cut it found
    before `end`, not only those with `max` bytes after their start) is the one it emits from
    all of it."""
    data = rand(6000, seed)
    part, stop = find_cuts(data, 0, end, False, SMALL, align)
    assert stop == sum(part) <= end
    # whether the data goes on (then a cut at end - 1 is rounded to the frame) or ends at `end`
    for whole in (data, data[:end]):
        assert part == find_cuts(whole, 0, len(whole), True, SMALL, align)[0][:len(part)]


def test_hit_on_the_last_byte_waits_for_more():
    """A cut found on the last byte in hand is not emitted: rounded to the frame if the data
    goes on, not rounded if it ends there."""
    for seed in range(100):
        data = rand(4000, seed)
        first = find_cuts(data, 0, len(data), True, SMALL)[0][0]
        if first < SMALL.max and first % 3:
            break
    assert find_cuts(data, 0, first, False, SMALL, 3) == ([], 0)
    assert find_cuts(data, 0, first, True, SMALL, 3)[0] == [first]
    assert find_cuts(data, 0, first + 1, False, SMALL, 3)[0] == [first - first % 3]


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


# The kernel scans in rounds of four adjacent segments (64 KiB rounds, then 256-byte ones, then
# byte by byte): these parameters put segment, round and tier boundaries at known offsets.
TINY = ChunkParams(40, 512, 2048)        # [40, 296) one small round, serial to 512; 6 rounds
MID = ChunkParams(1000, 131072, 524288)  # [1000, 66536) one big round, 252 small, 24 serial
KW = 16384


def _background(params: ChunkParams, stride: int = 1) -> bytes:
    """A constant fill in which no cut is found before max (so planted cuts are the first)."""
    for v in range(256):
        fill = bytes([v]) * (params.max + 100)
        if reference_cuts(fill, params, 1, stride)[0] == params.max:
            return fill
    raise AssertionError("no quiet fill byte")


def _plant(buf: bytearray, params: ChunkParams, t: int, stride: int = 1) -> None:
    """Rewrite the hashed bytes t - 2*stride, t - stride and t so that the hash at t is below
    its threshold (the hash before them is kept). With stride 3, t = 1 mod 3."""
    th_small, th_large = params.scan_thresholds(stride)
    th = th_small if t < params.avg else th_large
    h = 0
    first = params.min + (stride // 2 - params.min) % stride
    for i in range(max(first, t - 66 * stride), t - 2 * stride, stride):
        h = ((h << 1) + GEAR[buf[i]]) & ((1 << 64) - 1)
    g = np.frombuffer(bytes(GEAR), dtype=np.uint64)
    base = np.uint64((h << 3) & ((1 << 64) - 1))
    bc = (g[:, None] << np.uint64(1)) + g[None, :]
    for a in range(256):
        hit = np.flatnonzero(base + (g[a] << np.uint64(2)) + bc < np.uint64(th))
        if len(hit):
            b, c = divmod(int(hit[0]), 256)
            buf[t - 2 * stride], buf[t - stride], buf[t] = a, b, c
            return
    raise AssertionError("nothing to plant")


def _planted_case(params: ChunkParams, hits: list[int], align: int = 1) -> None:
    buf = bytearray(_background(params))
    for t in hits:
        _plant(buf, params, t)
    expect = reference_cuts(bytes(buf), params, align)
    if align == 1:
        assert expect[0] == min(hits) + 1
    assert find_cuts(buf, 0, len(buf), True, params, align)[0] == expect


@pytest.mark.parametrize("t", [40 + 2, 40 + 63, 40 + 64, 40 + 127, 40 + 128, 40 + 191, 40 + 192,
                               295, 296, 297, 511, 512, 513, 512 + 255, 512 + 256, 2047 - 256,
                               2047])
def test_cut_at_tiny_boundaries(t):
    _planted_case(TINY, [t])
    _planted_case(TINY, [t], align=6)


@pytest.mark.parametrize("t", [1002, 1000 + KW - 1, 1000 + KW, 1000 + 2 * KW - 1, 1000 + 2 * KW,
                               1000 + 3 * KW, 66535, 66536, 66536 + 63, 66536 + 64, 66536 + 256,
                               131072 - 24, 131071, 131072, 131072 + KW - 1, 131072 + KW,
                               131072 + 4 * KW - 1, 131072 + 4 * KW, 524287])
def test_cut_at_mid_boundaries(t):
    _planted_case(MID, [t])


@pytest.mark.parametrize("hits", [[1000 + 100, 1000 + KW + 5], [1000 + KW + 900, 1000 + 3 * KW + 7],
                                  [1000 + 3 * KW - 3, 1000 + 3 * KW + 2], [40 + 50, 40 + 64 + 3],
                                  [131072 + 2 * KW + 70, 131072 + 3 * KW + 1]])
def test_earlier_segment_hits_after_later_one(hits):
    """A later segment hits first in scan order, yet the cut is the earlier segment's later hit."""
    params = TINY if max(hits) < 2048 else MID
    _planted_case(params, hits)


@given(st.binary(max_size=12000), st.sampled_from([SMALL, TINY, ChunkParams(1, 128, 4096)]),
       st.sampled_from([1, 3, 4, 6, 24]), st.sampled_from([1, 3]))
def test_kernel_matches_reference_small_rounds(data, params, align, stride):
    """stride 3: fastcdc-gear-v2's scan of 24-bit PCM (the middle byte of each sample)."""
    lengths, stop = find_cuts(data, 0, len(data), True, params, align, stride)
    assert lengths == reference_cuts(data, params, align, stride)
    assert stop == len(data)


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("seed", [1, 2])
def test_kernel_matches_reference_big_rounds(seed, stride):
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes(), bytes(600000),
             bytes(rng.integers(0, 4, 300000, dtype=np.uint8)), b"take" * 100000,
             rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()]
    data = b"".join(parts)
    for align in ((1, 6) if stride == 1 else (3, 6)):
        assert find_cuts(data, 0, len(data), True, MID, align, stride)[0] == \
            reference_cuts(data, MID, align, stride)


# -- guided chunking: a previous version's cuts taken without a scan, the same cuts as a scan ---

def _offsets(lengths: list[int]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for c in lengths:
        out.append((pos, c))
        pos += c
    return out


@given(st.binary(min_size=1, max_size=12000), st.sampled_from([1, 2, 3, 6]),
       st.sampled_from([SMALL, ChunkParams(1, 128, 4096), ChunkParams(100, 512, 700)]))
def test_is_cut_agrees_with_the_scan(data, align, params):
    """Every cut the scan makes passes is_cut; every shorter length (where the caller's promise
    of no earlier hit still holds) fails it."""
    lengths = find_cuts(data, 0, len(data), True, params, align)[0]
    for pos, c in _offsets(lengths):
        assert is_cut(data, pos, c, len(data) - pos, True, params, align)
        for shorter in {1, c // 2, c - 1, c - align} - {0, c}:
            if 0 < shorter < c:
                assert not is_cut(data, pos, shorter, len(data) - pos, True, params, align)


def test_is_cut_needs_max_bytes_or_eof():
    data = rand(5000, 3)
    c = find_cuts(data, 0, len(data), True, SMALL)[0][0]
    assert is_cut(data, 0, c, len(data), False, SMALL)
    assert not is_cut(data, 0, len(data) + 1, len(data), True, SMALL)
    # only the chunk and the align - 1 bytes after it must be in the buffer, whatever `avail` says
    assert is_cut(data[:c], 0, c, len(data), True, SMALL)
    with pytest.raises(ValueError):
        is_cut(data[:c - 1], 0, c, len(data), True, SMALL)
    with pytest.raises(ValueError):
        is_cut(data[:c + 1], 0, c, len(data), True, SMALL, 3)


def _guided(data: bytes, previous: bytes, params: ChunkParams, align: int, bufsize: int,
            known_length: bool = False, stride: int = 1):
    """Chunk `data` guided by `previous`'s chunks, as ingest does: (lengths, guesses taken).
    With `known_length` it is a segment of a longer file, its length given (as for audio)."""
    prev = [bytes(c) for c in iter_chunks(io.BytesIO(previous), params, align=align,
                                          stride=stride)]
    ids = [hashing.chunk_id(c) for c in prev]
    where = {cid: i for i, cid in enumerate(ids)}
    if known_length:
        g = GuidedChunks(io.BytesIO(data + b"trailer bytes"), params, len(data), align, bufsize,
                         stride)
    else:
        g = GuidedChunks(io.BytesIO(data), params, align=align, bufsize=bufsize, stride=stride)
    out, taken, nxt = [], 0, 0
    while (got := g.next(len(prev[nxt]) if nxt is not None and nxt < len(prev) else 0)) is not None:
        chunk, guessed = got
        cid = hashing.chunk_id(chunk)
        if guessed and cid != ids[nxt]:
            g.reject()
            nxt = None
            continue
        taken += guessed
        j = nxt if guessed else where.get(cid)
        nxt = None if j is None else j + 1
        out.append(bytes(chunk))
    return out, taken


@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 6]), st.sampled_from([200, 1500, 9000]),
       st.lists(st.tuples(st.floats(0, 1), st.integers(0, 700), st.integers(0, 700)), max_size=3),
       st.booleans())
def test_guided_cuts_equal_plain_cuts(seed, align, bufsize, edits, known_length):
    """Whatever the previous version (punched in, shifted, cut short, extended), a guided
    pass cuts exactly where a plain scan does."""
    data = rand(int(20000 + seed % 9000), seed)
    prev = bytearray(data)
    for where, cut, insert in edits:
        at = int(where * len(prev))
        prev[at:at + cut] = rand(insert, seed + at)
    plain = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, align=align)]
    guided, _ = _guided(data, bytes(prev), SMALL, align, bufsize, known_length)
    assert guided == plain


def test_guided_takes_the_previous_cuts():
    data = rand(300000, 9)
    punched = bytearray(data)
    punched[100000:100050] = rand(50, 10)
    guided, taken = _guided(bytes(punched), data, SMALL, 3, 4096)
    plain = [bytes(c) for c in iter_chunks(io.BytesIO(bytes(punched)), SMALL, align=3)]
    assert guided == plain
    assert taken >= len(plain) - 5


@pytest.mark.parametrize("known_length", [False, True])
@pytest.mark.parametrize("align", [1, 3, 6])
@pytest.mark.parametrize("change", ["extended", "cut short", "header grew"])
def test_guided_edges_of_a_file(align, change, known_length):
    """The previous version's last chunk ended at its EOF, not at a content cut: taken only
    where it ends this file too."""
    data = rand(60000, 21)
    prev = {"extended": data[:41000], "cut short": data + rand(3000, 22),
            "header grew": data[58:]}[change]
    plain = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, align=align)]
    guided, taken = _guided(data, prev, SMALL, align, 2048, known_length)
    assert guided == plain
    assert taken > 0 or change == "header grew"


@pytest.mark.parametrize("known_length", [False, True])
@pytest.mark.parametrize("align", [1, 3, 6])
@pytest.mark.parametrize("n", [50, 300, 1000, 20000, 100001])
def test_guided_takes_every_chunk_of_an_unchanged_file(n, align, known_length):
    """Nothing scanned again, the short last chunk included."""
    data = rand(n, n)
    plain = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, align=align)]
    for bufsize in (1500, 9000):
        guided, taken = _guided(data, data, SMALL, align, bufsize, known_length)
        assert guided == plain
        assert taken == len(plain)


# -- fastcdc-gear-v2: inside 24-bit PCM only the middle byte of each sample is hashed ----------

def test_golden_vectors_v2():
    """Frozen like v1's: the sampled scan's cuts are part of every v2 store's chunk ids."""
    d = np.random.default_rng(12345).integers(0, 256, 300000, dtype=np.uint8).tobytes()
    cuts = reference_cuts(d, ChunkParams(256, 1024, 4096), align=3, stride=3)
    assert cuts[:12] == [1032, 1191, 1407, 930, 1359, 2724, 1359, 1029, 1161, 1248, 417, 1311]
    assert len(cuts) == 247
    rng = np.random.default_rng(12345)
    rng.integers(0, 256, 300000, dtype=np.uint8)
    d2 = rng.integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    d2 = d2[:len(d2) // 6 * 6]
    assert find_cuts(d2, 0, len(d2), True, ChunkParams(), 6, 3)[0] == [1100976, 1138392, 906360]


def test_stride_follows_the_algorithm_and_the_format():
    v1 = ChunkParams(algorithm="fastcdc-gear-v1")
    v2 = ChunkParams()
    assert v2.algorithm == "fastcdc-gear-v2"
    assert v2.stride_for((24, 1, False, False)) == 3
    assert v2.stride_for((24, 2, True, False)) == 3   # AIFF: big-endian, still the middle byte
    assert v2.stride_for((16, 2, False, False)) == 1
    assert v2.stride_for((32, 2, False, True)) == 1
    assert v2.stride_for(None) == 1
    assert v1.stride_for((24, 1, False, False)) == 1
    assert ChunkParams.from_dict({"min": 64, "avg": 256, "max": 1024}).algorithm == "fastcdc-gear-v1"
    assert ChunkParams.from_dict(v2.to_dict()) == v2
    with pytest.raises(FormatError, match="unknown chunker"):
        ChunkParams(algorithm="fastcdc-gear-v9")
    with pytest.raises(ValueError):
        find_cuts(b"x" * 100, 0, 100, True, SMALL, 1, 2)


def test_sampled_scan_hashes_only_the_middle_bytes():
    """Bytes other than each sample's middle byte do not move a cut; a middle byte does."""
    data = bytearray(rand(30000, 5))
    cuts = find_cuts(data, 0, len(data), True, SMALL, 3, 3)[0]
    other = bytearray(data)
    for i in range(0, len(other), 3):
        other[i] ^= 0x5A
        other[i + 2] ^= 0xA5
    assert find_cuts(other, 0, len(other), True, SMALL, 3, 3)[0] == cuts
    assert find_cuts(other, 0, len(other), True, SMALL, 3, 1)[0] != \
        find_cuts(data, 0, len(data), True, SMALL, 3, 1)[0]
    first = cuts[0]
    data[first - 2] ^= 0xFF  # the middle byte of the sample just before the first cut
    assert find_cuts(data, 0, len(data), True, SMALL, 3, 3)[0][0] != first


@pytest.mark.parametrize("params,t", [(TINY, t) for t in (40 + 6, 40 + 3 * 63, 40 + 3 * 64,
                                                           40 + 3 * 128, 40 + 3 * 192, 511, 512,
                                                           2047)]
                         + [(MID, t) for t in (1006, 1000 + 3 * KW, 1000 + 6 * KW,
                                               1000 + 9 * KW, 1000 + 12 * KW - 3, 131072,
                                               131072 + 3 * KW, 524287)])
def test_sampled_cut_at_round_boundaries(params, t):
    """Hits planted at the edges of the kernel's segments, rounds and tiers, in visit units."""
    t -= (t - 1) % 3  # a hashed byte
    buf = bytearray(_background(params, 3))
    _plant(buf, params, t, 3)
    expect = reference_cuts(bytes(buf), params, 1, 3)
    assert expect[0] == t + 1
    for align in (1, 3, 6):
        assert find_cuts(buf, 0, len(buf), True, params, align, 3)[0] == \
            reference_cuts(bytes(buf), params, align, 3)


@given(st.integers(0, 2**32 - 1), st.integers(0, 6000), st.sampled_from([3, 6]))
def test_sampled_cuts_short_of_the_end_are_final(seed, end, align):
    data = rand(6000, seed)
    part, stop = find_cuts(data, 0, end, False, SMALL, align, 3)
    assert stop == sum(part) <= end
    for whole in (data, data[:end]):
        assert part == find_cuts(whole, 0, len(whole), True, SMALL, align, 3)[0][:len(part)]


@given(st.integers(1, 5000), st.integers(0, 2**32 - 1), st.sampled_from([3, 6]))
def test_sampled_streaming_invariance(bufsize, seed, align):
    data = rand(20000, seed)
    expect = find_cuts(data, 0, len(data), True, SMALL, align, 3)[0]
    chunks = list(iter_chunks(io.BytesIO(data), SMALL, align=align, bufsize=bufsize, stride=3))
    assert [len(c) for c in chunks] == expect
    assert b"".join(chunks) == data


@given(st.binary(min_size=1, max_size=12000), st.sampled_from([1, 3, 6]),
       st.sampled_from([SMALL, ChunkParams(1, 128, 4096), ChunkParams(100, 512, 700)]))
def test_sampled_is_cut_agrees_with_the_scan(data, align, params):
    lengths = find_cuts(data, 0, len(data), True, params, align, 3)[0]
    for pos, c in _offsets(lengths):
        assert is_cut(data, pos, c, len(data) - pos, True, params, align, 3)
        for shorter in {1, c // 2, c - 1, c - align} - {0, c}:
            if 0 < shorter < c:
                assert not is_cut(data, pos, shorter, len(data) - pos, True, params, align, 3)


@given(st.integers(0, 2**32 - 1), st.sampled_from([3, 6]), st.sampled_from([200, 1500, 9000]),
       st.lists(st.tuples(st.floats(0, 1), st.integers(0, 700), st.integers(0, 700)), max_size=3))
def test_sampled_guided_cuts_equal_plain_cuts(seed, align, bufsize, edits):
    data = rand(int(20000 + seed % 9000) // 6 * 6, seed)
    prev = bytearray(data)
    for where, cut, insert in edits:
        at = int(where * len(prev))
        prev[at:at + cut] = rand(insert, seed + at)
    plain = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, align=align, stride=3)]
    guided, _ = _guided(data, bytes(prev), SMALL, align, bufsize, stride=3)
    assert guided == plain
    unchanged, taken = _guided(data, data, SMALL, align, bufsize, stride=3)
    assert unchanged == plain and taken == len(plain)


def test_sampled_scan_keeps_dedup_across_inserted_frames():
    """Audio with frames inserted in the middle (an edit that adds bars) keeps its chunks."""
    frame, params = 6, ChunkParams(16384, 65536, 262144)
    audio = rand(4 << 20, 11)
    audio = audio[:len(audio) // frame * frame]
    mid = len(audio) // 2 // frame * frame
    edited = audio[:mid] + rand(frame * 4000, 12) + audio[mid:]

    def pieces(buf):
        lengths = find_cuts(buf, 0, len(buf), True, params, frame, 3)[0]
        return {bytes(buf[p:p + c]) for p, c in _offsets(lengths)}, len(lengths)
    a, n = pieces(audio)
    b, _ = pieces(edited)
    assert n > 30 and len(a & b) >= n - 3


def test_sampled_scan_cuts_16_bit_audio_padded_to_24():
    """A 16-bit source converted to 24 bits has a zero low byte: the middle byte still moves,
    so cuts stay content-defined (no run of max-size chunks)."""
    rng = np.random.default_rng(3)
    s16 = (np.sin(np.arange(400000) / 30) * 8000 + rng.normal(0, 20, 400000)).astype(np.int16)
    pcm = np.zeros((len(s16), 3), dtype=np.uint8)
    pcm[:, 1] = s16.view(np.uint8)[0::2]
    pcm[:, 2] = s16.view(np.uint8)[1::2]
    params = ChunkParams(4096, 16384, 65536)
    lengths = find_cuts(pcm.tobytes(), 0, pcm.size, True, params, 3, 3)[0]
    assert len(lengths) > pcm.size // params.max * 2
    assert sum(c == params.max for c in lengths) <= len(lengths) // 4


def test_read_buffers_are_shared_between_formats():
    """Files of any frame size draw their read buffers from one pool: after a 24-bit mono file
    (align 3), a stereo one (6) and a plain one (1) read into a buffer the pool already had."""
    from archivestore.chunking import _BUFFERS
    params = ChunkParams()
    data = rand(300_000, 5)

    def buffer_of(align: int) -> bytearray:
        it = iter_chunks(io.BytesIO(data), params, align=align)
        first = next(it)
        buf = first.obj
        assert bytes(first) + b"".join(it) == data
        return buf

    mono = buffer_of(3)
    for align in (6, 1):
        pooled = {id(b) for b in _BUFFERS._free}
        buf = buffer_of(align)
        assert id(buf) in pooled and len(buf) == len(mono)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 6]), st.sampled_from([200, 1500, 9000]),
       st.booleans())
def test_stale_bytes_in_a_reused_read_buffer_change_no_cut(seed, align, bufsize, known_length):
    """Pool buffers are not zero-filled (`_bulk.empty`), and a reused one still holds an
    earlier file's bytes past what a refill reads: neither a scan nor a guess may look there."""
    from archivestore.chunking import _BUFFERS
    data = rand(int(20000 + seed % 9000), seed)
    prev = bytearray(data)
    prev[len(prev) // 3:len(prev) // 3 + 40] = rand(90, seed + 1)  # a punch-in, as a guide
    plain = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, align=align)]
    cap = max(bufsize, SMALL.max) + max(SMALL.avg, align)
    for fill in (b"\x00", b"\xff", bytes(rand(251, seed + 2))):
        held = [_BUFFERS.get(cap) for _ in range(4)]  # every buffer the pass may draw
        for v in held:
            v[:] = (fill * (len(v) // len(fill) + 1))[:len(v)]
        del held, v
        guided, _ = _guided(data, bytes(prev), SMALL, align, bufsize, known_length)
        assert guided == plain
        again = [bytes(c) for c in iter_chunks(io.BytesIO(data), SMALL, align=align,
                                               bufsize=bufsize)]
        assert again == plain
