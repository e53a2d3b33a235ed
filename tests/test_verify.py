"""_verify.crc32 must equal zlib.crc32 bit for bit, on both of its code paths."""
from __future__ import annotations

import random
import re
import zlib
from pathlib import Path

import pytest

from archivestore import _verify

P = 0x104C11DB7  # x^32 + ... : the zlib / IEEE 802.3 polynomial, normal form


def _xpow_mod(e: int) -> int:
    r = 1
    for _ in range(e):
        r <<= 1
        if r >> 32 & 1:
            r ^= P
    return r


def _rev64_residue(e: int) -> int:
    """rev64(x^e mod P): the residue's coefficient of x^k at bit 63 - k."""
    return int(format(_xpow_mod(e), "032b")[::-1], 2) << 32


def test_fold_constants_are_the_residues_the_docstring_names():
    src = (Path(__file__).parent.parent / "_ext" / "_verify.pyx").read_text()
    for d in (1024, 512, 128):
        m = re.search(rf"VFY_K{d}\[2\] = \{{0x([0-9a-f]+)ull, 0x([0-9a-f]+)ull\}}", src)
        assert m, d
        assert (int(m[1], 16), int(m[2], 16)) == (_rev64_residue(d + 63), _rev64_residue(d - 1))


LENGTHS = list(range(0, 200)) + [255, 256, 257, 1023, 1024, 4095, 16383, 16384, 16385,
                                  65536 + 7, 1 << 20, (1 << 20) + 13]


@pytest.mark.parametrize("path", ["auto", "clmul", "table"])
def test_crc32_equals_zlib(path):
    rnd = random.Random(7)
    _verify._force_path(path)
    try:
        for n in LENGTHS:
            data = rnd.randbytes(n)
            for start in (0, 1, 5):  # unaligned views too
                view = memoryview(data)[start:]
                for init in (0, 1, 0xFFFFFFFF, rnd.getrandbits(32)):
                    assert _verify.crc32(view, init) == zlib.crc32(view, init), (n, start, init)
    finally:
        _verify._force_path("auto")


@pytest.mark.parametrize("path", ["auto", "clmul"])
def test_crc32_sees_every_single_bit_flip(path):
    # 300 bytes: two 128-byte steps of the VPCLMULQDQ loop, then 16-byte folds and a tail
    data = bytearray(random.Random(3).randbytes(300))
    _verify._force_path(path)
    try:
        good = _verify.crc32(data)
        for bit in range(len(data) * 8):
            data[bit // 8] ^= 1 << (bit % 8)
            assert _verify.crc32(data) != good
            assert _verify.crc32(data) == zlib.crc32(data)
            data[bit // 8] ^= 1 << (bit % 8)
    finally:
        _verify._force_path("auto")


def test_blob_crc_covers_header_and_stored_bytes():
    rnd = random.Random(5)
    head = rnd.randbytes(48)
    stored = rnd.randbytes(100_000)
    crc = zlib.crc32(stored, zlib.crc32(head))
    blob = b"xx" + head + crc.to_bytes(4, "little") + stored + b"yy"
    assert _verify.blob_crc(blob, 2, len(stored)) == (crc, crc)
    assert _verify.blob_crc(blob, 2, len(stored) - 1)[1] == zlib.crc32(stored[:-1], zlib.crc32(head))
    with pytest.raises(ValueError):
        _verify.blob_crc(blob, 2, len(stored) + 3)
    with pytest.raises(ValueError):
        _verify.blob_crc(blob, -1, 10)


def test_the_256_bit_folding_is_used_where_the_cpu_has_it():
    try:
        flags = Path("/proc/cpuinfo").read_text().split("\nflags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        pytest.skip("no /proc/cpuinfo flags")
    if not {"vpclmulqdq", "avx2", "pclmulqdq"} <= set(flags):
        pytest.skip("the CPU has no VPCLMULQDQ")
    assert _verify.vclmul_available()
