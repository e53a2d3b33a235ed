"""directio.DirectWriter: the bytes written are exactly the bytes given, in both modes, whatever
the write sizes; the page cache is bypassed where the filesystem allows; refusals and errors."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archivestore import directio
from archivestore.directio import ALIGN, DirectWriter


@pytest.fixture
def small_buf(monkeypatch):
    """4 KiB .. 16 KiB buffers, so short tests cross many buffer and block boundaries."""
    monkeypatch.setattr(directio, "BUF", 4 * ALIGN)
    monkeypatch.setattr(directio, "_free", [])


def _write_all(path, pieces, direct=True) -> DirectWriter:
    w = DirectWriter(path)
    for p in pieces:
        assert w.write(p) == len(p)
    assert w.tell() == sum(map(len, pieces))
    w.close(fsync=True)
    return w


sizes = st.lists(st.one_of(st.integers(0, 64), st.integers(0, 3 * 4 * 4096),
                           st.sampled_from([4096, 8192, 16384, 16383, 16385])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(sizes=sizes, seed=st.integers(0, 255))
def test_bytes_round_trip(tmp_path_factory, sizes, seed):
    d = tmp_path_factory.mktemp("dw")
    old_buf, old_free = directio.BUF, directio._free
    directio.BUF, directio._free = 4 * ALIGN, []
    try:
        pieces = [bytes((seed + i + j) % 251 for j in range(n)) for i, n in enumerate(sizes)]
        _write_all(d / "f", pieces)
        assert (d / "f").read_bytes() == b"".join(pieces)
    finally:
        directio.BUF, directio._free = old_buf, old_free


@settings(max_examples=30, deadline=None)
@given(sizes=sizes)
def test_buffered_mode_round_trip(tmp_path_factory, sizes):
    """Where O_DIRECT is refused the writer goes through the page cache; same bytes."""
    d = tmp_path_factory.mktemp("dwb")
    old = directio._O_DIRECT
    directio._O_DIRECT = 0
    try:
        pieces = [os.urandom(n) for n in sizes]
        w = _write_all(d / "f", pieces)
        assert not w.direct
        assert (d / "f").read_bytes() == b"".join(pieces)
    finally:
        directio._O_DIRECT = old


def _direct_supported(path) -> bool:
    w = DirectWriter(path / "probe")
    ok = w.direct
    w.abort()
    os.unlink(path / "probe")
    return ok


@pytest.mark.skipif(shutil.which("fincore") is None, reason="fincore (util-linux) not installed")
def test_direct_writes_leave_the_page_cache_alone(tmp_path):
    """8 MiB + 100 bytes written: only the last partial block may be cached (fincore says)."""
    if not _direct_supported(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    data = os.urandom(8 * 1024 * 1024 + 100)
    w = DirectWriter(tmp_path / "f")
    for i in range(0, len(data), 1 << 20):
        w.write(data[i:i + (1 << 20)])
    assert w.direct
    w.close(fsync=True)
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES",
                          str(tmp_path / "f")], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[0]) <= ALIGN
    assert (tmp_path / "f").read_bytes() == data
    # and through the page cache it is all cached, so the check above can fail
    old = directio._O_DIRECT
    directio._O_DIRECT = 0
    try:
        _write_all(tmp_path / "g", [data])
    finally:
        directio._O_DIRECT = old
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES",
                          str(tmp_path / "g")], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[0]) > len(data) // 2


def test_write_refused_midway_falls_back(tmp_path, small_buf, monkeypatch):
    """A filesystem that accepts O_DIRECT at open and refuses the write (EINVAL): the writer
    switches to buffered writes and loses nothing."""
    if not _direct_supported(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    real = os.pwrite
    refused = []

    def pwrite(fd, data, offset):
        import fcntl
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, "refused")
        return real(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", pwrite)
    pieces = [os.urandom(n) for n in (5000, 20000, 3, 70000, 123)]
    w = _write_all(tmp_path / "f", pieces)
    assert refused and not w.direct
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)


def test_background_error_surfaces_and_abort_releases(tmp_path, small_buf, monkeypatch):
    """ENOSPC in the I/O thread is raised by a later write or by close; abort closes the fd."""
    real = os.pwrite
    calls = []

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", pwrite)
    w = DirectWriter(tmp_path / "f")
    with pytest.raises(OSError) as ei:
        for _ in range(10):
            w.write(os.urandom(3 * ALIGN))
        w.close()
    assert ei.value.errno == errno.ENOSPC
    fd = w.fd
    w.abort()
    assert w.closed
    with pytest.raises(OSError):
        os.fstat(fd)


def test_exclusive_create_and_mode(tmp_path):
    (tmp_path / "x").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        DirectWriter(tmp_path / "x")
    with DirectWriter(tmp_path / "y", mode=0o600) as w:
        w.write(b"abc")
    assert (tmp_path / "y").read_bytes() == b"abc"
    assert (tmp_path / "y").stat().st_mode & 0o777 == 0o600


def test_context_manager_aborts_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with DirectWriter(tmp_path / "z") as w:
            w.write(b"x" * 10000)
            raise RuntimeError("boom")
    assert w.closed
    assert (tmp_path / "z").stat().st_size <= 10000


def test_many_writers_at_once(tmp_path, small_buf):
    """Eight threads, each writing its own file through DirectWriter with the shared I/O pool
    and buffer pool: every file holds exactly its bytes (buffers never cross writers)."""
    import random
    import threading
    errors = []

    def worker(k: int) -> None:
        rng = random.Random(k)
        try:
            for j in range(6):
                pieces = [bytes([k, j]) * rng.randint(0, 9000) for _ in range(rng.randint(1, 30))]
                p = tmp_path / f"w{k}_{j}"
                with DirectWriter(p) as w:
                    for piece in pieces:
                        w.write(piece)
                assert p.read_bytes() == b"".join(pieces), p
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_network_folders_are_written_through_the_cache(tmp_path, monkeypatch):
    """A folder on NFS/SMB/sshfs (locations.on_network_fs) never gets O_DIRECT."""
    from archivestore import locations
    directio._on_network_fs.cache_clear()
    seen = []

    def fake(folder):
        seen.append(folder)
        return True
    monkeypatch.setattr(locations, "on_network_fs", fake)
    try:
        with DirectWriter(tmp_path / "n") as w:
            assert not w.direct
            w.write(b"z" * 10000)
        assert (tmp_path / "n").read_bytes() == b"z" * 10000
        assert seen == [str(tmp_path)]
    finally:
        directio._on_network_fs.cache_clear()
