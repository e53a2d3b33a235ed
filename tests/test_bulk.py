"""_bulk: copy_into (slice assignment without the GIL, with the same bounds and buffer rules),
empty and populate."""
from __future__ import annotations

import mmap

import pytest
from hypothesis import given, strategies as st

from archivestore._bulk import copy_into

from .conftest import ticks_inside


@given(st.binary(max_size=300), st.integers(0, 400), st.binary(max_size=300))
def test_same_as_slice_assignment(dst, at, src):
    a, b = bytearray(dst), bytearray(dst)
    if at + len(src) > len(dst):
        with pytest.raises(ValueError):
            copy_into(a, at, src)
        assert a == b  # nothing written
        return
    assert copy_into(a, at, src) == len(src)
    b[at:at + len(src)] = src
    assert a == b


def test_large_copies_into_mmap_and_views():
    src = bytes(range(256)) * 4096  # 1 MiB: copied without the GIL
    m = mmap.mmap(-1, 2 << 20)
    copy_into(m, 4096, memoryview(src)[1:])
    assert m[4096:4096 + len(src) - 1] == src[1:]
    buf = bytearray(len(src) + 10)
    view = memoryview(buf)
    copy_into(view, 0, src)
    copy_into(view, 5, view[:len(src)])  # overlapping: memmove semantics
    assert bytes(buf[5:5 + len(src)]) == src


def test_refuses_what_slice_assignment_would():
    with pytest.raises(BufferError):
        copy_into(b"read-only", 0, b"x")
    with pytest.raises(BufferError):
        copy_into(memoryview(bytearray(8)).toreadonly(), 0, b"x")
    with pytest.raises(ValueError):
        copy_into(bytearray(4), -1, b"x")
    with pytest.raises(TypeError):
        copy_into(bytearray(4), 0, "text")


def test_other_threads_run_during_a_large_copy():
    """The point of it: a copy of many MiB does not stop the Python threads; slice assignment
    (the control) does."""
    src = bytes(64 << 20)
    dst = bytearray(len(src))
    assert ticks_inside(lambda: copy_into(dst, 0, src)) > 0

    def sliced():
        dst[:] = src
    assert ticks_inside(sliced) == 0


def test_empty_is_a_writable_bytearray_of_its_size():
    from archivestore._bulk import empty
    for n in (0, 1, 4096, 5 << 20):
        b = empty(n)
        assert type(b) is bytearray and len(b) == n
        b[-1:] = b"x" if n else b""
        assert b[-1:] == (b"x" if n else b"")
    with pytest.raises(ValueError):
        empty(-1)


def _resident_pages(m: mmap.mmap) -> int:
    """Pages of the anonymous mapping `m` that are in memory (/proc/self/smaps_rollup cannot
    tell one mapping from another; mincore through ctypes can)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    n = (len(m) + 4095) // 4096
    vec = (ctypes.c_ubyte * n)()
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(len(m)), vec) == 0
    return sum(v & 1 for v in vec)


@pytest.mark.parametrize("advise", [True, False])
def test_populate_faults_in_every_page_of_a_fresh_mapping(advise):
    from archivestore._bulk import populate
    m = mmap.mmap(-1, 2 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    assert _resident_pages(m) == 0
    populate(m, advise)
    assert _resident_pages(m) == 512
    tail = mmap.mmap(-1, 3 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    populate(memoryview(tail)[4095:4097], advise)  # a view across one page boundary
    assert _resident_pages(tail) == 2
    m[:3] = b"abc"  # still an ordinary writable mapping
    assert m[:3] == b"abc"
    populate(bytearray())  # nothing to do
    with pytest.raises(BufferError):
        populate(b"read-only")


def test_other_threads_run_while_pages_are_populated():
    """mmap.mmap(..., MAP_POPULATE) holds the GIL while the kernel faults the pages in (the
    control); populate does not."""
    from archivestore._bulk import populate
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    maps: list[mmap.mmap] = []

    def populated():
        m = mmap.mmap(-1, 64 << 20, flags=flags)
        populate(m)
        maps.append(m)
    assert ticks_inside(populated) > 0
    if hasattr(mmap, "MAP_POPULATE"):
        assert ticks_inside(lambda: maps.append(
            mmap.mmap(-1, 64 << 20, flags=flags | mmap.MAP_POPULATE))) == 0
    for m in maps:
        m.close()
