"""Write-path defects found in review of the O_DIRECT writer (directio.py) and the small-file
paths, each fixed; every test here failed before its fix. The comment above each group says
what was wrong."""
from __future__ import annotations

import concurrent.futures
import errno
import os
import threading

import pytest

from archivestore import Store, directio, hashing, ingest, packs
from archivestore.codecs import RAW
from archivestore.directio import ALIGN, DirectWriter
from archivestore.errors import StoreFull
from archivestore.packs import KIND_DATA, PackWriter


# an error of a background (O_DIRECT) write is raised once and then forgotten: the
# failed future is popped from `_inflight`, and nothing marks the writer as failed. A later
# `write`/`close(fsync=True)` then succeeds on a file with a hole where the failed buffer was.
# BlobSink keeps the same PackWriter after `add` raised, so the next blob (another encode thread)
# and a flush/finish publish and index a pack whose blobs are not there.
def _fail_first_full_buffer(monkeypatch, size):
    real = os.pwrite
    state = {"failed": False}

    def pwrite(fd, data, offset):
        if not state["failed"] and len(data) == size:
            state["failed"] = True
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", pwrite)
    return state


def _direct_writer(path, monkeypatch) -> DirectWriter:
    """A writer with 16 KiB buffers on a filesystem that takes O_DIRECT (else the test skips)."""
    monkeypatch.setattr(directio, "BUF", 4 * ALIGN)
    monkeypatch.setattr(directio, "_free", [])
    w = DirectWriter(path)
    if not w.direct:
        w.abort()
        pytest.skip("this filesystem refuses O_DIRECT")
    return w


def test_close_after_a_background_error_does_not_succeed(tmp_path, monkeypatch):
    w = _direct_writer(tmp_path / "f", monkeypatch)
    state = _fail_first_full_buffer(monkeypatch, 4 * ALIGN)
    data = os.urandom(4 * ALIGN)
    with pytest.raises(OSError):
        for _ in range(8):
            w.write(data)
    assert state["failed"]
    # the writer must stay failed: a close (fsync) after that must not report success
    with pytest.raises(OSError):
        w.close(fsync=True)


def test_sink_does_not_index_a_pack_with_a_lost_write(tmp_path, monkeypatch):
    root = tmp_path / "store"
    Store.init(root).close()
    st = Store.open(root)
    try:
        probe = DirectWriter(tmp_path / "probe")
        ok = probe.direct
        probe.abort()
        if not ok:
            pytest.skip("this filesystem refuses O_DIRECT")
        sink = st.sink()
        _fail_first_full_buffer(monkeypatch, directio.BUF)
        added = []
        raised = False
        # 1 MiB blobs, two to a buffer: the submit of buffer PACK_QUEUE_DEPTH + 1 waits on the
        # failed 1st
        for i in range(2 * packs.PACK_QUEUE_DEPTH + 8):
            plain = os.urandom(1 << 20)
            bid = hashing.chunk_id(plain)
            try:
                sink.add(bid, KIND_DATA, RAW, len(plain), plain)
            except OSError:
                raised = True  # this encode job fails; another thread goes on adding
                continue
            added.append((bid, plain))
            if raised and len(added) > 8:
                break
        assert raised
        try:
            sink.flush()
        except OSError:
            return  # the failure is reported: nothing wrong was indexed
        finally:
            sink.close()
        bad = []
        for bid, plain in added:
            try:
                if st.read_blob(bid) != plain:
                    bad.append(bid.hex()[:12])
            except Exception as e:  # noqa: BLE001
                bad.append(f"{bid.hex()[:12]}: {e}")
        assert not bad, f"flush succeeded and indexed unreadable blobs: {bad}"
    finally:
        st.close()


# a file under ingest.INLINE_FILE is read by the walking thread (`entry_or_job()` in
# the walk loop), outside drain()'s `except: self._raise_pending_error(); raise`. When an encode
# job fails (disk full) while that file is being chunked, _chunk_file raises ArchiveError("ingest
# aborted") and that, not the cause, is what ingest raises: no StoreFull, no disk-full line, exit 1
# instead of 3. Files that go through the pool get the cause (drain re-raises self._error).
# The encode failure is injected at the moment the small file is probed, as _encode_done would
# record it.
def test_small_file_read_inline_reports_the_cause(tmp_path, monkeypatch):
    root = tmp_path / "store"
    Store.init(root).close()
    src = tmp_path / "Session"
    src.mkdir()
    (src / "fade.wav").write_bytes(os.urandom(5000))  # < INLINE_FILE: walking thread
    st = Store.open(root)
    try:
        ing = ingest.Ingester(st)
        real_probe = ingest._probe_audio

        def probe(f, size):
            # an encode-pool job fails with ENOSPC right now (what _encode_done records)
            ing._error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_probe(f, size)
        monkeypatch.setattr(ingest, "_probe_audio", probe)
        with pytest.raises(StoreFull):
            ing.ingest(src, "Session")
    finally:
        st.close()


# PackWriter.__init__ writes the pack header through DirectWriter. Where O_DIRECT is
# refused (ARCHIVESTORE_DIRECT_IO=0, NFS/FUSE/older tmpfs) that write is an immediate pwrite (the
# old BufferedWriter only buffered it), and when it fails (ENOSPC) the constructor raises with
# the DirectWriter never closed: its descriptor leaks and the .pack.tmp stays in tmp/ (a live
# pid's temp, which leftover_temps will not clean up in this process).
def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_header_write_failure_leaks_nothing(tmp_path, monkeypatch):
    root = tmp_path / "store"
    Store.init(root).close()
    st = Store.open(root)
    try:
        monkeypatch.setattr(directio, "_O_DIRECT", 0)  # a filesystem that refuses O_DIRECT

        def pwrite(fd, data, offset):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "pwrite", pwrite)
        before = _open_fds()
        with pytest.raises(OSError):
            PackWriter(st.backend)
        monkeypatch.undo()
        leaked = _open_fds() - before
        left = list((root / "tmp").iterdir()) if (root / "tmp").exists() else []
        assert not left, f"temp pack left behind: {left}"
        assert not leaked, f"descriptors leaked: {leaked}"
    finally:
        st.close()


# DirectWriter._release waits for in-flight writes with `except BaseException: pass`.
# An interrupt (Ctrl-C) that arrives during that wait is swallowed and the loop goes on *without
# waiting for that write*: the descriptor is closed while the background write still has to run.
# Its pwrite then goes to whatever file next gets the same descriptor number (another restored
# file, a pack) - bytes of one file written into another. (The Ctrl-C is simulated by making
# Future.result raise KeyboardInterrupt twice: once in abort's _wait, once in _release.)
def test_release_never_closes_the_fd_under_a_pending_write(tmp_path, monkeypatch):
    w = _direct_writer(tmp_path / "a", monkeypatch)
    gate = threading.Event()
    started = threading.Event()
    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):
        if threading.current_thread().name.startswith("direct-io"):
            started.set()
            gate.wait(10)  # the device is slow
        return real_pwrite(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", pwrite)

    real_result = concurrent.futures.Future.result
    interrupts = [2]

    def result(self, timeout=None):
        if interrupts[0] and not self.done():
            interrupts[0] -= 1
            raise KeyboardInterrupt
        return real_result(self, timeout)
    monkeypatch.setattr(concurrent.futures.Future, "result", result)

    w.write(b"A" * (4 * ALIGN))  # a full buffer: handed to an I/O thread
    assert started.wait(5)
    fut = w._inflight[0]
    threading.Timer(0.3, gate.set).start()  # the slow write ends while abort is interrupted
    with pytest.raises(KeyboardInterrupt):
        w.abort()
    monkeypatch.setattr(concurrent.futures.Future, "result", real_result)
    closed_while_pending = not fut.done()
    # another file opened now takes the freed descriptor number
    fd2 = os.open(tmp_path / "b", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd2, b"B" * 100)
        gate.set()
        try:
            fut.exception(timeout=10)
        except Exception:  # noqa: BLE001
            pass
    finally:
        os.close(fd2)
    assert not closed_while_pending, "the descriptor was closed while a write was still pending"
    assert (tmp_path / "b").read_bytes() == b"B" * 100


def test_lmdb_short_write_on_a_full_disk_is_disk_full(tmp_path, monkeypatch):
    """LMDB reports a page write cut short by a full filesystem as EIO (mdb_page_flush): the
    index turns that into ENOSPC when its filesystem is nearly out of space, and leaves it an
    index error otherwise (a failing device). Ingest then says the disk is full."""
    import lmdb

    from archivestore import index
    eio = lmdb.Error("mdb_txn_commit: Input/output error")

    class Vfs:
        f_frsize = 4096

        def __init__(self, free: int) -> None:
            self.f_bavail = free // 4096

    monkeypatch.setattr(index.os, "statvfs", lambda p: Vfs(100_000))
    full = index.disk_full_error(eio, tmp_path)
    assert isinstance(full, OSError) and full.errno == errno.ENOSPC
    assert ingest._disk_full(full)
    monkeypatch.setattr(index.os, "statvfs", lambda p: Vfs(10 << 30))
    assert index.disk_full_error(eio, tmp_path) is None
    assert index.disk_full_error(lmdb.Error("mdb_put: No space left on device"), tmp_path).errno \
        == errno.ENOSPC
    assert index.disk_full_error(lmdb.Error("mdb_get: MDB_NOTFOUND"), tmp_path) is None
    assert ingest._disk_full(OSError(errno.ENOSPC, "full"))
    assert not ingest._disk_full(ValueError("Input/output error"))
